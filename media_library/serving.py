"""Serving stored files over HTTP from local storage: Range, validators, CDN cache headers.

Used in development and single-machine installs, where no CDN sits in front of the
files. Bodies are streamed in chunks; a file is never read whole into memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.cache import get_conditional_response
from django.utils.http import http_date, parse_http_date_safe

from media_library.ranges import RangeNotSatisfiable, parse_range_header
from unpuzzle.content_types import content_headers_for_key
from unpuzzle.storage import get_storage, is_local

CHUNK_BYTES = 64 * 1024


def serve_local_file(request: HttpRequest, key: str) -> HttpResponseBase:
    """Answer GET/HEAD for a key in local storage.

    Content-Type and Cache-Control come from ``content_headers_for_key``; a strong
    ETag (mtime and size) and Last-Modified allow conditional requests (304/412);
    a single byte range answers 206, an unsatisfiable one 416, and ``If-Range``
    that no longer matches falls back to the whole file.
    """
    storage = get_storage()
    if not is_local(storage):
        raise ValueError("serve_local_file only serves local storage; remote objects are presigned")
    path = Path(storage.path(key))
    try:
        stat = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise Http404(f"no stored file {key!r}") from None
    if not path.is_file():
        raise Http404(f"no stored file {key!r}")

    size = stat.st_size
    mtime = int(stat.st_mtime)
    etag = f'"{stat.st_mtime_ns:x}-{size:x}"'
    content_type, cache_control = content_headers_for_key(key)
    validators = {"ETag": etag, "Last-Modified": http_date(mtime), "Cache-Control": cache_control}

    conditional = get_conditional_response(request, etag=etag, last_modified=mtime)
    if conditional is not None:
        for name, value in validators.items():
            conditional.headers[name] = value
        return conditional

    response: HttpResponseBase
    byte_range = None
    if _if_range_matches(request.headers.get("If-Range"), etag=etag, mtime=mtime):
        try:
            byte_range = parse_range_header(request.headers.get("Range"), size)
        except RangeNotSatisfiable as exc:
            response = HttpResponse(str(exc), status=416, content_type="text/plain")
            response.headers["Content-Range"] = f"bytes */{size}"
            response.headers["Accept-Ranges"] = "bytes"
            return response

    start, length = (byte_range.start, byte_range.length) if byte_range else (0, size)
    status = 206 if byte_range else 200
    if request.method == "HEAD":
        response = HttpResponse(status=status, content_type=content_type)
    else:
        response = StreamingHttpResponse(_read_chunks(path, start, length), status=status, content_type=content_type)
    for name, value in validators.items():
        response.headers[name] = value
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["Content-Length"] = str(length)
    if byte_range:
        response.headers["Content-Range"] = byte_range.content_range
    return response


def _if_range_matches(if_range: str | None, *, etag: str, mtime: int) -> bool:
    """True when a Range may be honoured: no If-Range, or one naming the current version."""
    if not if_range:
        return True
    if if_range.startswith(('"', "W/")):
        # If-Range needs a strong comparison; a weak tag never matches.
        return if_range == etag
    return parse_http_date_safe(if_range) == mtime


def _read_chunks(path: os.PathLike, start: int, length: int) -> Iterator[bytes]:
    """Yield ``length`` bytes of a file from ``start``; the file closes when the response does."""
    with open(path, "rb") as fh:
        fh.seek(start)
        remaining = length
        while remaining > 0:
            chunk = fh.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
