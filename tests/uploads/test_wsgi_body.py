"""uploads.wsgi_body against a real gunicorn (gthread, as in production): bodies read straight
from the socket arrive whole, and keep-alive and pipelined requests still work."""

import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from uploads.wsgi_body import socket_body

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gunicorn_port():
    port = free_port()
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "tests.uploads.gunicorn_body_app:app",
            "--bind",
            f"127.0.0.1:{port}",
            "--worker-class",
            "gthread",
            "--workers",
            "1",
            "--threads",
            "2",
            "--no-control-socket",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert time.monotonic() < deadline and proc.poll() is None, "gunicorn did not start"
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _request(body: bytes, buffer: int = 65536) -> bytes:
    return (f"PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\nX-Buffer: {buffer}\r\n\r\n").encode() + body


def _responses(sock: socket.socket, count: int) -> list[str]:
    data, answers = b"", []
    while len(answers) < count:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {answers}"
        data += chunk
        while b"\r\n\r\n" in data:
            head, rest = data.split(b"\r\n\r\n", 1)
            length = int(
                next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
            )
            if len(rest) < length:
                break
            answers.append(rest[:length].decode())
            data = rest[length:]
    return answers


def _expected(body: bytes) -> str:
    return f"direct {len(body)} {hashlib.sha256(body).hexdigest()}"


def test_bodies_arrive_whole_over_one_keep_alive_connection(gunicorn_port):
    bodies = [os.urandom(3 * 1024 * 1024 + 17), os.urandom(100), b"", os.urandom(1024 * 1024)]
    with socket.create_connection(("127.0.0.1", gunicorn_port), timeout=10) as sock:
        for body, buffer in zip(bodies, [1024 * 1024, 7, 4096, 65536], strict=True):
            sock.sendall(_request(body, buffer))
            assert _responses(sock, 1) == [_expected(body)]


def test_pipelined_requests_are_each_read_to_their_own_end(gunicorn_port):
    # The second request arrives with the first: gunicorn buffers it behind the first body.
    bodies = [os.urandom(5000), os.urandom(300_000), os.urandom(10)]
    with socket.create_connection(("127.0.0.1", gunicorn_port), timeout=10) as sock:
        sock.sendall(b"".join(_request(body, 1000) for body in bodies))
        assert _responses(sock, 3) == [_expected(body) for body in bodies]


def test_other_servers_get_no_socket_body():
    assert socket_body({"wsgi.input": object(), "CONTENT_LENGTH": "5"}, 5) is None


def test_a_body_cut_short_ends_the_read_and_the_connection(gunicorn_port):
    sent = os.urandom(5000)
    with socket.create_connection(("127.0.0.1", gunicorn_port), timeout=10) as sock:
        sock.sendall(b"PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" + sent)
        sock.shutdown(socket.SHUT_WR)
        assert _responses(sock, 1) == [_expected(sent)]
        assert sock.recv(1) == b""  # and the connection is not reused
