"""Sources and quality measures for bench/transcode.py: the generated 1080p clips (cached) and
per-tier SSIM and bitrate of an HLS output."""

from __future__ import annotations

import math
import os
import statistics
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from tests import clips
from transcoding.ffmpeg.ladder import PlannedRendition
from transcoding.hls.playlists import MEDIA_PLAYLIST_NAME, read_media_playlist


def cache_dir(arg: str | None) -> Path:
    """Where generated sources are kept between runs."""
    if arg:
        return Path(arg)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "unpuzzle-bench"


def _generate_once(path: Path, make: Callable[[Path], object]) -> Path:
    """``path``, made by ``make(partial_path)`` the first time (renamed when complete, so a killed run leaves none)."""
    if not path.exists():
        print(f"generating {path} ...", flush=True)
        partial = path.with_suffix(".part" + path.suffix)
        make(partial)
        partial.replace(path)
    return path


def motion_source(cache: Path, *, duration: int, ffmpeg_bin: str) -> Path:
    """1920x1080 30 fps testsrc2 with a sine tone, x264 veryfast CRF 20 (about 7 Mbit/s)."""
    return _generate_once(
        cache / f"motion_1080p30_{duration}s.mp4",
        lambda partial: clips.make_clip(
            partial,
            width=1920,
            height=1080,
            duration=duration,
            fps=30,
            audio=True,
            crf=20,
            preset="veryfast",
            faststart=True,
            ffmpeg_bin=ffmpeg_bin,
        ),
    )


def long_audio_source(cache: Path, *, duration: int, ffmpeg_bin: str) -> Path:
    """Stereo 48 kHz AAC (128k) of a sine tone under pink noise, ``duration`` seconds (audio only)."""
    return _generate_once(
        cache / f"audio_{duration}s.m4a",
        lambda partial: subprocess.run(
            [
                ffmpeg_bin,
                "-hide_banner",
                "-nostdin",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                f"sine=frequency=220:sample_rate=48000:duration={duration}",
                "-f",
                "lavfi",
                "-i",
                f"anoisesrc=color=pink:sample_rate=48000:amplitude=0.1:duration={duration}",
                "-filter_complex",
                "[0:a][1:a]amix=inputs=2,aformat=channel_layouts=stereo",
                "-c:a",
                "aac",
                "-b:a",
                "128k",
                str(partial),
            ],
            check=True,
            stdin=subprocess.DEVNULL,
        ),
    )


def slides_source(cache: Path, *, duration: int, ffmpeg_bin: str) -> Path:
    """1920x1080 30 fps stills (text slides, test patterns) changing every 10 s (every 2 s in --quick)."""
    slide_seconds = 10.0 if duration >= 30 else 2.0
    count = max(1, int(duration / slide_seconds))
    return _generate_once(
        cache / f"slides_1080p30_{count}x{slide_seconds:g}s.mp4",
        lambda partial: clips.make_slides(
            partial,
            width=1920,
            height=1080,
            slide_seconds=slide_seconds,
            slides=count,
            fps=30,
            audio=True,
            crf=18,
            preset="veryfast",
            ffmpeg_bin=ffmpeg_bin,
        ),
    )


def ssim_per_tier(
    *, ffmpeg_bin: str, source: Path, out: Path, renditions: Sequence[PlannedRendition], work: Path
) -> dict[str, float]:
    """Mean SSIM (All) of each tier's HLS output against the source scaled to the tier size (one process)."""
    cmd = [ffmpeg_bin, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-i", str(source)]
    for rendition in renditions:
        cmd += ["-i", str(out / rendition.name / MEDIA_PLAYLIST_NAME)]
    count = len(renditions)
    graph = [f"[0:v]setpts=PTS-STARTPTS,split={count}" + "".join(f"[src{i}]" for i in range(count))]
    stats_files = []
    for index, rendition in enumerate(renditions):
        stats_file = work / f"ssim_{rendition.name}.log"
        stats_files.append(stats_file)
        graph.append(f"[src{index}]scale={rendition.width}:{rendition.height},format=yuv420p,setsar=1[ref{index}]")
        graph.append(f"[{index + 1}:v]setpts=PTS-STARTPTS,setsar=1[dist{index}]")
        graph.append(f"[dist{index}][ref{index}]ssim=stats_file={stats_file}[o{index}]")
    cmd += ["-filter_complex", ";".join(graph)]
    for index in range(count):
        cmd += ["-map", f"[o{index}]", "-f", "null", "-"]
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)
    result = {}
    for rendition, stats_file in zip(renditions, stats_files, strict=True):
        values = [
            float(part.split(":", 1)[1])
            for line in stats_file.read_text().splitlines()
            for part in line.split()
            if part.startswith("All:")
        ]
        result[rendition.name] = statistics.fmean(values)
    return result


def video_bytes_per_minute(out: Path, rendition: PlannedRendition) -> tuple[float, float]:
    """Segment bytes per minute (MB) and the peak segment bitrate (kbit/s) of one tier."""
    segments = read_media_playlist(out / rendition.name / MEDIA_PLAYLIST_NAME)
    total = sum(s.bytes for s in segments)
    seconds = sum(s.duration for s in segments)
    peak = max(s.bytes * 8 / s.duration for s in segments)
    return total / seconds * 60 / 1e6, peak / 1000


def ssim_db(value: float) -> float:
    """SSIM on a dB scale (-10 log10(1 - SSIM)), easier to compare near 1."""
    return float("inf") if value >= 1 else -10 * math.log10(1 - value)
