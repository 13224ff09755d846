"""Read a request body of known length straight from gunicorn's socket into a caller's buffer.

gunicorn's ``wsgi.input`` only offers ``read(n)``: every MiB of an upload is received into a new
bytes object and copied through two ``BytesIO`` buffers and several slices before the view sees
it. For a large PATCH that copying cost as much as writing the bytes to disk. ``SocketBody``
first takes what gunicorn already buffered (straight from its buffers), then ``recv_into`` the
caller's reusable buffer, and keeps gunicorn's count of unread body bytes current so
keep-alive and draining work as before. Any other server, or a gunicorn whose internals
differ, gets ``None`` and the caller reads ``wsgi.input`` as usual. No Django imports.
"""

from __future__ import annotations

import io
from collections.abc import Mapping


class SocketBody:
    """A ``readinto``/``read`` stream over the ``length`` body bytes of one gunicorn request."""

    def __init__(self, *, body, reader, sock, length: int):
        self._body = body
        self._reader = reader
        self._sock = sock
        self._remaining = length

    def _take_buffered(self, view: memoryview, want: int) -> int:
        """Move up to ``want`` body bytes gunicorn already holds into ``view``: its ``Body`` buffer,
        then what its unreader read ahead with the headers (which may run into a pipelined next
        request, hence the reader's count). Taken directly: ``Body.read`` would wait for 1 KiB more,
        which a slow client may never send. 0 when nothing is held."""
        for source, counted in ((self._body, False), (self._reader.unreader, True)):
            data = source.buf.getvalue()
            take = min(want, len(data), self._reader.length if counted else want)
            if take:
                view[:take] = data[:take]
                source.buf = io.BytesIO()
                source.buf.write(data[take:])  # left at its end, where gunicorn expects the position
                if counted:
                    self._reader.length -= take
                return take
        return 0

    def readinto(self, buffer) -> int:
        """Fill up to ``len(buffer)`` bytes; 0 at the end of the body (or if the client went away)."""
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._remaining)
        if want == 0:
            return 0
        try:
            received = self._take_buffered(view, want)
            if not received:
                received = self._sock.recv_into(view[:want])
                self._reader.length -= received
        except BaseException:
            # Where the next request starts is unknown now: gunicorn must close the connection.
            self._body.failed = True
            raise
        if received == 0:
            self._body.failed = True
        self._remaining -= received
        return received

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (the rest of the body if negative); short only at the end."""
        size = self._remaining if size is None or size < 0 else min(size, self._remaining)
        out = bytearray(size)
        got = 0
        while got < size:
            n = self.readinto(memoryview(out)[got:])
            if n == 0:
                break
            got += n
        return bytes(out[:got])


def socket_body(environ: Mapping, length: int) -> SocketBody | None:
    """A ``SocketBody`` for this request if it is served by gunicorn and its body is untouched, else None."""
    sock = environ.get("gunicorn.socket")
    body = environ.get("wsgi.input")
    reader = getattr(body, "reader", None)
    unreader = getattr(reader, "unreader", None)
    if sock is None or not hasattr(sock, "recv_into") or getattr(unreader, "sock", None) is not sock:
        return None
    # Only a Content-Length body nobody has read yet: chunked bodies keep gunicorn's own decoder.
    if type(reader).__name__ != "LengthReader" or getattr(reader, "length", None) != length:
        return None
    buffered = getattr(body, "buf", None)
    if not isinstance(buffered, io.BytesIO) or buffered.getvalue():
        return None
    if not isinstance(getattr(unreader, "buf", None), io.BytesIO) or not hasattr(body, "failed"):
        return None
    return SocketBody(body=body, reader=reader, sock=sock, length=length)
