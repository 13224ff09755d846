"""Transcode jobs, the cost ledger and the budget policy."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q

from unpuzzle.money import format_usd
from unpuzzle.states import apply_transition


class TranscodeJob(models.Model):
    """One attempt to turn a video's original into an HLS ladder."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    S = Status
    TRANSITIONS: ClassVar[Mapping[str, frozenset[str]]] = {
        S.QUEUED: frozenset({S.RUNNING, S.FAILED, S.CANCELLED}),
        # running -> queued: the reaper requeues a job whose worker died.
        S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED, S.QUEUED}),
        S.SUCCEEDED: frozenset(),
        S.FAILED: frozenset(),
        S.CANCELLED: frozenset(),
    }
    ACTIVE_STATUSES = (S.QUEUED, S.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    video = models.ForeignKey("media_library.Video", on_delete=models.CASCADE, related_name="jobs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent 0..100")
    attempts = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="The raw cause, for staff")
    error_code = models.CharField(
        max_length=32,
        blank=True,
        help_text="Why it failed, as a code (unpuzzle.failures); owners read its plain reason",
    )
    log_tail = models.TextField(blank=True, help_text="Last lines of ffmpeg's log")
    task_id = models.CharField(max_length=64, blank=True)
    dispatched_at = models.DateTimeField(
        null=True, blank=True, help_text="When the job was last handed to the transcode cluster's queue"
    )
    not_before = models.DateTimeField(
        null=True, blank=True, help_text="A queued job waiting out a storage or network outage starts after this"
    )
    transient_failures = models.PositiveIntegerField(
        default=0, help_text="Attempts ended by storage, network or database errors (retried with backoff)"
    )
    output_prefix = models.CharField(max_length=512, blank=True)
    chunk_count = models.PositiveIntegerField(
        default=0, help_text="Video chunks of the running attempt, encoded in parallel (0: one process)"
    )
    plan = models.JSONField(default=dict, blank=True, help_text="What every chunk of the attempt encodes with")
    wall_seconds = models.FloatField(null=True, blank=True)
    cpu_seconds = models.FloatField(null=True, blank=True)
    output_bytes = models.BigIntegerField(null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(progress__gte=0) & Q(progress__lte=100), name="job_progress_0_100"),
            models.CheckConstraint(
                condition=Q(output_bytes__isnull=True) | Q(output_bytes__gte=0), name="job_output_bytes_non_negative"
            ),
            # At most one live job per video, so a video is never transcoded twice at once.
            models.UniqueConstraint(
                fields=["video"], condition=Q(status__in=["queued", "running"]), name="job_one_active_per_video"
            ),
        ]

    def __str__(self) -> str:
        return f"job {self.id} ({self.status})"

    def transition(self, new: str) -> str:
        """Move to ``new`` if the state machine allows it; returns the old status."""
        return apply_transition(self, allowed=self.TRANSITIONS, new=new)

    @property
    def counted_attempts(self) -> int:
        """Attempts that count against ``TRANSCODE_MAX_ATTEMPTS``: all but those a storage,
        network or database error ended (those have their own budget, with backoff)."""
        return self.attempts - self.transient_failures


class TranscodeChunk(models.Model):
    """One piece of a chunked transcode attempt: a time range of the source encoded into every
    tier (``video``), or the whole audio track with the poster (``audio``).

    A chunk belongs to one attempt of its job (``job_attempt``); it is claimed, retried and reaped
    on its own, by any worker of the transcode cluster. ``output`` holds what the assembly needs
    from it: per tier the segments (name, duration, bytes) and I-frame ranges it wrote.
    """

    class Kind(models.TextChoices):
        VIDEO = "video", "Video"
        AUDIO = "audio", "Audio and poster"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(TranscodeJob, on_delete=models.CASCADE, related_name="chunks")
    job_attempt = models.PositiveIntegerField(help_text="The job's attempt this chunk is part of")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.VIDEO)
    index = models.PositiveIntegerField(help_text="Position in the source, from 0 (video chunks)")
    start_s = models.FloatField(help_text="Start in the source, seconds")
    length_s = models.FloatField(help_text="Length, seconds")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent 0..100")
    attempts = models.PositiveIntegerField(default=0)
    transient_failures = models.PositiveIntegerField(default=0)
    not_before = models.DateTimeField(null=True, blank=True, help_text="A retried chunk starts after this")
    dispatched_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=255, blank=True, help_text="host:pid of the worker that ran it last")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    wall_seconds = models.FloatField(null=True, blank=True)
    cpu_seconds = models.FloatField(null=True, blank=True, help_text="CPU of every run of this chunk")
    output = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job", "job_attempt", "-kind", "index"]
        constraints = [
            models.UniqueConstraint(fields=["job", "job_attempt", "kind", "index"], name="chunk_unique_per_attempt"),
            models.CheckConstraint(condition=Q(progress__gte=0) & Q(progress__lte=100), name="chunk_progress_0_100"),
        ]
        indexes = [models.Index(fields=["status", "not_before"])]

    def __str__(self) -> str:
        if self.kind == self.Kind.AUDIO:
            return f"audio of job {self.job_id} attempt {self.job_attempt}"
        return f"chunk {self.index} of job {self.job_id} attempt {self.job_attempt}"


class CostLogEntry(models.Model):
    """One billable quantity with its price; amounts are exact Decimals."""

    class Kind(models.TextChoices):
        STORAGE = "storage", "Storage"
        EGRESS = "egress", "Egress"
        TRANSCODE = "transcode", "Transcode"
        REQUESTS = "requests", "Requests"

    date = models.DateField(db_index=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, db_index=True)
    quantity = models.DecimalField(max_digits=20, decimal_places=6)
    unit = models.CharField(max_length=16, help_text="e.g. GB-day, GB, minute, 1k requests")
    unit_price = models.DecimalField(max_digits=14, decimal_places=8, help_text="USD per unit")
    amount = models.DecimalField(max_digits=14, decimal_places=6, help_text="USD")
    is_estimate = models.BooleanField(default=False)
    video = models.ForeignKey(
        "media_library.Video", null=True, blank=True, on_delete=models.SET_NULL, related_name="cost_entries"
    )
    job = models.ForeignKey(TranscodeJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="cost_entries")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="cost_entries"
    )
    note = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-date", "-id"]
        verbose_name_plural = "cost log entries"
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=0), name="cost_quantity_non_negative"),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="cost_unit_price_non_negative"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="cost_amount_non_negative"),
            # One ledger line per job and unit, so recording a finished transcode twice is a no-op.
            models.UniqueConstraint(
                fields=["job", "unit"],
                condition=Q(kind="transcode", job__isnull=False),
                name="cost_one_transcode_line_per_job_unit",
            ),
        ]
        indexes = [models.Index(fields=["date", "kind"])]

    def __str__(self) -> str:
        return f"{self.date} {self.kind} {format_usd(self.amount)}"


class CostDashboard(CostLogEntry):
    """Admin entry for the staff costs dashboard; carries the costs permissions."""

    class Meta:
        proxy = True
        verbose_name = "costs dashboard"
        verbose_name_plural = "costs dashboard"
        permissions = [
            ("view_costs", "Can view the costs dashboard, ledger export and costs API"),
            ("manage_budget", "Can change the budget and engage or release the kill switch"),
        ]


class BudgetPolicy(models.Model):
    """The single row holding the monthly budget and the kill switch."""

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID, editable=False)
    monthly_budget_usd = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("100.00"))
    kill_switch_engaged = models.BooleanField(default=False)
    kill_switch_reason = models.TextField(blank=True)
    kill_switch_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kill_switch_at = models.DateTimeField(null=True, blank=True)
    kill_switch_auto = models.BooleanField(default=False, help_text="Engaged by the budget check, not by a person")
    auto_engage = models.BooleanField(default=True, help_text="Engage when month-to-date spend reaches the budget")
    auto_engage_on_forecast = models.BooleanField(default=False, help_text="Also engage when the forecast passes it")
    spike_threshold_pct = models.PositiveIntegerField(default=50, help_text="Day-over-day increase that alerts")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "budget policy"
        verbose_name_plural = "budget policy"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="budgetpolicy_singleton"),
            models.CheckConstraint(condition=Q(monthly_budget_usd__gte=0), name="budget_non_negative"),
        ]

    def __str__(self) -> str:
        state = "engaged" if self.kill_switch_engaged else "released"
        return f"Budget {format_usd(self.monthly_budget_usd)}/month, kill switch {state}"


class CostAlert(models.Model):
    """One alert, sent once per kind and period; also the kill switch history."""

    class Kind(models.TextChoices):
        SPIKE = "spike", "Day-over-day spike"
        BUDGET_80 = "budget_80", "80% of budget"
        BUDGET_100 = "budget_100", "100% of budget"
        FORECAST = "forecast", "Forecast above budget"
        KILL_SWITCH_ENGAGED = "kill_switch_engaged", "Kill switch engaged"
        KILL_SWITCH_RELEASED = "kill_switch_released", "Kill switch released"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    period = models.CharField(
        max_length=40, help_text="2025-06 for budget alerts, a day for spikes, a time for switch events"
    )
    subject = models.CharField(max_length=255)
    message = models.TextField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["kind", "period"], name="costalert_once_per_kind_period")]

    def __str__(self) -> str:
        return self.subject


class DeliveryTally(models.Model):
    """Playback counter of a media file already turned into delivery estimates.

    ``count_before`` is the counter before the run of ``day``, ``count_at`` after it, so
    re-running the same day recomputes from the same base instead of counting nothing.
    """

    media_file = models.OneToOneField(
        "media_library.MediaFile", primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    day = models.DateField()
    count_before = models.BigIntegerField(default=0)
    count_at = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.media_file_id} {self.day} {self.count_before}->{self.count_at}"
