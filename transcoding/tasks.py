"""django-q2 entry points: load by id, call a service."""
from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def transcode_video(job_id: str) -> None:
    """Run one transcode job (the pipeline lives in ``transcoding.services``)."""
    from transcoding.services import transcode_run

    transcode_run(job_id=job_id)


def transcode_reap_stale() -> dict[str, int]:
    """Requeue or fail running transcode jobs whose worker stopped sending heartbeats, and
    remove work dirs that killed workers left on this machine."""
    from transcoding.services import transcode_reap_stale as reap
    from transcoding.services import transcode_work_dirs_sweep

    counts = reap()
    transcode_work_dirs_sweep()
    return counts


def costs_daily() -> None:
    """Daily cost run (storage snapshot, delivery estimate, budget check and alerts)."""
    from transcoding.costs import costs_daily as run

    run()
