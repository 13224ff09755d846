"""API token authentication: named, hashed tokens (``Authorization: Token upz_…``), and the unnamed
tokens of ``rest_framework.authtoken`` made before them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.authentication import BaseAuthentication, TokenAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from unpuzzle.exceptions import DomainError
from unpuzzle.tokens import KEY_PREFIX, api_token_authenticate

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.http import HttpRequest

    from unpuzzle.models import ApiToken

KEYWORD = "Token"


class ApiTokenAuthentication(BaseAuthentication):
    """``Authorization: Token upz_…``: a named token (unpuzzle.tokens). Other token values are left
    to ``TokenAuthentication`` after it (tokens from ``manage.py drf_create_token``)."""

    def authenticate(self, request) -> tuple[AbstractBaseUser, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].decode(errors="replace").lower() != KEYWORD.lower():
            return None
        key = parts[1].decode(errors="replace")
        if not key.startswith(KEY_PREFIX):
            return None
        try:
            token = api_token_authenticate(key=key)
        except DomainError as exc:
            raise AuthenticationFailed(exc.message) from None
        return token.owner, token

    def authenticate_header(self, request) -> str:
        return KEYWORD


def token_user(request: HttpRequest) -> AbstractBaseUser | None:
    """The user an API token in the request belongs to, if it is a valid token of either kind."""
    for authenticator in (ApiTokenAuthentication(), TokenAuthentication()):
        try:
            authenticated = authenticator.authenticate(request)  # type: ignore[arg-type]
        except AuthenticationFailed:
            return None
        if authenticated is not None:
            return authenticated[0]
    return None
