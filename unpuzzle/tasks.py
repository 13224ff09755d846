"""django-q2 entry points of the project itself (their dotted paths are stored in queued tasks and schedules)."""

from __future__ import annotations


def clusters_heartbeat() -> None:
    """Scheduled every minute on the short-task cluster: beat, and ask the transcode cluster to."""
    from unpuzzle.workers import clusters_heartbeat as run

    run()


def cluster_heartbeat() -> None:
    """Queued for another cluster by ``clusters_heartbeat``: the worker that runs it beats for its cluster."""
    from unpuzzle.workers import cluster_beat

    cluster_beat()
