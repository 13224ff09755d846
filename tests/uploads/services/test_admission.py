"""Admission: what a new upload must pass (size, format, concurrent uploads) before anything is stored."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.uploads.conftest import create_upload, metadata_header
from uploads.models import UploadSession

pytestmark = pytest.mark.django_db(transaction=True)


def test_size_limit_413_at_creation_and_past_declared_length(tus_http, settings):
    settings.MAX_VIDEO_SIZE_MB = 1
    assert tus_http.create(1024 * 1024 + 1).status_code == 413
    url = create_upload(tus_http, 4)
    response = tus_http.patch(url, b"hello", offset=0)
    assert response.status_code == 413 and "send at most 4 bytes" in response.json()["detail"]
    assert tus_http.head(url).headers["Upload-Offset"] == "0"
    deferred = tus_http.create(headers={"Upload-Defer-Length": "1"}).headers["Location"]
    assert tus_http.patch(deferred, b"x", offset=0, headers={"Upload-Length": str(2 * 1024 * 1024)}).status_code == 413


@pytest.mark.parametrize(
    ("filename", "filetype"),
    [("setup.exe", "application/x-msdownload"), ("notes.pdf", ""), ("lecture.mp4", "application/pdf"), ("noext", "")],
)
def test_formats_not_allowed_at_creation_are_415(tus_http, filename, filetype):
    meta = {"filename": filename, **({"filetype": filetype} if filetype else {})}
    response = tus_http.create(10, headers={"Upload-Metadata": metadata_header(**meta)})
    assert response.status_code == 415
    assert "mp4" in response.json()["detail"]


def test_concurrent_upload_limit_is_429(tus_http, settings):
    settings.MAX_CONCURRENT_UPLOADS = 2
    create_upload(tus_http, 10)
    second = create_upload(tus_http, 10)
    response = tus_http.create(10)
    assert response.status_code == 429 and "limit" in response.json()["detail"]
    tus_http.http.delete(second, timeout=10)
    assert tus_http.create(10).status_code == 201


def test_the_concurrent_upload_limit_holds_under_parallel_creates(tus_http, settings):
    settings.MAX_CONCURRENT_UPLOADS = 5
    start = threading.Barrier(30)

    def create(_: int) -> int:
        start.wait()
        return tus_http.create(10).status_code

    with ThreadPoolExecutor(30) as pool:
        statuses = sorted(pool.map(create, range(30)))
    assert statuses == [201] * 5 + [429] * 25
    assert UploadSession.objects.filter(status__in=UploadSession.ACTIVE_STATUSES).count() == 5


def _partial(tus_http, data: bytes) -> requests.Response:
    response = tus_http.create(len(data), headers={"Upload-Concat": "partial"}, filename="")
    if response.status_code == 201:
        assert tus_http.patch(response.headers["Location"], data, offset=0).status_code == 204
    return response


def test_completed_partial_uploads_still_count_until_concatenated(tus_http, settings):
    settings.MAX_CONCURRENT_UPLOADS = 1  # 8 partial uploads
    statuses = [_partial(tus_http, b"x" * 10).status_code for _ in range(9)]
    assert statuses == [201] * 8 + [429]
    refused = _partial(tus_http, b"x")
    assert "8 partial uploads not concatenated yet" in refused.json()["detail"]


def test_part_files_of_one_user_are_capped(tus_http, other_tus_http, settings):
    settings.UPLOAD_TEMP_MAX_PER_USER_MB = 1
    half = 512 * 1024
    assert _partial(tus_http, b"a" * half).status_code == 201
    assert create_upload(tus_http, half)
    refused = tus_http.create(1, headers={"Upload-Concat": "partial"}, filename="")
    assert refused.status_code == 413
    assert f"already hold {2 * half} bytes" in refused.json()["detail"]
    assert "UPLOAD_TEMP_MAX_PER_USER_MB" in refused.json()["detail"]
    assert tus_http.create(1).status_code == 413
    assert other_tus_http.create(half).status_code == 201, "another user has their own share"


def test_partial_uploads_count_against_the_monthly_quota_once(tus_http, settings):
    settings.USER_MONTHLY_UPLOAD_GB = "0.000002"  # 2,000 bytes
    parts = [_partial(tus_http, b"p" * 900).headers["Location"] for _ in range(2)]
    refused = tus_http.create(300, headers={"Upload-Concat": "partial"}, filename="")
    assert refused.status_code == 413 and refused.json()["code"] == "upload_quota_exceeded"
    # Concatenating them does not count their bytes twice.
    final = tus_http.create(
        headers={"Upload-Concat": "final;" + " ".join(parts), "Upload-Metadata": metadata_header(filename="a.mp4")}
    )
    assert final.status_code == 201, final.text


def test_every_upload_door_needs_the_upload_permission(live_server, s3_storage, small_clip, tmp_path):
    from rest_framework.authtoken.models import Token

    from tests.factories import make_user
    from tests.uploads.conftest import TusHTTP
    from unpuzzle.exceptions import PermissionDenied
    from uploads.services.direct import direct_upload_create
    from uploads.services.finalize import upload_session_ingest

    reader = make_user(can_upload=False)
    tus = TusHTTP(live_server.url, Token.objects.create(user=reader).key)
    for headers in ({}, {"Upload-Concat": "partial"}):
        refused = tus.create(10, headers=headers)
        assert refused.status_code == 403, refused.text
        assert (
            "may not upload videos" in refused.json()["detail"]
            and "uploads.add_uploadsession" in refused.json()["detail"]
        )
    with pytest.raises(PermissionDenied):
        direct_upload_create(owner=reader, filename="a.mp4", file_size=100)
    with pytest.raises(PermissionDenied):
        upload_session_ingest(owner=reader, path=small_clip)
    assert not UploadSession.objects.exists()
