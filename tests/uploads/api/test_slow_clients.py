"""A trickling body cannot hold the web server: against the real gunicorn (gthread), a PATCH slower
than UPLOAD_MIN_BYTES_PER_S is cut keeping what arrived, and one user sends at most
UPLOAD_MAX_PATCHES_PER_USER bodies at once."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import pytest
from rest_framework.authtoken.models import Token

from tests.uploads.conftest import TusHTTP, create_upload
from uploads.models import UploadSession

pytestmark = pytest.mark.django_db(transaction=True)


def open_patch(url: str, token: str, *, length: int) -> socket.socket:
    """A PATCH whose headers are sent and whose body is still to come."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    sock.sendall(
        f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Token {token}\r\n"
        f"Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
        f"Content-Length: {length}\r\n\r\n".encode()
    )
    return sock


def read_response(sock: socket.socket) -> str:
    reply = b""
    while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
        received = sock.recv(65536)
        if not received:
            break
        reply += received
    return reply.decode(errors="replace")


def test_a_trickling_body_is_cut_and_keeps_its_bytes(start_gunicorn, user):
    base = start_gunicorn(UPLOAD_MIN_BYTES_PER_S="100", UPLOAD_RATE_WINDOW_S="1")
    token = Token.objects.create(user=user).key
    tus = TusHTTP(base, token)
    url = create_upload(tus, 1000)
    sock = open_patch(url, token, length=1000)
    sent = 0
    reply = ""
    sock.settimeout(0.3)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # 1 byte every 0.1 s: 10 bytes/s, a tenth of the floor
        try:
            sock.sendall(b"x")
            sent += 1
            reply = sock.recv(65536).decode(errors="replace")
            break
        except TimeoutError:
            continue
        except OSError:
            break
    sock.settimeout(10)
    reply += read_response(sock)
    sock.close()
    assert reply.startswith("HTTP/1.1 408"), reply
    stored = int(tus.head(url).headers["Upload-Offset"])
    assert 0 < stored <= sent < 100
    assert f"was cut after {stored} of 1000 bytes; {stored} bytes were stored, resume at offset {stored}" in reply
    assert "UPLOAD_MIN_BYTES_PER_S" in reply
    # The client resumes at full speed.
    assert tus.patch(url, b"y" * (1000 - stored), offset=stored).status_code == 204


def test_one_user_sends_at_most_the_allowed_bodies_at_once(start_gunicorn, user, other_user):
    base = start_gunicorn(UPLOAD_MAX_PATCHES_PER_USER="2", UPLOAD_MIN_BYTES_PER_S="0")
    token = Token.objects.create(user=user).key
    tus = TusHTTP(base, token)
    urls = [create_upload(tus, 100) for _ in range(3)]
    held = [open_patch(url, token, length=100) for url in urls[:2]]
    for sock in held:
        sock.sendall(b"a")  # both bodies are being read now
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and UploadSession.objects.filter(offset__gt=0).count() < 0:
        time.sleep(0.05)
    time.sleep(0.5)
    refused = tus.patch(urls[2], b"b" * 100, offset=0)
    assert refused.status_code == 429, refused.text
    assert "already sending the bytes of 2 uploads at once (UPLOAD_MAX_PATCHES_PER_USER)" in refused.json()["detail"]
    other = TusHTTP(base, Token.objects.create(user=other_user).key)
    assert other.patch(create_upload(other, 10), b"c" * 10, offset=0).status_code == 204, "others are not held up"

    held[0].sendall(b"a" * 99)
    assert read_response(held[0]).startswith("HTTP/1.1 204")
    held[0].close()
    assert tus.patch(urls[2], b"b" * 100, offset=0).status_code == 204
    held[1].close()
