from functools import partial

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from media_library.models import MediaFile, PreviousHlsOutput, Rendition, Video
from media_library.selectors import previous_output_grace, video_playable_hls, video_playback
from media_library.services import video_delete
from media_library.views import player_context
from transcoding.models import TranscodeJob
from transcoding.services import transcode_cancel, transcode_enqueue
from unpuzzle.admin_scope import OwnerListFilter, OwnerScopedAdminMixin
from unpuzzle.exceptions import DomainError
from uploads.admin_views import upload_page

# Statuses after which a video's row stops polling the API.
FINAL_VIDEO_STATUSES = (Video.Status.READY, Video.Status.FAILED)


@admin.register(MediaFile)
class MediaFileAdmin(OwnerScopedAdminMixin, admin.ModelAdmin):
    list_display = ("original_filename", "owner", "status", "size", "duration", "width", "height", "video_codec", "created_at")
    list_filter = ("status", OwnerListFilter, "video_codec", "has_audio", "created_at")
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


class TranscodeJobInline(admin.TabularInline):
    """The video's transcode jobs, newest first, read-only: what ran, how far, why it ended."""

    model = TranscodeJob
    fk_name = "video"
    extra = 0
    can_delete = False
    ordering = ("-created_at",)
    verbose_name = "transcode job"
    verbose_name_plural = "job history"
    fields = ("created_at", "status", "attempts", "progress", "wall_seconds", "requested_by", "error", "ffmpeg_log")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="ffmpeg log tail")
    def ffmpeg_log(self, job):
        if not job.log_tail:
            return "-"
        lines = job.log_tail.count("\n") + 1
        return format_html('<details class="job-log"><summary>{} lines</summary><pre>{}</pre></details>', lines, job.log_tail)


@admin.register(Video)
class VideoAdmin(OwnerScopedAdminMixin, admin.ModelAdmin):
    list_display = (
        "title", "status_badge", "transcode", "duration_display", "size_display", "renditions_display", "owner", "created",
    )
    list_filter = ("status", OwnerListFilter, "video_provider", "created_at")
    search_fields = ("title", "description", "owner__username", "owner__email", "id")
    date_hierarchy = "created_at"
    list_select_related = ("owner", "media_file")
    raw_id_fields = ("media_file",)
    # Legacy provider links are https; say so rather than rely on Django's changing default.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    readonly_fields = (
        "id", "status", "status_reason", "transcode", "hls_master_key", "poster_key", "duration", "max_quality",
        "created_at", "updated_at", "ready_at",
    )
    inlines = [RenditionInline, TranscodeJobInline]
    actions = ["retry_transcode", "retranscode", "cancel_transcode"]

    class Media:
        css = {"all": ["media_library/admin/videos.css"]}
        js = ["media_library/admin/video_status.js"]

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("upload/", self.admin_site.admin_view(partial(upload_page, admin_site=self.admin_site)), name="%s_%s_upload" % info),
            path(
                "<path:object_id>/transcode/<str:operation>/",
                self.admin_site.admin_view(self.transcode_view),
                name="%s_%s_transcode" % info,
            ),
        ] + super().get_urls()

    def get_queryset(self, request):
        latest = TranscodeJob.objects.filter(video=OuterRef("pk")).order_by("-created_at")
        renditions = (
            Rendition.objects.filter(video=OuterRef("pk")).order_by().values("video").annotate(n=Count("pk")).values("n")
        )
        return super().get_queryset(request).annotate(
            job_status=Subquery(latest.values("status")[:1]),
            job_progress=Subquery(latest.values("progress")[:1]),
            job_attempts=Subquery(latest.values("attempts")[:1]),
            job_error=Subquery(latest.values("error")[:1]),
            rendition_count=Subquery(renditions, output_field=IntegerField()),
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        """A coloured badge; rows not in a final state carry the API URL the list polls."""
        poll_url = "" if obj.status in FINAL_VIDEO_STATUSES else reverse("video-detail", args=[obj.pk])
        return format_html(
            '<span class="video-status video-status-{}" data-video-id="{}" data-poll-url="{}" title="{}">{}</span>',
            obj.status, obj.pk, poll_url, obj.status_reason, obj.get_status_display(),
        )

    @admin.display(description="job")
    def transcode(self, obj):
        """Latest job: status, progress while it runs, and why it ended otherwise."""
        return format_html('<span class="video-job" data-video-id="{}">{}</span>', obj.pk, self._job_text(obj))

    @staticmethod
    def _job_text(obj) -> str:
        status = getattr(obj, "job_status", None)
        if status is None:
            return "-"
        if status == TranscodeJob.Status.RUNNING:
            return f"running {obj.job_progress}% (attempt {obj.job_attempts})"
        if status in (TranscodeJob.Status.FAILED, TranscodeJob.Status.CANCELLED) and obj.job_error:
            return f"{status}: {obj.job_error[:120]}"
        return status

    @admin.display(description="created", ordering="created_at")
    def created(self, obj):
        # A short date keeps the list readable on a laptop; the full time is in the tooltip.
        local = timezone.localtime(obj.created_at)
        return format_html('<span title="{}">{}</span>', local.strftime("%Y-%m-%d %H:%M"), local.strftime("%Y-%m-%d"))

    @admin.display(description="duration", ordering="duration")
    def duration_display(self, obj):
        if obj.duration is None:
            return "-"
        minutes, seconds = divmod(round(obj.duration), 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"

    @admin.display(description="size", ordering="media_file__size")
    def size_display(self, obj):
        return filesizeformat(obj.media_file.size) if obj.media_file_id else "-"

    @admin.display(description="renditions", ordering="rendition_count")
    def renditions_display(self, obj):
        return getattr(obj, "rendition_count", None) or 0

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

    @admin.action(description="Retry transcoding of failed or blocked videos", permissions=["change"])
    def retry_transcode(self, request, queryset):
        skipped = queryset.exclude(status__in=[Video.Status.FAILED, Video.Status.BLOCKED]).count()
        if skipped:
            self.message_user(request, f"{skipped} video(s) skipped: only failed or blocked videos are retried.", messages.WARNING)
        self._enqueue(request, queryset.filter(status__in=[Video.Status.FAILED, Video.Status.BLOCKED]), verb="Queued")

    @admin.action(description="Re-transcode (replace the HLS output)", permissions=["change"])
    def retranscode(self, request, queryset):
        self._enqueue(request, queryset, verb="Queued")

    @admin.action(description="Cancel transcoding", permissions=["change"])
    def cancel_transcode(self, request, queryset):
        jobs = TranscodeJob.objects.filter(video__in=queryset, status__in=TranscodeJob.ACTIVE_STATUSES)
        cancel_jobs(self, request, jobs)

    TRANSCODE_OPERATIONS = {"retry": retry_transcode, "retranscode": retranscode, "cancel": cancel_transcode}

    def transcode_view(self, request, object_id, operation):
        """The change page's buttons: run one of the list actions on this video, then go back."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        action = self.TRANSCODE_OPERATIONS.get(operation)
        video = self.get_object(request, object_id)
        if action is None or video is None:
            raise Http404(f"no video {object_id} or no operation {operation!r} here")
        if not self.has_change_permission(request, video):
            raise PermissionDenied
        action(self, request, self.get_queryset(request).filter(pk=video.pk))
        return HttpResponseRedirect(reverse("admin:media_library_video_change", args=[video.pk]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """Embed the player for ready videos (staff previews are not counted as accesses)."""
        extra_context = dict(extra_context or {})
        video = self.get_object(request, object_id)
        if video is not None:
            extra_context["transcode_operations"] = self._operations_for(video)
            if video_playable_hls(video=video):
                grant = video_playback(video=video, user=None, request=request)
                extra_context.update(player_context(video=video, grant=grant))
        return super().change_view(request, object_id, form_url, extra_context)

    @staticmethod
    def _operations_for(video) -> list[tuple[str, str]]:
        """The buttons that make sense for the video's state: (operation, label)."""
        if video.media_file_id is None:
            return []
        operations = []
        if video.status in (Video.Status.FAILED, Video.Status.BLOCKED):
            operations.append(("retry", "Retry transcoding"))
        if video.status in (Video.Status.QUEUED, Video.Status.PROCESSING):
            operations.append(("cancel", "Cancel transcoding"))
        else:
            operations.append(("retranscode", "Re-transcode"))
        return operations

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
class RenditionAdmin(OwnerScopedAdminMixin, admin.ModelAdmin):
    owner_path = "video__owner"

    list_display = ("video", "name", "width", "height", "bandwidth", "bytes", "created_at")
    list_filter = ("name",)
    search_fields = ("video__title", "video__id")
    list_select_related = ("video",)
    readonly_fields = ("video", "name", "width", "height", "bandwidth", "average_bandwidth", "codecs", "playlist_key", "bytes", "segment_count", "created_at")


@admin.register(PreviousHlsOutput)
class PreviousHlsOutputAdmin(OwnerScopedAdminMixin, admin.ModelAdmin):
    """HLS folders a re-transcode replaced, still stored for players that started on them (view only:
    the reaper schedule deletes folder and row once the grace period is over)."""

    owner_path = "video__owner"

    list_display = ("video", "master_key", "superseded_at", "deleted_from")
    search_fields = ("video__title", "video__id", "master_key")
    list_select_related = ("video",)
    readonly_fields = ("video", "master_key", "superseded_at", "deleted_from")

    @admin.display(description="deleted from")
    def deleted_from(self, obj: PreviousHlsOutput):
        return obj.superseded_at + previous_output_grace()

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
