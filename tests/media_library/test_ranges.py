"""Range header parsing for local HLS serving."""

from __future__ import annotations

import pytest

from media_library.ranges import ByteRange, RangeNotSatisfiable, parse_range_header


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", ByteRange(0, 9, 100)),
        ("bytes=90-", ByteRange(90, 99, 100)),
        ("bytes=90-500", ByteRange(90, 99, 100)),
        ("bytes=-10", ByteRange(90, 99, 100)),
        ("bytes=-500", ByteRange(0, 99, 100)),
        (" Bytes = 5-5 ", ByteRange(5, 5, 100)),
    ],
)
def test_single_ranges(header, expected):
    assert parse_range_header(header, 100) == expected


@pytest.mark.parametrize(
    "header", [None, "", "bytes", "items=0-1", "bytes=a-b", "bytes=5-1", "bytes=-", "bytes=0-1,5-6", "bytes=1.5-2"]
)
def test_ignored_headers_mean_whole_file(header):
    assert parse_range_header(header, 100) is None


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=200-300", 100), ("bytes=-0", 100), ("bytes=0-", 0)]
)
def test_unsatisfiable(header, size):
    with pytest.raises(RangeNotSatisfiable):
        parse_range_header(header, size)


def test_content_range_and_length():
    byte_range = parse_range_header("bytes=10-19", 1000)
    assert byte_range.length == 10
    assert byte_range.content_range == "bytes 10-19/1000"
