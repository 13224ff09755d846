"""Fixtures for the tus server tests: generated clips, a token user, a live HTTP endpoint."""

from __future__ import annotations

import base64
import os
import struct
from pathlib import Path

import pytest
import requests
from rest_framework.authtoken.models import Token

from tests.clips import make_clip
from tests.factories import make_user


@pytest.fixture(scope="session")
def upload_clip(tmp_path_factory) -> Path:
    """A 1 s 320x240 clip of about 2 MB (several 256 KiB chunks)."""
    return make_clip(
        tmp_path_factory.mktemp("clips") / "lecture.mp4", width=320, height=240, duration=1, fps=25, crf=10, noise=True
    )


@pytest.fixture(scope="session")
def small_clip(tmp_path_factory) -> Path:
    """A 1 s 160x120 clip of a few KB, for tests that only need a valid video."""
    return make_clip(tmp_path_factory.mktemp("clips") / "small.mp4", width=160, height=120, duration=1, fps=25)


@pytest.fixture(scope="session")
def big_clip(small_clip) -> bytes:
    """A valid MP4 of about 11 MiB: a tiny clip followed by a top-level 'free' box of random bytes."""
    padding = os.urandom(11 * 1024 * 1024 - small_clip.stat().st_size)
    return small_clip.read_bytes() + struct.pack(">I", len(padding) + 8) + b"free" + padding


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def metadata_header(**values: str) -> str:
    return ",".join(f"{k} {b64(v)}" for k, v in values.items())


class TusHTTP:
    """A requests session against the live server, authenticated with a token, speaking tus."""

    def __init__(self, base: str, token: str):
        self.base = base.rstrip("/")
        self.endpoint = f"{self.base}/api/v1/uploads/"
        self.http = requests.Session()
        self.http.headers.update({"Authorization": f"Token {token}", "Tus-Resumable": "1.0.0"})

    def create(self, length: int | None = None, *, filename: str = "lecture.mp4", headers=None, **kwargs):
        hdrs = {"Upload-Metadata": metadata_header(filename=filename)} if filename else {}
        if length is not None:
            hdrs["Upload-Length"] = str(length)
        hdrs.update(headers or {})
        return self.http.post(self.endpoint, headers=hdrs, timeout=30, **kwargs)

    def patch(self, url: str, data: bytes, *, offset: int, headers=None, **kwargs):
        hdrs = {"Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)}
        hdrs.update(headers or {})
        return self.http.patch(url, data=data, headers=hdrs, timeout=30, **kwargs)

    def head(self, url: str, **kwargs):
        return self.http.head(url, timeout=30, **kwargs)


def create_upload(tus_http: TusHTTP, length: int, **kwargs) -> str:
    """Create a tus upload that must succeed; its URL."""
    response = tus_http.create(length, **kwargs)
    assert response.status_code == 201, response.text
    return response.headers["Location"]


@pytest.fixture
def token(user) -> str:
    return Token.objects.create(user=user).key


@pytest.fixture
def tus_http(live_server, token) -> TusHTTP:
    return TusHTTP(live_server.url, token)


@pytest.fixture
def other_tus_http(live_server, db) -> TusHTTP:
    return TusHTTP(live_server.url, Token.objects.create(user=make_user()).key)
