"""Scrubbing previews end to end: sprite sheets and their WebVTT track from the ladder's decode, stored with
the output, deleted with it, and reachable from ``thumbnails_url`` in every delivery mode."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import subprocess
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
import requests

from media_library.models import Video
from tests.factories import make_stored_video
from tests.hls_player import response_body
from tests.transcoding.services.test_pipeline import keys_under, run
from transcoding.models import TranscodeJob
from transcoding.services.videos import video_delete
from unpuzzle import storage

pytestmark = pytest.mark.django_db(transaction=True)

CDN = "https://previews-test.b-cdn.net"
CDN_KEY = "9a8b7c-preview-token-key"
_TIME = r"(\d+):(\d\d):(\d\d)\.(\d{3})"
_CUE = re.compile(rf"^{_TIME} --> {_TIME}\n(\S+)#xywh=(\d+),(\d+),(\d+),(\d+)$", re.MULTILINE)


@pytest.fixture(autouse=True)
def small_ladder(settings):
    settings.HLS_LADDER = "120p:200k,180p:400k"
    settings.HLS_SEGMENT_SECONDS = 2
    settings.HLS_AUDIO_BITRATE = "64k"


def _seconds(hours: str, minutes: str, secs: str, millis: str) -> float:
    return int(hours) * 3600 + int(minutes) * 60 + int(secs) + int(millis) / 1000


def parse_cues(text: str) -> list[tuple[float, float, str, tuple[int, int, int, int]]]:
    """(start, end, image, (x, y, w, h)) of every cue of a thumbnails track."""
    assert text.startswith("WEBVTT\n")
    cues = []
    for match in _CUE.finditer(text):
        groups = match.groups()
        cues.append(
            (_seconds(*groups[0:4]), _seconds(*groups[4:8]), groups[8], tuple(int(value) for value in groups[9:13]))
        )
    assert len(cues) == text.count("-->")
    return cues


def image_size(data: bytes, tmp_path: Path) -> tuple[int, int]:
    """Width and height of a picture, read by ffprobe."""
    path = tmp_path / f"probe-{hashlib.sha256(data).hexdigest()[:12]}.jpg"
    path.write_bytes(data)
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=width,height", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    stream = json.loads(out.stdout)["streams"][0]
    return stream["width"], stream["height"]


def read_bytes(key: str) -> bytes:
    with storage.get_storage().open(key, "rb") as fh:
        return fh.read()


def assert_track_covers(text: str, duration: float, sheets: dict[str, bytes], tmp_path: Path) -> int:
    """Cues run from 0 to ``duration`` with no gap or overlap, each inside its sheet's real pixels."""
    cues = parse_cues(text)
    assert cues and cues[0][0] == 0
    for previous, following in zip(cues, cues[1:], strict=False):
        assert following[0] == previous[1], (previous, following)
    assert cues[-1][1] == pytest.approx(duration, abs=0.002)
    sizes = {name: image_size(data, tmp_path) for name, data in sheets.items()}
    for _, _, image, (x, y, w, h) in cues:
        width, height = sizes[image]
        assert w == 160 and h > 0 and 0 <= x and x + w <= width and 0 <= y and y + h <= height, (image, x, y, w, h)
    return len(cues)


def test_sprites_and_track_cover_the_whole_video_and_go_with_the_output(user, landscape_clip, settings, tmp_path):
    settings.PREVIEW_INTERVAL_S = 0.05  # 120 frames: the first alone, then two 10x10 sheets
    video = make_stored_video(user, landscape_clip)
    job = run(video)
    assert job.status == TranscodeJob.Status.SUCCEEDED, job.error
    prefix = f"videos/{video.id}/hls/1/"
    assert video.thumbnails_key == prefix + "thumbnails.vtt"
    stored = keys_under(prefix)
    sheet_keys = sorted(key for key in stored if key.rsplit("/", 1)[1].startswith("sprite-"))
    assert sheet_keys == [prefix + "sprite-0.jpg", prefix + "sprite-1.jpg", prefix + "sprite-2.jpg"]
    sheets = {key.rsplit("/", 1)[1]: read_bytes(key) for key in sheet_keys}
    assert image_size(sheets["sprite-0.jpg"], tmp_path) == (1600, 900)
    text = read_bytes(video.thumbnails_key).decode()
    assert assert_track_covers(text, video.duration, sheets, tmp_path) == 120

    # a re-transcode with the default interval replaces the track; the old folder goes with its grace period
    settings.PREVIEW_INTERVAL_S = 5.0
    settings.HLS_PREVIOUS_OUTPUT_GRACE_S = 0
    run(video)
    assert video.thumbnails_key == f"videos/{video.id}/hls/2/thumbnails.vtt"
    assert keys_under(prefix) == set()
    text = read_bytes(video.thumbnails_key).decode()
    assert [cue[:2] for cue in parse_cues(text)] == [(0.0, 5.0), (5.0, pytest.approx(video.duration, abs=0.002))]

    video_delete(video=video, deleted_by=user)
    assert keys_under(f"videos/{video.id}/") == set()


def test_portrait_previews_keep_the_picture_shape(user, rotated_portrait_clip, settings, tmp_path):
    settings.PREVIEW_INTERVAL_S = 2.0
    video = make_stored_video(user, rotated_portrait_clip)
    run(video)
    text = read_bytes(video.thumbnails_key).decode()
    sheet = {name: read_bytes(f"videos/{video.id}/hls/1/{name}") for name in ("sprite-0.jpg", "sprite-1.jpg")}
    assert_track_covers(text, video.duration, sheet, tmp_path)
    assert [cue[3] for cue in parse_cues(text)] == [(1440, 2556, 160, 284), (0, 0, 160, 284)]
    assert image_size(sheet["sprite-1.jpg"], tmp_path) == (1600, 2840)


def test_previews_off_by_setting_store_none(user, no_audio_clip, settings):
    settings.PREVIEW_THUMBNAILS = False
    video = make_stored_video(user, no_audio_clip)
    run(video)
    assert video.status == Video.Status.READY and video.thumbnails_key == ""
    assert not [key for key in keys_under(f"videos/{video.id}/") if "sprite" in key or key.endswith(".vtt")]


def test_a_duplicate_shares_the_previews(user, landscape_clip, client):
    from media_library.services import video_output_share
    from tests.factories import make_video

    video = make_stored_video(user, landscape_clip)
    run(video)
    copy = make_video(owner=user, media_file=video.media_file)
    video_output_share(video=copy, source=video)
    copy.refresh_from_db()
    assert copy.thumbnails_key == video.thumbnails_key
    client.force_login(user)
    body = client.get(f"/api/v1/videos/{copy.id}/playback/").json()
    assert f"/api/v1/videos/{copy.id}/hls/" in body["thumbnails_url"]


def _bunny_token(token_path: str, expires: int) -> str:
    """Bunny's HS256 directory token, computed independently of media_library.cdn."""
    message = f"{token_path}{expires}token_path={token_path}".encode()
    digest = hmac.new(CDN_KEY.encode(), message, hashlib.sha256).digest()
    return "HS256-" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def pull_zone(url: str, *, signed: bool) -> bytes:
    """What a Bunny pull zone in front of local storage answers: checks the directory token, serves the key."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == CDN
    path = parts.path
    if signed:
        token_segment, _, rest = path[1:].partition("/")
        params = dict(pair.split("=", 1) for pair in token_segment.split("&"))
        token_path = unquote(params["token_path"])
        assert params["bcdn_token"] == _bunny_token(token_path, int(params["expires"])), url
        path = "/" + rest
        assert path.startswith(token_path), (path, token_path)
    return read_bytes(unquote(path[1:]))


def fetch_previews(url: str, *, get) -> tuple[str, dict[str, bytes]]:
    """Follow a thumbnails URL as a player does: the track, then every sheet it references."""
    text = get(url).decode()
    sheets = {}
    for _, _, image, _ in parse_cues(text):
        if image not in sheets:
            sheets[image] = get(urljoin(url, image))
    return text, sheets


@pytest.mark.parametrize("mode", ["local", "signed_cdn", "cdn"])
def test_thumbnails_url_works_in_every_local_storage_mode(user, landscape_clip, client, settings, tmp_path, mode):
    settings.CDN_URL = CDN if mode != "local" else ""
    settings.CDN_TOKEN_KEY = CDN_KEY if mode == "signed_cdn" else ""
    video = make_stored_video(user, landscape_clip)
    run(video)
    client.force_login(user)
    body = client.get(f"/api/v1/videos/{video.id}/playback/").json()
    assert body["mode"] == mode and body["thumbnails_url"]

    def get(url: str) -> bytes:
        if mode != "local":
            return pull_zone(url, signed=mode == "signed_cdn")
        response = client.get(urlsplit(url).path)
        assert response.status_code == 200, (url, response.status_code)
        assert response["Content-Type"] in ("text/vtt", "image/jpeg")
        return response_body(response)

    text, sheets = fetch_previews(body["thumbnails_url"], get=get)
    assert sheets and assert_track_covers(text, video.duration, sheets, tmp_path) == 2
    if mode == "signed_cdn":
        # the sheet inherits the track's directory token; a sheet outside the token's folder is refused
        with pytest.raises(AssertionError):
            pull_zone(body["thumbnails_url"].replace("/hls/1/", "/hls/0/"), signed=True)


@pytest.mark.slow
def test_thumbnails_url_on_s3_is_rewritten_to_presigned_sheets(
    user, landscape_clip, client, settings, s3_storage, tmp_path
):
    settings.CDN_URL = ""
    video = make_stored_video(user, landscape_clip)
    run(video)
    client.force_login(user)
    body = client.get(f"/api/v1/videos/{video.id}/playback/").json()
    assert body["mode"] == "presigned"
    assert urlsplit(body["thumbnails_url"]).path.startswith(f"/api/v1/videos/{video.id}/hls/")
    response = client.get(urlsplit(body["thumbnails_url"]).path)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/vtt")
    assert response["Cache-Control"].startswith("private")
    text = response_body(response).decode()
    session = requests.Session()
    sheets = {}
    for _, _, image, _ in parse_cues(text):
        assert "X-Amz-Signature=" in image
        fetched = session.get(image, timeout=10)
        assert fetched.status_code == 200 and fetched.headers["Content-Type"] == "image/jpeg"
        sheets[image] = fetched.content
    assert assert_track_covers(text, video.duration, sheets, tmp_path) == 2
