"""Part 4 of bench/transcode.py (``--chunked``): time to ready of a long lecture through the real
product, one ffmpeg process against chunks encoded in parallel by the transcode cluster (issue 15).

The product runs as in production (``bench/faults_product.py``: a throwaway database, the short-task
cluster, ``manage.py qcluster`` with ``Q_CLUSTER_NAME=transcode`` for the transcode cluster, local
file storage); the video is created and queued through the services finalization calls
(``bench/faults_helper.py``). Three runs on the same generated source, each worker pinned to a core
of its own (``taskset``, ``TRANSCODE_THREADS=1``) to stand for a machine:

(a) one process: ``TRANSCODE_CHUNK_SECONDS=0``, one transcode worker on core 0;
(b) chunked, one transcode worker on core 0;
(c) chunked, two transcode clusters of one worker each, on core 0 and core 1;
(s) optional (``--runs a,b,c,s``): (b) with ``STORAGE_BACKEND=b2`` on a moto S3 server, counting its
    requests by B2 class, per phase and per chunk (one worker runs the chunks one after another).

Printed: time to ready (the job's creation to the video's ``ready_at``), the ratios a/c and b/c,
the CPU of (c) over (a) from ``job.cpu_seconds`` and from the clusters' own counters (/proc), bytes
per tier, SSIM per tier against the source scaled to the tier, a timeline of the chunks, and what
the same model gives for a two-hour lecture on 8 and 32 workers, with its storage requests at B2
prices.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import heapq
import logging
import math
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.faults_product import Database, Helper, Product, Storage
from bench.transcode_media import motion_source, ssim_per_tier
from transcoding.ffmpeg.ladder import PlannedRendition, parse_ladder, plan_renditions
from transcoding.ffmpeg.previews import plan_previews
from transcoding.ffmpeg.probe import probe_file
from transcoding.hls.playlists import MASTER_PLAYLIST_NAME, read_media_playlist

LECTURE_S = 2 * 3600
MODEL_WORKERS = (8, 32)
TERMINAL_VIDEO = ("ready", "failed", "blocked")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass(frozen=True)
class Run:
    """One configuration: chunked or not, and the core of each transcode cluster (one worker each)."""

    key: str
    title: str
    chunked: bool
    cores: tuple[str, ...]
    s3: bool = False


RUNS = (
    Run("a", "one process, 1 worker on core 0", chunked=False, cores=("0",)),
    Run("b", "chunked, 1 worker on core 0", chunked=True, cores=("0",)),
    Run("c", "chunked, 2 workers on cores 0 and 1", chunked=True, cores=("0", "1")),
    Run("s", "chunked, 1 worker on core 0, S3 (moto)", chunked=True, cores=("0",), s3=True),
)


@dataclasses.dataclass
class Result:
    """What one run measured."""

    run: Run
    report: dict[str, Any]
    cluster_cpu: dict[str, float]
    workers: dict[str, str]
    output: Path
    load_at_start: float

    @property
    def job(self) -> dict[str, Any]:
        return self.report["job"]

    @property
    def enqueued(self) -> float:
        return self.job["created_at"]

    @property
    def ready(self) -> bool:
        return self.report["video"]["status"] == "ready"

    @property
    def time_to_ready(self) -> float:
        return self.report["video"]["ready_at"] - self.enqueued

    @property
    def chunks(self) -> list[dict[str, Any]]:
        """Chunks of the attempt that produced the output."""
        attempt = self.job["attempts"]
        return [c for c in self.report["chunks"] if c["job_attempt"] == attempt]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of this part (``--quick``, ``--keep`` and ``--cache-dir`` are bench/transcode.py's)."""
    group = parser.add_argument_group("part 4, chunked transcoding through the product (--chunked)")
    group.add_argument("--chunked", action="store_true", help="run part 4 alone (10-minute clip, about 30 min)")
    group.add_argument("--runs", default="a,b,c", help="which of the runs a, b, c, s (s: on moto S3; default a,b,c)")
    group.add_argument("--chunk-seconds", type=int, default=None, help="TRANSCODE_CHUNK_SECONDS (150; 30 --quick)")
    group.add_argument(
        "--chunk-min-seconds", type=int, default=None, help="TRANSCODE_CHUNK_MIN_SECONDS (300; 60 --quick)"
    )
    group.add_argument(
        "--postgres",
        default=os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432"),
        help="server for the throwaway database (BENCH_POSTGRES_URL)",
    )
    group.add_argument("--sqlite", action="store_true", help="SQLite under the run's VAR_DIR instead")
    group.add_argument("--deadline-s", type=float, default=5400, help="give up on a run after this long")


def group_cpu_seconds(leader: int) -> float:
    """CPU seconds of every live process in ``leader``'s process group, with the children each has
    reaped (a worker's ffmpeg and ffprobe runs)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == leader:  # pgrp
                total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / CLOCK_TICKS


class RequestLog(logging.Handler):
    """Every request the moto S3 server answers (its werkzeug access log): when, method, path, status."""

    LINE = re.compile(r"(\w+) (\S+) HTTP/")

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.requests: list[tuple[float, str, str, str]] = []
        server_log = logging.getLogger("werkzeug")
        for handler in server_log.handlers:  # its own handler prints errors only, as before
            handler.setLevel(logging.ERROR)
        server_log.setLevel(logging.INFO)
        server_log.propagate = False
        server_log.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        if not isinstance(record.args, tuple) or len(record.args) < 2:
            return  # not an access line ("Error on request", with the traceback)
        line, code = re.sub(r"\x1b\[[0-9;]*m", "", str(record.args[0])), str(record.args[1])
        match = self.LINE.match(line)
        if match:
            self.requests.append((record.created, match.group(1), match.group(2), code))


def b2_class(method: str, path: str) -> str:
    """The B2 transaction class of an S3 request: A (uploads, deletes: free), B (object reads), C (listings)."""
    key = path.split("?", 1)[0].strip("/").partition("/")[2]
    if method in ("GET", "HEAD") and key:
        return "B"
    if method == "GET":
        return "C"  # a bucket listing (ListObjectsV2, ListMultipartUploads)
    return "A"


def requests_by_phase(result: Result, requests: Sequence[tuple[float, str, str, str]]) -> dict[str, dict[str, int]]:
    """Requests during ``result``'s run by phase (storing the original, planning, each chunk, assembly) and
    B2 class; with one worker the chunks run one after another, so each request has one chunk."""
    chunks = sorted(result.chunks, key=lambda c: c["started_at"])
    phases: dict[str, dict[str, int]] = {}
    for at, method, path, _ in requests:
        if at < result.enqueued:
            phase = "store original"
        elif at < chunks[0]["started_at"]:
            phase = "plan"
        elif at > chunks[-1]["finished_at"]:
            phase = "assembly"
        else:
            phase = next(
                (chunk_name(c) for c in chunks if c["started_at"] <= at <= c["finished_at"] + 0.5), "between chunks"
            )
        row = phases.setdefault(phase, {"A": 0, "B": 0, "C": 0})
        row[b2_class(method, path)] += 1
    return phases


def chunk_name(chunk: dict[str, Any]) -> str:
    return "audio+poster" if chunk["kind"] == "audio" else f"chunk {chunk['index']}"


def worker_label(worker: str, clusters: dict[str, int]) -> str:
    """``host:pid`` as the transcode cluster (process group) the pid belongs to."""
    with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
        group = os.getpgid(int(worker.rsplit(":", 1)[1]))
        for name, leader in clusters.items():
            if leader == group:
                return name
    return "?"


def product_env(args: argparse.Namespace, work: Path, database: Database) -> dict[str, str]:
    """The product's settings for every run (the chunking variables are set per run)."""
    return {
        **os.environ,
        "DATABASE_URL": database.url,
        "VAR_DIR": str(work / "var"),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "STORAGE_BACKEND": "local",
        "TRANSCODE_THREADS": "1",
        "TRANSCODE_WORKERS": "1",
        "Q_WORKERS": "1",
        "TRANSCODE_CHUNK_MIN_SECONDS": str(args.chunk_min_seconds),
    }


def run_once(
    product: Product, run: Run, *, env: dict[str, str], source: Path, deadline_s: float, username: str
) -> Result:
    """Start the clusters of ``run``, queue the source as a new video, wait for it, stop them."""
    load = os.getloadavg()[0]
    product.env = env
    product.start("short")
    clusters = {}
    for number, core in enumerate(run.cores, 1):
        name = f"worker {number}"
        product.start("transcode", name=f"transcode{number}", cpus=core)
        clusters[name] = product.procs[f"transcode{number}"].pid
    product.helper = Helper(env, product.logs / "helper.log", 0)
    try:
        before = {name: group_cpu_seconds(pid) for name, pid in clusters.items()}
        queued = product.ask("video_enqueue", path=str(source), username=username)
        print(f"  ({run.key}) queued job {queued['job_id']} ...", flush=True)
        give_up = time.monotonic() + deadline_s
        while True:
            report = product.ask("transcode_report", video_id=queued["video_id"])
            if report["video"]["status"] in TERMINAL_VIDEO and report["job"]["status"] not in ("queued", "running"):
                break
            if time.monotonic() > give_up:
                raise RuntimeError(f"run ({run.key}) not ready after {deadline_s:g} s: {report['job']}")
            time.sleep(1)
        cluster_cpu = {name: group_cpu_seconds(pid) - before[name] for name, pid in clusters.items()}
        workers = {c["worker"]: worker_label(c["worker"], clusters) for c in report["chunks"] if c["worker"]}
    finally:
        product.stop_all()
    output = Path(report["media_root"]) / report["video"]["hls_master_key"]
    return Result(
        run=run, report=report, cluster_cpu=cluster_cpu, workers=workers, output=output.parent, load_at_start=load
    )


# --- measures of an output -----------------------------------------------------------------


def audio_playlist(output: Path) -> Path | None:
    """The audio rendition's media playlist named by the master playlist (EXT-X-MEDIA TYPE=AUDIO), if any."""
    for line in (output / MASTER_PLAYLIST_NAME).read_text().splitlines():
        if line.startswith("#EXT-X-MEDIA:") and "TYPE=AUDIO" in line:
            uri = re.search(r'URI="([^"]+)"', line)
            if uri:
                return output / uri.group(1)
    return None


def playlist_bytes(playlist: Path) -> int:
    return sum(segment.bytes for segment in read_media_playlist(playlist))


def tier_bytes(output: Path, renditions: Sequence[PlannedRendition]) -> tuple[dict[str, int], int]:
    """Segment bytes of each tier's playlist, and of the shared audio rendition (0 when audio is muxed)."""
    audio = audio_playlist(output)
    return (
        {r.name: playlist_bytes(output / r.name / "index.m3u8") for r in renditions},
        playlist_bytes(audio) if audio else 0,
    )


def frame_count(playlist: Path) -> int:
    """Video frames (packets) listed by an HLS playlist, counted by ffprobe without decoding."""
    done = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
            str(playlist),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout.strip().splitlines()[0].strip(","))


def output_files(output: Path) -> dict[str, int]:
    """Files of an output by kind: segments, playlists, pictures (poster, preview sheets), other."""
    counts = {"segments": 0, "playlists": 0, "pictures": 0, "other": 0}
    for path in output.rglob("*"):
        if path.is_file():
            kind = {".ts": "segments", ".m3u8": "playlists", ".jpg": "pictures"}.get(path.suffix, "other")
            counts[kind] += 1
    return counts


# --- the model -----------------------------------------------------------------------------


def chunk_sheets(frames: int, per_sheet: int = 100) -> int:
    """Preview sheets a chunk of ``frames`` preview frames writes: its first frame goes out on a sheet of
    its own (the preview chain's ``init_padding``, so ffmpeg reports progress at once), the rest fill more."""
    return 1 + math.ceil((frames - 1) / per_sheet)


def makespan(tasks: Sequence[float], workers: int) -> float:
    """When the last of ``tasks`` (durations, in queue order) ends, each taken by the next free worker."""
    free = [0.0] * workers
    end = 0.0
    for duration in tasks:
        start = heapq.heappop(free)
        heapq.heappush(free, start + duration)
        end = max(end, start + duration)
    return end


@dataclasses.dataclass(frozen=True)
class Model:
    """Time to ready of a chunked transcode from figures of a measured run."""

    before_s: float  # enqueue to the first chunk's start, per second of source
    video_rate: float  # wall seconds of a video chunk per second of source (one core)
    audio_rate: float  # wall seconds of the audio chunk per second of source
    audio_first: bool
    after_s: float  # last chunk's end to ready, per second of source
    chunk_s: int

    @classmethod
    def measured(cls, result: Result, chunk_s: int) -> Model:
        chunks = result.chunks
        video = [c for c in chunks if c["kind"] == "video"]
        audio = [c for c in chunks if c["kind"] == "audio"]
        duration = result.report["video"]["duration"]
        first = min(c["started_at"] for c in chunks)
        last = max(c["finished_at"] for c in chunks)
        return cls(
            before_s=(first - result.enqueued) / duration,
            video_rate=statistics.median(c["wall_seconds"] / c["length_s"] for c in video),
            audio_rate=(audio[0]["wall_seconds"] / duration) if audio else 0.0,
            audio_first=bool(audio) and audio[0]["started_at"] <= min(c["started_at"] for c in video),
            after_s=(result.report["video"]["ready_at"] - last) / duration,
            chunk_s=chunk_s,
        )

    def chunk_count(self, duration: float) -> int:
        return math.ceil(duration / self.chunk_s)

    def time_to_ready(self, duration: float, workers: int) -> tuple[float, float, float, float]:
        """(total, before the chunks, the chunks, after them) for a source of ``duration`` seconds."""
        count = self.chunk_count(duration)
        lengths = [min(self.chunk_s, duration - i * self.chunk_s) for i in range(count)]
        tasks = [length * self.video_rate for length in lengths]
        audio = [duration * self.audio_rate] if self.audio_rate else []
        span = makespan(audio + tasks if self.audio_first else tasks + audio, workers)
        before, after = self.before_s * duration, self.after_s * duration
        return before + span + after, before, span, after


# --- the part ------------------------------------------------------------------------------


def fmt_s(seconds: float) -> str:
    return f"{seconds:.1f} s ({seconds / 60:.1f} min)" if seconds >= 120 else f"{seconds:.1f} s"


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def print_runs(results: dict[str, Result]) -> None:
    print(
        f"\n  {'run':44} {'ready in':>16} {'job CPU s':>10} {'clusters CPU s':>15} {'chunks':>7} "
        f"{'core use':>9} {'load at start':>14}"
    )
    for result in results.values():
        job = result.job
        clusters_cpu = sum(result.cluster_cpu.values())
        # CPU over time to ready x cores: short of 100% by idle workers (planning, the last round) and
        # by other processes on the pinned cores (the timeline's per-worker share tells which)
        use = clusters_cpu / (result.time_to_ready * len(result.run.cores))
        print(
            f"  ({result.run.key}) {result.run.title:40} {fmt_s(result.time_to_ready):>16} "
            f"{job['cpu_seconds'] or 0:10.1f} {clusters_cpu:15.1f} {job['chunk_count']:7d} {use:9.0%} "
            f"{result.load_at_start:14.2f}"
        )
    a, b, c = results.get("a"), results.get("b"), results.get("c")
    if a and c:
        ratio = a.time_to_ready / c.time_to_ready
        print(f"  time to ready a/c: {ratio:.2f}x  -> {verdict(ratio >= 1.8)} the >= 1.8 target")
    if b and c:
        print(f"  time to ready b/c: {b.time_to_ready / c.time_to_ready:.2f}x")
    if a and b:
        print(f"  time to ready a/b: {a.time_to_ready / b.time_to_ready:.2f}x (what chunking alone costs or saves)")
    if a and c:
        job_ratio = c.job["cpu_seconds"] / a.job["cpu_seconds"]
        cluster_ratio = sum(c.cluster_cpu.values()) / sum(a.cluster_cpu.values())
        print(
            f"  CPU c/a: {job_ratio:.3f} from job.cpu_seconds -> {verdict(job_ratio <= 1.10)} the <= 1.10 target; "
            f"{cluster_ratio:.3f} from the transcode clusters' own counters (workers, their children, idle polling)"
        )


def print_quality(
    results: dict[str, Result], renditions: Sequence[PlannedRendition], source: Path, work: Path, frames: int
) -> None:
    print(f"\n  {'tier':6} {'run':4} {'bytes':>13} {'video':>13} {'+ audio':>11} {'frames':>7} {'SSIM':>9}")
    measured: dict[str, tuple[dict[str, int], dict[str, float]]] = {}
    for key in ("a", "c"):
        result = results.get(key)
        if result is None:
            continue
        per_tier, audio = tier_bytes(result.output, renditions)
        ssim = ssim_per_tier(ffmpeg_bin="ffmpeg", source=source, out=result.output, renditions=renditions, work=work)
        measured[key] = ({name: size + audio for name, size in per_tier.items()}, ssim)
        for r in renditions:
            count = frame_count(result.output / r.name / "index.m3u8")
            print(
                f"  {r.name:6} ({key})  {per_tier[r.name] + audio:13,d} {per_tier[r.name]:13,d} {audio:11,d} "
                f"{count:7d} {ssim[r.name]:9.5f}"
            )
    print(f"  source frames: {frames}")
    if len(measured) == 2:
        (bytes_a, ssim_a), (bytes_c, ssim_c) = measured["a"], measured["c"]
        for r in renditions:
            change = bytes_c[r.name] / bytes_a[r.name] - 1
            delta = ssim_c[r.name] - ssim_a[r.name]
            print(
                f"  {r.name:6} c vs a: bytes {change * 100:+.2f}% -> {verdict(abs(change) <= 0.02)} the 2% target; "
                f"SSIM {delta:+.5f} -> {verdict(abs(delta) <= 0.001)} the 0.001 target"
            )


def print_timeline(result: Result) -> None:
    print(f"\n  timeline of ({result.run.key}), seconds from enqueue (job created {time.ctime(result.enqueued)}):")
    job = result.job
    print(f"    job started {job['started_at'] - result.enqueued:7.1f}")
    print(f"    {'chunk':12} {'worker':22} {'start':>7} {'end':>7} {'wall s':>7} {'CPU s':>7} {'tries':>5}")
    for chunk in sorted(result.chunks, key=lambda c: c["started_at"] or 0):
        name = "audio+poster" if chunk["kind"] == "audio" else f"{chunk['index']:3d} @{chunk['start_s']:6.0f}s"
        worker = f"{chunk['worker']} -> {result.workers.get(chunk['worker'], '?')}"
        print(
            f"    {name:12} {worker:22} {chunk['started_at'] - result.enqueued:7.1f} "
            f"{chunk['finished_at'] - result.enqueued:7.1f} {chunk['wall_seconds'] or 0:7.1f} "
            f"{chunk['cpu_seconds'] or 0:7.1f} {chunk['attempts']:5d}"
        )
    last = max(c["finished_at"] for c in result.chunks)
    print(
        f"    last chunk done {last - result.enqueued:7.1f}; video ready {result.time_to_ready:7.1f} "
        f"(assembly and switch {result.report['video']['ready_at'] - last:.2f} s)"
    )
    for name in sorted(set(result.workers.values())):
        mine = [c for c in result.chunks if result.workers.get(c["worker"]) == name]
        busy = sum(c["wall_seconds"] or 0 for c in mine)
        cpu = sum(c["cpu_seconds"] or 0 for c in mine)
        print(
            f"    {name}: {len(mine)} chunks, {busy:.1f} s busy, {cpu:.1f} s CPU in its ffmpeg runs "
            f"({cpu / busy:.0%} of the busy time; the rest is Python, uploads and other processes on its core)"
        )


def print_requests(result: Result, phases: dict[str, dict[str, int]]) -> None:
    """The S3 run's requests by phase and B2 class."""
    print(f"\n  storage requests of ({result.run.key}) by phase (B2 class A: uploads and deletes, B: reads, C: lists):")
    print(f"    {'phase':16} {'A':>6} {'B':>6} {'C':>6}")
    for phase, row in phases.items():
        print(f"    {phase:16} {row['A']:6d} {row['B']:6d} {row['C']:6d}")
    chunks = result.chunks
    first, last = min(c["started_at"] for c in chunks), max(c["finished_at"] for c in chunks)
    print(
        f"    planning (enqueue to the first chunk) took {first - result.enqueued:.1f} s, assembly "
        f"{result.report['video']['ready_at'] - last:.2f} s; time to ready {fmt_s(result.time_to_ready)}"
    )


def print_model(
    results: dict[str, Result],
    *,
    chunk_s: int,
    prices: dict[str, float],
    renditions: Sequence[PlannedRendition],
    s3_phases: dict[str, dict[str, int]] | None,
) -> None:
    basis = results.get("c") or results.get("b")
    if basis is None or not basis.chunks:
        return
    model = Model.measured(basis, chunk_s)
    duration = basis.report["video"]["duration"]
    print(
        f"\n  model from ({basis.run.key}): a video chunk takes {model.video_rate:.3f} s per source second on one "
        f"core, the audio chunk {model.audio_rate:.4f} s per source second ({'first' if model.audio_first else 'last'}"
        f" in the queue); before the first chunk {model.before_s * duration:.1f} s, after the last "
        f"{model.after_s * duration:.2f} s on {duration:.0f} s (both taken as growing with the duration)"
    )
    for key in ("b", "c"):
        if key in results:
            workers = len(results[key].run.cores)
            print(
                f"    check: {workers} worker(s), {duration:.0f} s -> model "
                f"{fmt_s(model.time_to_ready(duration, workers)[0])}, measured {fmt_s(results[key].time_to_ready)}"
            )
    count = model.chunk_count(LECTURE_S)
    print(f"  a {LECTURE_S / 3600:g}-hour lecture at TRANSCODE_CHUNK_SECONDS={chunk_s}: {count} video chunks + 1 audio")
    for workers in (1, *MODEL_WORKERS):
        total, before, span, after = model.time_to_ready(LECTURE_S, workers)
        rounds = math.ceil((count + 1) / workers)
        print(
            f"    {workers:2d} workers: {rounds:2d} rounds, ready in {fmt_s(total)} "
            f"(before chunks {before:.0f} s, chunks {span:.0f} s, assembly {after:.1f} s)"
        )
    if "s" in results:
        s3 = results["s"]
        s3_duration = s3.report["video"]["duration"]
        planning = min(c["started_at"] for c in s3.chunks) - s3.enqueued
        scaled = planning * LECTURE_S / s3_duration
        totals = ", ".join(
            f"{workers} workers {fmt_s(model.time_to_ready(LECTURE_S, workers)[0] - model.before_s * LECTURE_S + scaled)}"
            for workers in MODEL_WORKERS
        )
        print(
            f"    on S3 the planning step copies the whole original first: {planning:.1f} s for {s3_duration:.0f} s in "
            f"(s) (moto on loopback), {scaled:.0f} s scaled to the lecture: {totals}"
        )
    files = output_files(basis.output)
    segments = math.ceil(LECTURE_S / int(os.environ.get("HLS_SEGMENT_SECONDS", "6")))
    streams = len(renditions) + (1 if audio_playlist(basis.output) else 0)
    top = renditions[0]
    previews = plan_previews(duration=LECTURE_S, width=top.width, height=top.height)
    interval = previews.interval
    sheets = count * chunk_sheets(math.ceil(chunk_s / interval), previews.per_sheet)
    puts = segments * streams + files["playlists"] + sheets + 1 + files["other"]
    print(
        f"  storage requests for it: {puts:,} PUT ({segments:,} segments x {streams} streams, "
        f"{files['playlists']} playlists, {sheets} preview sheets (a frame every {interval:g} s, "
        f"{sheets // count} sheets per chunk), poster, {files['other']} other), "
        f"class A: free"
    )
    if not s3_phases:
        print("  (class B and C requests are measured by the S3 run: --runs a,b,c,s)")
        return
    s3_duration = results["s"].report["video"]["duration"]
    video_b = [row["B"] for phase, row in s3_phases.items() if phase.startswith("chunk ")]
    per_chunk = statistics.median(video_b) if video_b else 0
    audio_b = s3_phases.get("audio+poster", {}).get("B", 0)
    # planning reads the whole original (ranged GETs of a fixed size): more of them for a longer source
    plan_b = s3_phases.get("plan", {}).get("B", 0) * LECTURE_S / s3_duration
    other_b = sum(row["B"] for phase, row in s3_phases.items() if phase in ("assembly", "between chunks"))
    class_b = plan_b + count * per_chunk + audio_b + other_b
    class_c = sum(row["C"] for phase, row in s3_phases.items() if phase != "store original")
    cost = class_b / 10_000 * prices["B2_CLASS_B_USD_PER_10K"] + class_c / 1_000 * prices["B2_CLASS_C_USD_PER_1K"]
    print(
        f"  class B (from the S3 run): {class_b:,.0f} (planning {plan_b:,.0f}, scaled to the duration; "
        f"{per_chunk:g} per video chunk x {count}; audio chunk {audio_b}; other {other_b}) at "
        f"${prices['B2_CLASS_B_USD_PER_10K']:g}/10,000; class C: {class_c} at ${prices['B2_CLASS_C_USD_PER_1K']:g}/1,000; "
        f"${cost:.5f} per lecture, the same for 8 or 32 workers (the chunks, not the workers, make the requests)"
    )


def b2_prices(product: Product) -> dict[str, float]:
    """The B2 request prices the product is configured with."""
    names = ("B2_CLASS_B_USD_PER_10K", "B2_CLASS_C_USD_PER_1K")
    out = product.manage(
        "shell", "-c", f"from django.conf import settings as s; print({', '.join(f's.{n}' for n in names)})"
    )
    return dict(zip(names, (float(v) for v in out.strip().splitlines()[-1].split()), strict=True))


def chunked(args: argparse.Namespace, cache: Path) -> int:
    """Part 4: the three runs through the product, then the figures."""
    duration = 120 if args.quick else 600
    args.chunk_seconds = args.chunk_seconds or (30 if args.quick else 150)
    args.chunk_min_seconds = args.chunk_min_seconds or (60 if args.quick else 300)
    runs = [run for run in RUNS if run.key in args.runs.split(",")]
    source = motion_source(cache, duration=duration, ffmpeg_bin="ffmpeg")
    probe = probe_file(source, ffprobe_bin="ffprobe", ffmpeg_bin="ffmpeg")
    print(
        f"\n== 4. Chunked transcoding through the product: {source.name} ({probe.width}x{probe.height}, "
        f"{probe.frame_rate:g} fps, {probe.duration:g} s, audio {probe.audio_codec})"
    )
    print(
        f"  TRANSCODE_CHUNK_SECONDS={args.chunk_seconds} for (b) and (c), 0 for (a); "
        f"TRANSCODE_CHUNK_MIN_SECONDS={args.chunk_min_seconds}; TRANSCODE_THREADS=1; one worker per transcode "
        f"cluster, each pinned with taskset; local file storage; the product's defaults otherwise "
        f"(ladder, CRF, preset, previews, loudness); load average at start "
        + " ".join(f"{v:.2f}" for v in os.getloadavg())
    )
    work = Path(tempfile.mkdtemp(prefix="unpuzzle-bench-chunked-"))
    # Ctrl-C and SIGTERM unwind through the cleanup below.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    database = product = storage = None
    requests: RequestLog | None = None
    results: dict[str, Result] = {}
    try:
        database = Database(server_url=None if args.sqlite else args.postgres, var_dir=work / "var")
        base_env = product_env(args, work, database)
        product = Product(work=work, env=base_env, tick_s=0, front="none")
        product.setup()
        prices = b2_prices(product)
        for run in runs:
            env = {**base_env, "TRANSCODE_CHUNK_SECONDS": str(args.chunk_seconds if run.chunked else 0)}
            if run.s3:
                storage = Storage()
                requests = RequestLog()
                env.update(storage.env())
            # the S3 run's owner has no original stored yet (a user's same file is not stored twice)
            username = "bench-s3" if run.s3 else "bench"
            result = run_once(product, run, env=env, source=source, deadline_s=args.deadline_s, username=username)
            results[run.key] = result
            job = result.job
            print(
                f"  ({run.key}) {run.title}: video {result.report['video']['status']} "
                f"{result.report['video']['status_reason']} in {fmt_s(result.time_to_ready) if result.ready else '-'}; "
                f"job {job['status']}, {job['chunk_count']} chunks, attempts {job['attempts']} {job['error'][:200]}",
                flush=True,
            )
            if not result.ready:
                raise RuntimeError(f"run ({run.key}) did not end ready; logs in {product.logs} (--keep keeps them)")
        print_runs(results)
        renditions = plan_renditions(
            probe, parse_ladder(os.environ.get("HLS_LADDER", "240p:400k,480p:800k,720p:1500k"))
        )
        print_quality(results, renditions, source, work, frames=round(probe.duration * probe.frame_rate))
        for key in ("b", "c"):
            if key in results and results[key].chunks:
                print_timeline(results[key])
        s3_phases = None
        if "s" in results and requests is not None:
            s3_phases = requests_by_phase(results["s"], requests.requests)
            print_requests(results["s"], s3_phases)
        print_model(results, chunk_s=args.chunk_seconds, prices=prices, renditions=renditions, s3_phases=s3_phases)
        print("  load average at end " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
        return 0
    finally:
        if product is not None:
            product.stop_all()
        if database is not None:
            database.drop()
        if storage is not None:
            storage.close()
        if args.keep:
            print(f"\noutput and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
