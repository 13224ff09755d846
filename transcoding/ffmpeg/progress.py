"""ffmpeg ``-progress`` output: line parsing and per-block snapshots (pure)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from transcoding.ffmpeg.values import to_float, to_int


def parse_progress_line(line: str) -> tuple[str, str] | None:
    """Split one ``-progress`` line (``key=value``) into its parts; None for anything else."""
    text = line.strip()
    if "=" not in text:
        return None
    key, _, value = text.partition("=")
    key = key.strip()
    if not key or " " in key:
        return None
    return key, value.strip()


def _parse_clock(value: str) -> float | None:
    match = re.fullmatch(r"(-?)(\d+):(\d{2}):(\d{2}(?:\.\d+)?)", value)
    if not match:
        return None
    seconds = int(match.group(2)) * 3600 + int(match.group(3)) * 60 + float(match.group(4))
    return -seconds if match.group(1) else seconds


@dataclasses.dataclass(frozen=True)
class ProgressSnapshot:
    """One ``-progress`` block: encoded media time so far and whether ffmpeg finished."""

    out_time: float
    finished: bool
    speed: float | None
    fields: Mapping[str, str]

    def percent(self, duration: float) -> float:
        """Progress 0..100 against the probed duration (100 once ffmpeg reports the end)."""
        if self.finished:
            return 100.0
        if duration <= 0:
            return 0.0
        return max(0.0, min(100.0, 100.0 * self.out_time / duration))


class ProgressParser:
    """Incremental parser for ``-progress`` output; feed lines, get a snapshot per block."""

    def __init__(self) -> None:
        self._fields: dict[str, str] = {}

    def feed(self, line: str) -> ProgressSnapshot | None:
        """Consume one line; return a snapshot when the line closes a block (``progress=...``)."""
        parsed = parse_progress_line(line)
        if parsed is None:
            return None
        key, value = parsed
        if key != "progress":
            self._fields[key] = value
            return None
        fields, self._fields = self._fields, {}
        return ProgressSnapshot(
            out_time=max(0.0, self._out_time(fields)),
            finished=value == "end",
            speed=to_float(fields.get("speed", "").rstrip("x")),
            fields=fields,
        )

    @staticmethod
    def _out_time(fields: Mapping[str, str]) -> float:
        # out_time_ms is in microseconds too (a long-standing ffmpeg quirk)
        for key in ("out_time_us", "out_time_ms"):
            micros = to_int(fields.get(key))
            if micros is not None:
                return micros / 1_000_000
        clock = _parse_clock(fields.get("out_time", ""))
        return clock if clock is not None else 0.0
