"""Finalization: a complete upload becomes MediaFile + Video, or fails with a reason people understand."""

from __future__ import annotations

import hashlib
import io
import os
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from django.utils import timezone

from media_library.models import MediaFile, Video
from tests.clips import make_clip
from tests.conftest import S3_KEY_ID, S3_REGION, S3_SECRET, use_s3_storage
from transcoding.models import CostLogEntry, TranscodeJob
from transcoding.services import media_files as finalize_storage
from unpuzzle import storage
from unpuzzle.storage import object_exists, open_local_copy
from uploads.models import UploadSession
from uploads.services.finalize import upload_session_finalize, upload_sessions_retry_finalization
from uploads.services.tus import upload_session_append, upload_session_create

pytestmark = pytest.mark.django_db(transaction=True)


def complete_upload(owner, data: bytes, *, filename: str = "lecture.mp4", **metadata: str) -> UploadSession:
    """An upload whose bytes all arrived, through the same services the tus views call."""
    session = upload_session_create(owner=owner, length=len(data), metadata={"filename": filename, **metadata})
    session = upload_session_append(session=session, offset=0, stream=io.BytesIO(data), content_length=len(data))
    assert session.status == UploadSession.Status.COMPLETE
    return session


def test_valid_clip_becomes_media_file_and_queued_video(user, small_clip):
    data = small_clip.read_bytes()
    session = complete_upload(user, data, filename="Woche 3 – Übung.MP4", title="Week 3 exercise")
    session = upload_session_finalize(session_id=session.id)
    assert session.status == UploadSession.Status.FINALIZED and session.error == ""
    media_file = session.media_file
    assert media_file.owner == user
    assert media_file.size == len(data)
    assert media_file.sha256 == hashlib.sha256(data).hexdigest()
    assert media_file.duration == pytest.approx(1.0, abs=0.1)
    assert (media_file.width, media_file.height) == (160, 120)
    assert media_file.video_codec == "h264" and media_file.audio_codec == "aac" and media_file.has_audio
    assert media_file.mime_type == "video/mp4"
    assert media_file.storage_key == f"originals/{media_file.id}/woche-3-übung.mp4"
    with open_local_copy(media_file.storage_key) as stored:
        assert stored.read_bytes() == data
    video = Video.objects.get(pk=session.video_id)
    assert video.title == "Week 3 exercise" and video.media_file == media_file
    assert video.duration == pytest.approx(1.0, abs=0.1)
    assert video.status == Video.Status.QUEUED  # transcoding was enqueued
    assert not os.path.exists(session.temp_path)


def test_title_defaults_to_the_file_name(user, small_clip):
    session = upload_session_finalize(
        session_id=complete_upload(user, small_clip.read_bytes(), filename="Intro talk.mp4").id
    )
    assert session.video.title == "Intro talk"


def test_finalize_is_idempotent(user, small_clip):
    session = complete_upload(user, small_clip.read_bytes())
    upload_session_finalize(session_id=session.id)
    again = upload_session_finalize(session_id=session.id)
    assert again.status == UploadSession.Status.FINALIZED
    assert MediaFile.objects.count() == 1 and Video.objects.count() == 1


@pytest.mark.slow
@pytest.mark.parametrize("faststart", [False, True], ids=["index-at-end", "index-at-front"])
def test_truncated_file_fails_with_reason(user, tmp_path, faststart):
    data = make_clip(tmp_path / "full.mp4", width=160, height=120, duration=2, fps=25, faststart=faststart).read_bytes()
    session = complete_upload(user, data[: len(data) // 2])
    session = upload_session_finalize(session_id=session.id)
    assert session.status == UploadSession.Status.FAILED
    assert "truncated" in session.error.lower() or "moov atom not found" in session.error
    assert MediaFile.objects.count() == 0 and not os.path.exists(session.temp_path)


@pytest.mark.slow
def test_non_video_renamed_mp4_fails_with_reason(user):
    session = complete_upload(user, b"%PDF-1.4 this is a document, not a lecture\n" * 200, filename="slides.mp4")
    session = upload_session_finalize(session_id=session.id)
    assert session.status == UploadSession.Status.FAILED
    assert session.error_detail.startswith("not a playable video:")
    assert len(session.error_detail) > len("not a playable video: ")
    assert MediaFile.objects.count() == 0


def test_container_not_in_allowed_formats_fails(user, small_clip, settings):
    settings.ALLOWED_VIDEO_FORMATS = ["webm", "mp4"]
    session = complete_upload(user, small_clip.read_bytes(), filename="lecture.mp4")
    settings.ALLOWED_VIDEO_FORMATS = ["webm"]
    session = upload_session_finalize(session_id=session.id)
    assert session.status == UploadSession.Status.FAILED
    assert "not accepted" in session.error and "webm" in session.error


def test_the_retry_works_off_a_backlog_over_several_runs(user, small_clip, other_user):
    data = small_clip.read_bytes()
    older = complete_upload(user, data, filename="older.mp4")
    newer = complete_upload(other_user, data, filename="newer.mp4")
    later = timezone.now() + timedelta(minutes=3)
    # a spent time budget still finalizes one upload per run, the oldest first
    assert upload_sessions_retry_finalization(now=later, time_budget_s=0) == 1
    older.refresh_from_db()
    newer.refresh_from_db()
    assert (older.status, newer.status) == (UploadSession.Status.FINALIZED, UploadSession.Status.COMPLETE)
    assert upload_sessions_retry_finalization(now=later, time_budget_s=0) == 1
    newer.refresh_from_db()
    assert newer.status == UploadSession.Status.FINALIZED


def test_same_file_twice_is_stored_once(user, other_user, small_clip):
    data = small_clip.read_bytes()
    first = upload_session_finalize(session_id=complete_upload(user, data, filename="a.mp4").id)
    second = upload_session_finalize(session_id=complete_upload(user, data, filename="b.mp4").id)
    assert second.status == UploadSession.Status.FINALIZED
    assert second.media_file_id == first.media_file_id
    # A video of its own, waiting for the first one's transcode instead of a second one.
    assert second.video_id != first.video_id and second.video.duplicate_of_id == first.video_id
    assert second.video.title == "b" and TranscodeJob.objects.count() == 1
    assert MediaFile.objects.filter(owner=user).count() == 1 and Video.objects.count() == 2
    # Another instructor's identical file is theirs alone.
    theirs = upload_session_finalize(session_id=complete_upload(other_user, data).id)
    assert theirs.media_file_id != first.media_file_id and MediaFile.objects.count() == 2


def test_storage_outage_keeps_the_upload_and_the_retry_finalizes_it(
    user, small_clip, s3_storage, s3_server, s3_bucket, settings
):
    data = small_clip.read_bytes()
    session = complete_upload(user, data)
    working = settings.STORAGES["default"]
    use_s3_storage(settings, endpoint=s3_server, bucket_name="bucket-that-does-not-exist")
    session = upload_session_finalize(session_id=session.id)
    assert session.status == UploadSession.Status.COMPLETE
    assert "will be retried" in session.error_detail
    assert Path(session.temp_path).read_bytes() == data  # nothing accepted is lost
    assert MediaFile.objects.count() == 0

    settings.STORAGES = {**settings.STORAGES, "default": working}
    assert upload_sessions_retry_finalization(now=timezone.now() + timedelta(minutes=3)) == 1
    session.refresh_from_db()
    assert session.status == UploadSession.Status.FINALIZED and session.error == ""
    key = session.media_file.storage_key
    assert object_exists(key)
    body = boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name=S3_REGION,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
    ).get_object(Bucket=s3_bucket, Key=key)
    assert body["Body"].read() == data
    assert body["ContentType"] == "video/mp4"


class _WorkerKilled(BaseException):
    """Stands for SIGKILL: no ``except Exception`` and no clean-up of the service runs."""


def test_a_finalization_killed_mid_copy_is_retried_into_the_same_original_key(user, small_clip, monkeypatch):
    data = small_clip.read_bytes()
    session = complete_upload(user, data)
    real_save_file = finalize_storage.save_file

    def killed_half_way(key, path, **kwargs):
        with open(path, "rb") as src:
            storage.save_stream(key, io.BytesIO(src.read(len(data) // 2)))
        raise _WorkerKilled

    monkeypatch.setattr(finalize_storage, "save_file", killed_half_way)
    with pytest.raises(_WorkerKilled):
        upload_session_finalize(session_id=session.id)
    monkeypatch.setattr(finalize_storage, "save_file", real_save_file)

    session = upload_session_finalize(session_id=session.id)
    assert session.status == UploadSession.Status.FINALIZED, session.error
    stored = list(storage.iter_objects("originals/"))
    assert stored == [(session.media_file.storage_key, len(data))]
    assert session.media_file.storage_key.startswith(f"originals/{session.media_file_id}/")


def assert_refused_before_queueing(session: UploadSession) -> None:
    """Failed at finalization: nothing stored, no video, no job, nothing charged."""
    assert session.status == UploadSession.Status.FAILED
    assert MediaFile.objects.count() == 0 and Video.objects.count() == 0
    assert not TranscodeJob.objects.exists() and not CostLogEntry.objects.exists()
    assert list(storage.iter_objects("originals/")) == []
    assert not os.path.exists(session.temp_path)


def test_timestamp_bomb_is_refused_with_the_reason(user, timestamp_bomb_clip):
    data = timestamp_bomb_clip.read_bytes()
    session = upload_session_finalize(session_id=complete_upload(user, data, filename="b.mkv").id)
    assert_refused_before_queueing(session)
    assert session.error_detail.startswith("not a playable video: the file's timestamps are broken:"), (
        session.error_detail
    )
    assert "10 h 0 min" in session.error_detail and f"{len(data):,} bytes" in session.error_detail
    assert "re-export" in session.error_detail.lower()


def test_huge_declared_picture_is_refused_with_the_reason(user, huge_sps_clip):
    session = upload_session_finalize(session_id=complete_upload(user, huge_sps_clip.read_bytes()).id)
    assert_refused_before_queueing(session)
    assert session.error_detail.startswith("video not accepted: the picture is 8192x8192"), session.error_detail
    assert "MAX_SOURCE_PIXELS" in session.error_detail and "4K" in session.error_detail


def test_a_stream_that_cannot_be_decoded_is_refused_with_the_reason(user, lying_sps_clip):
    session = upload_session_finalize(session_id=complete_upload(user, lying_sps_clip.read_bytes()).id)
    assert_refused_before_queueing(session)
    assert session.error_detail.startswith("not a playable video: the video stream is damaged"), session.error_detail
    assert "re-export" in session.error_detail.lower()


def test_a_video_over_the_cost_ceiling_is_refused_at_upload(user, small_clip, settings):
    settings.TRANSCODE_MAX_VIDEO_USD = "0.00001"
    session = upload_session_finalize(session_id=complete_upload(user, small_clip.read_bytes()).id)
    assert_refused_before_queueing(session)
    assert session.error_detail.startswith("video not accepted: transcoding it would cost about $"), (
        session.error_detail
    )
    assert "TRANSCODE_MAX_VIDEO_USD" in session.error_detail
