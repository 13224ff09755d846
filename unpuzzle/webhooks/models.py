"""Webhook endpoints, the event outbox, one delivery per (event, endpoint) and each attempt of it."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from unpuzzle.states import apply_transition


class WebhookEndpoint(models.Model):
    """A URL that receives the event types it lists, signed with its secret."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    url = models.URLField(max_length=2000, help_text="https URL that receives the events (POST, JSON)")
    events = models.JSONField(default=list, help_text="Event types sent to this URL")
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=255, blank=True)
    secret = models.CharField(max_length=100, editable=False)
    previous_secret = models.CharField(max_length=100, blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Until then deliveries are signed with the previous secret too"
    )
    failing_since = models.DateTimeField(
        null=True, blank=True, help_text="First failed attempt since the last successful delivery"
    )
    disabled_reason = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        verbose_name = "webhook endpoint"

    def __str__(self) -> str:
        return self.url


class WebhookEvent(models.Model):
    """One state change clients care about, written in the transaction that made it (the outbox)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=64, db_index=True)
    data = models.JSONField(help_text="The object as the API shows it")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "webhook event"

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class WebhookDelivery(models.Model):
    """Sending one event to one endpoint: pending until it succeeds or runs out of attempts."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    TRANSITIONS: dict[str, frozenset[str]] = {
        Status.PENDING: frozenset({Status.SUCCEEDED, Status.FAILED}),
        Status.SUCCEEDED: frozenset({Status.PENDING}),
        Status.FAILED: frozenset({Status.PENDING}),
    }

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="Attempts since the delivery was (re)queued")
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="When it is due (while an attempt runs: when that attempt is presumed lost)"
    )
    dispatched_at = models.DateTimeField(null=True, blank=True, help_text="When a task was last queued for it")
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="webhook_delivery_once_per_endpoint"),
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "succeeded", "failed"]), name="webhook_delivery_status"
            ),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due")]

    def __str__(self) -> str:
        return f"{self.event.type} to {self.endpoint.url} ({self.status})"

    def transition(self, new: str) -> str:
        """Move to ``new`` if the state machine allows it; returns the old status."""
        return apply_transition(self, allowed=self.TRANSITIONS, new=new)


class WebhookAttempt(models.Model):
    """One HTTP request of a delivery and what came of it."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_rows")
    started_at = models.DateTimeField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, help_text="The first 512 bytes of the answer")
    error = models.CharField(max_length=1000, blank=True)
    succeeded = models.BooleanField(default=False)

    class Meta:
        ordering = ["-started_at"]
        verbose_name = "webhook attempt"

    def __str__(self) -> str:
        return f"{self.started_at:%Y-%m-%d %H:%M:%S} {self.status_code or self.error[:40]}"
