"""``/api/v1/webhooks/``: staff only, secrets shown once, clear 400s for unknown events and refused URLs."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient
from standardwebhooks import Webhook

from tests.webhook_receiver import run_queued_deliveries
from unpuzzle.webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db

URL = "/api/v1/webhooks/"


@pytest.fixture
def staff_api(staff_user) -> APIClient:
    client = APIClient()
    client.force_authenticate(staff_user)
    return client


def test_only_staff(api_client):
    assert api_client.get(URL).status_code == 403
    assert api_client.post(URL, {"url": "https://93.184.216.34/", "events": ["video.ready"]}).status_code == 403
    assert APIClient().get(URL).status_code == 401


def test_secret_is_shown_at_creation_and_rotation_only(staff_api, receiver):
    created = staff_api.post(
        URL,
        {"url": receiver.url("/ok"), "events": ["video.ready", "upload.failed"], "description": "LMS"},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["enabled"] is True
    assert body["events"] == ["video.ready", "upload.failed"] and body["description"] == "LMS"
    detail = f"{URL}{body['id']}/"
    assert "secret" not in staff_api.get(detail).json()
    assert "secret" not in staff_api.get(URL).json()["results"][0]

    rotated = staff_api.post(f"{detail}rotate-secret/")
    assert rotated.status_code == 200
    assert rotated.json()["secret"].startswith("whsec_") and rotated.json()["secret"] != body["secret"]
    assert rotated.json()["previous_secret_expires_at"] is not None
    assert "secret" not in staff_api.get(detail).json()


def test_unknown_event_type_is_a_clear_400(staff_api):
    response = staff_api.post(URL, {"url": "https://93.184.216.34/", "events": ["video.readdy"]}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "unknown_event_type"
    assert "unknown event type 'video.readdy'" in response.json()["detail"]
    assert "video.ready" in response.json()["detail"]
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://127.0.0.1:8000/hook", "127.0.0.1 is a loopback address"),
        ("https://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
        ("https://[fd00:ec2::254]/", "fd00:ec2::254 is a cloud metadata address"),
        ("https://10.0.0.8/hook", "10.0.0.8 is a private address"),
        ("https://localhost/hook", "localhost resolves to 127.0.0.1, which is a loopback address"),
        ("http://93.184.216.34/hook", "must start with https://"),
    ],
)
def test_refused_urls_are_a_400_naming_the_problem(staff_api, settings, url, says):
    settings.WEBHOOK_ALLOWED_HOSTS = []
    settings.WEBHOOK_ALLOW_HTTP = False
    response = staff_api.post(URL, {"url": url, "events": ["video.ready"]}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "webhook_url_refused"
    assert says in response.json()["detail"]


def test_an_unresolvable_name_is_accepted(staff_api, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = []
    response = staff_api.post(URL, {"url": "https://hooks.example.invalid/x", "events": ["video.ready"]}, format="json")
    assert response.status_code == 201


def test_update_rechecks_the_url_and_delete(staff_api, settings):
    created = staff_api.post(URL, {"url": "https://hooks.example.invalid/x", "events": ["video.ready"]}, format="json")
    detail = f"{URL}{created.json()['id']}/"
    settings.WEBHOOK_ALLOWED_HOSTS = []
    refused = staff_api.patch(detail, {"url": "https://192.168.1.1/"}, format="json")
    assert refused.status_code == 400 and "192.168.1.1 is a private address" in refused.json()["detail"]
    changed = staff_api.patch(detail, {"events": ["video.failed"], "enabled": False}, format="json")
    assert changed.status_code == 200
    assert changed.json()["events"] == ["video.failed"] and changed.json()["enabled"] is False
    assert changed.json()["disabled_reason"] == "disabled by staff"
    assert staff_api.delete(detail).status_code == 204
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_test_event_reaches_the_endpoint(staff_api, receiver):
    created = staff_api.post(URL, {"url": receiver.url("/ok"), "events": ["video.ready"]}, format="json").json()
    answer = staff_api.post(f"{URL}{created['id']}/test/")
    assert answer.status_code == 202
    assert run_queued_deliveries() == 1
    payload = Webhook(created["secret"]).verify(receiver.requests[0].body, receiver.requests[0].headers)
    assert payload["type"] == "webhook.test" and payload["data"]["endpoint_id"] == created["id"]
