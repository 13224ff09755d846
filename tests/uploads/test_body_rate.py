"""The body speed floor on its own, with a fake clock: a window with too few bytes is refused before
the next read, never after one (the bytes a read returned are always handed on)."""

from __future__ import annotations

import io

import pytest

from uploads.body_rate import BodyTooSlow, RateFloorStream


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_window_with_enough_bytes_passes_and_one_without_is_refused():
    clock = Clock()
    stream = RateFloorStream(io.BytesIO(b"x" * 1000), min_bytes_per_s=10, window_s=5, clock=clock)
    assert stream.read(60) == b"x" * 60  # 60 >= 10 B/s x 5 s
    clock.now = 5.0
    assert stream.read(1) == b"x"  # the first window is over and was fast enough: a new one starts
    clock.now = 10.5
    with pytest.raises(BodyTooSlow, match=r"1 bytes arrived in 6 s, less than 10 bytes/s"):
        stream.read(100)


def test_readinto_is_kept_and_the_last_bytes_of_a_slow_window_are_still_delivered():
    clock = Clock()
    stream = RateFloorStream(io.BytesIO(b"abc"), min_bytes_per_s=100, window_s=1, clock=clock)
    buffer = bytearray(2)
    clock.now = 0.9
    assert stream.readinto(memoryview(buffer)) == 2 and bytes(buffer) == b"ab"
    clock.now = 1.5  # the window ended slow: refused at the next read, after "ab" was handed on
    with pytest.raises(BodyTooSlow):
        stream.readinto(memoryview(buffer))
