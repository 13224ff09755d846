"""Instructor scope in the admin, the groups command, the upload page and the video pages (test client)."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from media_library.models import PreviousHlsOutput, Rendition, Video
from tests.factories import (
    make_cost_entry,
    make_instructor,
    make_job,
    make_media_file,
    make_superuser,
    make_upload_session,
    make_video,
)
from transcoding.models import BudgetPolicy, CostAlert, TranscodeJob
from unpuzzle.groups import FINANCE, INSTRUCTORS
from uploads.models import UploadSession

pytestmark = pytest.mark.django_db


@pytest.fixture
def groups():
    call_command("setup_groups", stdout=open("/dev/null", "w"))
    return {name: Group.objects.get(name=name) for name in (INSTRUCTORS, FINANCE)}


def _instructor(groups, username):
    user = make_instructor(username=username)
    user.groups.add(groups[INSTRUCTORS])
    return user


@pytest.fixture
def two_instructors(groups):
    alice, bob = _instructor(groups, "alice"), _instructor(groups, "bob")
    rows = {}
    for user, title in ((alice, "Alice thermodynamics"), (bob, "Bob secret lecture")):
        media = make_media_file(owner=user, original_filename=f"{user.username}.mp4")
        video = make_video(owner=user, media_file=media, title=title)
        make_upload_session(owner=user, filename=f"{user.username}-upload.mp4", length=10)
        job = make_job(video=video, status="failed", error=f"{user.username} failure", log_tail="frame=1\nerror line")
        rows[user.username] = {"user": user, "video": video, "media": media, "job": job}
    return rows


def test_setup_groups_is_idempotent_and_sets_the_permissions(groups):
    call_command("setup_groups", stdout=open("/dev/null", "w"))
    assert Group.objects.filter(name=INSTRUCTORS).count() == 1
    instructor = {
        f"{p.content_type.app_label}.{p.codename}"
        for p in groups[INSTRUCTORS].permissions.select_related("content_type")
    }
    assert {"media_library.change_video", "uploads.add_uploadsession", "transcoding.view_transcodejob"} <= instructor
    assert not any("cost" in p or "budget" in p for p in instructor)
    assert "media_library.view_all_videos" not in instructor
    finance = {p.codename for p in groups[FINANCE].permissions.all()}
    assert {"view_costs", "manage_budget"} <= finance


@pytest.mark.parametrize(
    ("url_name", "mine", "theirs"),
    [
        ("admin:media_library_video_changelist", "Alice thermodynamics", "Bob secret lecture"),
        ("admin:media_library_mediafile_changelist", "alice.mp4", "bob.mp4"),
        ("admin:uploads_uploadsession_changelist", "alice-upload.mp4", "bob-upload.mp4"),
        ("admin:transcoding_transcodejob_changelist", "Alice thermodynamics", "Bob secret lecture"),
    ],
)
def test_instructor_lists_only_their_own_rows(client, two_instructors, url_name, mine, theirs):
    client.force_login(two_instructors["alice"]["user"])
    page = client.get(reverse(url_name)).content.decode()
    assert mine in page and theirs not in page
    # No owner filter listing other accounts for a scoped user.
    assert "?owner=" not in page
    # Nothing of the costs side: the budget policy needs its own permission, even to add the first one.
    assert client.get(reverse("admin:transcoding_budgetpolicy_add")).status_code == 403


def test_instructor_cannot_open_or_act_on_another_instructors_video(client, two_instructors):
    client.force_login(two_instructors["alice"]["user"])
    bob_video = two_instructors["bob"]["video"]
    response = client.get(reverse("admin:media_library_video_change", args=[bob_video.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("admin:index")
    assert "doesn’t exist" in response.content.decode() and "Bob secret lecture" not in response.content.decode()
    url = reverse("admin:media_library_video_transcode", args=[bob_video.pk, "retry"])
    assert client.post(url).status_code == 404
    job_url = reverse("admin:transcoding_transcodejob_change", args=[two_instructors["bob"]["job"].pk])
    assert client.get(job_url).status_code == 302
    assert TranscodeJob.objects.filter(video=bob_video).count() == 1


def test_superuser_and_view_all_permission_see_everything(client, two_instructors):
    viewer = make_instructor(username="carol")
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_all_videos"), Permission.objects.get(codename="view_video")
    )
    for user in (make_superuser(), viewer):
        client.force_login(user)
        page = client.get(reverse("admin:media_library_video_changelist")).content.decode()
        assert "Alice thermodynamics" in page and "Bob secret lecture" in page
        assert "?owner=" in page


def test_change_page_buttons_job_history_and_retry(client, two_instructors):
    alice = two_instructors["alice"]
    alice["video"].status = Video.Status.FAILED
    alice["video"].save(update_fields=["status"])
    client.force_login(alice["user"])
    change_url = reverse("admin:media_library_video_change", args=[alice["video"].pk])
    page = client.get(change_url).content.decode()
    assert "Retry transcoding" in page and "Re-transcode" in page
    assert "Job history" in page and "alice failure" in page
    # ffmpeg's log is for staff; the owner reads why the job ended.
    assert "<details" not in page and "error line" not in page
    response = client.post(
        reverse("admin:media_library_video_transcode", args=[alice["video"].pk, "retry"]), follow=True
    )
    assert "Queued 1 video(s) for transcoding." in response.content.decode()
    assert TranscodeJob.objects.filter(video=alice["video"], status="queued").exists()
    assert (
        client.get(reverse("admin:media_library_video_transcode", args=[alice["video"].pk, "retry"])).status_code == 405
    )


def test_video_list_shows_badges_size_renditions_and_poll_urls(client, two_instructors):
    client.force_login(two_instructors["alice"]["user"])
    video = two_instructors["alice"]["video"]
    page = client.get(reverse("admin:media_library_video_changelist")).content.decode()
    assert f'data-poll-url="{reverse("video-detail", args=[video.pk])}"' in page
    assert "video-status video-status-uploaded" in page
    assert "media_library/admin/video_status.js" in page
    assert reverse("admin:media_library_video_upload") in page


def test_upload_page_renders_the_server_limits_for_instructors_only(client, settings, two_instructors):
    settings.MAX_VIDEO_SIZE_MB = 7
    settings.ALLOWED_VIDEO_FORMATS = ["mp4", "webm"]
    client.force_login(two_instructors["alice"]["user"])
    assert reverse("admin:media_library_video_upload") in client.get(reverse("admin:index")).content.decode()
    response = client.get(reverse("admin:media_library_video_upload"))
    assert response.status_code == 200
    page = response.content.decode()
    config = json.loads(
        page.split('<script id="upload-config" type="application/json">', 1)[1].split("</script>", 1)[0]
    )
    assert config["maxBytes"] == 7 * 1024 * 1024 and config["allowedFormats"] == ["mp4", "webm"]
    assert config["endpoint"] == "/api/v1/uploads/" and config["csrfToken"]
    assert "uploads/vendor/tus-js-client/4.3.1/tus.min.js" in page
    client.force_login(make_instructor())
    assert client.get(reverse("admin:media_library_video_upload")).status_code == 403


def test_instructors_read_job_errors_without_server_details_and_staff_read_them_whole(client, two_instructors):
    alice = two_instructors["alice"]["user"]
    raw = "OSError: [Errno 28] No space left on device: '/var/lib/unpuzzle/transcode/unpuzzle-transcode-1/a.ts'"
    job = make_job(
        owner=alice, status=TranscodeJob.Status.FAILED, error=raw, log_tail="ffmpeg -i /var/lib/x/source.mp4"
    )
    url = reverse("admin:transcoding_transcodejob_change", args=[job.pk])
    client.force_login(alice)
    page = client.get(url).content.decode()
    assert "No space left on device: &#x27;&lt;server file&gt;&#x27;" in page
    assert "/var/lib" not in page
    client.force_login(make_superuser())
    page = client.get(url).content.decode()
    assert "/var/lib/unpuzzle/transcode/unpuzzle-transcode-1/a.ts" in page and "/var/lib/x/source.mp4" in page


def test_instructors_retry_their_failed_videos_in_the_admin_but_do_not_re_transcode_playing_ones(
    client, two_instructors
):
    alice = two_instructors["alice"]["user"]
    failed = two_instructors["alice"]["video"]
    Video.objects.filter(pk=failed.pk).update(status="failed")
    TranscodeJob.objects.filter(video=failed).update(status="failed")
    playing = make_video(
        owner=alice,
        media_file=make_media_file(owner=alice, original_filename="b.mp4"),
        status="ready",
        hls_master_key="videos/x/hls/1/master.m3u8",
    )
    client.force_login(alice)
    changelist = reverse("admin:media_library_video_changelist")
    response = client.post(
        changelist, {"action": "retranscode", "_selected_action": [str(failed.pk), str(playing.pk)]}, follow=True
    )
    page = response.content.decode()
    assert "Queued 1 video(s) for transcoding." in page
    assert "already plays" in page and "only staff who manage all videos" in page
    assert TranscodeJob.objects.filter(video=failed, status="queued").exists()
    assert not TranscodeJob.objects.filter(video=playing).exists()


def test_instructors_delete_their_own_videos_in_the_admin_through_the_service(
    client, two_instructors, tmp_path, django_capture_on_commit_callbacks
):
    from tests.factories import make_cost_entry
    from transcoding.models import CostLogEntry
    from unpuzzle import storage

    alice = two_instructors["alice"]["user"]
    video = two_instructors["alice"]["video"]
    video.renditions.create(name="240p", width=426, height=240, bandwidth=1, codecs="x")
    master = tmp_path / "master.m3u8"
    master.write_bytes(b"#EXTM3U\n")
    storage.save_file(f"videos/{video.id}/hls/1/master.m3u8", master)
    entry = make_cost_entry(video=video, owner=alice)
    client.force_login(alice)
    url = reverse("admin:media_library_video_delete", args=[video.pk])
    confirm = client.get(url).content.decode()
    assert "Cannot delete video" not in confirm and "permission to delete" not in confirm
    with django_capture_on_commit_callbacks(execute=True):  # objects go after commit
        assert client.post(url, {"post": "yes"}).status_code == 302
    assert not Video.objects.filter(pk=video.pk).exists()
    assert not storage.object_exists(f"videos/{video.id}/hls/1/master.m3u8")
    assert CostLogEntry.objects.get(pk=entry.pk).video_id is None, "cost history is kept"

    # "Delete selected" too, and only the instructor's own rows.
    mine = make_video(owner=alice, media_file=make_media_file(owner=alice, original_filename="c.mp4"))
    theirs = two_instructors["bob"]["video"]
    changelist = reverse("admin:media_library_video_changelist")
    response = client.post(
        changelist, {"action": "delete_selected", "_selected_action": [str(mine.pk), str(theirs.pk)], "post": "yes"}
    )
    assert response.status_code == 302
    assert not Video.objects.filter(pk=mine.pk).exists() and Video.objects.filter(pk=theirs.pk).exists()


# --- Every field that references another object: scoped, read-only or absent ---------------

# The change form's inline formsets (renditions, job history), both read-only and empty here.
INLINES = {
    "renditions-TOTAL_FORMS": 0,
    "renditions-INITIAL_FORMS": 0,
    "caption_tracks-TOTAL_FORMS": 0,
    "caption_tracks-INITIAL_FORMS": 0,
    "jobs-TOTAL_FORMS": 0,
    "jobs-INITIAL_FORMS": 0,
}
# A video's references and raw storage keys: set by uploads and the pipeline, never typed in.
VIDEO_REFERENCES = ("owner", "media_file", "hls_master_key", "poster_key", "captions_key")


def _video_post(video, **fields):
    """The change form as the browser sends it for ``video``, with ``fields`` on top."""
    data = {
        "owner": video.owner_id,
        "title": video.title,
        "description": video.description,
        "captions_language": video.captions_language,
        "video_url": video.video_url,
        "video_provider": video.video_provider,
        **INLINES,
    }
    data.update(fields)
    return data


def _foreign_video_values(bob_video, bob_media, bob):
    prefix = f"videos/{bob_video.id}/hls/1/"
    return {
        "owner": bob.pk,
        "media_file": bob_media.pk,
        "hls_master_key": f"{prefix}master.m3u8",
        "poster_key": f"{prefix}poster.jpg",
        "captions_key": f"videos/{bob_video.id}/captions/en.vtt",
    }


def _references(video) -> dict:
    return {
        "owner": video.owner_id,
        "media_file": video.media_file_id,
        "hls_master_key": video.hls_master_key,
        "poster_key": video.poster_key,
        "captions_key": video.captions_key,
    }


def test_instructors_add_video_button_and_add_page_lead_to_the_upload_page(client, two_instructors):
    alice, bob = two_instructors["alice"], two_instructors["bob"]
    client.force_login(alice["user"])
    add_url = reverse("admin:media_library_video_add")
    upload_url = reverse("admin:media_library_video_upload")
    response = client.get(add_url)
    assert response.status_code == 302 and response["Location"] == upload_url
    # The reported way in: a raw add form pointed at another instructor's original.
    before = set(Video.objects.values_list("pk", flat=True))
    response = client.post(add_url, {"title": "Not mine", "media_file": bob["media"].pk, "owner": alice["user"].pk})
    assert response.status_code == 302 and response["Location"] == upload_url
    assert set(Video.objects.values_list("pk", flat=True)) == before
    assert not Video.objects.filter(media_file=bob["media"]).exclude(owner=bob["user"]).exists()


def test_instructor_cannot_point_their_video_at_another_instructors_objects(client, two_instructors):
    alice, bob = two_instructors["alice"], two_instructors["bob"]
    video = alice["video"]
    before = _references(video)
    client.force_login(alice["user"])
    url = reverse("admin:media_library_video_change", args=[video.pk])
    page = client.get(url).content.decode()
    for name in VIDEO_REFERENCES:
        assert f'name="{name}"' not in page, f"{name} is editable"
    foreign = _foreign_video_values(bob["video"], bob["media"], bob["user"])
    response = client.post(url, _video_post(video, title="Renamed", **foreign))
    assert response.status_code == 302, response.content.decode()[:2000]
    video.refresh_from_db()
    assert video.title == "Renamed", "the editable fields still save"
    assert _references(video) == before


def test_staff_cannot_change_a_videos_owner_original_or_storage_keys_either(client, two_instructors):
    alice, bob = two_instructors["alice"], two_instructors["bob"]
    video = alice["video"]
    before = _references(video)
    client.force_login(make_superuser())
    url = reverse("admin:media_library_video_change", args=[video.pk])
    page = client.get(url).content.decode()
    for name in VIDEO_REFERENCES:
        assert f'name="{name}"' not in page, f"{name} is editable"
    # The original is still shown, as a link to its page.
    assert reverse("admin:media_library_mediafile_change", args=[alice["media"].pk]) in page
    response = client.post(url, _video_post(video, **_foreign_video_values(bob["video"], bob["media"], bob["user"])))
    assert response.status_code == 302
    video.refresh_from_db()
    assert _references(video) == before


def test_a_queued_videos_original_cannot_be_cleared_so_its_job_stays_runnable(client, two_instructors):
    video = two_instructors["alice"]["video"]
    Video.objects.filter(pk=video.pk).update(status=Video.Status.QUEUED)
    job = make_job(video=video, status=TranscodeJob.Status.QUEUED)
    video.refresh_from_db()
    client.force_login(make_superuser())
    response = client.post(
        reverse("admin:media_library_video_change", args=[video.pk]), _video_post(video, media_file="")
    )
    assert response.status_code == 302
    video.refresh_from_db()
    assert video.media_file_id == two_instructors["alice"]["media"].pk
    job.refresh_from_db()
    assert job.status == TranscodeJob.Status.QUEUED and video.status == Video.Status.QUEUED


def test_staff_add_legacy_provider_videos_only_without_an_original_or_storage_keys(client, two_instructors):
    bob = two_instructors["bob"]
    client.force_login(make_superuser())
    add_url = reverse("admin:media_library_video_add")
    page = client.get(add_url).content.decode()
    for name in ("media_file", "hls_master_key", "poster_key", "captions_key"):
        assert f'name="{name}"' not in page, f"{name} is on the add form"
    assert 'name="video_url"' in page and 'name="owner"' in page
    assert reverse("admin:media_library_video_upload") in page, "the add form points to the upload page"

    base = {"title": "Legacy lecture", "description": "", "owner": bob["user"].pk, **INLINES}
    missing_url = client.post(add_url, {**base, "video_provider": "vimeo"})
    assert missing_url.status_code == 200
    assert "video_url" in missing_url.context["adminform"].form.errors
    assert "Upload videos" in str(missing_url.context["adminform"].form.errors["video_url"])
    no_provider = client.post(add_url, {**base, "video_url": "https://vimeo.com/1", "video_provider": ""})
    assert "video_provider" in no_provider.context["adminform"].form.errors

    response = client.post(
        add_url,
        {
            **base,
            "video_url": "https://vimeo.com/1",
            "video_provider": "vimeo",
            "media_file": two_instructors["alice"]["media"].pk,
            "captions_key": "videos/x/captions/en.vtt",
        },
    )
    assert response.status_code == 302
    added = Video.objects.get(title="Legacy lecture")
    assert (added.owner, added.media_file_id, added.captions_key) == (bob["user"], None, "")


def _reference_rows(rows):
    """(app, model, row, field, another user's object) for each admin page of a row that references others."""
    alice, bob = rows["alice"], rows["bob"]
    rendition = Rendition.objects.create(
        video=alice["video"], name="240p", width=426, height=240, bandwidth=1, playlist_key="k"
    )
    previous = PreviousHlsOutput.objects.create(
        video=alice["video"], master_key=f"videos/{alice['video'].id}/hls/1/master.m3u8", superseded_at=timezone.now()
    )
    upload = UploadSession.objects.get(owner=alice["user"])
    entry = make_cost_entry(video=alice["video"], job=alice["job"], owner=alice["user"])
    policy = BudgetPolicy.objects.create(kill_switch_by=alice["user"])
    alert = CostAlert.objects.create(kind="budget", period="2026-01", subject="s", actor=alice["user"])
    return [
        ("media_library", "mediafile", alice["media"], "owner", bob["user"]),
        ("media_library", "rendition", rendition, "video", bob["video"]),
        ("media_library", "previoushlsoutput", previous, "video", bob["video"]),
        ("uploads", "uploadsession", upload, "owner", bob["user"]),
        ("uploads", "uploadsession", upload, "media_file", bob["media"]),
        ("uploads", "uploadsession", upload, "video", bob["video"]),
        ("transcoding", "transcodejob", alice["job"], "video", bob["video"]),
        ("transcoding", "transcodejob", alice["job"], "requested_by", bob["user"]),
        ("transcoding", "costlogentry", entry, "video", bob["video"]),
        ("transcoding", "costlogentry", entry, "job", bob["job"]),
        ("transcoding", "costlogentry", entry, "owner", bob["user"]),
        ("transcoding", "budgetpolicy", policy, "kill_switch_by", bob["user"]),
        ("transcoding", "costalert", alert, "actor", bob["user"]),
        ("transcoding", "costalert", alert, "acknowledged_by", bob["user"]),
    ]


@pytest.mark.parametrize("who", ["instructor", "superuser"])
def test_no_admin_page_lets_a_row_point_at_another_users_object(client, two_instructors, who):
    client.force_login(two_instructors["alice"]["user"] if who == "instructor" else make_superuser())
    for app, model, row, field, foreign in _reference_rows(two_instructors):
        url = reverse(f"admin:{app}_{model}_change", args=[row.pk])
        before = getattr(row, f"{field}_id")
        response = client.get(url)
        assert response.status_code in (200, 302, 403), (model, field, response.status_code)
        assert f'name="{field}"' not in response.content.decode(), f"{model}.{field} is editable"
        response = client.post(url, {field: foreign.pk})
        assert response.status_code in (200, 302, 403), (model, field, response.status_code)
        row.refresh_from_db()
        assert getattr(row, f"{field}_id") == before, f"{model}.{field} was changed to another user's object"


@pytest.mark.parametrize(
    ("app", "model"),
    [
        ("media_library", "mediafile"),
        ("media_library", "rendition"),
        ("media_library", "previoushlsoutput"),
        ("uploads", "uploadsession"),
        ("transcoding", "transcodejob"),
        ("transcoding", "costlogentry"),
        ("transcoding", "costalert"),
    ],
)
def test_rows_made_by_uploads_and_the_pipeline_have_no_add_form(client, two_instructors, app, model):
    """Originals, upload sessions, renditions, jobs and cost rows come from the upload protocols and the
    pipeline; a hand-made one would point at objects it does not own (or at nothing)."""
    for user in (two_instructors["alice"]["user"], make_superuser()):
        client.force_login(user)
        assert client.get(reverse(f"admin:{app}_{model}_add")).status_code == 403, (model, user)
        changelist = client.get(reverse(f"admin:{app}_{model}_changelist"))
        assert reverse(f"admin:{app}_{model}_add") not in changelist.content.decode()
        index = client.get(reverse("admin:index")).content.decode()
        assert reverse(f"admin:{app}_{model}_add") not in index


def test_instructors_actions_skip_another_instructors_rows(client, two_instructors):
    alice, bob = two_instructors["alice"], two_instructors["bob"]
    Video.objects.filter(pk=bob["video"].pk).update(status=Video.Status.FAILED)
    running = make_job(video=bob["video"], status=TranscodeJob.Status.RUNNING)
    client.force_login(alice["user"])
    changelist = reverse("admin:media_library_video_changelist")
    for action in ("retry_transcode", "retranscode", "cancel_transcode"):
        client.post(changelist, {"action": action, "_selected_action": [str(bob["video"].pk)]})
    client.post(
        reverse("admin:transcoding_transcodejob_changelist"),
        {"action": "cancel", "_selected_action": [str(running.pk)]},
    )
    running.refresh_from_db()
    assert running.status == TranscodeJob.Status.RUNNING
    assert TranscodeJob.objects.filter(video=bob["video"]).count() == 2
    assert Video.objects.get(pk=bob["video"].pk).status == Video.Status.FAILED
