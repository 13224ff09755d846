"""A video encoded in parallel chunks plays in chromium (hls.js) as one stream: picture and the shared
audio rendition buffer without a gap across the chunk boundaries, and play to the end."""

from __future__ import annotations

import pytest

from media_library.models import Video
from tests.browser.conftest import login
from tests.clips import make_clip
from tests.factories import make_stored_video
from transcoding.models import TranscodeJob
from transcoding.services.jobs import transcode_enqueue
from transcoding.tasks import transcode_video
from unpuzzle.groups import INSTRUCTORS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BUFFERED = """() => { const v = document.querySelector('video');
  return Array.from({length: v.buffered.length}, (_, i) => [v.buffered.start(i), v.buffered.end(i)]); }"""


def test_a_chunked_video_plays_across_its_chunk_boundaries_with_sound(page, browser_settings, make_member, tmp_path):
    browser_settings.TRANSCODE_CHUNK_SECONDS = 4
    browser_settings.TRANSCODE_CHUNK_MIN_SECONDS = 5
    owner = make_member("tess", INSTRUCTORS)
    video = make_stored_video(owner, make_clip(tmp_path / "lecture.mp4", duration=13.0))
    job = transcode_enqueue(video=video)
    transcode_video(str(job.id))
    job.refresh_from_db()
    video.refresh_from_db()
    assert job.chunk_count == 4 and job.status == TranscodeJob.Status.SUCCEEDED
    assert video.status == Video.Status.READY

    login(page, "tess")
    page.goto(f"/videos/{video.id}/")
    page.evaluate(
        "() => { const v = document.querySelector('video'); v.muted = true; v.playbackRate = 4; return v.play(); }"
    )
    page.wait_for_function("() => document.querySelector('video').ended", timeout=60_000)
    status = page.locator(f"#player-status-{video.id}").inner_text()
    assert "error" not in status.lower()
    # one buffered range from the start to the end: no hole at 4, 8 or 12 s in the picture or the sound
    ranges = page.evaluate(BUFFERED)
    assert len(ranges) == 1, ranges
    start, end = ranges[0]
    assert start < 0.1 and end == pytest.approx(13.0, abs=0.15)
    quality = page.evaluate(
        """() => { const v = document.querySelector('video'); const q = v.getVideoPlaybackQuality();
             return {frames: q.totalVideoFrames, audio: v.webkitAudioDecodedByteCount, duration: v.duration}; }"""
    )
    assert quality["audio"] > 0, "no audio was decoded"
    assert quality["duration"] == pytest.approx(13.0, abs=0.15)
    assert quality["frames"] > 0
