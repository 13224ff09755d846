"""Every model has a working admin: list, search, filters, change page."""

from __future__ import annotations

from datetime import date

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from media_library.models import PreviousHlsOutput, Rendition
from tests.factories import make_cost_entry, make_job, make_media_file, make_upload_session, make_video
from transcoding.models import BudgetPolicy

pytestmark = pytest.mark.django_db


@pytest.fixture
def populated(user):
    media = make_media_file(owner=user)
    video = make_video(owner=user, media_file=media, title="Thermodynamics 101")
    rendition = Rendition.objects.create(
        video=video, name="480p", width=854, height=480, bandwidth=900_000, playlist_key="k"
    )
    upload = make_upload_session(owner=user, filename="thermo.mp4", length=10)
    job = make_job(video=video)
    entry = make_cost_entry(
        date=date.today(), kind="transcode", quantity=1, unit="minute", unit_price="0.005", amount="0.005", video=video
    )
    policy = BudgetPolicy.objects.create()
    previous = PreviousHlsOutput.objects.create(
        video=video, master_key=f"videos/{video.id}/hls/1/master.m3u8", superseded_at=job.created_at
    )
    return {
        "mediafile": media,
        "video": video,
        "rendition": rendition,
        "uploadsession": upload,
        "transcodejob": job,
        "costlogentry": entry,
        "budgetpolicy": policy,
        "previoushlsoutput": previous,
    }


MODELS = [
    ("media_library", "mediafile"),
    ("media_library", "video"),
    ("media_library", "rendition"),
    ("uploads", "uploadsession"),
    ("transcoding", "transcodejob"),
    ("transcoding", "costlogentry"),
    ("transcoding", "budgetpolicy"),
    ("media_library", "previoushlsoutput"),
]


# Bookkeeping rows nobody reads or edits: the delivery estimator's per-file counter base.
NO_ADMIN = {"DeliveryTally"}


def test_every_model_of_the_project_has_an_admin():
    ours = [m for m in apps.get_models() if m._meta.app_label in ("media_library", "uploads", "transcoding")]
    missing = [m.__name__ for m in ours if m not in admin.site._registry and m.__name__ not in NO_ADMIN]
    assert ours and missing == []


@pytest.mark.parametrize(("app", "model"), MODELS)
def test_changelist_search_and_change_page(client, admin_user, populated, app, model):
    client.force_login(admin_user)
    changelist = reverse(f"admin:{app}_{model}_changelist")
    assert client.get(changelist).status_code == 200
    assert client.get(changelist, {"q": "thermo"}).status_code == 200
    obj = populated[model]
    assert client.get(reverse(f"admin:{app}_{model}_change", args=[obj.pk])).status_code == 200


def test_video_list_filters_by_status(client, admin_user, populated):
    client.force_login(admin_user)
    response = client.get(reverse("admin:media_library_video_changelist"), {"status__exact": "uploaded"})
    assert b"Thermodynamics 101" in response.content
    response = client.get(reverse("admin:media_library_video_changelist"), {"status__exact": "ready"})
    assert b"Thermodynamics 101" not in response.content


def test_admin_login_page_answers(client):
    assert client.get("/admin/login/").status_code == 200


def test_replaced_outputs_show_when_they_go(populated, settings):
    from datetime import timedelta

    settings.HLS_PREVIOUS_OUTPUT_GRACE_S = 3600
    previous = populated["previoushlsoutput"]
    model_admin = admin.site._registry[PreviousHlsOutput]
    assert model_admin.deleted_from(previous) == previous.superseded_at + timedelta(hours=1)
