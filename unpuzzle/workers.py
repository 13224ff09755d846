"""Liveness of the task clusters: each one's workers write a heartbeat row, ``/healthz`` reads it.

A worker beats when it starts (django-q2's ``post_spawn``), when it runs the heartbeat task
(the short-task cluster runs it every minute and queues one for the transcode cluster), and
while it transcodes (the job's reporter, at most once a minute): a transcode cluster whose
workers are all busy for hours still reports, and a cluster whose processes died does not.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from unpuzzle.models import ClusterHeartbeat

logger = logging.getLogger(__name__)

HEARTBEAT_TASK = "unpuzzle.tasks.cluster_heartbeat"


def clusters() -> tuple[str, str]:
    """The clusters a deployment runs, short-task first."""
    return settings.SHORT_TASKS_CLUSTER, settings.TRANSCODE_CLUSTER


def current_cluster() -> str:
    """The cluster this process serves (``Q_CLUSTER_NAME``, as django-q2 reads it)."""
    from django_q.conf import Conf

    return str(Conf.CLUSTER_NAME)


def cluster_beat(*, cluster: str | None = None, now: datetime | None = None) -> None:
    """Record that ``cluster`` (default: this process's) is alive now."""
    ClusterHeartbeat.objects.update_or_create(
        cluster=cluster or current_cluster(),
        defaults={"beat_at": now or timezone.now(), "host": socket.gethostname()[:255], "pid": os.getpid()},
    )


def cluster_beat_on_spawn(sender: Any, proc_name: str, **kwargs: Any) -> None:
    """django-q2 ``post_spawn`` receiver: a worker that just started beats; never breaks the worker."""
    try:
        cluster_beat()
    except Exception:  # a database hiccup must not keep the worker from running tasks
        logger.exception("could not record the heartbeat of %s", proc_name)


def clusters_heartbeat(*, now: datetime | None = None) -> None:
    """The short-task cluster's scheduled task: beat, and ask every other cluster to beat.

    Another cluster gets one heartbeat task at a time: a new one is queued only once the
    previous one was answered, or after ``HEALTH_WORKERS_STALE_S`` (a killed cluster may hold
    it locked for hours), so a busy cluster's queue never fills with them.
    """
    from django_q.tasks import async_task

    now = now or timezone.now()
    cluster_beat(cluster=settings.SHORT_TASKS_CLUSTER, now=now)
    lost = now - timedelta(seconds=settings.HEALTH_WORKERS_STALE_S)
    for cluster in clusters()[1:]:
        ClusterHeartbeat.objects.get_or_create(cluster=cluster)
        asked = (
            ClusterHeartbeat.objects.filter(pk=cluster)
            .filter(Q(requested_at__isnull=True) | Q(requested_at__lte=F("beat_at")) | Q(requested_at__lt=lost))
            .update(requested_at=now)
        )
        if asked:
            async_task(HEARTBEAT_TASK, task_name=f"heartbeat-{cluster}", group="heartbeat", cluster=cluster)


def clusters_report(*, now: datetime | None = None) -> dict[str, dict[str, Any]]:
    """Each cluster's last beat, as ``/healthz`` shows it; raises RuntimeError naming the clusters
    with no beat for ``HEALTH_WORKERS_STALE_S`` seconds."""
    now = now or timezone.now()
    limit = settings.HEALTH_WORKERS_STALE_S
    rows = {row.cluster: row for row in ClusterHeartbeat.objects.filter(cluster__in=clusters())}
    report: dict[str, dict[str, Any]] = {}
    silent = []
    for cluster in clusters():
        row = rows.get(cluster)
        age = (now - row.beat_at).total_seconds() if row is not None and row.beat_at is not None else None
        report[cluster] = {"seconds_since_beat": None if age is None else round(age), "host": row.host if row else ""}
        if age is None or age > limit:
            start = "Q_CLUSTER_NAME=transcode " if cluster == settings.TRANSCODE_CLUSTER else ""
            when = "yet" if age is None else f"for {round(age)} s"
            silent.append(f"cluster {cluster!r} has not reported {when} (is `{start}manage.py qcluster` running?)")
    if silent:
        raise RuntimeError(f"{'; '.join(silent)}; limit HEALTH_WORKERS_STALE_S={limit}")
    return report
