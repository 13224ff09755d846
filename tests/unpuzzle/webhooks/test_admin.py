"""The admin: register (secret shown once), send a test event, see deliveries and attempts, redeliver."""

from __future__ import annotations

import pytest
from django.urls import reverse
from standardwebhooks import Webhook

from tests.unpuzzle.webhooks.conftest import make_endpoint
from tests.webhook_receiver import run_queued_deliveries
from unpuzzle.webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db(transaction=True)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def run_action(client, model: str, action: str, objects) -> list[str]:
    """Run an admin action on ``objects`` from the changelist; the messages it left."""
    response = client.post(
        reverse(f"admin:unpuzzle_{model}_changelist"),
        {"action": action, "_selected_action": [str(obj.pk) for obj in objects]},
        follow=True,
    )
    assert response.status_code == 200
    return messages_of(response)


def test_register_shows_the_secret_once(client, admin_user, receiver):
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:unpuzzle_webhookendpoint_add"),
        {"url": receiver.url("/ok"), "events": ["video.ready", "budget.alert"], "enabled": "on", "description": "LMS"},
        follow=True,
    )
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.events == ["video.ready", "budget.alert"] and endpoint.created_by == admin_user
    [shown] = [m for m in messages_of(response) if "secret" in m]
    assert endpoint.secret in shown and "not shown again" in shown
    change = client.get(reverse("admin:unpuzzle_webhookendpoint_change", args=[endpoint.pk]))
    assert change.status_code == 200 and endpoint.secret.encode() not in change.content


def test_register_refuses_a_loopback_url_without_the_allowance(client, admin_user, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = []
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:unpuzzle_webhookendpoint_add"),
        {"url": "http://127.0.0.1:9/hook", "events": ["video.ready"], "enabled": "on"},
    )
    assert response.status_code == 200
    assert "127.0.0.1 is a loopback address" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_send_test_event_then_redeliver(client, admin_user, receiver):
    endpoint = make_endpoint(receiver.url("/status/404"))
    client.force_login(admin_user)
    assert any(
        "Test event queued for 1 endpoint" in m
        for m in run_action(client, "webhookendpoint", "send_test_event", [endpoint])
    )
    assert run_queued_deliveries() == 1
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert delivery.event.type == "webhook.test" and delivery.status == WebhookDelivery.Status.FAILED

    # Endpoint -> its deliveries -> the attempts of one.
    endpoint_page = client.get(reverse("admin:unpuzzle_webhookendpoint_change", args=[endpoint.pk])).content.decode()
    deliveries_url = reverse("admin:unpuzzle_webhookdelivery_changelist") + f"?endpoint__id__exact={endpoint.pk}"
    assert deliveries_url.replace("&", "&amp;") in endpoint_page or deliveries_url in endpoint_page
    assert "webhook.test" in client.get(deliveries_url).content.decode()
    delivery_page = client.get(reverse("admin:unpuzzle_webhookdelivery_change", args=[delivery.pk])).content.decode()
    assert "404" in delivery_page and "received xxx" in delivery_page

    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=receiver.url("/ok"))
    assert any("queued again" in m for m in run_action(client, "webhookdelivery", "redeliver", [delivery]))
    assert run_queued_deliveries() == 1
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED and delivery.attempt_rows.count() == 2
    last = receiver.requests[-1]
    assert last.headers["webhook-id"] == str(delivery.event_id), "a redelivery keeps the event id"
    assert Webhook(endpoint.secret).verify(last.body, last.headers)["type"] == "webhook.test"


def test_rotate_action_shows_the_new_secret(client, admin_user, receiver):
    endpoint = make_endpoint(receiver.url("/ok"))
    client.force_login(admin_user)
    shown = run_action(client, "webhookendpoint", "rotate_secret", [endpoint])
    endpoint.refresh_from_db()
    assert endpoint.previous_secret and any(endpoint.secret in m for m in shown)


def test_an_automatically_disabled_endpoint_is_pointed_out(client, admin_user, receiver):
    endpoint = make_endpoint(receiver.url("/ok"))
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        enabled=False, disabled_reason="disabled automatically on 2026-05-01: every attempt failed since 2026-04-28"
    )
    client.force_login(admin_user)
    response = client.get(reverse("admin:unpuzzle_webhookendpoint_changelist"))
    assert any(m.startswith(f"{endpoint.url} was disabled automatically") for m in messages_of(response))
    assert client.get(reverse("admin:unpuzzle_webhookevent_changelist")).status_code == 200
