"""The staff costs dashboard in the admin: permissions, rendering, kill switch button, CSV, banner."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from media_library.models import Video
from tests.factories import make_cost_entry, make_media_file, make_staff_with, make_video
from transcoding.costs.budget import budget_engage_kill_switch
from transcoding.costs.selectors import budget_policy_get
from transcoding.models import CostAlert, CostLogEntry
from transcoding.services.jobs import transcode_enqueue

pytestmark = pytest.mark.django_db

DASHBOARD = "admin:transcoding_costdashboard_changelist"
KILL_SWITCH = "admin:transcoding_costdashboard_kill_switch"
EXPORT = "admin:transcoding_costdashboard_export"


@pytest.fixture
def data(user):
    today = timezone.localdate()
    video = make_video(owner=user, media_file=make_media_file(owner=user), title="Organic Chemistry 2")
    make_cost_entry(
        date=today,
        kind="transcode",
        quantity=10,
        unit="minute",
        unit_price="0.005",
        amount="0.05",
        video=video,
        owner=user,
    )
    make_cost_entry(
        date=today - timedelta(days=1),
        kind="storage",
        quantity=2,
        unit="GB-day",
        unit_price="0.0002",
        amount="0.0004",
        video=video,
        owner=user,
        note='say "hi", ok',
    )
    make_cost_entry(
        date=today - timedelta(days=100), kind="egress", quantity=1, unit="GB", unit_price="0.01", amount="0.01"
    )
    return video


def test_dashboard_renders_with_data(client, admin_user, data):
    client.force_login(admin_user)
    response = client.get(reverse(DASHBOARD))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in html
    assert "transcode: $0.05<" in html  # a bar segment's tooltip
    assert "Organic Chemistry 2" in html  # top videos
    assert 'id="costs-mtd"' in html and 'id="kill-switch-form"' in html
    assert "Engage: stop all new transcodes" in html


def test_dashboard_renders_with_no_data(client, admin_user):
    client.force_login(admin_user)
    response = client.get(reverse(DASHBOARD))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<svg" in html and "No costs recorded in this period" in html
    assert "No costs recorded for a video this month." in html


def test_dashboard_is_linked_from_the_admin_index(client, admin_user):
    client.force_login(admin_user)
    assert reverse(DASHBOARD) in client.get(reverse("admin:index")).content.decode()


def test_dashboard_permissions(client, user, staff_user):
    url = reverse(DASHBOARD)
    assert client.get(url).status_code == 302  # anonymous: to the login page
    client.force_login(staff_user)
    assert client.get(url).status_code == 403
    assert client.get(reverse(EXPORT)).status_code == 403
    client.force_login(make_staff_with("view_costs"))
    assert client.get(url).status_code == 200
    response = client.get(url)
    assert 'id="kill-switch-form"' not in response.content.decode()  # viewing is not managing
    assert client.post(reverse(KILL_SWITCH), {"action": "engage", "reason": "x"}).status_code == 403
    assert not budget_policy_get().kill_switch_engaged


def test_kill_switch_button_requires_a_reason_and_csrf(user):
    from django.test import Client

    manager = make_staff_with("view_costs", "manage_budget")
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)
    assert client.post(reverse(KILL_SWITCH), {"action": "engage", "reason": "no token"}).status_code == 403
    page = client.get(reverse(DASHBOARD))
    token = page.context["csrf_token"]

    response = client.post(
        reverse(KILL_SWITCH), {"action": "engage", "reason": "", "csrfmiddlewaretoken": str(token)}, follow=True
    )
    assert "Give a reason" in response.content.decode()
    assert not budget_policy_get().kill_switch_engaged

    response = client.post(
        reverse(KILL_SWITCH),
        {"action": "engage", "reason": "vendor invoice", "csrfmiddlewaretoken": str(token)},
        follow=True,
    )
    policy = budget_policy_get()
    assert (
        policy.kill_switch_engaged
        and policy.kill_switch_reason == "vendor invoice"
        and policy.kill_switch_by == manager
    )
    html = response.content.decode()
    assert "ENGAGED" in html and "Release and requeue blocked videos" in html
    assert "Kill switch engaged by" in html  # the banner and the history


@pytest.mark.django_db(transaction=True)
def test_release_button_requeues_blocked_videos(client, admin_user, user):
    budget_engage_kill_switch(by=admin_user, reason="pause")
    video = make_video(owner=user, media_file=make_media_file(owner=user))
    transcode_enqueue(video=video)
    client.force_login(admin_user)
    client.post(reverse(KILL_SWITCH), {"action": "release", "reason": ""})
    video.refresh_from_db()
    assert video.status == Video.Status.QUEUED and not budget_policy_get().kill_switch_engaged


def test_csv_export_streams_the_month(client, admin_user, data):
    client.force_login(admin_user)
    today = timezone.localdate()
    response = client.get(reverse(EXPORT), {"month": today.strftime("%Y-%m")})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert f'filename="costs-{today:%Y-%m}.csv"' in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:6] == ["date", "kind", "quantity", "unit", "unit_price_usd", "amount_usd"]
    expected = CostLogEntry.objects.filter(date__year=today.year, date__month=today.month).count()
    assert len(rows) == 1 + expected
    assert all(row[0].startswith(today.strftime("%Y-%m")) for row in rows[1:])
    assert client.get(reverse(EXPORT), {"month": "2025-13"}).status_code == 400


def test_alert_banner_on_admin_pages_until_acknowledged(client, admin_user, staff_user):
    CostAlert.objects.create(
        kind="budget_80", period="2025-06", subject="Costs at 80% of the 2025-06 budget", message="m"
    )
    client.force_login(admin_user)
    assert 'id="cost-alert-banner"' in client.get(reverse("admin:index")).content.decode()
    client.force_login(staff_user)  # no costs permission: no banner
    assert 'id="cost-alert-banner"' not in client.get(reverse("admin:index")).content.decode()
    client.force_login(admin_user)
    client.post(reverse("admin:transcoding_costdashboard_acknowledge"))
    assert 'id="cost-alert-banner"' not in client.get(reverse("admin:index")).content.decode()
    assert CostAlert.objects.get().acknowledged_by == admin_user


def test_the_budget_form_applies_the_budget_rules_like_the_api(client, admin_user):
    from transcoding.models import BudgetPolicy

    make_cost_entry(kind="transcode", quantity=1, unit="minute", unit_price="2.898", amount="2.898")  # 82.8% of $3.50
    policy = budget_policy_get()
    url = reverse("admin:transcoding_budgetpolicy_change", args=[policy.pk])
    form = {"monthly_budget_usd": "3.50", "auto_engage": "on", "spike_threshold_pct": "50"}
    client.force_login(admin_user)
    assert client.post(url, form).status_code == 302
    assert CostAlert.objects.filter(kind=CostAlert.Kind.BUDGET_80).exists(), "lowering the budget alerts at once"
    assert not BudgetPolicy.objects.get().kill_switch_engaged

    make_cost_entry(kind="transcode", quantity=1, unit="minute", unit_price="1", amount="1")  # past $3.50
    assert client.post(url, form).status_code == 302
    policy = BudgetPolicy.objects.get()
    assert policy.kill_switch_engaged and policy.kill_switch_auto

    assert client.post(url, {**form, "monthly_budget_usd": "100.00"}).status_code == 302
    policy = BudgetPolicy.objects.get()
    assert not policy.kill_switch_engaged, "raising the budget releases the switch the rules engaged"


def test_dashboard_budget_form_is_for_budget_managers_and_shows_refusals(client):
    url = reverse("admin:transcoding_costdashboard_budget")
    viewer = make_staff_with("view_costs")
    client.force_login(viewer)
    assert 'id="budget-form"' not in client.get(reverse(DASHBOARD)).content.decode()
    assert client.post(url, {"monthly_budget_usd": "5"}).status_code == 403

    client.force_login(make_staff_with("view_costs", "manage_budget"))
    assert client.get(url).status_code == 405
    response = client.post(url, {"monthly_budget_usd": "12.345"})
    assert response.status_code == 400
    assert "Ensure that there are no more than 2 decimal places." in response.content.decode()
    assert budget_policy_get().monthly_budget_usd == Decimal("100.00")

    response = client.post(url, {"monthly_budget_usd": "12.50"}, follow=True)
    assert "Monthly budget set to $12.50. The kill switch is released." in response.content.decode()
    assert budget_policy_get().monthly_budget_usd == Decimal("12.50")


def test_money_reads_as_money_on_the_dashboard_and_in_the_ledger(client, admin_user):
    make_cost_entry(kind="transcode", quantity="579.67", unit_price="0.005", amount="2.89835")
    client.force_login(admin_user)
    html = client.get(reverse(DASHBOARD)).content.decode()
    assert 'id="costs-mtd">$2.90<' in html and "of $100.00 budget" in html
    assert "2.8983" not in html and "2.8984" not in html
    ledger = client.get(reverse("admin:transcoding_costlogentry_changelist")).content.decode()
    assert "$2.90" in ledger and "$0.005" in ledger and "2.898350" not in ledger
    entry = CostLogEntry.objects.get()
    page = client.get(reverse("admin:transcoding_costlogentry_change", args=[entry.pk])).content.decode()
    assert "$2.90" in page and "2.898350" not in page
