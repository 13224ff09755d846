"""Admin for stored media. The transcoding app extends the Video admin with its jobs (and the uploads app with the upload page)."""

from typing import ClassVar

from django.contrib import admin
from django.db import models
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from media_library.models import MediaFile, PreviousHlsOutput, Rendition, Video
from media_library.selectors import previous_output_grace, video_playable_hls, video_playback
from media_library.services import video_delete
from media_library.views import player_context
from unpuzzle.admin_scope import OwnerListFilter, OwnerScopedAdminMixin

# Statuses after which a video's row stops polling the API.
FINAL_VIDEO_STATUSES = (Video.Status.READY, Video.Status.FAILED)


@admin.register(MediaFile)
class MediaFileAdmin(OwnerScopedAdminMixin, admin.ModelAdmin):
    list_display = (
        "original_filename",
        "owner",
        "status",
        "size",
        "duration",
        "width",
        "height",
        "video_codec",
        "created_at",
    )
    list_filter = ("status", OwnerListFilter, "video_codec", "has_audio", "created_at")
    search_fields = ("original_filename", "sha256", "storage_key", "owner__username", "owner__email")
    date_hierarchy = "created_at"
    list_select_related = ("owner",)
    readonly_fields = (
        "id",
        "storage_key",
        "size",
        "sha256",
        "mime_type",
        "duration",
        "width",
        "height",
        "video_codec",
        "video_bitrate",
        "bitrate",
        "frame_rate",
        "audio_codec",
        "has_audio",
        "probe",
        "access_count",
        "last_accessed_at",
        "created_at",
        "updated_at",
        "deleted_at",
    )


class RenditionInline(admin.TabularInline):
    model = Rendition
    extra = 0
    can_delete = False
    fields = (
        "name",
        "width",
        "height",
        "bandwidth",
        "average_bandwidth",
        "codecs",
        "bytes",
        "segment_count",
        "playlist_key",
    )
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Video)
class VideoAdmin(OwnerScopedAdminMixin, admin.ModelAdmin):
    list_display: tuple[str, ...] = (
        "title",
        "status_badge",
        "duration_display",
        "size_display",
        "renditions_display",
        "owner",
        "created",
    )
    list_filter = ("status", OwnerListFilter, "video_provider", "created_at")
    search_fields = ("title", "description", "owner__username", "owner__email", "id")
    date_hierarchy = "created_at"
    list_select_related = ("owner", "media_file")
    raw_id_fields = ("media_file",)
    # Legacy provider links are https; say so rather than rely on Django's changing default.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    readonly_fields: ClassVar[tuple[str, ...]] = (
        "id",
        "status",
        "status_reason",
        "hls_master_key",
        "poster_key",
        "duration",
        "max_quality",
        "duplicate_of",
        "created_at",
        "updated_at",
        "ready_at",
    )
    inlines = [RenditionInline]

    class Media:
        css = {"all": ["media_library/admin/videos.css"]}
        js = ["media_library/admin/video_status.js"]

    def get_queryset(self, request):
        renditions = (
            Rendition.objects.filter(video=OuterRef("pk"))
            .order_by()
            .values("video")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return super().get_queryset(request).annotate(rendition_count=Subquery(renditions, output_field=IntegerField()))

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        """A coloured badge; rows not in a final state carry the API URL the list polls."""
        poll_url = "" if obj.status in FINAL_VIDEO_STATUSES else reverse("video-detail", args=[obj.pk])
        return format_html(
            '<span class="video-status video-status-{}" data-video-id="{}" data-poll-url="{}" title="{}">{}</span>',
            obj.status,
            obj.pk,
            poll_url,
            obj.status_reason,
            obj.get_status_display(),
        )

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

    def get_deleted_objects(self, objs, request):
        """What the confirmation page lists. Deleting goes through ``video_delete``, which removes the
        video's renditions, jobs and outputs itself: the right to delete the video is all it takes
        (Django would otherwise ask for the delete permission of every related model, which
        instructors do not have). Cost history stays (its rows keep their amounts, without the video)."""
        deleted, model_count, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, model_count, set(), protected


@admin.register(Rendition)
class RenditionAdmin(OwnerScopedAdminMixin, admin.ModelAdmin):
    owner_path = "video__owner"

    list_display = ("video", "name", "width", "height", "bandwidth", "bytes", "created_at")
    list_filter = ("name",)
    search_fields = ("video__title", "video__id")
    list_select_related = ("video",)
    readonly_fields = (
        "video",
        "name",
        "width",
        "height",
        "bandwidth",
        "average_bandwidth",
        "codecs",
        "playlist_key",
        "bytes",
        "segment_count",
        "created_at",
    )


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
