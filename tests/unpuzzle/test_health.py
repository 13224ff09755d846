"""/healthz answers, over real HTTP, whatever a dependency does: an S3 endpoint that accepts
connections and never replies is reported, not waited for."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import use_s3_storage

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def silent_s3_endpoint() -> Iterator[str]:
    """A TCP server on loopback that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_healthz_reports_a_silent_storage_endpoint_instead_of_waiting_for_it(
    live_server, settings, silent_s3_endpoint, monitor_headers
):
    use_s3_storage(settings, endpoint=silent_s3_endpoint, bucket_name="lectures")

    def probe(_: int) -> requests.Response:
        # Far above the health deadline; without one, boto3 would wait 60 s per attempt, 5 attempts.
        return requests.get(f"{live_server.url}/healthz", headers=monitor_headers, timeout=15)

    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(probe, range(4)))
    for response in responses:
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unhealthy"
        storage = body["checks"]["storage"]
        assert storage["ok"] is False and "no answer within" in storage["error"]
        assert all(body["checks"][name]["ok"] for name in ("database", "disk", "ffmpeg", "ffprobe", "queue"))
