"""Every recurring django-q2 task of the product, created by ``manage.py setup_schedules``."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    func: str
    minutes: int


SCHEDULES: tuple[ScheduleSpec, ...] = (
    ScheduleSpec(name="uploads-cleanup", func="uploads.tasks.cleanup_uploads", minutes=30),
    ScheduleSpec(name="uploads-retry-finalization", func="uploads.tasks.retry_finalization", minutes=5),
)
