"""Admission: what a new upload must pass (size, format, concurrent uploads) before anything is stored."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

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
