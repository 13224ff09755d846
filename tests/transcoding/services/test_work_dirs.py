"""Transcode work dirs belong to their deployment: another one on the same host never sweeps them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from media_library.models import Video
from tests.factories import make_stored_video
from tests.transcoding.services.test_pipeline import run, small_ladder  # noqa: F401 (autouse fixture)
from transcoding.models import TranscodeJob
from transcoding.services import pipeline
from unpuzzle import storage

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[3]


def neighbour_manage(var_dir: Path, *args: str) -> None:
    """Run ``manage.py args`` as a second deployment of this checkout on the same host: its own
    VAR_DIR and SQLite database, the same temp dir."""
    env = {
        **os.environ,
        "VAR_DIR": str(var_dir),
        "DATABASE_URL": f"sqlite:///{var_dir / 'db.sqlite3'}",
        "TMPDIR": tempfile.gettempdir(),
    }
    env.pop("TRANSCODE_WORK_DIR", None)
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, timeout=120
    )


def test_a_neighbour_deployment_sweeping_its_work_dirs_leaves_a_running_transcode_alone(
    user, landscape_clip, tmp_path, monkeypatch
):
    neighbour = tmp_path / "neighbour-var"
    neighbour_manage(neighbour, "migrate")
    seen: list[Path] = []
    encode = pipeline._encode

    def encode_after_the_neighbour_swept(*, claim, source, work, reporter):
        # Mid-transcode, the other deployment's reaper schedule runs its work-dir sweep.
        seen.append(work)
        assert work.is_dir()
        neighbour_manage(
            neighbour, "shell", "-c", "from transcoding.tasks import transcode_reap_stale; transcode_reap_stale()"
        )
        return encode(claim=claim, source=source, work=work, reporter=reporter)

    monkeypatch.setattr(pipeline, "_encode", encode_after_the_neighbour_swept)
    video = make_stored_video(user, landscape_clip)
    job = run(video)
    assert seen, "the transcode never reached the encoder"
    assert job.status == TranscodeJob.Status.SUCCEEDED, job.error
    assert video.status == Video.Status.READY


def test_a_work_dir_that_vanishes_mid_attempt_is_retried_not_blamed_on_the_original(user, landscape_clip, monkeypatch):
    encode = pipeline._encode

    def encode_without_a_work_dir(*, claim, source, work, reporter):
        shutil.rmtree(work)
        return encode(claim=claim, source=source, work=work, reporter=reporter)

    monkeypatch.setattr(pipeline, "_encode", encode_without_a_work_dir)
    video = make_stored_video(user, landscape_clip)
    job = run(video)
    assert job.status == TranscodeJob.Status.QUEUED and job.attempts == 1
    assert "FileNotFoundError" in job.error and "original" not in job.error


def test_an_original_missing_from_storage_fails_at_once_with_that_reason(user, landscape_clip):
    video = make_stored_video(user, landscape_clip)
    storage.delete_key(video.media_file.storage_key)
    job = run(video)
    assert job.status == TranscodeJob.Status.FAILED and job.attempts == 1
    assert job.error.startswith("the original is missing from storage: stored object 'originals/")
