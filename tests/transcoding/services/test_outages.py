"""A storage outage during a transcode is waited out, with backoff, and leaves no partial objects.

Storage is moto over HTTP behind a TCP proxy the test cuts (``s3_proxy``): boto3 sees real
refused connections and real silence.
"""

from __future__ import annotations

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from media_library.models import PreviousHlsOutput, Video
from tests.factories import make_stored_video
from tests.transcoding.services.test_pipeline import small_ladder  # noqa: F401 (autouse fixture)
from transcoding.models import TranscodeJob
from transcoding.services import pipeline
from transcoding.services.jobs import transcode_enqueue
from transcoding.services.pipeline import transcode_run
from transcoding.tasks import transcode_reap_stale
from unpuzzle import storage

pytestmark = pytest.mark.django_db(transaction=True)

J = TranscodeJob.Status


def run_dispatched_transcodes() -> int:
    """Run the transcode tasks waiting in the broker, as the transcode cluster would."""
    rows = list(OrmQ.objects.filter(key="transcode"))
    for row in rows:
        row.delete()
        transcode_run(job_id=row.task["args"][0])
    return len(rows)


def wait_out_backoff(job: TranscodeJob) -> None:
    job.refresh_from_db()
    assert job.not_before is not None
    TranscodeJob.objects.filter(pk=job.pk).update(not_before=timezone.now())


def test_an_outage_during_output_upload_is_waited_out_without_using_up_attempts(
    user, no_audio_clip, settings, monkeypatch, s3_proxy
):
    settings.TRANSCODE_MAX_ATTEMPTS = 1  # what a broken source gets; an outage has its own budget
    settings.TRANSCODE_TRANSIENT_RETRIES = 5
    video = make_stored_video(user, no_audio_clip)
    real_save_directory = pipeline.save_directory

    def storage_goes_down_after_the_first_object(prefix, directory, on_saved=None):
        def saved(key, size):
            s3_proxy.set_mode("refuse")
            if on_saved is not None:
                on_saved(key, size)

        return real_save_directory(prefix, directory, on_saved=saved)

    monkeypatch.setattr(pipeline, "save_directory", storage_goes_down_after_the_first_object)
    job = transcode_enqueue(video=video)
    OrmQ.objects.all().delete()
    transcode_run(job_id=job.id)
    job.refresh_from_db()
    video.refresh_from_db()
    assert job.status == J.QUEUED and job.transient_failures == 1, job.error
    assert video.status == Video.Status.QUEUED and "tries again on its own in 30 s" in video.status_reason
    # Its partial folder could not be deleted while storage was down: the sweep will.
    assert PreviousHlsOutput.objects.filter(video=video, master_key=f"videos/{video.id}/hls/1/master.m3u8").exists()

    # Still down: the next attempt fails at fetching the original and backs off longer.
    monkeypatch.setattr(pipeline, "save_directory", real_save_directory)
    wait_out_backoff(job)
    assert transcode_reap_stale()["dispatched"] == 1
    assert run_dispatched_transcodes() == 1
    job.refresh_from_db()
    assert job.status == J.QUEUED and job.transient_failures == 2 and job.attempts == 2, job.error
    assert "tries again on its own in 1 min" in Video.objects.get(pk=video.pk).status_reason

    # Storage is back: the reaper dispatches the job when its backoff is over, and sweeps.
    s3_proxy.set_mode("pass")
    assert transcode_reap_stale()["dispatched"] == 0, "not before its backoff is over"
    wait_out_backoff(job)
    assert transcode_reap_stale()["dispatched"] == 1
    assert run_dispatched_transcodes() == 1
    job.refresh_from_db()
    video.refresh_from_db()
    assert job.status == J.SUCCEEDED and job.attempts == 3 and job.transient_failures == 2
    assert video.status == Video.Status.READY
    assert video.hls_master_key == f"videos/{video.id}/hls/3/master.m3u8"
    transcode_reap_stale()
    assert not PreviousHlsOutput.objects.exists()
    assert {key.split("/")[3] for key, _ in storage.iter_objects(f"videos/{video.id}/")} == {"3"}


def test_an_outage_longer_than_the_retries_fails_the_video_with_the_reason(user, no_audio_clip, settings, s3_proxy):
    settings.TRANSCODE_TRANSIENT_RETRIES = 1
    video = make_stored_video(user, no_audio_clip)
    job = transcode_enqueue(video=video)
    OrmQ.objects.all().delete()
    s3_proxy.set_mode("hang")  # accepts connections, never answers: bounded by the read timeout
    transcode_run(job_id=job.id)
    job.refresh_from_db()
    assert job.status == J.QUEUED and job.transient_failures == 1, job.error
    s3_proxy.set_mode("refuse")
    wait_out_backoff(job)
    transcode_reap_stale()
    run_dispatched_transcodes()
    job.refresh_from_db()
    video.refresh_from_db()
    assert job.status == J.FAILED and job.transient_failures == 2
    assert "gave up after 2 attempts ended by storage, network or database errors" in job.error
    assert video.status == Video.Status.FAILED and video.status_code == "server_error"
