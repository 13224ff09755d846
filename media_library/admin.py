from django.contrib import admin
from django.db import models

from media_library.models import MediaFile, Rendition, Video
from media_library.selectors import video_playable_hls, video_playback
from media_library.services import video_delete
from media_library.views import player_context


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
    list_display = ("title", "owner", "status", "duration", "max_quality", "video_provider", "created_at")
    list_filter = ("status", "video_provider", "created_at")
    search_fields = ("title", "description", "owner__username", "owner__email", "id")
    date_hierarchy = "created_at"
    list_select_related = ("owner",)
    raw_id_fields = ("media_file",)
    # Legacy provider links are https; say so rather than rely on Django's changing default.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    readonly_fields = ("id", "status", "status_reason", "hls_master_key", "poster_key", "duration", "max_quality", "created_at", "updated_at", "ready_at")
    inlines = [RenditionInline]

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


@admin.register(Rendition)
class RenditionAdmin(admin.ModelAdmin):
    list_display = ("video", "name", "width", "height", "bandwidth", "bytes", "created_at")
    list_filter = ("name",)
    search_fields = ("video__title", "video__id")
    list_select_related = ("video",)
    readonly_fields = ("video", "name", "width", "height", "bandwidth", "average_bandwidth", "codecs", "playlist_key", "bytes", "segment_count", "created_at")
