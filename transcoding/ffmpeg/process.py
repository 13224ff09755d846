"""Running ffmpeg: parent-death safety, progress, timeout and cancellation, exact child resources.

``launch_command`` makes a started tool die with the worker thread that started it;
``run_ffmpeg`` runs one encode and raises the TranscodeError family when it gives no result.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import errno
import functools
import logging
import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from transcoding.ffmpeg.progress import ProgressParser, ProgressSnapshot

logger = logging.getLogger(__name__)


def last_error_line(stderr: str) -> str:
    """The last non-empty line of a tool's stderr, where ffmpeg and ffprobe say why they stopped."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "no error output"


@functools.cache
def _parent_death_prefix() -> tuple[str, ...]:
    """``setpriv --pdeathsig KILL --`` where that works (Linux with util-linux >= 2.33), else nothing.

    Decided once per process; a missing or unusable setpriv is logged once.
    """
    if not sys.platform.startswith("linux"):
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        logger.warning("setpriv (util-linux) not found: ffmpeg will outlive a worker that is killed")
        return ()
    prefix = (setpriv, "--pdeathsig", "KILL", "--")
    # try it once: older util-linux has no --pdeathsig, and a sandbox may refuse the prctl
    try:
        check = subprocess.run(
            [*prefix, setpriv, "--version"],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=10,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        failure = str(exc)
    else:
        if check.returncode == 0:
            return prefix
        failure = last_error_line(check.stderr)
    logger.warning(
        "%s cannot set a parent-death signal (%s): ffmpeg will outlive a worker that is killed", setpriv, failure
    )
    return ()


def launch_command(cmd: Sequence[str]) -> list[str]:
    """``cmd`` prefixed so that on Linux the tool is SIGKILLed when the thread that started it dies.

    The parent-death signal follows the starting *thread*, so start the process from a thread
    that waits for it.  A missing program raises FileNotFoundError, as Popen would without
    the prefix (setpriv would report it only as exit code 127).
    """
    prefix = _parent_death_prefix()
    if prefix and shutil.which(cmd[0]) is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), cmd[0])
    return [*prefix, *cmd]


@dataclasses.dataclass(frozen=True)
class FfmpegResult:
    """How a finished ffmpeg run went: exit code, time and memory of the child, log tail."""

    returncode: int
    wall_seconds: float
    cpu_seconds: float
    max_rss_kb: int
    log_tail: list[str]


class TranscodeError(Exception):
    """ffmpeg did not produce a result; carries its log tail and the resources it used."""

    def __init__(
        self, message: str, *, log_tail: Sequence[str] = (), wall_seconds: float = 0.0, cpu_seconds: float = 0.0
    ) -> None:
        super().__init__(message)
        self.log_tail = list(log_tail)
        self.wall_seconds = wall_seconds
        self.cpu_seconds = cpu_seconds


class TranscodeFailed(TranscodeError):
    """ffmpeg exited with an error."""

    def __init__(self, message: str, *, returncode: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.returncode = returncode


class TranscodeTimeout(TranscodeError):
    """ffmpeg ran longer than allowed and was killed."""


class TranscodeCancelled(TranscodeError):
    """The caller asked to stop; ffmpeg was killed."""


class TranscodeOverLimit(TranscodeError):
    """The caller's ``limit`` gave a reason to stop (ffmpeg was killed), or to refuse what it made."""


def _cpu_seconds_so_far(pid: int) -> float:
    """User + system CPU seconds a running child has used so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # fields after the ")" closing the command name: state is field 3, utime 14, stime 15
    fields = stat.rpartition(")")[2].split()
    try:
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (IndexError, ValueError):
        return 0.0


def _pump_lines(stream: IO[str], sink: Callable[[str], None]) -> None:
    for line in stream:
        sink(line.rstrip("\r\n"))


def _kill_and_reap(process: subprocess.Popen[str]) -> tuple[float, int]:
    """SIGKILL the child and wait for it; returns its CPU seconds and peak RSS (KB)."""
    # os.kill, not Popen.send_signal: that polls first and could reap the child, losing its rusage
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
    return _reap(process, block=True) or (0.0, 0)


def _reap(process: subprocess.Popen[str], *, block: bool) -> tuple[float, int] | None:
    """wait4 the child so its own rusage is exact; None while it is still running."""
    if process.returncode is not None:
        return None
    try:
        pid, status, usage = os.wait4(process.pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        process.returncode = process.returncode if process.returncode is not None else -1
        return 0.0, 0
    if pid == 0:
        return None
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime, int(usage.ru_maxrss)


def run_ffmpeg(
    cmd: Sequence[str],
    *,
    duration: float,
    timeout: float,
    on_progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    limit: Callable[[float, float], str | None] | None = None,
    log_tail_lines: int = 50,
    poll_interval: float = 0.25,
    cancel_check_interval: float = 1.0,
) -> FfmpegResult:
    """Run ffmpeg, report progress 0..100 from ``-progress pipe:1`` and enforce timeout/cancel.

    ``on_progress`` and ``should_cancel`` are called from the calling thread (safe for
    database access).  stderr is read in a thread and its last lines kept.  On timeout or
    cancellation the child is killed and reaped before TranscodeTimeout/TranscodeCancelled
    is raised; a non-zero exit raises TranscodeFailed.  ``limit`` is asked with the output
    time so far and the child's CPU seconds so far, every ``cancel_check_interval`` while
    ffmpeg runs and once when it has finished: a reason it returns kills ffmpeg (or refuses
    its result) with TranscodeOverLimit.  If the process dies meanwhile
    (SIGKILL, OOM killer), Linux kills ffmpeg too (``launch_command``).  CPU time and peak
    RSS are those of this child only (``os.wait4``).
    """
    tail: collections.deque[str] = collections.deque(maxlen=max(1, log_tail_lines))
    updates: queue.SimpleQueue[ProgressSnapshot] = queue.SimpleQueue()
    parser = ProgressParser()

    def on_stdout(line: str) -> None:
        snapshot = parser.feed(line)
        if snapshot is not None:
            updates.put(snapshot)

    def on_stderr(line: str) -> None:
        if line.strip():
            tail.append(line)

    logger.info("starting ffmpeg: %s", shlex.join(cmd))
    started = time.monotonic()
    # This thread waits for ffmpeg until it is reaped, so the parent-death signal fires only when the worker dies.
    process = subprocess.Popen(
        launch_command(cmd),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        bufsize=1,
    )
    assert process.stdout is not None and process.stderr is not None
    readers = [
        threading.Thread(target=_pump_lines, args=(process.stdout, on_stdout), daemon=True, name="ffmpeg-stdout"),
        threading.Thread(target=_pump_lines, args=(process.stderr, on_stderr), daemon=True, name="ffmpeg-stderr"),
    ]
    for reader in readers:
        reader.start()

    deadline = started + timeout
    next_cancel_check = started
    next_limit_check = started
    last_percent = -1.0
    out_time = 0.0
    usage: tuple[float, int] | None = None

    def report(snapshot: ProgressSnapshot) -> None:
        nonlocal last_percent, out_time
        out_time = max(out_time, snapshot.out_time)
        percent = snapshot.percent(duration)
        if on_progress is not None and percent != last_percent:
            on_progress(percent)
        last_percent = percent

    def finish_readers() -> None:
        for reader in readers:
            reader.join(timeout=5)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()

    def stop(error_type: type[TranscodeError], message: str) -> TranscodeError:
        cpu, _ = _kill_and_reap(process)
        finish_readers()
        wall = time.monotonic() - started
        logger.warning("%s after %.1f s wall, %.1f s CPU", message, wall, cpu)
        return error_type(message, log_tail=list(tail), wall_seconds=wall, cpu_seconds=cpu)

    try:
        while usage is None:
            with contextlib.suppress(queue.Empty):
                report(updates.get(timeout=poll_interval))
            usage = _reap(process, block=False)
            if usage is not None:
                break
            now = time.monotonic()
            if now >= deadline:
                raise stop(TranscodeTimeout, f"ffmpeg timed out after {timeout:g} s and was killed")
            if should_cancel is not None and now >= next_cancel_check:
                next_cancel_check = now + cancel_check_interval
                if should_cancel():
                    raise stop(TranscodeCancelled, "transcoding was cancelled and ffmpeg was killed")
            if limit is not None and now >= next_limit_check:
                next_limit_check = now + cancel_check_interval
                reason = limit(out_time, _cpu_seconds_so_far(process.pid))
                if reason:
                    raise stop(TranscodeOverLimit, reason)
    finally:
        if process.returncode is None:
            _kill_and_reap(process)
            finish_readers()

    finish_readers()
    while True:
        try:
            report(updates.get_nowait())
        except queue.Empty:
            break
    wall = time.monotonic() - started
    cpu, max_rss = usage
    returncode = process.returncode if process.returncode is not None else -1
    if returncode != 0:
        last = tail[-1] if tail else "no error output"
        raise TranscodeFailed(
            f"ffmpeg exited with code {returncode}: {last}",
            returncode=returncode,
            log_tail=list(tail),
            wall_seconds=wall,
            cpu_seconds=cpu,
        )
    if limit is not None and (reason := limit(out_time, cpu)):
        logger.warning("ffmpeg finished over the limit after %.1f s wall, %.1f s CPU: %s", wall, cpu, reason)
        raise TranscodeOverLimit(reason, log_tail=list(tail), wall_seconds=wall, cpu_seconds=cpu)
    if on_progress is not None and last_percent < 100.0:
        on_progress(100.0)
    logger.info("ffmpeg finished in %.1f s wall, %.1f s CPU, peak RSS %d KB", wall, cpu, max_rss)
    return FfmpegResult(
        returncode=returncode, wall_seconds=wall, cpu_seconds=cpu, max_rss_kb=max_rss, log_tail=list(tail)
    )
