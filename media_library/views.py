"""HTML and file views: the player page and the app-served HLS files."""

from __future__ import annotations

import logging
import math
import time
import uuid
from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe

from media_library.models import Video
from media_library.playlists import resolve_playlist_uri, rewrite_playlist_keys, rewrite_vtt_image_keys
from media_library.selectors import (
    APP_REWRITTEN_KINDS,
    CAPTIONS_PATH,
    HlsTokenGrant,
    PlaybackGrant,
    hls_app_url,
    hls_caption_file_url,
    hls_caption_playlist,
    hls_caption_track,
    hls_master_with_captions,
    hls_token_grant,
    video_playback,
    videos_watchable_by,
)
from media_library.services import media_file_record_access
from media_library.serving import serve_local_file
from media_library.throttles import PlaybackGrantThrottle
from unpuzzle.content_types import AssetKind, asset_kind_for_key
from unpuzzle.exceptions import VideoNotReady
from unpuzzle.storage import get_storage, is_local, storage_url

logger = logging.getLogger(__name__)

# Playlists with presigned URLs are per grant: never shared caches, and never past the grant.
_REWRITTEN_PLAYLIST_MAX_AGE = 3600


@require_safe
def video_hls(request: HttpRequest, video_id: uuid.UUID, token: str, path: str) -> HttpResponseBase:
    """Serve a file of the HLS folder a playback token opens to the token's holder.

    The token opens the folder it was made for until it expires: the video's current
    output (also while a re-transcode runs), or one a re-transcode replaced less than
    ``HLS_PREVIOUS_OUTPUT_GRACE_S`` ago, so a player that started on it keeps playing.
    Local storage: the file as stored (Range, ETag, CDN cache headers). S3/B2 storage:
    playlists are read and rewritten (variant playlists point back here, segments and
    other files at presigned storage URLs), the thumbnails WebVTT track too (its sheet
    images at presigned URLs); any other file redirects to its presigned URL.
    A video with caption tracks gets its master with subtitle renditions added and the
    subtitle playlists under ``captions/``, in every delivery mode.
    """
    video = Video.objects.filter(pk=video_id).first()
    if video is None:
        raise Http404("no video here")
    grant = hls_token_grant(video=video, token=token)
    if grant is None:
        raise Http404("unknown playback token")
    remaining = grant.expires - int(time.time())
    if remaining <= 0:
        return HttpResponseForbidden("this playback link has expired: ask /api/v1/videos/<id>/playback/ for a new one")
    if path.startswith(CAPTIONS_PATH):
        return _video_hls_captions(request, video=video, grant=grant, token=token, name=path[len(CAPTIONS_PATH) :])
    prefix = grant.prefix
    try:
        key = resolve_playlist_uri(playlist_key=grant.master_key, uri=path, hls_prefix=prefix)
    except ValueError:
        raise Http404("not a file of this video's HLS output") from None

    if key == grant.master_key:
        captioned = hls_master_with_captions(
            video=video, text=_read_playlist(key), grant=grant, token=token, request=request
        )
        if captioned is not None:
            return _generated_playlist(captioned, remaining=remaining)
    if is_local():
        return serve_local_file(request, key)
    kind = asset_kind_for_key(key)
    if kind not in APP_REWRITTEN_KINDS:
        return HttpResponseRedirect(storage_url(key, expire_seconds=remaining))

    text = _read_playlist(key)

    def url_for_key(target: str) -> str:
        if asset_kind_for_key(target) == AssetKind.PLAYLIST:
            return hls_app_url(video=video, token=token, prefix=prefix, key=target, request=request)
        return storage_url(target, expire_seconds=remaining)

    if kind == AssetKind.CAPTIONS:
        body = rewrite_vtt_image_keys(text, track_key=key, hls_prefix=prefix, url_for_key=url_for_key)
        return _generated_playlist(body, remaining=remaining, content_type="text/vtt; charset=utf-8")
    body = rewrite_playlist_keys(text, playlist_key=key, hls_prefix=prefix, url_for_key=url_for_key)
    return _generated_playlist(body, remaining=remaining)


def _video_hls_captions(
    request: HttpRequest, *, video: Video, grant: HlsTokenGrant, token: str, name: str
) -> HttpResponseBase:
    """A subtitle playlist (``<track id>.m3u8``) or a WebVTT file (``<track id>-<revision>.vtt``)."""
    track = hls_caption_track(video=video, name=name)
    if track is None:
        raise Http404("no caption track of this video here")
    remaining = grant.expires - int(time.time())
    if name.endswith(".m3u8"):
        body = hls_caption_playlist(video=video, track=track, grant=grant, token=token, request=request)
        return _generated_playlist(body, remaining=remaining)
    if is_local():
        return serve_local_file(request, track.storage_key)
    return HttpResponseRedirect(hls_caption_file_url(video=video, track=track, grant=grant, token=token))


def _read_playlist(key: str) -> str:
    storage = get_storage()
    if not storage.exists(key):
        raise Http404(f"no stored file {key!r}")
    with storage.open(key, "rb") as fh:
        # Playlists and thumbnail tracks are small text files (kilobytes even for hours of video).
        return fh.read().decode("utf-8")


def _generated_playlist(
    body: str, *, remaining: int, content_type: str = "application/vnd.apple.mpegurl"
) -> HttpResponse:
    """A playlist (or thumbnails track) written for one grant: never shared caches, and never cached past the grant."""
    response = HttpResponse(body, content_type=content_type)
    response.headers["Cache-Control"] = f"private, max-age={min(remaining, _REWRITTEN_PLAYLIST_MAX_AGE)}"
    return response


@login_required
@require_safe
def video_player(request: HttpRequest, video_id: uuid.UUID) -> HttpResponse:
    """The player page of one video: owners and staff, or anyone signed in per VIDEO_VISIBILITY."""
    user = request.user
    assert not isinstance(user, AnonymousUser)  # login_required
    video = get_object_or_404(videos_watchable_by(user=user), pk=video_id)
    context: dict[str, Any] = {"video": video, "playback": None, "not_ready": None}
    throttle = PlaybackGrantThrottle()
    if not throttle.allow_page_request(request):
        # The playback API's budget: a page reload loop hands out no more grants than API calls would.
        retry_after = math.ceil(throttle.wait() or 1)
        context["not_ready"] = f"Too many playback requests: try again in {retry_after} seconds."
        response = render(request, "media_library/player.html", context, status=429)
        response["Retry-After"] = str(retry_after)
        return response
    try:
        grant = video_playback(video=video, user=user, request=request)
    except VideoNotReady as exc:
        context["not_ready"] = exc.message
    else:
        media_file_record_access(media_file_id=video.media_file_id)
        context.update(player_context(video=video, grant=grant))
    return render(request, "media_library/player.html", context)


def player_context(*, video: Video, grant: PlaybackGrant) -> dict[str, Any]:
    """Template context of ``media_library/_player.html`` for one playback grant."""
    return {
        "playback": grant,
        "player_config": {
            "mode": grant.mode,
            "hls_url": grant.hls_url,
            "poster_url": grant.poster_url,
            "captions": grant.captions,
            "thumbnails_url": grant.thumbnails_url,
        },
        "player_id": str(video.id),
        "player_config_id": f"player-config-{video.id}",
    }
