"""API representations the transcoding app adds to videos: the latest job and the storage cost estimate."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from media_library import serializers as media_serializers
from media_library.models import Video
from transcoding.costs.selectors import video_monthly_storage_estimate_usd
from transcoding.selectors import videos_with_latest_job


# Adds the latest transcode job (rows from ``videos_with_latest_job(prefix="current_job_")``) and the
# storage cost estimate; the docstring is the API schema's description of a video, as before.
class VideoSerializer(media_serializers.VideoSerializer):
    """A video; only ``title`` and ``description`` can be changed."""

    job_status = serializers.SerializerMethodField(help_text="Status of the latest transcode job")
    progress = serializers.SerializerMethodField(help_text="Percent done of the latest transcode job")
    job_attempts = serializers.SerializerMethodField(
        help_text="Runs of the latest transcode job so far (1 on its first run, more after retries)"
    )
    monthly_storage_estimate_usd = serializers.SerializerMethodField(
        help_text="Estimated storage cost per month (original + renditions); null until renditions exist"
    )

    class Meta(media_serializers.VideoSerializer.Meta):
        fields = [
            "id",
            "title",
            "description",
            "owner",
            "status",
            "status_reason",
            "status_code",
            "retryable",
            "job_status",
            "progress",
            "job_attempts",
            "duration",
            "max_quality",
            "poster_url",
            "media",
            "renditions",
            "monthly_storage_estimate_usd",
            "video_url",
            "video_provider",
            "duplicate_of",
            "duplicate_of_title",
            "created_at",
            "updated_at",
            "ready_at",
        ]
        read_only_fields = [name for name in fields if name not in ("title", "description")]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_job_status(self, video: Video) -> str | None:
        return getattr(video, "current_job_status", None)

    @extend_schema_field(serializers.IntegerField(allow_null=True, min_value=0, max_value=100))
    def get_progress(self, video: Video) -> int | None:
        return getattr(video, "current_job_progress", None)

    @extend_schema_field(serializers.IntegerField(allow_null=True, min_value=0))
    def get_job_attempts(self, video: Video) -> int | None:
        return getattr(video, "current_job_attempts", None)

    @extend_schema_field(serializers.DecimalField(max_digits=14, decimal_places=6, allow_null=True))
    def get_monthly_storage_estimate_usd(self, video: Video) -> str | None:
        estimate = video_monthly_storage_estimate_usd(video=video)
        return None if estimate is None else str(estimate)


def videos_for_representation(*, queryset):
    """``queryset`` with what VideoSerializer reads of each video's latest job (the API and webhook events)."""
    return videos_with_latest_job(queryset=queryset, prefix="current_job_", fields=("status", "progress", "attempts"))


def video_representation(*, video: Video) -> dict:
    """The video as ``GET /api/v1/videos/<id>/`` shows it (what webhook events carry), read from the database."""
    queryset = Video.objects.filter(pk=video.pk).select_related("owner", "media_file")
    return dict(VideoSerializer(videos_for_representation(queryset=queryset).get()).data)


class RetranscodeSerializer(serializers.Serializer):
    video_status = serializers.CharField()
    status_reason = serializers.CharField(allow_blank=True)
    job_id = serializers.UUIDField(allow_null=True, help_text="The queued (or already active) job; null when blocked")
