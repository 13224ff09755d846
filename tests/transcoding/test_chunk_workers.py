"""Chunked transcodes on real transcode clusters (``manage.py qcluster`` processes): chunks never wait
behind a long task on a busy worker while another worker is free, and a worker killed in the middle of
a chunk costs that chunk alone."""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.utils import timezone
from django_q.models import OrmQ
from django_q.tasks import async_task

from media_library.models import Video
from tests.clips import make_clip
from tests.factories import make_stored_video
from tests.unpuzzle.test_clusters import TRANSCODE, wait_for
from tests.unpuzzle.test_clusters import start_cluster as start_cluster  # the fixture
from transcoding.models import TranscodeChunk, TranscodeJob
from transcoding.services.jobs import transcode_enqueue
from transcoding.services.pipeline import transcode_run
from transcoding.tasks import transcode_reap_stale

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

HOLD = "tests.unpuzzle.test_clusters.hold_until"


@pytest.fixture
def chunked_env(process_env):
    """The clusters cut anything over 5 s into chunks of ``TRANSCODE_CHUNK_SECONDS``."""
    process_env.update({"TRANSCODE_CHUNK_SECONDS": "4", "TRANSCODE_CHUNK_MIN_SECONDS": "5", "PREVIEW_INTERVAL_S": "1"})
    return process_env


def locked_tasks(func: str) -> int:
    return sum(1 for row in OrmQ.objects.filter(key=TRANSCODE, lock__gt=timezone.now()) if row.task["func"] == func)


def test_chunks_are_taken_by_the_free_worker_not_held_behind_a_busy_one(
    start_cluster, chunked_env, user, isolated_var, settings, tmp_path
):
    for name, value in chunked_env.items():
        if name.startswith(("TRANSCODE_CHUNK", "PREVIEW", "HLS_")):
            setattr(settings, name, int(value) if value.isdigit() else value)
    busy = start_cluster(TRANSCODE)
    gate, started = isolated_var / "gate", isolated_var / "started"
    async_task(HOLD, str(gate), str(started), task_name="hold", cluster=TRANSCODE)
    wait_for(started.exists, "the first cluster to take the long task", [busy])
    job = transcode_enqueue(video=make_stored_video(user, make_clip(tmp_path / "lecture.mp4", duration=13.0)))
    # the transcode's own task plans it: here, so that the chunk tasks go to the clusters' queue
    transcode_run(job_id=job.id)
    assert TranscodeChunk.objects.filter(job=job).count() == 5
    # the busy cluster's pusher takes tasks off the queue ahead of its only worker: one waits in its queue
    # (the transcode's own, which finds the job planned and does nothing), one in the pusher's hand (a chunk's)
    wait_for(lambda: locked_tasks("transcoding.tasks.transcode_chunks") == 1, "the busy cluster to fetch ahead", [busy])

    free = start_cluster(TRANSCODE)
    wait_for(
        lambda: TranscodeJob.objects.filter(pk=job.pk, status=TranscodeJob.Status.SUCCEEDED).exists(),
        "the free cluster to transcode every chunk",
        [busy, free],
    )
    # the busy worker is still in the long task and its cluster still holds a chunk task: the free
    # worker took every chunk all the same (a task claims whichever chunk is next, and goes on to the next)
    assert not gate.exists()
    # the free cluster's own fetched-ahead chunk tasks end at once (nothing left to claim); the busy one's stays
    wait_for(
        lambda: locked_tasks("transcoding.tasks.transcode_chunks") == 1, "the free cluster's chunk tasks to end", [free]
    )
    assert not gate.exists()
    chunks = TranscodeChunk.objects.filter(job=job)
    assert set(chunks.values_list("status", flat=True)) == {"succeeded"}
    assert len(set(chunks.values_list("worker", flat=True))) == 1
    assert Video.objects.get(pk=job.video_id).status == Video.Status.READY

    # released, the busy worker runs the chunk tasks it held: nothing is left for them, nothing runs twice
    gate.touch()
    wait_for(lambda: not OrmQ.objects.filter(key=TRANSCODE).exists(), "the held chunk tasks to end", [busy])
    assert set(TranscodeChunk.objects.filter(job=job).values_list("attempts", flat=True)) == {1}


def test_a_worker_killed_in_the_middle_of_a_chunk_costs_that_chunk_alone(
    start_cluster, chunked_env, user, settings, tmp_path
):
    # slower encoder settings, so the kill lands in the middle of a chunk
    chunked_env.update({"TRANSCODE_CHUNK_SECONDS": "8", "HLS_X264_PRESET": "slow", "HLS_LADDER": "360p:800k"})
    clip = make_clip(tmp_path / "lecture.mp4", width=640, height=360, duration=16.0)
    first = start_cluster(TRANSCODE)
    job = transcode_enqueue(video=make_stored_video(user, clip))
    running = wait_for(
        lambda: TranscodeChunk.objects.filter(job=job, kind="video", index=1, status="running").first(),
        "chunk 1 to be under way on the first cluster",
        [first],
    )
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    done_before = set(TranscodeChunk.objects.filter(job=job, status="succeeded").values_list("kind", "index"))
    assert ("video", 0) in done_before

    settings.TRANSCODE_HEARTBEAT_STALE_S = 0
    time.sleep(0.01)
    counts = transcode_reap_stale()
    assert counts["chunks_requeued"] == 1 and counts["requeued"] == 0
    second = start_cluster(TRANSCODE)
    wait_for(
        lambda: TranscodeJob.objects.filter(pk=job.pk, status=TranscodeJob.Status.SUCCEEDED).exists(),
        "the second cluster to finish the job",
        [second],
    )
    job.refresh_from_db()
    assert job.attempts == 1, "the job was not started over"
    killed = TranscodeChunk.objects.get(pk=running.pk)
    assert killed.attempts == 2 and killed.worker != running.worker
    # what the first worker finished was not encoded again
    for kind, index in done_before:
        chunk = TranscodeChunk.objects.get(job=job, job_attempt=1, kind=kind, index=index)
        assert chunk.attempts == 1 and chunk.worker == running.worker
    assert "run 2" in job.log_tail
    assert Video.objects.get(pk=job.video_id).status == Video.Status.READY
