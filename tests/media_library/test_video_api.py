"""The video API: permissions, listing, editing, deleting, playback grants, retranscoding."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from media_library.models import MediaFile, Video
from tests.factories import make_job, make_media_file, make_video
from tests.media_library.hls_fixture import make_ready_video
from transcoding.models import TranscodeJob
from unpuzzle.storage import iter_objects

pytestmark = pytest.mark.django_db


def _client(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def video(settings, user, hls_source):
    settings.CDN_URL = ""
    return make_ready_video(owner=user, source=hls_source, title="Thermodynamics", description="Heat")


@pytest.fixture
def people(user, other_user, staff_user):
    return {"owner": user, "other": other_user, "staff": staff_user, "anonymous": None}


# Who gets what: the owner and staff see and change a video, another user is told it does
# not exist, an anonymous caller must authenticate.
MATRIX = {"owner": 200, "staff": 200, "other": 404, "anonymous": 401}


@pytest.mark.parametrize("who", MATRIX)
def test_retrieve_permissions(people, video, who):
    response = _client(people[who]).get(f"/api/v1/videos/{video.id}/")
    assert response.status_code == MATRIX[who]


@pytest.mark.parametrize("who", MATRIX)
def test_update_permissions(people, video, who):
    response = _client(people[who]).patch(f"/api/v1/videos/{video.id}/", {"title": f"by {who}"}, format="json")
    assert response.status_code == MATRIX[who]
    video.refresh_from_db()
    assert (video.title == f"by {who}") == (MATRIX[who] == 200)


@pytest.mark.parametrize("who", MATRIX)
def test_delete_permissions(people, video, who, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = _client(people[who]).delete(f"/api/v1/videos/{video.id}/")
    expected = 204 if MATRIX[who] == 200 else MATRIX[who]
    assert response.status_code == expected
    assert Video.objects.filter(pk=video.pk).exists() == (expected != 204)


@pytest.mark.parametrize("who", MATRIX)
def test_playback_permissions(settings, people, video, who):
    settings.VIDEO_VISIBILITY = "owner"
    response = _client(people[who]).get(f"/api/v1/videos/{video.id}/playback/")
    assert response.status_code == MATRIX[who]


def test_playback_for_any_signed_in_user_when_visibility_is_authenticated(settings, video, other_user):
    settings.VIDEO_VISIBILITY = "authenticated"
    client = _client(other_user)
    assert client.get(f"/api/v1/videos/{video.id}/playback/").status_code == 200
    # Managing the video stays with its owner and staff.
    assert client.get(f"/api/v1/videos/{video.id}/").status_code == 404
    assert _client(None).get(f"/api/v1/videos/{video.id}/playback/").status_code == 401


def test_retrieve_shows_status_progress_probe_renditions_and_poster(user, video):
    make_job(video=video, status="succeeded", progress=100, attempts=2)
    MediaFile.objects.filter(pk=video.media_file_id).update(duration=3.0, width=320, height=240, video_codec="h264")
    body = _client(user).get(f"/api/v1/videos/{video.id}/").json()
    assert body["status"] == "ready"
    assert (body["job_status"], body["progress"], body["job_attempts"]) == ("succeeded", 100, 2)
    assert body["media"]["video_codec"] == "h264" and body["media"]["width"] == 320
    assert body["renditions"][0]["name"] == "240p" and body["renditions"][0]["segment_count"] == 3
    assert body["poster_url"].startswith(f"http://testserver/api/v1/videos/{video.id}/hls/")
    assert body["poster_url"].endswith("/poster.jpg")


def test_video_json_estimates_monthly_storage_once_renditions_exist(settings, user, video):
    settings.B2_STORAGE_USD_PER_GB_MONTH = "0.006"
    MediaFile.objects.filter(pk=video.media_file_id).update(size=400_000_000)
    video.renditions.update(bytes=100_000_000)
    rendition_bytes = 100_000_000 * video.renditions.count()
    expected = (Decimal(400_000_000 + rendition_bytes) / Decimal(10**9) * Decimal("0.006")).quantize(
        Decimal("0.000001")
    )
    body = _client(user).get(f"/api/v1/videos/{video.id}/").json()
    assert body["monthly_storage_estimate_usd"] == str(expected)

    pending = make_video(owner=user, media_file=make_media_file(owner=user), status="processing")
    assert _client(user).get(f"/api/v1/videos/{pending.id}/").json()["monthly_storage_estimate_usd"] is None


def test_processing_video_shows_the_running_job(user):
    video = make_video(owner=user, media_file=make_media_file(owner=user), status="processing")
    make_job(video=video, status="running", progress=42)
    body = _client(user).get(f"/api/v1/videos/{video.id}/").json()
    assert (body["status"], body["job_status"], body["progress"], body["poster_url"]) == (
        "processing",
        "running",
        42,
        None,
    )


def test_list_is_own_videos_for_users_and_all_for_staff_with_status_filter_and_pages(user, other_user, staff_user):
    mine = [make_video(owner=user, status=status) for status in ("uploaded", "failed", "failed")]
    make_video(owner=other_user)
    client = _client(user)
    body = client.get("/api/v1/videos/").json()
    assert body["count"] == 3
    assert {item["id"] for item in body["results"]} == {str(v.id) for v in mine}
    assert client.get("/api/v1/videos/", {"status": "failed"}).json()["count"] == 2
    bad = client.get("/api/v1/videos/", {"status": "done"})
    assert bad.status_code == 400 and "uploaded" in bad.json()["status"]
    assert _client(staff_user).get("/api/v1/videos/").json()["count"] == 4
    paged = client.get("/api/v1/videos/", {"page": 2})
    assert paged.status_code == 404  # 3 videos fit the first page of 25


def test_pagination(user):
    for _ in range(26):
        make_video(owner=user)
    client = _client(user)
    first = client.get("/api/v1/videos/").json()
    assert len(first["results"]) == 25 and first["next"]
    assert len(client.get(first["next"]).json()["results"]) == 1


def test_only_title_and_description_change(user, video):
    client = _client(user)
    response = client.put(
        f"/api/v1/videos/{video.id}/",
        {
            "title": "New",
            "description": "Text",
            "status": "failed",
            "hls_master_key": "x",
            "video_url": "https://e.com",
        },
        format="json",
    )
    assert response.status_code == 200
    video.refresh_from_db()
    assert (video.title, video.description, video.status, video.video_url) == ("New", "Text", "ready", "")
    assert client.patch(f"/api/v1/videos/{video.id}/", {"title": ""}, format="json").status_code == 400


def _stored_keys(video_id, media_file_id) -> list[str]:
    return [key for key, _ in iter_objects("videos/") if str(video_id) in key] + [
        key for key, _ in iter_objects(f"originals/{media_file_id}/")
    ]


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_delete_removes_every_stored_object(
    request, settings, user, hls_source, backend, django_capture_on_commit_callbacks
):
    if backend == "s3":
        request.getfixturevalue("s3_storage")
    video = make_ready_video(owner=user, source=hls_source)
    media_file_id = video.media_file_id
    assert len(_stored_keys(video.id, media_file_id)) == 7  # master, index, 3 segments, poster, original
    make_job(video=video, status="succeeded", progress=100)

    with django_capture_on_commit_callbacks(execute=True):
        assert _client(user).delete(f"/api/v1/videos/{video.id}/").status_code == 204

    assert _stored_keys(video.id, media_file_id) == []
    assert list(iter_objects("videos/")) == [] and list(iter_objects("originals/")) == []
    assert not MediaFile.objects.filter(pk=media_file_id).exists()
    assert not TranscodeJob.objects.filter(video_id=video.id).exists()


def test_delete_keeps_an_original_another_video_uses(user, hls_source, django_capture_on_commit_callbacks):
    first = make_ready_video(owner=user, source=hls_source)
    second = make_ready_video(owner=user, source=hls_source, media_file=first.media_file)
    with django_capture_on_commit_callbacks(execute=True):
        assert _client(user).delete(f"/api/v1/videos/{first.id}/").status_code == 204
    assert MediaFile.objects.filter(pk=first.media_file_id).exists()
    assert [key for key, _ in iter_objects(f"originals/{first.media_file_id}/")]
    assert not [key for key, _ in iter_objects(f"videos/{first.id}/")]
    assert len([key for key, _ in iter_objects(f"videos/{second.id}/")]) == 6


def test_delete_cancels_the_active_job(user, django_capture_on_commit_callbacks):
    from transcoding.services.videos import video_delete

    video = make_video(owner=user, media_file=make_media_file(owner=user), status="processing")
    job = make_job(video=video, status="running")
    seen = []
    original_delete = Video.delete

    def spy(self, *args, **kwargs):
        seen.append(TranscodeJob.objects.get(pk=job.pk).status)
        return original_delete(self, *args, **kwargs)

    Video.delete = spy
    try:
        with django_capture_on_commit_callbacks(execute=True):
            video_delete(video=video, deleted_by=user)
    finally:
        Video.delete = original_delete
    assert seen == ["cancelled"]


def test_playback_grant_body_and_access_count(user, video):
    client = _client(user)
    for expected in (1, 2):
        response = client.get(f"/api/v1/videos/{video.id}/playback/")
        assert response.status_code == 200
        media_file = MediaFile.objects.get(pk=video.media_file_id)
        assert media_file.access_count == expected
        assert media_file.last_accessed_at is not None
    body = response.json()
    assert set(body) == {"mode", "hls_url", "poster_url", "expires_at", "renditions", "captions", "thumbnails_url"}
    assert body["mode"] == "local" and body["hls_url"].endswith("/master.m3u8") and body["expires_at"]
    assert body["renditions"][0]["name"] == "240p"


def test_playback_of_a_video_not_ready_is_409_with_status(user):
    video = make_video(owner=user, status="blocked", status_reason="kill switch engaged: budget")
    response = _client(user).get(f"/api/v1/videos/{video.id}/playback/")
    assert response.status_code == 409
    body = response.json()
    assert (body["code"], body["status"], body["status_reason"]) == (
        "video_not_ready",
        "blocked",
        "kill switch engaged: budget",
    )
    assert "blocked" in body["detail"]


def test_legacy_playback(user):
    video = make_video(owner=user, status="ready", video_url="https://vimeo.com/76979871", video_provider="vimeo")
    body = _client(user).get(f"/api/v1/videos/{video.id}/playback/").json()
    assert body == {
        "mode": "legacy",
        "hls_url": "https://vimeo.com/76979871",
        "poster_url": None,
        "expires_at": None,
        "renditions": [],
        "captions": [],
        "thumbnails_url": None,
    }


def test_retranscoding_a_playing_video_is_for_staff(user, staff_user, other_user, video):
    url = f"/api/v1/videos/{video.id}/retranscode/"
    assert _client(other_user).post(url).status_code == 404
    refused = _client(user).post(url)
    assert refused.status_code == 403 and "already plays" in refused.json()["detail"]
    assert _client(None).post(url).status_code == 401
    response = _client(staff_user).post(url)
    assert response.status_code == 202
    body = response.json()
    job = TranscodeJob.objects.get(video=video, status="queued")
    assert body == {"video_status": "queued", "status_reason": "", "job_id": str(job.id)}
    assert job.requested_by == staff_user
    # Idempotent while the job is active.
    assert _client(staff_user).post(url).json()["job_id"] == str(job.id)


def test_an_owner_retries_their_failed_video_through_the_api(user, other_user):
    video = make_video(owner=user, media_file=make_media_file(owner=user), status="failed", status_reason="x")
    url = f"/api/v1/videos/{video.id}/retranscode/"
    assert _client(other_user).post(url).status_code == 404
    response = _client(user).post(url)
    assert response.status_code == 202, response.content
    job = TranscodeJob.objects.get(video=video, status="queued")
    assert response.json()["job_id"] == str(job.id) and job.requested_by == user


def test_retranscode_without_an_original_is_409(staff_user, user):
    video = make_video(owner=user, status="ready", video_url="https://vimeo.com/1")
    assert _client(staff_user).post(f"/api/v1/videos/{video.id}/retranscode/").status_code == 409


def test_openapi_schema_has_no_warnings(tmp_path):
    out = io.StringIO()
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"), stdout=out, stderr=out
    )
    schema = (tmp_path / "schema.yml").read_text()
    assert "/api/v1/videos/{id}/playback/:" in schema
    assert "/api/v1/videos/{id}/retranscode/:" in schema
    assert "/hls/" not in schema


def test_list_queries_do_not_grow_with_the_number_of_videos(user, hls_source):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def list_with(count: int) -> int:
        while Video.objects.filter(owner=user).count() < count:
            video = make_ready_video(owner=user, source=hls_source)
            make_job(video=video, status="succeeded", progress=100)
        client = _client(type(user).objects.get(pk=user.pk))  # a fresh user: no cached permissions
        with CaptureQueriesContext(connection) as queries:
            body = client.get("/api/v1/videos/").json()
        assert body["count"] == count
        assert all(item["renditions"] and item["progress"] == 100 for item in body["results"])
        return len(queries)

    assert list_with(2) == list_with(6) <= 6


def test_instructors_see_only_their_own_videos_through_the_api(user, video):
    from tests.factories import make_instructor

    instructor = make_instructor()
    own = make_video(owner=instructor, media_file=make_media_file(owner=instructor))
    client = _client(instructor)
    assert client.get(f"/api/v1/videos/{video.id}/").status_code == 404
    assert client.get(f"/api/v1/videos/{video.id}/playback/").status_code == 404
    assert [item["id"] for item in client.get("/api/v1/videos/").json()["results"]] == [str(own.id)]
    Video.objects.filter(pk=own.pk).update(status="ready", hls_master_key=f"videos/{own.id}/hls/1/master.m3u8")
    refused = client.post(f"/api/v1/videos/{own.id}/retranscode/")
    assert refused.status_code == 403 and "spends budget" in refused.json()["detail"]


@pytest.mark.parametrize("method", ["put", "patch"])
def test_an_owner_cannot_point_their_video_at_another_users_objects(user, other_user, method):
    """Every reference a video body could carry is read-only: the original, the owner, the renditions,
    the storage keys behind the poster, the HLS master and the captions."""
    mine = make_video(owner=user, media_file=make_media_file(owner=user), title="Mine")
    theirs = make_video(owner=other_user, media_file=make_media_file(owner=other_user), title="Theirs")
    theirs.renditions.create(name="240p", width=426, height=240, bandwidth=1, playlist_key="k")
    prefix = f"videos/{theirs.id}/hls/1/"
    body = {
        "title": "Renamed",
        "owner": other_user.get_username(),
        "owner_id": other_user.pk,
        "media": {"id": str(theirs.media_file_id)},
        "media_file": str(theirs.media_file_id),
        "media_file_id": str(theirs.media_file_id),
        "renditions": [{"name": "240p", "playlist_key": "k"}],
        "hls_master_key": f"{prefix}master.m3u8",
        "poster_key": f"{prefix}poster.jpg",
        "poster_url": f"https://cdn.example.com/{prefix}poster.jpg",
        "captions_key": f"videos/{theirs.id}/captions/en.vtt",
    }
    response = getattr(_client(user), method)(f"/api/v1/videos/{mine.id}/", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["media"]["id"] == str(mine.media_file_id) and response.json()["renditions"] == []
    fresh = Video.objects.get(pk=mine.pk)
    assert fresh.title == "Renamed"
    assert (fresh.owner_id, fresh.media_file_id, fresh.hls_master_key, fresh.poster_key, fresh.captions_key) == (
        user.pk,
        mine.media_file_id,
        "",
        "",
        "",
    )
    assert not fresh.renditions.exists()
