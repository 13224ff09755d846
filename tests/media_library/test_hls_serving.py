"""The app serving HLS: local files (Range, validators, cache headers) and rewritten playlists on S3."""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from django.utils.http import http_date

from media_library.models import Video
from media_library.selectors import hls_token_make, video_playback
from tests.hls_player import follow_playlists, playlist_uris, response_body
from tests.media_library.hls_fixture import make_ready_video

pytestmark = pytest.mark.django_db

SEGMENT_CACHE = "public, max-age=31536000, immutable"
PLAYLIST_CACHE = "public, max-age=3600, stale-while-revalidate=86400"
POSTER_CACHE = "public, max-age=604800"


@pytest.fixture
def video(settings, user, hls_source):
    settings.CDN_URL = ""
    return make_ready_video(owner=user, source=hls_source)


def _url(video, name: str, *, expires: int | None = None) -> str:
    token = hls_token_make(video=video, expires=expires or int(time.time()) + 600)
    return f"/api/v1/videos/{video.id}/hls/{token}/{name}"


@pytest.mark.parametrize(
    ("name", "content_type", "cache_control"),
    [
        ("master.m3u8", "application/vnd.apple.mpegurl", PLAYLIST_CACHE),
        ("240p/index.m3u8", "application/vnd.apple.mpegurl", PLAYLIST_CACHE),
        ("240p/seg_00000.ts", "video/mp2t", SEGMENT_CACHE),
        ("poster.jpg", "image/jpeg", POSTER_CACHE),
    ],
)
def test_local_files_have_type_cache_headers_and_validators(
    client, video, hls_source, name, content_type, cache_control
):
    response = client.get(_url(video, name))
    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response["Cache-Control"] == cache_control
    assert response["Accept-Ranges"] == "bytes"
    expected = (hls_source / name).read_bytes()
    assert response["Content-Length"] == str(len(expected))
    assert response_body(response) == expected
    assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+"', response["ETag"])
    assert response["Last-Modified"].endswith("GMT")


def test_range_request_answers_206_with_exactly_those_bytes(client, video, hls_source):
    data = (hls_source / "240p/seg_00001.ts").read_bytes()
    url = _url(video, "240p/seg_00001.ts")

    response = client.get(url, HTTP_RANGE="bytes=100-1123")
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 100-1123/{len(data)}"
    assert response["Content-Length"] == "1024"
    assert response_body(response) == data[100:1124]

    tail = client.get(url, HTTP_RANGE="bytes=-188")
    assert tail.status_code == 206 and response_body(tail) == data[-188:]
    open_ended = client.get(url, HTTP_RANGE=f"bytes={len(data) - 10}-")
    assert response_body(open_ended) == data[-10:]


def test_unsatisfiable_range_is_416(client, video, hls_source):
    size = (hls_source / "240p/seg_00001.ts").stat().st_size
    response = client.get(_url(video, "240p/seg_00001.ts"), HTTP_RANGE=f"bytes={size}-")
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{size}"


def test_conditional_get_answers_304(client, video):
    url = _url(video, "240p/seg_00000.ts")
    first = client.get(url)
    etag, last_modified = first["ETag"], first["Last-Modified"]

    by_etag = client.get(url, HTTP_IF_NONE_MATCH=etag)
    assert by_etag.status_code == 304
    assert by_etag.content == b""
    assert by_etag["ETag"] == etag and by_etag["Cache-Control"] == SEGMENT_CACHE
    assert client.get(url, HTTP_IF_MODIFIED_SINCE=last_modified).status_code == 304
    assert client.get(url, HTTP_IF_NONE_MATCH='"other"').status_code == 200
    assert client.get(url, HTTP_IF_MODIFIED_SINCE=http_date(0)).status_code == 200


def test_if_range_with_a_stale_validator_sends_the_whole_file(client, video, hls_source):
    url = _url(video, "240p/seg_00000.ts")
    etag = client.get(url)["ETag"]
    assert client.get(url, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=etag).status_code == 206
    stale = client.get(url, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"stale"')
    assert stale.status_code == 200
    assert response_body(stale) == (hls_source / "240p/seg_00000.ts").read_bytes()


def test_head_has_headers_and_noresponse_body(client, video, hls_source):
    response = client.head(_url(video, "poster.jpg"))
    assert response.status_code == 200
    assert response["Content-Length"] == str((hls_source / "poster.jpg").stat().st_size)
    assert response_body(response) == b""


def test_tokens_and_paths_are_checked(client, video, user, hls_source):
    assert client.get(_url(video, "master.m3u8", expires=int(time.time()) - 1)).status_code == 403
    good = _url(video, "master.m3u8")
    forged = good.replace("/hls/", "/hls/1", 1)
    assert client.get(forged).status_code == 404
    other = make_ready_video(owner=user, source=hls_source)
    assert client.get(good.replace(str(video.id), str(other.id))).status_code == 404
    assert client.get(_url(video, "../../../../../etc/passwd")).status_code == 404
    assert client.get(_url(video, "240p/missing.ts")).status_code == 404
    assert client.post(good).status_code == 405


def test_a_grant_keeps_working_while_the_video_is_transcoded_again(client, video):
    master, segment = _url(video, "master.m3u8"), _url(video, "240p/seg_00000.ts")
    Video.objects.filter(pk=video.pk).update(status=Video.Status.PROCESSING)
    assert client.get(master).status_code == 200
    assert client.get(segment).status_code == 200


def test_the_played_master_resolves_every_relative_uri(client, video, user):
    """What a player does on local storage: follow the master, then each playlist's URIs."""
    grant = video_playback(video=video, user=user)
    fetched = follow_playlists(client, grant.hls_url, fetch_external=None)
    assert any(url.endswith(".ts") for url in fetched)


def test_on_s3_every_uri_in_the_served_playlists_fetches(client, settings, s3_storage, user, hls_source):
    settings.CDN_URL = ""
    video = make_ready_video(owner=user, source=hls_source)
    grant = video_playback(video=video, user=user)
    assert grant.mode == "presigned"

    master = client.get(urlsplit(grant.hls_url).path)
    assert master.status_code == 200
    assert master["Content-Type"] == "application/vnd.apple.mpegurl"
    assert master["Cache-Control"].startswith("private, max-age=")
    variant_uris = playlist_uris(master.content.decode())
    assert variant_uris and all(
        uri.startswith(f"http://testserver/api/v1/videos/{video.id}/hls/") for uri in variant_uris
    )

    media = client.get(urlsplit(variant_uris[0]).path).content.decode()
    segment_uris = playlist_uris(media)
    assert len(segment_uris) == len(list(Path(hls_source, "240p").glob("*.ts")))
    assert all("X-Amz-Signature=" in uri for uri in segment_uris)

    session = requests.Session()
    fetched = follow_playlists(client, grant.hls_url, fetch_external=lambda url: session.get(url, timeout=10))
    segments = [url for url in fetched if urlsplit(url).path.endswith(".ts")]
    assert len(segments) == len(segment_uris)
    first = session.get(segments[-1], timeout=10)
    assert first.headers["Content-Type"] == "video/mp2t"
    assert first.headers["Cache-Control"] == SEGMENT_CACHE
    poster = session.get(grant.poster_url, timeout=10)
    assert poster.status_code == 200 and poster.content == (hls_source / "poster.jpg").read_bytes()


def test_on_s3_a_segment_through_the_app_redirects_to_a_presigned_url(client, settings, s3_storage, user, hls_source):
    settings.CDN_URL = ""
    video = make_ready_video(owner=user, source=hls_source)
    response = client.get(_url(video, "240p/seg_00000.ts"))
    assert response.status_code == 302
    fetched = requests.get(response["Location"], timeout=10)
    assert fetched.status_code == 200
    assert fetched.content == (hls_source / "240p/seg_00000.ts").read_bytes()
