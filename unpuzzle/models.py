"""Rows the project itself keeps: the last sign of life of each task cluster."""

from __future__ import annotations

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
