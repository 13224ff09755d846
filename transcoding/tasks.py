"""django-q2 entry points: load by id, call a service.

Their dotted paths are stored in the database (queued tasks, ``unpuzzle.schedules``), so they
stay here under these names; the services are imported when a task runs, which keeps a worker
that only runs other tasks from loading the transcoding pipeline.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def transcode_video(job_id: str) -> None:
    """Run one transcode job (the pipeline lives in ``transcoding.services.pipeline``; it first removes
    work dirs that killed workers left on this machine: the reaper may run on another one)."""
    from transcoding.services.chunks import transcode_chunks_run
    from transcoding.services.pipeline import transcode_run

    transcode_run(job_id=job_id)
    # A long source was cut into chunks: this worker encodes them too, with the other workers.
    transcode_chunks_run(prefer_job=job_id)


def transcode_chunks() -> None:
    """Encode queued chunks of chunked transcodes until none is left (any job's; the task is not tied
    to one chunk, so a task fetched ahead by a busy cluster strands nothing)."""
    from transcoding.services.chunks import transcode_chunks_run
    from transcoding.services.maintenance import transcode_work_dirs_sweep

    # what killed workers left on this machine goes first (the reaper may run on another one);
    # transcode_video's own run has swept already
    transcode_work_dirs_sweep()
    transcode_chunks_run()


def transcode_reap_stale() -> dict[str, int]:
    """Requeue or fail running transcode jobs whose worker stopped sending heartbeats, dispatch
    queued jobs whose backoff is over or whose task a killed cluster stranded, remove work dirs
    that killed workers left on this machine, and delete HLS folders re-transcodes replaced once
    ``HLS_PREVIOUS_OUTPUT_GRACE_S`` has passed (and partial ones storage refused to delete)."""
    from transcoding.services.chunks import transcode_chunks_dispatch_due, transcode_chunks_reap
    from transcoding.services.maintenance import (
        transcode_dispatch_due,
        transcode_previous_outputs_sweep,
        transcode_work_dirs_sweep,
    )
    from transcoding.services.maintenance import transcode_reap_stale as reap

    counts = reap()
    counts.update(transcode_chunks_reap())
    counts.update(transcode_dispatch_due())
    counts["chunks_dispatched"] = transcode_chunks_dispatch_due()
    transcode_work_dirs_sweep()
    counts["previous_outputs_deleted"] = transcode_previous_outputs_sweep()
    return counts


def costs_daily() -> None:
    """Daily cost run (storage snapshot, delivery estimate, budget check and alerts)."""
    from transcoding.costs.ledger import costs_daily as run

    run()
