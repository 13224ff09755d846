"""API base: root, schema, docs, token and session authentication, health."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_api_root_lists_sections(client):
    response = client.get("/api/v1/")
    assert response.status_code == 200
    body = response.json()
    assert body["uploads"].endswith("/api/v1/uploads/")
    assert body["videos"].endswith("/api/v1/videos/")


def test_openapi_schema_and_docs(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert schema.json()["openapi"].startswith("3.")
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()


def test_drf_create_token_command_gives_a_working_token(user):
    out = io.StringIO()
    call_command("drf_create_token", user.username, stdout=out)
    token = Token.objects.get(user=user).key
    assert token in out.getvalue()

    client = APIClient()
    assert client.get("/api/v1/me/").status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = client.get("/api/v1/me/")
    assert response.status_code == 200
    assert response.json()["username"] == user.username


def test_session_authentication(client, user):
    client.force_login(user)
    assert client.get("/api/v1/me/").json()["username"] == user.username


def test_wrong_token_is_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    response = client.get("/api/v1/me/")
    assert response.status_code == 401
    assert "Invalid token" in response.json()["detail"]


def test_healthz_reports_every_check(client, clusters_alive, staff_user):
    client.force_login(staff_user)
    response = client.get("/healthz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "storage", "disk", "ffmpeg", "ffprobe", "queue", "workers"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["storage"]["location"] and body["checks"]["ffmpeg"]["path"]
    assert response["Cache-Control"].startswith("max-age=0")


def test_strangers_see_only_which_checks_pass(client, clusters_alive, settings, user, staff_user, monitor_headers):
    settings.FFMPEG_BIN = "ffmpeg-that-is-not-installed"
    expected = {
        "status": "unhealthy",
        "checks": {
            name: {"ok": name != "ffmpeg"}
            for name in ("database", "storage", "disk", "ffprobe", "queue", "workers", "ffmpeg")
        },
    }
    anonymous = client.get("/healthz")
    assert anonymous.status_code == 503 and anonymous.json() == expected  # no paths, bucket, vendor or errors
    assert client.get("/healthz", headers={"Authorization": "Bearer a-guess"}).json() == expected
    instructor = Token.objects.create(user=user).key
    assert client.get("/healthz", headers={"Authorization": f"Token {instructor}"}).json() == expected
    assert client.get("/healthz", headers={"Authorization": "Token not-a-token"}).json() == expected

    staff_token = Token.objects.create(user=staff_user).key
    for headers in (monitor_headers, {"Authorization": f"Token {staff_token}"}):
        details = client.get("/healthz", headers=headers).json()["checks"]
        assert "not found" in details["ffmpeg"]["error"] and details["database"]["vendor"]


def test_healthz_is_503_when_ffmpeg_is_missing(client, settings, monitor_headers):
    settings.FFMPEG_BIN = "ffmpeg-that-is-not-installed"
    response = client.get("/healthz", headers=monitor_headers)
    assert response.status_code == 503
    check = response.json()["checks"]["ffmpeg"]
    assert check["ok"] is False and "not found" in check["error"]


def test_healthz_checks_s3_storage(client, s3_storage, clusters_alive, monitor_headers):
    response = client.get("/healthz", headers=monitor_headers)
    assert response.status_code == 200
    assert response.json()["checks"]["storage"]["backend"] == "MediaS3Storage"


def test_healthz_is_503_when_bucket_is_missing(client, settings, s3_storage, monitor_headers):
    options = {**settings.STORAGES["default"]["OPTIONS"], "bucket_name": "bucket-that-does-not-exist"}
    settings.STORAGES = {**settings.STORAGES, "default": {**settings.STORAGES["default"], "OPTIONS": options}}
    response = client.get("/healthz", headers=monitor_headers)
    assert response.status_code == 503
    assert response.json()["checks"]["storage"]["ok"] is False
