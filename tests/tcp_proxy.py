"""A TCP proxy on loopback that a test (or ``bench/faults.py``) can cut: put it in front of the S3
endpoint and storage refuses connections, or accepts them and never answers, until it is restored."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Literal

Mode = Literal["pass", "refuse", "hang"]


class TcpProxy:
    """Forwards every connection to ``target`` while ``mode`` is "pass".

    "refuse" closes the listening socket (clients get ECONNREFUSED) and drops open
    connections; "hang" accepts and holds connections without a byte either way. Each
    mode change applies to open connections as well as new ones.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode: Mode = "pass"
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._held: list[socket.socket] = []
        self._stopped = threading.Event()
        #: Bytes the target sent to clients (response bodies and headers), for tests that count downloads.
        self.bytes_down = 0
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._server: socket.socket | None = None
        self._listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _listen(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(128)
        server.settimeout(0.2)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while not self._stopped.is_set() and self._server is server:
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.mode == "hang":
                self._held.append(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            # a small send buffer towards the client: what is counted as sent is what the client could
            # take, not megabytes parked in this host's buffers when the client stops reading
            client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            with self._lock:
                self._open.update((client, upstream))
            for src, dst, down in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pipe, args=(src, dst, down), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, down: bool = False) -> None:
        try:
            while chunk := src.recv(65536):
                if self.mode != "pass":
                    break
                dst.sendall(chunk)
                if down:
                    with self._lock:
                        self.bytes_down += len(chunk)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
                with self._lock:
                    self._open.discard(sock)

    def _drop_open(self) -> None:
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def set_mode(self, mode: Mode) -> None:
        """Switch to ``mode`` now: open connections are dropped on leaving "pass"."""
        if mode == self.mode:
            return
        previous, self.mode = self.mode, mode
        if previous == "pass":
            self._drop_open()
        if mode == "refuse" and self._server is not None:
            server, self._server = self._server, None
            server.close()
        if previous == "hang":
            for sock in self._held:
                sock.close()
            self._held.clear()
        if mode != "refuse" and self._server is None:
            self._listen()

    def close(self) -> None:
        self._stopped.set()
        self.set_mode("refuse")
        for sock in self._held:
            sock.close()
        self._held.clear()
