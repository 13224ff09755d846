"""Upload creation is rate-limited per user: tus creations and direct-upload starts share one budget."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from uploads.models import UploadSession

pytestmark = pytest.mark.django_db

TUS = {"HTTP_TUS_RESUMABLE": "1.0.0", "HTTP_UPLOAD_LENGTH": "10", "HTTP_UPLOAD_METADATA": "filename bGVjdHVyZS5tcDQ="}
DIRECT = {"filename": "lecture.mp4", "file_size": 10, "content_type": "video/mp4"}


@pytest.fixture(autouse=True)
def room_for_uploads(settings):
    """The concurrency limit is not what these tests are about."""
    settings.MAX_CONCURRENT_UPLOADS = 100


def test_tus_creations_beyond_the_rate_get_429_with_retry_after(settings, api_client):
    settings.UPLOAD_CREATE_RATE = "3/min"
    answers = [api_client.post("/api/v1/uploads/", **TUS) for _ in range(5)]

    assert [a.status_code for a in answers] == [201, 201, 201, 429, 429]
    refused = answers[-1]
    assert 0 < int(refused["Retry-After"]) <= 60
    assert refused["Tus-Resumable"] == "1.0.0"
    assert refused.json()["code"] == "throttled" and "second" in refused.json()["detail"]
    assert UploadSession.objects.count() == 3


def test_only_creation_counts_not_listing_or_discovery(settings, api_client):
    settings.UPLOAD_CREATE_RATE = "1/min"
    for _ in range(5):
        assert api_client.get("/api/v1/uploads/").status_code == 200
        assert api_client.options("/api/v1/uploads/").status_code == 204
    assert api_client.post("/api/v1/uploads/", **TUS).status_code == 201
    assert api_client.post("/api/v1/uploads/", **TUS).status_code == 429


def test_direct_upload_starts_share_the_budget(settings, api_client):
    """With local storage a direct upload is refused (400) after the throttle counted it."""
    settings.UPLOAD_CREATE_RATE = "3/min"
    assert api_client.post("/api/v1/uploads/", **TUS).status_code == 201
    assert api_client.post("/api/v1/uploads/", **TUS).status_code == 201
    assert api_client.post("/api/v1/direct-uploads/", DIRECT, format="json").status_code == 400
    refused = api_client.post("/api/v1/direct-uploads/", DIRECT, format="json")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert api_client.post("/api/v1/uploads/", **TUS).status_code == 429


def test_each_user_has_a_budget_of_their_own(settings, api_client, other_user):
    settings.UPLOAD_CREATE_RATE = "1/min"
    assert api_client.post("/api/v1/uploads/", **TUS).status_code == 201
    assert api_client.post("/api/v1/uploads/", **TUS).status_code == 429
    other = APIClient()
    other.force_authenticate(other_user)
    assert other.post("/api/v1/uploads/", **TUS).status_code == 201
