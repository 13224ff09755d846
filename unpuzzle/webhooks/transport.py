"""One HTTP POST to an address already checked, within a total time limit; no Django here.

The connection goes to the exact address the SSRF check passed (no second DNS lookup), with
the Host header and TLS SNI/certificate check set to the URL's name. Redirects are not
followed. A watchdog closes the socket at the deadline, so a server that trickles its answer
byte by byte cannot hold the sender past ``timeout_s``.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from unpuzzle.webhooks.addresses import IPAddress, Target

RESPONSE_KEEP_BYTES = 512


@dataclass(frozen=True)
class Response:
    """What came back: the status, Retry-After as sent, the first bytes of the body, how long it took."""

    status: int
    retry_after: str
    body_start: bytes
    latency_ms: int


class SendTimeout(TimeoutError):
    """The endpoint did not answer within the time limit."""


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP connection to ``address`` that names ``host`` in its Host header."""

    def __init__(self, target: Target, address: IPAddress, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = address
        self._target = target

    def connect(self) -> None:
        self.sock = socket.create_connection((str(self._address), self._target.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._target.scheme == "https":
            context = ssl.create_default_context()
            self.sock = context.wrap_socket(self.sock, server_hostname=self._target.host)


def post(*, target: Target, address: IPAddress, headers: dict[str, str], body: bytes, timeout_s: float) -> Response:
    """POST ``body`` to ``target`` at ``address``; the whole exchange ends within ``timeout_s``.

    Raises SendTimeout when time runs out and OSError (ssl and http.client errors included) when
    the connection fails.
    """
    started = time.monotonic()
    connection = _PinnedConnection(target, address, timeout=timeout_s)
    expired = threading.Event()

    def cut() -> None:
        expired.set()
        sock = connection.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    watchdog = threading.Timer(timeout_s, cut)
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.request("POST", target.path, body=body, headers={**headers, "user-agent": "Unpuzzle-Webhooks/1"})
        answer = connection.getresponse()
        body_start = answer.read(RESPONSE_KEEP_BYTES)
        status, retry_after = answer.status, answer.getheader("retry-after", "")
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set() or isinstance(exc, TimeoutError):
            raise SendTimeout(f"no answer within {timeout_s:g} s") from exc
        if isinstance(exc, http.client.HTTPException):
            raise OSError(f"the answer is not HTTP: {exc!r}") from exc
        raise
    finally:
        watchdog.cancel()
        connection.close()
    if expired.is_set():
        raise SendTimeout(f"no answer within {timeout_s:g} s")
    return Response(
        status=status,
        retry_after=retry_after or "",
        body_start=body_start,
        latency_ms=int((time.monotonic() - started) * 1000),
    )
