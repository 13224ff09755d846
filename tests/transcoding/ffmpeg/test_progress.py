"""Parsing ffmpeg's -progress output (pure)."""

from __future__ import annotations

import pytest

from transcoding.ffmpeg.progress import ProgressParser, ProgressSnapshot, parse_progress_line

PROGRESS_BLOCK = """frame=45
fps=0.00
stream_0_0_q=28.0
bitrate=N/A
total_size=N/A
out_time_us=1500000
out_time_ms=1500000
out_time=00:00:01.500000
dup_frames=0
drop_frames=0
speed=2.99x
progress=continue
"""


def test_parse_progress_line() -> None:
    assert parse_progress_line("out_time_us=1500000\n") == ("out_time_us", "1500000")
    assert parse_progress_line("progress=end") == ("progress", "end")
    assert parse_progress_line("[hls @ 0x1] Opening 'x' for writing") is None
    assert parse_progress_line("") is None


def test_progress_parser_reports_blocks() -> None:
    parser = ProgressParser()
    snapshots = [s for s in (parser.feed(line) for line in PROGRESS_BLOCK.splitlines()) if s is not None]
    assert len(snapshots) == 1
    snapshot = snapshots[0]
    assert snapshot.out_time == 1.5 and not snapshot.finished and snapshot.speed == pytest.approx(2.99)
    assert snapshot.percent(6.0) == 25.0
    assert snapshot.fields["frame"] == "45"

    end = [parser.feed(line) for line in ["out_time_us=6000000", "progress=end"]][-1]
    assert end is not None and end.finished and end.percent(6.0) == 100.0


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["out_time_us=N/A", "out_time_ms=N/A", "out_time=N/A"], 0.0),
        (["out_time=00:01:02.250000"], 62.25),
        (["out_time_us=-23220", "out_time=-00:00:00.023220"], 0.0),
        (["out_time_ms=2500000"], 2.5),
    ],
)
def test_progress_parser_out_time_variants(lines: list[str], expected: float) -> None:
    parser = ProgressParser()
    for line in lines:
        assert parser.feed(line) is None
    snapshot = parser.feed("progress=continue")
    assert snapshot is not None and snapshot.out_time == pytest.approx(expected)
    assert 0.0 <= snapshot.percent(10.0) <= 100.0


def test_progress_percent_is_clamped() -> None:
    snapshot = ProgressSnapshot(out_time=12.0, finished=False, speed=None, fields={})
    assert snapshot.percent(10.0) == 100.0
    assert snapshot.percent(0.0) == 0.0
