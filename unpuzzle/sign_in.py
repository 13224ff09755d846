"""Sign-in throttling: failed sign-ins per username and per client address lock sign-in for a while.

A sliding window of ``LOGIN_LOCKOUT_S``: while ``LOGIN_MAX_FAILURES`` failures for one username
(case-folded, whether or not such a user exists) or ``LOGIN_MAX_FAILURES_PER_ADDRESS`` failures
from one address are younger than that, every sign-in for that username or from that address is
refused before its password is checked, a correct one too. Refused attempts are not recorded, so a
lock ends ``LOGIN_LOCKOUT_S`` after the failures that caused it however often it is retried.

The failures are rows in the database, not cache entries: an attempt is inserted before its
password is checked and the count read after the insert, so parallel guesses cannot all pass the
check (a cache's read-then-write counter loses increments under concurrency), and nothing evicts them.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from unpuzzle.exceptions import TooManyRequests
from unpuzzle.models import SignInFailure

logger = logging.getLogger(__name__)


class SignInLockedOut(TooManyRequests):
    """Too many recent failed sign-ins for this username or from this address."""

    code = "sign_in_locked"

    def __init__(self, *, retry_after_s: int):
        minutes = max(1, math.ceil(retry_after_s / 60))
        super().__init__(
            "Too many failed sign-ins for this account or address; "
            f"try again in {minutes} minute{'' if minutes == 1 else 's'}"
        )
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class SignInAttempt:
    """An attempt let through to the password check; it stays a failure unless it succeeds."""

    failure_id: int
    username: str
    address: str


def username_key(username: str) -> str:
    """What failures are counted under: the typed name case-folded, so ``Admin`` and ``admin`` share a count."""
    return username.strip().casefold()[: SignInFailure._meta.get_field("username").max_length]


def _seconds_locked(failures: QuerySet[SignInFailure], *, limit: int, now: datetime) -> float:
    """How long ``failures`` (all younger than the window) keep sign-in locked: until the ``limit``-th newest ages out."""
    if limit <= 0:
        return 0.0
    nth_newest = list(failures.order_by("-attempted_at").values_list("attempted_at", flat=True)[limit - 1 : limit])
    if not nth_newest:
        return 0.0
    return (nth_newest[0] + timedelta(seconds=settings.LOGIN_LOCKOUT_S) - now).total_seconds()


def sign_in_attempt_begin(*, username: str, address: str) -> SignInAttempt:
    """Record a sign-in attempt as failed before its password is checked, or refuse it during a lockout.

    Raises:
        SignInLockedOut: the username or the address has too many recent failures; nothing is recorded.
    """
    now = timezone.now()
    window_start = now - timedelta(seconds=settings.LOGIN_LOCKOUT_S)
    key = username_key(username)
    SignInFailure.objects.filter(attempted_at__lte=window_start).delete()
    failure = SignInFailure.objects.create(username=key, address=address, attempted_at=now)
    # Read after the insert: of two parallel attempts, each sees the other (both may be refused; never both let through).
    earlier = SignInFailure.objects.filter(attempted_at__gt=window_start).exclude(pk=failure.pk)
    locked_s = max(
        _seconds_locked(earlier.filter(username=key), limit=settings.LOGIN_MAX_FAILURES, now=now),
        _seconds_locked(earlier.filter(address=address), limit=settings.LOGIN_MAX_FAILURES_PER_ADDRESS, now=now),
    )
    if locked_s > 0:
        failure.delete()
        logger.warning("sign-in refused: username=%r address=%s locked for %.0f s more", key, address, locked_s)
        raise SignInLockedOut(retry_after_s=math.ceil(locked_s))
    return SignInAttempt(failure_id=failure.pk, username=key, address=address)


def sign_in_attempt_failed(*, attempt: SignInAttempt) -> None:
    """The password (or the account) was refused: the attempt stays recorded as a failure."""
    logger.info("sign-in failed: username=%r address=%s", attempt.username, attempt.address)


def sign_in_attempt_succeeded(*, attempt: SignInAttempt) -> None:
    """Forget this attempt and the earlier failures of the same username from the same address.

    Failures from other addresses stay: someone guessing elsewhere keeps counting toward the lock.
    """
    SignInFailure.objects.filter(username=attempt.username, address=attempt.address).delete()
