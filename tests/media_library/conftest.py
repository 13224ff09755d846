"""Fixtures for media tests: one generated HLS set per test session."""

from __future__ import annotations

import pytest

from tests.media_library.hls_fixture import build_hls_source


@pytest.fixture(scope="session")
def hls_source(tmp_path_factory):
    """A directory with master.m3u8, 240p/index.m3u8 + seg_*.ts and poster.jpg."""
    return build_hls_source(tmp_path_factory.mktemp("hls"))
