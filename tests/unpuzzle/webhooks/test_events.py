"""Events from the real flows: each carries the object as the API shows it, written with the change itself."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient
from standardwebhooks import Webhook

from media_library.models import Video
from tests.factories import make_cost_entry, make_media_file, make_stored_video, make_upload_session, make_video
from tests.unpuzzle.webhooks.conftest import make_endpoint
from tests.webhook_receiver import run_queued_deliveries
from transcoding.costs.budget import budget_check_and_alert, budget_engage_kill_switch, budget_release_kill_switch
from transcoding.costs.selectors import budget_policy_get
from transcoding.services.jobs import transcode_cancel, transcode_enqueue
from transcoding.services.pipeline import transcode_run
from unpuzzle.failures import failure_for
from unpuzzle.webhooks.events import EVENT_TYPES
from unpuzzle.webhooks.models import WebhookEvent
from uploads.models import UploadSession
from uploads.services.finalize import upload_session_fail, upload_session_ingest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def everything(receiver):
    """An endpoint subscribed to every event type."""
    return make_endpoint(receiver.url("/ok"), events=list(EVENT_TYPES))


@pytest.fixture
def owner_api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def events_of(type: str) -> list[WebhookEvent]:
    return list(WebhookEvent.objects.filter(type=type).order_by("created_at"))


def test_video_ready_through_the_real_pipeline_carries_the_api_representation(
    everything, receiver, user, owner_api, landscape_clip, settings
):
    settings.HLS_LADDER = "180p:300k"
    settings.HLS_SEGMENT_SECONDS = 2
    video = make_stored_video(user, landscape_clip)
    job = transcode_enqueue(video=video)
    transcode_run(job_id=job.id)
    [event] = events_of("video.ready")
    shown = owner_api.get(f"/api/v1/videos/{video.id}/").json()
    assert shown["status"] == "ready" and shown["job_status"] == "succeeded" and shown["renditions"]
    # The poster URL is built for the request's host in the API; everything else is the same object.
    assert {k: v for k, v in event.data.items() if k != "poster_url"} == {
        k: v for k, v in shown.items() if k != "poster_url"
    }
    assert run_queued_deliveries() == 1
    payload = Webhook(everything.secret).verify(receiver.requests[0].body, receiver.requests[0].headers)
    assert payload["type"] == "video.ready" and payload["data"]["id"] == str(video.id)


def test_upload_completed_when_an_ingested_file_becomes_a_video(everything, user, owner_api, landscape_clip):
    session = upload_session_ingest(owner=user, path=landscape_clip, title="Entropy")
    assert session.status == UploadSession.Status.FINALIZED
    [event] = events_of("upload.completed")
    assert event.data == owner_api.get(f"/api/v1/uploads/{session.id}/").json()
    assert event.data["video_id"] == str(session.video_id)


def test_upload_failed_and_its_rollback(everything, user, owner_api):
    session = make_upload_session(owner=user, status=UploadSession.Status.COMPLETE, offset=10)
    with pytest.raises(RuntimeError), transaction.atomic():
        upload_session_fail(session_id=session.id, failure=failure_for("no_video"), detail="no video stream")
        raise RuntimeError("rolled back")
    assert events_of("upload.failed") == []
    upload_session_fail(session_id=session.id, failure=failure_for("no_video"), detail="no video stream")
    [event] = events_of("upload.failed")
    assert event.data == owner_api.get(f"/api/v1/uploads/{session.id}/").json()
    # Receivers get what the owner reads (the plain reason and its code), not the raw cause.
    assert event.data["status"] == "failed" and event.data["error_code"] == "no_video"
    assert event.data["error"].startswith("This file has no video picture in it.")


def test_video_failed_when_its_only_job_is_cancelled(everything, user, owner_api):
    video = make_video(owner=user, media_file=make_media_file(owner=user))
    job = transcode_enqueue(video=video)
    transcode_cancel(job=job, by=user)
    [event] = events_of("video.failed")
    assert event.data == owner_api.get(f"/api/v1/videos/{video.id}/").json()
    assert event.data["status"] == "failed" and event.data["job_status"] == "cancelled"


def test_kill_switch_blocks_videos_and_both_switch_moves_are_events(everything, user, staff_user):
    budget_engage_kill_switch(by=staff_user, reason="runaway uploads")
    [engaged] = events_of("budget.kill_switch.engaged")
    assert (
        engaged.data["alert"]["kind"] == "kill_switch_engaged" and engaged.data["alert"]["actor"] == staff_user.username
    )
    assert engaged.data["budget"]["kill_switch_engaged"] is True
    assert engaged.data["budget"]["kill_switch_reason"] == "runaway uploads"

    video = make_video(owner=user, media_file=make_media_file(owner=user))
    transcode_enqueue(video=video)
    transcode_enqueue(video=video)
    [blocked] = events_of("video.blocked")
    assert blocked.data["id"] == str(video.id) and blocked.data["status"] == "blocked", "one event per change"

    budget_release_kill_switch(by=staff_user, reason="fixed")
    [released] = events_of("budget.kill_switch.released")
    assert released.data["budget"]["kill_switch_engaged"] is False


def test_budget_alert_at_80_percent_carries_the_budget_as_the_api_shows_it(everything, admin_user):
    policy = budget_policy_get()
    policy.monthly_budget_usd = Decimal("10.00")
    policy.auto_engage = False
    policy.save()
    make_cost_entry(quantity="1700", unit_price="0.005")
    budget_check_and_alert(today=timezone.localdate())
    [alert] = [e for e in events_of("budget.alert") if e.data["alert"]["kind"] == "budget_80"]
    assert alert.data["alert"]["subject"].startswith("Costs at 80% of the")
    staff_api = APIClient()
    staff_api.force_authenticate(admin_user)
    assert alert.data["budget"] == staff_api.get("/api/v1/costs/budget/").json()
    assert alert.data["budget"]["month_to_date_usd"] == "8.500000"


def test_video_deleted_carries_the_video_as_it_was(everything, user, owner_api):
    video = make_video(owner=user, media_file=make_media_file(owner=user), title="Old lecture")
    shown = owner_api.get(f"/api/v1/videos/{video.id}/").json()
    assert owner_api.delete(f"/api/v1/videos/{video.id}/").status_code == 204
    assert not Video.objects.filter(pk=video.pk).exists()
    [event] = events_of("video.deleted")
    assert event.data["id"] == str(video.id) and event.data["title"] == "Old lecture"
    assert {k: v for k, v in shown.items() if k in event.data} == event.data


def test_a_file_uploaded_again_is_ready_at_once_and_says_so(everything, user, owner_api, landscape_clip, settings):
    settings.HLS_LADDER = "180p:300k"
    settings.HLS_SEGMENT_SECONDS = 2
    first = upload_session_ingest(owner=user, path=landscape_clip, title="Week 1")
    transcode_run(job_id=first.video.jobs.get().id)
    again = upload_session_ingest(owner=user, path=landscape_clip, title="Week 1 (section B)")
    assert again.video_id != first.video_id
    ready = {event.data["id"]: event.data for event in events_of("video.ready")}
    assert set(ready) == {str(first.video_id), str(again.video_id)}
    copy = ready[str(again.video_id)]
    assert copy["title"] == "Week 1 (section B)" and copy["duplicate_of"] == str(first.video_id)
    assert copy == {**owner_api.get(f"/api/v1/videos/{again.video_id}/").json(), "poster_url": copy["poster_url"]}
