"""The player page and the player on the admin's Video change page."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from media_library.models import MediaFile, Video
from tests.factories import make_video
from tests.media_library.hls_fixture import make_ready_video
from unpuzzle.storage import iter_objects

pytestmark = pytest.mark.django_db

HLS_JS = "media_library/vendor/hls.js/1.7.4/hls.min.js"


@pytest.fixture
def video(settings, user, hls_source):
    settings.CDN_URL = ""
    return make_ready_video(owner=user, source=hls_source, title="Entropy")


@pytest.mark.parametrize(
    ("who", "visibility", "expected"),
    [
        ("owner", "owner", 200),
        ("staff", "owner", 200),
        ("other", "owner", 404),
        ("other", "authenticated", 200),
    ],
)
def test_player_page_permissions(client, settings, video, user, other_user, staff_user, who, visibility, expected):
    settings.VIDEO_VISIBILITY = visibility
    client.force_login({"owner": user, "other": other_user, "staff": staff_user}[who])
    response = client.get(f"/videos/{video.id}/")
    assert response.status_code == expected


def test_anonymous_visitors_are_sent_to_sign_in(client, video):
    response = client.get(f"/videos/{video.id}/")
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/videos/{video.id}/"
    assert client.get(response["Location"]).status_code == 200


def test_player_page_has_hls_js_native_fallback_poster_and_quality_menu(client, video, user):
    client.force_login(user)
    page = client.get(f"/videos/{video.id}/").content.decode()
    assert f"/static/{HLS_JS}" in page
    assert finders.find(HLS_JS) and finders.find("media_library/vendor/hls.js/1.7.4/LICENSE")
    assert 'canPlayType("application/vnd.apple.mpegurl")' in page
    assert f'id="quality-{video.id}"' in page and "hls.levels" in page
    assert f"/api/v1/videos/{video.id}/hls/" in page and "poster.jpg" in page
    assert MediaFile.objects.get(pk=video.media_file_id).access_count == 1


def test_player_page_of_a_video_not_ready_says_so(client, user):
    video = make_video(owner=user, status="processing")
    client.force_login(user)
    response = client.get(f"/videos/{video.id}/")
    assert response.status_code == 200
    assert b"not ready" in response.content and b"hls.min.js" not in response.content


def test_admin_change_page_embeds_the_player_for_ready_videos(client, admin_user, video, user):
    client.force_login(admin_user)
    page = client.get(reverse("admin:media_library_video_change", args=[video.pk])).content.decode()
    assert HLS_JS in page and f'id="player-{video.id}"' in page
    waiting = make_video(owner=user, status="queued")
    page = client.get(reverse("admin:media_library_video_change", args=[waiting.pk])).content.decode()
    assert HLS_JS not in page


def test_admin_delete_removes_stored_objects(client, admin_user, video, django_capture_on_commit_callbacks):
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:media_library_video_delete", args=[video.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Video.objects.filter(pk=video.pk).exists()
    assert list(iter_objects("videos/")) == [] and list(iter_objects("originals/")) == []


def test_admin_bulk_delete_action_uses_the_service(
    client, admin_user, user, hls_source, django_capture_on_commit_callbacks
):
    videos = [make_ready_video(owner=user, source=hls_source) for _ in range(2)]
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:media_library_video_changelist"),
            {"action": "delete_selected", "_selected_action": [str(v.pk) for v in videos], "post": "yes"},
        )
    assert response.status_code == 302
    assert not Video.objects.exists() and not MediaFile.objects.exists()
    assert list(iter_objects("videos/")) == []
