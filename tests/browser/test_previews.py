"""Scrubbing previews on the player page: hovering the scrub bar shows the frame of the hovered time."""

from __future__ import annotations

import re

import pytest

from media_library.models import Video
from tests.browser.conftest import axe_violations, login, screenshot
from tests.factories import make_stored_video
from tests.media_library.test_duplicates import transcode
from unpuzzle import storage
from unpuzzle.groups import INSTRUCTORS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _cues(video: Video) -> list[tuple[float, float, str, list[int]]]:
    with storage.get_storage().open(video.thumbnails_key, "rb") as fh:
        text = fh.read().decode()
    found = re.findall(r"(\d+):(\d\d):(\d\d\.\d{3}) --> (\d+):(\d\d):(\d\d\.\d{3})\n(\S+)#xywh=(\S+)", text)
    return [
        (
            int(h1) * 3600 + int(m1) * 60 + float(s1),
            int(h2) * 3600 + int(m2) * 60 + float(s2),
            image,
            [int(value) for value in box.split(",")],
        )
        for h1, m1, s1, h2, m2, s2, image, box in found
    ]


def test_hovering_the_scrub_bar_previews_the_hovered_time(page, browser_settings, make_member, clip_copy):
    browser_settings.PREVIEW_INTERVAL_S = 1.0
    ines = make_member("ines", INSTRUCTORS)
    video = transcode(make_stored_video(ines, clip_copy("week5.mp4")))
    cues = _cues(video)
    assert len(cues) == 10
    login(page, "ines")
    page.goto(f"/videos/{video.id}/")
    scrub = page.locator(f"#scrub-{video.id}")
    scrub.wait_for(state="visible")
    preview = scrub.locator(".player-preview")
    assert preview.is_hidden()

    box = scrub.bounding_box()
    assert box is not None
    for fraction in (0.05, 0.65, 0.97):
        page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)
        preview.wait_for(state="visible")
        hovered = float(preview.get_attribute("data-time") or "nan")
        # the bar maps the pointer onto the media element's duration, the stored one until the playlist has
        # loaded; hls.js may then lengthen it by a few audio frames (up to 0.1 s here) while it buffers
        assert hovered == pytest.approx(fraction * video.duration, abs=video.duration / box["width"] * 2 + 0.1)
        start, end, image, (x, y, w, h) = next(cue for cue in cues if cue[0] <= hovered < cue[1])
        style = preview.locator(".player-preview-image").evaluate(
            """(el) => ({image: el.style.backgroundImage, position: el.style.backgroundPosition,
                        width: el.style.width, height: el.style.height})"""
        )
        assert style["image"].endswith(f'/{image}")') and f"/api/v1/videos/{video.id}/hls/" in style["image"]
        assert style["position"] == f"{-x}px {-y}px".replace("-0px", "0px")
        assert (style["width"], style["height"]) == (f"{w}px", f"{h}px")
        assert re.fullmatch(r"0:0\d", preview.locator(".player-preview-time").inner_text())
    # the sheet the preview shows is really served to the page
    size = page.evaluate(
        """(url) => new Promise((resolve) => { const img = new Image();
             img.onload = () => resolve([img.naturalWidth, img.naturalHeight]); img.onerror = () => resolve(null);
             img.src = url; })""",
        preview.locator(".player-preview-image").evaluate("(el) => el.style.backgroundImage.slice(5, -2)"),
    )
    assert size == [1600, 900]
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
    screenshot(page, "player-scrub-preview")

    page.mouse.move(box["x"] + box["width"] / 2, box["y"] - 300)
    preview.wait_for(state="hidden")
    # keyboard users keep the native controls; the pointer-only bar is hidden from assistive technology
    assert page.locator(f"#player-{video.id}").get_attribute("controls") is not None
    assert scrub.get_attribute("aria-hidden") == "true"
    assert axe_violations(page) == []


def test_a_video_without_previews_shows_no_scrub_bar(page, browser_settings, make_member, clip_copy):
    browser_settings.PREVIEW_THUMBNAILS = False
    ines = make_member("ines", INSTRUCTORS)
    video = transcode(make_stored_video(ines, clip_copy("week6.mp4")))
    login(page, "ines")
    page.goto(f"/videos/{video.id}/")
    page.locator(f"#player-{video.id}").wait_for()
    assert page.locator(f"#scrub-{video.id}").count() == 0
