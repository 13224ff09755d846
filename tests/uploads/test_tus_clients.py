"""Real tus clients against the live server: tuspy and tus-js-client (node), chunked, resumed, parallel.

Each test then runs the queued finalization the way the worker does and checks the stored original.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from django_q.models import OrmQ
from tusclient import client as tus_client

from media_library.models import MediaFile, Video
from unpuzzle.storage import open_local_copy
from uploads.models import UploadSession
from uploads.services.finalize import upload_session_finalize

pytestmark = pytest.mark.django_db(transaction=True)

JS_DIR = Path(__file__).resolve().parents[1] / "js"
CHUNK = 256 * 1024


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_stored(url: str, source: Path, *, title: str | None = None) -> Video:
    session = UploadSession.objects.get(pk=url.rstrip("/").rsplit("/", 1)[-1])
    assert session.status == UploadSession.Status.COMPLETE
    assert OrmQ.objects.count() == 1  # the finalization task the last PATCH queued
    session = upload_session_finalize(session_id=session.id)
    assert session.status == UploadSession.Status.FINALIZED, session.error
    media_file = session.media_file
    assert media_file.sha256 == _sha256(source)
    assert media_file.size == source.stat().st_size
    with open_local_copy(media_file.storage_key) as stored:
        assert _sha256(stored) == _sha256(source)
    if title:
        assert session.video.title == title
    return session.video


def _node(*args: str) -> dict:
    assert (JS_DIR / "node_modules" / "tus-js-client").is_dir(), "run `cd tests/js && npm ci` first"
    proc = subprocess.run(["node", str(JS_DIR / "tus_upload.mjs"), *args], capture_output=True, text=True, timeout=120)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0, (result, proc.stderr)
    return result


def test_tuspy_uploads_in_chunks_with_checksums_and_resumes(live_server, token, upload_clip):
    client = tus_client.TusClient(f"{live_server.url}/api/v1/uploads/", headers={"Authorization": f"Token {token}"})
    size = upload_clip.stat().st_size
    assert size > 4 * CHUNK
    first = client.uploader(
        str(upload_clip),
        chunk_size=CHUNK,
        metadata={"filename": "Lecture 1 – Intro.mp4", "title": "Intro"},
        upload_checksum=True,
    )
    first.upload(stop_at=2 * CHUNK)  # the connection "drops" after two chunks
    assert first.offset == 2 * CHUNK
    resumed = client.uploader(str(upload_clip), url=first.url, chunk_size=CHUNK, upload_checksum=True)
    assert resumed.offset == 2 * CHUNK  # tuspy asked the server with HEAD
    resumed.upload()
    video = _assert_stored(first.url, upload_clip, title="Intro")
    assert video.media_file.storage_key.endswith("/lecture-1-intro.mp4")


def test_tus_js_client_chunked_upload(live_server, token, upload_clip):
    result = _node(
        "--endpoint",
        f"{live_server.url}/api/v1/uploads/",
        "--file",
        str(upload_clip),
        "--chunk-size",
        str(CHUNK),
        "--header",
        f"Authorization: Token {token}",
        "--metadata",
        "title=Week 2",
    )
    assert result["error"] is None and result["bytes_uploaded"] == upload_clip.stat().st_size
    _assert_stored(result["url"], upload_clip, title="Week 2")


def test_tus_js_client_interrupt_and_resume(live_server, token, upload_clip):
    endpoint = f"{live_server.url}/api/v1/uploads/"
    auth = f"Authorization: Token {token}"
    first = _node(
        "--endpoint",
        endpoint,
        "--file",
        str(upload_clip),
        "--chunk-size",
        str(CHUNK),
        "--header",
        auth,
        "--interrupt-after",
        str(2 * CHUNK),
    )
    assert first["interrupted"] is True
    session = UploadSession.objects.get(pk=first["url"].rsplit("/", 1)[-1])
    assert session.status == UploadSession.Status.UPLOADING and 2 * CHUNK <= session.offset < upload_clip.stat().st_size
    second = _node(
        "--resume-url", first["url"], "--file", str(upload_clip), "--chunk-size", str(CHUNK), "--header", auth
    )
    assert second["error"] is None and second["url"] == first["url"]
    _assert_stored(first["url"], upload_clip)
    assert UploadSession.objects.filter(is_partial=False).count() == 1


def test_tus_js_client_parallel_uploads(live_server, token, upload_clip):
    result = _node(
        "--endpoint",
        f"{live_server.url}/api/v1/uploads/",
        "--file",
        str(upload_clip),
        "--chunk-size",
        str(CHUNK),
        "--parallel",
        "3",
        "--header",
        f"Authorization: Token {token}",
        "--metadata",
        "title=Parallel",
    )
    assert result["error"] is None
    assert len(result["partial_urls"]) == 3
    _assert_stored(result["url"], upload_clip, title="Parallel")
    parts = UploadSession.objects.filter(is_partial=True)
    assert parts.count() == 3 and all(p.status == UploadSession.Status.FINALIZED for p in parts)
    assert MediaFile.objects.count() == 1
