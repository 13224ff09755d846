"""The transcode job end to end: real ffmpeg on tiny clips, local storage and S3."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import requests
from django.utils import timezone
from django_q.models import OrmQ

from media_library.models import PreviousHlsOutput, Rendition, Video
from media_library.selectors import video_playback
from tests.factories import make_stored_video
from tests.hls_player import follow_playlists
from transcoding.costs.selectors import budget_policy_get
from transcoding.hls.playlists import IFRAME_PLAYLIST_NAME, MEDIA_PLAYLIST_NAME
from transcoding.models import CostLogEntry, TranscodeJob
from transcoding.services import pipeline
from transcoding.services.jobs import transcode_enqueue
from transcoding.services.maintenance import transcode_dispatch_due, transcode_previous_outputs_sweep
from transcoding.services.pipeline import transcode_run
from transcoding.services.videos import video_delete
from unpuzzle import storage
from unpuzzle.failures import failure_for

pytestmark = pytest.mark.django_db(transaction=True)

J = TranscodeJob.Status


@pytest.fixture(autouse=True)
def small_ladder(settings):
    """Two tiny tiers and 2 s segments keep every run to a second or two."""
    settings.HLS_LADDER = "120p:200k,180p:400k"
    settings.HLS_SEGMENT_SECONDS = 2
    settings.HLS_AUDIO_BITRATE = "64k"


def run(video: Video) -> TranscodeJob:
    job = transcode_enqueue(video=video)
    assert job is not None
    transcode_run(job_id=job.id)
    job.refresh_from_db()
    video.refresh_from_db()
    return job


def keys_under(prefix: str) -> set[str]:
    return {key for key, _ in storage.iter_objects(prefix)}


def folders(video: Video) -> set[str]:
    """The HLS attempt folders stored for ``video``."""
    return {key.split("/")[3] for key in keys_under(f"videos/{video.id}/hls/")}


def read_text(key: str) -> str:
    with storage.get_storage().open(key, "rb") as fh:
        return fh.read().decode()


def assert_ready_with(video: Video, job: TranscodeJob, sizes: set[tuple[int, int]], *, audio: bool) -> None:
    assert job.status == J.SUCCEEDED, job.error
    assert video.status == Video.Status.READY, video.status_reason
    assert job.progress == 100 and job.attempts == 1
    prefix = f"videos/{video.id}/hls/1/"
    assert job.output_prefix == prefix
    assert video.hls_master_key == prefix + "master.m3u8"
    assert video.poster_key == prefix + "poster.jpg"
    stored = keys_under(f"videos/{video.id}/")
    assert {video.hls_master_key, video.poster_key} <= stored
    renditions = list(video.renditions.all())
    assert {(r.width, r.height) for r in renditions} == sizes
    master = read_text(video.hls_master_key)
    for rendition in renditions:
        assert rendition.playlist_key in stored
        assert rendition.playlist_key.startswith(prefix)
        assert rendition.bytes > 0 and rendition.segment_count >= 2
        assert rendition.bandwidth >= rendition.average_bandwidth > 0
        assert rendition.codecs.startswith("avc1.") and (",mp4a.40.2" in rendition.codecs) == audio
        assert f"RESOLUTION={rendition.width}x{rendition.height}" in master
        playlist = read_text(rendition.playlist_key)
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in playlist
        segments = [line for line in playlist.splitlines() if line.endswith(".ts")]
        assert len(segments) == rendition.segment_count
        for segment in segments:
            assert f"{prefix}{rendition.name}/{segment}" in stored
    assert job.output_bytes == sum(size for _, size in storage.iter_objects(prefix))
    assert job.wall_seconds > 0 and job.cpu_seconds > 0


def test_landscape_with_audio_becomes_ready(user, landscape_clip):
    video = make_stored_video(user, landscape_clip)
    job = run(video)
    assert_ready_with(video, job, {(320, 180), (214, 120)}, audio=True)
    assert video.max_quality == "180p" and video.duration == pytest.approx(6.0, abs=0.1)
    media = video.media_file
    media.refresh_from_db()
    assert (media.width, media.height, media.has_audio, media.video_codec) == (320, 180, True, "h264")
    line = CostLogEntry.objects.get(job=job, kind="transcode", unit="minute")
    assert float(line.quantity) == pytest.approx(6.0 / 60 * 2, rel=0.02)


@pytest.mark.slow
def test_landscape_on_s3_has_content_types_and_cache_headers(user, landscape_clip, s3_storage):
    video = make_stored_video(user, landscape_clip)
    job = run(video)
    assert_ready_with(video, job, {(320, 180), (214, 120)}, audio=True)
    client = s3_storage.bucket.meta.client
    bucket = s3_storage.bucket_name
    master = client.head_object(Bucket=bucket, Key=video.hls_master_key)
    assert master["ContentType"] == "application/vnd.apple.mpegurl"
    assert "max-age=3600" in master["CacheControl"]
    segment_key = next(key for key in keys_under(f"videos/{video.id}/") if key.endswith(".ts"))
    segment = client.head_object(Bucket=bucket, Key=segment_key)
    assert segment["ContentType"] == "video/mp2t" and "immutable" in segment["CacheControl"]
    assert client.head_object(Bucket=bucket, Key=video.poster_key)["ContentType"] == "image/jpeg"
    # Deleting the video removes every object it stored.
    video_delete(video=video, deleted_by=user)
    assert keys_under(f"videos/{video.id}/") == set()


def test_no_audio_clip(user, no_audio_clip):
    video = make_stored_video(user, no_audio_clip)
    job = run(video)
    assert_ready_with(video, job, {(320, 180), (214, 120)}, audio=False)


def test_portrait_clip_keeps_its_orientation(user, rotated_portrait_clip):
    video = make_stored_video(user, rotated_portrait_clip)
    job = run(video)
    assert_ready_with(video, job, {(180, 320), (120, 214)}, audio=True)


def test_source_below_the_lowest_tier_gets_one_rendition_at_its_size(user, below_ladder_clip, settings):
    settings.HLS_LADDER = "240p:400k,480p:800k"
    video = make_stored_video(user, below_ladder_clip)
    job = run(video)
    assert_ready_with(video, job, {(160, 90)}, audio=True)
    assert video.max_quality == "90p"


def test_progress_is_saved_while_encoding(user, landscape_clip, monkeypatch):
    from transcoding.services import pipeline as services

    monkeypatch.setattr(services, "PROGRESS_SAVE_SECONDS", 0.0)
    seen: list[int] = []
    original_save = services._Reporter.save

    def recording_save(self, percent=None):
        mine = original_save(self, percent)
        seen.append(TranscodeJob.objects.values_list("progress", flat=True).get(pk=self.claim.job_id))
        return mine

    monkeypatch.setattr(services._Reporter, "save", recording_save)
    video = make_stored_video(user, landscape_clip)
    job = run(video)
    assert job.progress == 100
    # Monotonic, with the encode share then the upload milestone, before the final 100.
    assert seen == sorted(seen)
    assert 90 in seen and seen[-1] == 95


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fixture", "words"),
    [("truncated_faststart_clip", "truncated"), ("not_video_clip", "not a video"), ("audio_only_clip", "audio")],
)
def test_unusable_originals_fail_with_a_reason_and_leave_no_objects(user, request, fixture, words):
    video = make_stored_video(user, request.getfixturevalue(fixture))
    job = run(video)
    assert job.status == J.FAILED
    assert video.status == Video.Status.FAILED
    assert words in job.error.lower()
    assert video.status_reason == failure_for(video.status_code).message and video.status_code == job.error_code
    assert job.attempts == 1, "a file that cannot be decoded is not retried"
    assert keys_under(f"videos/{video.id}/") == set()
    assert not video.renditions.exists()
    assert not CostLogEntry.objects.filter(job=job).exists()


def test_running_a_job_twice_is_a_no_op(user, no_audio_clip):
    video = make_stored_video(user, no_audio_clip)
    job = run(video)
    stored = keys_under(f"videos/{video.id}/")
    transcode_run(job_id=job.id)
    job.refresh_from_db()
    assert job.status == J.SUCCEEDED and job.attempts == 1
    assert keys_under(f"videos/{video.id}/") == stored
    assert CostLogEntry.objects.filter(job=job, unit="minute").count() == 1


def test_storage_failure_mid_upload_requeues_then_a_new_attempt_succeeds(user, no_audio_clip, monkeypatch):
    video = make_stored_video(user, no_audio_clip)
    real_save_file = storage.save_file
    calls = {"n": 0}

    def flaky_save_file(key, path, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise ConnectionResetError("connection reset by the object store")
        return real_save_file(key, path, **kwargs)

    monkeypatch.setattr(storage, "save_file", flaky_save_file)
    job = transcode_enqueue(video=video)
    OrmQ.objects.all().delete()
    transcode_run(job_id=job.id)
    job.refresh_from_db()
    video.refresh_from_db()
    assert job.status == J.QUEUED and job.attempts == 1 and job.transient_failures == 1
    assert "connection reset" in job.error
    assert video.status == Video.Status.QUEUED and "tries again on its own in 30 s" in video.status_reason
    assert keys_under(f"videos/{video.id}/") == set(), "the failed attempt's objects are deleted"
    assert job.not_before > timezone.now() + timedelta(seconds=25)
    assert OrmQ.objects.count() == 0, "the reaper dispatches it when its backoff is over"

    monkeypatch.setattr(storage, "save_file", real_save_file)
    transcode_run(job_id=job.id)  # a task of the job run early does nothing
    job.refresh_from_db()
    assert job.status == J.QUEUED and job.attempts == 1
    assert transcode_dispatch_due(now=job.not_before - timedelta(seconds=1)) == {"dispatched": 0, "redispatched": 0}

    TranscodeJob.objects.filter(pk=job.pk).update(not_before=timezone.now())  # the backoff is over
    assert transcode_dispatch_due()["dispatched"] == 1
    assert OrmQ.objects.get().task["args"] == (str(job.id),)
    transcode_run(job_id=job.id)
    job.refresh_from_db()
    video.refresh_from_db()
    assert job.status == J.SUCCEEDED and job.attempts == 2
    assert video.hls_master_key == f"videos/{video.id}/hls/2/master.m3u8"
    assert {key.split("/")[3] for key in keys_under(f"videos/{video.id}/")} == {"2"}


def test_output_upload_keeps_the_heartbeat_and_stops_when_cancelled(user, no_audio_clip, monkeypatch):
    from transcoding.services import pipeline as services

    monkeypatch.setattr(services, "PROGRESS_SAVE_SECONDS", 0.0)
    video = make_stored_video(user, no_audio_clip)
    job = transcode_enqueue(video=video)
    real_save_file = storage.save_file
    beats = []

    def save_file_then_cancel(key, path, **kwargs):
        result = real_save_file(key, path, **kwargs)
        beats.append(TranscodeJob.objects.get(pk=job.id).heartbeat_at)
        if len(beats) == 3:
            TranscodeJob.objects.filter(pk=job.id).update(status=J.CANCELLED)
        return result

    monkeypatch.setattr(storage, "save_file", save_file_then_cancel)
    transcode_run(job_id=job.id)
    job.refresh_from_db()
    assert beats[1] > beats[0], "each stored output file renews the heartbeat"
    assert len(beats) == 3, "the upload stops at the first file after the cancel"
    assert job.status == J.CANCELLED
    assert keys_under(f"videos/{video.id}/") == set(), "the abandoned attempt leaves no objects"


def test_storage_failures_have_their_own_budget_with_a_growing_backoff(user, no_audio_clip, monkeypatch, settings):
    settings.TRANSCODE_MAX_ATTEMPTS = 1  # an outage does not use up the attempts a bad source gets
    settings.TRANSCODE_TRANSIENT_RETRIES = 2
    settings.TRANSCODE_RETRY_BACKOFF_S = 30
    settings.TRANSCODE_RETRY_BACKOFF_MAX_S = 45
    video = make_stored_video(user, no_audio_clip)

    def broken_save_directory(prefix, directory, **kwargs):
        raise ConnectionRefusedError("object store unreachable")

    monkeypatch.setattr(pipeline, "save_directory", broken_save_directory)
    job = transcode_enqueue(video=video)
    waits = []
    for _ in range(3):
        transcode_run(job_id=job.id)
        job.refresh_from_db()
        if job.status == J.QUEUED:
            waits.append(round((job.not_before - timezone.now()).total_seconds()))
            TranscodeJob.objects.filter(pk=job.pk).update(not_before=timezone.now())
    video.refresh_from_db()
    assert waits == [30, 45]  # doubling, capped at TRANSCODE_RETRY_BACKOFF_MAX_S
    assert job.status == J.FAILED and job.attempts == 3 and job.transient_failures == 3
    assert "gave up after 3 attempts ended by storage, network or database errors" in job.error
    assert video.status == Video.Status.FAILED and video.status_code == "server_error" and "unreachable" in job.error


def test_the_owner_reads_the_failure_without_server_paths_and_staff_keep_them(
    user, no_audio_clip, monkeypatch, settings
):
    settings.TRANSCODE_TRANSIENT_RETRIES = 0
    video = make_stored_video(user, no_audio_clip)

    def disk_full(prefix, directory, **kwargs):
        raise OSError(28, "No space left on device", str(directory / "120p" / "seg_000.ts"))

    monkeypatch.setattr(pipeline, "save_directory", disk_full)
    job = run(video)
    assert job.status == J.FAILED and str(settings.TRANSCODE_WORK_DIR) in job.error  # staff see where
    assert video.status_reason == "Processing failed on our side. Retry; if it fails again, contact staff."
    assert str(settings.TRANSCODE_WORK_DIR) not in video.status_reason


def test_retranscode_switches_to_a_new_folder_and_deletes_the_old_one_after_the_grace_period(
    user, no_audio_clip, client, settings
):
    settings.CDN_URL = ""
    settings.HLS_PREVIOUS_OUTPUT_GRACE_S = 3600
    video = make_stored_video(user, no_audio_clip)
    run(video)
    first_renditions = set(Rendition.objects.filter(video=video).values_list("id", flat=True))
    old_grant = video_playback(video=video, user=user)  # what a learner's player holds
    job = run(video)
    assert job.status == J.SUCCEEDED
    assert video.hls_master_key == f"videos/{video.id}/hls/2/master.m3u8"
    assert not Rendition.objects.filter(id__in=first_renditions).exists()
    assert CostLogEntry.objects.filter(kind="transcode", unit="minute").count() == 2

    # Right after the switch the old folder is still stored and the old playlists play to the end.
    assert folders(video) == {"1", "2"}
    fetched = follow_playlists(client, old_grant.hls_url)
    old_segments = {key.split("/hls/1/")[1] for key in keys_under(f"videos/{video.id}/hls/1/") if key.endswith(".ts")}
    assert {url.split("/", 7)[7] for url in fetched if url.endswith(".ts")} == old_segments
    previous = PreviousHlsOutput.objects.get(video=video)
    assert previous.master_key == f"videos/{video.id}/hls/1/master.m3u8"

    grace_end = previous.superseded_at + timedelta(seconds=3600)
    assert transcode_previous_outputs_sweep(now=grace_end - timedelta(seconds=1)) == 0
    assert folders(video) == {"1", "2"}
    assert transcode_previous_outputs_sweep(now=grace_end) == 1
    assert folders(video) == {"2"}
    assert not PreviousHlsOutput.objects.exists()
    assert client.get(old_grant.hls_url).status_code == 404
    follow_playlists(client, video_playback(video=video, user=user).hls_url)


def test_grace_zero_deletes_the_replaced_folder_at_once(user, no_audio_clip, settings):
    settings.HLS_PREVIOUS_OUTPUT_GRACE_S = 0
    video = make_stored_video(user, no_audio_clip)
    run(video)
    run(video)
    assert video.hls_master_key == f"videos/{video.id}/hls/2/master.m3u8"
    assert folders(video) == {"2"}
    assert not PreviousHlsOutput.objects.exists()


def test_each_replaced_folder_has_its_own_grace_and_the_current_one_is_never_deleted(user, no_audio_clip, settings):
    from transcoding.tasks import transcode_reap_stale as reaper_task

    settings.HLS_PREVIOUS_OUTPUT_GRACE_S = 3600
    video = make_stored_video(user, no_audio_clip)
    for _ in range(3):
        run(video)
    assert folders(video) == {"1", "2", "3"}
    previous = {row.prefix: row for row in PreviousHlsOutput.objects.filter(video=video)}
    root = f"videos/{video.id}/hls/"
    assert set(previous) == {f"{root}1/", f"{root}2/"}

    # Only the first replaced folder's grace is over; the reaper schedule's task sweeps it.
    PreviousHlsOutput.objects.filter(pk=previous[f"{root}1/"].pk).update(
        superseded_at=timezone.now() - timedelta(hours=2)
    )
    assert reaper_task() == {
        "requeued": 0,
        "failed": 0,
        "chunks_requeued": 0,
        "chunks_failed": 0,
        "dispatched": 0,
        "redispatched": 0,
        "chunks_dispatched": 0,
        "previous_outputs_deleted": 1,
    }
    assert folders(video) == {"2", "3"}

    # A row naming the current folder (the pipeline never writes one) does not delete it.
    PreviousHlsOutput.objects.create(
        video=video, master_key=video.hls_master_key, superseded_at=timezone.now() - timedelta(days=1)
    )
    assert transcode_previous_outputs_sweep(now=timezone.now() + timedelta(hours=2)) == 1
    assert folders(video) == {"3"}
    assert not PreviousHlsOutput.objects.exists()
    assert storage.object_exists(video.hls_master_key)


def test_a_failed_retranscode_deletes_its_own_folder_at_once_and_keeps_the_others(
    user, no_audio_clip, monkeypatch, settings
):
    settings.HLS_PREVIOUS_OUTPUT_GRACE_S = 3600
    settings.TRANSCODE_TRANSIENT_RETRIES = 0
    video = make_stored_video(user, no_audio_clip)
    run(video)
    run(video)
    real_save_file = storage.save_file
    written = []

    def save_file_then_fail(key, path, **kwargs):
        if len(written) == 3:
            raise ConnectionResetError("connection reset by the object store")
        written.append(key)
        return real_save_file(key, path, **kwargs)

    monkeypatch.setattr(storage, "save_file", save_file_then_fail)
    job = run(video)
    assert job.status == J.FAILED and "connection reset" in job.error
    assert all(key.startswith(f"videos/{video.id}/hls/3/") for key in written)
    assert video.status == Video.Status.READY and video.hls_master_key == f"videos/{video.id}/hls/2/master.m3u8"
    assert folders(video) == {"1", "2"}, "the failed attempt's folder 3 is gone, the replaced folder 1 waits"


def test_deleting_a_video_within_the_grace_period_deletes_every_folder(user, no_audio_clip, settings):
    settings.HLS_PREVIOUS_OUTPUT_GRACE_S = 3600
    video = make_stored_video(user, no_audio_clip)
    run(video)
    run(video)
    assert folders(video) == {"1", "2"}
    video_delete(video=video, deleted_by=user)
    assert keys_under(f"videos/{video.id}/") == set()
    assert not PreviousHlsOutput.objects.exists()
    assert transcode_previous_outputs_sweep(now=timezone.now() + timedelta(days=1)) == 0
    assert keys_under(f"videos/{video.id}/") == set()


def test_a_storage_error_while_cleaning_up_after_the_switch_keeps_the_new_output(
    user, no_audio_clip, monkeypatch, settings
):
    from transcoding.services import maintenance as services

    settings.HLS_PREVIOUS_OUTPUT_GRACE_S = 0
    video = make_stored_video(user, no_audio_clip)
    run(video)

    def unreachable(prefix, **kwargs):
        raise ConnectionResetError("object store unreachable")

    monkeypatch.setattr(services, "iter_objects", unreachable)
    job = run(video)
    assert job.status == J.SUCCEEDED
    assert video.status == Video.Status.READY and video.hls_master_key == f"videos/{video.id}/hls/2/master.m3u8"
    assert storage.object_exists(video.hls_master_key)
    assert folders(video) == {"1", "2"}, "the earlier folder waits for the next switch"


@pytest.mark.slow
def test_on_s3_the_replaced_folder_plays_until_the_sweep_deletes_it(user, no_audio_clip, client, settings, s3_storage):
    from transcoding.tasks import transcode_reap_stale as reaper_task

    settings.CDN_URL = ""
    settings.HLS_PREVIOUS_OUTPUT_GRACE_S = 3600
    video = make_stored_video(user, no_audio_clip)
    run(video)
    old_grant = video_playback(video=video, user=user)
    assert old_grant.mode == "presigned"
    run(video)
    assert folders(video) == {"1", "2"}

    session = requests.Session()
    fetched = follow_playlists(client, old_grant.hls_url, fetch_external=lambda url: session.get(url, timeout=10))
    old_segments = [url for url in fetched if urlsplit(url).path.endswith(".ts")]
    assert old_segments and all(f"/videos/{video.id}/hls/1/" in url for url in old_segments)

    PreviousHlsOutput.objects.filter(video=video).update(superseded_at=timezone.now() - timedelta(seconds=3601))
    assert reaper_task()["previous_outputs_deleted"] == 1
    assert folders(video) == {"2"}
    assert session.get(old_segments[0], timeout=10).status_code == 404
    follow_playlists(
        client, video_playback(video=video, user=user).hls_url, fetch_external=lambda url: session.get(url, timeout=10)
    )


def test_kill_switch_blocks_the_job_before_it_starts(user, no_audio_clip):
    video = make_stored_video(user, no_audio_clip)
    job = transcode_enqueue(video=video)
    policy = budget_policy_get()
    policy.kill_switch_engaged = True
    policy.kill_switch_reason = "budget review"
    policy.save()
    transcode_run(job_id=job.id)
    job.refresh_from_db()
    video.refresh_from_db()
    assert job.status == J.CANCELLED and job.attempts == 0 and "budget review" in job.error
    assert video.status == Video.Status.BLOCKED and "budget review" in video.status_reason
    assert keys_under(f"videos/{video.id}/") == set()
    assert not video.media_file.__class__.objects.filter(pk=video.media_file_id, duration__isnull=False).exists(), (
        "nothing ran"
    )


def test_deleting_a_ready_video_deletes_its_objects(user, no_audio_clip):
    video = make_stored_video(user, no_audio_clip)
    run(video)
    assert keys_under(f"videos/{video.id}/")
    original = video.media_file.storage_key
    video_delete(video=video, deleted_by=user)
    assert keys_under(f"videos/{video.id}/") == set()
    assert not storage.object_exists(original)


def test_the_task_entry_point_runs_the_service(user, no_audio_clip):
    from transcoding.tasks import transcode_video

    video = make_stored_video(user, no_audio_clip)
    job = transcode_enqueue(video=video)
    transcode_video(str(job.id))
    job.refresh_from_db()
    assert job.status == J.SUCCEEDED


def test_output_layout_matches_the_ffmpeg_layer(user, no_audio_clip):
    video = make_stored_video(user, no_audio_clip)
    run(video)
    names = {key.rsplit("/", 1)[1] for key in keys_under(f"videos/{video.id}/hls/1/180p/")}
    assert MEDIA_PLAYLIST_NAME in names and IFRAME_PLAYLIST_NAME in names


def test_crf_and_preset_settings_reach_x264(user, no_audio_clip, settings):
    settings.HLS_CRF = 31.5
    settings.HLS_X264_PRESET = "ultrafast"
    video = make_stored_video(user, no_audio_clip)
    job = run(video)
    assert job.status == J.SUCCEEDED, job.error
    first_segment = f"{video.hls_master_key.rsplit('/', 1)[0]}/120p/seg_00000.ts"
    with storage.get_storage().open(first_segment, "rb") as fh:
        head = fh.read(64 * 1024)
    # x264 writes its options into the stream (an SEI message); ultrafast turns CABAC off
    assert b"crf=31.5" in head and b"cabac=0" in head


@pytest.mark.slow
@pytest.mark.parametrize(
    ("clip", "first_line", "stored"),
    [
        (
            "dv_pal_clip",
            "interlaced source (field order bb): deinterlaced with bwdif",
            lambda probe: probe["frames"] == [{"interlaced_frame": 1, "top_field_first": 0}],
        ),
        (
            "hlg_clip",
            "HDR source (HLG, bt2020 primaries, yuv420p10le): tone-mapped to BT.709 SDR",
            lambda probe: probe["streams"][0]["color_transfer"] == "arib-std-b67",
        ),
    ],
)
def test_camcorder_and_phone_hdr_originals_are_converted_and_say_so(user, request, clip, first_line, stored):
    video = make_stored_video(user, request.getfixturevalue(clip))
    job = run(video)
    assert job.status == J.SUCCEEDED, job.error
    assert video.status == Video.Status.READY
    # what was done to the source heads the job log shown in the admin
    assert job.log_tail.splitlines()[0].startswith(first_line)
    media = video.media_file
    media.refresh_from_db()
    assert stored(media.probe)


def test_hdr_on_an_ffmpeg_without_zscale_is_approximated_with_a_warning(user, hlg_clip, monkeypatch, caplog):
    # as on an ffmpeg built without libzimg: the colorspace filter is all there is
    monkeypatch.setattr(pipeline, "available_filters", lambda *args, **kwargs: frozenset({"bwdif", "colorspace"}))
    video = make_stored_video(user, hlg_clip)
    with caplog.at_level("WARNING", logger="transcoding.services"):
        job = run(video)
    assert job.status == J.SUCCEEDED, job.error
    first = job.log_tail.splitlines()[0]
    assert first.startswith("WARNING: HDR source (HLG") and "NOT tone-mapped" in first
    assert any("NOT tone-mapped" in record.getMessage() for record in caplog.records)


@pytest.fixture
def encodes(monkeypatch) -> list[list[str]]:
    """The ffmpeg commands the pipeline starts (encode and poster), recorded."""
    started: list[list[str]] = []
    real = pipeline.run_ffmpeg

    def recording(cmd, **kwargs):
        started.append(list(cmd))
        return real(cmd, **kwargs)

    monkeypatch.setattr(pipeline, "run_ffmpeg", recording)
    return started


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fixture", "words"),
    [
        ("timestamp_bomb_clip", "the file's timestamps are broken"),
        ("huge_sps_clip", "the picture is 8192x8192"),
        ("lying_sps_clip", "the video stream is damaged"),
    ],
)
def test_bombs_already_stored_fail_before_ffmpeg_encodes(user, request, fixture, words, encodes):
    video = make_stored_video(user, request.getfixturevalue(fixture))
    job = run(video)
    assert job.status == J.FAILED and video.status == Video.Status.FAILED
    assert words in job.error and video.status_code == job.error_code
    assert video.status_reason == failure_for(job.error_code, detail=job.error.split(": ", 1)[1]).message
    assert encodes == [], "nothing was encoded"
    assert not job.cpu_seconds and job.attempts == 1
    assert not CostLogEntry.objects.exists()
    assert keys_under(f"videos/{video.id}/") == set()


def test_a_job_over_the_cost_ceiling_fails_before_encoding(user, no_audio_clip, settings, encodes):
    settings.TRANSCODE_MAX_VIDEO_USD = "0.0001"  # 4 s x 2 renditions at $0.005/min is about $0.00067
    video = make_stored_video(user, no_audio_clip)
    job = run(video)
    assert job.status == J.FAILED and encodes == []
    assert "would cost about $0.000667" in job.error and "TRANSCODE_MAX_VIDEO_USD=$0.0001" in job.error
    assert not CostLogEntry.objects.exists()


def test_an_encode_that_runs_past_the_estimate_is_stopped_at_the_ceiling(user, no_audio_clip, settings, monkeypatch):
    # The probe under-reports (0.5 s for a 4 s clip): the estimate passes, the encoded output does not.
    real_probe = pipeline.original_probe
    monkeypatch.setattr(
        pipeline, "original_probe", lambda **kwargs: dataclasses.replace(real_probe(**kwargs), duration=0.5)
    )
    settings.TRANSCODE_MAX_VIDEO_USD = "0.0003"
    video = make_stored_video(user, no_audio_clip)
    job = run(video)
    assert job.status == J.FAILED, job.error
    assert "TRANSCODE_MAX_VIDEO_USD=$0.0003" in job.error and "stopped" in job.error
    assert not CostLogEntry.objects.exists()
    assert keys_under(f"videos/{video.id}/") == set()
