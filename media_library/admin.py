from django.contrib import admin, messages
from django.db import models
from django.db.models import OuterRef, Subquery

from media_library.models import MediaFile, Rendition, Video
from media_library.selectors import video_playable_hls, video_playback
from media_library.services import video_delete
from media_library.views import player_context
from transcoding.models import TranscodeJob
from transcoding.services import transcode_cancel, transcode_enqueue
from unpuzzle.exceptions import DomainError


@admin.register(MediaFile)
class MediaFileAdmin(admin.ModelAdmin):
    list_display = ("original_filename", "owner", "status", "size", "duration", "width", "height", "video_codec", "created_at")
    list_filter = ("status", "video_codec", "has_audio", "created_at")
    search_fields = ("original_filename", "sha256", "storage_key", "owner__username", "owner__email")
    date_hierarchy = "created_at"
    list_select_related = ("owner",)
    readonly_fields = (
        "id", "storage_key", "size", "sha256", "mime_type", "duration", "width", "height", "video_codec",
        "video_bitrate", "bitrate", "frame_rate", "audio_codec", "has_audio", "probe", "access_count",
        "last_accessed_at", "created_at", "updated_at", "deleted_at",
    )


class RenditionInline(admin.TabularInline):
    model = Rendition
    extra = 0
    can_delete = False
    fields = ("name", "width", "height", "bandwidth", "average_bandwidth", "codecs", "bytes", "segment_count", "playlist_key")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Video)
class VideoAdmin(admin.ModelAdmin):
    list_display = ("title", "owner", "status", "transcode", "duration", "max_quality", "video_provider", "created_at")
    list_filter = ("status", "video_provider", "created_at")
    search_fields = ("title", "description", "owner__username", "owner__email", "id")
    date_hierarchy = "created_at"
    list_select_related = ("owner",)
    raw_id_fields = ("media_file",)
    # Legacy provider links are https; say so rather than rely on Django's changing default.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    readonly_fields = (
        "id", "status", "status_reason", "transcode", "hls_master_key", "poster_key", "duration", "max_quality",
        "created_at", "updated_at", "ready_at",
    )
    inlines = [RenditionInline]
    actions = ["retry_transcode", "retranscode", "cancel_transcode"]

    def get_queryset(self, request):
        latest = TranscodeJob.objects.filter(video=OuterRef("pk")).order_by("-created_at")
        return super().get_queryset(request).annotate(
            job_status=Subquery(latest.values("status")[:1]),
            job_progress=Subquery(latest.values("progress")[:1]),
            job_attempts=Subquery(latest.values("attempts")[:1]),
            job_error=Subquery(latest.values("error")[:1]),
        )

    @admin.display(description="transcode job")
    def transcode(self, obj):
        """Latest job: status, progress while it runs, and why it ended otherwise."""
        status = getattr(obj, "job_status", None)
        if status is None:
            return "-"
        if status == TranscodeJob.Status.RUNNING:
            return f"running {obj.job_progress}% (attempt {obj.job_attempts})"
        if status in (TranscodeJob.Status.FAILED, TranscodeJob.Status.CANCELLED) and obj.job_error:
            return f"{status}: {obj.job_error[:120]}"
        return status

    def _enqueue(self, request, videos, *, verb: str):
        queued = blocked = 0
        for video in videos:
            if video.media_file_id is None:
                self.message_user(request, f"{video}: no original file to transcode (legacy URL only)", messages.WARNING)
                continue
            if transcode_enqueue(video=video, requested_by=request.user) is None:
                blocked += 1
            else:
                queued += 1
        if queued:
            self.message_user(request, f"{verb} {queued} video(s) for transcoding.", messages.SUCCESS)
        if blocked:
            self.message_user(request, f"{blocked} video(s) blocked: spending is stopped (see the costs dashboard).", messages.WARNING)

    @admin.action(description="Retry transcoding of failed or blocked videos")
    def retry_transcode(self, request, queryset):
        skipped = queryset.exclude(status__in=[Video.Status.FAILED, Video.Status.BLOCKED]).count()
        if skipped:
            self.message_user(request, f"{skipped} video(s) skipped: only failed or blocked videos are retried.", messages.WARNING)
        self._enqueue(request, queryset.filter(status__in=[Video.Status.FAILED, Video.Status.BLOCKED]), verb="Queued")

    @admin.action(description="Re-transcode (replace the HLS output)")
    def retranscode(self, request, queryset):
        self._enqueue(request, queryset, verb="Queued")

    @admin.action(description="Cancel transcoding")
    def cancel_transcode(self, request, queryset):
        jobs = TranscodeJob.objects.filter(video__in=queryset, status__in=TranscodeJob.ACTIVE_STATUSES)
        cancel_jobs(self, request, jobs)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """Embed the player for ready videos (staff previews are not counted as accesses)."""
        extra_context = dict(extra_context or {})
        video = self.get_object(request, object_id)
        if video is not None and video_playable_hls(video=video):
            grant = video_playback(video=video, user=None, request=request)
            extra_context.update(player_context(video=video, grant=grant))
        return super().change_view(request, object_id, form_url, extra_context)

    def delete_model(self, request, obj):
        video_delete(video=obj, deleted_by=request.user)

    def delete_queryset(self, request, queryset):
        for video in queryset:
            video_delete(video=video, deleted_by=request.user)


def cancel_jobs(model_admin, request, jobs) -> None:
    """Cancel each active job through the service and report how many stopped."""
    cancelled = 0
    for job in jobs:
        try:
            transcode_cancel(job=job, by=request.user)
            cancelled += 1
        except DomainError as exc:
            model_admin.message_user(request, f"job {job.id}: {exc.message}", messages.WARNING)
    level = messages.SUCCESS if cancelled else messages.WARNING
    model_admin.message_user(request, f"Cancelled {cancelled} transcode job(s).", level)


@admin.register(Rendition)
class RenditionAdmin(admin.ModelAdmin):
    list_display = ("video", "name", "width", "height", "bandwidth", "bytes", "created_at")
    list_filter = ("name",)
    search_fields = ("video__title", "video__id")
    list_select_related = ("video",)
    readonly_fields = ("video", "name", "width", "height", "bandwidth", "average_bandwidth", "codecs", "playlist_key", "bytes", "segment_count", "created_at")
