"""Upload sessions: tus resumable uploads and direct-to-bucket multipart uploads."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from unpuzzle.exceptions import Gone
from unpuzzle.states import apply_transition


class UploadSession(models.Model):
    """One upload from a client, from creation until its bytes become a MediaFile."""

    class Kind(models.TextChoices):
        TUS = "tus", "tus resumable"
        DIRECT = "direct", "Direct to bucket"
        INGEST = "ingest", "Local file (manage.py ingest)"

    class Status(models.TextChoices):
        CREATED = "created", "Created"
        UPLOADING = "uploading", "Uploading"
        COMPLETE = "complete", "Complete"
        FINALIZED = "finalized", "Finalized"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired"
        CANCELLED = "cancelled", "Cancelled"

    S = Status
    TRANSITIONS: dict[str, frozenset[str]] = {
        S.CREATED: frozenset({S.UPLOADING, S.COMPLETE, S.FAILED, S.EXPIRED, S.CANCELLED}),
        S.UPLOADING: frozenset({S.COMPLETE, S.FAILED, S.EXPIRED, S.CANCELLED}),
        # complete -> expired: partial uploads nobody concatenated; -> cancelled: terminated before finalization.
        S.COMPLETE: frozenset({S.FINALIZED, S.FAILED, S.EXPIRED, S.CANCELLED}),
        S.FINALIZED: frozenset(),
        S.FAILED: frozenset(),
        S.EXPIRED: frozenset(),
        S.CANCELLED: frozenset(),
    }
    # Still receiving bytes.
    ACTIVE_STATUSES = (S.CREATED, S.UPLOADING)
    # Holding bytes that may still become a video: receiving, or waiting for finalization.
    LIVE_STATUSES = (*ACTIVE_STATUSES, S.COMPLETE)
    # Ended without a video: requests for them answer 410 Gone until the row is purged.
    ENDED_STATUSES = (S.EXPIRED, S.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="upload_sessions")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.TUS)
    filename = models.CharField(max_length=255, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    length = models.BigIntegerField(null=True, blank=True, help_text="Declared bytes; empty while deferred")
    offset = models.BigIntegerField(default=0, help_text="Bytes stored so far")
    metadata = models.JSONField(default=dict, blank=True, help_text="Decoded Upload-Metadata")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CREATED, db_index=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    temp_path = models.CharField(max_length=1024, blank=True, help_text="Part file on the upload server")
    storage_key = models.CharField(max_length=512, blank=True, help_text="Object key for direct uploads")
    multipart_upload_id = models.CharField(max_length=1024, blank=True, help_text="S3 multipart UploadId")
    part_size = models.BigIntegerField(null=True, blank=True)
    is_partial = models.BooleanField(default=False, help_text="tus concatenation part")
    concat_parts = models.JSONField(default=list, blank=True, help_text="Ids of the partial uploads, in order")
    error = models.TextField(blank=True, help_text="Why it failed, for the owner")
    error_code = models.CharField(max_length=32, blank=True, help_text="Why it failed, as a code (unpuzzle.failures)")
    error_detail = models.TextField(blank=True, help_text="The raw cause (ffprobe's words), for staff")
    media_file = models.ForeignKey(
        "media_library.MediaFile", null=True, blank=True, on_delete=models.SET_NULL, related_name="upload_sessions"
    )
    video = models.ForeignKey(
        "media_library.Video", null=True, blank=True, on_delete=models.SET_NULL, related_name="upload_sessions"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    finalize_started_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When a worker began finalizing a direct upload, or a request began concatenating this partial "
        "upload (one at a time)",
    )
    finalized_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(offset__gte=0), name="upload_offset_non_negative"),
            models.CheckConstraint(
                condition=Q(length__isnull=True) | Q(length__gte=0), name="upload_length_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(length__isnull=True) | Q(offset__lte=F("length")), name="upload_offset_within_length"
            ),
        ]
        indexes = [models.Index(fields=["owner", "status"]), models.Index(fields=["status", "expires_at"])]

    def __str__(self) -> str:
        return f"{self.filename or self.id} ({self.status})"

    def transition(self, new: str) -> str:
        """Move to ``new`` if the state machine allows it; returns the old status."""
        return apply_transition(self, allowed=self.TRANSITIONS, new=new)

    def check_not_ended(self, *, advice: str = "start a new upload", already: bool = False) -> None:
        """410 Gone when the upload expired or was cancelled: "upload <id> was [already] <status>[; <advice>]"."""
        if self.status in self.ENDED_STATUSES:
            was = "was already" if already else "was"
            raise Gone(f"upload {self.id} {was} {self.status}" + (f"; {advice}" if advice else ""))

    @property
    def progress(self) -> float | None:
        """Percent stored, or None while the length is deferred."""
        if not self.length:
            return 100.0 if self.length == 0 else None
        return round(100.0 * self.offset / self.length, 2)
