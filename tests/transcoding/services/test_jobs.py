"""Job control: cancelling (ffmpeg killed), the stale-heartbeat reaper, admin actions, the command."""

from __future__ import annotations

import io
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from django_q.models import OrmQ

from media_library.models import Video
from tests import clips
from tests.factories import make_job, make_media_file, make_stored_video, make_video
from tests.transcoding.services.test_pipeline import keys_under
from transcoding.models import TranscodeJob
from transcoding.services import pipeline as services
from transcoding.services.jobs import transcode_cancel, transcode_enqueue
from transcoding.services.maintenance import transcode_reap_stale
from transcoding.services.pipeline import transcode_run
from unpuzzle import storage
from unpuzzle.exceptions import InvalidTransition

pytestmark = pytest.mark.django_db(transaction=True)

J = TranscodeJob.Status
V = Video.Status


@pytest.fixture(autouse=True)
def small_ladder(settings):
    settings.HLS_LADDER = "180p:300k,360p:600k"
    settings.HLS_SEGMENT_SECONDS = 2


@pytest.fixture(scope="session")
def long_clip(clip_dir: Path) -> Path:
    """640x360, 60 s: several seconds of encoding, time enough to cancel it."""
    return clips.make_clip(clip_dir / "long.mp4", width=640, height=360, duration=60.0, audio=False)


def running_job(user, *, attempts: int = 1, beat_minutes_ago: int = 10) -> TranscodeJob:
    video = make_video(owner=user, media_file=make_media_file(owner=user), status=V.PROCESSING)
    beat = timezone.now() - timedelta(minutes=beat_minutes_ago)
    prefix = f"videos/{video.id}/hls/{attempts}/"
    storage.save_stream(prefix + "180p/seg_00000.ts", io.BytesIO(b"partial upload"))
    return make_job(
        video=video, status=J.RUNNING, attempts=attempts, started_at=beat, heartbeat_at=beat, output_prefix=prefix
    )


@pytest.mark.slow
def test_cancel_kills_ffmpeg_and_removes_the_temp_dir(user, long_clip, monkeypatch):
    monkeypatch.setattr(services, "PROGRESS_SAVE_SECONDS", 0.5)
    work_dirs: list[str] = []
    real_mkdtemp = tempfile.mkdtemp

    def recording_mkdtemp(**kwargs):
        path = real_mkdtemp(**kwargs)
        work_dirs.append(path)
        return path

    monkeypatch.setattr(tempfile, "mkdtemp", recording_mkdtemp)
    video = make_stored_video(user, long_clip)
    job = transcode_enqueue(video=video)
    ended = {}

    def worker():
        try:
            transcode_run(job_id=job.id)
        finally:
            ended["at"] = time.monotonic()
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    deadline = time.monotonic() + 30
    while not TranscodeJob.objects.filter(pk=job.pk, status=J.RUNNING, progress__gt=0).exists():
        assert time.monotonic() < deadline, "the job never reported progress"
        time.sleep(0.1)
    cancelled_at = time.monotonic()
    transcode_cancel(job=job, by=user)
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert ended["at"] - cancelled_at < 5, "ffmpeg was killed within the cancel check interval"
    job.refresh_from_db()
    video.refresh_from_db()
    assert job.status == J.CANCELLED and job.error == f"cancelled by {user.username}"
    assert job.progress < 90
    assert video.status == V.FAILED and f"cancelled by {user.username}" in video.status_reason
    assert work_dirs and not Path(work_dirs[0]).exists()
    assert keys_under(f"videos/{video.id}/") == set()


def test_cancelling_a_queued_job(user):
    video = make_video(owner=user, media_file=make_media_file(owner=user))
    job = transcode_enqueue(video=video)
    transcode_cancel(job=job, by=user)
    job.refresh_from_db()
    video.refresh_from_db()
    assert job.status == J.CANCELLED and job.finished_at is not None
    assert video.status == V.FAILED
    transcode_run(job_id=job.id)
    job.refresh_from_db()
    assert job.status == J.CANCELLED and job.attempts == 0, "a cancelled job never starts"
    with pytest.raises(InvalidTransition):
        transcode_cancel(job=job, by=user)
    # Retrying a failed video queues a new job.
    assert transcode_enqueue(video=video).pk != job.pk


def test_cancelling_a_retranscode_keeps_the_previous_output(user):
    video = make_video(
        owner=user,
        media_file=make_media_file(owner=user),
        status=V.READY,
        hls_master_key="videos/x/hls/1/master.m3u8",
    )
    job = transcode_enqueue(video=video)
    transcode_cancel(job=job, by=user)
    video.refresh_from_db()
    assert video.status == V.READY and "The previous version still plays." in video.status_reason


def test_reaper_requeues_a_job_whose_heartbeat_is_stale(user, settings):
    settings.TRANSCODE_HEARTBEAT_STALE_S = 300
    stale = running_job(user, attempts=1, beat_minutes_ago=10)
    fresh = running_job(user, attempts=1, beat_minutes_ago=1)
    assert transcode_reap_stale() == {"requeued": 1, "failed": 0}
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.status == J.QUEUED and "stopped reporting" in stale.error
    assert stale.video.__class__.objects.get(pk=stale.video_id).status == V.QUEUED
    assert keys_under(stale.output_prefix) == set(), "the dead attempt's objects are deleted"
    assert OrmQ.objects.count() == 1
    assert fresh.status == J.RUNNING and keys_under(fresh.output_prefix)


def test_reaper_fails_a_job_after_max_attempts(user, settings):
    settings.TRANSCODE_MAX_ATTEMPTS = 3
    job = running_job(user, attempts=3)
    assert transcode_reap_stale() == {"requeued": 0, "failed": 1}
    job.refresh_from_db()
    video = Video.objects.get(pk=job.video_id)
    assert job.status == J.FAILED and "gave up after 3 attempts" in job.error
    assert video.status == V.FAILED and "stopped reporting" in job.error and video.status_code == "worker_lost"
    assert OrmQ.objects.count() == 0


def test_reaper_task_and_schedule():
    from transcoding.tasks import transcode_reap_stale as task
    from unpuzzle.schedules import SCHEDULES

    assert task() == {
        "requeued": 0,
        "failed": 0,
        "chunks_requeued": 0,
        "chunks_failed": 0,
        "dispatched": 0,
        "redispatched": 0,
        "chunks_dispatched": 0,
        "previous_outputs_deleted": 0,
    }
    spec = next(s for s in SCHEDULES if s.func == "transcoding.tasks.transcode_reap_stale")
    assert 0 < spec.minutes <= 10


@pytest.mark.slow
def test_transcode_command_waits_and_prints_the_result(user, capsys):
    source = clips.make_clip(Path(storage.get_storage().location).parent / "cmd.mp4", duration=4.0, audio=False)
    video = make_stored_video(user, source)
    call_command("transcode", str(video.id), "--wait")
    out = capsys.readouterr().out
    video.refresh_from_db()
    assert video.status == V.READY
    assert "ready" in out and video.hls_master_key.rsplit("/", 1)[0] in out


def test_transcode_command_fails_with_the_reason(user, not_video_clip):
    video = make_stored_video(user, not_video_clip)
    with pytest.raises(CommandError, match="not a video"):
        call_command("transcode", str(video.id), "--wait")


def test_transcode_command_without_wait_only_queues(user, capsys):
    video = make_video(owner=user, media_file=make_media_file(owner=user))
    call_command("transcode", str(video.id))
    assert OrmQ.objects.count() == 1
    assert TranscodeJob.objects.get(video=video).status == J.QUEUED
    with pytest.raises(CommandError, match="no video"):
        call_command("transcode", "00000000-0000-0000-0000-000000000000")


def _admin_action(client, url_name: str, action: str, ids) -> str:
    from django.urls import reverse

    response = client.post(
        reverse(url_name), {"action": action, "_selected_action": [str(pk) for pk in ids]}, follow=True
    )
    assert response.status_code == 200
    return " ".join(str(message) for message in response.context["messages"])


def test_admin_video_actions_go_through_the_services(client, admin_user, user):
    from django.urls import reverse

    client.force_login(admin_user)
    failed = make_video(owner=user, media_file=make_media_file(owner=user), status=V.FAILED, status_reason="old")
    ready = make_video(
        owner=user, media_file=make_media_file(owner=user), status=V.READY, hls_master_key="videos/r/hls/1/master.m3u8"
    )

    text = _admin_action(client, "admin:media_library_video_changelist", "retry_transcode", [failed.pk, ready.pk])
    assert "Queued 1 video" in text and "only failed or blocked" in text
    assert TranscodeJob.objects.get(video=failed).status == J.QUEUED

    text = _admin_action(client, "admin:media_library_video_changelist", "retranscode", [ready.pk])
    assert "Queued 1 video" in text
    ready.refresh_from_db()
    assert ready.status == V.QUEUED

    TranscodeJob.objects.filter(video=failed).update(status=J.RUNNING, progress=42, attempts=1)
    page = client.get(reverse("admin:media_library_video_changelist")).content.decode()
    assert "running 42% (attempt 1)" in page
    assert "running 42%" in client.get(reverse("admin:media_library_video_change", args=[failed.pk])).content.decode()

    text = _admin_action(client, "admin:media_library_video_changelist", "cancel_transcode", [failed.pk, ready.pk])
    assert "Cancelled 2 transcode job(s)" in text
    assert set(TranscodeJob.objects.values_list("status", flat=True)) == {J.CANCELLED}
    ready.refresh_from_db()
    assert ready.status == V.READY, "a cancelled re-transcode keeps the previous output"


def test_admin_job_cancel_action(client, admin_user, user):
    client.force_login(admin_user)
    video = make_video(owner=user, media_file=make_media_file(owner=user))
    job = transcode_enqueue(video=video)
    done = make_job(video=make_video(owner=user), status=J.SUCCEEDED)
    text = _admin_action(client, "admin:transcoding_transcodejob_changelist", "cancel", [job.pk, done.pk])
    assert "Cancelled 1 transcode job(s)" in text and "1 job(s) skipped" in text
    job.refresh_from_db()
    assert job.status == J.CANCELLED and job.error == f"cancelled by {admin_user.username}"


def test_work_dirs_left_by_killed_workers_are_swept(settings, tmp_path):
    import os

    from transcoding.services.maintenance import WORK_DIR_PREFIX, transcode_work_dirs_sweep

    settings.TRANSCODE_TIMEOUT_S = 3600
    settings.TRANSCODE_WORK_DIR = tmp_path
    abandoned = tmp_path / f"{WORK_DIR_PREFIX}old-job"
    live = tmp_path / f"{WORK_DIR_PREFIX}live-job"
    unrelated = tmp_path / "someone-else"
    for folder in (abandoned, live, unrelated):
        (folder / "hls").mkdir(parents=True)
    two_hours_ago = time.time() - 7200
    for folder in (abandoned, unrelated):
        os.utime(folder, (two_hours_ago, two_hours_ago))

    assert transcode_work_dirs_sweep() == 1
    assert not abandoned.exists() and live.exists() and unrelated.exists()


def test_work_dirs_of_attempts_that_are_over_go_at_once(user, tmp_path, settings):
    from transcoding.services.maintenance import WORK_DIR_PREFIX, transcode_work_dirs_sweep

    settings.TRANSCODE_WORK_DIR = tmp_path
    running = make_job(video=make_video(owner=user), status=J.RUNNING, attempts=2)
    finished = make_job(video=make_video(owner=user), status=J.SUCCEEDED, attempts=1)
    current = tmp_path / f"{WORK_DIR_PREFIX}{running.id}-a2-x1"
    killed_earlier = tmp_path / f"{WORK_DIR_PREFIX}{running.id}-a1-x2"  # the reaper requeued attempt 1
    after_success = tmp_path / f"{WORK_DIR_PREFIX}{finished.id}-a1-x3"
    job_deleted = tmp_path / f"{WORK_DIR_PREFIX}00000000-0000-4000-8000-000000000000-a1-x4"
    not_a_uuid = tmp_path / f"{WORK_DIR_PREFIX}{'-' * 36}-a1-x5"  # fresh and unreadable: left to the age rule
    for folder in (current, killed_earlier, after_success, job_deleted, not_a_uuid):
        (folder / "hls").mkdir(parents=True)

    assert transcode_work_dirs_sweep() == 3
    assert current.exists() and not_a_uuid.exists()
    assert not killed_earlier.exists() and not after_success.exists() and not job_deleted.exists()


def test_a_transcode_first_removes_what_a_killed_attempt_left_on_this_machine(user, no_audio_clip, tmp_path, settings):
    from transcoding.services.maintenance import WORK_DIR_PREFIX

    settings.TRANSCODE_WORK_DIR = tmp_path
    video = make_stored_video(user, no_audio_clip)
    job = transcode_enqueue(video=video)
    # attempt 1 died with its worker (SIGKILL) after copying the original; the reaper requeued the job
    TranscodeJob.objects.filter(pk=job.pk).update(attempts=1)
    leftover = tmp_path / f"{WORK_DIR_PREFIX}{job.id}-a1-dead"
    leftover.mkdir()
    (leftover / "original.mp4").write_bytes(no_audio_clip.read_bytes())

    transcode_run(job_id=job.id)
    job.refresh_from_db()
    assert job.status == J.SUCCEEDED and job.attempts == 2, job.error
    assert not leftover.exists()
    assert list(tmp_path.glob(f"{WORK_DIR_PREFIX}*")) == []
