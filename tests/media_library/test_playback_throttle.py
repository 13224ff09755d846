"""Playback grants are rate-limited per user: the API and the player page share one budget."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from media_library.models import MediaFile, Video
from tests.factories import make_media_file, make_video

pytestmark = pytest.mark.django_db


@pytest.fixture
def video(settings, user) -> Video:
    """A ready video whose HLS output is only named: handing out its URLs reads no storage."""
    settings.CDN_URL = ""
    video_id = uuid.uuid4()
    return make_video(
        id=video_id,
        owner=user,
        media_file=make_media_file(owner=user),
        status=Video.Status.READY,
        hls_master_key=f"videos/{video_id}/hls/1/master.m3u8",
    )


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_grants_beyond_the_rate_get_429_with_retry_after(settings, user, video):
    settings.PLAYBACK_GRANT_RATE = "5/min"
    client = _client(user)
    answers = [client.get(f"/api/v1/videos/{video.id}/playback/") for _ in range(8)]

    assert [a.status_code for a in answers] == [200] * 5 + [429] * 3
    refused = answers[-1]
    assert 0 < int(refused["Retry-After"]) <= 60
    body = refused.json()
    assert body["code"] == "throttled"
    assert f"{refused['Retry-After']} second" in body["detail"]
    # Refused requests hand out nothing and count no play.
    assert MediaFile.objects.get(pk=video.media_file_id).access_count == 5


def test_the_budget_is_per_user(settings, user, staff_user, video):
    settings.PLAYBACK_GRANT_RATE = "2/min"
    owner = _client(user)
    assert [owner.get(f"/api/v1/videos/{video.id}/playback/").status_code for _ in range(3)] == [200, 200, 429]
    # Staff are throttled like everyone else, on a budget of their own.
    staff = _client(staff_user)
    assert [staff.get(f"/api/v1/videos/{video.id}/playback/").status_code for _ in range(3)] == [200, 200, 429]


def test_the_player_page_spends_the_same_budget(client, settings, user, video):
    settings.PLAYBACK_GRANT_RATE = "2/min"
    client.force_login(user)
    assert client.get(f"/videos/{video.id}/").status_code == 200
    api = _client(user)
    assert api.get(f"/api/v1/videos/{video.id}/playback/").status_code == 200

    page = client.get(f"/videos/{video.id}/")
    assert page.status_code == 429 and int(page["Retry-After"]) > 0
    assert "Too many playback requests" in page.content.decode()
    assert api.get(f"/api/v1/videos/{video.id}/playback/").status_code == 429


def test_other_video_endpoints_are_not_throttled_by_the_grant_rate(settings, user, video):
    settings.PLAYBACK_GRANT_RATE = "1/min"
    client = _client(user)
    assert client.get(f"/api/v1/videos/{video.id}/playback/").status_code == 200
    assert [client.get(f"/api/v1/videos/{video.id}/").status_code for _ in range(5)] == [200] * 5


def test_an_empty_rate_switches_the_throttle_off(settings, user, video):
    settings.PLAYBACK_GRANT_RATE = ""
    client = _client(user)
    assert {client.get(f"/api/v1/videos/{video.id}/playback/").status_code for _ in range(30)} == {200}


@pytest.mark.django_db(transaction=True)
def test_parallel_grants_of_one_user_are_counted_one_after_another(settings, live_server, user, video):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import requests
    from rest_framework.authtoken.models import Token

    settings.PLAYBACK_GRANT_RATE = "10/hour"
    headers = {"Authorization": f"Token {Token.objects.create(user=user).key}"}
    url = f"{live_server.url}/api/v1/videos/{video.id}/playback/"
    start = threading.Barrier(8)

    def burst(_: int) -> list[int]:
        http = requests.Session()
        start.wait()
        return [http.get(url, headers=headers, timeout=30).status_code for _ in range(6)]

    with ThreadPoolExecutor(8) as pool:
        statuses = [status for result in pool.map(burst, range(8)) for status in result]
    assert statuses.count(200) == 10 and statuses.count(429) == 38, sorted(statuses)
