"""Writes for transcoding: queueing videos for the HLS pipeline."""
from __future__ import annotations

import logging

from media_library.models import Video

logger = logging.getLogger(__name__)


def transcode_enqueue(*, video: Video, requested_by=None) -> None:
    """Queue ``video`` for HLS transcoding.

    The single entry point uploads and admin actions call once an original is stored.
    """
    logger.info("transcode requested for video_id=%s", video.id)
