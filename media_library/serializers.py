"""API representations of videos, their originals and playback grants."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from media_library.models import MediaFile, Rendition, Video
from media_library.selectors import video_poster_url
from transcoding.selectors import video_monthly_storage_estimate_usd


class RenditionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Rendition
        fields = ["name", "width", "height", "bandwidth", "average_bandwidth", "codecs", "bytes", "segment_count"]
        read_only_fields = fields


class MediaProbeSerializer(serializers.ModelSerializer):
    """What ffprobe found in the original file."""

    class Meta:
        model = MediaFile
        fields = [
            "id", "original_filename", "size", "mime_type", "duration", "width", "height", "video_codec",
            "video_bitrate", "bitrate", "frame_rate", "audio_codec", "has_audio",
        ]
        read_only_fields = fields


class VideoSerializer(serializers.ModelSerializer):
    """A video; only ``title`` and ``description`` can be changed."""

    owner = serializers.CharField(source="owner.get_username", read_only=True)
    job_status = serializers.SerializerMethodField(help_text="Status of the latest transcode job")
    progress = serializers.SerializerMethodField(help_text="Percent done of the latest transcode job")
    poster_url = serializers.SerializerMethodField()
    media = MediaProbeSerializer(source="media_file", read_only=True, allow_null=True)
    renditions = RenditionSerializer(many=True, read_only=True)
    monthly_storage_estimate_usd = serializers.SerializerMethodField(
        help_text="Estimated storage cost per month (original + renditions); null until renditions exist"
    )

    class Meta:
        model = Video
        fields = [
            "id", "title", "description", "owner", "status", "status_reason", "job_status", "progress",
            "duration", "max_quality", "poster_url", "media", "renditions", "monthly_storage_estimate_usd", "video_url", "video_provider",
            "created_at", "updated_at", "ready_at",
        ]
        read_only_fields = [name for name in fields if name not in ("title", "description")]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_job_status(self, video: Video) -> str | None:
        return getattr(video, "current_job_status", None)

    @extend_schema_field(serializers.IntegerField(allow_null=True, min_value=0, max_value=100))
    def get_progress(self, video: Video) -> int | None:
        return getattr(video, "current_job_progress", None)

    @extend_schema_field(serializers.DecimalField(max_digits=14, decimal_places=6, allow_null=True))
    def get_monthly_storage_estimate_usd(self, video: Video) -> str | None:
        estimate = video_monthly_storage_estimate_usd(video=video)
        return None if estimate is None else str(estimate)

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_poster_url(self, video: Video) -> str | None:
        return video_poster_url(video=video, request=self.context.get("request"))


class PlaybackRenditionSerializer(serializers.Serializer):
    name = serializers.CharField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    bandwidth = serializers.IntegerField()
    average_bandwidth = serializers.IntegerField(allow_null=True)
    codecs = serializers.CharField()
    url = serializers.URLField(help_text="The rendition's media playlist")


class PlaybackSerializer(serializers.Serializer):
    """A playback grant: give ``hls_url`` to hls.js or a native HLS player."""

    mode = serializers.ChoiceField(
        choices=["signed_cdn", "cdn", "presigned", "local", "legacy"],
        help_text="How the URLs are delivered; 'legacy' is an older provider URL, not HLS",
    )
    hls_url = serializers.URLField()
    poster_url = serializers.URLField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True, help_text="When the URLs stop working; null = never")
    renditions = PlaybackRenditionSerializer(many=True)


class RetranscodeSerializer(serializers.Serializer):
    video_status = serializers.CharField()
    status_reason = serializers.CharField(allow_blank=True)
    job_id = serializers.UUIDField(allow_null=True, help_text="The queued (or already active) job; null when blocked")


class VideoNotReadySerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField()
    status = serializers.CharField()
    status_reason = serializers.CharField(allow_blank=True)
