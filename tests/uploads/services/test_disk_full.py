"""A full disk on the upload server, on a real (small) tmpfs: the bytes that fit are kept and
acknowledged, the client is told 507 instead of "resume" (which tus clients retry forever),
/healthz says so, and uploads that cannot fit are refused at creation."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import mounted_tmpfs
from tests.uploads.conftest import create_upload
from uploads.models import UploadSession

pytestmark = pytest.mark.django_db(transaction=True)

MiB = 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path, settings) -> Iterator[Path]:
    """UPLOAD_TEMP_DIR on a 4 MiB tmpfs of its own (mounting needs root, as in CI and here)."""
    with mounted_tmpfs(tmp_path / "disk", size="4m") as mount:
        settings.UPLOAD_TEMP_DIR = mount / "uploads"
        settings.DISK_MIN_FREE_MB = 1
        yield mount


def _session(url: str) -> UploadSession:
    return UploadSession.objects.get(pk=url.rstrip("/").rsplit("/", 1)[-1])


def _fill(disk: Path, *, leave: int) -> Path:
    """Another writer takes the disk's space but ``leave`` bytes."""
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(filler, "wb") as fh:
        fh.write(b"\0" * (free - leave))
    return filler


def test_a_disk_that_fills_up_mid_patch_keeps_what_fit_and_answers_507(
    tus_http, small_disk, live_server, monitor_headers
):
    data = os.urandom(2 * MiB)
    url = create_upload(tus_http, len(data))
    filler = _fill(small_disk, leave=512 * 1024)

    response = tus_http.patch(url, data, offset=0)
    assert response.status_code == 507, response.text
    stored = _session(url).offset
    assert 0 < stored < len(data)
    assert response.json() == {
        "detail": f"the upload server ran out of disk space: {stored} bytes of this upload are stored; "
        f"resume from Upload-Offset {stored} later",
        "code": "insufficient_storage",
    }
    assert tus_http.head(url).headers["Upload-Offset"] == str(stored)
    assert Path(_session(url).temp_path).read_bytes() == data[:stored]

    health = tus_http.http.get(f"{live_server.url}/healthz", headers=monitor_headers, timeout=15)
    assert health.status_code == 503
    disk = health.json()["checks"]["disk"]
    assert disk["ok"] is False and "less than 1 MiB free (DISK_MIN_FREE_MB) for uploads" in disk["error"]

    filler.unlink()
    done = tus_http.patch(url, data[stored:], offset=stored)
    assert done.status_code == 204 and done.headers["Upload-Offset"] == str(len(data))
    assert Path(_session(url).temp_path).read_bytes() == data


def test_an_upload_that_cannot_fit_is_refused_at_creation(tus_http, small_disk):
    response = tus_http.create(8 * MiB)
    assert response.status_code == 507
    detail = response.json()["detail"]
    assert detail.startswith(f"the upload server has no room for {8 * MiB} more bytes now (")
    assert detail.endswith("MiB free, 1 MiB kept in reserve); try again later")
    assert UploadSession.objects.count() == 0
