"""Messages owners read carry no server paths or storage URLs."""

from __future__ import annotations

import pytest

from unpuzzle.redact import redact_server_details


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (
            "OSError: [Errno 28] No space left on device: '/var/lib/unpuzzle/transcode/unpuzzle-transcode-1/seg_001.ts'",
            "OSError: [Errno 28] No space left on device: '<server file>'",
        ),
        (
            'Could not connect to the endpoint URL: "http://10.0.0.5:9000/lectures-bucket/videos/x/hls/1/a.m3u8"',
            'Could not connect to the endpoint URL: "<storage URL>"',
        ),
        (
            "ffmpeg exited with code 1: /tmp/x/source.mp4: Invalid data",
            "ffmpeg exited with code 1: <server file>: Invalid data",
        ),
        # Fractions, ratios and "and/or" are not paths.
        ("retrying in 30 s: 2/3 done, 16/9 and/or 4/3 (a/b)", "retrying in 30 s: 2/3 done, 16/9 and/or 4/3 (a/b)"),
        ("cancelled by alice", "cancelled by alice"),
    ],
)
def test_paths_and_urls_become_placeholders(raw, shown):
    assert redact_server_details(raw) == shown
