"""API routes of this app, mounted under /api/v1/."""
from django.urls import path
from rest_framework.routers import SimpleRouter

from media_library.api import VideoViewSet
from media_library.views import video_hls

router = SimpleRouter()
router.register("videos", VideoViewSet, basename="video")

urlpatterns = [
    path("videos/<uuid:video_id>/hls/<str:token>/<path:path>", video_hls, name="video-hls"),
    *router.urls,
]
