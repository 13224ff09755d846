"""Transcoding benchmark: one ffmpeg process for the whole ladder versus one process per tier,
and capped CRF versus fixed bitrate on slide-like and motion footage.

Usage, from the repository root::

    .venv/bin/python bench/transcode.py            # full run (60 s 1080p30 clips), a few minutes on 2 cores
    .venv/bin/python bench/transcode.py --quick    # 10 s clips, smoke run
    .venv/bin/python bench/transcode.py --repeat 3 # alternate pipeline/naive runs, report medians
    .venv/bin/python bench/transcode.py --chunked  # part 4 alone: the product on a 10-minute clip (~30 min)

Options: ``--ladder`` (default ``240p:400k,480p:800k,720p:1500k``), ``--crf``, ``--preset``,
``--tier-preset NAME=PRESET`` (repeatable), ``--threads`` (x264 threads per encoder),
``--no-cascade`` (scale every tier from the source), ``--segment-seconds``,
``--cache-dir`` (generated sources, default ``$XDG_CACHE_HOME/unpuzzle-bench``),
``--ffmpeg``/``--ffprobe``, ``--skip-quality``, ``--skip-throughput``, ``--skip-extras``, ``--keep``
(keep the HLS output).

What it measures:

1. Throughput on a 60 s 1920x1080 30 fps testsrc2 clip with audio:
   (a) ``build_hls_command`` — decode once, cascaded split+scale, all tiers in one process;
   (b) the naive plan — one ffmpeg process per tier, run one after another, each decoding
   and scaling the source itself, with the *same* per-tier x264/AAC settings
   (``video_encoder_args``/``audio_encoder_args`` from ``transcoding.ffmpeg.commands``).
   Wall time, CPU time and peak RSS of the ffmpeg children (``os.wait4``), realtime factor
   and the ratio a/b.  Target: a/b <= 0.70.  Per-tier bytes and SSIM of (a) and (b) show
   that the cheaper pipeline delivers the same quality.
2. Rate control on a slide-like clip (stills changing every 10 s) and the motion clip:
   bytes per minute per tier and SSIM against the source scaled to the tier size, for capped
   CRF versus fixed bitrate (``-b:v = maxrate = tier bitrate``; x264 may spend less than that
   on still pictures) and versus true CBR (``minrate`` too, HRD CBR with filler: every second
   costs the tier bitrate), video only.  Target on the slide clip: >= 40% fewer bytes for
   capped CRF at equal or better SSIM.  A CRF sweep (``--sweep``) shows where capped CRF
   reaches the fixed-bitrate SSIM.
3. Scrubbing previews and even loudness on the 60 s 1080p clip: the production command with
   both off, then with both on (the audio-only loudnorm measuring pass plus the encode with the
   preview branch and the linear loudnorm filter); CPU seconds of each, the ratio (target
   <= 1.10), the sheets' and the WebVTT track's bytes; then the measuring pass alone on a
   one-hour audio-only source (generated once, cached; 60 s with ``--quick``).
   ``--skip-extras`` leaves this part out.
4. ``--chunked`` (alone, ``bench/transcode_chunked.py``): time to ready of a 10-minute 1080p clip
   through the real product, one process against chunks on one and on two transcode workers each
   pinned to a core, with CPU, bytes and SSIM of the outputs, a timeline of the chunks, and the
   same model for a two-hour lecture on 8 and 32 workers.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.transcode_chunked import add_arguments as add_chunked_arguments  # noqa: E402
from bench.transcode_chunked import chunked  # noqa: E402
from bench.transcode_media import (  # noqa: E402
    cache_dir,
    long_audio_source,
    motion_source,
    slides_source,
    ssim_db,
    ssim_per_tier,
    video_bytes_per_minute,
)
from transcoding.ffmpeg.commands import (  # noqa: E402
    EncoderOptions,
    RateControl,
    audio_encoder_args,
    build_hls_command,
    video_encoder_args,
)
from transcoding.ffmpeg.filters import scale_filter  # noqa: E402
from transcoding.ffmpeg.ladder import PlannedRendition, parse_ladder, plan_renditions  # noqa: E402
from transcoding.ffmpeg.loudness import (  # noqa: E402
    loudness_filter,
    loudness_measure_command,
    parse_loudness_measurement,
)
from transcoding.ffmpeg.previews import (  # noqa: E402
    THUMBNAILS_VTT_NAME,
    PreviewPlan,
    plan_previews,
    sheets_in,
    sprite_name,
    thumbnails_vtt,
)
from transcoding.ffmpeg.probe import ProbeResult, probe_file  # noqa: E402
from transcoding.ffmpeg.process import FfmpegResult, run_ffmpeg  # noqa: E402
from transcoding.hls.playlists import (  # noqa: E402
    MEDIA_PLAYLIST_NAME,
    SEGMENT_TEMPLATE,
    rewrite_master_playlist,
)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Encoder settings shared by the pipeline and the naive baseline."""

    ladder: str
    crf: float
    preset: str
    tier_presets: dict[str, str]
    threads: int | None
    cascade: bool
    segment_seconds: float
    keyframe_interval: float = 2.0
    audio_bitrate: int = 128_000

    def preset_for(self, name: str) -> str:
        """x264 preset of one rendition."""
        return self.tier_presets.get(name, self.preset)


@dataclasses.dataclass
class RunStats:
    """Resources of one or more ffmpeg children."""

    wall: float = 0.0
    cpu: float = 0.0
    max_rss_kb: int = 0

    def add(self, result: FfmpegResult) -> None:
        """Accumulate a sequential run."""
        self.wall += result.wall_seconds
        self.cpu += result.cpu_seconds
        self.max_rss_kb = max(self.max_rss_kb, result.max_rss_kb)


def pipeline_command(
    settings: Settings,
    *,
    ffmpeg_bin: str,
    source: Path,
    out: Path,
    probe: ProbeResult,
    renditions: Sequence[PlannedRendition],
    rate_control: RateControl = "capped_crf",
    previews: PreviewPlan | None = None,
    audio_filter: str | None = None,
) -> list[str]:
    """The production command (a); ``previews``/``audio_filter`` add the scrubbing previews and loudness."""
    return build_hls_command(
        ffmpeg_bin=ffmpeg_bin,
        input_path=source,
        output_dir=out,
        probe=probe,
        renditions=renditions,
        segment_seconds=settings.segment_seconds,
        keyframe_interval=settings.keyframe_interval,
        audio_bitrate=settings.audio_bitrate,
        crf=settings.crf,
        preset=settings.preset,
        options=EncoderOptions(
            cascade=settings.cascade,
            tier_presets=settings.tier_presets,
            x264_threads=settings.threads,
            rate_control=rate_control,
        ),
        previews=previews,
        audio_filter=audio_filter,
    )


def naive_command(
    settings: Settings,
    *,
    ffmpeg_bin: str,
    source: Path,
    out: Path,
    probe: ProbeResult,
    rendition: PlannedRendition,
) -> list[str]:
    """Baseline (b): one tier per process, decoding and scaling the source itself, same encoder settings."""
    directory = out / rendition.name
    directory.mkdir(parents=True, exist_ok=True)
    cmd = [
        ffmpeg_bin,
        "-hide_banner",
        "-nostdin",
        "-y",
        "-loglevel",
        "warning",
        "-progress",
        "pipe:1",
        "-nostats",
        "-i",
        f"file:{source}",
        "-map",
        f"0:{probe.video_stream_index}",
    ]
    if probe.has_audio:
        cmd += ["-map", f"0:{probe.audio_stream_index}"]
    cmd += ["-vf", scale_filter(rendition)]
    cmd += video_encoder_args(
        rendition=rendition,
        stream=None,
        frame_rate=probe.frame_rate,
        crf=settings.crf,
        preset=settings.preset_for(rendition.name),
        keyframe_interval=settings.keyframe_interval,
        threads=settings.threads,
    )
    if probe.has_audio:
        cmd += audio_encoder_args(stream=None, audio_bitrate=settings.audio_bitrate)
    cmd += [
        "-map_metadata",
        "-1",
        "-f",
        "hls",
        "-hls_time",
        f"{settings.segment_seconds:g}",
        "-hls_playlist_type",
        "vod",
        "-hls_list_size",
        "0",
        "-hls_flags",
        "independent_segments",
        "-hls_segment_filename",
        str(directory / SEGMENT_TEMPLATE),
        str(directory / MEDIA_PLAYLIST_NAME),
    ]
    return cmd


def run_pipeline(
    settings: Settings,
    *,
    ffmpeg_bin: str,
    source: Path,
    out: Path,
    probe: ProbeResult,
    renditions: Sequence[PlannedRendition],
    rate_control: RateControl = "capped_crf",
) -> RunStats:
    """Run (a) and return its resources."""
    out.mkdir(parents=True, exist_ok=True)
    stats = RunStats()
    cmd = pipeline_command(
        settings,
        ffmpeg_bin=ffmpeg_bin,
        source=source,
        out=out,
        probe=probe,
        renditions=renditions,
        rate_control=rate_control,
    )
    stats.add(run_ffmpeg(cmd, duration=probe.duration, timeout=3600))
    return stats


def run_naive(
    settings: Settings,
    *,
    ffmpeg_bin: str,
    source: Path,
    out: Path,
    probe: ProbeResult,
    renditions: Sequence[PlannedRendition],
) -> RunStats:
    """Run (b): the tiers one after another."""
    stats = RunStats()
    for rendition in renditions:
        cmd = naive_command(settings, ffmpeg_bin=ffmpeg_bin, source=source, out=out, probe=probe, rendition=rendition)
        stats.add(run_ffmpeg(cmd, duration=probe.duration, timeout=3600))
    return stats


def fmt_mb(kb: int) -> str:
    """Kilobytes as MiB text."""
    return f"{kb / 1024:.0f} MiB"


def throughput(args: argparse.Namespace, settings: Settings, source: Path, work: Path) -> None:
    """Part 1: (a) one process versus (b) one process per tier."""
    probe = probe_file(source, ffprobe_bin=args.ffprobe, ffmpeg_bin=args.ffmpeg)
    renditions = plan_renditions(probe, parse_ladder(settings.ladder))
    print(
        f"\n== 1. Throughput: {source.name} ({probe.width}x{probe.height}, {probe.frame_rate:g} fps, "
        f"{probe.duration:g} s, {probe.bitrate / 1e6 if probe.bitrate else 0:.1f} Mbit/s, audio {probe.audio_codec})"
    )
    print("renditions: " + ", ".join(f"{r.name} {r.width}x{r.height} cap {r.maxrate // 1000}k" for r in renditions))
    pipeline_runs: list[RunStats] = []
    naive_runs: list[RunStats] = []
    for attempt in range(args.repeat):
        for label in ("a", "b"):
            out = work / f"{label}{attempt}"
            if out.exists():
                shutil.rmtree(out)
            if label == "a":
                stats = run_pipeline(
                    settings, ffmpeg_bin=args.ffmpeg, source=source, out=out, probe=probe, renditions=renditions
                )
                pipeline_runs.append(stats)
            else:
                stats = run_naive(
                    settings, ffmpeg_bin=args.ffmpeg, source=source, out=out, probe=probe, renditions=renditions
                )
                naive_runs.append(stats)
            print(f"  run {attempt + 1} ({label}): {stats.wall:6.1f} s wall {stats.cpu:6.1f} s CPU", flush=True)

    def median(runs: list[RunStats], field: str) -> float:
        return statistics.median(getattr(run, field) for run in runs)

    rows = [("(a) one process, all tiers", pipeline_runs), ("(b) naive, one process per tier", naive_runs)]
    print(f"\n{'':34} {'wall s':>8} {'CPU s':>8} {'peak RSS':>10} {'realtime x':>11}")
    for label, runs in rows:
        wall = median(runs, "wall")
        print(
            f"{label:34} {wall:8.1f} {median(runs, 'cpu'):8.1f} {fmt_mb(int(median(runs, 'max_rss_kb'))):>10} "
            f"{probe.duration / wall:11.2f}"
        )
    wall_ratio = median(pipeline_runs, "wall") / median(naive_runs, "wall")
    cpu_ratio = median(pipeline_runs, "cpu") / median(naive_runs, "cpu")
    if args.repeat > 1:
        paired = [a.wall / b.wall for a, b in zip(pipeline_runs, naive_runs, strict=True)]
        print(f"paired wall ratios a/b: {', '.join(f'{r:.3f}' for r in paired)}")
    verdict = "meets" if wall_ratio <= 0.70 and cpu_ratio <= 0.70 else "MISSES"
    print(f"ratio a/b: wall {wall_ratio:.3f}, CPU {cpu_ratio:.3f}  -> {verdict} the <= 0.70 target")

    started = time.monotonic()
    output = rewrite_master_playlist(output_dir=work / "a0", renditions=renditions, probe=probe)
    print(
        f"master rewrite + I-frame playlists: {time.monotonic() - started:.2f} s "
        f"({output.total_bytes / 1e6:.1f} MB scanned)"
    )

    if not args.skip_quality:
        ssim_a = ssim_per_tier(ffmpeg_bin=args.ffmpeg, source=source, out=work / "a0", renditions=renditions, work=work)
        ssim_b = ssim_per_tier(ffmpeg_bin=args.ffmpeg, source=source, out=work / "b0", renditions=renditions, work=work)
        print("\nsame quality check (with audio):")
        print(f"  {'tier':6} {'(a) MB/min':>11} {'(a) SSIM':>9} {'(b) MB/min':>11} {'(b) SSIM':>9}")
        for rendition in renditions:
            mb_a, _ = video_bytes_per_minute(work / "a0", rendition)
            mb_b, _ = video_bytes_per_minute(work / "b0", rendition)
            print(
                f"  {rendition.name:6} {mb_a:11.2f} {ssim_a[rendition.name]:9.5f} {mb_b:11.2f} "
                f"{ssim_b[rendition.name]:9.5f}"
            )


def previews_and_loudness(args: argparse.Namespace, settings: Settings, source: Path, work: Path) -> None:
    """Part 3: the extra CPU of scrubbing previews and loudness normalisation, and their bytes."""
    probe = probe_file(source, ffprobe_bin=args.ffprobe, ffmpeg_bin=args.ffmpeg)
    renditions = plan_renditions(probe, parse_ladder(settings.ladder))
    assert probe.audio_stream_index is not None
    top = renditions[0]
    plan = plan_previews(duration=probe.duration, width=top.width, height=top.height, interval=args.preview_interval)
    print(
        f"\n== 3. Previews and loudness on {source.name}: a {plan.tile_width}x{plan.tile_height} frame every "
        f"{plan.interval:g} s ({plan.frames} frames, {plan.sheets} sheet(s)), loudnorm to {args.loudness_target:g} LUFS"
    )
    off_runs: list[float] = []
    on_runs: list[float] = []
    measure_cpu: list[float] = []
    out = work / "extras"
    for attempt in range(args.repeat):
        for label in ("off", "on"):
            if out.exists():
                shutil.rmtree(out)
            out.mkdir(parents=True)
            cpu = 0.0
            previews, audio_filter = None, None
            if label == "on":
                measured = run_ffmpeg(
                    loudness_measure_command(
                        ffmpeg_bin=args.ffmpeg,
                        input_path=source,
                        audio_stream_index=probe.audio_stream_index,
                        target_lufs=args.loudness_target,
                    ),
                    duration=probe.duration,
                    timeout=3600,
                    log_tail_lines=200,
                )
                measure_cpu.append(measured.cpu_seconds)
                cpu += measured.cpu_seconds
                chosen = loudness_filter(
                    parse_loudness_measurement(measured.log_tail), target_lufs=args.loudness_target
                )
                previews, audio_filter = plan, chosen.filter if chosen else None
                if attempt == 0 and chosen is not None:
                    print(f"  {chosen.note}")
            cmd = pipeline_command(
                settings,
                ffmpeg_bin=args.ffmpeg,
                source=source,
                out=out,
                probe=probe,
                renditions=renditions,
                previews=previews,
                audio_filter=audio_filter,
            )
            cpu += run_ffmpeg(cmd, duration=probe.duration, timeout=3600).cpu_seconds
            (on_runs if label == "on" else off_runs).append(cpu)
            print(f"  run {attempt + 1} (both {label}): {cpu:6.1f} s CPU", flush=True)
    sheets = sheets_in(out)
    (out / THUMBNAILS_VTT_NAME).write_text(thumbnails_vtt(plan=plan, duration=probe.duration))
    sheet_bytes = sum((out / sprite_name(index)).stat().st_size for index in range(sheets))
    off, on = statistics.median(off_runs), statistics.median(on_runs)
    verdict = "meets" if on / off <= 1.10 else "MISSES"
    print(
        f"  both off: {off:.1f} s CPU; both on: {on:.1f} s CPU (measuring pass {statistics.median(measure_cpu):.1f} s)"
    )
    print(f"  ratio on/off: {on / off:.3f}  -> {verdict} the <= 1.10 target")
    print(
        f"  previews: {sheets} sheet(s), {sheet_bytes / 1024:.1f} KiB; {THUMBNAILS_VTT_NAME} "
        f"{(out / THUMBNAILS_VTT_NAME).stat().st_size / 1024:.1f} KiB"
    )

    hour = 60 if args.quick else 3600
    audio = long_audio_source(cache_dir(args.cache_dir), duration=hour, ffmpeg_bin=args.ffmpeg)
    # the generated file holds one stream, the audio (probe_file refuses audio-only files)
    result = run_ffmpeg(
        loudness_measure_command(
            ffmpeg_bin=args.ffmpeg, input_path=audio, audio_stream_index=0, target_lufs=args.loudness_target
        ),
        duration=hour,
        timeout=7200,
        log_tail_lines=200,
    )
    measured = parse_loudness_measurement(result.log_tail)
    print(
        f"  loudness measuring pass on {hour / 60:g} min of stereo AAC: {result.wall_seconds:.1f} s wall, "
        f"{result.cpu_seconds:.1f} s CPU ({hour / result.wall_seconds:.0f}x realtime; "
        f"measured {measured.integrated:.1f} LUFS)"
    )


def rate_control(
    args: argparse.Namespace, settings: Settings, label: str, source: Path, work: Path, sweep: Sequence[float]
) -> None:
    """Part 2: capped CRF versus fixed bitrate on one clip (video only)."""
    probe = probe_file(source, ffprobe_bin=args.ffprobe, ffmpeg_bin=args.ffmpeg)
    video_only = dataclasses.replace(probe, has_audio=False, audio_codec=None, audio_stream_index=None)
    renditions = plan_renditions(probe, parse_ladder(settings.ladder))
    print(f"\n== 2. Rate control on the {label} clip ({source.name}, {probe.duration:g} s, video only)")
    results: dict[str, tuple[dict[str, tuple[float, float]], dict[str, float]]] = {}
    modes: list[tuple[str, RateControl, Settings]] = [
        (f"capped CRF {settings.crf:g}", "capped_crf", settings),
        ("fixed bitrate", "fixed_bitrate", settings),
        ("CBR (filler)", "cbr", settings),
    ]
    modes += [(f"capped CRF {crf:g}", "capped_crf", dataclasses.replace(settings, crf=crf)) for crf in sweep]
    for name, mode, mode_settings in modes:
        out = work / f"{label}_{name.replace(' ', '_')}"
        if out.exists():
            shutil.rmtree(out)
        stats = run_pipeline(
            mode_settings,
            ffmpeg_bin=args.ffmpeg,
            source=source,
            out=out,
            probe=video_only,
            renditions=renditions,
            rate_control=mode,
        )
        sizes = {r.name: video_bytes_per_minute(out, r) for r in renditions}
        ssim = ssim_per_tier(ffmpeg_bin=args.ffmpeg, source=source, out=out, renditions=renditions, work=work)
        results[name] = (sizes, ssim)
        print(f"  encoded {name}: {stats.wall:.1f} s wall", flush=True)

    crf_name, fixed_name, cbr_name = modes[0][0], modes[1][0], modes[2][0]
    header = f"{'tier':6} {'mode':16} {'MB/min':>8} {'peak kb/s':>10} {'SSIM':>9} {'SSIM dB':>8} {'bytes vs fixed':>15}"
    print(f"\n  {header}")
    for rendition in renditions:
        fixed_bytes = results[fixed_name][0][rendition.name][0]
        for name, _, _ in modes:
            (mb, peak), ssim = results[name][0][rendition.name], results[name][1][rendition.name]
            change = "" if name == fixed_name else f"{(mb / fixed_bytes - 1) * 100:+.1f}%"
            print(
                f"  {rendition.name:6} {name:16} {mb:8.2f} {peak:10.0f} {ssim:9.5f} {ssim_db(ssim):8.2f} {change:>15}"
            )

    def total(name: str) -> tuple[float, float]:
        sizes, ssim = results[name]
        return sum(sizes[r.name][0] for r in renditions), min(ssim[r.name] for r in renditions)

    fixed_bytes, _ = total(fixed_name)
    cbr_bytes, _ = total(cbr_name)

    def compare(name: str) -> str:
        own, _ = total(name)
        matched = [r.name for r in renditions if results[name][1][r.name] >= results[fixed_name][1][r.name]]
        return (
            f"{own:.2f} MB/min, {(1 - own / fixed_bytes) * 100:.1f}% fewer bytes than fixed bitrate "
            f"({(1 - own / cbr_bytes) * 100:.1f}% fewer than CBR); SSIM >= fixed bitrate on "
            f"{', '.join(matched) or 'no tier'}"
        )

    print(f"  ladder total: fixed bitrate {fixed_bytes:.2f} MB/min, CBR {cbr_bytes:.2f} MB/min")
    print(f"  {crf_name}: {compare(crf_name)}")
    for name, _, _ in modes[3:]:
        print(f"  sweep {name}: {compare(name)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse options, generate (or reuse) the sources, run both parts and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 s clips and no CRF sweep")
    parser.add_argument("--repeat", type=int, default=1, help="alternating (a)/(b) runs; medians are reported")
    parser.add_argument("--ladder", default="240p:400k,480p:800k,720p:1500k")
    parser.add_argument("--crf", type=float, default=23.0)
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--tier-preset", action="append", default=[], metavar="NAME=PRESET")
    parser.add_argument("--threads", type=int, default=None, help="x264 threads per encoder (default: x264 auto)")
    parser.add_argument("--no-cascade", action="store_true", help="scale every tier from the source")
    parser.add_argument("--segment-seconds", type=float, default=6.0)
    parser.add_argument("--sweep", default="18,11,5,1", help="extra CRF values for part 2 (full run only)")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--ffmpeg", default="ffmpeg")
    parser.add_argument("--ffprobe", default="ffprobe")
    parser.add_argument("--skip-quality", action="store_true", help="throughput only")
    parser.add_argument("--skip-throughput", action="store_true", help="rate control only")
    parser.add_argument("--skip-extras", action="store_true", help="leave out part 3 (previews and loudness)")
    parser.add_argument("--preview-interval", type=float, default=5.0, help="PREVIEW_INTERVAL_S for part 3")
    parser.add_argument("--loudness-target", type=float, default=-16.0, help="LOUDNESS_TARGET_LUFS for part 3")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    add_chunked_arguments(parser)
    args = parser.parse_args(argv)

    settings = Settings(
        ladder=args.ladder,
        crf=args.crf,
        preset=args.preset,
        tier_presets=dict(item.split("=", 1) for item in args.tier_preset),
        threads=args.threads,
        cascade=not args.no_cascade,
        segment_seconds=args.segment_seconds,
    )
    duration = 10 if args.quick else 60
    cache = cache_dir(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    version = subprocess.run([args.ffmpeg, "-version"], capture_output=True, text=True).stdout.splitlines()[0]
    print(f"{version}; {os.cpu_count()} CPUs; Python {platform.python_version()}")
    if args.chunked:
        return chunked(args, cache)
    print(
        f"settings (pipeline and naive alike): ladder {settings.ladder}; libx264 preset {settings.preset}"
        f"{' ' + str(settings.tier_presets) if settings.tier_presets else ''}, capped CRF {settings.crf:g} "
        f"(maxrate = tier bitrate, bufsize = 2 x maxrate), profile high, IDR every "
        f"{settings.keyframe_interval:g} s (forced, sc_threshold 0), x264 threads "
        f"{settings.threads or 'auto'}; AAC stereo {settings.audio_bitrate // 1000}k 48 kHz; "
        f"HLS {settings.segment_seconds:g} s MPEG-TS segments; pipeline scaling "
        f"{'cascaded (each tier from the next larger)' if settings.cascade else 'each tier from the source'}"
    )
    motion = motion_source(cache, duration=duration, ffmpeg_bin=args.ffmpeg)
    slides = slides_source(cache, duration=duration, ffmpeg_bin=args.ffmpeg)

    work = Path(tempfile.mkdtemp(prefix="unpuzzle-bench-"))
    try:
        if not args.skip_throughput:
            throughput(args, settings, motion, work)
        if not args.skip_quality:
            sweep = [] if args.quick else [float(v) for v in args.sweep.split(",") if v.strip()]
            rate_control(args, settings, "slide-like", slides, work, sweep)
            rate_control(args, settings, "motion", motion, work, [])
        if not args.skip_extras:
            previews_and_loudness(args, settings, motion, work)
    finally:
        if args.keep:
            print(f"\noutput kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
