"""setup_schedules creates each recurring task once, however often it runs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command
from django_q.models import Schedule

from unpuzzle.management.commands.setup_schedules import next_daily_run
from unpuzzle.schedules import SCHEDULES

pytestmark = pytest.mark.django_db


def test_running_twice_gives_one_schedule_each():
    call_command("setup_schedules")
    call_command("setup_schedules")
    assert Schedule.objects.count() == len(SCHEDULES)
    for spec in SCHEDULES:
        assert Schedule.objects.filter(name=spec.name, func=spec.func).count() == 1
    daily = Schedule.objects.get(name="costs-daily")
    assert daily.schedule_type == Schedule.DAILY and daily.func == "transcoding.tasks.costs_daily"
    assert daily.next_run is not None


def test_next_daily_run(settings):
    settings.TIME_ZONE = "UTC"
    now = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)
    assert next_daily_run("00:15", now=now) == datetime(2025, 6, 11, 0, 15, tzinfo=UTC)
    assert next_daily_run("13:30", now=now) == datetime(2025, 6, 10, 13, 30, tzinfo=UTC)
    with pytest.raises(CommandError, match="HH:MM"):
        next_daily_run("quarter past")


def test_the_daily_task_runs_the_whole_cost_day(user):
    from tests.factories import make_media_file, make_video
    from transcoding.models import CostLogEntry
    from transcoding.tasks import costs_daily

    make_video(owner=user, media_file=make_media_file(owner=user, size=10**9))
    costs_daily()
    assert CostLogEntry.objects.filter(kind="storage").count() == 1


def test_schedules_are_pinned_to_the_short_task_cluster(settings):
    # A database set up before transcodes had their own cluster holds schedules without one.
    Schedule.objects.create(
        name="transcode-reap-stale",
        func="transcoding.tasks.transcode_reap_stale",
        schedule_type=Schedule.MINUTES,
        minutes=5,
    )
    call_command("setup_schedules", verbosity=0)
    assert Schedule.objects.count() == len(SCHEDULES)
    assert set(Schedule.objects.values_list("cluster", flat=True)) == {settings.SHORT_TASKS_CLUSTER}
