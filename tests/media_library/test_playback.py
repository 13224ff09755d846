"""Playback URLs in each delivery mode (signed CDN, plain CDN, presigned, local, legacy)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from django.utils import timezone

from media_library.models import PreviousHlsOutput
from media_library.selectors import hls_token_grant, video_playback, video_playback_url
from tests.factories import make_video
from tests.hls_player import response_body
from tests.media_library.hls_fixture import make_ready_video
from unpuzzle.exceptions import VideoNotReady

pytestmark = pytest.mark.django_db

CDN = "https://unpuzzle-test.b-cdn.net"
KEY = "0f1e2d3c-token-key"


@pytest.fixture
def video(user, hls_source):
    return make_ready_video(owner=user, source=hls_source)


def _bunny_token(token_path: str, expires: int) -> str:
    """Bunny's HS256 token computed independently of media_library.cdn."""
    message = f"{token_path}{expires}token_path={token_path}".encode()
    digest = hmac.new(KEY.encode(), message, hashlib.sha256).digest()
    return "HS256-" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def test_signed_cdn_uses_a_directory_token_for_the_attempt_folder(settings, video, user):
    settings.CDN_URL, settings.CDN_TOKEN_KEY, settings.CDN_TOKEN_TTL = CDN, KEY, 600
    before = int(time.time())
    grant = video_playback(video=video, user=user)

    assert grant.mode == "signed_cdn"
    folder = f"/videos/{video.id}/hls/1/"
    parts = urlsplit(grant.hls_url)
    assert f"{parts.scheme}://{parts.netloc}" == CDN
    token_segment, _, rest = parts.path[1:].partition("/")
    assert "/" + rest == folder + "master.m3u8"
    params = dict(pair.split("=", 1) for pair in token_segment.split("&"))
    expires = int(params["expires"])
    assert before + 600 <= expires <= int(time.time()) + 600
    assert unquote(params["token_path"]) == folder
    assert params["bcdn_token"] == _bunny_token(folder, expires)
    assert grant.expires_at.timestamp() == expires
    # The poster and rendition playlists are in the folder: same directory token.
    assert grant.poster_url.startswith(f"{CDN}/{token_segment}/")
    assert grant.poster_url.endswith(f"{folder}poster.jpg")
    assert grant.renditions[0]["url"] == f"{CDN}/{token_segment}{folder}240p/index.m3u8"
    assert grant.renditions[0] | {"url": None} == {
        "name": "240p",
        "width": 320,
        "height": 240,
        "bandwidth": 300_000,
        "average_bandwidth": 250_000,
        "codecs": "avc1.640015,mp4a.40.2",
        "url": None,
    }


def test_signed_cdn_poster_outside_the_folder_gets_a_file_token(settings, video, user):
    settings.CDN_URL, settings.CDN_TOKEN_KEY = CDN, KEY
    video.poster_key = f"videos/{video.id}/poster.jpg"
    grant = video_playback(video=video, user=user)
    parts = urlsplit(grant.poster_url)
    assert parts.path == f"/videos/{video.id}/poster.jpg"
    query = parse_qs(parts.query)
    assert query["token"][0] == _bunny_token_for_file(parts.path, int(query["expires"][0]))


def _bunny_token_for_file(path: str, expires: int) -> str:
    digest = hmac.new(KEY.encode(), f"{path}{expires}".encode(), hashlib.sha256).digest()
    return "HS256-" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def test_plain_cdn_urls_do_not_expire(settings, video, user):
    settings.CDN_URL, settings.CDN_TOKEN_KEY = CDN + "/", ""
    grant = video_playback(video=video, user=user)
    assert grant.mode == "cdn"
    assert grant.hls_url == f"{CDN}/videos/{video.id}/hls/1/master.m3u8"
    assert grant.poster_url == f"{CDN}/videos/{video.id}/hls/1/poster.jpg"
    assert grant.expires_at is None


def test_local_storage_points_at_the_app_with_a_path_token(settings, video, user, rf):
    settings.CDN_URL = ""
    grant = video_playback(video=video, user=user, request=rf.get("/"))
    assert grant.mode == "local"
    prefix = f"http://testserver/api/v1/videos/{video.id}/hls/"
    assert grant.hls_url.startswith(prefix) and grant.hls_url.endswith("/master.m3u8")
    token = grant.hls_url[len(prefix) :].split("/")[0]
    opened = hls_token_grant(video=video, token=token)
    assert opened.expires == int(grant.expires_at.timestamp())
    assert (opened.master_key, opened.prefix) == (video.hls_master_key, f"videos/{video.id}/hls/1/")
    assert grant.poster_url == f"{prefix}{token}/poster.jpg"
    # Without a request the URLs are site-relative.
    assert video_playback(video=video, user=user).hls_url.startswith(f"/api/v1/videos/{video.id}/hls/")


def test_presigned_mode_presigns_the_poster_and_serves_playlists_from_the_app(settings, s3_storage, user, hls_source):
    settings.CDN_URL = ""
    video = make_ready_video(owner=user, source=hls_source)
    grant = video_playback(video=video, user=user)
    assert grant.mode == "presigned"
    assert grant.hls_url.startswith(f"/api/v1/videos/{video.id}/hls/")
    poster = urlsplit(grant.poster_url)
    assert poster.path.endswith(f"/videos/{video.id}/hls/1/poster.jpg")
    assert "X-Amz-Signature" in poster.query and "X-Amz-Expires=21600" in poster.query


def test_tokens_are_tied_to_the_video_and_its_current_output(video, user, hls_source):
    grant = video_playback(video=video, user=user)
    token = grant.hls_url.split("/hls/")[1].split("/")[0]
    other = make_ready_video(owner=user, source=hls_source)
    assert hls_token_grant(video=other, token=token) is None
    assert hls_token_grant(video=video, token=token.replace("-", "-0", 1)) is None
    assert hls_token_grant(video=video, token="garbage") is None
    video.hls_master_key = f"videos/{video.id}/hls/2/master.m3u8"
    assert hls_token_grant(video=video, token=token) is None, "the replaced output was not kept"


def test_a_replaced_outputs_tokens_open_it_until_its_grace_period_ends(settings, video, user, hls_source):
    settings.CDN_URL = ""
    settings.HLS_PREVIOUS_OUTPUT_GRACE_S = 600
    token = video_playback(video=video, user=user).hls_url.split("/hls/")[1].split("/")[0]
    replaced_at = timezone.now()
    PreviousHlsOutput.objects.create(video=video, master_key=video.hls_master_key, superseded_at=replaced_at)
    video.hls_master_key = f"videos/{video.id}/hls/2/master.m3u8"
    video.save(update_fields=["hls_master_key"])

    opened = hls_token_grant(video=video, token=token, now=replaced_at + timedelta(seconds=599))
    assert (opened.master_key, opened.prefix) == (f"videos/{video.id}/hls/1/master.m3u8", f"videos/{video.id}/hls/1/")
    assert hls_token_grant(video=video, token=token, now=replaced_at + timedelta(seconds=600)) is None
    other = make_ready_video(owner=user, source=hls_source)
    assert hls_token_grant(video=other, token=token, now=replaced_at) is None


def test_not_ready_is_a_conflict_with_the_status(user):
    video = make_video(owner=user, status="processing")
    with pytest.raises(VideoNotReady) as caught:
        video_playback(video=video, user=user)
    assert caught.value.status_code == 409
    assert caught.value.extra["status"] == "processing"


@pytest.mark.parametrize("status", ["queued", "processing", "blocked"])
def test_a_video_being_transcoded_again_keeps_playing_its_current_output(video, user, status, client):
    video.status = status
    video.save(update_fields=["status"])
    grant = video_playback(video=video, user=user)
    assert grant.mode == "local" and f"/videos/{video.id}/hls/" in grant.hls_url
    client.force_login(user)
    master = client.get(grant.hls_url)
    assert master.status_code == 200 and b"#EXTM3U" in response_body(master)


def test_legacy_video_returns_its_provider_url(user):
    video = make_video(owner=user, status="ready", video_url="https://vimeo.com/76979871", video_provider="vimeo")
    grant = video_playback(video=video, user=user)
    assert (grant.mode, grant.hls_url, grant.poster_url, grant.expires_at) == (
        "legacy",
        "https://vimeo.com/76979871",
        None,
        None,
    )


def test_someone_elses_video_is_refused_without_a_visibility_setting(settings, video, other_user):
    settings.VIDEO_VISIBILITY = "owner"
    with pytest.raises(PermissionError):
        video_playback(video=video, user=other_user)
    settings.VIDEO_VISIBILITY = "authenticated"
    assert video_playback(video=video, user=other_user).mode == "local"


def test_video_playback_url_uses_the_same_selector(settings, video, user):
    settings.CDN_URL = CDN
    assert video_playback_url(video=video) == f"{CDN}/videos/{video.id}/hls/1/master.m3u8"
    assert video_playback_url(video=make_video(owner=user)) is None
