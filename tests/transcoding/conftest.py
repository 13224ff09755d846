"""The landscape clip through the whole pipeline, shared by the ffmpeg and HLS tests (one transcode per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.transcoding.ffmpeg.helpers import Transcoded, transcode


@pytest.fixture(scope="session")
def landscape_hls(landscape_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Transcoded:
    return transcode(landscape_clip, tmp_path_factory.mktemp("hls_landscape"))
