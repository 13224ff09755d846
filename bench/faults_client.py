"""A tus client for bench/faults.py that resumes like a real one (HEAD, then PATCH from the
server's offset, after any error) and can cut its own connection at chosen byte offsets."""

from __future__ import annotations

import base64
import http.client
import socket
import struct
import threading
import time
from collections import Counter
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

PIECE = 64 * 1024
# Answers worth waiting out: rate and concurrency limits, the front's "no upstream", a full disk.
WAIT_STATUSES = frozenset({429, 502, 503, 504, 507})


class TryAgain(Exception):
    """The server answered with a status worth waiting out."""


# Errors that mean "the server (or the connection) went away": wait, HEAD, resume.
CONNECTION_ERRORS = (OSError, http.client.HTTPException, TryAgain)


class Upload(threading.Thread):
    """One file uploaded over tus in ``chunk``-byte PATCHes, at most ``rate`` bytes/s (0: no limit).

    ``cuts`` are byte offsets where the client closes its socket mid-PATCH (FIN, or RST when
    ``rst`` says so for that cut). Every failure (connection refused or reset, 409, 423, 5xx,
    507) is followed by a HEAD and a PATCH from the server's offset, until ``deadline`` (epoch).
    ``started`` is set once the first PATCH is under way; ``done`` at the end.
    """

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        path: Path,
        chunk: int,
        rate: float = 0,
        cuts: list[int] | None = None,
        rst: list[bool] | None = None,
        deadline: float,
    ) -> None:
        super().__init__(daemon=True)
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers = {"Authorization": f"Token {token}", "Tus-Resumable": "1.0.0"}
        self.path = path
        self.size = path.stat().st_size
        self.chunk = chunk
        self.rate = rate
        self.cuts = sorted(cuts or [])
        self.rst = dict(zip(cuts or [], rst or [], strict=False))
        self.deadline = deadline
        self.url = ""
        self.upload_id = ""
        self.answers: Counter[str] = Counter()
        self.bytes_sent = 0
        self.cut_kinds: Counter[str] = Counter()
        self.error = ""
        self.last_status = 0
        self.last_cut_at = 0.0
        self.cut_pending: int | None = None
        self.cut_losses: list[int] = []  # bytes sent before each cut that the next HEAD did not report
        self.completed_at: float | None = None
        self.created = 0.0  # when the round started it (epoch)
        self.sha256 = ""  # of the local file
        self.started = threading.Event()
        self.done = threading.Event()

    # --- requests ---------------------------------------------------------------------------

    def _conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=60)

    def _create(self) -> None:
        metadata = ",".join(
            f"{key} {base64.b64encode(value.encode()).decode()}"
            for key, value in (("filename", self.path.name), ("title", f"faults {self.path.stem}"))
        )
        conn = self._conn()
        try:
            conn.request(
                "POST",
                "/api/v1/uploads/",
                headers={**self.headers, "Upload-Length": str(self.size), "Upload-Metadata": metadata},
            )
            response = conn.getresponse()
            response.read()
        finally:
            conn.close()
        if response.status in WAIT_STATUSES:
            raise TryAgain(f"create answered {response.status}")
        if response.status != 201:
            raise RuntimeError(f"create answered {response.status}")
        self.url = urlsplit(response.getheader("Location") or "").path
        self.upload_id = self.url.rstrip("/").rsplit("/", 1)[-1]

    def _head(self) -> int | None:
        conn = self._conn()
        try:
            conn.request("HEAD", self.url, headers=self.headers)
            response = conn.getresponse()
            response.read()
        finally:
            conn.close()
        self.answers[f"HEAD {response.status}"] += 1
        return int(response.getheader("Upload-Offset") or 0) if response.status == 200 else None

    def _send(self, conn: http.client.HTTPConnection, fh: BinaryIO, offset: int, end: int) -> None:
        fh.seek(offset)
        started, sent = time.monotonic(), 0
        while sent < end - offset:
            piece = fh.read(min(PIECE, end - offset - sent))
            conn.send(piece)
            sent += len(piece)
            self.bytes_sent += len(piece)
            self.started.set()
            if self.rate:
                ahead = sent / self.rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)

    def _patch(self, fh: BinaryIO, offset: int) -> int | None:
        """One PATCH from ``offset``: the new offset, or None when it has to be resumed."""
        end = min(offset + self.chunk, self.size)
        cut = next((c for c in self.cuts if offset < c < end), None)
        conn = self._conn()
        try:
            conn.putrequest("PATCH", self.url, skip_accept_encoding=True)
            for name, value in {
                **self.headers,
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": str(offset),
                "Content-Length": str(end - offset),
            }.items():
                conn.putheader(name, value)
            conn.endheaders()
            if cut is not None:
                self._send(conn, fh, offset, cut)
                rst = self.rst.get(cut, False)
                self._cut(conn, rst=rst)
                self.cuts.remove(cut)
                self.cut_kinds["RST" if rst else "FIN"] += 1
                self.last_cut_at = time.time()
                self.cut_pending = cut
                return None
            try:
                self._send(conn, fh, offset, end)
            except OSError:
                # The server may have answered early (409, 423, 507) and closed: read that answer.
                response = self._early_answer(conn)
            else:
                response = conn.getresponse()
            response.read()
        finally:
            conn.close()
        self.answers[f"PATCH {response.status}"] += 1
        self.last_status = response.status
        return int(response.getheader("Upload-Offset") or 0) if response.status == 204 else None

    def _early_answer(self, conn: http.client.HTTPConnection) -> http.client.HTTPResponse:
        try:
            return conn.getresponse()
        except CONNECTION_ERRORS:
            self.answers["PATCH no answer"] += 1
            raise

    @staticmethod
    def _cut(conn: http.client.HTTPConnection, *, rst: bool) -> None:
        sock = conn.sock
        if sock is None:
            return
        if rst:  # abortive close: the peer gets a reset, and unread bytes are dropped
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        conn.sock = None

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # reported in the round's outcome
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.done.set()

    def _wait(self, seconds: float) -> None:
        if time.time() + seconds > self.deadline:
            raise TimeoutError("upload not complete by the deadline")
        time.sleep(seconds)

    def _run(self) -> None:
        while not self.url:
            try:
                self._create()
            except CONNECTION_ERRORS as exc:
                self.answers[f"POST {type(exc).__name__}"] += 1
                self._wait(0.5)
        offset: int | None = 0
        with open(self.path, "rb") as fh:
            while True:
                if offset is None:
                    try:
                        offset = self._head()
                    except CONNECTION_ERRORS as exc:
                        self.answers[f"HEAD {type(exc).__name__}"] += 1
                    if offset is None:
                        self._wait(0.5)
                        continue
                    if self.cut_pending is not None:
                        self.cut_losses.append(self.cut_pending - offset)
                        self.cut_pending = None
                if offset >= self.size:
                    break
                self.last_status = 0
                try:
                    offset = self._patch(fh, offset)
                except CONNECTION_ERRORS as exc:
                    self.answers[f"PATCH {type(exc).__name__}"] += 1
                    offset = None
                if offset is None:
                    # a full disk or a server error: give it a second; a lock or a cut: resume at once
                    self._wait(1.0 if self.last_status in WAIT_STATUSES else 0.1)
        self.completed_at = time.time()
