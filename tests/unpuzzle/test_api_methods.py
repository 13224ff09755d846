"""What the API answers to URLs it does not serve and methods a URL does not take: JSON errors with
the status that says so (found by schemathesis; each failed before the fix as noted)."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}


def test_an_api_url_nothing_serves_is_a_json_404(api_client):
    # Was Django's HTML "Not Found" page, which API clients cannot parse.
    response = api_client.get("/api/v1/videos/0.5/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "nothing is served at /api/v1/videos/0.5/", "code": "not_found"}


def test_pages_outside_the_api_keep_the_html_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_method_override_other_than_patch_or_delete_is_refused(api_client):
    # Was 200 with the list of uploads: "X-HTTP-Method-Override: HEAD" turned the POST into a GET.
    response = api_client.post("/api/v1/uploads/", HTTP_X_HTTP_METHOD_OVERRIDE="HEAD", **TUS)
    assert response.status_code == 400
    assert "send PATCH or DELETE" in response.json()["detail"]


def test_a_method_override_on_other_methods_than_post_is_ignored(api_client):
    response = api_client.get("/api/v1/uploads/", HTTP_X_HTTP_METHOD_OVERRIDE="DELETE")
    assert response.status_code == 200


def test_a_method_an_upload_url_does_not_serve_is_405_before_any_tus_check(api_client):
    # Was 412 (no Tus-Resumable) for a POST to an upload's URL, which takes no POST at all.
    response = api_client.post(f"/api/v1/uploads/{uuid.uuid4()}/")
    assert response.status_code == 405


def test_direct_upload_urls_answer_405_to_other_methods_on_local_storage(api_client):
    # Was 400 "direct-to-bucket uploads need S3-compatible storage" for any method, TRACE included.
    response = api_client.generic("TRACE", "/api/v1/direct-uploads/")
    assert response.status_code == 405
    assert api_client.post("/api/v1/direct-uploads/", {}, format="json").status_code == 400


def test_anonymous_api_calls_still_get_401_with_the_token_challenge():
    response = APIClient().get("/api/v1/videos/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_a_patch_answer_has_every_field_of_the_video(api_client, user):
    # Found by schemathesis: a PATCH answer left out duplicate_of_title (DRF skips defaults on partial updates).
    from tests.factories import make_video

    video = make_video(owner=user)
    full = api_client.get(f"/api/v1/videos/{video.id}/").json()
    patched = api_client.patch(f"/api/v1/videos/{video.id}/", {"title": "Renamed"}, format="json").json()
    assert set(patched) == set(full)
    assert patched["duplicate_of"] is None and patched["duplicate_of_title"] is None
