"""When a failed delivery is tried again; no Django here.

Eight attempts: at once, then after 30 s, 5 min, 30 min, 2 h, 5 h, 10 h and 14 h (about 1.3
days in all). Timeouts, connection errors, 5xx and 429 are retried; any other answer outside
2xx (3xx included: redirects are not followed) fails the delivery at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

# Wait before attempt n+1 after attempt n failed (index n-1); its length is the number of retries.
RETRY_DELAYS_S: tuple[int, ...] = (30, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 14 * 3600)
MAX_ATTEMPTS = len(RETRY_DELAYS_S) + 1
# A Retry-After further out than this is capped to it.
RETRY_AFTER_MAX_S = 24 * 3600


def status_retryable(status: int) -> bool:
    """Whether an answer with this HTTP status is worth another attempt."""
    return status == 429 or status >= 500


def retry_after_seconds(value: str, *, now: datetime) -> int | None:
    """Seconds a Retry-After header asks to wait (delta-seconds or an HTTP date), None when absent or unreadable."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit():
        return min(int(value), RETRY_AFTER_MAX_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0, min(int((when - now).total_seconds()), RETRY_AFTER_MAX_S))


def next_attempt_at(*, attempts: int, now: datetime, retry_after_s: int | None = None) -> datetime | None:
    """When to try again after the ``attempts``-th attempt failed (None: no attempts left).

    The schedule's wait, or the endpoint's Retry-After when that is longer.
    """
    if attempts >= MAX_ATTEMPTS:
        return None
    wait = RETRY_DELAYS_S[attempts - 1]
    if retry_after_s is not None:
        wait = max(wait, retry_after_s)
    return now + timedelta(seconds=wait)
