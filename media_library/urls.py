"""API routes of this app, mounted under /api/v1/ (the videos viewset is routed by ``unpuzzle.urls``)."""

from django.urls import path

from media_library.views import video_hls

urlpatterns = [
    path("videos/<uuid:video_id>/hls/<str:token>/<path:path>", video_hls, name="video-hls"),
]
