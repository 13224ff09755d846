from datetime import datetime, time, timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django_q.models import Schedule

from unpuzzle.schedules import SCHEDULES, ScheduleSpec


def next_daily_run(daily_at: str, *, now: datetime | None = None) -> datetime:
    """The next moment at ``daily_at`` ("HH:MM") in the server time zone."""
    try:
        hour, minute = (int(part) for part in daily_at.split(":"))
        at = time(hour, minute)
    except ValueError as exc:
        raise CommandError(f"daily time must look like 00:15 (HH:MM), not {daily_at!r}") from exc
    now = timezone.localtime(now)
    candidate = timezone.make_aware(datetime.combine(now.date(), at))
    return candidate if candidate > now else candidate + timedelta(days=1)


def schedule_defaults(spec: ScheduleSpec) -> dict:
    # Pinned to the short-task cluster: its scheduler creates the task and its workers run it.
    common = {"func": spec.func, "repeats": -1, "cluster": settings.SHORT_TASKS_CLUSTER}
    if spec.daily_at:
        return {**common, "schedule_type": Schedule.DAILY, "next_run": next_daily_run(spec.daily_at)}
    return {**common, "schedule_type": Schedule.MINUTES, "minutes": spec.minutes}


class Command(BaseCommand):
    help = "Create or update the product's django-q2 schedules; safe to run repeatedly."

    def handle(self, *args, **options):
        for spec in SCHEDULES:
            _, created = Schedule.objects.update_or_create(name=spec.name, defaults=schedule_defaults(spec))
            when = f"daily at {spec.daily_at}" if spec.daily_at else f"every {spec.minutes} min"
            self.stdout.write(f"{'created' if created else 'updated'} schedule {spec.name} ({spec.func} {when})")
        self.stdout.write(f"{len(SCHEDULES)} schedules in place")
