"""Scrubbing previews: tiled thumbnail sprites and their WebVTT track, cut from the ladder's own decode (pure).

One branch of the HLS command's filter graph takes a frame every ``interval`` seconds, scales it to
``PREVIEW_TILE_WIDTH`` pixels wide and tiles ``PREVIEW_COLUMNS`` x ``PREVIEW_ROWS`` of them into
``sprite-<n>.jpg``; ``thumbnails_vtt`` then writes one cue per frame,
``sprite-<n>.jpg#xywh=x,y,w,h``, from 0 to the end with no gaps.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

#: Width of one preview frame in pixels; the height follows the picture's aspect ratio (even).
PREVIEW_TILE_WIDTH = 160
PREVIEW_COLUMNS = 10
PREVIEW_ROWS = 10
#: At most this many frames (ten sheets): a long video gets a longer interval instead of more sheets.
PREVIEW_MAX_FRAMES = 1000
#: JPEG quality of the sheets (ffmpeg ``-q:v``, 2 best to 31 worst).
PREVIEW_JPEG_QUALITY = 5
SPRITE_TEMPLATE = "sprite-%d.jpg"
THUMBNAILS_VTT_NAME = "thumbnails.vtt"


@dataclasses.dataclass(frozen=True)
class PreviewPlan:
    """How the scrubbing previews of one source are cut: every ``interval`` seconds, ``frames`` of them."""

    interval: float
    frames: int
    tile_width: int
    tile_height: int
    columns: int = PREVIEW_COLUMNS
    rows: int = PREVIEW_ROWS

    @property
    def per_sheet(self) -> int:
        return self.columns * self.rows

    @property
    def sheets(self) -> int:
        return math.ceil(self.frames / self.per_sheet)


def plan_previews(
    *,
    duration: float,
    width: int,
    height: int,
    interval: float = 5.0,
    max_frames: int = PREVIEW_MAX_FRAMES,
    tile_width: int = PREVIEW_TILE_WIDTH,
) -> PreviewPlan:
    """Preview frames for a picture of ``width`` x ``height`` (display size) lasting ``duration`` seconds.

    ``interval`` is the spacing for short videos; when more than ``max_frames`` frames would
    be needed it grows to whole seconds so the frames (and sheets) stay at most ``max_frames``.
    """
    if interval <= 0:
        raise ValueError(f"the preview interval must be more than 0 seconds, not {interval:g}")
    if width <= 0 or height <= 0:
        raise ValueError(f"cannot plan previews for a {width}x{height} picture")
    if duration / interval > max_frames:
        interval = float(math.ceil(duration / max_frames))
    frames = max(1, math.ceil(duration / interval - 1e-9))
    tile_height = max(2, round(tile_width * height / width / 2) * 2)
    return PreviewPlan(interval=interval, frames=frames, tile_width=tile_width, tile_height=tile_height)


def preview_filter_chain(plan: PreviewPlan) -> str:
    """The filter chain (no labels) that turns the decoded picture into tiled preview sheets."""
    return (
        f"fps=1/{plan.interval:g},scale={plan.tile_width}:{plan.tile_height},setsar=1,"
        f"format=yuvj420p,tile={plan.columns}x{plan.rows}"
    )


def preview_output_args(*, label: str, output_dir: os.PathLike[str] | str) -> list[str]:
    """Output options and file pattern of the sheets: JPEGs ``sprite-0.jpg``, ``sprite-1.jpg``… in ``output_dir``."""
    return [
        "-map",
        f"[{label}]",
        "-c:v",
        "mjpeg",
        "-q:v",
        str(PREVIEW_JPEG_QUALITY),
        "-map_metadata",
        "-1",
        "-f",
        "image2",
        "-start_number",
        "0",
        os.fspath(Path(output_dir).absolute() / SPRITE_TEMPLATE),
    ]


def sprite_name(sheet: int) -> str:
    """File name of the ``sheet``-th preview sheet (from 0)."""
    return SPRITE_TEMPLATE % sheet


def _timestamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def thumbnails_vtt(*, plan: PreviewPlan, duration: float, sheets_written: int | None = None) -> str:
    """The WebVTT thumbnails track: cue ``i`` spans ``[i*interval, (i+1)*interval)`` (the last ends at
    ``duration``) and shows frame ``i`` as ``sprite-<sheet>.jpg#xywh=x,y,w,h``.

    ``sheets_written`` is how many sheets ffmpeg wrote; frames on missing sheets get no cue, and the
    last cue written then runs to ``duration`` so the track still has no gap.
    """
    frames = plan.frames
    if sheets_written is not None:
        frames = min(frames, sheets_written * plan.per_sheet)
    if frames <= 0:
        raise ValueError("no preview sheet was written")
    lines = ["WEBVTT", ""]
    for index in range(frames):
        start = index * plan.interval
        end = duration if index == frames - 1 else (index + 1) * plan.interval
        sheet, position = divmod(index, plan.per_sheet)
        row, column = divmod(position, plan.columns)
        x, y = column * plan.tile_width, row * plan.tile_height
        lines += [
            f"{_timestamp(start)} --> {_timestamp(end)}",
            f"{sprite_name(sheet)}#xywh={x},{y},{plan.tile_width},{plan.tile_height}",
            "",
        ]
    return "\n".join(lines)


def sheets_in(output_dir: os.PathLike[str] | str) -> int:
    """How many consecutive sheets (``sprite-0.jpg``, ``sprite-1.jpg``…) a directory holds, non-empty."""
    directory = Path(output_dir)
    count = 0
    while (path := directory / sprite_name(count)).is_file() and path.stat().st_size > 0:
        count += 1
    return count
