"""API representations of videos, their originals and playback grants."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from media_library.models import CaptionTrack, MediaFile, Rendition, Video
from media_library.selectors import video_poster_url
from unpuzzle.failures import failure_retryable


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
            "id",
            "original_filename",
            "size",
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
        ]
        read_only_fields = fields


class VideoSerializer(serializers.ModelSerializer):
    """A video; only ``title`` and ``description`` can be changed."""

    owner = serializers.CharField(source="owner.get_username", read_only=True)
    poster_url = serializers.SerializerMethodField()
    media = MediaProbeSerializer(source="media_file", read_only=True, allow_null=True)
    renditions = RenditionSerializer(many=True, read_only=True)
    # Empty for videos we host (not a URL then, so no uri format).
    video_url = serializers.CharField(read_only=True, help_text="Legacy provider URL (e.g. Vimeo), or empty")
    duplicate_of: serializers.PrimaryKeyRelatedField[Video] = serializers.PrimaryKeyRelatedField(
        read_only=True,
        allow_null=True,
        help_text="The video whose output this one shares (the same file uploaded again: no new transcode), else null",
    )
    # A method, not source="duplicate_of.title" with a default: DRF leaves such a field out of
    # PATCH answers (a partial update skips defaults), which the schema does not allow.
    duplicate_of_title = serializers.SerializerMethodField(help_text="That video's title, else null")
    retryable = serializers.SerializerMethodField(
        help_text="True when the video failed and transcoding it again (POST retranscode/) can help"
    )

    class Meta:
        model = Video
        fields = [
            "id",
            "title",
            "description",
            "owner",
            "status",
            "status_reason",
            "status_code",
            "retryable",
            "duration",
            "max_quality",
            "poster_url",
            "media",
            "renditions",
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
    def get_duplicate_of_title(self, video: Video) -> str | None:
        return video.duplicate_of.title if video.duplicate_of is not None else None

    def get_retryable(self, video: Video) -> bool:
        return video.status == Video.Status.FAILED and failure_retryable(video.status_code)

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


class PlaybackCaptionSerializer(serializers.Serializer):
    language = serializers.CharField(help_text="BCP 47 language tag")
    # A declared field named like Field.label: DRF's metaclass takes it out of the class attributes.
    label = serializers.CharField()  # type: ignore[assignment]
    kind = serializers.ChoiceField(choices=CaptionTrack.Kind.choices)
    url = serializers.URLField(help_text="The WebVTT file, signed like the video's segments")


class CaptionTrackSerializer(serializers.ModelSerializer):
    """A caption track as listed; ``file`` (WebVTT or SRT) is accepted on create and update."""

    default = serializers.BooleanField(source="is_default", required=False, default=False)
    file = serializers.FileField(write_only=True, help_text="WebVTT or SRT, UTF-8")
    warnings = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        default=list,
        help_text="What the file check reported without refusing (e.g. cues after the video's end)",
    )

    class Meta:
        model = CaptionTrack
        fields = [
            "id",
            "language",
            "label",
            "kind",
            "default",
            "file",
            "cue_count",
            "bytes",
            "revision",
            "warnings",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "cue_count", "bytes", "revision", "warnings", "created_at", "updated_at"]


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
    captions = PlaybackCaptionSerializer(
        many=True, help_text="Caption tracks (also in the master playlist as subtitle renditions)"
    )
    thumbnails_url = serializers.URLField(
        allow_null=True,
        help_text=(
            "WebVTT thumbnails track for scrubbing previews: each cue's text is a sheet image URL with "
            "#xywh=x,y,w,h (the frame's rectangle), relative to the track's URL; null when the video has none"
        ),
    )


class VideoNotReadySerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField()
    status = serializers.CharField()
    status_reason = serializers.CharField(allow_blank=True)
