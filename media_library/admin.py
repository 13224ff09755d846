"""Admin for stored media. The transcoding app extends the Video admin with its jobs (and the uploads app with the upload page)."""

from typing import ClassVar

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db import models
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from media_library.models import CaptionTrack, MediaFile, PreviousHlsOutput, Rendition, Video
from media_library.selectors import (
    previous_output_grace,
    video_playable_hls,
    video_playback,
    video_poster_url,
)
from media_library.services import (
    caption_file_check,
    caption_track_create,
    caption_track_delete,
    caption_track_update,
    video_delete,
)
from media_library.views import player_context
from media_library.webvtt import is_language_tag
from unpuzzle.admin_scope import OwnerListFilter, OwnerScopedAdminMixin, ViewOnlyAdminMixin
from unpuzzle.exceptions import DomainError

# Statuses after which a video's row stops polling the API.
FINAL_VIDEO_STATUSES = (Video.Status.READY, Video.Status.FAILED)
# Poster thumbnails in the list: 16:9, small enough for a row.
THUMBNAIL_WIDTH, THUMBNAIL_HEIGHT = 96, 54


def watch_and_copy_links(*, video: Video, title: str = "") -> SafeString:
    """A "Watch" link to the player page and a "Copy link" button (``video_status.js`` copies the
    address and says so in the status next to it). ``title`` names the video for screen readers."""
    url = reverse("video-player", args=[video.pk])
    label = f" {title}" if title else ""
    return format_html(
        '<a class="video-watch" href="{}">Watch<span class="visually-hidden">{}</span></a> '
        '<button type="button" class="video-copy-link" data-url="{}">Copy link<span class="visually-hidden">{}</span>'
        '</button> <span class="video-copy-status" role="status"></span>',
        url,
        label,
        url,
        label,
    )


# Written by uploads and the pipeline, never by hand: a typed-in original or storage key would make a
# video play (or re-transcode) objects its owner may not see, and a cleared original strands its job.
VIDEO_REFERENCE_FIELDS = ("media_file", "hls_master_key", "poster_key", "thumbnails_key")
# The single-file caption fields of older videos; caption tracks (the inline) replace them.
LEGACY_CAPTION_FIELDS = ("captions_key", "captions_language")
# Videos from files come from the upload page; the add form is for staff's legacy provider videos.
LEGACY_VIDEO_ADD_FIELDS = ("owner", "title", "description", "video_provider", "video_url")


@admin.register(MediaFile)
class MediaFileAdmin(OwnerScopedAdminMixin, admin.ModelAdmin):
    """Originals, made only by upload finalization (no add form: a hand-made row has no stored file)."""

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

    def has_add_permission(self, request):
        return False


class LegacyVideoAddForm(forms.ModelForm):
    """The add form: a video that plays from a legacy provider URL (no original, nothing to transcode)."""

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if not data.get("video_url") and "video_url" not in self.errors:
            self.add_error(
                "video_url",
                "Give the provider URL the video plays from (e.g. https://vimeo.com/76979871); "
                "videos from files are added on the Upload videos page.",
            )
        if not data.get("video_provider") and "video_provider" not in self.errors:
            self.add_error("video_provider", "Choose the provider of the URL (Vimeo, YouTube or Other).")
        return data


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


class CaptionTrackForm(forms.ModelForm):
    """A caption track row: its settings and a WebVTT or SRT file (required for a new track)."""

    file = forms.FileField(
        required=False,
        help_text="WebVTT (.vtt) or SRT (.srt) in UTF-8; SRT is converted. Empty keeps the current file.",
        widget=forms.ClearableFileInput(attrs={"accept": ".vtt,.srt,text/vtt"}),
    )

    class Meta:
        model = CaptionTrack
        fields = ("language", "label", "kind", "is_default")
        widgets = {
            "language": forms.TextInput(attrs={"size": 8}),
            "label": forms.TextInput(attrs={"size": 16}),
        }

    def __init__(self, *args, video: Video, **kwargs):
        super().__init__(*args, **kwargs)
        self.video = video

    def _get_validation_exclusions(self):
        # One default per video is the formset's check and the service's job: moving the flag from
        # one row to another in one save is valid, though the rows in the database say otherwise.
        return {*super()._get_validation_exclusions(), "is_default"}  # type: ignore[misc]

    def clean_language(self):
        language = self.cleaned_data["language"]
        if not is_language_tag(language):
            raise forms.ValidationError("Use a BCP 47 language tag, e.g. en, pt-BR, ja.")
        return language

    def clean(self):
        super().clean()
        data = self.cleaned_data
        upload = data.get("file")
        if upload is None and self.instance._state.adding and self.has_changed():
            self.add_error("file", "Choose the caption file (WebVTT or SRT) for this new track.")
        elif upload is not None:
            content = upload.read(settings.CAPTIONS_MAX_BYTES + 1)
            try:
                data["warnings"] = caption_file_check(video=self.video, data=content)
            except DomainError as exc:
                self.add_error("file", exc.message)
            data["content"] = content
        return data


class CaptionTrackFormSet(forms.BaseInlineFormSet):
    def get_form_kwargs(self, index):
        return {**super().get_form_kwargs(index), "video": self.instance}

    def clean(self):
        super().clean()
        defaults = [
            form for form in self.forms if form.cleaned_data.get("is_default") and not form.cleaned_data.get("DELETE")
        ]
        if len(defaults) > 1:
            raise forms.ValidationError("Only one caption track can be the default: tick “default” on one row.")


class CaptionTrackInline(admin.TabularInline):
    """Caption tracks, added and replaced through the caption services (checked and stored as WebVTT)."""

    model = CaptionTrack
    form = CaptionTrackForm
    formset = CaptionTrackFormSet
    extra = 0
    fields = ("language", "label", "kind", "is_default", "file", "cue_count")
    readonly_fields = ("cue_count",)
    verbose_name = "caption track"


@admin.register(Video)
class VideoAdmin(OwnerScopedAdminMixin, admin.ModelAdmin):
    list_display: tuple[str, ...] = (
        "poster_thumbnail",
        "title",
        "watch_links",
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
    exclude = LEGACY_CAPTION_FIELDS
    inlines = [RenditionInline, CaptionTrackInline]

    class Media:
        css = {"all": ["media_library/admin/videos.css"]}
        js = ["media_library/admin/video_status.js"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return list(LEGACY_VIDEO_ADD_FIELDS)
        # Read-only fields come last by default; whose video and which original belong under the title.
        fields = [name for name in super().get_fields(request, obj) if name not in ("owner", "media_file")]
        at = fields.index("description") + 1
        return [*fields[:at], "owner", "media_file", *fields[at:]]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = LegacyVideoAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields + tuple(name for name in VIDEO_REFERENCE_FIELDS if name not in fields)

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
        """The count, which the list's script keeps current while the video is processed."""
        count = getattr(obj, "rendition_count", None) or 0
        return format_html('<span class="video-renditions" data-video-id="{}">{}</span>', obj.pk, count)

    @admin.display(description="poster")
    def poster_thumbnail(self, obj):
        """The poster viewers see (signed as the player's), or a placeholder until there is one."""
        url = video_poster_url(video=obj)
        if url is None:
            return mark_safe('<span class="video-thumb video-thumb-none" role="img" aria-label="No poster yet"></span>')
        return format_html(
            '<img class="video-thumb" src="{}" alt="Poster of {}" loading="lazy" width="{}" height="{}">',
            url,
            obj.title,
            THUMBNAIL_WIDTH,
            THUMBNAIL_HEIGHT,
        )

    @admin.display(description="watch")
    def watch_links(self, obj):
        """The player page learners open, and a button that copies its address."""
        return format_html('<span class="video-links">{}</span>', watch_and_copy_links(video=obj, title=obj.title))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """Embed the player for ready videos (staff previews are not counted as accesses)."""
        extra_context = dict(extra_context or {})
        video = self.get_object(request, object_id)
        if video is not None and video_playable_hls(video=video):
            grant = video_playback(video=video, user=None, request=request)
            extra_context.update(player_context(video=video, grant=grant))
        if video is not None:
            extra_context["watch_links"] = watch_and_copy_links(video=video)
        return super().change_view(request, object_id, form_url, extra_context)

    def save_formset(self, request, form, formset, change):
        """Caption rows go through the caption services (file checked, stored, old file removed)."""
        if formset.model is not CaptionTrack:
            return super().save_formset(request, form, formset, change)
        video = formset.instance
        # UUID keys exist before a row is saved: _state.adding tells new rows apart.
        for row in formset.deleted_forms:
            if not row.instance._state.adding:
                caption_track_delete(track=row.instance)
        for row in formset.forms:
            if row in formset.deleted_forms or not row.has_changed():
                continue
            data = row.cleaned_data
            fields = {
                "language": data["language"],
                "label": data["label"],
                "kind": data["kind"],
                "is_default": data["is_default"],
            }
            if not row.instance._state.adding:
                saved = caption_track_update(track=row.instance, data=data.get("content"), **fields)
            else:
                saved = caption_track_create(video=video, data=data["content"], **fields)
            for warning in saved.warnings:
                messages.warning(request, f"Captions “{saved.track.label}”: {warning}")
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        return None

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
    """HLS tiers, written by the pipeline with the output they describe (view only, no add form)."""

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

    def has_add_permission(self, request):
        return False


@admin.register(CaptionTrack)
class CaptionTrackAdmin(OwnerScopedAdminMixin, ViewOnlyAdminMixin, admin.ModelAdmin):
    """Every video's caption tracks at a glance (view only: tracks are added and changed on the video page)."""

    owner_path = "video__owner"

    list_display = ("video", "language", "label", "kind", "is_default", "cue_count", "updated_at")
    list_filter = ("kind", "language")
    search_fields = ("video__title", "video__id", "label", "language")
    list_select_related = ("video",)
    readonly_fields = (
        "video",
        "language",
        "label",
        "kind",
        "is_default",
        "storage_key",
        "revision",
        "cue_count",
        "bytes",
        "created_at",
        "updated_at",
    )


@admin.register(PreviousHlsOutput)
class PreviousHlsOutputAdmin(OwnerScopedAdminMixin, ViewOnlyAdminMixin, admin.ModelAdmin):
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
