"""The process runner: progress, timeout, cancellation, parent death, failures (real ffmpeg)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.transcoding.ffmpeg.helpers import Transcoded
from transcoding.ffmpeg import process as ffmpeg_process
from transcoding.ffmpeg.probe import probe_file
from transcoding.ffmpeg.process import (
    TranscodeCancelled,
    TranscodeFailed,
    TranscodeOverLimit,
    TranscodeTimeout,
    launch_command,
    run_ffmpeg,
)

ENDLESS = [
    "ffmpeg",
    "-hide_banner",
    "-nostdin",
    "-progress",
    "pipe:1",
    "-nostats",
    "-re",
    "-f",
    "lavfi",
    "-i",
    "testsrc2=size=64x64:rate=10",
    "-f",
    "null",
    "-",
]


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen[str]]:
    """Processes started by run_ffmpeg, to check they were killed and reaped."""
    started: list[subprocess.Popen[str]] = []
    original = subprocess.Popen
    launch_command(ENDLESS)  # its one-off setpriv check runs now, unrecorded

    def recording_popen(*args: Any, **kwargs: Any) -> subprocess.Popen[str]:
        process = original(*args, **kwargs)
        started.append(process)
        return process

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    return started


def assert_killed_and_reaped(process: subprocess.Popen[str]) -> None:
    assert process.returncode == -9
    assert not os.path.exists(f"/proc/{process.pid}") or "zombie" not in Path(f"/proc/{process.pid}/status").read_text()


@pytest.mark.slow
def test_timeout_kills_and_reaps(spawned: list[subprocess.Popen[str]]) -> None:
    started = time.monotonic()
    with pytest.raises(TranscodeTimeout, match="timed out after 1 s") as caught:
        run_ffmpeg(ENDLESS, duration=60, timeout=1)
    assert time.monotonic() - started < 4
    assert caught.value.wall_seconds >= 1
    assert_killed_and_reaped(spawned[0])


@pytest.mark.slow
def test_cancel_kills_and_reaps(spawned: list[subprocess.Popen[str]]) -> None:
    seen: list[float] = []
    with pytest.raises(TranscodeCancelled) as caught:
        run_ffmpeg(
            ENDLESS,
            duration=60,
            timeout=30,
            on_progress=seen.append,
            should_cancel=lambda: bool(seen),
            cancel_check_interval=0.1,
        )
    assert seen and caught.value.wall_seconds < 5
    assert_killed_and_reaped(spawned[0])


@pytest.mark.slow
def test_a_limit_stops_ffmpeg_with_its_reason(spawned: list[subprocess.Popen[str]]) -> None:
    seen: list[tuple[float, float]] = []

    def limit(out_time: float, cpu_seconds: float) -> str | None:
        seen.append((out_time, cpu_seconds))
        return "over the ceiling" if out_time >= 1.0 else None

    with pytest.raises(TranscodeOverLimit, match="over the ceiling") as caught:
        run_ffmpeg(ENDLESS, duration=60, timeout=30, limit=limit)
    assert caught.value.wall_seconds < 5
    assert seen[-1][0] >= 1.0 and all(cpu >= 0 for _, cpu in seen)
    assert seen[-1][1] > 0, "the child's CPU so far is read while it runs"
    assert_killed_and_reaped(spawned[0])


# A worker stand-in: transcoding.ffmpeg has no Django imports, so a bare interpreter can run it.
WORKER_SCRIPT = """
import sys
from transcoding.ffmpeg.process import run_ffmpeg
run_ffmpeg(sys.argv[1:], duration=60, timeout=600, on_progress=lambda percent: print(percent, flush=True))
"""
PROJECT_ROOT = Path(__file__).resolve().parents[3]


def gone(process: psutil.Process) -> bool:
    """True once the process has exited (a zombie waiting for its new parent counts as exited)."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux-only")
def test_ffmpeg_dies_with_a_hard_killed_worker() -> None:
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT, *ENDLESS],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    children: list[psutil.Process] = []
    try:
        assert worker.stdout is not None
        worker.stdout.readline()  # ffmpeg reported progress: it is running
        children = psutil.Process(worker.pid).children()
        assert [child.name() for child in children] == ["ffmpeg"]
        worker.send_signal(signal.SIGKILL)
        assert worker.wait() == -signal.SIGKILL
        # a correctness bound, not a speed target: an orphaned ffmpeg would run for ever
        deadline = time.monotonic() + 10
        while not gone(children[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone(children[0]), "ffmpeg kept running after its worker was killed"
    finally:
        worker.kill()
        worker.wait()
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


@pytest.fixture
def fresh_launch_prefix() -> Any:
    """Let launch_command decide again (it decides once per process), here and after the test."""
    ffmpeg_process._parent_death_prefix.cache_clear()
    yield
    ffmpeg_process._parent_death_prefix.cache_clear()


@pytest.mark.slow
def test_without_setpriv_ffmpeg_still_runs_and_it_is_logged_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, fresh_launch_prefix: None
) -> None:
    only_ffmpeg = tmp_path / "bin"
    only_ffmpeg.mkdir()
    (only_ffmpeg / "ffmpeg").symlink_to(shutil.which("ffmpeg"))
    monkeypatch.setenv("PATH", str(only_ffmpeg))
    short = [
        "ffmpeg",
        "-nostdin",
        "-progress",
        "pipe:1",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x64:rate=10",
        "-t",
        "0.5",
        "-f",
        "null",
        "-",
    ]
    with caplog.at_level("WARNING", logger=ffmpeg_process.logger.name):
        for _ in range(2):
            assert run_ffmpeg(short, duration=0.5, timeout=30).returncode == 0
    assert launch_command(short) == short
    assert [r.getMessage() for r in caplog.records if "setpriv" in r.getMessage()] == [
        "setpriv (util-linux) not found: ffmpeg will outlive a worker that is killed"
    ]


def test_a_missing_program_is_reported_as_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="ffmpeg-that-is-not-installed"):
        run_ffmpeg(["ffmpeg-that-is-not-installed", "-version"], duration=1, timeout=30)
    clip = tmp_path / "any.mp4"
    clip.write_bytes(b"not empty")
    with pytest.raises(FileNotFoundError, match="ffprobe-that-is-not-installed"):
        probe_file(clip, ffprobe_bin="ffprobe-that-is-not-installed")


@pytest.mark.slow
def test_failure_carries_the_log_tail(tmp_path: Path) -> None:
    cmd = [
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-progress",
        "pipe:1",
        "-i",
        str(tmp_path / "missing.mp4"),
        "-f",
        "null",
        "-",
    ]
    with pytest.raises(TranscodeFailed) as caught:
        run_ffmpeg(cmd, duration=1, timeout=30, log_tail_lines=5)
    assert caught.value.returncode != 0
    assert "No such file or directory" in str(caught.value)
    assert 0 < len(caught.value.log_tail) <= 5


@pytest.mark.slow
def test_progress_and_resources_are_reported(landscape_hls: Transcoded) -> None:
    progress = landscape_hls.progress
    assert progress and progress[-1] == 100.0
    assert progress == sorted(progress) and all(0.0 <= p <= 100.0 for p in progress)
    assert landscape_hls.result.wall_seconds > 0 and landscape_hls.result.cpu_seconds > 0
    assert landscape_hls.result.max_rss_kb > 0
