"""transcode_enqueue: the single entry point that queues a video."""

from __future__ import annotations

import pytest
from django_q.models import OrmQ

from media_library.models import Video
from tests.factories import make_media_file, make_video
from transcoding.costs.selectors import budget_policy_get
from transcoding.models import TranscodeJob
from transcoding.services.jobs import transcode_enqueue

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def video(user):
    return make_video(owner=user, media_file=make_media_file(owner=user))


def test_enqueue_creates_one_job_and_a_queued_task(video):
    job = transcode_enqueue(video=video)
    video.refresh_from_db()
    job.refresh_from_db()
    assert video.status == Video.Status.QUEUED
    assert job.status == TranscodeJob.Status.QUEUED
    assert job.task_id
    assert OrmQ.objects.count() == 1


def test_enqueue_twice_returns_the_same_job(video):
    first = transcode_enqueue(video=video)
    second = transcode_enqueue(video=video)
    assert first.pk == second.pk
    assert TranscodeJob.objects.filter(video=video).count() == 1
    assert OrmQ.objects.count() == 1


def test_kill_switch_blocks_instead_of_queueing(video):
    policy = budget_policy_get()
    policy.kill_switch_engaged = True
    policy.kill_switch_reason = "end of quarter"
    policy.save()

    assert transcode_enqueue(video=video) is None
    video.refresh_from_db()
    assert video.status == Video.Status.BLOCKED
    assert "end of quarter" in video.status_reason
    assert not TranscodeJob.objects.exists()
    assert OrmQ.objects.count() == 0


def test_video_without_original_is_refused(user):
    with pytest.raises(ValueError, match="no original file"):
        transcode_enqueue(video=make_video(owner=user, video_url="https://vimeo.com/1"))
