"""The sign-in forms of the admin and of /accounts/login/, with sign-in throttling (unpuzzle.sign_in)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm

from unpuzzle.client_address import client_address
from unpuzzle.sign_in import SignInLockedOut, sign_in_attempt_begin, sign_in_attempt_failed, sign_in_attempt_succeeded


class ThrottledSignInMixin:
    """Counts each checked sign-in against the username and the client address; refuses during a lockout.

    Anything but a completed sign-in counts as a failure, a correct password of an account the form
    refuses (inactive; not staff, on the admin's) too: otherwise the missing lockout would tell a
    guesser that the password was right.
    """

    request: Any
    cleaned_data: dict[str, Any]

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is None or not password:
            return super().clean()  # type: ignore[misc]  # nothing to check: the fields' own errors show
        address = client_address(self.request) if self.request is not None else ""
        try:
            attempt = sign_in_attempt_begin(username=username, address=address)
        except SignInLockedOut as exc:
            raise forms.ValidationError(exc.message, code="locked_out") from None
        try:
            cleaned = super().clean()  # type: ignore[misc]
        except forms.ValidationError:
            sign_in_attempt_failed(attempt=attempt)
            raise
        sign_in_attempt_succeeded(attempt=attempt)
        return cleaned


class ThrottledAuthenticationForm(ThrottledSignInMixin, AuthenticationForm):
    """/accounts/login/."""


class ThrottledAdminAuthenticationForm(ThrottledSignInMixin, AdminAuthenticationForm):
    """The admin's login."""
