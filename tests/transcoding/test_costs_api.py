"""Staff costs API: permissions, budget GET/PATCH through the services, monthly summary."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tests.factories import make_cost_entry, make_media_file, make_staff_with, make_video
from transcoding.costs.selectors import budget_policy_get
from transcoding.services.jobs import transcode_enqueue

pytestmark = pytest.mark.django_db

BUDGET = "/api/v1/costs/budget/"
SUMMARY = "/api/v1/costs/summary/"


def _client(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def viewer(db):
    return make_staff_with("view_costs")


@pytest.fixture
def manager(db):
    return make_staff_with("view_costs", "manage_budget")


@pytest.mark.parametrize("path", ["/api/v1/costs/", BUDGET, SUMMARY])
def test_anonymous_gets_401_and_non_costs_users_403(path, user, staff_user):
    assert _client().get(path).status_code == 401
    assert _client(user).get(path).status_code == 403
    assert _client(staff_user).get(path).status_code == 403  # staff without transcoding.view_costs


def test_costs_root_links_both_endpoints(viewer):
    body = _client(viewer).get("/api/v1/costs/").json()
    assert body == {"budget": "http://testserver" + BUDGET, "summary": "http://testserver" + SUMMARY}


def test_budget_shows_spend_and_forecast(viewer, admin_user):
    today = timezone.localdate()
    make_cost_entry(date=today, kind="storage", quantity=1, unit="GB-day", unit_price="1.5", amount="1.5")
    for user in (viewer, admin_user):
        body = _client(user).get(BUDGET).json()
        assert body["monthly_budget_usd"] == "100.00"
        assert Decimal(body["month_to_date_usd"]) == Decimal("1.5")
        assert Decimal(body["forecast_usd"]) > 0
        assert body["kill_switch_engaged"] is False and body["kill_switch_reason"] == ""


def test_viewer_cannot_patch(viewer):
    response = _client(viewer).patch(BUDGET, {"monthly_budget_usd": "5"}, format="json")
    assert response.status_code == 403
    assert budget_policy_get().monthly_budget_usd == Decimal("100.00")


def test_patch_engage_needs_a_reason(manager):
    response = _client(manager).patch(BUDGET, {"kill_switch_engaged": True}, format="json")
    assert response.status_code == 400
    assert "kill_switch_reason is required" in response.json()["detail"]
    assert not budget_policy_get().kill_switch_engaged


@pytest.mark.django_db(transaction=True)
def test_patch_engages_and_releases_through_the_services(manager, user):
    client = _client(manager)
    body = client.patch(
        BUDGET, {"kill_switch_engaged": True, "kill_switch_reason": "invoice review"}, format="json"
    ).json()
    assert body["kill_switch_engaged"] is True and body["kill_switch_reason"] == "invoice review"
    assert body["kill_switch_by"] == manager.username
    video = make_video(owner=user, media_file=make_media_file(owner=user))
    assert transcode_enqueue(video=video) is None

    body = client.patch(BUDGET, {"kill_switch_engaged": False}, format="json").json()
    assert body["kill_switch_engaged"] is False
    video.refresh_from_db()
    assert video.status == "queued" and video.jobs.count() == 1


def test_patch_budget_then_release_in_one_request(manager):
    make_cost_entry(
        date=timezone.localdate(), kind="transcode", quantity=1, unit="minute", unit_price="150", amount="150"
    )
    client = _client(manager)
    client.get(BUDGET)
    from transcoding.costs.budget import budget_check_and_alert

    assert budget_check_and_alert(today=timezone.localdate()).kill_switch_engaged
    response = client.patch(BUDGET, {"kill_switch_engaged": False}, format="json")
    assert response.status_code == 409 and "raise the monthly budget" in response.json()["detail"]
    response = client.patch(BUDGET, {"monthly_budget_usd": "500.00", "kill_switch_engaged": False}, format="json")
    assert response.status_code == 200
    assert response.json()["monthly_budget_usd"] == "500.00" and response.json()["kill_switch_engaged"] is False


def test_patch_rejects_a_negative_budget(manager):
    response = _client(manager).patch(BUDGET, {"monthly_budget_usd": "-1"}, format="json")
    assert response.status_code == 400 and "monthly_budget_usd" in response.json()


def test_summary_totals_by_kind_and_by_day(viewer):
    make_cost_entry(
        date=date(2025, 6, 2), kind="storage", quantity=1, unit="GB-day", unit_price="0.0002", amount="0.0002"
    )
    make_cost_entry(
        date=date(2025, 6, 2), kind="transcode", quantity=10, unit="minute", unit_price="0.005", amount="0.05"
    )
    make_cost_entry(date=date(2025, 6, 30), kind="egress", quantity=1, unit="GB", unit_price="0.01", amount="0.01")
    make_cost_entry(date=date(2025, 7, 1), kind="egress", quantity=1, unit="GB", unit_price="0.01", amount="0.01")

    body = _client(viewer).get(SUMMARY, {"month": "2025-06"}).json()

    assert body["month"] == "2025-06" and body["start"] == "2025-06-01" and body["end"] == "2025-06-30"
    assert Decimal(body["total_usd"]) == Decimal("0.0602")
    assert {k: Decimal(v) for k, v in body["by_kind"].items()} == {
        "storage": Decimal("0.0002"),
        "egress": Decimal("0.01"),
        "transcode": Decimal("0.05"),
        "requests": 0,
    }
    assert len(body["by_day"]) == 30
    june2 = body["by_day"][1]
    assert june2["date"] == "2025-06-02" and Decimal(june2["total_usd"]) == Decimal("0.0502")
    assert Decimal(body["by_day"][0]["total_usd"]) == 0


@pytest.mark.parametrize("month", ["2025-13", "june", "2025-6", "9999-12", "0001-01"])
def test_summary_bad_month_is_a_clear_400(viewer, month):
    response = _client(viewer).get(SUMMARY, {"month": month})
    assert response.status_code == 400
    assert "YYYY-MM" in response.json()["detail"] and response.json()["code"] == "invalid_month"


def test_openapi_schema_has_the_costs_paths_without_warnings(tmp_path):
    from django.core.management import call_command

    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = out.read_text()
    assert "/api/v1/costs/budget/" in schema and "/api/v1/costs/summary/" in schema


def test_summary_for_the_far_future_says_which_months_exist(viewer):
    response = _client(viewer).get(SUMMARY, {"month": "9999-12"})
    assert response.status_code == 400
    assert response.json()["detail"] == "month must be between 2000-01 and 2999-12 (YYYY-MM), not '9999-12'"


def test_a_spike_threshold_beyond_any_column_is_a_clear_400(manager):
    response = _client(manager).patch(BUDGET, {"spike_threshold_pct": 2**31}, format="json")
    assert response.status_code == 400
    assert response.json()["spike_threshold_pct"] == ["Ensure this value is less than or equal to 10000."]
