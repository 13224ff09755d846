"""The upload page in a real browser: plain failure reasons with Retry and Remove, rows kept over
a reload, the toolbar, offline, title edits, the keyboard, accessibility and phone width."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest

from media_library.models import Video
from tests.browser.conftest import PHONE_VIEWPORT, axe_violations, horizontal_overflow, login, screenshot
from tests.browser.test_admin_browser import SMALL_CHUNK, _row, _small_chunks
from transcoding.models import TranscodeJob
from unpuzzle.groups import INSTRUCTORS
from uploads.models import UploadSession

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

UPLOAD_PAGE = "/admin/media_library/video/upload/"
# x264 refuses this preset: ffmpeg probes the original fine, then exits with an error.
BROKEN_PRESET = "no-such-preset"


def _open_upload_page(page, make_member, username: str) -> None:
    make_member(username, INSTRUCTORS)
    login(page, username)
    page.goto(UPLOAD_PAGE)


def _upload(page, path):
    """Add ``path`` on the upload page, press "Upload all" and return its row."""
    page.set_input_files("#upload-input", str(path))
    page.click("#upload-start-all")
    return _row(page, path.name)


def _wait_final(row, *, timeout_s: float = 90) -> str:
    row.page.wait_for_function(
        "(row) => row.dataset.final !== undefined", arg=row.element_handle(), timeout=timeout_s * 1000
    )
    return row.get_attribute("data-final")


def _hold_transcodes(monkeypatch):
    """Transcode tasks wait for the returned event before the worker picks them up."""
    import transcoding.services.jobs as jobs

    enqueue = jobs.async_task
    gate = threading.Event()

    def held(func, *args, **kwargs):
        threading.Thread(target=lambda: gate.wait(120) and enqueue(func, *args, **kwargs), daemon=True).start()
        return uuid.uuid4().hex

    monkeypatch.setattr(jobs, "async_task", held)
    return gate


def test_a_file_that_is_not_a_video_shows_a_plain_reason_and_remove_drops_it(
    page, browser_settings, task_worker, make_member, tmp_path
):
    fake = tmp_path / "lecture-notes.mp4"
    fake.write_bytes(os.urandom(64 * 1024))
    _open_upload_page(page, make_member, "fatima")
    row = _upload(page, fake)
    assert _wait_final(row) == "failed"
    assert row.locator(".upload-message").inner_text() == (
        "Failed: We could not read this file as a video. Re-export it as MP4 (H.264 video, AAC audio) and upload it again."
    )
    # Sending the same bytes again cannot help: no Retry, only Remove.
    assert row.locator(".upload-retry").is_hidden()
    screenshot(page, "upload-failed-not-a-video")
    assert "could not read this file" in page.locator("#upload-announcer").inner_text()

    row.locator(".upload-remove").click()
    assert row.count() == 0
    assert page.locator("#upload-table").is_hidden()
    stored = page.evaluate("() => Object.keys(localStorage).filter((key) => key.startsWith('tus::'))")
    assert stored == []


def test_an_upload_lost_on_the_server_offers_retry_which_sends_it_again(
    page, browser_settings, task_worker, make_member, clip_copy, monkeypatch
):
    import uploads.services.finalize as finalize

    enqueue = finalize.async_task
    lost = []

    def lose_the_first_upload(func, *args, **kwargs):
        if not lost:
            # The upload server loses the part file before finalization reads it (a disk replaced, a cleanup).
            session = UploadSession.objects.get(pk=args[0])
            os.remove(session.temp_path)
            lost.append(session.id)
        return enqueue(func, *args, **kwargs)

    monkeypatch.setattr(finalize, "async_task", lose_the_first_upload)
    clip = clip_copy("week4-lecture.mp4")
    _open_upload_page(page, make_member, "lars")
    row = _upload(page, clip)
    assert _wait_final(row) == "failed"
    assert row.locator(".upload-message").inner_text() == (
        "Failed: The uploaded file was lost on our side. Retry to upload it again."
    )
    screenshot(page, "upload-failed-retryable")

    row.locator(".upload-retry").click()
    assert _wait_final(row) == "ready", row.locator(".upload-message").inner_text()
    sessions = UploadSession.objects.filter(owner__username="lars")
    assert sorted(sessions.values_list("status", flat=True)) == ["failed", "finalized"]


def test_a_failed_transcode_shows_the_plain_reason_and_retry_queues_it_again(
    page, browser_settings, task_worker, make_member, clip_copy
):
    good_preset = browser_settings.HLS_X264_PRESET
    browser_settings.HLS_X264_PRESET = BROKEN_PRESET
    clip = clip_copy("week5-lecture.mp4")
    _open_upload_page(page, make_member, "tomas")
    row = _upload(page, clip)
    assert _wait_final(row) == "failed"
    message = row.locator(".upload-message").inner_text()
    assert message == "Failed: Processing failed on our side. Retry; if it fails again, contact staff."
    assert "ffmpeg" not in page.content()
    video = Video.objects.get(owner__username="tomas")
    assert TranscodeJob.objects.get(video=video).error.startswith("ffmpeg could not decode or encode the original")
    screenshot(page, "upload-failed-transcode")

    browser_settings.HLS_X264_PRESET = good_preset
    row.locator(".upload-retry").click()
    assert _wait_final(row) == "ready", row.locator(".upload-message").inner_text()
    assert TranscodeJob.objects.filter(video=video).count() == 2
    assert row.locator("a.upload-watch").count() == 1


def test_a_reload_keeps_the_row_of_a_video_still_processing(
    page, browser_settings, task_worker, make_member, clip_copy, monkeypatch
):
    gate = _hold_transcodes(monkeypatch)
    clip = clip_copy("week6-lecture.mp4")
    _open_upload_page(page, make_member, "rhea")
    _upload(page, clip).locator(".upload-message", has_text="Queued").wait_for()

    page.reload()
    row = _row(page, clip.name)
    row.locator(".upload-message", has_text="Queued for transcoding").wait_for()
    assert row.locator(".upload-title").input_value() == clip.name
    screenshot(page, "upload-row-after-reload")
    gate.set()
    assert _wait_final(row) == "ready", row.locator(".upload-message").inner_text()
    assert page.locator("tr.upload-row").count() == 1

    # A video that is ready is final: the next load shows no row for it.
    page.reload()
    page.wait_for_load_state("networkidle")
    assert page.locator("tr.upload-row").count() == 0


def _upload_until_stalled(page, clip) -> list:
    """Open the upload page, start uploading ``clip`` in 64 KiB chunks and hold its third PATCH;
    returns the held route (later requests go through)."""
    held = []

    def stall_at_the_third_chunk(route):
        if route.request.method == "PATCH" and int(route.request.headers.get("upload-offset", "0")) >= 2 * SMALL_CHUNK:
            held.append(route)
            return
        route.continue_()

    _small_chunks(page)
    page.route("**/api/v1/uploads/**", stall_at_the_third_chunk)
    page.goto(UPLOAD_PAGE)
    _upload(page, clip)
    deadline = time.monotonic() + 20
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert held, "the upload never reached its third chunk"
    page.unroute("**/api/v1/uploads/**")
    return held


def test_a_finished_upload_is_not_listed_as_unfinished(page, browser_settings, task_worker, make_member, clip_copy):
    make_member("nora", INSTRUCTORS)
    clip = clip_copy("week7-lecture.mp4")
    login(page, "nora")
    page.on("dialog", lambda dialog: dialog.accept())  # "leave the page?" while uploading
    held = _upload_until_stalled(page, clip)
    page.reload()
    for route in held:
        try:
            route.abort()
        except Exception:
            pass
    previous = page.locator("#upload-previous")
    previous.wait_for()
    assert clip.name in previous.inner_text()

    row = _upload(page, clip)
    row.locator(".upload-percent", has_text="100%").wait_for()
    # Finished: the page no longer offers to resume it, now or after a reload.
    previous.wait_for(state="hidden")
    assert _wait_final(row) == "ready"
    page.reload()
    page.wait_for_load_state("networkidle")
    assert previous.is_hidden()
    assert clip.name not in previous.inner_text()


def test_upload_all_is_disabled_when_nothing_waits(
    page, browser_settings, task_worker, make_member, clip_copy, tmp_path
):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")
    clip = clip_copy("week8-lecture.mp4")
    _open_upload_page(page, make_member, "uma")
    start_all = page.locator("#upload-start-all")
    assert start_all.is_disabled()
    page.set_input_files("#upload-input", str(notes))
    assert start_all.is_disabled(), "a refused file does not wait for an upload"
    page.set_input_files("#upload-input", str(clip))
    assert start_all.is_enabled()
    _row(page, clip.name).locator("button", has_text="Upload").click()
    assert start_all.is_disabled(), "the only waiting file started on its own"
    assert _wait_final(_row(page, clip.name)) == "ready"
    assert start_all.is_disabled()


def test_offline_clears_speed_and_time_left_then_the_upload_resumes(
    page, browser_settings, task_worker, make_member, clip_copy, console
):
    make_member("olga", INSTRUCTORS)
    clip = clip_copy("week9-lecture.mp4")
    login(page, "olga")
    _small_chunks(page)

    def slow(route):
        if route.request.method == "PATCH":
            time.sleep(0.25)  # a slow line: the upload takes a few seconds
        route.continue_()

    page.route("**/api/v1/uploads/**", slow)
    page.goto(UPLOAD_PAGE)
    row = _upload(page, clip)
    row.locator(".upload-rate", has_text="left").wait_for()

    console.allow(r"ERR_INTERNET_DISCONNECTED")
    page.context.set_offline(True)
    row.locator(".upload-message", has_text="Offline").wait_for()
    assert row.locator(".upload-rate").inner_text() == ""
    page.wait_for_timeout(500)
    assert row.locator(".upload-rate").inner_text() == "", "no speed or time left while offline"
    screenshot(page, "upload-offline")

    page.context.set_offline(False)
    page.unroute("**/api/v1/uploads/**")
    assert _wait_final(row) == "ready", row.locator(".upload-message").inner_text()


def test_a_title_edited_during_the_upload_reaches_the_video(
    page, browser_settings, task_worker, make_member, clip_copy
):
    make_member("ivan", INSTRUCTORS)
    clip = clip_copy("week10-lecture.mp4")
    login(page, "ivan")
    held = _upload_until_stalled(page, clip)
    row = _row(page, clip.name)
    assert row.get_attribute("data-state") == "uploading"
    title = row.locator(".upload-title")
    title.fill("Week 10: entropy and heat engines", timeout=2000)
    title.press("Tab")
    held[0].continue_()
    assert _wait_final(row) == "ready"
    # The upload started with the file name as its title; the edit is saved on the video once it exists.
    deadline = time.monotonic() + 10
    while Video.objects.get(owner__username="ivan").title != "Week 10: entropy and heat engines":
        assert time.monotonic() < deadline, Video.objects.get(owner__username="ivan").title
        page.wait_for_timeout(100)
    assert UploadSession.objects.get(owner__username="ivan").metadata["title"] == clip.name


def test_the_drop_zone_is_a_button_early_in_the_tab_order(page, browser_settings, make_member):
    choosers = []
    # Listening from the start keeps Playwright's file chooser interception on for the whole test.
    page.on("filechooser", lambda chooser: choosers.append(chooser))
    _open_upload_page(page, make_member, "kemal")
    drop = page.locator("#upload-drop")
    assert drop.get_attribute("role") == "button"
    assert "Drop video files here" in drop.inner_text()
    # The first Tab reaches the admin's "Skip to main content"; the drop zone is the first stop after it.
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent.trim()") == "Skip to main content"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "upload-drop"
    for key, opened in (("Enter", 1), (" ", 2)):
        page.keyboard.press(key)
        deadline = time.monotonic() + 10
        while len(choosers) < opened:
            assert time.monotonic() < deadline, f"{key!r} on the drop zone opened no file chooser"
            page.wait_for_timeout(50)
    assert all(chooser.is_multiple() for chooser in choosers)
    page.wait_for_timeout(300)
    assert len(choosers) == 2, "one chooser per key press"


def test_no_serious_accessibility_violations_and_no_sideways_scroll_on_a_phone(
    page, browser_settings, task_worker, make_member, clip_copy, tmp_path
):
    _open_upload_page(page, make_member, "amara")
    assert axe_violations(page) == []
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")
    fake = tmp_path / "recording-of-the-thermodynamics-lecture-week-eleven-final-version.mp4"
    fake.write_bytes(os.urandom(32 * 1024))
    clip = clip_copy("week11-lecture.mp4")
    page.set_input_files("#upload-input", [str(notes), str(fake), str(clip)])
    _row(page, fake.name).locator("button", has_text="Upload").click()
    assert _wait_final(_row(page, fake.name)) == "failed"
    bar = _row(page, clip.name).locator("progress")
    assert bar.get_attribute("aria-label") == f"Upload of {clip.name}"
    assert page.locator("#upload-announcer").get_attribute("aria-live") == "polite"
    assert axe_violations(page) == []
    assert horizontal_overflow(page) == 0
    screenshot(page, "upload-page-rows")

    page.set_viewport_size(PHONE_VIEWPORT)
    page.wait_for_timeout(200)
    assert horizontal_overflow(page) == 0
    name = _row(page, fake.name).locator(".upload-name")
    # The long name stays on one line (an ellipsis, the whole name in the title), not broken mid-word.
    assert name.get_attribute("title") == fake.name
    assert name.evaluate("(node) => node.scrollWidth > node.clientWidth && getComputedStyle(node).whiteSpace")
    assert axe_violations(page) == []
    screenshot(page, "upload-page-phone")
