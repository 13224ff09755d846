"""Users' named API tokens: made (the key shown once), looked up by the key's SHA-256, revoked.

A key is ``upz_`` followed by 43 URL-safe characters (256 random bits). Only its SHA-256 is
stored, so a copy of the database does not hold usable keys; ``prefix`` (``upz_`` and the next
8 characters) lets a user tell their tokens apart. Tokens made by ``manage.py drf_create_token``
before named tokens existed keep working (``rest_framework.authtoken``); new ones are made here.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.contrib.auth import authenticate
from django.utils import timezone

from unpuzzle.exceptions import DomainError
from unpuzzle.models import ApiToken
from unpuzzle.sign_in import sign_in_attempt_begin, sign_in_attempt_failed, sign_in_attempt_succeeded

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.http import HttpRequest

logger = logging.getLogger(__name__)

KEY_PREFIX = "upz_"
SHOWN_PREFIX_LENGTH = len(KEY_PREFIX) + 8
# A token's last use is written at most this often (not on every request).
LAST_USED_RESOLUTION = timedelta(minutes=1)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_token_create(*, owner: AbstractBaseUser, name: str, expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """A new token for ``owner``; returns it and its key (the only time the key exists outside the caller)."""
    name = name.strip()
    if not name:
        raise DomainError("name the token (what it is for, e.g. 'lms sync script')", code="name_required")
    if expires_at is not None and expires_at <= timezone.now():
        raise DomainError("expires_at must be in the future (or empty for a token that does not expire)")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        owner=owner,  # type: ignore[misc]  # the project's user model
        name=name[: ApiToken._meta.get_field("name").max_length],
        prefix=key[:SHOWN_PREFIX_LENGTH],
        key_sha256=key_digest(key),
        expires_at=expires_at,
    )
    logger.info("api token id=%s (%s) made for user_id=%s", token.pk, token.prefix, owner.pk)
    return token, key


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    """Stop the token from working (the row stays, so its owner sees when it was revoked)."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        logger.info("api token id=%s (%s) of user_id=%s revoked", token.pk, token.prefix, token.owner_id)
    return token


def api_token_usable_reason(token: ApiToken, *, now: datetime) -> str:
    """Why the token cannot be used now ('' when it can)."""
    if token.revoked_at is not None:
        return "this token was revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "this token has expired"
    if not token.owner.is_active:
        return "the token's user is inactive"
    return ""


def api_token_authenticate(*, key: str) -> ApiToken:
    """The token with this key, usable now; its last use noted. Raises DomainError (401) otherwise."""
    now = timezone.now()
    token = ApiToken.objects.select_related("owner").filter(key_sha256=key_digest(key)).first()
    if token is None:
        raise DomainError("invalid token", code="authentication_failed", status_code=401)
    reason = api_token_usable_reason(token, now=now)
    if reason:
        raise DomainError(f"{reason}: make a new one", code="authentication_failed", status_code=401)
    if token.last_used_at is None or token.last_used_at <= now - LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def api_token_for_credentials(
    *, request: HttpRequest | None, username: str, password: str, address: str, name: str
) -> tuple[ApiToken, str]:
    """A new token for whoever these credentials belong to, counted by the sign-in lockout like a sign-in.

    Raises SignInLockedOut (429) during a lockout and DomainError (400) for wrong credentials.
    """
    attempt = sign_in_attempt_begin(username=username, address=address)
    user = authenticate(request, username=username, password=password)
    if user is None or not user.is_active:
        sign_in_attempt_failed(attempt=attempt)
        raise DomainError("wrong username or password", code="invalid_credentials")
    sign_in_attempt_succeeded(attempt=attempt)
    return api_token_create(owner=user, name=name)
