"""A transcode whose work dir fills up mid-encode: ffmpeg still exits 0, leaving empty or missing
segments. The attempt must count as an outage (retried once there is room), never fail the
video for good nor publish the broken output. On a real tmpfs, as bench/faults.py found it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.utils import timezone

from media_library.models import Video
from tests.conftest import mounted_tmpfs
from tests.factories import make_stored_video
from tests.transcoding.services.test_pipeline import small_ladder  # noqa: F401 (autouse fixture)
from transcoding.models import TranscodeJob
from transcoding.services.jobs import transcode_enqueue
from transcoding.services.pipeline import transcode_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def small_work_dir(tmp_path: Path, settings) -> Iterator[Path]:
    """TRANSCODE_WORK_DIR on a tmpfs far too small for the encode (mounting needs root, as in CI and here)."""
    with mounted_tmpfs(tmp_path / "disk", size="96k") as mount:
        settings.TRANSCODE_WORK_DIR = mount / "transcode"
        yield mount


def test_a_full_work_dir_mid_encode_is_retried_not_failed_nor_published(
    user, landscape_clip, settings, small_work_dir, tmp_path
):
    video = make_stored_video(user, landscape_clip)
    job = transcode_enqueue(video=video)
    transcode_run(job_id=job.id)
    job.refresh_from_db()
    video.refresh_from_db()
    assert job.status == TranscodeJob.Status.QUEUED and job.transient_failures == 1, (job.status, job.error)
    assert "could not write its output" in job.error or "output is incomplete" in job.error, job.error
    assert video.status == Video.Status.QUEUED and not video.hls_master_key

    settings.TRANSCODE_WORK_DIR = tmp_path / "roomy"  # space is back
    TranscodeJob.objects.filter(pk=job.pk).update(not_before=timezone.now())
    transcode_run(job_id=job.id)
    job.refresh_from_db()
    video.refresh_from_db()
    assert job.status == TranscodeJob.Status.SUCCEEDED and video.status == Video.Status.READY
