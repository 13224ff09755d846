"""Caption file parsing and checking, WebVTT output, subtitle playlists (pure helpers)."""

from __future__ import annotations

import pytest

from media_library.playlists import SubtitleRendition, master_add_subtitles
from media_library.webvtt import (
    CaptionsError,
    CaptionsTooLarge,
    captions_parse,
    is_language_tag,
    mpegts_first_pts,
    subtitle_media_playlist,
    webvtt_render,
    webvtt_set_timestamp_map,
)
from tests.media_library.hls_fixture import MASTER

LIMITS = {"max_bytes": 10_000, "max_cues": 10}


def parse(data: bytes, **options):
    return captions_parse(data, **{**LIMITS, **options})


def test_srt_becomes_webvtt_with_unicode_text_and_the_timestamp_map():
    srt = "1\r\n00:00:00,500 --> 00:00:01,250\r\n<font color=red>Ünïcödé — 日本語</font>\r\n\r\n2\r\n00:00:01,300 --> 00:00:02,000\r\n<i>two</i>\r\n"
    parsed = parse(srt.encode())
    assert parsed.source_format == "srt"
    assert webvtt_render(parsed.cues, mpegts=126000) == (
        "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:126000,LOCAL:00:00:00.000\n\n"
        "00:00:00.500 --> 00:00:01.250\nÜnïcödé — 日本語\n\n"
        "00:00:01.300 --> 00:00:02.000\n<i>two</i>\n\n"
    )


def test_webvtt_keeps_cue_markup_drops_style_region_and_notes_and_escapes_stray_brackets():
    vtt = (
        b"\xef\xbb\xbfWEBVTT\n\nSTYLE\n::cue { color: red }\n\nREGION\nid:r1\n\nNOTE private\n\n"
        b"intro\n00:00:00.500 --> 00:00:01.500 align:start region:r1\n"
        b"<v Bob>Hi</v> <c.yellow>there</c> <lang en>a < b</lang> <00:00:01.000><ruby>x<rt>y</rt></ruby>\n\n"
        b"00:01.000 --> 00:02.000\noverlaps, which WebVTT allows\n"
    )
    parsed = parse(vtt)
    text = webvtt_render(parsed.cues)
    assert "STYLE" not in text and "REGION" not in text and "NOTE" not in text and "region:" not in text
    assert "intro\n00:00:00.500 --> 00:00:01.500 align:start\n" in text
    assert "<v Bob>Hi</v> <c.yellow>there</c> <lang en>a &lt; b</lang> <00:00:01.000><ruby>x<rt>y</rt></ruby>" in text
    assert [(cue.start, cue.end) for cue in parsed.cues] == [(0.5, 1.5), (1.0, 2.0)]
    assert any("REGION" in warning for warning in parsed.warnings)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"WEBVTT\n\n00:00:01.000 --> 00:00:00.500\nx\n", "line 3: the cue ends (00:00:00.500) before"),
        (b"WEBVTT\n\n00:00:01.000 --> 00:00:01.000\nx\n", "the end must come after the start"),
        (b"WEBVTT\n\n-00:00:01.000 --> 00:00:02.000\nx\n", "line 3: negative timestamp"),
        (
            b"WEBVTT\n\n00:00:1.000 --> 00:00:02.000\nx\n",
            "line 3: cue timing '00:00:1.000 --> 00:00:02.000' is malformed",
        ),
        (b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n<script>alert(1)</script>\n", "the tag <script> is not allowed"),
        (b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n<img src=x onerror=alert(1)>\n", "the tag <img> is not allowed"),
        (b"WEBVTT\n\n00:00:02.000 --> 00:00:03.000\nx\n\n00:00:01.000 --> 00:00:04.000\ny\n", "cues are out of order"),
        (b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n\xe9t\xe9\n", "byte 0xe9 at byte offset 38 is not valid UTF-8"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "NUL character at byte offset 8"),
        (b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n\x89\n", "byte 0x89 at byte offset 38"),
        (b"\x00\x00\x00\x18ftypmp42", "NUL character at byte offset 0"),
        (b"just some text\n", "neither WebVTT"),
        (b"WEBVTT\n", "no cues"),
        (b"", "empty"),
        (b"WEBVTT\n\n" + b"00:00:01.000 --> 00:00:02.000\nx\n\n" * 11, "more than 10 cues"),
    ],
)
def test_hostile_or_broken_files_are_refused_with_what_to_fix(data, message):
    with pytest.raises(CaptionsError) as caught:
        parse(data)
    assert message in str(caught.value)


def test_a_file_over_the_size_limit_is_refused_before_parsing():
    with pytest.raises(CaptionsTooLarge, match="larger than the limit of 100 bytes"):
        captions_parse(b"WEBVTT\n\n" + b"x" * 200, max_bytes=100, max_cues=10)


def test_cues_past_the_video_end_are_kept_and_reported():
    parsed = parse(b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\na\n\n00:00:04.000 --> 00:00:05.000\nb\n", duration=3.0)
    assert len(parsed.cues) == 2
    assert parsed.warnings == (
        "1 cue(s) end after the video's end (00:00:03.000), the first at 00:00:04.000; "
        "players never show what lies past the end",
    )


@pytest.mark.parametrize(
    ("tag", "valid"),
    [
        ("en", True),
        ("pt-BR", True),
        ("zh-Hant-TW", True),
        ("es-419", True),
        ("e", False),
        ('en"', False),
        ("english", False),
    ],
)
def test_language_tags(tag, valid):
    assert is_language_tag(tag) is valid


def test_subtitle_playlist_covers_the_whole_video_with_a_rounded_up_target_duration():
    assert subtitle_media_playlist(uri="https://x/a.vtt", duration=3.04) == (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n"
        "#EXTINF:3.040,\nhttps://x/a.vtt\n#EXT-X-ENDLIST\n"
    )


def test_master_gets_subtitle_renditions_on_every_variant_and_loses_them_again():
    master = MASTER + "#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=640x480\n480p/index.m3u8\n"
    subtitles = [
        SubtitleRendition(name="English", language="en", uri="captions/a.m3u8", default=True),
        SubtitleRendition(name="日本語", language="ja", uri="captions/b.m3u8", captions=True),
    ]
    captioned = master_add_subtitles(master, subtitles)
    lines = captioned.splitlines()
    assert lines[3] == (
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,'
        'FORCED=NO,URI="captions/a.m3u8"'
    )
    assert lines[4] == (
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="日本語",LANGUAGE="ja",DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,'
        'CHARACTERISTICS="public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound",'
        'URI="captions/b.m3u8"'
    )
    variants = [line for line in lines if line.startswith("#EXT-X-STREAM-INF:")]
    assert len(variants) == 2 and all(line.endswith(',SUBTITLES="subs"') for line in variants)
    assert master_add_subtitles(captioned, subtitles) == captioned
    assert master_add_subtitles(captioned, []) == master


def test_presentation_start_of_an_ffmpeg_segment_is_its_earliest_stream(hls_source):
    """ffmpeg starts the audio at 1.4 s (126000) and this clip's video 1920 ticks later."""
    data = (hls_source / "240p" / "seg_00000.ts").read_bytes()
    assert mpegts_first_pts(data[:65536]) == 126000
    assert mpegts_first_pts(b"not a transport stream") is None


def test_the_timestamp_map_is_replaced_and_the_cues_kept():
    text = webvtt_render(parse(b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nx\n").cues, mpegts=126000)
    assert webvtt_set_timestamp_map(text, mpegts=130080) == text.replace("MPEGTS:126000", "MPEGTS:130080")
