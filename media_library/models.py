"""Stored media: original files, videos and their HLS renditions."""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Mapping
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q

from unpuzzle.states import apply_transition


class MediaFile(models.Model):
    """An original file kept in storage under ``originals/<id>/<safe filename>``."""

    class Status(models.TextChoices):
        STORED = "stored", "Stored"
        DELETED = "deleted", "Deleted"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="media_files")
    original_filename = models.CharField(max_length=255)
    storage_key = models.CharField(max_length=512, unique=True)
    size = models.BigIntegerField(help_text="Bytes")
    sha256 = models.CharField(max_length=64, db_index=True)
    mime_type = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.STORED, db_index=True)

    duration = models.FloatField(null=True, blank=True, help_text="Seconds")
    width = models.PositiveIntegerField(null=True, blank=True, help_text="Display width (rotation applied)")
    height = models.PositiveIntegerField(null=True, blank=True, help_text="Display height (rotation applied)")
    video_codec = models.CharField(max_length=32, blank=True)
    video_bitrate = models.BigIntegerField(null=True, blank=True, help_text="Bits per second")
    bitrate = models.BigIntegerField(null=True, blank=True, help_text="Container bits per second")
    frame_rate = models.FloatField(null=True, blank=True)
    audio_codec = models.CharField(max_length=32, blank=True)
    has_audio = models.BooleanField(default=False)
    probe = models.JSONField(default=dict, blank=True, help_text="Raw ffprobe JSON")

    tags = models.JSONField(default=list, blank=True)
    access_count = models.BigIntegerField(default=0)
    last_accessed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(size__gte=0), name="mediafile_size_non_negative"),
            models.CheckConstraint(condition=Q(access_count__gte=0), name="mediafile_access_count_non_negative"),
            # One stored copy per owner and content: duplicates reuse the existing file.
            models.UniqueConstraint(
                fields=["owner", "sha256"], condition=Q(status="stored"), name="mediafile_unique_owner_sha256"
            ),
        ]
        indexes = [models.Index(fields=["owner", "status"])]

    def __str__(self) -> str:
        return self.original_filename


class Video(models.Model):
    """A video learners watch: own HLS once transcoded, or a legacy provider URL."""

    class Status(models.TextChoices):
        UPLOADED = "uploaded", "Uploaded"
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"
        BLOCKED = "blocked", "Blocked"

    class Provider(models.TextChoices):
        NONE = "", "Own HLS"
        VIMEO = "vimeo", "Vimeo"
        YOUTUBE = "youtube", "YouTube"
        OTHER = "other", "Other"

    S = Status
    TRANSITIONS: ClassVar[Mapping[str, frozenset[str]]] = {
        S.UPLOADED: frozenset({S.QUEUED, S.BLOCKED, S.FAILED}),
        # queued -> ready: a cancelled re-transcode hands the video back its previous output.
        S.QUEUED: frozenset({S.PROCESSING, S.BLOCKED, S.FAILED, S.READY}),
        S.PROCESSING: frozenset({S.READY, S.FAILED, S.QUEUED, S.BLOCKED}),
        S.READY: frozenset({S.QUEUED}),
        S.FAILED: frozenset({S.QUEUED, S.BLOCKED}),
        S.BLOCKED: frozenset({S.QUEUED, S.FAILED}),
    }

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="videos")
    title = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    media_file = models.ForeignKey(MediaFile, null=True, blank=True, on_delete=models.PROTECT, related_name="videos")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UPLOADED, db_index=True)
    status_reason = models.TextField(blank=True, help_text="Why the video failed or is blocked")
    status_code = models.CharField(
        max_length=32, blank=True, help_text="Why it failed, as a code (unpuzzle.failures); the job keeps the raw error"
    )
    hls_master_key = models.CharField(max_length=512, blank=True)
    poster_key = models.CharField(max_length=512, blank=True)
    thumbnails_key = models.CharField(
        max_length=512, blank=True, help_text="WebVTT track of the scrubbing preview sheets, in the HLS output folder"
    )
    duration = models.FloatField(null=True, blank=True, help_text="Seconds")
    max_quality = models.CharField(max_length=16, blank=True, help_text="Highest rendition, e.g. 720p")
    captions_key = models.CharField(max_length=512, blank=True)
    captions_language = models.CharField(max_length=16, blank=True)
    video_url = models.URLField(max_length=500, blank=True, help_text="Legacy provider URL (e.g. Vimeo)")
    video_provider = models.CharField(max_length=16, choices=Provider.choices, blank=True, default=Provider.NONE)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    duplicate_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="duplicates",
        help_text="The video whose HLS output this one shares: the same original uploaded again, not transcoded twice",
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="ready") | ~Q(hls_master_key="") | ~Q(video_url=""),
                name="video_ready_has_playable_source",
            ),
        ]
        indexes = [models.Index(fields=["owner", "status"])]
        permissions = [
            ("view_all_videos", "Can see and manage every user's videos, uploads and jobs in the admin"),
        ]

    def __str__(self) -> str:
        return self.title

    def transition(self, new: str) -> str:
        """Move to ``new`` if the state machine allows it; returns the old status."""
        return apply_transition(self, allowed=self.TRANSITIONS, new=new)


class Rendition(models.Model):
    """One tier of a video's HLS ladder."""

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="renditions")
    name = models.CharField(max_length=16, help_text="e.g. 480p")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    bandwidth = models.PositiveIntegerField(help_text="Peak bits per second (master BANDWIDTH)")
    average_bandwidth = models.PositiveIntegerField(null=True, blank=True)
    codecs = models.CharField(max_length=64, blank=True)
    playlist_key = models.CharField(max_length=512)
    bytes = models.BigIntegerField(default=0)
    segment_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["video", "height"]
        constraints = [
            models.UniqueConstraint(fields=["video", "name"], name="rendition_unique_video_name"),
            models.CheckConstraint(condition=Q(bytes__gte=0), name="rendition_bytes_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.video_id} {self.name}"


class PreviousHlsOutput(models.Model):
    """An HLS folder a re-transcode replaced, kept for players that still hold its URLs.

    Its app-served playback tokens stay valid and its objects stay stored until
    ``HLS_PREVIOUS_OUTPUT_GRACE_S`` after ``superseded_at``; then the periodic sweep
    (``transcoding.services.maintenance.transcode_previous_outputs_sweep``) deletes both.
    """

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="previous_outputs")
    master_key = models.CharField(max_length=512, help_text="Master playlist of the replaced output")
    superseded_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["superseded_at"]
        constraints = [
            models.UniqueConstraint(fields=["video", "master_key"], name="previous_hls_output_unique_video_master"),
        ]

    def __str__(self) -> str:
        return self.master_key

    @property
    def prefix(self) -> str:
        """The replaced folder, ``videos/<id>/hls/<n>/``."""
        return posixpath.dirname(self.master_key) + "/"


class CaptionTrack(models.Model):
    """One caption or subtitle track of a video, stored as WebVTT under ``videos/<id>/captions/``.

    Each new file gets a new key (``<track id>-<revision>.vtt``), so a stored file never
    changes and caches may keep it.
    """

    class Kind(models.TextChoices):
        SUBTITLES = "subtitles", "Subtitles"
        CAPTIONS = "captions", "Captions"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="caption_tracks")
    language = models.CharField(max_length=35, help_text="BCP 47 language tag, e.g. en, pt-BR")
    label = models.CharField(max_length=100, help_text="Name shown in the player's caption menu")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.SUBTITLES)
    is_default = models.BooleanField(default=False, help_text="Shown when playback starts (one per video)")
    storage_key = models.CharField(max_length=512)
    revision = models.PositiveIntegerField(default=1, help_text="Bumped with every new file")
    cue_count = models.PositiveIntegerField(default=0)
    bytes = models.BigIntegerField(default=0, help_text="Size of the stored WebVTT file")
    mpegts = models.BigIntegerField(
        default=126_000, help_text="The 90 kHz timestamp the stored file's X-TIMESTAMP-MAP maps cue time 0 to"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["video", "created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["video"], condition=Q(is_default=True), name="captiontrack_one_default_per_video"
            ),
            models.CheckConstraint(condition=Q(bytes__gte=0), name="captiontrack_bytes_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.language})"
