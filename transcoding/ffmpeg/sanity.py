"""Limits on what a source may cost, judged before ffmpeg reads or decodes it (pure).

A few bytes can declare hours of video or a picture of 67 megapixels: ffprobe believes the
container and the codec headers, and a CFR encode then turns them into hours of duplicated
or concealed frames. ``declared_problem`` judges what ffprobe read (picture size, pixel rate,
duration, bytes per second); ``PacketTimeline`` reads the stream-copy pass's ``framecrc``
lines and ``timeline_problem`` judges the packets' timestamps (a jump where nothing plays).
Each returns a ``LimitProblem`` whose message says what is wrong and what to do, or None.
"""

from __future__ import annotations

import dataclasses
import math

#: What the instructor can do about a file whose timestamps or streams are broken.
REEXPORT_ADVICE = (
    "Re-export the video from the program that made it (or convert it, e.g. with HandBrake) and upload it again"
)
# framecrc writes AV_NOPTS_VALUE for a packet without a timestamp
_NO_TIMESTAMP = -(2**63)


@dataclasses.dataclass(frozen=True)
class SourceLimits:
    """The largest source accepted; None (or 0) leaves a limit unchecked.

    ``max_pixels``: coded width × height; ``max_pixel_rate``: pixels × frames per second;
    ``max_duration_s``; ``min_bytes_per_s``: file size / declared duration below which the
    duration cannot be real; ``max_gap_s``: longest stretch in which no stream has a packet.
    """

    max_pixels: int | None = None
    max_pixel_rate: float | None = None
    max_duration_s: float | None = None
    min_bytes_per_s: float | None = None
    max_gap_s: float | None = None


@dataclasses.dataclass(frozen=True)
class LimitProblem:
    """Why a source is refused: ``reason`` is ``too_large``, ``implausible`` or ``corrupt``."""

    reason: str
    message: str


def human_duration(seconds: float) -> str:
    """``36001`` → ``10 h 0 min 1 s``; ``21600`` → ``6 h``; ``0.4`` → ``0.4 s``."""
    total = round(max(0.0, seconds), 1)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(int(hours), "h"), (int(minutes), "min"), (round(secs, 1), "s")]
    while len(parts) > 1 and not parts[0][0]:
        parts.pop(0)
    while len(parts) > 1 and not parts[-1][0]:
        parts.pop()
    return " ".join(f"{value:g} {unit}" for value, unit in parts)


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _megapixels(pixels: float) -> str:
    return f"{pixels / 1e6:.1f} megapixels"


def declared_problem(
    limits: SourceLimits, *, width: int, height: int, frame_rate: float, duration: float, size_bytes: int
) -> LimitProblem | None:
    """Judge what ffprobe read, in the order an instructor can act on; None when all is within the limits."""
    pixels = width * height
    if limits.max_pixels and pixels > limits.max_pixels:
        return LimitProblem(
            "too_large",
            f"the picture is {width}x{height} ({_megapixels(pixels)}), more than the "
            f"{_megapixels(limits.max_pixels)} accepted (MAX_SOURCE_PIXELS; 4K, 3840x2160 or 2160x3840, fits). "
            f"Export it at 4K or smaller and upload it again",
        )
    pixel_rate = pixels * frame_rate
    if limits.max_pixel_rate and pixel_rate > limits.max_pixel_rate:
        return LimitProblem(
            "too_large",
            f"the video has {_megapixels(pixels)} at {frame_rate:.4g} frames per second "
            f"({pixel_rate / 1e6:,.0f} million pixels per second), more than the "
            f"{limits.max_pixel_rate / 1e6:,.0f} million accepted (MAX_SOURCE_PIXEL_RATE; 4K at 60 frames per "
            f"second fits). Export it at a lower frame rate or a smaller size and upload it again",
        )
    if limits.min_bytes_per_s and size_bytes < duration * limits.min_bytes_per_s:
        return LimitProblem(
            "implausible",
            f"the file's timestamps are broken: it says it lasts {human_duration(duration)} but holds only "
            f"{size_bytes:,} bytes ({size_bytes / duration:.2g} bytes per second; even a still slide without "
            f"sound takes more than {limits.min_bytes_per_s:g}, MIN_SOURCE_BYTES_PER_S). {REEXPORT_ADVICE}",
        )
    if limits.max_duration_s and duration > limits.max_duration_s:
        return LimitProblem(
            "too_large",
            f"the video is {human_duration(duration)} long; the longest accepted is "
            f"{human_duration(limits.max_duration_s)} (MAX_SOURCE_DURATION_S). Split it into shorter parts "
            f"and upload them separately",
        )
    return None


class PacketTimeline:
    """What the stream-copy pass's ``-f framecrc`` lines say about the packets' timestamps.

    Stream 0 is the video stream (the pass maps it first). The gap is the longest stretch of
    presentation time that no packet of any stream covers, found in file order: reordered
    B-frames and interleaving only move within what is already covered.
    """

    def __init__(self) -> None:
        self.video_frames = 0
        self.first: float | None = None
        self.covered_until = -math.inf
        self.largest_gap: tuple[float, float] | None = None
        self._timebases: dict[int, float] = {}

    def feed(self, line: str) -> None:
        """Consume one framecrc line (``#tb 0: 1/1000`` headers and ``stream, dts, pts, duration, …`` rows)."""
        if line.startswith("#tb "):
            index, _, fraction = line[4:].partition(":")
            num, _, den = fraction.strip().partition("/")
            if index.strip().isdigit() and num.isdigit() and den.isdigit() and int(den):
                self._timebases[int(index)] = int(num) / int(den)
            return
        fields = line.split(",", 4)
        if line.startswith("#") or len(fields) < 4:
            return
        try:
            stream, dts, pts, duration = (int(field) for field in fields[:4])
        except ValueError:
            return
        if stream == 0:
            self.video_frames += 1
        timebase = self._timebases.get(stream)
        stamp = pts if pts != _NO_TIMESTAMP else dts
        if timebase is None or stamp == _NO_TIMESTAMP:
            return
        start = stamp * timebase
        end = start + max(duration, 0) * timebase
        if self.first is None:
            self.first = start
        else:
            self.first = min(self.first, start)
            self._note_gap(self.covered_until, start)
        self.covered_until = max(self.covered_until, end)

    def _note_gap(self, start: float, end: float) -> None:
        if end - start > 0 and (self.largest_gap is None or end - start > self.largest_gap[1] - self.largest_gap[0]):
            self.largest_gap = (start, end)

    def gap_within(self, *, start: float, duration: float) -> tuple[float, float] | None:
        """The longest stretch of ``start`` .. ``start + duration`` without packets, head and tail included."""
        if self.first is None:
            return (start, start + duration)
        gaps = [gap for gap in (self.largest_gap, (start, self.first), (self.covered_until, start + duration)) if gap]
        return max(gaps, key=lambda gap: gap[1] - gap[0])


def timeline_problem(
    limits: SourceLimits, timeline: PacketTimeline, *, start: float, duration: float
) -> LimitProblem | None:
    """Judge the packets: a video stream without pictures, or a jump longer than ``max_gap_s``."""
    if timeline.video_frames == 0:
        return LimitProblem("corrupt", f"the video stream holds no pictures. {REEXPORT_ADVICE}")
    gap = timeline.gap_within(start=start, duration=duration)
    if limits.max_gap_s and gap is not None and gap[1] - gap[0] > limits.max_gap_s:
        frames = "1 frame is" if timeline.video_frames == 1 else f"{timeline.video_frames:,} frames are"
        return LimitProblem(
            "implausible",
            f"the file's timestamps are broken: its {frames} spread over {human_duration(duration)} and "
            f"nothing plays for {human_duration(gap[1] - gap[0])} (from {_clock(gap[0])} to {_clock(gap[1])}; "
            f"at most {human_duration(limits.max_gap_s)} is accepted, MAX_SOURCE_TIMESTAMP_GAP_S). {REEXPORT_ADVICE}",
        )
    return None
