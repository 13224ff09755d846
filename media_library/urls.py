"""API routes of this app, mounted under /api/v1/ (the videos viewset is routed by ``unpuzzle.urls``)."""

from django.urls import path

from media_library.api import CaptionTrackViewSet
from media_library.views import video_hls

captions = CaptionTrackViewSet.as_view({"get": "list", "post": "create"})
caption = CaptionTrackViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"})

urlpatterns = [
    path("videos/<uuid:video_id>/captions/", captions, name="video-captions"),
    path("videos/<uuid:video_id>/captions/<uuid:pk>/", caption, name="video-caption"),
    path("videos/<uuid:video_id>/hls/<str:token>/<path:path>", video_hls, name="video-hls"),
]
