"""Deliveries to a real HTTP server on 127.0.0.1: signatures, the outbox, retries, timeouts, the send-time SSRF check."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from email.utils import format_datetime

import pytest
from django.db import connection, transaction
from django.utils import timezone
from django_q.models import OrmQ
from standardwebhooks import Webhook

from tests.unpuzzle.webhooks.conftest import make_endpoint
from tests.webhook_receiver import queued_deliveries, run_queued_deliveries
from unpuzzle.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from unpuzzle.webhooks.retries import MAX_ATTEMPTS, RETRY_DELAYS_S
from unpuzzle.webhooks.services import (
    ATTEMPT_LEASE,
    _claim,
    webhook_deliveries_sweep,
    webhook_delivery_attempt,
    webhook_endpoint_secret_rotate,
    webhook_event_record,
)

pytestmark = pytest.mark.django_db(transaction=True)

D = WebhookDelivery.Status
VIDEO = {"id": "0b7a1f3e-8f0c-4a55-9a57-2d5f0c1e6b11", "title": "Entropy", "status": "ready"}


def record(type: str = "video.ready", data: dict | None = None) -> WebhookEvent:
    with transaction.atomic():
        event = webhook_event_record(type=type, data=data or VIDEO)
    assert event is not None
    return event


def test_a_delivery_is_signed_per_standard_webhooks(receiver):
    endpoint = make_endpoint(receiver.url("/ok"), events=["video.ready", "video.failed"])
    other = make_endpoint(receiver.url("/other"), events=["video.failed"])
    event = record()
    assert run_queued_deliveries() == 1, "only the endpoint that subscribed to video.ready gets it"
    [got] = receiver.requests
    payload = Webhook(endpoint.secret).verify(got.body, got.headers)
    assert payload == {
        "id": str(event.id),
        "type": "video.ready",
        "created_at": payload["created_at"],
        "data": VIDEO,
    }
    assert got.headers["webhook-id"] == str(event.id)
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 30
    assert got.headers["content-type"] == "application/json"
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(other.secret).verify(got.body, got.headers)
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status == D.SUCCEEDED and delivery.attempts == 1 and delivery.last_status_code == 200
    [attempt] = WebhookAttempt.objects.filter(delivery=delivery)
    assert attempt.succeeded and attempt.status_code == 200 and attempt.latency_ms is not None
    assert attempt.response_body == ("received " + "x" * 1000)[:512]


def test_a_rolled_back_change_sends_nothing(receiver):
    make_endpoint(receiver.url("/ok"))
    with pytest.raises(RuntimeError), transaction.atomic():
        webhook_event_record(type="video.ready", data=VIDEO)
        raise RuntimeError("the state change failed")
    assert not WebhookEvent.objects.exists() and not WebhookDelivery.objects.exists()
    assert queued_deliveries() == [] and run_queued_deliveries() == 0
    assert receiver.requests == []


def test_no_endpoint_no_event():
    with transaction.atomic():
        assert webhook_event_record(type="video.ready", data=VIDEO) is None
    assert not WebhookEvent.objects.exists()


def test_a_lost_dispatch_is_made_good_by_the_sweep(receiver):
    endpoint = make_endpoint(receiver.url("/ok"))
    event = record()
    OrmQ.objects.all().delete()  # the queued task is lost (broker wiped, cluster crashed)
    assert webhook_deliveries_sweep() == 0, "a task queued a moment ago is not queued twice"
    assert webhook_deliveries_sweep(now=timezone.now() + timedelta(minutes=3)) == 1
    assert run_queued_deliveries() == 1
    [got] = receiver.requests
    assert Webhook(endpoint.secret).verify(got.body, got.headers)["id"] == str(event.id)


def test_a_worker_that_died_mid_attempt_is_made_good_by_the_sweep(receiver):
    make_endpoint(receiver.url("/ok"))
    event = record()
    OrmQ.objects.all().delete()
    delivery = WebhookDelivery.objects.get(event=event)
    now = timezone.now()
    assert _claim(delivery_id=delivery.id, now=now) is not None  # the worker took it, then died
    assert webhook_delivery_attempt(delivery_id=delivery.id, now=now) is None, "held while its attempt may run"
    assert webhook_deliveries_sweep(now=now + ATTEMPT_LEASE - timedelta(seconds=1)) == 0
    assert webhook_deliveries_sweep(now=now + ATTEMPT_LEASE + timedelta(seconds=1)) == 1
    OrmQ.objects.all().delete()
    webhook_delivery_attempt(delivery_id=delivery.id, now=now + ATTEMPT_LEASE + timedelta(seconds=1))
    delivery.refresh_from_db()
    assert delivery.status == D.SUCCEEDED and len(receiver.requests) == 1


def test_5xx_is_retried_on_the_schedule_then_fails(receiver, mailoutbox):
    endpoint = make_endpoint(receiver.url("/status/500"))
    delivery = WebhookDelivery.objects.get(event=record())
    OrmQ.objects.all().delete()
    now = timezone.now()
    for attempt, wait in enumerate([*RETRY_DELAYS_S, None], start=1):
        webhook_delivery_attempt(delivery_id=delivery.id, now=now)
        delivery.refresh_from_db()
        assert delivery.attempts == attempt and delivery.last_status_code == 500
        if wait is None:
            break
        assert delivery.status == D.PENDING and delivery.next_attempt_at == now + timedelta(seconds=wait)
        assert webhook_delivery_attempt(delivery_id=delivery.id, now=now + timedelta(seconds=wait - 1)) is None
        now += timedelta(seconds=wait)
    assert delivery.status == D.FAILED and delivery.next_attempt_at is None
    assert len(receiver.requests) == MAX_ATTEMPTS == WebhookAttempt.objects.filter(delivery=delivery).count()
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.failing_since is not None, "1.3 days of failures: not yet disabled"
    assert mailoutbox == []


def test_an_endpoint_failing_for_too_long_is_disabled_and_staff_told(receiver, settings, mailoutbox):
    settings.WEBHOOK_DISABLE_AFTER_S = 3600
    settings.ADMINS = [("Ops", "ops@example.com")]
    endpoint = make_endpoint(receiver.url("/status/503"))
    delivery = WebhookDelivery.objects.get(event=record())
    now = timezone.now()
    for _ in range(5):  # at once, +30 s, +5 min, +30 min, +2 h: failing for more than an hour
        webhook_delivery_attempt(delivery_id=delivery.id, now=now)
        delivery.refresh_from_db()
        now = delivery.next_attempt_at
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.disabled_reason.startswith("disabled automatically")
    assert [m.subject for m in mailoutbox] == [
        f"{settings.EMAIL_SUBJECT_PREFIX}Webhook endpoint disabled: {endpoint.url}"
    ]
    # Its pending delivery is not tried again, and new events are not recorded for it.
    webhook_delivery_attempt(delivery_id=delivery.id, now=now)
    delivery.refresh_from_db()
    assert delivery.status == D.FAILED and delivery.last_error == "the endpoint is disabled"
    with transaction.atomic():
        assert webhook_event_record(type="video.ready", data=VIDEO) is None


def test_a_success_clears_the_failure_record(receiver):
    endpoint = make_endpoint(receiver.url("/status/500"))
    first = WebhookDelivery.objects.get(event=record())
    webhook_delivery_attempt(delivery_id=first.id)
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=receiver.url("/ok"))
    webhook_delivery_attempt(delivery_id=first.id, now=timezone.now() + timedelta(seconds=31))
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_429_waits_as_long_as_retry_after_says(receiver, form):
    when = format_datetime(timezone.now() + timedelta(seconds=601), usegmt=True).replace(" ", "%20")
    make_endpoint(receiver.url(f"/status/429?after={'600' if form == 'seconds' else when}"))
    delivery = WebhookDelivery.objects.get(event=record())
    now = timezone.now()
    webhook_delivery_attempt(delivery_id=delivery.id, now=now)
    delivery.refresh_from_db()
    assert delivery.status == D.PENDING and delivery.last_status_code == 429
    waited = (delivery.next_attempt_at - now).total_seconds()
    assert 590 <= waited <= 600, "Retry-After (600 s) is longer than the schedule's 30 s"


def test_4xx_fails_at_once(receiver):
    make_endpoint(receiver.url("/status/410"))
    delivery = WebhookDelivery.objects.get(event=record())
    webhook_delivery_attempt(delivery_id=delivery.id)
    delivery.refresh_from_db()
    assert delivery.status == D.FAILED and delivery.attempts == 1 and delivery.last_error == "HTTP 410"


def test_a_redirect_is_not_followed(receiver):
    make_endpoint(receiver.url("/redirect"))
    delivery = WebhookDelivery.objects.get(event=record())
    webhook_delivery_attempt(delivery_id=delivery.id)
    delivery.refresh_from_db()
    assert delivery.status == D.FAILED and delivery.last_status_code == 302
    assert "redirects are not followed" in delivery.last_error
    assert [r.path for r in receiver.requests] == ["/redirect"]


def test_a_slow_endpoint_times_out_without_holding_up_another(receiver, settings):
    settings.WEBHOOK_TIMEOUT_S = 1.0
    make_endpoint(receiver.url("/slow/4"))
    make_endpoint(receiver.url("/ok"))
    event = record()
    slow = WebhookDelivery.objects.get(event=event, endpoint__url__contains="slow")
    fast = WebhookDelivery.objects.get(event=event, endpoint__url__endswith="/ok")
    took: dict[str, float] = {}

    def worker(name: str, delivery_id) -> None:
        started = time.monotonic()
        try:
            webhook_delivery_attempt(delivery_id=delivery_id)
        finally:
            took[name] = time.monotonic() - started
            connection.close()

    threads = [threading.Thread(target=worker, args=args) for args in (("slow", slow.id), ("fast", fast.id))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    slow.refresh_from_db()
    fast.refresh_from_db()
    assert fast.status == D.SUCCEEDED and took["fast"] < 1.0
    assert slow.status == D.PENDING and slow.last_error.startswith("timeout") and 0.9 < took["slow"] < 2.5
    assert WebhookAttempt.objects.get(delivery=slow).status_code is None


def test_a_name_resolving_to_loopback_is_refused_at_send_time(receiver, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["localhost"]
    endpoint = make_endpoint(receiver.url("/ok", host="localhost"))
    delivery = WebhookDelivery.objects.get(event=record())
    webhook_delivery_attempt(delivery_id=delivery.id)
    delivery.refresh_from_db()
    assert delivery.status == D.SUCCEEDED, "allowed: sent to the address checked, named in the Host header"
    assert receiver.requests[0].headers["host"] == f"localhost:{receiver.port}"

    settings.WEBHOOK_ALLOWED_HOSTS = []
    delivery = WebhookDelivery.objects.get(event=record(), endpoint=endpoint)
    webhook_delivery_attempt(delivery_id=delivery.id)
    delivery.refresh_from_db()
    assert delivery.status == D.FAILED and delivery.attempts == 1, "a refused address is not retried"
    assert delivery.last_error.startswith("refused: localhost resolves to 127.0.0.1, which is a loopback address")
    assert len(receiver.requests) == 1


def test_after_rotation_both_secrets_verify_until_the_overlap_ends(receiver, settings):
    settings.WEBHOOK_SECRET_OVERLAP_S = 3600
    endpoint = make_endpoint(receiver.url("/ok"))
    old_secret = endpoint.secret
    rotated = webhook_endpoint_secret_rotate(endpoint=endpoint)
    assert rotated.secret != old_secret
    record()
    run_queued_deliveries()
    got = receiver.requests[-1]
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert Webhook(rotated.secret).verify(got.body, got.headers)
    assert Webhook(old_secret).verify(got.body, got.headers)

    delivery = WebhookDelivery.objects.get(event=record())
    webhook_delivery_attempt(delivery_id=delivery.id, now=timezone.now() + timedelta(seconds=3601))
    got = receiver.requests[-1]
    assert len(got.headers["webhook-signature"].split(" ")) == 1
    assert json.loads(got.body)["type"] == Webhook(rotated.secret).verify(got.body, got.headers)["type"]
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(old_secret).verify(got.body, got.headers)


def test_the_sweep_deletes_old_finished_events_only(receiver, settings):
    settings.WEBHOOK_RETENTION_DAYS = 30
    make_endpoint(receiver.url("/ok"))
    done, pending = record(), record()
    run_queued_deliveries()
    WebhookDelivery.objects.filter(event=pending).update(
        status=D.PENDING, next_attempt_at=timezone.now() + timedelta(days=40)
    )
    webhook_deliveries_sweep(now=timezone.now() + timedelta(days=29))
    assert WebhookEvent.objects.count() == 2
    webhook_deliveries_sweep(now=timezone.now() + timedelta(days=31))
    assert list(WebhookEvent.objects.all()) == [pending], "a pending delivery keeps its event"
    assert not WebhookAttempt.objects.filter(delivery__event=done).exists()
