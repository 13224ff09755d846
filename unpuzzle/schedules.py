"""Every recurring django-q2 task of the product, created by ``manage.py setup_schedules``."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class ScheduleSpec:
    """Run ``func`` every ``minutes``, or once a day at ``daily_at`` ("HH:MM", server time zone)."""

    name: str
    func: str
    minutes: int = 0
    daily_at: str = ""


SCHEDULES: tuple[ScheduleSpec, ...] = (
    ScheduleSpec(name="costs-daily", func="transcoding.tasks.costs_daily", daily_at=settings.COSTS_DAILY_AT),
    ScheduleSpec(
        name="transcode-reap-stale",
        func="transcoding.tasks.transcode_reap_stale",
        minutes=settings.TRANSCODE_REAP_EVERY_MINUTES,
    ),
    ScheduleSpec(name="clusters-heartbeat", func="unpuzzle.tasks.clusters_heartbeat", minutes=1),
    ScheduleSpec(name="uploads-cleanup", func="uploads.tasks.cleanup_uploads", minutes=30),
    ScheduleSpec(name="uploads-abort-stale-multipart", func="uploads.tasks.abort_stale_direct_uploads", minutes=60),
    ScheduleSpec(name="uploads-retry-finalization", func="uploads.tasks.retry_finalization", minutes=5),
    ScheduleSpec(name="webhooks-sweep", func="unpuzzle.webhooks.tasks.webhooks_sweep", minutes=1),
)
