"""Captions in a real browser: an instructor adds an SRT and a WebVTT track in the admin, then the
player switches between them and shows each cue at its time."""

from __future__ import annotations

import pytest

from media_library.models import CaptionTrack, Video
from tests.browser.conftest import PHONE_VIEWPORT, axe_violations, horizontal_overflow, login, screenshot
from tests.factories import make_stored_video
from transcoding.services.jobs import transcode_enqueue
from transcoding.services.pipeline import transcode_run
from unpuzzle import storage
from unpuzzle.groups import INSTRUCTORS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

JAPANESE_SRT = (
    "1\r\n00:00:01,000 --> 00:00:02,500\r\nÜnïcödé — 日本語\r\n\r\n"
    "2\r\n00:00:06,000 --> 00:00:07,000\r\n二番目の字幕\r\n"
).encode()
ENGLISH_VTT = (
    b"WEBVTT\n\n00:00:01.000 --> 00:00:02.500\n<i>First</i> English cue\n\n"
    b"00:00:04.000 --> 00:00:05.000\nSecond English cue\n"
)

ACTIVE_CUES = """() => {
  const track = Array.from(document.querySelector('video').textTracks).find((t) => t.mode === 'showing');
  if (!track || !track.activeCues) return null;
  return {label: track.label, cues: Array.from(track.activeCues).map((c) => c.text)};
}"""


def seek(page, seconds: float) -> None:
    page.evaluate(f"() => {{ const v = document.querySelector('video'); v.currentTime = {seconds}; }}")
    page.wait_for_function(
        f"() => {{ const v = document.querySelector('video'); return !v.seeking && Math.abs(v.currentTime - {seconds}) < 0.05; }}"
    )
    # Cue changes are applied on the next time update.
    page.wait_for_timeout(300)


def shown(page, seconds: float) -> dict | None:
    seek(page, seconds)
    return page.evaluate(ACTIVE_CUES)


def test_captions_added_in_the_admin_play_and_switch_in_the_player(
    page, browser_settings, make_member, clip_copy, tmp_path, console
):
    owner = make_member("cora", INSTRUCTORS)
    video = make_stored_video(owner, clip_copy("week3-lecture.mp4"))
    job = transcode_enqueue(video=video)
    transcode_run(job_id=job.id)
    video.refresh_from_db()
    assert video.status == Video.Status.READY, video.status_reason

    srt = tmp_path / "japanese.srt"
    srt.write_bytes(JAPANESE_SRT)
    vtt = tmp_path / "english.vtt"
    vtt.write_bytes(ENGLISH_VTT)
    login(page, "cora")
    page.goto(f"/admin/media_library/video/{video.id}/change/")
    add = page.locator("#caption_tracks-group .add-row a")
    for index, (language, label, kind, default, path) in enumerate(
        [("ja", "日本語", "subtitles", True, srt), ("en", "English", "captions", False, vtt)]
    ):
        add.click()
        page.fill(f"#id_caption_tracks-{index}-language", language)
        page.fill(f"#id_caption_tracks-{index}-label", label)
        page.select_option(f"#id_caption_tracks-{index}-kind", kind)
        if default:
            page.check(f"#id_caption_tracks-{index}-is_default")
        page.set_input_files(f"#id_caption_tracks-{index}-file", str(path))
    page.click("input[name=_continue]")
    page.locator(".messagelist .success").wait_for()
    tracks = list(CaptionTrack.objects.filter(video=video).order_by("language"))
    assert [(t.language, t.label, t.kind, t.is_default, t.cue_count) for t in tracks] == [
        ("en", "English", "captions", False, 2),
        ("ja", "日本語", "subtitles", True, 2),
    ]
    assert all(storage.object_exists(t.storage_key) for t in tracks)
    screenshot(page, "captions-admin-inline")

    page.goto(f"/videos/{video.id}/")
    menu = page.get_by_label("Captions")
    menu.locator("option", has_text="English").wait_for(state="attached")
    assert menu.locator("option").all_inner_texts() == ["Off", "日本語", "English"]
    page.evaluate("() => { const v = document.querySelector('video'); v.muted = true; return v.play(); }")
    page.wait_for_function("() => document.querySelector('video').currentTime > 0.5", timeout=30_000)
    page.evaluate("() => document.querySelector('video').pause()")

    # The default track is on from the start.
    assert menu.input_value() == "0"
    page.wait_for_function(
        "() => Array.from(document.querySelector('video').textTracks).some((t) => t.mode === 'showing' && t.cues && t.cues.length)"
    )
    assert shown(page, 0.8) == {"label": "日本語", "cues": []}
    assert shown(page, 1.2) == {"label": "日本語", "cues": ["Ünïcödé — 日本語"]}
    assert shown(page, 6.15) == {"label": "日本語", "cues": ["二番目の字幕"]}

    menu.focus()
    page.keyboard.press("ArrowDown")  # keyboard alone switches the track
    assert menu.input_value() == "1"
    page.wait_for_function(
        "() => Array.from(document.querySelector('video').textTracks).some((t) => t.mode === 'showing' && t.label === 'English' && t.cues && t.cues.length)"
    )
    assert shown(page, 3.85) == {"label": "English", "cues": []}
    assert shown(page, 4.15) == {"label": "English", "cues": ["Second English cue"]}
    screenshot(page, "captions-player")
    assert axe_violations(page) == []
    assert shown(page, 5.2) == {"label": "English", "cues": []}

    menu.select_option("-1")
    seek(page, 4.5)
    assert page.evaluate(ACTIVE_CUES) is None

    page.set_viewport_size(PHONE_VIEWPORT)
    assert horizontal_overflow(page) == 0
    screenshot(page, "captions-player-phone")
