"""Reads for media: who may see a video, and the playback URLs players get.

Playback has one entry point, ``video_playback``, used by the API, the player page,
the admin preview and ``video_playback_url``. It picks the delivery mode from the
settings and the storage backend:

* ``signed_cdn``: ``CDN_URL`` and ``CDN_TOKEN_KEY`` set. Bunny directory token whose
  ``token_path`` is the video's HLS attempt folder, so every variant playlist and
  segment resolved relative to the master carries it.
* ``cdn``: ``CDN_URL`` only. Plain CDN URLs (the pull zone must not require tokens).
* ``presigned``: no CDN, S3/B2 storage. The app serves the playlists itself
  (``media_library.views.video_hls``) and rewrites every segment URI into a
  presigned storage URL and every variant URI into its own playlist URL; the
  scrubbing previews' WebVTT track is served the same way, its sheet images
  rewritten into presigned URLs.
* ``local``: no CDN, local storage. The app serves the HLS files as they are.

The two app-served modes put a short-lived HMAC token into the URL path
(``/api/v1/videos/<id>/hls/<token>/master.m3u8``), so relative URIs inherit it and
players need no cookies. A token opens one output folder; after a re-transcode the
replaced folder (``PreviousHlsOutput``) stays open to its tokens, and stored, for
``HLS_PREVIOUS_OUTPUT_GRACE_S``, so players that started on it can finish. A duplicate (the
same original uploaded again) plays the folder of the video it shares the output with: its
URLs and tokens carry its own id and open that folder only.

Caption tracks (``CaptionTrack``) are added at serve time, so adding, editing or removing
one needs no new transcode: a video with tracks always gets the app-served master URL, in
every mode. That master is the stored one with ``EXT-X-MEDIA:TYPE=SUBTITLES`` lines (variants
keep the URLs of their mode: relative, app-served or signed CDN), each pointing at an
app-generated subtitle playlist (``captions/<track id>.m3u8`` under the token) whose one
segment is the track's WebVTT file, signed like a segment (Bunny file token, presigned URL,
or app-served under the token in local mode). Caption files belong to their video (a
duplicate has its own), whichever folder its HLS output is in.
"""

from __future__ import annotations

import posixpath
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from media_library.cdn import plain_cdn_url, signed_cdn_url
from media_library.models import CaptionTrack, PreviousHlsOutput, Video
from media_library.playlists import SubtitleRendition, master_add_subtitles, rewrite_playlist_keys
from media_library.webvtt import subtitle_media_playlist
from unpuzzle.content_types import AssetKind, asset_kind_for_key
from unpuzzle.exceptions import VideoNotReady
from unpuzzle.permissions import user_sees_all_videos
from unpuzzle.storage import is_local, storage_url

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser, User

MODE_SIGNED_CDN = "signed_cdn"
MODE_CDN = "cdn"
MODE_PRESIGNED = "presigned"
MODE_LOCAL = "local"
MODE_LEGACY = "legacy"

_HLS_TOKEN_SALT = "media_library.hls"
#: Text files of an HLS folder that name other files by relative URL: presigned mode serves them rewritten.
APP_REWRITTEN_KINDS = frozenset({AssetKind.PLAYLIST, AssetKind.CAPTIONS})
# S3 SigV4 presigned URLs cannot live longer than seven days.
_MAX_PRESIGN_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class PlaybackGrant:
    """What a player needs to start: the master playlist URL and its metadata."""

    mode: str
    hls_url: str
    poster_url: str | None
    expires_at: datetime | None
    renditions: list[dict[str, Any]] = field(default_factory=list)
    captions: list[dict[str, Any]] = field(default_factory=list)
    thumbnails_url: str | None = None


def videos_visible_to(*, user: User) -> QuerySet[Video]:
    """Videos a user may see and manage: staff who see all videos (``user_sees_all_videos``) see
    all, everyone else (instructors included) their own."""
    qs = Video.objects.select_related("media_file", "owner", "duplicate_of").prefetch_related("renditions")
    if user_sees_all_videos(user):
        return qs
    return qs.filter(owner=user)


def videos_watchable_by(*, user: User) -> QuerySet[Video]:
    """Videos a user may play: their own and staff's all, or every video for any
    authenticated user when ``VIDEO_VISIBILITY=authenticated``."""
    if user_sees_all_videos(user) or settings.VIDEO_VISIBILITY == "authenticated":
        return Video.objects.select_related("media_file").prefetch_related("renditions")
    return Video.objects.select_related("media_file").prefetch_related("renditions").filter(owner=user)


def video_can_watch(*, video: Video, user: AbstractBaseUser | AnonymousUser) -> bool:
    """True when ``user`` may play ``video`` (same rule as ``videos_watchable_by``)."""
    if not user.is_authenticated:
        return False
    return user_sees_all_videos(user) or settings.VIDEO_VISIBILITY == "authenticated" or video.owner_id == user.pk


def video_hls_prefix(*, video: Video) -> str:
    """The folder of the video's current HLS output (``videos/<id>/hls/<attempt>/``)."""
    if not video.hls_master_key:
        raise ValueError(f"video {video.id} has no HLS output")
    return posixpath.dirname(video.hls_master_key) + "/"


def hls_folders_in_use(*, under: Iterable[str], exclude_previous_id: int | None = None) -> set[str]:
    """The HLS output folders under the ``under`` prefixes that some video still plays or keeps.

    A folder is in use while a video's current output is in it (a duplicate shares the
    output of the video it was uploaded again from) or while a ``PreviousHlsOutput`` keeps
    it for its grace period (``exclude_previous_id`` leaves one such row out, the one being swept).
    """
    prefixes = [prefix for prefix in under if prefix]
    if not prefixes:
        return set()
    current, previous = Q(), Q()
    for prefix in prefixes:
        current |= Q(hls_master_key__startswith=prefix)
        previous |= Q(master_key__startswith=prefix)
    keys = set(Video.objects.filter(current).values_list("hls_master_key", flat=True))
    rows = PreviousHlsOutput.objects.filter(previous)
    if exclude_previous_id is not None:
        rows = rows.exclude(pk=exclude_previous_id)
    keys |= set(rows.values_list("master_key", flat=True))
    return {posixpath.dirname(key) + "/" for key in keys}


def video_playable_hls(*, video: Video) -> bool:
    """True when the video has its own HLS output to hand to players.

    A ready video being transcoded again (queued, processing, or blocked by the kill
    switch) keeps serving its current output until the new one replaces it.
    """
    return bool(video.hls_master_key) and video.status in _SERVES_ITS_OUTPUT


_SERVES_ITS_OUTPUT = frozenset({Video.Status.READY, Video.Status.QUEUED, Video.Status.PROCESSING, Video.Status.BLOCKED})


def video_playback(
    *, video: Video, user: AbstractBaseUser | AnonymousUser | None, request: HttpRequest | None = None
) -> PlaybackGrant:
    """Build the playback URLs of ``video`` for ``user``.

    Own HLS is used once the video has an output (also while it is transcoded again);
    otherwise a legacy ``video_url`` is returned as it is. ``user=None`` skips the access check (internal callers such
    as ``video_playback_url``); ``request`` makes app-served URLs absolute.

    Raises:
        VideoNotReady: (409) nothing is playable yet; the body carries the status.
        PermissionError: ``user`` may not watch the video (views filter with
            ``videos_watchable_by`` first, so they answer 404 before this).
    """
    if user is not None and not video_can_watch(video=video, user=user):
        raise PermissionError(f"user {user.pk} may not watch video {video.id}")
    if not video_playable_hls(video=video):
        if video.video_url:
            return PlaybackGrant(mode=MODE_LEGACY, hls_url=video.video_url, poster_url=None, expires_at=None)
        raise VideoNotReady(
            f"video {video.id} is {video.status!r}, not ready: playback starts once transcoding has finished"
            + (f" ({video.status_reason})" if video.status_reason else ""),
            extra={"status": video.status, "status_reason": video.status_reason},
        )
    urls = _PlaybackUrls(video=video, request=request)
    renditions = [
        {
            "name": rendition.name,
            "width": rendition.width,
            "height": rendition.height,
            "bandwidth": rendition.bandwidth,
            "average_bandwidth": rendition.average_bandwidth,
            "codecs": rendition.codecs,
            "url": urls.url_for_key(rendition.playlist_key),
        }
        for rendition in sorted(video.renditions.all(), key=lambda r: (r.height, r.bandwidth))
    ]
    tracks = video_caption_tracks(video=video)
    captions = [
        {"language": track.language, "label": track.label, "kind": track.kind, "url": urls.caption_file_url(track)}
        for track in tracks
    ]
    return PlaybackGrant(
        mode=urls.mode,
        hls_url=urls.app_url(video.hls_master_key) if tracks else urls.url_for_key(video.hls_master_key),
        poster_url=urls.url_for_key(video.poster_key) if video.poster_key else None,
        expires_at=urls.expires_at,
        renditions=renditions,
        captions=captions,
        thumbnails_url=urls.url_for_key(video.thumbnails_key) if video.thumbnails_key else None,
    )


#: Folder under a playback token where the app serves caption playlists and files.
CAPTIONS_PATH = "captions/"


def caption_track_key(*, video_id: uuid.UUID, track_id: uuid.UUID, revision: int) -> str:
    """Where a caption track's WebVTT file is stored: ``videos/<video id>/captions/<track id>-<revision>.vtt``."""
    return f"videos/{video_id}/captions/{track_id}-{revision}.vtt"


def video_caption_tracks(*, video: Video) -> list[CaptionTrack]:
    """A video's caption tracks in the order they were added."""
    return list(CaptionTrack.objects.filter(video=video).order_by("created_at"))


def hls_master_with_captions(
    *, video: Video, text: str, grant: HlsTokenGrant, token: str, request: HttpRequest | None = None
) -> str | None:
    """The stored master ``text`` with the video's subtitle renditions, or None when it has no tracks.

    Variant URIs stay relative in local mode; otherwise they become the mode's URLs
    (app-served playlists with presigned segments, or signed CDN URLs).
    """
    tracks = video_caption_tracks(video=video)
    if not tracks:
        return None
    urls = _PlaybackUrls(video=video, request=request, grant=grant, token=token)
    if urls.mode != MODE_LOCAL:
        text = rewrite_playlist_keys(
            text, playlist_key=grant.master_key, hls_prefix=grant.prefix, url_for_key=urls.url_for_key
        )
    subtitles = [
        SubtitleRendition(
            name=track.label,
            language=track.language,
            uri=urls.app_path(f"{CAPTIONS_PATH}{track.id}.m3u8"),
            default=track.is_default,
            captions=track.kind == CaptionTrack.Kind.CAPTIONS,
        )
        for track in tracks
    ]
    return master_add_subtitles(text, subtitles)


def hls_caption_track(*, video: Video, name: str) -> CaptionTrack | None:
    """The track a ``captions/<track id>.m3u8`` or ``captions/<track id>-<revision>.vtt`` name refers to."""
    stem = name.removesuffix(".m3u8") if name.endswith(".m3u8") else name.removesuffix(".vtt").rpartition("-")[0]
    try:
        track_id = uuid.UUID(stem)
    except ValueError:
        return None
    track = CaptionTrack.objects.filter(video=video, pk=track_id).first()
    if track is None or (name.endswith(".vtt") and posixpath.basename(track.storage_key) != name):
        return None
    return track


def hls_caption_playlist(
    *, video: Video, track: CaptionTrack, grant: HlsTokenGrant, token: str, request: HttpRequest | None = None
) -> str:
    """A subtitle media playlist of one track: its WebVTT file as one segment for the whole video."""
    urls = _PlaybackUrls(video=video, request=request, grant=grant, token=token)
    return subtitle_media_playlist(uri=urls.caption_file_url(track), duration=video.duration or 1.0)


def hls_caption_file_url(
    *, video: Video, track: CaptionTrack, grant: HlsTokenGrant, token: str, request: HttpRequest | None = None
) -> str:
    """The URL of a track's WebVTT file in the current delivery mode, for this token's grant."""
    return _PlaybackUrls(video=video, request=request, grant=grant, token=token).caption_file_url(track)


def video_playback_url(*, video: Video) -> str | None:
    """Own HLS master playlist URL once ready, else the legacy provider URL, else None.

    Same URLs as the playback API (``video_playback``), with no access check: callers
    decide who sees it.
    """
    try:
        return video_playback(video=video, user=None).hls_url
    except VideoNotReady:
        return None


def video_poster_url(*, video: Video, request: HttpRequest | None = None) -> str | None:
    """The poster URL of a ready video in the current delivery mode, else None."""
    if not video.poster_key or not video_playable_hls(video=video):
        return None
    return _PlaybackUrls(video=video, request=request).url_for_key(video.poster_key)


def playback_mode() -> str:
    """The delivery mode the settings and storage backend select (see module docstring)."""
    if settings.CDN_URL:
        return MODE_SIGNED_CDN if settings.CDN_TOKEN_KEY else MODE_CDN
    return MODE_LOCAL if is_local() else MODE_PRESIGNED


@dataclass(frozen=True)
class HlsTokenGrant:
    """What a genuine app-served playback token opens: one HLS folder until ``expires``."""

    expires: int
    master_key: str
    prefix: str


def hls_token_make(*, video: Video, expires: int) -> str:
    """A URL-path-safe token granting the video's current HLS output until ``expires``."""
    return f"{expires}-{_hls_token_mac(video_id=video.id, master_key=video.hls_master_key, expires=expires)}"


def hls_token_grant(*, video: Video, token: str, now: datetime | None = None) -> HlsTokenGrant | None:
    """The folder and expiry a genuine token of this video opens, else None (expiry not checked).

    The token covers the master key, so it opens the output it was made for: the
    current one, or one a re-transcode replaced less than ``HLS_PREVIOUS_OUTPUT_GRACE_S``
    ago (players that started on it keep playing).
    """
    expires_text, dash, mac = token.partition("-")
    if not dash or not expires_text.isdigit():
        return None
    expires = int(expires_text)
    for master_key in _grantable_master_keys(video=video, now=now):
        if constant_time_compare(mac, _hls_token_mac(video_id=video.id, master_key=master_key, expires=expires)):
            return HlsTokenGrant(expires=expires, master_key=master_key, prefix=posixpath.dirname(master_key) + "/")
    return None


def previous_output_grace() -> timedelta:
    """How long a replaced HLS output stays stored and playable (``HLS_PREVIOUS_OUTPUT_GRACE_S``)."""
    return timedelta(seconds=settings.HLS_PREVIOUS_OUTPUT_GRACE_S)


def previous_output_grace_cutoff(*, now: datetime | None = None) -> datetime:
    """Previous HLS outputs superseded at or before this moment are past their grace period."""
    return (now or timezone.now()) - previous_output_grace()


def hls_app_url(*, video: Video, token: str, prefix: str, key: str, request: HttpRequest | None = None) -> str:
    """The app's own URL of ``key`` in the HLS folder ``prefix`` the token opens."""
    relative = key[len(prefix) :]
    url = reverse("video-hls", kwargs={"video_id": video.id, "token": token, "path": relative})
    return request.build_absolute_uri(url) if request is not None else url


def _grantable_master_keys(*, video: Video, now: datetime | None) -> Iterator[str]:
    """The current master key, then those of previous outputs still in their grace period."""
    if video.hls_master_key:
        yield video.hls_master_key
    # Asked only when the current output did not match: the usual request costs no query.
    yield from PreviousHlsOutput.objects.filter(
        video=video, superseded_at__gt=previous_output_grace_cutoff(now=now)
    ).values_list("master_key", flat=True)


def _hls_token_mac(*, video_id: uuid.UUID, master_key: str, expires: int) -> str:
    return salted_hmac(_HLS_TOKEN_SALT, f"{video_id}|{master_key}|{expires}", algorithm="sha256").hexdigest()


class _PlaybackUrls:
    """Maps storage keys of one ready video to URLs in the configured delivery mode."""

    def __init__(
        self,
        *,
        video: Video,
        request: HttpRequest | None = None,
        grant: HlsTokenGrant | None = None,
        token: str = "",
    ) -> None:
        """URLs of a new grant, or (``grant`` and its ``token``) of the grant an app-served URL carries."""
        self.video = video
        self.request = request
        self.mode = playback_mode()
        if grant is None:
            self.prefix = video_hls_prefix(video=video)
            self.expires = int(time.time()) + settings.CDN_TOKEN_TTL
            self.token = hls_token_make(video=video, expires=self.expires)
        else:
            self.prefix, self.expires, self.token = grant.prefix, grant.expires, token
        self.expires_at: datetime | None = datetime.fromtimestamp(self.expires, tz=UTC)
        if self.mode == MODE_CDN:
            self.expires_at = None

    def app_path(self, relative: str) -> str:
        """The app-served URL of ``relative`` under this grant's token."""
        url = reverse("video-hls", kwargs={"video_id": self.video.id, "token": self.token, "path": relative})
        return self.request.build_absolute_uri(url) if self.request is not None else url

    def app_url(self, key: str) -> str:
        """The app-served URL of a key in this grant's HLS folder."""
        return hls_app_url(video=self.video, token=self.token, prefix=self.prefix, key=key, request=self.request)

    def caption_file_url(self, track: CaptionTrack) -> str:
        """A track's WebVTT file, signed like a segment: a per-file CDN token, presigned, or app-served."""
        key = track.storage_key
        if self.mode == MODE_SIGNED_CDN:
            return signed_cdn_url(
                base=settings.CDN_URL, key=key, security_key=settings.CDN_TOKEN_KEY, expires=self.expires
            )
        if self.mode == MODE_CDN:
            return plain_cdn_url(settings.CDN_URL, key)
        if self.mode == MODE_PRESIGNED:
            return storage_url(key, expire_seconds=max(1, min(self.expires - int(time.time()), _MAX_PRESIGN_SECONDS)))
        return self.app_path(CAPTIONS_PATH + posixpath.basename(key))

    def url_for_key(self, key: str) -> str:
        in_folder = key.startswith(self.prefix)
        if self.mode == MODE_SIGNED_CDN:
            return signed_cdn_url(
                base=settings.CDN_URL,
                key=key,
                security_key=settings.CDN_TOKEN_KEY,
                expires=self.expires,
                directory_key=self.prefix if in_folder else None,
            )
        if self.mode == MODE_CDN:
            return plain_cdn_url(settings.CDN_URL, key)
        if self.mode == MODE_PRESIGNED and not (in_folder and asset_kind_for_key(key) in APP_REWRITTEN_KINDS):
            return storage_url(key, expire_seconds=min(settings.CDN_TOKEN_TTL, _MAX_PRESIGN_SECONDS))
        if in_folder:
            return hls_app_url(video=self.video, token=self.token, prefix=self.prefix, key=key, request=self.request)
        return storage_url(key)
