"""Writes for webhooks: endpoints and their secrets, recording events (the outbox), delivering them.

An app records an event with ``webhook_event_record`` inside the transaction of its state
change: the event and one delivery per subscribed endpoint commit (or roll back) with it. After
commit each delivery is queued as its own short task; the scheduled sweep queues any that are
due and have no task (a lost dispatch, a worker that died, a retry whose wait is over).
"""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.mail import mail_admins
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from unpuzzle.exceptions import DomainError
from unpuzzle.webhooks import retries, transport
from unpuzzle.webhooks.addresses import AddressRefused, url_check_registration, url_resolve_for_send
from unpuzzle.webhooks.events import EVENT_TYPES, TEST_EVENT_TYPE
from unpuzzle.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from unpuzzle.webhooks.selectors import (
    webhook_deliveries_due,
    webhook_endpoints_subscribed,
    webhook_events_expired,
    webhook_secrets_in_use,
)
from unpuzzle.webhooks.signing import secret_generate, webhook_headers

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

DELIVER_TASK = "unpuzzle.webhooks.tasks.webhook_deliver"
# How long a started attempt holds its delivery: past this, a worker that died mid-attempt is presumed dead.
ATTEMPT_LEASE = timedelta(seconds=120)
# Deliveries queued by one sweep at most; the next sweep takes the rest.
SWEEP_BATCH = 500

D = WebhookDelivery.Status


class WebhookUrlRefused(DomainError):
    """The endpoint URL may not receive webhooks (scheme, or an address the SSRF guard refuses)."""

    code = "webhook_url_refused"


# --- endpoints ------------------------------------------------------------------------


def webhook_url_check(*, url: str) -> None:
    """Refuse (400, saying why) a URL that is not https (unless WEBHOOK_ALLOW_HTTP) or whose host is
    an IP literal or a name resolving to a loopback, private, link-local, multicast, reserved or cloud
    metadata address (unless listed in WEBHOOK_ALLOWED_HOSTS). A name that does not resolve yet passes."""
    try:
        url_check_registration(
            url, allow_http=settings.WEBHOOK_ALLOW_HTTP, allowed_hosts=settings.WEBHOOK_ALLOWED_HOSTS
        )
    except AddressRefused as exc:
        raise WebhookUrlRefused(f"url refused: {exc}") from exc


def webhook_events_check(*, events: Iterable[str]) -> list[str]:
    """The event types, deduplicated in order; 400 naming any unknown one and the known ones."""
    wanted = list(dict.fromkeys(events))
    unknown = [name for name in wanted if name not in EVENT_TYPES]
    if unknown:
        raise DomainError(
            f"unknown event type {', '.join(map(repr, unknown))}; known types: {', '.join(EVENT_TYPES)}",
            code="unknown_event_type",
        )
    if not wanted:
        raise DomainError(f"list at least one event type; known types: {', '.join(EVENT_TYPES)}", code="no_events")
    return wanted


@transaction.atomic
def webhook_endpoint_create(
    *, url: str, events: Iterable[str], enabled: bool = True, description: str = "", created_by: User | None = None
) -> WebhookEndpoint:
    """Register an endpoint with a new secret (``endpoint.secret``: show it to the caller once)."""
    webhook_url_check(url=url)
    endpoint = WebhookEndpoint.objects.create(
        url=url,
        events=webhook_events_check(events=events),
        enabled=enabled,
        description=description,
        secret=secret_generate(),
        created_by=created_by,
    )
    logger.info("webhook_endpoint_id=%s created for %s", endpoint.id, url)
    return endpoint


@transaction.atomic
def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    events: Iterable[str] | None = None,
    enabled: bool | None = None,
    description: str | None = None,
) -> WebhookEndpoint:
    """Change what is given; a changed URL is checked again, and enabling clears the failure record."""
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    fields: list[str] = []
    if url is not None and url != endpoint.url:
        webhook_url_check(url=url)
        endpoint.url = url
        fields.append("url")
    if events is not None:
        endpoint.events = webhook_events_check(events=events)
        fields.append("events")
    if description is not None:
        endpoint.description = description
        fields.append("description")
    if enabled is not None and enabled != endpoint.enabled:
        endpoint.enabled = enabled
        endpoint.disabled_reason = "" if enabled else "disabled by staff"
        endpoint.failing_since = None
        fields += ["enabled", "disabled_reason", "failing_since"]
    if fields:
        endpoint.save(update_fields=[*fields, "updated_at"])
    return endpoint


@transaction.atomic
def webhook_endpoint_secret_rotate(*, endpoint: WebhookEndpoint, now: datetime | None = None) -> WebhookEndpoint:
    """A new secret (``endpoint.secret``: show it once); the old one also signs for WEBHOOK_SECRET_OVERLAP_S."""
    now = now or timezone.now()
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + timedelta(seconds=settings.WEBHOOK_SECRET_OVERLAP_S)
    endpoint.secret = secret_generate()
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
    logger.info("webhook_endpoint_id=%s secret rotated", endpoint.id)
    return endpoint


# --- events (the outbox) --------------------------------------------------------------


def _json_ready(data: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def _deliveries_create(*, event: WebhookEvent, endpoints: Iterable[WebhookEndpoint]) -> None:
    now = timezone.now()
    deliveries = WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(event=event, endpoint=endpoint, next_attempt_at=now) for endpoint in endpoints]
    )
    for delivery in deliveries:
        transaction.on_commit(functools.partial(webhook_delivery_dispatch, delivery_id=delivery.id))


@transaction.atomic
def webhook_event_record(*, type: str, data: Mapping[str, Any]) -> WebhookEvent | None:
    """Record that ``type`` happened, in the caller's transaction; ``data`` is the object as the API shows it.

    Writes the event and a delivery for each enabled endpoint that subscribed to ``type``
    (nothing when none did); they are queued after commit, so a rolled-back change sends nothing.
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"{type!r} is not a webhook event type")
    endpoints = webhook_endpoints_subscribed(type=type)
    if not endpoints:
        return None
    event = WebhookEvent.objects.create(type=type, data=_json_ready(data))
    _deliveries_create(event=event, endpoints=endpoints)
    logger.info("webhook event %s %s for %d endpoints", type, event.id, len(endpoints))
    return event


@transaction.atomic
def webhook_test_send(*, endpoint: WebhookEndpoint, by: User | None = None) -> WebhookDelivery:
    """Send a ``webhook.test`` event to ``endpoint`` (whatever it subscribed to, enabled or not)."""
    event = WebhookEvent.objects.create(
        type=TEST_EVENT_TYPE,
        data={
            "endpoint_id": str(endpoint.id),
            "message": "A test event sent from the Unpuzzle admin",
            "sent_by": by.get_username() if by else None,
        },
    )
    _deliveries_create(event=event, endpoints=[endpoint])
    return WebhookDelivery.objects.get(event=event, endpoint=endpoint)


@transaction.atomic
def webhook_delivery_redeliver(*, delivery: WebhookDelivery, now: datetime | None = None) -> WebhookDelivery:
    """Send a delivery again (same event id, a fresh round of attempts); a pending one is sent at once."""
    delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
    if delivery.status != D.PENDING:
        delivery.transition(D.PENDING)
    delivery.attempts = 0
    delivery.next_attempt_at = now or timezone.now()
    delivery.dispatched_at = None
    delivery.save(update_fields=["status", "attempts", "next_attempt_at", "dispatched_at", "updated_at"])
    transaction.on_commit(lambda: webhook_delivery_dispatch(delivery_id=delivery.id))
    return delivery


# --- delivery -------------------------------------------------------------------------


def webhook_delivery_dispatch(*, delivery_id: uuid.UUID) -> None:
    """Queue one delivery attempt as its own task on the short-task cluster (one slow endpoint holds one worker)."""
    async_task(
        DELIVER_TASK,
        str(delivery_id),
        task_name=f"webhook-{delivery_id}-{time.time_ns()}",
        group="webhooks",
        cluster=settings.SHORT_TASKS_CLUSTER,
    )
    WebhookDelivery.objects.filter(pk=delivery_id).update(dispatched_at=timezone.now())


def webhook_deliveries_sweep(*, now: datetime | None = None) -> int:
    """Queue every due delivery without a recent task (the scheduled sweep); returns how many.

    Also deletes events older than WEBHOOK_RETENTION_DAYS that have no pending delivery, with
    their deliveries and attempts.
    """
    now = now or timezone.now()
    due = list(webhook_deliveries_due(now=now).values_list("id", flat=True)[:SWEEP_BATCH])
    for delivery_id in due:
        webhook_delivery_dispatch(delivery_id=delivery_id)
    if due:
        logger.info("webhook sweep queued %d deliveries", len(due))
    expired = webhook_events_expired(before=now - timedelta(days=settings.WEBHOOK_RETENTION_DAYS))
    deleted, _ = WebhookEvent.objects.filter(pk__in=list(expired.values_list("pk", flat=True)[:SWEEP_BATCH])).delete()
    if deleted:
        logger.info("webhook sweep deleted %d old rows", deleted)
    return len(due)


def webhook_payload(*, event: WebhookEvent) -> bytes:
    """The body every delivery of ``event`` sends: ``{"id", "type", "created_at", "data"}``."""
    payload = {"id": str(event.id), "type": event.type, "created_at": event.created_at, "data": event.data}
    return json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":")).encode()


@transaction.atomic
def _claim(*, delivery_id: uuid.UUID | str, now: datetime) -> WebhookDelivery | None:
    """Take a due delivery for one attempt (None: not due, done, or another worker has it)."""
    delivery = (
        WebhookDelivery.objects.select_for_update().select_related("event", "endpoint").filter(pk=delivery_id).first()
    )
    if delivery is None or delivery.status != D.PENDING:
        return None
    if delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
        return None
    if not delivery.endpoint.enabled and delivery.event.type != TEST_EVENT_TYPE:
        delivery.transition(D.FAILED)
        delivery.last_error = "the endpoint is disabled"
        delivery.next_attempt_at = None
        delivery.save(update_fields=["status", "last_error", "next_attempt_at", "updated_at"])
        return None
    delivery.attempts += 1
    delivery.next_attempt_at = now + ATTEMPT_LEASE
    delivery.save(update_fields=["attempts", "next_attempt_at", "updated_at"])
    return delivery


def webhook_delivery_attempt(*, delivery_id: uuid.UUID | str, now: datetime | None = None) -> WebhookDelivery | None:
    """Make one attempt of a due delivery and record it (the deliver task runs this; re-runs are no-ops).

    The URL is checked again after DNS resolution and the request goes to that very address,
    within WEBHOOK_TIMEOUT_S, redirects not followed. 2xx: delivered. Timeout, connection
    error, 5xx or 429: tried again on the backoff schedule (later if Retry-After says so) until
    the attempts run out. Anything else (4xx, 3xx, a refused address): failed at once.
    """
    now = now or timezone.now()
    delivery = _claim(delivery_id=delivery_id, now=now)
    if delivery is None:
        return None
    endpoint, event = delivery.endpoint, delivery.event
    body = webhook_payload(event=event)
    headers = webhook_headers(
        secrets_in_use=webhook_secrets_in_use(endpoint=endpoint, now=now),
        msg_id=str(event.id),
        timestamp=int(time.time()),
        body=body,
    )
    outcome = _Outcome()
    started = time.monotonic()
    try:
        target, address = url_resolve_for_send(
            endpoint.url, allow_http=settings.WEBHOOK_ALLOW_HTTP, allowed_hosts=settings.WEBHOOK_ALLOWED_HOSTS
        )
        response = transport.post(
            target=target, address=address, headers=headers, body=body, timeout_s=settings.WEBHOOK_TIMEOUT_S
        )
    except AddressRefused as exc:
        outcome.error, outcome.retryable = f"refused: {exc}", False
    except transport.SendTimeout as exc:
        outcome.error = f"timeout: {exc}"
    except OSError as exc:
        outcome.error = f"connection error: {exc}"
    else:
        outcome.status_code = response.status
        outcome.latency_ms = response.latency_ms
        outcome.body = response.body_start.decode("utf-8", errors="replace")
        outcome.succeeded = 200 <= response.status < 300
        outcome.retryable = retries.status_retryable(response.status)
        outcome.retry_after_s = retries.retry_after_seconds(response.retry_after, now=now)
        if not outcome.succeeded:
            outcome.error = f"HTTP {response.status}" + (
                " (redirects are not followed)" if response.status < 400 else ""
            )
    if outcome.latency_ms is None:
        outcome.latency_ms = int((time.monotonic() - started) * 1000)
    return _attempt_record(delivery=delivery, outcome=outcome, started_at=now)


@dataclass
class _Outcome:
    """What one attempt came to."""

    succeeded: bool = False
    retryable: bool = True
    status_code: int | None = None
    latency_ms: int | None = None
    body: str = ""
    error: str = ""
    retry_after_s: int | None = None


@transaction.atomic
def _attempt_record(*, delivery: WebhookDelivery, outcome: _Outcome, started_at: datetime) -> WebhookDelivery:
    delivery = WebhookDelivery.objects.select_for_update().select_related("event", "endpoint").get(pk=delivery.pk)
    WebhookAttempt.objects.create(
        delivery=delivery,
        started_at=started_at,
        status_code=outcome.status_code,
        latency_ms=outcome.latency_ms,
        response_body=outcome.body,
        error=outcome.error[:1000],
        succeeded=outcome.succeeded,
    )
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error[:1000]
    delivery.dispatched_at = None
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=delivery.endpoint_id)
    if outcome.succeeded:
        delivery.transition(D.SUCCEEDED)
        delivery.next_attempt_at = None
        if endpoint.failing_since is not None:
            endpoint.failing_since = None
            endpoint.save(update_fields=["failing_since", "updated_at"])
    else:
        retry_at = (
            retries.next_attempt_at(attempts=delivery.attempts, now=started_at, retry_after_s=outcome.retry_after_s)
            if outcome.retryable
            else None
        )
        if retry_at is None:
            delivery.transition(D.FAILED)
        delivery.next_attempt_at = retry_at
        _endpoint_failure_note(endpoint=endpoint, now=started_at)
    delivery.save(
        update_fields=["status", "last_status_code", "last_error", "dispatched_at", "next_attempt_at", "updated_at"]
    )
    logger.info(
        "webhook_delivery_id=%s event %s to %s attempt %d: %s",
        delivery.id,
        delivery.event.type,
        endpoint.url,
        delivery.attempts,
        "delivered" if outcome.succeeded else f"{outcome.error}; {delivery.status}",
    )
    return delivery


def _endpoint_failure_note(*, endpoint: WebhookEndpoint, now: datetime) -> None:
    """Remember since when the endpoint fails; disable it (and tell staff) after WEBHOOK_DISABLE_AFTER_S of that."""
    if endpoint.failing_since is None:
        endpoint.failing_since = now
        endpoint.save(update_fields=["failing_since", "updated_at"])
        return
    failing_for = now - endpoint.failing_since
    if not endpoint.enabled or failing_for < timedelta(seconds=settings.WEBHOOK_DISABLE_AFTER_S):
        return
    endpoint.enabled = False
    endpoint.disabled_reason = (
        f"disabled automatically on {now:%Y-%m-%d %H:%M %Z}: every attempt failed since "
        f"{endpoint.failing_since:%Y-%m-%d %H:%M %Z} (WEBHOOK_DISABLE_AFTER_S); fix the receiver, then enable it"
    )
    endpoint.save(update_fields=["enabled", "disabled_reason", "updated_at"])
    logger.warning("webhook_endpoint_id=%s %s", endpoint.id, endpoint.disabled_reason)
    subject, message = f"Webhook endpoint disabled: {endpoint.url}", endpoint.disabled_reason
    transaction.on_commit(lambda: mail_admins(subject, message, fail_silently=True))
