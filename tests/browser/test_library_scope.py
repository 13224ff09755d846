"""An instructor's reach in the admin, in a real browser: another instructor's original stays out of it,
and deleting their own video removes its stored objects while the cost history stays."""

from __future__ import annotations

import time

import pytest

from media_library.models import MediaFile, Video
from tests.browser.conftest import login, screenshot
from tests.factories import make_media_file, make_stored_video, make_video
from transcoding.models import CostLogEntry, TranscodeJob
from transcoding.services.jobs import transcode_enqueue
from unpuzzle.groups import INSTRUCTORS
from unpuzzle.storage import iter_objects

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _stored_keys(video: Video, media_file_id) -> list[str]:
    return [key for key, _ in iter_objects(f"videos/{video.id}/")] + [
        key for key, _ in iter_objects(f"originals/{media_file_id}/")
    ]


def test_an_instructor_cannot_give_their_video_another_instructors_original(page, make_member, console):
    alice = make_member("alice", INSTRUCTORS)
    bob = make_member("bob", INSTRUCTORS)
    lecture = make_media_file(owner=alice, original_filename="alice-entropy.mp4")
    make_video(owner=alice, media_file=lecture, title="Alice: entropy", status=Video.Status.FAILED)
    own = make_video(
        owner=bob,
        media_file=make_media_file(owner=bob, original_filename="bob-review.mp4"),
        title="Bob: exam review",
        status=Video.Status.FAILED,
    )

    login(page, "bob")
    # Videos -> Add video: the upload page, where a video's original is the file you upload.
    page.goto("/admin/media_library/video/")
    page.get_by_role("link", name="Add video").click()
    page.wait_for_url("**/admin/media_library/video/upload/")
    assert page.locator("#upload-input").count() == 1
    assert page.locator("[name=media_file]").count() == 0
    screenshot(page, "library-scope-add-video-opens-upload")
    # Typing the raw add address lands there too.
    page.goto("/admin/media_library/video/add/")
    assert page.url.endswith("/admin/media_library/video/upload/")

    # On his own video the original is shown, not editable; a hand-crafted field is ignored on save.
    page.goto(f"/admin/media_library/video/{own.pk}/change/")
    original = page.locator(".field-media_file .readonly")
    assert original.inner_text() == "bob-review.mp4"
    for name in ("media_file", "owner", "hls_master_key", "poster_key", "captions_key"):
        assert page.locator(f"#video_form [name={name}]").count() == 0, f"{name} is editable"
    screenshot(page, "library-scope-original-read-only")
    page.evaluate(
        """(mediaId) => {
            const input = document.createElement('input');
            input.type = 'hidden'; input.name = 'media_file'; input.value = mediaId;
            document.querySelector('#video_form').appendChild(input);
        }""",
        str(lecture.pk),
    )
    page.fill("#id_title", "Bob: exam review (edited)")
    page.click("#video_form input[name=_save]")
    page.wait_for_url("**/admin/media_library/video/")
    assert "was changed successfully" in page.locator(".messagelist:not(#cost-alert-banner)").inner_text()
    own.refresh_from_db()
    assert own.title == "Bob: exam review (edited)" and own.media_file.original_filename == "bob-review.mp4"

    # Re-transcode on his video works on his own original; nothing of Bob's points at Alice's.
    page.goto(f"/admin/media_library/video/{own.pk}/change/")
    page.get_by_role("button", name="Re-transcode").click()
    assert "Queued 1 video(s) for transcoding." in page.locator(".messagelist:not(#cost-alert-banner)").inner_text()
    assert TranscodeJob.objects.get(video=own).video.media_file.owner == bob
    assert not Video.objects.filter(owner=bob, media_file=lecture).exists()
    assert list(MediaFile.objects.get(pk=lecture.pk).videos.values_list("owner__username", flat=True)) == ["alice"]


def test_an_instructor_deletes_their_ready_video_and_its_stored_objects_go(
    page, browser_settings, task_worker, make_member, clip_copy
):
    ines = make_member("ines", INSTRUCTORS)
    video = make_stored_video(ines, clip_copy("week3-lecture.mp4"))
    Video.objects.filter(pk=video.pk).update(title="Week 3: heat engines")
    transcode_enqueue(video=video)
    deadline = time.monotonic() + 90
    while Video.objects.get(pk=video.pk).status != Video.Status.READY and time.monotonic() < deadline:
        time.sleep(0.2)
    video.refresh_from_db()
    assert video.status == Video.Status.READY, video.status_reason
    media_file_id = video.media_file_id
    stored = _stored_keys(video, media_file_id)
    assert any(key.endswith("master.m3u8") for key in stored) and any(key.startswith("originals/") for key in stored)
    costs = list(CostLogEntry.objects.filter(video=video).values_list("pk", flat=True))
    assert costs, "the transcode wrote its cost line"

    login(page, "ines")
    page.goto(f"/admin/media_library/video/{video.pk}/change/")
    page.locator("a.deletelink").click()
    page.wait_for_url(f"**/admin/media_library/video/{video.pk}/delete/")
    confirm = page.locator("#content").inner_text()
    assert 'Are you sure you want to delete the video "Week 3: heat engines"?' in confirm
    assert "permission to delete" not in confirm
    screenshot(page, "library-scope-delete-confirm")
    page.locator("input[type=submit]").click()
    page.wait_for_url("**/admin/media_library/video/")
    message = page.locator(".messagelist:not(#cost-alert-banner)").inner_text()
    assert "was deleted successfully" in message
    assert "Week 3: heat engines" not in page.locator("#content").inner_text()
    screenshot(page, "library-scope-deleted")

    assert not Video.objects.filter(pk=video.pk).exists()
    assert not MediaFile.objects.filter(pk=media_file_id).exists()
    assert _stored_keys(video, media_file_id) == []
    kept = CostLogEntry.objects.filter(pk__in=costs)
    assert kept.count() == len(costs) and not kept.exclude(video=None).exists(), "cost history stays"
