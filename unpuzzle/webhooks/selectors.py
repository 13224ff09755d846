"""Reads for webhooks: who subscribed to an event, which deliveries are due, which secrets sign."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Q, QuerySet

from unpuzzle.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent

# A delivery whose task was queued this long ago without an attempt starting lost its task.
DISPATCH_STALE = timedelta(minutes=2)


def webhook_endpoints_subscribed(*, type: str) -> list[WebhookEndpoint]:
    """Enabled endpoints that listed ``type`` (few rows: filtered here, as SQLite has no JSON containment)."""
    return [endpoint for endpoint in WebhookEndpoint.objects.filter(enabled=True) if type in endpoint.events]


def webhook_deliveries_due(*, now: datetime) -> QuerySet[WebhookDelivery]:
    """Pending deliveries due by ``now`` with no task queued for them recently, oldest due first."""
    return (
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
        .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=now - DISPATCH_STALE))
        .order_by("next_attempt_at")
    )


def webhook_events_expired(*, before: datetime) -> QuerySet[WebhookEvent]:
    """Events recorded before ``before`` none of whose deliveries is still pending."""
    return WebhookEvent.objects.filter(created_at__lt=before).exclude(deliveries__status=WebhookDelivery.Status.PENDING)


def webhook_secrets_in_use(*, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets a delivery is signed with: the current one, and the previous one during its overlap."""
    in_use = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_secret_expires_at and endpoint.previous_secret_expires_at > now:
        in_use.append(endpoint.previous_secret)
    return in_use
