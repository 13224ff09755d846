"""Named API tokens: made in the admin or from a username and password, shown once, stored hashed,
last use recorded, revoked or expired; tokens from drf_create_token keep working."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import make_instructor, make_superuser, make_user
from unpuzzle.groups import INSTRUCTORS
from unpuzzle.models import ApiToken
from unpuzzle.tokens import api_token_create, key_digest

pytestmark = pytest.mark.django_db


def _me(key: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/v1/me/")


@pytest.fixture
def instructor():
    call_command("setup_groups", verbosity=0)
    from django.contrib.auth.models import Group

    user = make_instructor(username="ines")
    user.groups.add(Group.objects.get(name=INSTRUCTORS))
    return user


def test_an_instructor_makes_a_token_in_the_admin_sees_it_once_and_uses_it(client, instructor):
    client.force_login(instructor)
    response = client.post(
        "/admin/unpuzzle/apitoken/add/", {"name": "lms sync", "expires_at_0": "", "expires_at_1": ""}
    )
    assert response.status_code == 200
    page = response.content.decode()
    key = re.search(r'value="(upz_[A-Za-z0-9_-]+)"', page)[1]
    assert "shown only this once" in page

    token = ApiToken.objects.get(owner=instructor)
    assert token.name == "lms sync" and token.prefix == key[:12]
    # Only the hash is stored: the key appears in no column of the row.
    assert token.key_sha256 == key_digest(key)
    assert key not in str(ApiToken.objects.filter(pk=token.pk).values().get())

    assert token.last_used_at is None
    assert _me(key).json()["username"] == "ines"
    token.refresh_from_db()
    assert token.last_used_at is not None

    # The list shows name, prefix, state and last use, never the key.
    listing = client.get("/admin/unpuzzle/apitoken/").content.decode()
    assert "lms sync" in listing and token.prefix in listing and "active" in listing
    assert key not in listing
    assert key not in client.get(f"/admin/unpuzzle/apitoken/{token.pk}/change/").content.decode()


def test_revoking_in_the_admin_stops_the_token(client, instructor):
    token, key = api_token_create(owner=instructor, name="old laptop")
    assert _me(key).status_code == 200
    client.force_login(instructor)
    response = client.post(
        "/admin/unpuzzle/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}, follow=True
    )
    assert "Revoked 1 token." in response.content.decode()
    refused = _me(key)
    assert refused.status_code == 401
    assert refused.json()["detail"] == "this token was revoked: make a new one"


def test_an_expired_token_is_refused_and_the_past_is_no_expiry(client, instructor):
    token, key = api_token_create(owner=instructor, name="ci", expires_at=timezone.now() + timedelta(hours=1))
    assert _me(key).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert _me(key).json()["detail"] == "this token has expired: make a new one"

    client.force_login(instructor)
    response = client.post(
        "/admin/unpuzzle/apitoken/add/", {"name": "x", "expires_at_0": "2001-01-01", "expires_at_1": "00:00:00"}
    )
    assert "Pick a time in the future" in response.content.decode()
    assert ApiToken.objects.filter(name="x").count() == 0


def test_users_see_only_their_own_tokens_and_superusers_all(client, instructor):
    other = make_instructor(username="olga")
    theirs, _ = api_token_create(owner=other, name="olga's script")
    mine, _ = api_token_create(owner=instructor, name="my script")
    client.force_login(instructor)
    listing = client.get("/admin/unpuzzle/apitoken/").content.decode()
    assert "my script" in listing and "olga&#x27;s script" not in listing
    assert client.get(f"/admin/unpuzzle/apitoken/{theirs.pk}/change/").status_code == 302  # not found: back to list
    refused = client.post("/admin/unpuzzle/apitoken/", {"action": "revoke", "_selected_action": [theirs.pk]})
    assert refused.status_code in (200, 302)
    theirs.refresh_from_db()
    assert theirs.revoked_at is None

    client.force_login(make_superuser())
    listing = client.get("/admin/unpuzzle/apitoken/").content.decode()
    assert "my script" in listing and "olga&#x27;s script" in listing
    assert mine.prefix in listing


def test_a_script_gets_a_token_from_username_and_password():
    make_user(username="sam", password="pw-sam-123456")
    response = APIClient().post(
        "/api/v1/auth/token/", {"username": "sam", "password": "pw-sam-123456", "name": "nightly"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "nightly" and body["expires_at"] is None
    assert body["token"].startswith(body["prefix"])
    assert _me(body["token"]).json()["username"] == "sam"

    wrong = APIClient().post("/api/v1/auth/token/", {"username": "sam", "password": "nope"}, format="json")
    assert wrong.status_code == 400
    assert wrong.json() == {"detail": "wrong username or password", "code": "invalid_credentials"}
    missing = APIClient().post("/api/v1/auth/token/", {"username": "sam"}, format="json")
    assert missing.status_code == 400 and "password" in missing.json()


def test_the_token_endpoint_is_throttled_by_the_sign_in_lockout(settings):
    settings.LOGIN_MAX_FAILURES = 3
    make_user(username="sam", password="pw-sam-123456")
    client = APIClient()
    for _ in range(3):
        assert client.post("/api/v1/auth/token/", {"username": "sam", "password": "guess"}).status_code == 400
    locked = client.post("/api/v1/auth/token/", {"username": "sam", "password": "pw-sam-123456"})
    assert locked.status_code == 429
    assert locked.json()["code"] == "sign_in_locked"
    assert int(locked["Retry-After"]) > 0
    assert ApiToken.objects.count() == 0


def test_tokens_from_drf_create_token_keep_working(user):
    call_command("drf_create_token", user.username, verbosity=0)
    assert _me(Token.objects.get(user=user).key).json()["username"] == user.username
    assert _me("upz_not-a-real-token").status_code == 401
    assert _me("not-a-token-at-all").status_code == 401


def test_an_inactive_users_tokens_stop_working(user):
    _, key = api_token_create(owner=user, name="script")
    user.is_active = False
    user.save()
    assert _me(key).status_code == 401
