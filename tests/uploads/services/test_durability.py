"""The recorded offset never runs ahead of the bytes on disk: after a crash that lost acknowledged
bytes (simulated by cutting the part file short), a PATCH or the finalizer says so and the upload
resumes from what is really stored; nothing is zero-filled or finalized with the wrong bytes."""

from __future__ import annotations

import hashlib
import os

import pytest

from media_library.models import MediaFile
from tests.uploads.conftest import create_upload
from uploads.models import UploadSession
from uploads.services.finalize import upload_session_finalize

pytestmark = pytest.mark.django_db(transaction=True)


def _session(url: str) -> UploadSession:
    return UploadSession.objects.get(pk=url.rstrip("/").rsplit("/", 1)[-1])


def test_a_part_file_shorter_than_the_recorded_offset_is_refused_with_the_true_offset(tus_http, small_clip):
    data = small_clip.read_bytes()
    half = len(data) // 2
    url = create_upload(tus_http, len(data), filename="lecture.mp4")
    assert tus_http.patch(url, data[:half], offset=0).headers["Upload-Offset"] == str(half)
    # Power loss: the last acknowledged bytes never reached the disk.
    durable = half - 1000
    os.truncate(_session(url).temp_path, durable)

    resumed = tus_http.patch(url, data[half:], offset=half)
    assert resumed.status_code == 409, resumed.text
    assert resumed.json()["detail"] == (
        f"the upload server lost bytes of this upload after a crash: it holds {durable} bytes, not the "
        f"{half} acknowledged; HEAD the upload and resume from Upload-Offset {durable}"
    )
    assert tus_http.head(url).headers["Upload-Offset"] == str(durable)
    assert os.path.getsize(_session(url).temp_path) == durable

    done = tus_http.patch(url, data[durable:], offset=durable)
    assert done.status_code == 204 and done.headers["Upload-Offset"] == str(len(data))
    session = upload_session_finalize(session_id=_session(url).id)
    assert session.status == UploadSession.Status.FINALIZED, session.error
    assert session.media_file.sha256 == hashlib.sha256(data).hexdigest()


def test_the_finalizer_refuses_a_complete_upload_whose_part_file_lost_bytes(tus_http, small_clip):
    data = small_clip.read_bytes()
    url = create_upload(tus_http, len(data), filename="lecture.mp4")
    assert tus_http.patch(url, data, offset=0).status_code == 204
    os.truncate(_session(url).temp_path, len(data) - 4096)

    session = upload_session_finalize(session_id=_session(url).id)
    assert session.status == UploadSession.Status.FAILED
    assert session.error_detail == f"stored {len(data) - 4096} bytes but the upload declared {len(data)}"
    assert MediaFile.objects.count() == 0
