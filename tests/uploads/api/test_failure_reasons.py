"""What owners read when an upload or a transcode fails: plain reasons with a code and whether
Retry helps, through the API and the admin; the raw ffprobe/ffmpeg text stays for staff."""

from __future__ import annotations

import os

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from media_library.models import Video
from tests.factories import make_instructor, make_stored_video, make_superuser
from tests.unpuzzle.test_failures import TECHNICAL
from tests.uploads.services.test_finalize import complete_upload
from transcoding.models import TranscodeJob
from transcoding.services.pipeline import transcode_run
from unpuzzle.groups import INSTRUCTORS
from uploads.models import UploadSession
from uploads.services.finalize import upload_session_finalize

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# x264 refuses this preset: ffmpeg probes the original fine, then exits with an error.
BROKEN_PRESET = "no-such-preset"


@pytest.fixture
def instructor(transactional_db):
    """An instructor with the admin (the Instructors group, as ``setup_groups`` makes it)."""
    call_command("setup_groups", verbosity=0)
    person = make_instructor()
    person.groups.add(Group.objects.get(name=INSTRUCTORS))
    return person


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_file_that_is_not_a_video_reads_as_a_plain_reason_and_staff_keep_ffprobes_words(user, not_video_clip):
    session = upload_session_finalize(session_id=complete_upload(user, not_video_clip.read_bytes()).id)
    body = _api(user).get(f"/api/v1/uploads/{session.id}").json()
    assert body["status"] == "failed"
    assert body["error"] == (
        "We could not read this file as a video. Re-export it as MP4 (H.264 video, AAC audio) and upload it again."
    )
    assert body["error_code"] == "not_video" and body["retryable"] is False
    assert not TECHNICAL.search(str(body))
    session.refresh_from_db()
    assert session.error_detail.startswith("not a playable video: not a video file")


def test_a_truncated_clip_says_upload_it_again_from_the_original(user, truncated_faststart_clip):
    session = upload_session_finalize(session_id=complete_upload(user, truncated_faststart_clip.read_bytes()).id)
    body = _api(user).get(f"/api/v1/uploads/{session.id}").json()
    assert body["error"] == "The file is incomplete (truncated): upload it again from the original."
    assert body["error_code"] == "truncated" and body["retryable"] is False
    session.refresh_from_db()
    assert "truncated" in session.error_detail


def test_bytes_lost_on_the_server_can_be_retried(user, no_audio_clip):
    session = complete_upload(user, no_audio_clip.read_bytes())
    os.remove(session.temp_path)  # the upload server lost its part file before finalization
    upload_session_finalize(session_id=session.id)
    body = _api(user).get(f"/api/v1/uploads/{session.id}").json()
    assert body["error"] == "The uploaded file was lost on our side. Retry to upload it again."
    assert body["error_code"] == "bytes_missing" and body["retryable"] is True


def test_a_failed_transcode_reads_plainly_and_the_owners_retry_requeues_it(user, no_audio_clip, settings):
    settings.HLS_LADDER = "120p:200k"
    settings.HLS_SEGMENT_SECONDS = 2
    good_preset = settings.HLS_X264_PRESET
    settings.HLS_X264_PRESET = BROKEN_PRESET
    video = make_stored_video(user, no_audio_clip)
    client = _api(user)
    job_id = client.post(f"/api/v1/videos/{video.id}/retranscode/").json()["job_id"]
    transcode_run(job_id=job_id)

    body = client.get(f"/api/v1/videos/{video.id}/").json()
    assert body["status"] == "failed"
    assert body["status_reason"] == "Processing failed on our side. Retry; if it fails again, contact staff."
    assert body["status_code"] == "encode_failed" and body["retryable"] is True
    assert not TECHNICAL.search(str(body))
    job = TranscodeJob.objects.get(pk=job_id)
    assert job.error.startswith("ffmpeg could not decode or encode the original: ffmpeg exited with code")
    assert job.error_code == "encode_failed" and job.log_tail

    settings.HLS_X264_PRESET = good_preset
    retry = client.post(f"/api/v1/videos/{video.id}/retranscode/")
    assert retry.status_code == 202 and retry.json()["video_status"] == "queued"
    assert retry.json()["status_reason"] == ""
    transcode_run(job_id=retry.json()["job_id"])
    body = client.get(f"/api/v1/videos/{video.id}/").json()
    assert body["status"] == "ready" and body["status_code"] == "" and body["retryable"] is False


def test_the_job_admin_shows_owners_the_plain_reason_and_staff_the_raw_error(instructor, no_audio_clip, settings):
    user = instructor
    settings.HLS_LADDER = "120p:200k"
    settings.HLS_X264_PRESET = BROKEN_PRESET
    video = make_stored_video(user, no_audio_clip)
    job_id = _api(user).post(f"/api/v1/videos/{video.id}/retranscode/").json()["job_id"]
    transcode_run(job_id=job_id)
    assert Video.objects.get(pk=video.pk).status == Video.Status.FAILED

    owner, staff = Client(), Client()
    owner.force_login(user)
    staff.force_login(make_superuser())
    for url in (f"/admin/transcoding/transcodejob/{job_id}/change/", f"/admin/media_library/video/{video.id}/change/"):
        seen_by_owner = owner.get(url).content.decode()
        assert "Processing failed on our side" in seen_by_owner, url
        assert "ffmpeg exited with code" not in seen_by_owner and BROKEN_PRESET not in seen_by_owner, url
        assert "ffmpeg could not decode or encode the original" in staff.get(url).content.decode(), url


def test_an_uploads_raw_cause_is_for_staff_in_the_admin(instructor, not_video_clip):
    user = instructor
    session = upload_session_finalize(session_id=complete_upload(user, not_video_clip.read_bytes()).id)
    assert session.status == UploadSession.Status.FAILED
    owner, staff = Client(), Client()
    owner.force_login(user)
    staff.force_login(make_superuser())
    url = f"/admin/uploads/uploadsession/{session.id}/change/"
    seen_by_owner = owner.get(url).content.decode()
    assert "We could not read this file as a video" in seen_by_owner
    assert "not a playable video" not in seen_by_owner
    assert "not a playable video: not a video file" in staff.get(url).content.decode()
