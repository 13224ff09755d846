"""Shared by the ffmpeg and hls tests: probes for planning, ffprobe output, the pipeline run on a clip."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transcoding.ffmpeg.commands import build_hls_command
from transcoding.ffmpeg.filters import SourceConversion, available_filters, source_conversion
from transcoding.ffmpeg.ladder import PlannedRendition, parse_ladder, plan_renditions
from transcoding.ffmpeg.probe import ProbeResult, probe_file
from transcoding.ffmpeg.process import FfmpegResult, run_ffmpeg
from transcoding.hls.playlists import HlsOutput, rewrite_master_playlist

TEST_LADDER = "90p:150k,144p:250k,240p:400k"
SEGMENT_SECONDS = 4.0
DEFAULT_TIERS = parse_ladder("240p:400k,480p:800k,720p:1500k")


def make_probe(width: int, height: int, **overrides: Any) -> ProbeResult:
    """A ProbeResult for planning tests (display size already applied)."""
    values: dict[str, Any] = {
        "duration": 10.0,
        "width": width,
        "height": height,
        "rotation": 0,
        "video_codec": "h264",
        "video_bitrate": None,
        "bitrate": None,
        "frame_rate": 30.0,
        "audio_codec": "aac",
        "has_audio": True,
        "raw": {},
        "video_stream_index": 0,
        "audio_stream_index": 1,
    }
    values.update(overrides)
    return ProbeResult(**values)


def ffprobe_json(path: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", *args, str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def master_entries(master: Path) -> list[tuple[dict[str, str], str]]:
    """(attributes, uri) for each EXT-X-STREAM-INF of a master playlist."""
    lines = master.read_text().splitlines()
    entries = []
    for index, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            entries.append((parse_attributes(line.split(":", 1)[1]), lines[index + 1]))
    return entries


def parse_attributes(text: str) -> dict[str, str]:
    return {key: value.strip('"') for key, value in re.findall(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)', text)}


@dataclass
class Transcoded:
    probe: ProbeResult
    renditions: list[PlannedRendition]
    output: HlsOutput
    result: FfmpegResult
    directory: Path
    progress: list[float]
    command: list[str]
    conversion: SourceConversion


def transcode(
    source: Path,
    directory: Path,
    *,
    ladder: str = TEST_LADDER,
    drop_audio: bool = False,
    available: Collection[str] | None = None,
    **kwargs: Any,
) -> Transcoded:
    """Run the pipeline as the service does; ``available`` pretends ffmpeg has only those filters."""
    probe = probe_file(source)
    if drop_audio:
        probe = dataclasses.replace(probe, has_audio=False, audio_codec=None, audio_stream_index=None)
    renditions = plan_renditions(probe, parse_ladder(ladder))
    conversion = source_conversion(
        probe, renditions=renditions, available=available_filters() if available is None else available
    )
    directory.mkdir(parents=True, exist_ok=True)
    cmd = build_hls_command(
        input_path=source,
        output_dir=directory,
        probe=probe,
        renditions=renditions,
        conversion=conversion,
        segment_seconds=kwargs.pop("segment_seconds", SEGMENT_SECONDS),
        **kwargs,
    )
    progress: list[float] = []
    result = run_ffmpeg(cmd, duration=probe.duration, timeout=60, on_progress=progress.append)
    output = rewrite_master_playlist(output_dir=directory, renditions=renditions, probe=probe)
    return Transcoded(probe, renditions, output, result, directory, progress, cmd, conversion)
