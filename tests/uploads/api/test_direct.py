"""Direct-to-bucket uploads: presigned multipart URLs against the loopback S3 endpoint (moto),
with the parts PUT over real HTTP as a browser or curl would."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from media_library.models import MediaFile, Video
from tests.conftest import S3_KEY_ID, S3_REGION, S3_SECRET
from unpuzzle.storage import object_exists
from uploads.models import UploadSession
from uploads.services.finalize import upload_session_finalize
from uploads.tasks import abort_stale_direct_uploads

pytestmark = pytest.mark.django_db(transaction=True)

MIB = 1024 * 1024
ENDPOINT = "/api/v1/direct-uploads/"
S = UploadSession.Status


@pytest.fixture(autouse=True)
def five_mib_parts(settings):
    """Parts of S3's real 5 MiB minimum, so an 11 MiB file spans three parts."""
    settings.CHUNK_SIZE_MB = 5


def s3_client(s3_server):
    return boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name=S3_REGION,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
    )


def chunks(data: bytes, part_size: int) -> dict[int, bytes]:
    return {i + 1: data[o : o + part_size] for i, o in enumerate(range(0, len(data), part_size))}


def put_part(url: str, body: bytes) -> str:
    response = requests.put(url, data=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.headers["ETag"]


def create(client: APIClient, data: bytes, **fields):
    body = {"filename": "Lecture 1.mp4", "file_size": len(data), "content_type": "video/mp4", "title": "Lecture one"}
    return client.post(ENDPOINT, {**body, **fields}, format="json")


def upload_all(client: APIClient, data: bytes) -> tuple[dict, dict[int, str]]:
    created = create(client, data)
    assert created.status_code == 201, created.content
    start = created.json()
    parts = chunks(data, start["part_size"])
    etags = {p["part_number"]: put_part(p["url"], parts[p["part_number"]]) for p in start["parts"]}
    return start, etags


def complete(client: APIClient, upload_id: str, etags: dict[int, str]):
    body = {"parts": [{"part_number": n, "etag": e} for n, e in sorted(etags.items())]}
    return client.post(f"{ENDPOINT}{upload_id}/complete/", body, format="json")


def test_multipart_upload_becomes_a_video_queued_for_transcoding(
    api_client, user, big_clip, s3_storage, s3_server, s3_bucket
):
    created = create(api_client, big_clip)
    assert created.status_code == 201, created.content
    start = created.json()
    assert start["part_size"] == 5 * MIB and start["part_count"] == 3 and len(start["parts"]) == 3
    assert start["key"].startswith("originals/") and start["key"].endswith("/lecture-1.mp4")
    session = UploadSession.objects.get(pk=start["id"])
    assert session.kind == UploadSession.Kind.DIRECT and session.status == S.CREATED
    assert session.expires_at is not None

    parts = chunks(big_clip, start["part_size"])
    etags = {p["part_number"]: put_part(p["url"], parts[p["part_number"]]) for p in start["parts"]}
    state = api_client.get(f"{ENDPOINT}{start['id']}/").json()
    assert state["bytes_stored"] == len(big_clip) and state["progress"] == 100.0 and state["missing_parts"] == []
    assert [(p["part_number"], p["size"], p["etag"]) for p in state["parts"]] == [
        (n, len(parts[n]), etags[n]) for n in (1, 2, 3)
    ]

    done = complete(api_client, start["id"], etags)
    assert done.status_code == 202, done.content
    assert done.json() == {
        "id": start["id"],
        "status": "complete",
        "video_id": None,
        "duplicate_of": None,
        "media_file_id": None,
    }

    session = upload_session_finalize(session_id=session.id)  # what the queued finalize task runs
    assert session.status == S.FINALIZED and session.error == ""
    media_file = session.media_file
    # The object was created at its final key: the MediaFile points at it, nothing was copied.
    assert media_file.storage_key == start["key"] and str(media_file.id) in start["key"]
    assert media_file.sha256 == hashlib.sha256(big_clip).hexdigest() and media_file.size == len(big_clip)
    assert media_file.mime_type == "video/mp4" and media_file.video_codec == "h264"
    head = s3_client(s3_server).head_object(Bucket=s3_bucket, Key=start["key"])
    assert head["ContentType"] == "video/mp4" and head["ContentLength"] == len(big_clip)
    video = Video.objects.get(pk=session.video_id)
    assert video.title == "Lecture one" and video.status == Video.Status.QUEUED
    final = api_client.get(f"{ENDPOINT}{start['id']}/").json()
    assert final["status"] == "finalized" and final["video_id"] == str(video.id)
    assert final["media_file_id"] == str(media_file.id) and final["bytes_stored"] == len(big_clip)


def test_resume_asks_for_the_missing_parts_only(api_client, big_clip, s3_storage):
    start = create(api_client, big_clip).json()
    parts = chunks(big_clip, start["part_size"])
    etags = {2: put_part(start["parts"][1]["url"], parts[2])}
    # The client crashed; after a restart it asks what is stored.
    state = api_client.get(f"{ENDPOINT}{start['id']}/").json()
    assert [p["part_number"] for p in state["parts"]] == [2] and state["missing_parts"] == [1, 3]
    assert state["bytes_stored"] == 5 * MIB and state["progress"] == pytest.approx(45.45, abs=0.01)
    fresh = api_client.post(f"{ENDPOINT}{start['id']}/parts/", {"part_numbers": state["missing_parts"]}, format="json")
    assert fresh.status_code == 200, fresh.content
    assert [p["part_number"] for p in fresh.json()["parts"]] == [1, 3]
    for p in fresh.json()["parts"]:
        etags[p["part_number"]] = put_part(p["url"], parts[p["part_number"]])
    assert complete(api_client, start["id"], etags).status_code == 202


def test_part_numbers_outside_the_upload_are_refused(api_client, big_clip, s3_storage):
    start = create(api_client, big_clip).json()
    response = api_client.post(f"{ENDPOINT}{start['id']}/parts/", {"part_numbers": [0, 3, 4]}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_part_number"
    assert "0, 4 are outside 1..3" in response.json()["detail"]


def test_presigned_part_urls_are_sigv4_with_the_region(api_client, big_clip, s3_storage, settings):
    start = create(api_client, big_clip).json()
    query = parse_qs(urlsplit(start["parts"][0]["url"]).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Credential"][0].endswith(f"/{S3_REGION}/s3/aws4_request")
    assert query["X-Amz-Expires"] == [str(settings.STORAGE_URL_EXPIRE_S)]
    assert query["partNumber"] == ["1"] and "uploadId" in query


def test_wrong_etag_is_refused_naming_the_part_and_the_upload_stays_open(api_client, big_clip, s3_storage):
    start, etags = upload_all(api_client, big_clip)
    wrong = {**etags, 2: '"0123456789abcdef0123456789abcdef"'}
    response = complete(api_client, start["id"], wrong)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "etag_mismatch" and body["part_number"] == 2
    assert body["detail"].startswith("part 2: ETag") and etags[2] in body["detail"]
    assert UploadSession.objects.get(pk=start["id"]).status == S.CREATED
    # The client fixes its list and completes.
    assert complete(api_client, start["id"], etags).status_code == 202


def test_missing_part_is_refused_naming_the_part_and_the_upload_stays_open(api_client, big_clip, s3_storage):
    start = create(api_client, big_clip).json()
    parts = chunks(big_clip, start["part_size"])
    etags = {n: put_part(start["parts"][n - 1]["url"], parts[n]) for n in (1, 2)}
    unlisted = complete(api_client, start["id"], etags)
    assert unlisted.status_code == 400 and unlisted.json()["missing_parts"] == [3]
    assert "parts 3 are missing from the list" in unlisted.json()["detail"]
    not_stored = complete(api_client, start["id"], {**etags, 3: etags[2]})
    assert not_stored.status_code == 400 and not_stored.json()["code"] == "part_missing"
    assert not_stored.json()["detail"].startswith("part 3 is not stored in the bucket")
    assert UploadSession.objects.get(pk=start["id"]).status == S.CREATED
    etags[3] = put_part(start["parts"][2]["url"], parts[3])
    assert complete(api_client, start["id"], etags).status_code == 202


def test_size_mismatch_deletes_the_object_and_fails_the_upload(api_client, big_clip, s3_storage):
    start = create(api_client, big_clip).json()
    parts = chunks(big_clip, start["part_size"])
    # The client sends a longer last part than the declared file_size allows.
    etags = {n: put_part(start["parts"][n - 1]["url"], parts[n] + (b"x" * 100 if n == 3 else b"")) for n in (1, 2, 3)}
    response = complete(api_client, start["id"], etags)
    assert response.status_code == 400 and response.json()["code"] == "size_mismatch"
    assert f"hold {len(big_clip) + 100} bytes but file_size was {len(big_clip)}" in response.json()["detail"]
    session = UploadSession.objects.get(pk=start["id"])
    assert session.status == S.FAILED and "file_size" in session.error_detail
    assert not object_exists(start["key"])


def test_abort_frees_the_parts(api_client, big_clip, s3_storage, s3_server, s3_bucket):
    start = create(api_client, big_clip).json()
    put_part(start["parts"][0]["url"], chunks(big_clip, start["part_size"])[1])
    assert api_client.delete(f"{ENDPOINT}{start['id']}/").status_code == 204
    assert UploadSession.objects.get(pk=start["id"]).status == S.CANCELLED
    assert s3_client(s3_server).list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert api_client.get(f"{ENDPOINT}{start['id']}/").json()["status"] == "cancelled"
    again = api_client.post(f"{ENDPOINT}{start['id']}/parts/", {"part_numbers": [1]}, format="json")
    assert again.status_code == 410


def test_duplicate_of_an_existing_original_deletes_the_new_object(api_client, user, big_clip, s3_storage):
    first, etags = upload_all(api_client, big_clip)
    complete(api_client, first["id"], etags)
    first_session = upload_session_finalize(session_id=first["id"])
    second, etags = upload_all(api_client, big_clip)
    complete(api_client, second["id"], etags)
    second_session = upload_session_finalize(session_id=second["id"])
    assert second_session.status == S.FINALIZED
    assert second_session.media_file_id == first_session.media_file_id
    assert second_session.video_id != first_session.video_id
    assert second_session.video.duplicate_of_id == first_session.video_id
    assert object_exists(first["key"]) and not object_exists(second["key"])
    assert MediaFile.objects.count() == 1


def test_not_a_video_fails_finalization_and_deletes_the_object(api_client, s3_storage):
    data = os.urandom(5 * MIB + 1000)
    start, etags = upload_all(api_client, data)
    assert complete(api_client, start["id"], etags).status_code == 202
    session = upload_session_finalize(session_id=start["id"])
    assert session.status == S.FAILED and session.error_detail.startswith("not a playable video:")
    assert not object_exists(start["key"]) and MediaFile.objects.count() == 0
    assert api_client.get(f"{ENDPOINT}{start['id']}/").json()["error"] == session.error


def test_creation_checks_type_size_and_concurrent_uploads_like_tus(api_client, big_clip, s3_storage, settings):
    assert create(api_client, big_clip, filename="notes.pdf").status_code == 415
    settings.MAX_VIDEO_SIZE_MB = 10
    too_big = create(api_client, big_clip)
    assert too_big.status_code == 413 and "maximum upload size" in too_big.json()["detail"]
    settings.MAX_VIDEO_SIZE_MB = 500
    settings.MAX_CONCURRENT_UPLOADS = 1
    assert create(api_client, big_clip).status_code == 201
    assert create(api_client, big_clip).status_code == 429


def test_starts_beyond_the_upload_creation_rate_get_429_with_retry_after(api_client, big_clip, s3_storage, settings):
    settings.UPLOAD_CREATE_RATE = "2/min"
    assert [create(api_client, big_clip).status_code for _ in range(2)] == [201, 201]
    refused = create(api_client, big_clip)
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert refused.json()["code"] == "throttled"
    assert UploadSession.objects.count() == 2


def test_monthly_upload_quota_refuses_direct_and_tus_uploads(api_client, big_clip, s3_storage, settings):
    settings.USER_MONTHLY_UPLOAD_GB = "0.01"  # 10 MB
    refused = create(api_client, big_clip)
    assert refused.status_code == 413 and refused.json()["code"] == "upload_quota_exceeded"
    tus = api_client.post(
        "/api/v1/uploads/",
        HTTP_TUS_RESUMABLE="1.0.0",
        HTTP_UPLOAD_LENGTH=str(len(big_clip)),
        HTTP_UPLOAD_METADATA="filename bGVjdHVyZS5tcDQ=",
    )
    assert tus.status_code == 413 and tus.json()["code"] == "upload_quota_exceeded"


def test_other_users_get_404_and_anonymous_401(api_client, other_user, big_clip, s3_storage):
    start = create(api_client, big_clip).json()
    stranger = APIClient()
    stranger.force_authenticate(other_user)
    assert stranger.get(f"{ENDPOINT}{start['id']}/").status_code == 404
    assert stranger.post(f"{ENDPOINT}{start['id']}/parts/", {"part_numbers": [1]}, format="json").status_code == 404
    assert (
        stranger.post(
            f"{ENDPOINT}{start['id']}/complete/", {"parts": [{"part_number": 1, "etag": "x"}]}, format="json"
        ).status_code
        == 404
    )
    assert stranger.delete(f"{ENDPOINT}{start['id']}/").status_code == 404
    assert APIClient().get(f"{ENDPOINT}{start['id']}/").status_code == 401
    assert APIClient().post(ENDPOINT, {}, format="json").status_code == 401
    assert UploadSession.objects.get(pk=start["id"]).status == S.CREATED


def test_local_storage_answers_400_saying_s3_is_needed(api_client, user):
    response = api_client.post(ENDPOINT, {"filename": "a.mp4", "file_size": 10}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "direct_uploads_unavailable"
    assert "STORAGE_BACKEND=b2" in response.json()["detail"]
    some_id = "6f1c7a52-3a0f-4a43-9c55-6d0f3c1e9a10"
    for method, path in (("get", ""), ("delete", ""), ("post", "parts/"), ("post", "complete/")):
        assert getattr(api_client, method)(f"{ENDPOINT}{some_id}/{path}", {}, format="json").status_code == 400


def test_cleanup_aborts_expired_and_orphaned_multipart_uploads(api_client, big_clip, s3_storage, s3_server, s3_bucket):
    old = create(api_client, big_clip).json()
    recent = create(api_client, big_clip).json()
    UploadSession.objects.filter(pk=old["id"]).update(expires_at=timezone.now() - timedelta(minutes=1))
    s3 = s3_client(s3_server)
    # Left behind without a session (a failed commit); the loopback endpoint reports every upload as
    # started in 2010, so it is past UPLOAD_EXPIRY_HOURS. Other prefixes are not the cleanup's business.
    orphan = s3.create_multipart_upload(Bucket=s3_bucket, Key="originals/orphan/lecture.mp4")["UploadId"]
    s3.create_multipart_upload(Bucket=s3_bucket, Key="videos/someone-else/part.ts")

    assert abort_stale_direct_uploads() == 2
    left = {(u["Key"], u["UploadId"]) for u in s3.list_multipart_uploads(Bucket=s3_bucket)["Uploads"]}
    recent_session = UploadSession.objects.get(pk=recent["id"])
    assert (recent["key"], recent_session.multipart_upload_id) in left
    assert ("originals/orphan/lecture.mp4", orphan) not in left
    assert any(key.startswith("videos/") for key, _ in left) and len(left) == 2
    assert UploadSession.objects.get(pk=old["id"]).status == S.EXPIRED
    assert recent_session.status == S.CREATED
    # The recent upload still works.
    parts = chunks(big_clip, recent["part_size"])
    etags = {p["part_number"]: put_part(p["url"], parts[p["part_number"]]) for p in recent["parts"]}
    assert complete(api_client, recent["id"], etags).status_code == 202


def test_cleanup_command_includes_direct_uploads(s3_storage, capsys):
    call_command("cleanup_uploads")
    assert "aborted 0 abandoned multipart uploads" in capsys.readouterr().out


def test_a_second_finalizer_leaves_a_running_finalization_alone(api_client, big_clip, s3_storage):
    start, etags = upload_all(api_client, big_clip)
    session_id = start["id"]
    response = complete(api_client, session_id, etags)
    assert response.status_code == 202, response.content
    UploadSession.objects.filter(pk=session_id).update(finalize_started_at=timezone.now() - timedelta(minutes=5))

    assert upload_session_finalize(session_id=session_id).status == S.COMPLETE
    assert not MediaFile.objects.exists(), "a finalization already under way is not started twice"

    UploadSession.objects.filter(pk=session_id).update(finalize_started_at=timezone.now() - timedelta(hours=2))
    assert upload_session_finalize(session_id=session_id).status == S.FINALIZED, "a dead finalizer's claim expires"
    assert MediaFile.objects.count() == 1


def test_a_bucket_that_stops_answering_during_finalization_is_retried_later(api_client, big_clip, s3_proxy):
    start, etags = upload_all(api_client, big_clip)
    assert complete(api_client, start["id"], etags).status_code == 202
    s3_proxy.set_mode("hang")  # accepts connections, never answers: boto3's transfer gives up
    session = upload_session_finalize(session_id=start["id"])
    assert session.status == S.COMPLETE and "will be retried" in session.error_detail
    assert session.finalize_started_at is None and not MediaFile.objects.exists()

    s3_proxy.set_mode("pass")
    session = upload_session_finalize(session_id=start["id"])
    assert session.status == S.FINALIZED and session.error == ""
    assert MediaFile.objects.get().sha256 == hashlib.sha256(big_clip).hexdigest()
