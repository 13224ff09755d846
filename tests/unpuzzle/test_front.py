"""The nginx front scripts/run.sh starts: slow clients cost nginx a connection, not a gunicorn thread.

Real nginx (Debian's) in front of the real gunicorn on a unix socket, configured by
``manage.py nginx_conf`` exactly as run.sh does it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from tests.conftest import free_port
from tests.uploads.conftest import TusHTTP, create_upload

pytestmark = pytest.mark.django_db(transaction=True)

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@pytest.fixture
def front(start_gunicorn, settings, isolated_var) -> Iterator[str]:
    """nginx on a free loopback port before gunicorn (8 threads); yields its base URL."""
    settings.VAR_DIR = isolated_var
    sock_dir = Path(tempfile.mkdtemp(prefix="unpuzzle-web-", dir="/tmp"))  # short: unix socket paths are limited
    sock_dir.chmod(0o711)
    start_gunicorn(unix_socket=sock_dir / "gunicorn.sock", WEB_THREADS="8", NUM_PROXIES="1")  # as run.sh starts it
    port = free_port()
    conf = Path(settings.VAR_DIR) / "run" / "nginx.conf"
    with open(os.devnull, "w") as quiet:
        call_command("nginx_conf", listen=f"127.0.0.1:{port}", socket=str(sock_dir / "gunicorn.sock"), stdout=quiet)
    nginx = subprocess.Popen(
        [NGINX, "-e", str(conf.parent / "nginx-error.log"), "-c", str(conf)], start_new_session=True
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            break
        assert nginx.poll() is None, (conf.parent / "nginx-error.log").read_text()
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(nginx.pid, signal.SIGKILL)
    nginx.wait()
    shutil.rmtree(sock_dir, ignore_errors=True)


def test_slow_headers_and_bodies_do_not_hold_the_web_server(front, user):
    slow = []
    try:
        for number in range(100):
            sock = socket.create_connection(("127.0.0.1", int(front.rsplit(":", 1)[1])), timeout=10)
            if number % 2:
                sock.sendall(b"GET /api/v1/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # headers never end
            else:
                # An anonymous form post whose body trickles: nginx reads bodies before gunicorn sees them.
                sock.sendall(b"POST /admin/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\nx")
            slow.append(sock)
        # 100 slow clients against 8 threads: /healthz still answers, each time.
        for _ in range(20):
            response = requests.get(f"{front}/healthz", timeout=5)
            assert response.status_code in (200, 503) and response.json()["checks"]
    finally:
        for sock in slow:
            sock.close()


def test_uploads_stream_through_the_front(front, user):
    tus = TusHTTP(front, Token.objects.create(user=user).key)
    data = os.urandom(3 * 1024 * 1024 + 17)
    url = create_upload(tus, len(data))
    assert url.startswith(front), "Location names the address the client used"
    half = len(data) // 2
    assert tus.patch(url, data[:half], offset=0).headers["Upload-Offset"] == str(half)
    done = tus.patch(url, data[half:], offset=half)
    assert done.status_code == 204 and done.headers["Upload-Offset"] == str(len(data))


def test_methods_nginx_refuses_itself_get_the_apis_405(front, user):
    # nginx answers TRACE before any location (found by bench/api_fuzz.py: HTML and no Allow header).
    refused = requests.request("TRACE", f"{front}/api/v1/videos/", timeout=10)
    assert refused.status_code == 405
    assert refused.json() == {"detail": "this method is not allowed here", "code": "method_not_allowed"}
    assert "GET" in refused.headers["Allow"]
    # The app's own 405s pass through unchanged, with the methods that URL takes.
    token = Token.objects.create(user=user).key
    own = requests.post(f"{front}/api/v1/me/", headers={"Authorization": f"Token {token}"}, timeout=10)
    assert own.status_code == 405 and own.headers["Allow"] == "GET, HEAD, OPTIONS"
