"""A duplicate (the same original uploaded again) plays the output of the video it was uploaded again
from, in every delivery mode; deleting or re-transcoding either never breaks the other's playback."""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import unquote, urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from media_library.models import PreviousHlsOutput, Video
from media_library.selectors import video_playback
from tests.factories import make_stored_video
from tests.hls_player import follow_playlists
from tests.media_library.hls_fixture import make_ready_video
from transcoding.costs.ledger import cost_snapshot_storage
from transcoding.models import CostLogEntry, TranscodeJob
from transcoding.services.jobs import transcode_enqueue
from transcoding.services.maintenance import transcode_previous_outputs_sweep
from transcoding.services.pipeline import transcode_run
from transcoding.services.videos import duplicate_video_create, video_delete
from unpuzzle import storage

pytestmark = pytest.mark.django_db(transaction=True)

CDN = "https://unpuzzle-test.b-cdn.net"


@pytest.fixture(autouse=True)
def small_ladder(settings):
    """Two tiny tiers and 2 s segments keep every transcode to a second or two."""
    settings.HLS_LADDER = "120p:200k,180p:400k"
    settings.HLS_SEGMENT_SECONDS = 2
    settings.HLS_AUDIO_BITRATE = "64k"


def keys_under(prefix: str) -> set[str]:
    return {key for key, _ in storage.iter_objects(prefix)}


def transcode(video: Video) -> Video:
    job = transcode_enqueue(video=video)
    assert job is not None
    transcode_run(job_id=job.id)
    video.refresh_from_db()
    assert video.status == Video.Status.READY, video.status_reason
    return video


def plays(video: Video, user) -> list[str]:
    video.refresh_from_db()
    return follow_playlists(Client(), video_playback(video=video, user=user).hls_url)


@pytest.fixture
def pair(user, hls_source):
    """A ready video and a duplicate of it."""
    original = make_ready_video(owner=user, source=hls_source, title="Week 1")
    duplicate = duplicate_video_create(owner=user, title="Week 1, again", media_file=original.media_file)
    return original, duplicate


def test_the_duplicate_shares_the_output_at_once(pair, user):
    original, duplicate = pair
    assert duplicate.status == Video.Status.READY and duplicate.duplicate_of == original
    assert (duplicate.hls_master_key, duplicate.poster_key) == (original.hls_master_key, original.poster_key)
    assert [r.playlist_key for r in duplicate.renditions.all()] == [r.playlist_key for r in original.renditions.all()]
    assert not TranscodeJob.objects.exists()
    fetched = plays(duplicate, user)
    assert all(f"/api/v1/videos/{duplicate.id}/hls/" in url for url in fetched)


def test_signed_cdn_tokens_of_the_duplicate_open_the_shared_folder(pair, user, settings):
    original, duplicate = pair
    settings.CDN_URL, settings.CDN_TOKEN_KEY = CDN, "0f1e2d3c-token-key"
    grant = video_playback(video=duplicate, user=user)
    folder = f"/videos/{original.id}/hls/1/"
    token_segment, _, rest = urlsplit(grant.hls_url).path[1:].partition("/")
    assert grant.mode == "signed_cdn" and "/" + rest == folder + "master.m3u8"
    assert unquote(dict(p.split("=", 1) for p in token_segment.split("&"))["token_path"]) == folder
    assert grant.poster_url.endswith(folder + "poster.jpg")
    settings.CDN_TOKEN_KEY = ""
    assert video_playback(video=duplicate, user=user).hls_url == f"{CDN}{folder}master.m3u8"


def test_a_token_of_the_duplicate_does_not_open_the_original(pair, user):
    original, duplicate = pair
    url = video_playback(video=duplicate, user=user).hls_url
    assert Client().get(url).status_code == 200
    assert Client().get(url.replace(str(duplicate.id), str(original.id))).status_code == 404


def test_deleting_either_keeps_the_other_playing_and_the_last_one_removes_the_objects(pair, user):
    original, duplicate = pair
    stored = keys_under(f"videos/{original.id}/")
    original_key = original.media_file.storage_key
    assert stored
    video_delete(video=duplicate, deleted_by=user)
    assert keys_under(f"videos/{original.id}/") == stored
    plays(original, user)

    again = duplicate_video_create(owner=user, title="Week 1, third", media_file=original.media_file)
    video_delete(video=original, deleted_by=user)
    assert keys_under(f"videos/{original.id}/") == stored
    assert storage.object_exists(original_key)
    plays(again, user)
    video_delete(video=again, deleted_by=user)
    assert keys_under(f"videos/{original.id}/") == set()
    assert not storage.object_exists(original_key)


def test_the_storage_ledger_counts_shared_renditions_once(pair, user):
    original, duplicate = pair
    lines = {line.video_id: line for line in cost_snapshot_storage(day=date.today())}
    rendition_bytes = sum(r.bytes for r in original.renditions.all())
    assert f"renditions {rendition_bytes} B" in lines[original.id].note
    assert duplicate.id not in lines  # the original's copy and outputs are counted for the original
    assert CostLogEntry.objects.filter(kind=CostLogEntry.Kind.STORAGE).count() == 1


@pytest.mark.parametrize("grace_s", [3600, 0])
def test_re_transcoding_either_writes_its_own_output_and_keeps_the_shared_one(user, no_audio_clip, settings, grace_s):
    settings.HLS_PREVIOUS_OUTPUT_GRACE_S = grace_s
    original = transcode(make_stored_video(user, no_audio_clip))
    shared_folder = f"videos/{original.id}/hls/1/"
    shared = keys_under(shared_folder)
    duplicate = duplicate_video_create(owner=user, title="Again", media_file=original.media_file)
    assert duplicate.hls_master_key == original.hls_master_key

    # The original transcoded again: its own new folder; the duplicate still plays the shared one.
    original = transcode(original)
    assert original.hls_master_key == f"videos/{original.id}/hls/2/master.m3u8"
    later = timezone.now() + timedelta(seconds=grace_s + 1)
    transcode_previous_outputs_sweep(now=later)
    assert keys_under(shared_folder) == shared
    plays(duplicate, user)
    plays(original, user)

    # The duplicate transcoded again: its own output, no longer a duplicate; nobody plays the shared folder now.
    duplicate = transcode(duplicate)
    assert duplicate.hls_master_key.startswith(f"videos/{duplicate.id}/hls/") and duplicate.duplicate_of is None
    assert PreviousHlsOutput.objects.filter(video=duplicate, master_key=f"{shared_folder}master.m3u8").exists()
    assert transcode_previous_outputs_sweep(now=timezone.now() + timedelta(seconds=grace_s + 1)) >= 1
    assert keys_under(shared_folder) == set()
    plays(duplicate, user)
    plays(original, user)
    assert keys_under(f"videos/{original.id}/hls/2/")


def test_deleting_the_video_a_duplicate_waits_for_gives_the_duplicate_its_own_transcode(user, no_audio_clip):
    original = make_stored_video(user, no_audio_clip)
    assert transcode_enqueue(video=original) is not None
    duplicate = duplicate_video_create(owner=user, title="Waiting", media_file=original.media_file)
    assert duplicate.status == Video.Status.QUEUED and duplicate.duplicate_of == original
    video_delete(video=original, deleted_by=user)
    duplicate.refresh_from_db()
    assert duplicate.status == Video.Status.QUEUED and duplicate.duplicate_of is None
    job = TranscodeJob.objects.get(video=duplicate)
    transcode_run(job_id=job.id)
    duplicate.refresh_from_db()
    assert duplicate.status == Video.Status.READY
    plays(duplicate, user)
