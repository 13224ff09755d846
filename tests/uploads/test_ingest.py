"""manage.py ingest: a local file through the upload path, optionally transcoded in-process."""

from __future__ import annotations

import hashlib

import pytest
from django.core.management import CommandError, call_command

from media_library.models import MediaFile, Video
from transcoding.models import TranscodeJob
from uploads.models import UploadSession

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def small_ladder(settings):
    settings.HLS_LADDER = "180p:300k"
    settings.HLS_SEGMENT_SECONDS = 2


def test_ingest_stores_the_original_and_queues_transcoding(user, landscape_clip, capsys):
    before = landscape_clip.read_bytes()
    call_command("ingest", str(landscape_clip), "--title", "Entropy", "--owner", user.username)
    video_id = capsys.readouterr().out.strip().splitlines()[-1]

    video = Video.objects.get(pk=video_id)
    assert (video.title, video.owner, video.status) == ("Entropy", user, Video.Status.QUEUED)
    media = video.media_file
    assert media.sha256 == hashlib.sha256(before).hexdigest()
    assert media.storage_key.startswith(f"originals/{media.id}/")
    assert media.duration == pytest.approx(6.0, abs=0.2) and media.video_codec == "h264"
    session = UploadSession.objects.get(video=video)
    assert (session.kind, session.status) == (UploadSession.Kind.INGEST, UploadSession.Status.FINALIZED)
    assert landscape_clip.read_bytes() == before, "the source file must be left as it was"


def test_ingest_wait_transcodes_and_prints_playback(user, no_audio_clip, capsys):
    call_command("ingest", str(no_audio_clip), "--owner", user.username, "--wait")
    out = capsys.readouterr().out
    video = Video.objects.get(pk=out.splitlines()[0].strip())
    assert video.status == Video.Status.READY
    assert "playback:" in out and video.hls_master_key.rsplit("/", 1)[0] in out

    # The same file again is a video of its own, ready at once: nothing is stored or transcoded twice.
    call_command("ingest", str(no_audio_clip), "--owner", user.username, "--title", "Again", "--wait")
    again = capsys.readouterr().out
    duplicate = Video.objects.get(pk=again.splitlines()[0].strip())
    assert duplicate.pk != video.pk and duplicate.title == "Again" and duplicate.duplicate_of == video
    assert f"is ready (same file as video {video.id})" in again
    assert MediaFile.objects.count() == 1 and TranscodeJob.objects.count() == 1


def test_ingest_wait_of_a_file_still_transcoding_waits_for_that_transcode(user, no_audio_clip, capsys):
    call_command("ingest", str(no_audio_clip), "--owner", user.username)
    first = Video.objects.get(pk=capsys.readouterr().out.splitlines()[0].strip())
    call_command("ingest", str(no_audio_clip), "--owner", user.username, "--title", "Again", "--wait")
    out = capsys.readouterr().out
    duplicate = Video.objects.get(pk=out.splitlines()[0].strip())
    first.refresh_from_db()
    assert first.status == duplicate.status == Video.Status.READY
    assert duplicate.hls_master_key == first.hls_master_key and TranscodeJob.objects.count() == 1
    assert f"is ready (same file as video {first.id})" in out


def test_ingest_refuses_a_non_video_with_the_reason(user, not_video_clip):
    with pytest.raises(CommandError, match="not accepted: not a playable video"):
        call_command("ingest", str(not_video_clip), "--owner", user.username)
    assert not Video.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent/lecture.mp4", "--owner", "{user}"], "is not a file"),
        (["{clip}", "--owner", "nobody-by-this-name"], "there is no user"),
    ],
)
def test_ingest_bad_arguments(user, landscape_clip, args, message):
    args = [a.format(user=user.username, clip=landscape_clip) for a in args]
    with pytest.raises(CommandError, match=message):
        call_command("ingest", *args)


def test_ingest_refuses_a_wrong_extension(user, tmp_path, landscape_clip):
    renamed = tmp_path / "lecture.txt"
    renamed.write_bytes(landscape_clip.read_bytes())
    with pytest.raises(CommandError, match="not accepted"):
        call_command("ingest", str(renamed), "--owner", user.username)
