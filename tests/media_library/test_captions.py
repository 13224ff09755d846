"""Caption tracks: the API, what is stored, and the subtitle renditions players get in every delivery mode."""

from __future__ import annotations

import json
import re
import subprocess
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from media_library.models import CaptionTrack, Video
from media_library.selectors import video_playback
from media_library.webvtt import mpegts_first_pts
from tests.factories import make_stored_video, make_superuser
from tests.hls_player import follow_playlists, playlist_uris, response_body
from tests.media_library.hls_fixture import make_ready_video
from transcoding.services.jobs import transcode_enqueue
from transcoding.services.pipeline import transcode_run
from transcoding.services.videos import duplicate_video_create
from unpuzzle import storage

pytestmark = pytest.mark.django_db

CDN = "https://unpuzzle-test.b-cdn.net"
SRT = "1\n00:00:00,500 --> 00:00:01,500\nÜnïcödé — 日本語\n\n2\n00:00:02,000 --> 00:00:02,800\n<i>second</i>\n".encode()
VTT = b"WEBVTT\n\n00:00:00.200 --> 00:00:01.000\n<b>English</b> first\n\n00:00:01.500 --> 00:00:02.500\nsecond\n"


@pytest.fixture
def video(settings, user, hls_source):
    settings.CDN_URL = ""
    return make_ready_video(owner=user, source=hls_source)


def add_track(client, video, content: bytes, name: str = "track.vtt", **fields):
    data = {"language": "en", "label": "English", "kind": "subtitles", **fields}
    data["file"] = SimpleUploadedFile(name, content, content_type="text/plain")
    return client.post(f"/api/v1/videos/{video.id}/captions/", data, format="multipart")


def caption_keys(video) -> set[str]:
    return {key for key, _ in storage.iter_objects(f"videos/{video.id}/captions/")}


def read_key(key: str) -> str:
    with storage.get_storage().open(key, "rb") as fh:
        return fh.read().decode("utf-8")


def test_tracks_from_srt_and_webvtt_are_stored_as_webvtt_and_listed(api_client, video):
    srt = add_track(api_client, video, SRT, "ja.srt", language="ja", label="日本語", kind="captions", default="true")
    vtt = add_track(api_client, video, VTT, language="en", label="English")
    assert (srt.status_code, vtt.status_code) == (201, 201), (srt.json(), vtt.json())
    assert srt.json()["default"] is True and srt.json()["cue_count"] == 2 and srt.json()["warnings"] == []

    track = CaptionTrack.objects.get(pk=srt.json()["id"])
    assert track.storage_key == f"videos/{video.id}/captions/{track.id}-1.vtt"
    assert caption_keys(video) == {track.storage_key, CaptionTrack.objects.get(pk=vtt.json()["id"]).storage_key}
    assert read_key(track.storage_key) == (
        "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:126000,LOCAL:00:00:00.000\n\n"
        "00:00:00.500 --> 00:00:01.500\nÜnïcödé — 日本語\n\n"
        "00:00:02.000 --> 00:00:02.800\n<i>second</i>\n\n"
    )
    listed = api_client.get(f"/api/v1/videos/{video.id}/captions/").json()
    assert [(t["language"], t["label"], t["kind"], t["default"]) for t in listed] == [
        ("ja", "日本語", "captions", True),
        ("en", "English", "subtitles", False),
    ]


def test_playback_lists_the_tracks_and_the_master_carries_them_in_local_mode(api_client, client, video, user):
    add_track(api_client, video, SRT, "ja.srt", language="ja", label="日本語", default="true")
    add_track(api_client, video, VTT)
    playback = api_client.get(f"/api/v1/videos/{video.id}/playback/").json()
    assert [(c["language"], c["label"], c["kind"]) for c in playback["captions"]] == [
        ("ja", "日本語", "subtitles"),
        ("en", "English", "subtitles"),
    ]
    master = client.get(urlsplit(playback["hls_url"]).path)
    assert master["Cache-Control"].startswith("private, max-age=")
    text = master.content.decode()
    media = [line for line in text.splitlines() if line.startswith("#EXT-X-MEDIA:TYPE=SUBTITLES")]
    assert len(media) == 2
    assert 'NAME="日本語",LANGUAGE="ja",DEFAULT=YES,AUTOSELECT=YES,FORCED=NO,URI="http://testserver/' in media[0]
    assert all(line.endswith('SUBTITLES="subs"') for line in text.splitlines() if line.startswith("#EXT-X-STREAM-INF"))

    fetched = follow_playlists(client, playback["hls_url"])
    vtts = [url for url in fetched if url.endswith(".vtt")]
    assert len(vtts) == 2
    response = client.get(urlsplit(playback["captions"][0]["url"]).path)
    assert response["Content-Type"] == "text/vtt"
    assert "日本語" in response_body(response).decode()


def test_subtitle_playlist_is_one_segment_for_the_whole_video(api_client, client, video):
    add_track(api_client, video, VTT)
    master = client.get(urlsplit(api_client.get(f"/api/v1/videos/{video.id}/playback/").json()["hls_url"]).path)
    uri = re.search(r'TYPE=SUBTITLES.*URI="([^"]+)"', master.content.decode()).group(1)
    playlist = client.get(urlsplit(uri).path).content.decode()
    assert "#EXT-X-TARGETDURATION:3\n" in playlist and "#EXTINF:3.000,\n" in playlist
    assert playlist.endswith("#EXT-X-ENDLIST\n")


def test_presigned_mode_serves_every_subtitle_file(settings, s3_storage, user, hls_source):
    settings.CDN_URL = ""
    video = make_ready_video(owner=user, source=hls_source)
    client = APIClient()
    client.force_authenticate(user)
    assert add_track(client, video, VTT).status_code == 201
    grant = video_playback(video=video, user=user)
    assert grant.mode == "presigned" and "X-Amz-Signature=" in grant.captions[0]["url"]
    session = requests.Session()
    fetched = follow_playlists(client, grant.hls_url, fetch_external=lambda url: session.get(url, timeout=10))
    vtt = [url for url in fetched if urlsplit(url).path.endswith(".vtt")]
    assert len(vtt) == 1 and "X-Amz-Signature=" in vtt[0]
    assert "<b>English</b> first" in session.get(vtt[0], timeout=10).text


def test_signed_cdn_mode_signs_the_webvtt_files_like_segments(api_client, client, settings, video):
    settings.CDN_URL, settings.CDN_TOKEN_KEY = CDN, "test-key"
    add_track(api_client, video, VTT)
    grant = video_playback(video=video, user=None)
    assert grant.hls_url.startswith(f"/api/v1/videos/{video.id}/hls/")
    expires = str(int(grant.expires_at.timestamp()))
    file_url = urlsplit(grant.captions[0]["url"])
    assert file_url.netloc == urlsplit(CDN).netloc
    assert parse_qs(file_url.query)["expires"] == [expires] and parse_qs(file_url.query)["token"][0].startswith(
        "HS256-"
    )

    master = client.get(grant.hls_url).content.decode()
    variants = [uri for uri in playlist_uris(master) if "captions/" not in uri]
    assert variants and all(
        uri.startswith(f"{CDN}/bcdn_token=HS256-") and f"expires={expires}" in uri for uri in variants
    )
    subtitles = re.search(r'TYPE=SUBTITLES.*URI="([^"]+)"', master).group(1)
    playlist = client.get(subtitles).content.decode()
    assert playlist_uris(playlist) == [grant.captions[0]["url"]]


@pytest.mark.django_db(transaction=True)
def test_without_tracks_the_master_is_the_stored_one(client, video, hls_source, api_client):
    grant = video_playback(video=video, user=None)
    assert response_body(client.get(grant.hls_url)) == (hls_source / "master.m3u8").read_bytes()
    track = add_track(api_client, video, VTT).json()
    assert api_client.delete(f"/api/v1/videos/{video.id}/captions/{track['id']}/").status_code == 204
    assert caption_keys(video) == set()
    grant = video_playback(video=video, user=None)
    assert response_body(client.get(grant.hls_url)) == (hls_source / "master.m3u8").read_bytes()


HOSTILE = [
    (
        "huge.vtt",
        b"WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n" + b"x" * 3000,
        413,
        "larger than the limit of 2048 bytes",
    ),
    ("binary.vtt", bytes(range(256)) * 4, 400, "NUL character at byte offset 0"),
    ("latin1.srt", "1\n00:00:00,000 --> 00:00:01,000\ncafé\n".encode("latin-1"), 400, "byte 0xe9 at byte offset"),
    ("negative.vtt", b"WEBVTT\n\n-00:00:01.000 --> 00:00:02.000\nx\n", 400, "negative timestamp"),
    ("broken.vtt", b"WEBVTT\n\n00:00:01 --> 00:00:02\nx\n", 400, "is malformed"),
    ("reversed.srt", b"1\n00:00:02,000 --> 00:00:01,000\nx\n", 400, "before or when it starts"),
    ("script.vtt", b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n<script>alert(1)</script>\n", 400, "<script>"),
]


@pytest.mark.parametrize(("name", "content", "status", "message"), HOSTILE)
def test_hostile_files_are_refused_and_nothing_is_stored(api_client, settings, video, name, content, status, message):
    settings.CAPTIONS_MAX_BYTES = 2048
    response = add_track(api_client, video, content, name)
    assert response.status_code == status
    assert message in response.json()["detail"]
    assert not CaptionTrack.objects.exists() and caption_keys(video) == set()


def test_ten_thousand_cues_are_refused(api_client, video):
    cues = "".join(
        f"{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}.000 --> {i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}.500\nc\n\n"
        for i in range(10_000)
    )
    response = add_track(api_client, video, ("WEBVTT\n\n" + cues).encode())
    assert response.status_code == 400
    assert response.json()["detail"] == "the caption file has more than 5000 cues; split it or merge short cues"
    assert not CaptionTrack.objects.exists() and caption_keys(video) == set()


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"language": "English"}, "not a BCP 47 language tag"), ({"kind": "chapters"}, "chapters")],
)
def test_bad_track_settings_are_refused(api_client, video, fields, message):
    response = add_track(api_client, video, VTT, **fields)
    assert response.status_code == 400 and message in json.dumps(response.json())
    assert caption_keys(video) == set()


def test_cues_after_the_end_are_stored_with_a_warning(api_client, video):
    response = add_track(api_client, video, b"WEBVTT\n\n00:00:02.000 --> 00:00:04.000\nlate\n")
    assert response.status_code == 201
    assert response.json()["warnings"] == [
        "1 cue(s) end after the video's end (00:00:03.000), the first at 00:00:02.000; "
        "players never show what lies past the end"
    ]


@pytest.mark.django_db(transaction=True)
def test_update_moves_the_default_and_a_new_file_replaces_the_old_object(api_client, video):
    first = add_track(api_client, video, VTT, default="true").json()
    second = add_track(api_client, video, SRT, "ja.srt", language="ja", label="Japanese").json()
    url = f"/api/v1/videos/{video.id}/captions/{second['id']}/"
    response = api_client.patch(url, {"default": True, "label": "日本語"}, format="json")
    assert response.status_code == 200 and response.json()["default"] is True
    assert CaptionTrack.objects.get(pk=first["id"]).is_default is False

    old_key = CaptionTrack.objects.get(pk=second["id"]).storage_key
    replaced = api_client.patch(url, {"file": SimpleUploadedFile("new.vtt", VTT)}, format="multipart")
    assert replaced.status_code == 200 and replaced.json()["revision"] == 2
    track = CaptionTrack.objects.get(pk=second["id"])
    assert track.storage_key.endswith(f"{track.id}-2.vtt") and track.label == "日本語"
    assert old_key not in caption_keys(video) and track.storage_key in caption_keys(video)

    refused = api_client.patch(url, {"file": SimpleUploadedFile("bad.vtt", b"WEBVTT\n\nnope\n")}, format="multipart")
    assert refused.status_code == 400
    assert CaptionTrack.objects.get(pk=second["id"]).storage_key == track.storage_key


def test_another_users_video_and_tracks_are_404(api_client, other_user, hls_source, settings):
    settings.CDN_URL = ""
    theirs = make_ready_video(owner=other_user, source=hls_source)
    their_client = APIClient()
    their_client.force_authenticate(other_user)
    track = add_track(their_client, theirs, VTT).json()
    base = f"/api/v1/videos/{theirs.id}/captions/"
    assert api_client.get(base).status_code == 404
    assert add_track(api_client, theirs, VTT).status_code == 404
    assert api_client.patch(f"{base}{track['id']}/", {"label": "x"}, format="json").status_code == 404
    assert api_client.delete(f"{base}{track['id']}/").status_code == 404
    assert CaptionTrack.objects.get(pk=track["id"]).label == "English"


@pytest.mark.django_db(transaction=True)
def test_deleting_a_video_removes_its_captions_but_not_a_duplicates(api_client, user, video):
    duplicate = duplicate_video_create(owner=user, title="Again", media_file=video.media_file)
    add_track(api_client, video, VTT)
    add_track(api_client, duplicate, SRT, "ja.srt", language="ja")
    duplicate_keys = caption_keys(duplicate)
    assert len(caption_keys(video)) == 1 and len(duplicate_keys) == 1

    grant = video_playback(video=Video.objects.get(pk=duplicate.pk), user=user)
    assert [c["language"] for c in grant.captions] == ["ja"]

    assert api_client.delete(f"/api/v1/videos/{video.id}/").status_code == 204
    assert caption_keys(video) == set()
    assert caption_keys(duplicate) == duplicate_keys
    assert api_client.delete(f"/api/v1/videos/{duplicate.id}/").status_code == 204
    assert caption_keys(duplicate) == set()


@pytest.mark.django_db(transaction=True)
def test_ffprobe_opens_the_master_and_the_subtitle_playlists(api_client, live_server, video):
    add_track(api_client, video, SRT, "ja.srt", language="ja", label="日本語", default="true")
    add_track(api_client, video, VTT)
    grant = video_playback(video=video, user=None)
    master_url = live_server.url + grant.hls_url
    # ffmpeg 5.1's HLS demuxer reads subtitle renditions only when experimental features are allowed.
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-strict", "experimental", "-show_streams", "-of", "json", master_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    streams = json.loads(probe.stdout)["streams"]
    subtitles = [s for s in streams if s["codec_type"] == "subtitle"]
    assert {s["codec_name"] for s in subtitles} == {"webvtt"} and len(subtitles) == 2
    assert {s["tags"].get("language") for s in subtitles} == {"ja", "en"}

    master = requests.get(master_url, timeout=10).text
    for uri in re.findall(r'TYPE=SUBTITLES.*URI="([^"]+)"', master):
        playlist_url = live_server.url + urlsplit(uri).path
        packets = subprocess.run(
            ["ffprobe", "-v", "error", "-show_packets", "-of", "json", playlist_url],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert len(json.loads(packets.stdout)["packets"]) == 2


def test_the_admin_inline_shows_what_to_fix_and_stores_nothing(client, video):
    client.force_login(make_superuser())
    url = f"/admin/media_library/video/{video.id}/change/"
    form = {
        "title": video.title,
        "description": "",
        "video_provider": "",
        "video_url": "",
        "renditions-TOTAL_FORMS": 0,
        "renditions-INITIAL_FORMS": 0,
        "jobs-TOTAL_FORMS": 0,
        "jobs-INITIAL_FORMS": 0,
        "caption_tracks-TOTAL_FORMS": 1,
        "caption_tracks-INITIAL_FORMS": 0,
        "caption_tracks-0-language": "en",
        "caption_tracks-0-label": "English",
        "caption_tracks-0-kind": "subtitles",
        "caption_tracks-0-file": SimpleUploadedFile(
            "x.vtt", b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n<script>x</script>\n"
        ),
    }
    response = client.post(url, form)
    assert response.status_code == 200
    assert "the tag &lt;script&gt; is not allowed in captions" in response.content.decode()
    assert not CaptionTrack.objects.exists() and caption_keys(video) == set()

    form["caption_tracks-0-file"] = SimpleUploadedFile("x.srt", SRT)
    assert client.post(url, form).status_code == 302
    assert CaptionTrack.objects.get().cue_count == 2


@pytest.mark.django_db(transaction=True)
def test_a_transcode_retimes_captions_added_before_it_to_its_first_timestamp(
    settings, api_client, user, landscape_clip
):
    """The real pipeline's segments start later than ffmpeg's 1.4 s when x264 delays the first frame."""
    settings.HLS_LADDER, settings.HLS_SEGMENT_SECONDS = "180p:300k", 2
    video = make_stored_video(user, landscape_clip)
    created = add_track(api_client, video, VTT)
    assert created.status_code == 201
    before = CaptionTrack.objects.get(pk=created.json()["id"])
    assert before.mpegts == 126000 and "X-TIMESTAMP-MAP=MPEGTS:126000,LOCAL:00:00:00.000\n" in read_key(
        before.storage_key
    )

    transcode_run(job_id=transcode_enqueue(video=video).id)
    video.refresh_from_db()
    assert video.status == Video.Status.READY, video.status_reason
    rendition = video.renditions.get()
    first_segment = rendition.playlist_key.rsplit("/", 1)[0] + "/seg_00000.ts"
    with storage.get_storage().open(first_segment, "rb") as fh:
        start = mpegts_first_pts(fh.read())
    assert start is not None and start != 126000

    after = CaptionTrack.objects.get(pk=before.pk)
    assert (after.mpegts, after.revision) == (start, 2)
    assert read_key(after.storage_key).startswith(f"WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:{start},LOCAL:00:00:00.000\n\n")
    assert caption_keys(video) == {after.storage_key}
