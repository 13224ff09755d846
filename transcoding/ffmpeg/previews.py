"""Scrubbing previews: tiled thumbnail sprites and their WebVTT track, cut from the ladder's own decode (pure).

One branch of the HLS command's filter graph takes a frame every ``interval`` seconds, scales it to
``PREVIEW_TILE_WIDTH`` pixels wide and tiles ``PREVIEW_COLUMNS`` x ``PREVIEW_ROWS`` of them into
``sprite-<n>.jpg``; ``thumbnails_vtt`` then writes one cue per frame,
``sprite-<n>.jpg#xywh=x,y,w,h``, from 0 to the end with no gaps.

ffmpeg reports no progress until every output of the command has started, and a sheet starts only
once it is full: so sheet 0 holds the first frame alone (in its last cell) and is written at once,
and sheet ``n`` >= 1 holds frames ``(n-1)*100+1`` to ``n*100``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

from media_library.webvtt import format_timestamp

#: Width of one preview frame in pixels; the height follows the picture's aspect ratio (even).
PREVIEW_TILE_WIDTH = 160
PREVIEW_COLUMNS = 10
PREVIEW_ROWS = 10
#: At most this many frames (11 sheets): a long video gets a longer interval instead of more sheets.
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
        return 1 + math.ceil((self.frames - 1) / self.per_sheet)

    def cell(self, frame: int) -> tuple[int, int, int]:
        """Sheet, x and y (pixels) of preview frame ``frame`` (from 0)."""
        if frame == 0:
            sheet, position = 0, self.per_sheet - 1
        else:
            sheet, position = 1 + (frame - 1) // self.per_sheet, (frame - 1) % self.per_sheet
        row, column = divmod(position, self.columns)
        return sheet, column * self.tile_width, row * self.tile_height


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
    """The filter chain (no labels) that turns the decoded picture into tiled preview sheets.

    ``round=up`` makes frame ``i`` the picture at ``i * interval`` (the start of its cue), and
    ffmpeg cuts ``ceil(video length / interval)`` of them (``preview_frames_cut``).
    """
    # init_padding: the first sheet is output with the first frame, so ffmpeg reports progress from the start
    return (
        f"fps=1/{plan.interval:g}:round=up,scale={plan.tile_width}:{plan.tile_height},setsar=1,"
        f"format=yuvj420p,tile={plan.columns}x{plan.rows}:init_padding={plan.per_sheet - 1}"
    )


def preview_output_args(
    *, label: str, output_dir: os.PathLike[str] | str, template: str = SPRITE_TEMPLATE
) -> list[str]:
    """Output options and file pattern of the sheets: JPEGs ``sprite-0.jpg``, ``sprite-1.jpg``… in ``output_dir``
    (``template`` names them otherwise: a chunk's own sheets)."""
    return [
        "-map",
        f"[{label}]",
        "-c:v",
        "mjpeg",
        "-q:v",
        str(PREVIEW_JPEG_QUALITY),
        # a sheet lasts 100 intervals at the tile's own rate, which would carry ffmpeg's reported
        # output time (progress, the cost ceiling) past the end; a millisecond time base does not
        "-fps_mode:v",
        "passthrough",
        "-r",
        "1000",
        "-map_metadata",
        "-1",
        "-f",
        "image2",
        "-start_number",
        "0",
        os.fspath(Path(output_dir).absolute() / template),
    ]


def preview_frames_cut(*, plan: PreviewPlan, video_seconds: float, frame_rate: float, sheets_written: int) -> int:
    """How many preview frames ffmpeg cut from ``video_seconds`` of encoded video, on the sheets written.

    Half a frame of tolerance: a cue never points at a cell ffmpeg left empty (at worst the
    last frame goes unused and the cue before it runs to the end).
    """
    half_frame = 0.5 / frame_rate if frame_rate > 0 else 0.02
    cut = max(1, math.ceil((video_seconds - half_frame) / plan.interval))
    on_sheets = 1 + (sheets_written - 1) * plan.per_sheet if sheets_written > 0 else 0
    return min(plan.frames, cut, on_sheets)


def sprite_name(sheet: int, template: str = SPRITE_TEMPLATE) -> str:
    """File name of the ``sheet``-th preview sheet (from 0)."""
    return template % sheet


def thumbnails_vtt(*, plan: PreviewPlan, duration: float, frames: int | None = None) -> str:
    """The WebVTT thumbnails track: cue ``i`` spans ``[i*interval, (i+1)*interval)`` (the last ends at
    ``duration``) and shows frame ``i`` as ``sprite-<sheet>.jpg#xywh=x,y,w,h``.

    ``frames`` is how many frames ffmpeg cut (``preview_frames_cut``; default the plan's); the
    last cue runs to ``duration`` so the track has no gap.
    """
    return thumbnails_vtt_join([thumbnail_cues(plan=plan, start=0.0, end=duration, frames=frames)])


def thumbnail_cues(
    *, plan: PreviewPlan, start: float, end: float, frames: int | None = None, template: str = SPRITE_TEMPLATE
) -> list[str]:
    """Cue blocks for the frames of sheets named by ``template`` cut from ``start`` to ``end`` of the
    video (a chunk's, or the whole video from 0): frame ``i`` from ``start + i*interval``, the last to ``end``."""
    frames = plan.frames if frames is None else frames
    if frames <= 0:
        raise ValueError("no preview sheet was written")
    blocks = []
    for index in range(frames):
        cue_start = start + index * plan.interval
        cue_end = end if index == frames - 1 else start + (index + 1) * plan.interval
        sheet, x, y = plan.cell(index)
        blocks.append(
            f"{format_timestamp(cue_start)} --> {format_timestamp(cue_end)}\n"
            f"{sprite_name(sheet, template)}#xywh={x},{y},{plan.tile_width},{plan.tile_height}\n"
        )
    return blocks


def thumbnails_vtt_join(parts: list[list[str]]) -> str:
    """One WebVTT thumbnails track of the cue blocks of ``parts`` (in time order)."""
    return "\n".join(["WEBVTT\n", *(block for part in parts for block in part)])


def sheets_in(output_dir: os.PathLike[str] | str, template: str = SPRITE_TEMPLATE) -> int:
    """How many consecutive sheets (``sprite-0.jpg``, ``sprite-1.jpg``…) a directory holds, non-empty."""
    directory = Path(output_dir)
    count = 0
    while (path := directory / sprite_name(count, template)).is_file() and path.stat().st_size > 0:
        count += 1
    return count
