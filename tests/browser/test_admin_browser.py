"""The admin in a real browser: upload, resume, refusals, instructor scope, costs dashboard."""

from __future__ import annotations

import hashlib
import os
import re
import time

import pytest

from media_library.models import MediaFile, Video
from tests.browser.conftest import login, screenshot
from tests.factories import make_media_file, make_video
from transcoding.models import BudgetPolicy
from unpuzzle.groups import FINANCE, INSTRUCTORS
from uploads.models import UploadSession

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SMALL_CHUNK = 64 * 1024


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _row(page, filename: str):
    return page.locator("tr.upload-row", has=page.locator(".upload-name", has_text=filename))


def test_instructor_uploads_a_clip_watches_it_become_ready_and_plays_it(
    page, browser_settings, task_worker, make_member, clip_copy
):
    make_member("ines", INSTRUCTORS)
    clip = clip_copy("week1-lecture.mp4")
    login(page, "ines")
    page.click("text=Upload videos")
    page.wait_for_url("**/admin/media_library/video/upload/")

    page.set_input_files("#upload-input", str(clip))
    row = _row(page, clip.name)
    assert row.locator(".upload-title").input_value() == clip.name
    assert row.locator(".upload-size").inner_text() == "916.1 KB"
    row.locator(".upload-title").fill("Week 1: thermodynamics")
    page.click("#upload-start-all")

    row.locator(".upload-percent", has_text="100%").wait_for()
    states_seen = set()
    deadline = time.monotonic() + 90
    while row.get_attribute("data-final") is None and time.monotonic() < deadline:
        states_seen.add(row.locator(".upload-message").inner_text())
        page.wait_for_timeout(100)
    assert row.get_attribute("data-final") == "ready", row.locator(".upload-message").inner_text()
    # The row followed the video through its states before it was ready.
    assert any(s.startswith(("Queued", "Processing")) for s in states_seen), states_seen

    video = Video.objects.get(title="Week 1: thermodynamics")
    assert video.status == Video.Status.READY and video.owner.username == "ines"
    assert video.media_file.sha256 == _sha256(clip)

    page.click("tr.upload-row a.upload-watch")
    page.wait_for_url(f"**/videos/{video.id}/")
    supported = page.evaluate("""() => MediaSource.isTypeSupported('video/mp4; codecs="avc1.42E01E,mp4a.40.2"')""")
    assert supported, "this Chromium build cannot play H.264/AAC through Media Source Extensions"
    page.evaluate("() => { const v = document.querySelector('video'); v.muted = true; return v.play(); }")
    page.wait_for_function("() => document.querySelector('video').currentTime > 1.5", timeout=30_000)

    page.goto("/admin/media_library/video/")
    badge = page.locator(f'.video-status[data-video-id="{video.id}"]')
    assert badge.inner_text() == "Ready"
    assert "0:10" in page.locator("#result_list").inner_text()
    screenshot(page, "video-list")


def _small_chunks(page):
    """Serve the upload page with 64 KiB chunks, so an upload of the clip takes many PATCHes."""

    def handler(route):
        response = route.fetch()
        body = response.text()
        assert '"chunkSize": 8388608' in body
        route.fulfill(response=response, body=body.replace('"chunkSize": 8388608', f'"chunkSize": {SMALL_CHUNK}'))

    page.route("**/admin/media_library/video/upload/", handler)


def test_reload_mid_upload_resumes_from_the_stored_offset(page, browser_settings, task_worker, make_member, clip_copy):
    make_member("rosa", INSTRUCTORS)
    clip = clip_copy("week2-lecture.mp4")
    login(page, "rosa")
    _small_chunks(page)
    page.on("dialog", lambda dialog: dialog.accept())  # "leave the page?" while uploading

    held = []
    patches = {"done": 0}

    def throttle(route):
        # Let three chunks through, then hold every PATCH: the upload stalls mid-way.
        if route.request.method == "PATCH" and patches["done"] >= 3:
            held.append(route)
            return
        if route.request.method == "PATCH":
            patches["done"] += 1
        route.continue_()

    page.route("**/api/v1/uploads/**", throttle)
    page.goto("/admin/media_library/video/upload/")
    page.set_input_files("#upload-input", str(clip))
    page.click("#upload-start-all")
    deadline = time.monotonic() + 20
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert held, "the fourth PATCH never came"
    session = UploadSession.objects.get(owner__username="rosa")
    assert session.offset == 3 * SMALL_CHUNK and session.status == UploadSession.Status.UPLOADING
    row = _row(page, clip.name)
    assert row.locator(".upload-percent").inner_text() != "0%"
    screenshot(page, "upload-mid-upload")

    page.unroute("**/api/v1/uploads/**")
    page.reload()
    for route in held:
        try:
            route.abort()
        except Exception:
            pass
    # The page remembers the unfinished upload and asks for the file again.
    assert clip.name in page.locator("#upload-previous").inner_text()

    offsets = []
    page.on("request", lambda r: r.method == "PATCH" and offsets.append(int(r.headers["upload-offset"])))
    page.set_input_files("#upload-input", str(clip))
    page.click("#upload-start-all")
    row = _row(page, clip.name)
    row.locator(".upload-percent", has_text="100%").wait_for()
    assert "(resumed)" in row.locator(".upload-message").inner_text() or row.get_attribute("data-state") != "uploading"
    assert offsets and offsets[0] == 3 * SMALL_CHUNK, offsets
    assert UploadSession.objects.filter(owner__username="rosa").count() == 1
    page.wait_for_function("() => document.querySelector('tr.upload-row').dataset.final !== undefined", timeout=90_000)
    assert row.get_attribute("data-final") == "ready", row.locator(".upload-message").inner_text()
    media = MediaFile.objects.get(owner__username="rosa")
    assert media.sha256 == _sha256(clip)
    stored = browser_settings.MEDIA_ROOT / media.storage_key
    assert _sha256(stored) == _sha256(clip)


def test_oversized_wrong_type_and_server_refusals_are_shown(
    page, browser_settings, task_worker, make_member, tmp_path, console
):
    browser_settings.MAX_VIDEO_SIZE_MB = 1
    make_member("omar", INSTRUCTORS)
    big = tmp_path / "too-big.mp4"
    big.write_bytes(os.urandom(2 * 1024 * 1024))
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")
    fake = tmp_path / "fake-lecture.mp4"
    fake.write_bytes(os.urandom(64 * 1024))

    login(page, "omar")
    page.goto("/admin/media_library/video/upload/")
    page.set_input_files("#upload-input", [str(big), str(notes), str(fake)])
    assert (
        _row(page, big.name).locator(".upload-message").inner_text() == "Refused: file is 2.0 MB, over the 1 MB limit"
    )
    assert _row(page, notes.name).locator(".upload-message").inner_text() == (
        "Refused: '.txt' files are not accepted; upload one of: mp4, webm, avi, mov, mkv"
    )
    page.click("#upload-start-all")
    # Bytes that are not a video pass the browser's checks; the server's probe refuses them.
    fake_row = _row(page, fake.name)
    fake_row.locator(".upload-message-failed").wait_for(timeout=30_000)
    assert re.match(r"Failed: .+", fake_row.locator(".upload-message").inner_text())
    assert UploadSession.objects.get(filename=fake.name).status == UploadSession.Status.FAILED
    assert not UploadSession.objects.filter(filename__in=[big.name, notes.name]).exists()

    # The server's own refusal (its limits changed after the page was loaded) is shown as sent.
    browser_settings.ALLOWED_VIDEO_FORMATS = ["webm"]
    console.allow(r"(status of|http) 415")
    other = tmp_path / "second.mp4"
    other.write_bytes(os.urandom(1024))
    page.set_input_files("#upload-input", str(other))
    page.click("#upload-start-all")
    message = _row(page, other.name).locator(".upload-message-refused")
    message.wait_for()
    assert message.inner_text() == "Refused: '.mp4' files are not accepted; upload one of: webm"


def test_instructor_scope_and_costs_dashboard_kill_switch(page, live_server, make_member, console):
    alice = make_member("alice", INSTRUCTORS)
    bob = make_member("bob", INSTRUCTORS)
    make_member("fiona", FINANCE)
    make_video(owner=alice, media_file=make_media_file(owner=alice), title="Alice: entropy")
    secret = make_video(owner=bob, media_file=make_media_file(owner=bob), title="Bob: unreleased exam review")

    login(page, "alice")
    page.goto("/admin/media_library/video/")
    listing = page.locator("#result_list").inner_text()
    assert "Alice: entropy" in listing and "Bob: unreleased exam review" not in listing
    page.goto(f"/admin/media_library/video/{secret.pk}/change/")
    assert page.url.endswith("/admin/")
    assert "doesn’t exist" in page.locator(".messagelist:not(#cost-alert-banner)").inner_text()
    # Django's bare 403 page has no icon link, so Chromium also asks for /favicon.ico.
    console.allow(r"(status of|http) 403")
    console.allow(r"status of 404.*favicon\.ico")
    response = page.goto("/admin/transcoding/costdashboard/")
    assert response.status == 403

    page.context.clear_cookies()
    login(page, "fiona")
    page.click("text=Costs dashboard")
    page.wait_for_url("**/admin/transcoding/costdashboard/")
    assert page.locator("#costs-switch").inner_text() == "released"
    assert page.locator("#costs-chart svg").count() == 1
    screenshot(page, "costs-dashboard")
    page.fill("#kill-switch-form textarea[name=reason]", "invoice review")
    page.click("#kill-switch-form input[type=submit]")
    page.locator("#costs-switch", has_text="ENGAGED").wait_for()
    assert "Kill switch engaged" in page.locator(".messagelist:not(#cost-alert-banner)").inner_text()
    assert BudgetPolicy.objects.get().kill_switch_engaged
    page.click("#kill-switch-form input[type=submit]")
    page.locator("#costs-switch", has_text="released").wait_for()
    assert not BudgetPolicy.objects.get().kill_switch_engaged
