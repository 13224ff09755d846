"""HLS playlist rewriting and key resolution."""

from __future__ import annotations

import pytest

from media_library.playlists import (
    resolve_playlist_uri,
    rewrite_playlist_keys,
    rewrite_playlist_uris,
    rewrite_vtt_image_keys,
)

PREFIX = "videos/0f6e/hls/1/"

MASTER = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS
## a plain comment with URI="not-a-uri.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en, stereo",DEFAULT=YES,URI="audio/index.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=1400000,AVERAGE-BANDWIDTH=1100000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=854x480,FRAME-RATE=30.000,AUDIO="aud"
480p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=3000000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720
720p/index.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=200000,CODECS="avc1.64001f",RESOLUTION=854x480,URI="480p/iframes.m3u8"
"""

MEDIA = (
    "#EXTM3U\r\n"
    "#EXT-X-VERSION:7\r\n"
    "#EXT-X-TARGETDURATION:6\r\n"
    "#EXT-X-PLAYLIST-TYPE:VOD\r\n"
    '#EXT-X-MAP:URI="init.mp4",BYTERANGE="800@0"\r\n'
    '#EXT-X-KEY:METHOD=AES-128,URI="../key.bin",IV=0x1234\r\n'
    "#EXTINF:6.000000,\r\n"
    "seg_00001.m4s\r\n"
    "\r\n"
    "#EXTINF:4.2,\r\n"
    "seg_00002.m4s\r\n"
    "#EXT-X-ENDLIST\r\n"
)


def _upper(uri: str) -> str:
    return f"https://cdn/{uri.upper()}"


def test_rewrites_master_uri_lines_and_uri_attributes() -> None:
    seen: list[str] = []

    def record(uri: str) -> str:
        seen.append(uri)
        return _upper(uri)

    out = rewrite_playlist_uris(MASTER, record)

    assert seen == ["audio/index.m3u8", "480p/index.m3u8", "720p/index.m3u8", "480p/iframes.m3u8"]
    lines = out.splitlines()
    assert lines[3] == '## a plain comment with URI="not-a-uri.m3u8"'
    assert lines[4] == (
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en, stereo",DEFAULT=YES,URI="https://cdn/AUDIO/INDEX.M3U8"'
    )
    assert lines[5] == MASTER.splitlines()[5]
    assert lines[6] == "https://cdn/480P/INDEX.M3U8"
    assert lines[8] == "https://cdn/720P/INDEX.M3U8"
    assert lines[9].endswith('RESOLUTION=854x480,URI="https://cdn/480P/IFRAMES.M3U8"')
    assert out.endswith("\n")


def test_rewrites_media_playlist_and_keeps_line_endings() -> None:
    out = rewrite_playlist_uris(MEDIA, _upper)

    assert out == (
        "#EXTM3U\r\n"
        "#EXT-X-VERSION:7\r\n"
        "#EXT-X-TARGETDURATION:6\r\n"
        "#EXT-X-PLAYLIST-TYPE:VOD\r\n"
        '#EXT-X-MAP:URI="https://cdn/INIT.MP4",BYTERANGE="800@0"\r\n'
        '#EXT-X-KEY:METHOD=AES-128,URI="https://cdn/../KEY.BIN",IV=0x1234\r\n'
        "#EXTINF:6.000000,\r\n"
        "https://cdn/SEG_00001.M4S\r\n"
        "\r\n"
        "#EXTINF:4.2,\r\n"
        "https://cdn/SEG_00002.M4S\r\n"
        "#EXT-X-ENDLIST\r\n"
    )


def test_identity_mapping_returns_text_unchanged() -> None:
    assert rewrite_playlist_uris(MASTER, lambda uri: uri) == MASTER
    assert rewrite_playlist_uris(MEDIA, lambda uri: uri) == MEDIA


def test_tags_without_uri_and_other_tags_are_untouched() -> None:
    text = (
        "#EXTM3U\n"
        "#EXT-X-KEY:METHOD=NONE\n"
        '#EXT-X-SESSION-DATA:DATA-ID="com.example.note",VALUE="see URI=\'x.m3u8\', later"\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS="avc1.64001f,mp4a.40.2"\n'
        "#EXT-X-ENDLIST"
    )
    assert rewrite_playlist_uris(text, lambda uri: pytest.fail(f"unexpected URI {uri!r}")) == text


def test_byte_order_mark_does_not_make_a_uri() -> None:
    text = "\ufeff#EXTM3U\n#EXTINF:6,\nseg.ts\n"
    assert rewrite_playlist_uris(text, _upper) == "\ufeff#EXTM3U\n#EXTINF:6,\nhttps://cdn/SEG.TS\n"


@pytest.mark.parametrize("bad", ["", "a\nb", 'a"b'])
def test_refuses_replacements_that_break_the_syntax(bad: str) -> None:
    with pytest.raises(ValueError, match="cannot be written"):
        rewrite_playlist_uris('#EXT-X-MAP:URI="init.mp4"\n', lambda uri: bad)


@pytest.mark.parametrize(
    ("playlist_key", "uri", "expected"),
    [
        (f"{PREFIX}480p/index.m3u8", "seg_00001.ts", f"{PREFIX}480p/seg_00001.ts"),
        (f"{PREFIX}master.m3u8", "480p/index.m3u8", f"{PREFIX}480p/index.m3u8"),
        (f"{PREFIX}480p/index.m3u8", "../audio/init.mp4", f"{PREFIX}audio/init.mp4"),
        (f"{PREFIX}480p/index.m3u8", "./seg%2000002.ts", f"{PREFIX}480p/seg 00002.ts"),
    ],
)
def test_resolves_relative_uris_against_the_playlist(playlist_key: str, uri: str, expected: str) -> None:
    assert resolve_playlist_uri(playlist_key=playlist_key, uri=uri, hls_prefix=PREFIX) == expected


@pytest.mark.parametrize(
    "uri",
    [
        "../../master.m3u8",
        "../../../../../etc/passwd",
        "..%2F..%2F..%2Fother.ts",
        "../../../hls/1/../../0f6e-evil/hls/1/x.ts",
        "/videos/0f6e/hls/1/480p/seg.ts",
        "https://evil.example/seg.ts",
        "//evil.example/seg.ts",
        "seg.ts?x=1",
        "seg.ts#t=1",
        "..\\..\\seg.ts",
        "",
    ],
)
def test_refuses_uris_escaping_the_hls_prefix(uri: str) -> None:
    with pytest.raises(ValueError):
        resolve_playlist_uri(playlist_key=f"{PREFIX}480p/index.m3u8", uri=uri, hls_prefix=PREFIX)


@pytest.mark.parametrize(
    ("playlist_key", "prefix"),
    [
        ("videos/other/hls/1/master.m3u8", PREFIX),
        ("videos/0f6e/hls/1/../../../x/master.m3u8", PREFIX),
        ("/videos/0f6e/hls/1/master.m3u8", PREFIX),
        ("videos/0f6e/hls/1/master.m3u8", "/"),
    ],
)
def test_refuses_playlists_outside_the_prefix(playlist_key: str, prefix: str) -> None:
    with pytest.raises(ValueError):
        resolve_playlist_uri(playlist_key=playlist_key, uri="seg.ts", hls_prefix=prefix)


def test_prefix_match_is_by_whole_segment() -> None:
    with pytest.raises(ValueError, match="escapes the HLS prefix"):
        resolve_playlist_uri(
            playlist_key="videos/0f6e/hls/1/master.m3u8", uri="../../hls-other/x.ts", hls_prefix="videos/0f6e/hls"
        )


def test_rewrite_playlist_keys_maps_resolved_keys() -> None:
    out = rewrite_playlist_keys(
        MEDIA,
        playlist_key=f"{PREFIX}480p/index.m3u8",
        hls_prefix=PREFIX,
        url_for_key=lambda key: f"https://zone.b-cdn.net/{key}",
    )
    assert f'URI="https://zone.b-cdn.net/{PREFIX}480p/init.mp4"' in out
    assert f'URI="https://zone.b-cdn.net/{PREFIX}key.bin"' in out
    assert f"\r\nhttps://zone.b-cdn.net/{PREFIX}480p/seg_00002.m4s\r\n" in out


def test_rewrite_playlist_keys_refuses_escapes() -> None:
    with pytest.raises(ValueError, match="escapes"):
        rewrite_playlist_keys(
            "#EXTM3U\n#EXTINF:6,\n../../../../secret.ts\n",
            playlist_key=f"{PREFIX}480p/index.m3u8",
            hls_prefix=PREFIX,
            url_for_key=lambda key: key,
        )


THUMBNAILS = (
    "WEBVTT\n\n"
    "00:00:00.000 --> 00:00:05.000\nsprite-0.jpg#xywh=0,0,160,90\n\n"
    "00:00:05.000 --> 00:00:06.000\nsprite-0.jpg#xywh=160,0,160,90\n"
)


def test_thumbnail_track_images_are_rewritten_and_keep_their_rectangle():
    body = rewrite_vtt_image_keys(
        THUMBNAILS,
        track_key=PREFIX + "thumbnails.vtt",
        hls_prefix=PREFIX,
        url_for_key=lambda key: f"https://bucket.example/{key}?sig=1",
    )
    assert body == THUMBNAILS.replace("sprite-0.jpg#", f"https://bucket.example/{PREFIX}sprite-0.jpg?sig=1#")


def test_a_thumbnail_track_cannot_reach_outside_its_folder():
    with pytest.raises(ValueError, match="escapes the HLS prefix"):
        rewrite_vtt_image_keys(
            THUMBNAILS.replace("sprite-0.jpg", "../../../other/hls/1/sprite-0.jpg"),
            track_key=PREFIX + "thumbnails.vtt",
            hls_prefix=PREFIX,
            url_for_key=lambda key: key,
        )
