"""The tus 1.0.0 protocol, case by case, over real HTTP against a live server."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from django.test import Client
from django_q.models import OrmQ

from tests.factories import make_user
from tests.uploads.conftest import b64, create_upload, metadata_header
from uploads.models import UploadSession
from uploads.services.cleanup import upload_sessions_expire
from uploads.services.finalize import upload_session_finalize

pytestmark = pytest.mark.django_db(transaction=True)


def _session(url: str) -> UploadSession:
    return UploadSession.objects.get(pk=url.rstrip("/").rsplit("/", 1)[-1])


# --- discovery and version ------------------------------------------------------------


def test_options_advertises_version_extensions_max_size_and_checksums(live_server, settings):
    settings.MAX_VIDEO_SIZE_MB = 7
    response = requests.options(f"{live_server.url}/api/v1/uploads/", timeout=10)  # no credentials needed
    assert response.status_code == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Tus-Max-Size"] == str(7 * 1024 * 1024)
    assert set(response.headers["Tus-Extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "expiration",
        "checksum",
        "termination",
        "concatenation",
    }
    assert set(response.headers["Tus-Checksum-Algorithm"].split(",")) == {"sha1", "sha256", "md5"}


@pytest.mark.parametrize("version", [None, "0.2.2", "2.0.0"])
def test_unsupported_or_missing_version_is_412_and_nothing_is_created(tus_http, version):
    headers = {"Upload-Length": "10"}
    if version is None:
        del tus_http.http.headers["Tus-Resumable"]
    else:
        headers["Tus-Resumable"] = version
    response = tus_http.http.post(tus_http.endpoint, headers=headers, timeout=10)
    assert response.status_code == 412
    assert response.headers["Tus-Version"] == "1.0.0"
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert "Tus-Resumable" in response.json()["detail"] or "not supported" in response.json()["detail"]
    assert UploadSession.objects.count() == 0


def test_unauthenticated_requests_get_401_with_tus_headers(live_server):
    response = requests.post(
        f"{live_server.url}/api/v1/uploads/", headers={"Tus-Resumable": "1.0.0", "Upload-Length": "5"}, timeout=10
    )
    assert response.status_code == 401
    assert response.headers["Tus-Resumable"] == "1.0.0"


# --- creation, HEAD, PATCH ------------------------------------------------------------


def test_create_head_patch_to_completion(tus_http):
    response = tus_http.create(
        11,
        filename="Vorlesung Übung 1 – 講義.mp4",
        headers={
            "Upload-Metadata": metadata_header(
                filename="Vorlesung Übung 1 – 講義.mp4", filetype="video/mp4", title="Week 1"
            )
            + ",flag",
        },
    )
    assert response.status_code == 201
    url = response.headers["Location"]
    assert url.startswith("http://") and "/api/v1/uploads/" in url
    expires = parsedate_to_datetime(response.headers["Upload-Expires"])
    assert response.headers["Upload-Expires"].endswith(" GMT") and expires.tzinfo is not None

    head = tus_http.head(url)
    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == "0"
    assert head.headers["Upload-Length"] == "11"
    assert head.headers["Cache-Control"] == "no-store"
    pairs = dict(p.split(" ") if " " in p else (p, "") for p in head.headers["Upload-Metadata"].split(","))
    assert base64.b64decode(pairs["filename"]).decode() == "Vorlesung Übung 1 – 講義.mp4"
    assert pairs["flag"] == ""
    session = _session(url)
    assert session.filename == "Vorlesung Übung 1 – 講義.mp4"
    assert session.metadata == {
        "filename": "Vorlesung Übung 1 – 講義.mp4",
        "filetype": "video/mp4",
        "title": "Week 1",
        "flag": "",
    }

    first = tus_http.patch(url, b"hello", offset=0)
    assert first.status_code == 204 and first.headers["Upload-Offset"] == "5"
    assert "Upload-Expires" in first.headers
    progress = tus_http.http.get(url, headers={"Accept": "application/json"}, timeout=10).json()
    assert progress == {
        "id": str(session.id),
        "status": "uploading",
        "offset": 5,
        "length": 11,
        "progress": pytest.approx(45.45),
        "filename": session.filename,
        "video_id": None,
        "duplicate_of": None,
        "error": "",
        "error_code": "",
        "retryable": False,
        "expires_at": progress["expires_at"],
    }
    last = tus_http.patch(url, b" world", offset=5)
    assert last.status_code == 204 and last.headers["Upload-Offset"] == "11"
    assert "Upload-Expires" not in last.headers  # completed uploads never expire
    session.refresh_from_db()
    assert session.status == UploadSession.Status.COMPLETE and session.expires_at is None
    with open(session.temp_path, "rb") as fh:
        assert fh.read() == b"hello world"
    head = tus_http.head(url)
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == "11"


def test_final_patch_returns_before_finalization_runs(tus_http, small_clip):
    data = small_clip.read_bytes()
    url = create_upload(tus_http, len(data), filename="tiny.mp4")
    response = tus_http.patch(url, data, offset=0)
    assert response.status_code == 204
    session = _session(url)
    # The request only queued the work: no MediaFile yet, one task waiting for the worker.
    assert session.status == UploadSession.Status.COMPLETE and session.media_file is None
    assert OrmQ.objects.count() == 1
    upload_session_finalize(session_id=session.id)
    session.refresh_from_db()
    assert session.status == UploadSession.Status.FINALIZED
    assert tus_http.http.get(url, timeout=10).json()["video_id"] == str(session.video_id)


def test_offset_mismatch_is_409_and_changes_nothing(tus_http):
    url = create_upload(tus_http, 10)
    assert tus_http.patch(url, b"abc", offset=0).status_code == 204
    response = tus_http.patch(url, b"xyz", offset=1)
    assert response.status_code == 409
    assert response.json()["detail"].startswith("Upload-Offset 1 does not match the server's offset 3")
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert tus_http.head(url).headers["Upload-Offset"] == "3"
    assert open(_session(url).temp_path, "rb").read() == b"abc"


def test_patch_with_wrong_content_type_is_415(tus_http):
    url = create_upload(tus_http, 10)
    response = tus_http.patch(url, b"abc", offset=0, headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 415
    assert tus_http.head(url).headers["Upload-Offset"] == "0"


def test_missing_upload_offset_is_400(tus_http):
    url = create_upload(tus_http, 10)
    response = tus_http.http.patch(
        url, data=b"abc", headers={"Content-Type": "application/offset+octet-stream"}, timeout=10
    )
    assert response.status_code == 400 and "Upload-Offset" in response.json()["detail"]


def test_unknown_malformed_and_foreign_uploads_are_404(tus_http, other_tus_http):
    url = create_upload(tus_http, 10)
    unknown = f"{tus_http.endpoint}00000000-0000-0000-0000-000000000000"
    for target in (unknown, f"{tus_http.endpoint}not-a-uuid"):
        head = tus_http.head(target)
        assert head.status_code == 404 and "Upload-Offset" not in head.headers
        assert head.headers["Tus-Resumable"] == "1.0.0"
        assert tus_http.patch(target, b"a", offset=0).status_code == 404
    # Another user's upload does not exist for them.
    assert other_tus_http.head(url).status_code == 404
    assert other_tus_http.patch(url, b"a", offset=0).status_code == 404
    assert other_tus_http.http.delete(url, timeout=10).status_code == 404
    assert other_tus_http.http.get(url, timeout=10).status_code == 404
    assert other_tus_http.http.get(other_tus_http.endpoint, timeout=10).json()["count"] == 0
    assert tus_http.http.get(tus_http.endpoint, timeout=10).json()["count"] == 1


def test_x_http_method_override(tus_http):
    url = create_upload(tus_http, 5)
    response = tus_http.http.post(
        url,
        data=b"hello",
        headers={
            "X-HTTP-Method-Override": "PATCH",
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": "0",
        },
        timeout=10,
    )
    assert response.status_code == 204 and response.headers["Upload-Offset"] == "5"
    url2 = create_upload(tus_http, 5)
    assert tus_http.http.post(url2, headers={"X-HTTP-Method-Override": "DELETE"}, timeout=10).status_code == 204
    assert tus_http.head(url2).status_code == 410


# --- extensions -----------------------------------------------------------------------


def test_creation_with_upload(tus_http):
    response = tus_http.create(11, data=b"hello", headers={"Content-Type": "application/offset+octet-stream"})
    assert response.status_code == 201
    assert response.headers["Upload-Offset"] == "5"
    url = response.headers["Location"]
    assert tus_http.patch(url, b" world", offset=5).headers["Upload-Offset"] == "11"


def test_creation_with_body_needs_offset_content_type(tus_http):
    response = tus_http.create(11, data=b"hello", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert UploadSession.objects.count() == 0


def test_defer_length(tus_http):
    response = tus_http.create(headers={"Upload-Defer-Length": "1"})
    assert response.status_code == 201
    url = response.headers["Location"]
    head = tus_http.head(url)
    assert head.headers["Upload-Defer-Length"] == "1" and "Upload-Length" not in head.headers
    assert tus_http.patch(url, b"hello", offset=0).headers["Upload-Offset"] == "5"
    done = tus_http.patch(url, b" world", offset=5, headers={"Upload-Length": "11"})
    assert done.status_code == 204
    head = tus_http.head(url)
    assert head.headers["Upload-Length"] == "11" and "Upload-Defer-Length" not in head.headers
    assert _session(url).status == UploadSession.Status.COMPLETE


def test_defer_length_rejections(tus_http):
    assert tus_http.create(headers={"Upload-Defer-Length": "2"}).status_code == 400
    assert tus_http.create().status_code == 400  # neither Upload-Length nor Upload-Defer-Length
    assert tus_http.create(5, headers={"Upload-Defer-Length": "1"}).status_code == 400
    url = create_upload(tus_http, 10)
    assert tus_http.patch(url, b"a", offset=0, headers={"Upload-Length": "12"}).status_code == 409


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "md5"])
def test_checksum_match_and_mismatch(tus_http, algorithm):
    url = create_upload(tus_http, 10)
    good = base64.b64encode(hashlib.new(algorithm, b"hello").digest()).decode()
    ok = tus_http.patch(url, b"hello", offset=0, headers={"Upload-Checksum": f"{algorithm} {good}"})
    assert ok.status_code == 204 and ok.headers["Upload-Offset"] == "5"
    bad = tus_http.patch(url, b"world", offset=5, headers={"Upload-Checksum": f"{algorithm} {good}"})
    assert bad.status_code == 460
    assert bad.json()["code"] == "checksum_mismatch"
    assert tus_http.head(url).headers["Upload-Offset"] == "5"
    assert os.path.getsize(_session(url).temp_path) == 5  # nothing of the bad chunk stored


def test_unsupported_checksum_algorithm_is_400(tus_http):
    url = create_upload(tus_http, 10)
    response = tus_http.patch(url, b"hello", offset=0, headers={"Upload-Checksum": f"crc32 {b64('abcd')}"})
    assert response.status_code == 400 and "crc32" in response.json()["detail"]
    assert tus_http.head(url).headers["Upload-Offset"] == "0"


def test_termination_frees_disk_and_later_requests_get_410(tus_http):
    url = create_upload(tus_http, 10)
    tus_http.patch(url, b"hello", offset=0)
    path = _session(url).temp_path
    assert os.path.exists(path)
    response = tus_http.http.delete(url, timeout=10)
    assert response.status_code == 204 and response.headers["Tus-Resumable"] == "1.0.0"
    assert not os.path.exists(path)
    head = tus_http.head(url)
    assert head.status_code == 410 and "Upload-Offset" not in head.headers
    assert tus_http.patch(url, b"world", offset=5).status_code == 410
    assert tus_http.http.delete(url, timeout=10).status_code == 410


def test_expired_upload_is_410(tus_http):
    from datetime import timedelta

    from django.utils import timezone

    url = create_upload(tus_http, 10)
    UploadSession.objects.filter(pk=_session(url).pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert upload_sessions_expire() == 1
    assert tus_http.head(url).status_code == 410
    assert tus_http.patch(url, b"hello", offset=0).status_code == 410


def test_concatenation(tus_http):
    a = create_upload(tus_http, 5, headers={"Upload-Concat": "partial"}, filename="")
    b = create_upload(tus_http, 6, headers={"Upload-Concat": "partial"}, filename="")
    assert tus_http.head(a).headers["Upload-Concat"] == "partial"
    tus_http.patch(b, b" world", offset=0)
    early = tus_http.create(headers={"Upload-Concat": f"final;{a} {b}"})
    assert early.status_code == 409 and "complete" in early.json()["detail"]
    tus_http.patch(a, b"hello", offset=0)
    relative_b = urlsplit(b).path
    final = tus_http.create(
        headers={"Upload-Concat": f"final;{a} {relative_b}", "Upload-Metadata": metadata_header(filename="joined.mp4")}
    )
    assert final.status_code == 201, final.text
    url = final.headers["Location"]
    head = tus_http.head(url)
    assert head.headers["Upload-Length"] == head.headers["Upload-Offset"] == "11"
    assert head.headers["Upload-Concat"] == f"final;{urlsplit(a).path} {relative_b}"
    session = _session(url)
    assert session.status == UploadSession.Status.COMPLETE
    assert open(session.temp_path, "rb").read() == b"hello world"
    assert tus_http.patch(url, b"x", offset=11).status_code == 403
    assert not os.path.exists(_session(a).temp_path)  # consumed parts free their disk


def test_concurrent_final_concatenations_of_the_same_parts_make_one_upload(tus_http, upload_clip, settings):
    data = upload_clip.read_bytes()
    third = len(data) // 3
    chunks = [data[:third], data[third : 2 * third], data[2 * third :]]
    parts = []
    for chunk in chunks:
        url = create_upload(tus_http, len(chunk), headers={"Upload-Concat": "partial"}, filename="")
        assert tus_http.patch(url, chunk, offset=0).status_code == 204
        parts.append(url)
    concat = {"Upload-Concat": "final;" + " ".join(parts), "Upload-Metadata": metadata_header(filename="joined.mp4")}
    start = threading.Barrier(3)

    def final():
        start.wait()
        return tus_http.create(headers=concat)

    with ThreadPoolExecutor(3) as pool:
        responses = list(pool.map(lambda _: final(), range(3)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409], [r.text for r in responses]
    for refused in (r for r in responses if r.status_code == 409):
        detail = refused.json()["detail"]
        assert "already" in detail and "another upload" in detail or "is finalized" in detail, detail
    made = next(r for r in responses if r.status_code == 201)
    assert open(_session(made.headers["Location"]).temp_path, "rb").read() == data
    # Nothing left behind: the one final upload's file, no copies of the losers.
    upload_dir = Path(settings.UPLOAD_TEMP_DIR)
    leftovers = {str(path) for path in upload_dir.glob("*.part")}
    assert leftovers == {_session(made.headers["Location"]).temp_path}


def test_final_concatenation_must_not_send_length(tus_http):
    a = create_upload(tus_http, 1, headers={"Upload-Concat": "partial"}, filename="")
    tus_http.patch(a, b"x", offset=0)
    response = tus_http.create(1, headers={"Upload-Concat": f"final;{a}"})
    assert response.status_code == 400


# --- limits ---------------------------------------------------------------------------


def test_offsets_past_4_gib(tus_http, settings):
    settings.MAX_VIDEO_SIZE_MB = 8 * 1024
    length = 5 * 1024**3 + 7
    url = create_upload(tus_http, length)
    session = _session(url)
    start = 4 * 1024**3 + 3
    # Pretend the first 4 GiB arrived: a sparse part file of that size and the matching offset.
    with open(session.temp_path, "r+b") as fh:
        fh.truncate(start)
    UploadSession.objects.filter(pk=session.pk).update(offset=start, status=UploadSession.Status.UPLOADING)
    assert tus_http.head(url).headers["Upload-Length"] == str(length)
    response = tus_http.patch(url, b"bytes after 4 GiB", offset=start)
    assert response.status_code == 204
    assert int(response.headers["Upload-Offset"]) == start + 17 > 2**32
    with open(session.temp_path, "rb") as fh:
        fh.seek(start)
        assert fh.read() == b"bytes after 4 GiB"


# --- interrupted and concurrent bodies ------------------------------------------------


def _raw_patch(url: str, token: str, *, offset: int, content_length: int, first: bytes) -> socket.socket:
    """Open a PATCH with ``Content-Length`` and send only ``first`` of its body."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    head = (
        f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Token {token}\r\n"
        f"Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Upload-Offset: {offset}\r\nContent-Length: {content_length}\r\n\r\n"
    )
    sock.sendall(head.encode() + first)
    return sock


def _wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_body_cut_mid_transfer_keeps_what_arrived_and_frees_the_lock(tus_http, token):
    url = create_upload(tus_http, 1000)
    sock = _raw_patch(url, token, offset=0, content_length=1000, first=b"a" * 300)
    time.sleep(0.3)
    sock.close()
    _wait_for(lambda: tus_http.head(url).headers["Upload-Offset"] == "300")
    assert open(_session(url).temp_path, "rb").read() == b"a" * 300
    # The dead connection's lock is gone: the client resumes at once.
    response = tus_http.patch(url, b"b" * 700, offset=300)
    assert response.status_code == 204 and response.headers["Upload-Offset"] == "1000"


def test_second_concurrent_patch_is_refused_and_bytes_stay_correct(tus_http, token):
    url = create_upload(tus_http, 1000)
    sock = _raw_patch(url, token, offset=0, content_length=1000, first=b"a" * 400)
    time.sleep(0.3)  # the first request now holds the upload's lock, waiting for more body
    results = {}

    def second():
        results["second"] = tus_http.patch(url, b"z" * 1000, offset=0)

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(15)
    response = results["second"]
    assert response.status_code == 423
    assert "being written by another request" in response.json()["detail"]
    assert response.headers["Tus-Resumable"] == "1.0.0"
    sock.sendall(b"a" * 600)
    reply = b""
    while b"\r\n\r\n" not in reply:
        received = sock.recv(4096)
        assert received, f"connection closed after {reply!r}"
        reply += received
    reply = reply.decode()
    sock.close()
    assert reply.startswith("HTTP/1.1 204") and "Upload-Offset: 1000" in reply
    assert open(_session(url).temp_path, "rb").read() == b"a" * 1000


# --- CORS and session authentication --------------------------------------------------


def test_cors_preflight_and_exposed_headers_on_errors(live_server, tus_http, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    preflight = requests.options(
        tus_http.endpoint + "00000000-0000-0000-0000-000000000000",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "tus-resumable,upload-offset,upload-checksum,content-type,authorization",
        },
        timeout=10,
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    allowed = {h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"tus-resumable", "upload-offset", "upload-checksum", "upload-metadata", "upload-length"} <= allowed
    assert "PATCH" in preflight.headers["Access-Control-Allow-Methods"]
    error = tus_http.head(
        tus_http.endpoint + "00000000-0000-0000-0000-000000000000", headers={"Origin": "https://app.example.com"}
    )
    assert error.status_code == 404
    assert error.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    exposed = {h.strip().lower() for h in error.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"location", "upload-offset", "upload-length", "upload-expires", "tus-resumable", "tus-version"} <= exposed
    foreign = requests.options(
        tus_http.endpoint,
        headers={"Origin": "https://evil.example.net", "Access-Control-Request-Method": "PATCH"},
        timeout=10,
    )
    assert "Access-Control-Allow-Origin" not in foreign.headers


def test_session_authenticated_patch_needs_csrf_token(live_server):
    user = make_user()
    client = Client()
    client.force_login(user)
    http = requests.Session()
    http.cookies.set("sessionid", client.cookies["sessionid"].value)
    http.cookies.set("csrftoken", "c" * 32)
    http.headers.update({"Tus-Resumable": "1.0.0", "Referer": live_server.url})
    endpoint = f"{live_server.url}/api/v1/uploads/"
    assert http.post(endpoint, headers={"Upload-Length": "5"}, timeout=10).status_code == 403
    created = http.post(
        endpoint,
        headers={"Upload-Length": "5", "X-CSRFToken": "c" * 32, "Upload-Metadata": metadata_header(filename="a.mp4")},
        timeout=10,
    )
    assert created.status_code == 201
    url = created.headers["Location"]
    patch_headers = {"Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
    assert http.patch(url, data=b"hello", headers=patch_headers, timeout=10).status_code == 403
    ok = http.patch(url, data=b"hello", headers={**patch_headers, "X-CSRFToken": "c" * 32}, timeout=10)
    assert ok.status_code == 204 and ok.headers["Upload-Offset"] == "5"
    assert http.head(url, timeout=10).status_code == 200  # safe methods need no token


def test_oversized_numbers_and_nul_metadata_get_clear_4xx_not_500(tus_http):
    huge = tus_http.create(headers={"Upload-Length": "9" * 5000})
    assert huge.status_code == 413 and "has 5000 digits" in huge.json()["detail"]
    url = create_upload(tus_http, 10)
    offset = tus_http.patch(url, b"abc", offset=0, headers={"Upload-Offset": "1" * 5000})
    assert offset.status_code == 413 and "Upload-Offset has 5000 digits" in offset.json()["detail"]
    nul = tus_http.create(10, headers={"Upload-Metadata": "filename " + b64("lecture\x00.mp4")})
    assert nul.status_code == 400 and "control characters" in nul.json()["detail"]
    assert UploadSession.objects.count() == 1


def test_a_final_concatenation_of_another_users_partial_upload_is_404(tus_http, other_tus_http):
    theirs = create_upload(tus_http, 5, headers={"Upload-Concat": "partial"}, filename="")
    tus_http.patch(theirs, b"hello", offset=0)
    mine = create_upload(other_tus_http, 6, headers={"Upload-Concat": "partial"}, filename="")
    other_tus_http.patch(mine, b" world", offset=0)
    response = other_tus_http.create(headers={"Upload-Concat": f"final;{mine} {theirs}"})
    assert response.status_code == 404
    assert f"partial upload {_session(theirs).id} does not exist" in response.json()["detail"]
    assert _session(theirs).status == UploadSession.Status.COMPLETE and os.path.exists(_session(theirs).temp_path)
    assert UploadSession.objects.count() == 2


def test_upload_metadata_cannot_name_another_users_original_or_video(tus_http, other_tus_http, small_clip, user):
    """tus metadata is the client's: ids in it are kept as text, never followed to someone else's rows."""
    from tests.factories import make_media_file, make_video

    their_media = make_media_file(owner=user)
    their_video = make_video(owner=user, media_file=their_media)
    data = small_clip.read_bytes()
    metadata = metadata_header(
        filename="mine.mp4", media_file_id=str(their_media.id), video_id=str(their_video.id), owner=str(user.pk)
    )
    url = create_upload(other_tus_http, len(data), filename="", headers={"Upload-Metadata": metadata})
    assert other_tus_http.patch(url, data, offset=0).status_code == 204
    session = upload_session_finalize(session_id=_session(url).id)
    assert session.status == UploadSession.Status.FINALIZED, session.error
    assert session.owner != user
    assert session.media_file.owner == session.owner and session.media_file_id != their_media.id
    assert session.video.owner == session.owner and session.video_id != their_video.id
    assert list(their_media.videos.all()) == [their_video]
