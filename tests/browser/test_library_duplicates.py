"""The same clip uploaded twice on the admin's upload page: two videos with their own titles, one transcode."""

from __future__ import annotations

import re

import pytest

from media_library.models import Video
from tests.browser.conftest import login, screenshot
from transcoding.models import TranscodeJob
from unpuzzle.groups import INSTRUCTORS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _row(page, filename: str):
    return page.locator("tr.upload-row", has=page.locator(".upload-name", has_text=filename))


def _upload(page, clip, title: str):
    """Add ``clip`` to the page with ``title``, start it and wait until its row is final; the row."""
    page.set_input_files("#upload-input", str(clip))
    row = _row(page, clip.name)
    row.locator(".upload-title").fill(title)
    page.click("#upload-start-all")
    page.wait_for_function(
        "(name) => [...document.querySelectorAll('tr.upload-row')].some("
        "r => r.querySelector('.upload-name').textContent.includes(name) && r.dataset.final !== undefined)",
        arg=clip.name,
        timeout=90_000,
    )
    return row


def test_the_same_clip_uploaded_twice_makes_two_videos_and_one_transcode(
    page, browser_settings, task_worker, make_member, clip_copy
):
    make_member("ines", INSTRUCTORS)
    first_clip = clip_copy("week1-lecture.mp4")
    second_clip = clip_copy("week1-lecture-section-b.mp4")  # the same bytes under another name
    login(page, "ines")
    page.goto("/admin/media_library/video/upload/")

    first = _upload(page, first_clip, "Week 1")
    assert first.get_attribute("data-final") == "ready", first.locator(".upload-message").inner_text()
    assert first.locator(".upload-message").inner_text() == "Ready: watch · edit"

    second = _upload(page, second_clip, "Week 1 (section B)")
    assert second.get_attribute("data-final") == "ready", second.locator(".upload-message").inner_text()
    assert second.locator(".upload-message").inner_text() == (
        "Ready (same file as “Week 1”: no new processing) · watch · edit"
    )
    screenshot(page, "upload-duplicate")

    original = Video.objects.get(title="Week 1")
    duplicate = Video.objects.get(title="Week 1 (section B)")
    assert duplicate.pk != original.pk and duplicate.owner.username == "ines"
    assert duplicate.duplicate_of_id == original.pk and duplicate.media_file_id == original.media_file_id
    assert duplicate.status == original.status == Video.Status.READY
    assert TranscodeJob.objects.count() == 1
    assert second.get_attribute("data-video-id") == str(duplicate.pk)
    assert second.locator("a.upload-edit").get_attribute("href").endswith(f"/{duplicate.pk}/change/")

    # The duplicate's own watch link plays the shared output.
    second.locator("a.upload-watch").click()
    page.wait_for_url(f"**/videos/{duplicate.pk}/")
    page.evaluate("() => { const v = document.querySelector('video'); v.muted = true; return v.play(); }")
    page.wait_for_function("() => document.querySelector('video').currentTime > 1.5", timeout=30_000)

    page.goto("/admin/media_library/video/")
    listing = page.locator("#result_list").inner_text()
    assert "Week 1 (section B)" in listing and "Week 1" in listing
    screenshot(page, "video-list-duplicates")


def test_the_same_clip_added_twice_at_once_waits_for_the_one_transcode(
    page, browser_settings, task_worker, make_member, clip_copy
):
    make_member("ines", INSTRUCTORS)
    clips = {clip_copy("week2-lecture.mp4"): "Week 2", clip_copy("week2-lecture-copy.mp4"): "Week 2 (copy)"}
    login(page, "ines")
    page.goto("/admin/media_library/video/upload/")
    page.set_input_files("#upload-input", [str(clip) for clip in clips])
    for clip, title in clips.items():
        _row(page, clip.name).locator(".upload-title").fill(title)
    page.click("#upload-start-all")

    # The one finalized second waits for the other's transcode instead of starting its own.
    waiting = page.locator(".upload-message", has_text="(same file) to finish processing")
    waiting.first.wait_for(timeout=60_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('tr.upload-row')].every(r => r.dataset.final !== undefined)",
        timeout=90_000,
    )
    plain, same = sorted(
        (_row(page, clip.name).locator(".upload-message").inner_text() for clip in clips),
        key=lambda message: "same file" in message,
    )
    assert plain == "Ready: watch · edit"
    assert re.fullmatch(r"Ready \(same file as “Week 2( \(copy\))?”: no new processing\) · watch · edit", same)
    screenshot(page, "upload-duplicate-at-once")
    videos = {video.title: video for video in Video.objects.all()}
    assert set(videos) == {"Week 2", "Week 2 (copy)"}
    assert TranscodeJob.objects.count() == 1
    assert all(v.status == Video.Status.READY for v in videos.values())
    assert sorted(str(v.duplicate_of_id) for v in videos.values()) == sorted(
        ["None", str(TranscodeJob.objects.get().video_id)]
    )
