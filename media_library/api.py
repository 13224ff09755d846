"""The video API: list, retrieve, edit, delete and playback grants (the transcoding app adds retranscoding),
and each video's caption tracks."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotAuthenticated, ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from media_library.models import CaptionTrack, Video
from media_library.selectors import video_playback, videos_visible_to, videos_watchable_by
from media_library.serializers import (
    CaptionTrackSerializer,
    PlaybackSerializer,
    VideoNotReadySerializer,
    VideoSerializer,
)
from media_library.services import (
    CaptionTrackSaved,
    caption_track_create,
    caption_track_delete,
    caption_track_update,
    media_file_record_access,
    video_delete,
    video_update,
)
from media_library.throttles import PlaybackGrantThrottle

STATUS_PARAMETER = OpenApiParameter(
    "status",
    OpenApiTypes.STR,
    enum=[value for value, _ in Video.Status.choices],
    description="Only videos in this status",
)


@extend_schema_view(
    list=extend_schema(parameters=[STATUS_PARAMETER], summary="Your videos (staff: all videos)"),
    retrieve=extend_schema(summary="A video with its job progress, probe data, renditions and poster"),
    update=extend_schema(summary="Replace title and description"),
    partial_update=extend_schema(summary="Change title and/or description"),
    destroy=extend_schema(summary="Delete the video, its HLS output and its original if no other video uses it"),
)
class VideoViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Videos are created by uploads; here they are read, edited, played and deleted.

    Owners and staff see and change a video; any other user gets 404.
    """

    serializer_class = VideoSerializer
    queryset = Video.objects.none()

    def get_queryset(self):
        user = self.request.user
        if isinstance(user, AnonymousUser):
            # IsAuthenticated answers 401 before any action asks for videos.
            raise NotAuthenticated()
        if self.action == "playback":
            return videos_watchable_by(user=user)
        queryset = videos_visible_to(user=user)
        if self.action == "list":
            wanted = self.request.query_params.get("status")
            if wanted:
                if wanted not in Video.Status.values:
                    raise ValidationError(
                        {"status": f"unknown status {wanted!r}; use one of {', '.join(Video.Status.values)}"}
                    )
                queryset = queryset.filter(status=wanted)
        return queryset

    def perform_update(self, serializer):
        serializer.instance = video_update(video=serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        video_delete(video=instance, deleted_by=self.request.user)

    @extend_schema(
        summary="Playback URLs for a player",
        description=(
            "Owners and staff may always play; with VIDEO_VISIBILITY=authenticated any signed-in user may. "
            "Each grant counts as one access of the original. 409 while the video is not ready. "
            "At most PLAYBACK_GRANT_RATE requests per user (the player page's included): beyond it 429 with Retry-After."
        ),
        responses={
            200: PlaybackSerializer,
            409: OpenApiResponse(VideoNotReadySerializer, "Not ready yet"),
            429: OpenApiResponse(description="Too many playback requests; Retry-After says when to try again"),
        },
    )
    @action(detail=True, methods=["get"], throttle_classes=[PlaybackGrantThrottle])
    def playback(self, request, pk=None):
        video = self.get_object()
        grant = video_playback(video=video, user=request.user, request=request)
        media_file_record_access(media_file_id=video.media_file_id)
        return Response(PlaybackSerializer(grant).data)


@extend_schema_view(
    list=extend_schema(summary="A video's caption tracks"),
    retrieve=extend_schema(summary="One caption track"),
    create=extend_schema(
        summary="Add a caption track (multipart: file, language, label, kind, default)",
        description=(
            "The file (WebVTT or SRT, UTF-8, at most CAPTIONS_MAX_BYTES and CAPTIONS_MAX_CUES cues) is checked "
            "and stored as WebVTT; SRT is converted. 400 says what to fix (413 when too large); nothing is stored "
            "then. Cues after the video's end are kept and reported in `warnings`."
        ),
    ),
    partial_update=extend_schema(summary="Change a track's settings and/or replace its file"),
    destroy=extend_schema(summary="Delete a caption track and its stored file"),
)
class CaptionTrackViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Caption tracks of one video; owners and staff only (any other user gets 404)."""

    serializer_class = CaptionTrackSerializer
    queryset = CaptionTrack.objects.none()
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    pagination_class = None

    def get_video(self) -> Video:
        user = self.request.user
        if isinstance(user, AnonymousUser):
            raise NotAuthenticated()
        return get_object_or_404(videos_visible_to(user=user), pk=self.kwargs["video_id"])

    def get_queryset(self):
        return CaptionTrack.objects.filter(video=self.get_video()).order_by("created_at")

    def create(self, request, *args, **kwargs):
        video = self.get_video()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        saved = caption_track_create(
            video=video,
            data=_read_upload(data["file"]),
            language=data["language"],
            label=data["label"],
            kind=data.get("kind", CaptionTrack.Kind.SUBTITLES),
            is_default=data.get("is_default", False),
        )
        return Response(_track_data(saved), status=status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        track = self.get_object()
        serializer = self.get_serializer(track, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        saved = caption_track_update(
            track=track,
            data=_read_upload(data["file"]) if "file" in data else None,
            language=data.get("language"),
            label=data.get("label"),
            kind=data.get("kind"),
            is_default=data.get("is_default"),
        )
        return Response(_track_data(saved))

    def perform_destroy(self, instance):
        caption_track_delete(track=instance)


def _read_upload(upload) -> bytes:
    """The uploaded file, read up to one byte past the limit (the service refuses what is longer)."""
    return upload.read(settings.CAPTIONS_MAX_BYTES + 1)


def _track_data(saved: CaptionTrackSaved) -> dict:
    return {**CaptionTrackSerializer(saved.track).data, "warnings": list(saved.warnings)}
