from functools import partial

from django.contrib import admin
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from media_library.models import Video
from transcoding import admin as transcoding_admin
from unpuzzle.admin_scope import OwnerListFilter, OwnerScopedAdminMixin
from unpuzzle.permissions import user_sees_all_videos
from uploads.admin_views import upload_page
from uploads.models import UploadSession


@admin.register(UploadSession)
class UploadSessionAdmin(OwnerScopedAdminMixin, admin.ModelAdmin):
    list_display = ("id", "filename", "owner", "kind", "status", "offset", "length", "expires_at", "created_at")
    list_filter = ("status", OwnerListFilter, "kind", "created_at")
    search_fields = ("id", "filename", "owner__username", "owner__email")
    date_hierarchy = "created_at"
    list_select_related = ("owner",)
    readonly_fields = (
        "id",
        "owner",
        "kind",
        "filename",
        "content_type",
        "length",
        "offset",
        "metadata",
        "status",
        "expires_at",
        "temp_path",
        "storage_key",
        "multipart_upload_id",
        "part_size",
        "is_partial",
        "concat_parts",
        "error",
        "error_code",
        "error_detail",
        "media_file",
        "video",
        "created_at",
        "updated_at",
        "completed_at",
        "finalized_at",
    )

    def has_add_permission(self, request):
        # Sessions are created by the upload protocols (tus, direct uploads), never by hand.
        return False

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        # The raw cause (ffprobe's words) is for staff; the owner reads the plain error.
        return fields if user_sees_all_videos(request.user) else [name for name in fields if name != "error_detail"]


class VideoAdmin(transcoding_admin.VideoAdmin):
    """The Video admin with the "Upload videos" page (``upload/``), where instructors' "Add video" leads."""

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        upload = self.admin_site.admin_view(partial(upload_page, admin_site=self.admin_site))
        return [path("upload/", upload, name="{}_{}_upload".format(*info))] + super().get_urls()

    def add_view(self, request, form_url="", extra_context=None):
        """Instructors add videos by uploading them; staff who see every video keep the form for legacy
        provider URLs (it has no original to choose: those come from uploads)."""
        if self.owner_scoped(request):
            return HttpResponseRedirect(reverse("admin:media_library_video_upload"))
        return super().add_view(request, form_url, extra_context)

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            name, options = fieldsets[0]
            description = format_html(
                'A video that plays from a legacy provider URL. Videos from files are added on <a href="{}">'
                "Upload videos</a>.",
                reverse("admin:media_library_video_upload"),
            )
            fieldsets = [(name, {**options, "description": description}), *fieldsets[1:]]
        return fieldsets


admin.site.unregister(Video)
admin.site.register(Video, VideoAdmin)
