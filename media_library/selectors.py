"""Reads for media: URLs and querysets the API and admin share."""
from __future__ import annotations

from django.db.models import QuerySet

from media_library.models import Video
from unpuzzle.storage import storage_url


def video_master_url(*, video: Video) -> str:
    """URL of the video's HLS master playlist in storage."""
    return storage_url(video.hls_master_key)


def videos_visible_to(*, user) -> QuerySet[Video]:
    """Videos a user may see: staff see all, others their own."""
    qs = Video.objects.select_related("media_file", "owner")
    if user.is_staff:
        return qs
    return qs.filter(owner=user)
