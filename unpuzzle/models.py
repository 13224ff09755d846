"""Rows the project itself keeps: the last sign of life of each task cluster, recent failed sign-ins,
users' API tokens."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ClusterHeartbeat(models.Model):
    """When a django-q2 cluster (``Q_CLUSTER_NAME``) last showed it runs tasks; ``/healthz`` reads it."""

    cluster = models.CharField(max_length=100, primary_key=True)
    beat_at = models.DateTimeField(
        null=True, blank=True, help_text="A worker of the cluster started, ran the heartbeat task or a transcode"
    )
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    requested_at = models.DateTimeField(
        null=True, blank=True, help_text="When the short-task cluster last queued a heartbeat task for this cluster"
    )

    def __str__(self) -> str:
        return f"{self.cluster} {self.beat_at or 'never'}"


class SignInFailure(models.Model):
    """A sign-in attempt that failed, or is being checked: each is recorded before its password is checked,
    so parallel guesses all count. Rows older than ``LOGIN_LOCKOUT_S`` are swept by the next attempt."""

    username = models.CharField(max_length=150, help_text="As typed, case-folded")
    address = models.CharField(max_length=64, help_text="Client address (IPv6: its /64 network)")
    attempted_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["username", "attempted_at"], name="signin_failure_username"),
            models.Index(fields=["address", "attempted_at"], name="signin_failure_address"),
            models.Index(fields=["attempted_at"], name="signin_failure_attempted_at"),
        ]

    def __str__(self) -> str:
        return f"{self.username} from {self.address} at {self.attempted_at:%Y-%m-%d %H:%M:%S}"


class RateLimitLock(models.Model):
    """One row per throttle key, locked while a request's count is read and written, so parallel
    requests of one user (in any process or instance) are counted one after another."""

    key = models.CharField(max_length=64, primary_key=True)

    def __str__(self) -> str:
        return self.key


class ApiToken(models.Model):
    """A named API token of one user. Only the SHA-256 of the key is stored: the key is shown once,
    when it is made; ``prefix`` (its first characters) tells tokens apart in lists."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. the script or service using it")
    prefix = models.CharField(max_length=16, editable=False)
    key_sha256 = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: the token does not expire")
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"
        indexes = [models.Index(fields=["owner", "revoked_at"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


# The webhook outbox's tables belong to this app; their code lives in unpuzzle.webhooks.
from unpuzzle.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent  # noqa: E402

__all__ = [
    "ApiToken",
    "ClusterHeartbeat",
    "RateLimitLock",
    "SignInFailure",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
]
