"""The same file uploaded again: a new video with its own title, sharing the stored original and its
HLS output, at no new transcode cost; through tuspy against the live server and direct-to-bucket uploads."""

from __future__ import annotations

import pytest
import requests
from tusclient import client as tus_client

from media_library.models import MediaFile, Video
from tests.hls_player import follow_playlists
from tests.uploads.api.test_direct import chunks, complete, create, put_part
from tests.uploads.services.test_finalize import complete_upload
from transcoding.models import CostLogEntry, TranscodeJob
from transcoding.services.jobs import transcode_cancel
from transcoding.services.pipeline import transcode_run
from unpuzzle import storage
from uploads.services.finalize import upload_session_finalize

pytestmark = pytest.mark.django_db(transaction=True)

CHUNK = 256 * 1024


@pytest.fixture(autouse=True)
def small_ladder(settings):
    """Two tiny tiers and 2 s segments keep every transcode to a second or two."""
    settings.HLS_LADDER = "120p:200k,180p:400k"
    settings.HLS_SEGMENT_SECONDS = 2
    settings.HLS_AUDIO_BITRATE = "64k"


def tus_upload(live_server, token: str, clip, *, title: str) -> str:
    """Upload ``clip`` with tuspy, in chunks, and run the finalization the last PATCH queued; the upload id."""
    client = tus_client.TusClient(f"{live_server.url}/api/v1/uploads/", headers={"Authorization": f"Token {token}"})
    uploader = client.uploader(str(clip), chunk_size=CHUNK, metadata={"filename": clip.name, "title": title})
    uploader.upload()
    upload_id = uploader.url.rstrip("/").rsplit("/", 1)[-1]
    upload_session_finalize(session_id=upload_id)
    return upload_id


def transcode(video_id) -> Video:
    """Run the video's queued transcode job as the worker does."""
    job = TranscodeJob.objects.get(video_id=video_id, status=TranscodeJob.Status.QUEUED)
    transcode_run(job_id=job.id)
    return Video.objects.get(pk=video_id)


def plays(api_client, video_id, **follow) -> list[str]:
    """Ask the playback API for the video and fetch the master and everything it references."""
    response = api_client.get(f"/api/v1/videos/{video_id}/playback/")
    assert response.status_code == 200, response.content
    return follow_playlists(api_client, response.json()["hls_url"], **follow)


def keys_under(prefix: str) -> set[str]:
    return {key for key, _ in storage.iter_objects(prefix)}


def test_tus_duplicate_keeps_its_title_shares_the_output_and_survives_the_original(
    live_server, token, api_client, user, upload_clip
):
    tus = requests.Session()
    tus.headers.update({"Authorization": f"Token {token}"})
    first_id = tus_upload(live_server, token, upload_clip, title="Week 1")
    original = transcode(tus.get(f"{live_server.url}/api/v1/uploads/{first_id}").json()["video_id"])
    assert original.status == Video.Status.READY
    transcode_lines = CostLogEntry.objects.filter(kind=CostLogEntry.Kind.TRANSCODE).count()
    assert transcode_lines > 0

    second_id = tus_upload(live_server, token, upload_clip, title="Week 1 (second section)")
    upload = tus.get(f"{live_server.url}/api/v1/uploads/{second_id}").json()
    assert upload["status"] == "finalized"
    assert upload["video_id"] != str(original.id)
    assert upload["duplicate_of"] == str(original.id)
    duplicate = api_client.get(f"/api/v1/videos/{upload['video_id']}/").json()
    assert duplicate["title"] == "Week 1 (second section)" and duplicate["status"] == "ready"
    assert duplicate["duplicate_of"] == str(original.id) and duplicate["duplicate_of_title"] == "Week 1"
    assert api_client.get(f"/api/v1/videos/{original.id}/").json()["duplicate_of"] is None
    # One stored original, one transcode: no new job, no new ledger line.
    assert MediaFile.objects.count() == 1 and Video.objects.count() == 2
    assert TranscodeJob.objects.count() == 1
    assert CostLogEntry.objects.filter(kind=CostLogEntry.Kind.TRANSCODE).count() == transcode_lines
    segments = {url.rsplit("/", 1)[-1] for url in plays(api_client, upload["video_id"]) if url.endswith(".ts")}
    assert segments and segments <= {key.rsplit("/", 1)[-1] for key in keys_under(f"videos/{original.id}/hls/1/")}

    # Deleting the original keeps the duplicate playing from the shared objects.
    shared = keys_under(f"videos/{original.id}/")
    assert api_client.delete(f"/api/v1/videos/{original.id}/").status_code == 204
    assert keys_under(f"videos/{original.id}/") == shared
    media_file = MediaFile.objects.get()
    assert storage.object_exists(media_file.storage_key)
    assert api_client.get(f"/api/v1/videos/{upload['video_id']}/").json()["duplicate_of"] is None
    plays(api_client, upload["video_id"])

    # The last video of the file takes the shared output and the original with it.
    assert api_client.delete(f"/api/v1/videos/{upload['video_id']}/").status_code == 204
    assert keys_under(f"videos/{original.id}/") == set()
    assert keys_under(f"videos/{upload['video_id']}/") == set()
    assert not storage.object_exists(media_file.storage_key) and not MediaFile.objects.exists()


def test_direct_upload_duplicate_keeps_its_title_and_plays_from_the_bucket(api_client, user, big_clip, s3_storage):
    def direct_upload(title: str) -> dict:
        start = create(api_client, big_clip, title=title).json()
        parts = chunks(big_clip, start["part_size"])
        etags = {p["part_number"]: put_part(p["url"], parts[p["part_number"]]) for p in start["parts"]}
        assert complete(api_client, start["id"], etags).status_code == 202
        upload_session_finalize(session_id=start["id"])
        return api_client.get(f"/api/v1/direct-uploads/{start['id']}/").json()

    first = direct_upload("Lecture one")
    assert first["duplicate_of"] is None
    original = transcode(first["video_id"])
    assert original.status == Video.Status.READY

    second = direct_upload("Lecture one, again")
    assert second["status"] == "finalized" and second["video_id"] != first["video_id"]
    assert second["duplicate_of"] == first["video_id"] and second["media_file_id"] == first["media_file_id"]
    duplicate = Video.objects.get(pk=second["video_id"])
    assert duplicate.title == "Lecture one, again" and duplicate.status == Video.Status.READY
    assert duplicate.hls_master_key == original.hls_master_key
    assert TranscodeJob.objects.count() == 1
    assert not CostLogEntry.objects.filter(kind=CostLogEntry.Kind.TRANSCODE, video=duplicate).exists()
    # Presigned delivery: the app serves the playlists under the duplicate's id, segments come from the bucket.
    fetched = plays(api_client, duplicate.id, fetch_external=lambda url: requests.get(url, timeout=30))
    assert any(f"/api/v1/videos/{duplicate.id}/hls/" in url for url in fetched)
    assert any(f"videos/{original.id}/hls/1/" in url and ".ts" in url for url in fetched)


def test_duplicate_of_a_video_still_processing_becomes_ready_with_it(api_client, user, small_clip):
    data = small_clip.read_bytes()
    first = upload_session_finalize(session_id=complete_upload(user, data, title="Week 2").id)
    second = upload_session_finalize(session_id=complete_upload(user, data, title="Week 2, again").id)
    duplicate = Video.objects.get(pk=second.video_id)
    assert duplicate.pk != first.video_id and duplicate.title == "Week 2, again"
    assert duplicate.status == Video.Status.QUEUED and duplicate.duplicate_of_id == first.video_id
    assert not duplicate.jobs.exists()
    assert api_client.get(f"/api/v1/videos/{duplicate.id}/playback/").status_code == 409

    original = transcode(first.video_id)
    duplicate.refresh_from_db()
    assert original.status == duplicate.status == Video.Status.READY
    assert duplicate.hls_master_key == original.hls_master_key and duplicate.duplicate_of_id == original.id
    assert {r.name for r in duplicate.renditions.all()} == {r.name for r in original.renditions.all()}
    assert TranscodeJob.objects.count() == 1
    plays(api_client, duplicate.id)


def test_duplicate_of_a_video_whose_transcode_fails_fails_with_it_and_retries_on_its_own(api_client, user, small_clip):
    data = small_clip.read_bytes()
    first = upload_session_finalize(session_id=complete_upload(user, data, title="Week 3").id)
    second = upload_session_finalize(session_id=complete_upload(user, data, title="Week 3, again").id)
    transcode_cancel(job=TranscodeJob.objects.get(video_id=first.video_id), by=user)
    duplicate = Video.objects.get(pk=second.video_id)
    assert duplicate.status == Video.Status.FAILED and duplicate.duplicate_of_id is None
    assert "“Week 3” could not be transcoded: Processing was cancelled by" in duplicate.status_reason

    # The owner retries the duplicate: its own transcode, then it plays.
    assert api_client.post(f"/api/v1/videos/{duplicate.id}/retranscode/").status_code in (200, 201, 202)
    duplicate = transcode(duplicate.id)
    assert duplicate.status == Video.Status.READY
    assert duplicate.hls_master_key.startswith(f"videos/{duplicate.id}/hls/")
    plays(api_client, duplicate.id)

    # A third upload of the file now shares the retried video's output.
    third = upload_session_finalize(session_id=complete_upload(user, data, title="Week 3, third").id)
    assert Video.objects.get(pk=third.video_id).duplicate_of_id == duplicate.id
