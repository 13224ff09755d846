"""State machines and database constraints of every model."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from media_library.models import Rendition, Video
from media_library.selectors import video_playback_url
from tests.factories import make_cost_entry, make_job, make_media_file, make_upload_session, make_video
from transcoding.models import BudgetPolicy, TranscodeJob
from unpuzzle.exceptions import InvalidTransition
from uploads.models import UploadSession

pytestmark = pytest.mark.django_db

V = Video.Status
U = UploadSession.Status
J = TranscodeJob.Status


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (V.UPLOADED, V.QUEUED),
        (V.QUEUED, V.PROCESSING),
        (V.PROCESSING, V.READY),
        (V.PROCESSING, V.FAILED),
        (V.QUEUED, V.BLOCKED),
        (V.BLOCKED, V.QUEUED),
        (V.FAILED, V.QUEUED),
        (V.READY, V.QUEUED),
    ],
)
def test_video_allowed_transitions(user, start, end):
    video = make_video(owner=user, status=start, hls_master_key="videos/v/hls/1/master.m3u8")
    assert video.transition(end) == start
    assert video.status == end


@pytest.mark.parametrize(
    ("start", "end"), [(V.UPLOADED, V.READY), (V.READY, V.PROCESSING), (V.FAILED, V.READY), (V.QUEUED, V.UPLOADED)]
)
def test_video_invalid_transitions_raise_with_reason(user, start, end):
    video = make_video(owner=user, status=start, hls_master_key="videos/v/hls/1/master.m3u8")
    with pytest.raises(InvalidTransition, match=f"cannot go from '{start}' to '{end}'"):
        video.transition(end)
    assert video.status == start


@pytest.mark.parametrize(
    ("start", "end", "ok"),
    [
        (U.CREATED, U.UPLOADING, True),
        (U.UPLOADING, U.COMPLETE, True),
        (U.COMPLETE, U.FINALIZED, True),
        (U.CREATED, U.COMPLETE, True),
        (U.UPLOADING, U.CANCELLED, True),
        (U.FINALIZED, U.UPLOADING, False),
        (U.EXPIRED, U.UPLOADING, False),
        (U.COMPLETE, U.UPLOADING, False),
        (U.CANCELLED, U.COMPLETE, False),
    ],
)
def test_upload_session_transitions(user, start, end, ok):
    session = make_upload_session(owner=user, status=start, length=10)
    if ok:
        session.transition(end)
        assert session.status == end
    else:
        with pytest.raises(InvalidTransition):
            session.transition(end)


@pytest.mark.parametrize(
    ("start", "end", "ok"),
    [
        (J.QUEUED, J.RUNNING, True),
        (J.RUNNING, J.SUCCEEDED, True),
        (J.RUNNING, J.QUEUED, True),
        (J.RUNNING, J.CANCELLED, True),
        (J.SUCCEEDED, J.RUNNING, False),
        (J.FAILED, J.SUCCEEDED, False),
    ],
)
def test_job_transitions(user, start, end, ok):
    job = make_job(video=make_video(owner=user), status=start)
    if ok:
        job.transition(end)
        assert job.status == end
    else:
        with pytest.raises(InvalidTransition):
            job.transition(end)


def _violates(create):
    with pytest.raises(IntegrityError), transaction.atomic():
        create()


def test_upload_offset_cannot_pass_length(user):
    _violates(lambda: make_upload_session(owner=user, length=10, offset=11))
    _violates(lambda: make_upload_session(owner=user, length=10, offset=-1))
    big = make_upload_session(owner=user, length=6 * 1024**3, offset=5 * 1024**3)
    big.refresh_from_db()
    assert big.offset == 5 * 1024**3, "offsets past 4 GiB must survive the round trip"


def test_one_stored_media_file_per_owner_and_content(user, other_user):
    make_media_file(owner=user, content=b"same bytes")
    make_media_file(owner=other_user, content=b"same bytes")
    _violates(lambda: make_media_file(owner=user, content=b"same bytes"))
    make_media_file(owner=user, content=b"same bytes", status="deleted")


def test_only_one_active_job_per_video(user):
    video = make_video(owner=user)
    make_job(video=video, status=J.FAILED)
    make_job(video=video, status=J.QUEUED)
    _violates(lambda: make_job(video=video, status=J.RUNNING))


def test_job_progress_bounded(user):
    _violates(lambda: make_job(video=make_video(owner=user), progress=101))


def test_ready_video_needs_something_to_play(user):
    _violates(lambda: make_video(owner=user, status=V.READY))
    make_video(owner=user, status=V.READY, video_url="https://vimeo.com/123")


def test_rendition_names_unique_per_video(user):
    video = make_video(owner=user)
    fields = {"width": 854, "height": 480, "bandwidth": 900_000, "playlist_key": "k"}
    Rendition.objects.create(video=video, name="480p", **fields)
    _violates(lambda: Rendition.objects.create(video=video, name="480p", **fields))


def test_cost_amounts_not_negative():
    from datetime import date

    _violates(
        lambda: make_cost_entry(date=date.today(), kind="storage", quantity=1, unit="GB-day", unit_price=1, amount=-1)
    )


def test_budget_policy_is_a_singleton():
    BudgetPolicy.objects.create()
    _violates(lambda: BudgetPolicy.objects.create(id=2))


def test_playback_url_prefers_own_hls_then_legacy(user):
    legacy = make_video(owner=user, video_url="https://vimeo.com/76979871", video_provider="vimeo")
    assert video_playback_url(video=legacy) == "https://vimeo.com/76979871"
    own = make_video(owner=user, video_url="https://vimeo.com/1", hls_master_key="videos/x/hls/1/master.m3u8")
    assert video_playback_url(video=own) == "https://vimeo.com/1"
    own.status = "ready"
    assert video_playback_url(video=own).startswith(f"/api/v1/videos/{own.id}/hls/")
    assert video_playback_url(video=own).endswith("/master.m3u8")
    assert video_playback_url(video=make_video(owner=user)) is None


def test_upload_progress(user):
    assert UploadSession(owner=user, length=200, offset=50).progress == 25.0
    assert UploadSession(owner=user, length=None, offset=50).progress is None
    assert UploadSession(owner=user, length=0, offset=0).progress == 100.0
