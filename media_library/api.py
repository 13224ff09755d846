"""The video API: list, retrieve, edit, delete and playback grants (the transcoding app adds retranscoding)."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotAuthenticated, ValidationError
from rest_framework.response import Response

from media_library.models import Video
from media_library.selectors import video_playback, videos_visible_to, videos_watchable_by
from media_library.serializers import PlaybackSerializer, VideoNotReadySerializer, VideoSerializer
from media_library.services import media_file_record_access, video_delete, video_update
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
