"""Budget rules: automatic kill switch, release and requeue, alerts, quotas."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from media_library.models import Rendition, Video
from tests.factories import make_cost_entry, make_job, make_media_file, make_video
from transcoding.costs.budget import (
    budget_check_and_alert,
    budget_engage_kill_switch,
    budget_release_kill_switch,
    budget_update,
)
from transcoding.costs.ledger import cost_record_transcode, costs_daily
from transcoding.costs.quotas import TranscodeQuotaExceeded, UploadQuotaExceeded, quota_check_upload, user_month_usage
from transcoding.costs.selectors import budget_policy_get, spending_allowed, video_monthly_storage_estimate_usd
from transcoding.models import CostAlert, TranscodeJob
from transcoding.services.jobs import transcode_enqueue
from unpuzzle.exceptions import Conflict, DomainError

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def alert_mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.COST_ALERT_EMAILS = ["finance@example.com"]
    settings.USER_MONTHLY_UPLOAD_GB = "0"
    settings.USER_MONTHLY_TRANSCODE_MINUTES = "0"


def _spend(amount: str, *, day: date | None = None, video=None, owner=None):
    return make_cost_entry(
        date=day or timezone.localdate(),
        kind="transcode",
        quantity=1,
        unit="minute",
        unit_price=amount,
        amount=amount,
        video=video,
        owner=owner,
    )


def _budget(value: str, **fields):
    policy = budget_policy_get()
    policy.monthly_budget_usd = Decimal(value)
    for name, field_value in fields.items():
        setattr(policy, name, field_value)
    policy.save()
    return policy


@pytest.mark.parametrize(("spent", "engaged"), [("99.999999", False), ("100.000000", True), ("100.000001", True)])
def test_auto_engage_at_the_budget_boundary(spent, engaged):
    _budget("100.00")
    _spend(spent)

    policy = budget_check_and_alert(today=timezone.localdate())

    assert policy.kill_switch_engaged is engaged
    assert spending_allowed().allowed is not engaged
    if engaged:
        assert policy.kill_switch_auto and policy.kill_switch_by is None
        assert "monthly budget reached" in policy.kill_switch_reason


def test_spending_stops_at_the_budget_even_before_the_check_runs():
    _budget("10.00")
    _spend("10.00")
    decision = spending_allowed()
    assert not decision.allowed and "$10.00" in decision.reason


def test_auto_engage_off_lets_spending_go_past_the_budget():
    _budget("10.00", auto_engage=False)
    _spend("50")
    assert not budget_check_and_alert(today=timezone.localdate()).kill_switch_engaged
    assert spending_allowed().allowed


def test_forecast_rule_only_when_enabled():
    day = date(2025, 6, 10)
    _budget("100.00")
    _spend("40", day=date(2025, 6, 5))  # 40 in 10 days of a 30-day month forecasts 120
    assert not budget_check_and_alert(today=day).kill_switch_engaged
    _budget("100.00", auto_engage_on_forecast=True)
    policy = budget_check_and_alert(today=day)
    assert policy.kill_switch_engaged and "forecast $120.00 " in policy.kill_switch_reason


def test_forecast_exactly_at_the_budget_does_not_engage():
    _budget("120.00", auto_engage_on_forecast=True)
    _spend("40", day=date(2025, 6, 5))
    assert not budget_check_and_alert(today=date(2025, 6, 10)).kill_switch_engaged


def test_a_recorded_transcode_that_reaches_the_budget_engages_the_switch(user, settings):
    settings.TRANSCODE_USD_PER_MINUTE = "1"
    _budget("5.00")
    job = make_job(video=make_video(owner=user, media_file=make_media_file(owner=user)))
    cost_record_transcode(job=job, output_minutes=5, cpu_seconds=1)
    assert budget_policy_get().kill_switch_engaged


def test_engage_needs_a_reason_and_keeps_who_when_why(staff_user):
    with pytest.raises(DomainError, match="reason is required"):
        budget_engage_kill_switch(by=staff_user, reason="  ")
    policy = budget_engage_kill_switch(by=staff_user, reason="runaway uploads")
    assert (policy.kill_switch_engaged, policy.kill_switch_by, policy.kill_switch_reason) == (
        True,
        staff_user,
        "runaway uploads",
    )
    assert policy.kill_switch_at is not None and not policy.kill_switch_auto
    event = CostAlert.objects.get(kind=CostAlert.Kind.KILL_SWITCH_ENGAGED)
    assert event.actor == staff_user and "runaway uploads" in event.message


def test_release_is_refused_while_the_budget_is_still_spent(staff_user):
    _budget("1.00")
    _spend("2")
    budget_check_and_alert(today=timezone.localdate())
    with pytest.raises(Conflict, match="raise the monthly budget"):
        budget_release_kill_switch(by=staff_user)
    assert budget_policy_get().kill_switch_engaged


def test_raising_the_budget_releases_an_automatic_switch(staff_user):
    _budget("1.00")
    _spend("2")
    budget_check_and_alert(today=timezone.localdate())
    policy = budget_update(by=staff_user, monthly_budget_usd=Decimal("50"))
    assert not policy.kill_switch_engaged


def test_staff_switch_is_not_released_by_the_budget_check(staff_user):
    budget_engage_kill_switch(by=staff_user, reason="audit")
    assert budget_check_and_alert(today=timezone.localdate()).kill_switch_engaged


@pytest.mark.django_db(transaction=True)
def test_release_requeues_every_blocked_video_oldest_first(user, staff_user):
    budget_engage_kill_switch(by=staff_user, reason="pause")
    videos = [make_video(owner=user, media_file=make_media_file(owner=user)) for _ in range(3)]
    for video in videos:
        assert transcode_enqueue(video=video) is None
    assert set(Video.objects.values_list("status", flat=True)) == {"blocked"}
    # Uploads stay accepted while engaged: the quota check does not look at the switch.
    quota_check_upload(user=user, size_bytes=10**9, pending_upload_bytes=0)

    budget_release_kill_switch(by=staff_user, reason="budget approved")

    for video in videos:
        video.refresh_from_db()
        assert video.status == Video.Status.QUEUED and video.status_reason == ""
        assert video.jobs.get().status == TranscodeJob.Status.QUEUED
    jobs = list(TranscodeJob.objects.order_by("created_at", "id").values_list("video_id", flat=True))
    assert jobs == [video.id for video in videos]
    assert CostAlert.objects.filter(kind=CostAlert.Kind.KILL_SWITCH_RELEASED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_budget_alerts_are_mailed_once(mailoutbox):
    today = timezone.localdate()
    _budget("100.00")
    _spend("80")
    budget_check_and_alert(today=today)
    budget_check_and_alert(today=today)
    subjects = [mail.subject for mail in mailoutbox]
    assert subjects.count(f"[Django] Costs at 80% of the {today:%Y-%m} budget") == 2  # admins + COST_ALERT_EMAILS
    assert {tuple(mail.to) for mail in mailoutbox} >= {("ops@example.com",), ("finance@example.com",)}
    assert CostAlert.objects.filter(kind=CostAlert.Kind.BUDGET_80).count() == 1

    _spend("20")
    budget_check_and_alert(today=today)
    budget_check_and_alert(today=today)
    assert CostAlert.objects.filter(kind=CostAlert.Kind.BUDGET_100).count() == 1
    assert CostAlert.objects.filter(kind=CostAlert.Kind.KILL_SWITCH_ENGAGED).count() == 1
    assert len([m for m in mailoutbox if "100%" in m.subject]) == 2
    assert len([m for m in mailoutbox if "Kill switch engaged" in m.subject]) == 2


@pytest.mark.django_db(transaction=True)
def test_day_over_day_spike_alerts_once(mailoutbox):
    today = date(2025, 6, 10)
    _budget("100000", spike_threshold_pct=50)
    _spend("1.00", day=today - timedelta(days=2))
    _spend("1.50", day=today - timedelta(days=1))
    budget_check_and_alert(today=today)
    assert not CostAlert.objects.filter(kind=CostAlert.Kind.SPIKE).exists()  # +50% is not above 50%

    _spend("0.000001", day=today - timedelta(days=1))
    budget_check_and_alert(today=today)
    budget_check_and_alert(today=today)
    spike = CostAlert.objects.get(kind=CostAlert.Kind.SPIKE)
    assert spike.period == "2025-06-09"
    assert len([m for m in mailoutbox if "Cost spike on 2025-06-09" in m.subject]) == 2


def test_upload_quota_refuses_with_413_naming_the_quota(user, settings):
    settings.USER_MONTHLY_UPLOAD_GB = "2"
    make_media_file(owner=user, size=1_500_000_000)
    quota_check_upload(user=user, size_bytes=500_000_000, pending_upload_bytes=0)  # exactly 2 GB is allowed
    with pytest.raises(UploadQuotaExceeded) as exc:
        quota_check_upload(user=user, size_bytes=500_000_001, pending_upload_bytes=0)
    assert exc.value.status_code == 413
    assert (
        "USER_MONTHLY_UPLOAD_GB" in exc.value.message
        and "1.500 GB uploaded" in exc.value.message
        and "2 GB quota" in exc.value.message
    )


def test_minutes_quota_refuses_uploads_with_429_and_blocks_transcodes(user, settings):
    settings.USER_MONTHLY_TRANSCODE_MINUTES = "10"
    video = make_video(owner=user, media_file=make_media_file(owner=user), duration=599.0)
    job = make_job(video=video, status="succeeded")
    cost_record_transcode(job=job, output_minutes=30, cpu_seconds=1)
    assert user_month_usage(user=user)[1] == Decimal("9.983333")
    quota_check_upload(user=user, size_bytes=1, pending_upload_bytes=0)

    video.duration = 600.0
    video.save(update_fields=["duration"])
    with pytest.raises(TranscodeQuotaExceeded) as exc:
        quota_check_upload(user=user, size_bytes=1, pending_upload_bytes=0)
    assert exc.value.status_code == 429 and "10.000000 of 10 minutes" in exc.value.message

    other = make_video(owner=user, media_file=make_media_file(owner=user))
    assert transcode_enqueue(video=other) is None
    other.refresh_from_db()
    assert other.status == Video.Status.BLOCKED and "USER_MONTHLY_TRANSCODE_MINUTES" in other.status_reason


@pytest.mark.django_db(transaction=True)
def test_daily_run_retries_quota_blocked_videos_once_allowed(user, settings):
    settings.USER_MONTHLY_TRANSCODE_MINUTES = "1"
    done = make_video(owner=user, media_file=make_media_file(owner=user), duration=60.0)
    cost_record_transcode(job=make_job(video=done, status="succeeded"), output_minutes=1, cpu_seconds=1)
    waiting = make_video(owner=user, media_file=make_media_file(owner=user))
    transcode_enqueue(video=waiting)
    costs_daily()
    waiting.refresh_from_db()
    assert waiting.status == Video.Status.BLOCKED

    settings.USER_MONTHLY_TRANSCODE_MINUTES = "5"
    costs_daily()
    waiting.refresh_from_db()
    assert waiting.status == Video.Status.QUEUED


def test_staff_have_no_quota(staff_user, settings):
    settings.USER_MONTHLY_UPLOAD_GB = "1"
    quota_check_upload(user=staff_user, size_bytes=5 * 10**9, pending_upload_bytes=0)


def test_video_monthly_storage_estimate(user, settings):
    settings.B2_STORAGE_USD_PER_GB_MONTH = "0.006"
    video = make_video(owner=user, media_file=make_media_file(owner=user, size=1_000_000_000))
    assert video_monthly_storage_estimate_usd(video=video) is None
    Rendition.objects.create(
        video=video, name="480p", width=854, height=480, bandwidth=1, playlist_key="k", bytes=500_000_000
    )
    assert video_monthly_storage_estimate_usd(video=video) == Decimal("0.009")
