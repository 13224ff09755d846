"""A floor under the speed of a request body: a body that trickles (a slow client, or one holding a
web thread on purpose) is cut once a window passes with too few bytes. Pure; no Django imports."""

from __future__ import annotations

import time
from collections.abc import Callable


class BodyTooSlow(TimeoutError):
    """Fewer than the minimum bytes arrived within one window; the bytes before are kept."""


class RateFloorStream:
    """Wraps a body stream (``readinto`` or ``read``) and raises ``BodyTooSlow`` when a window of
    ``window_s`` seconds ends with fewer than ``min_bytes_per_s * window_s`` bytes received in it."""

    def __init__(
        self,
        stream: object,
        *,
        min_bytes_per_s: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._floor = min_bytes_per_s * window_s
        self._window_s = window_s
        self._clock = clock
        self._window_start = clock()
        self._window_bytes = 0
        if hasattr(stream, "readinto"):
            self.readinto = self._readinto

    def _check(self) -> None:
        """Before each read: end a full window, refusing it when it brought too few bytes. Checked
        before reading, not after, so the bytes a read returns are always handed on."""
        now = self._clock()
        if now - self._window_start < self._window_s:
            return
        if self._window_bytes < self._floor:
            raise BodyTooSlow(
                f"{self._window_bytes} bytes arrived in {now - self._window_start:.0f} s, "
                f"less than {self._floor / self._window_s:.0f} bytes/s"
            )
        self._window_start, self._window_bytes = now, 0

    def _readinto(self, buffer: memoryview) -> int:
        self._check()
        received = int(self._stream.readinto(buffer))  # type: ignore[attr-defined]
        self._window_bytes += received
        return received

    def read(self, size: int, /) -> bytes:
        self._check()
        data = bytes(self._stream.read(size))  # type: ignore[attr-defined]
        self._window_bytes += len(data)
        return data
