#!/usr/bin/env python
"""Benchmark the tus endpoint as run in production (gunicorn gthread) against @tus/server.

    .venv/bin/python bench/tus_upload.py [--workdir /tmp/tus-bench] [--size-mb 1024] [--chunk-mb 8]
        [--concurrent 20] [--concurrent-mb 50] [--small-mb 100] [--workers 1] [--threads 32]
        [--repeat 3] [--database-url postgres://...]

Prints, for a single upload of --size-mb in --chunk-mb PATCHes over loopback: MB/s and the
server's peak RSS (gunicorn master + workers, sampled every 20 ms), the same upload against
the reference Node server (bench/tus-node, run `npm ci` there first), alternating, --repeat
times each: median and best of each and the ratio of the medians; then
--concurrent simultaneous uploads of --concurrent-mb each (aggregate MB/s, errors, peak RSS);
then the peak RSS of a --small-mb upload. Data files and server state live in --workdir and
are removed at the end (a --database-url database keeps its "bench" user and upload rows;
BENCH_DATABASE_URL sets the default). Worker and thread counts default to WEB_WORKERS and
WEB_THREADS, else scripts/run.sh's defaults. The load average is printed at start and end:
on a shared machine, figures taken under load are not comparable. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import psutil

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def make_file(path: Path, size: int) -> Path:
    block = os.urandom(MiB)
    with open(path, "wb") as fh:
        for i in range(size // MiB):
            # Vary each block cheaply so the file is not one repeated MiB.
            fh.write(i.to_bytes(8, "little") + block[8:])
        fh.write(block[: size % MiB])
    return path


class RssSampler:
    """Peak summed RSS of a process tree, sampled in a background thread."""

    def __init__(self, pid: int, interval: float = 0.02):
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def current(self) -> int:
        total = 0
        for proc in [self.root, *self.root.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def __enter__(self):
        self.peak = self.current()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())


def tus_upload(endpoint: str, path: Path, *, chunk: int, headers: dict[str, str]) -> str:
    """Create an upload and PATCH the file in ``chunk``-byte requests over one keep-alive connection."""
    parts = urlsplit(endpoint)
    size = path.stat().st_size
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120, blocksize=MiB)
    base = {"Tus-Resumable": "1.0.0", **headers}
    conn.request(
        "POST", parts.path, headers={**base, "Upload-Length": str(size), "Upload-Metadata": "filename YmVuY2gubXA0"}
    )
    response = conn.getresponse()
    response.read()
    if response.status != 201:
        raise RuntimeError(f"create answered {response.status}")
    location = response.getheader("Location")
    target = urlsplit(location).path if location.startswith("http") else location
    offset = 0
    with open(path, "rb") as fh:
        while offset < size:
            body = fh.read(chunk)
            conn.request(
                "PATCH",
                target,
                body=body,
                headers={
                    **base,
                    "Content-Type": "application/offset+octet-stream",
                    "Upload-Offset": str(offset),
                    "Content-Length": str(len(body)),
                },
            )
            response = conn.getresponse()
            response.read()
            if response.status != 204:
                raise RuntimeError(f"PATCH at {offset} answered {response.status}")
            offset = int(response.getheader("Upload-Offset"))
    conn.close()
    return location


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(MiB):
            digest.update(block)
    return digest.hexdigest()


def timed_upload(endpoint, path, *, chunk, headers) -> tuple[float, str]:
    start = time.perf_counter()
    location = tus_upload(endpoint, path, chunk=chunk, headers=headers)
    return time.perf_counter() - start, location


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="/tmp/tus-bench")
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--chunk-mb", type=int, default=8)
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--concurrent-mb", type=int, default=50)
    parser.add_argument("--small-mb", type=int, default=100)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_WORKERS", 1)))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("WEB_THREADS", 32)))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", ""))
    args = parser.parse_args()
    print("load average at start (1, 5, 15 min): " + " ".join(f"{v:.2f}" for v in os.getloadavg()))

    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    venv_bin = Path(sys.executable).parent
    env = {
        **os.environ,
        "VAR_DIR": str(work / "var"),
        "UPLOAD_TEMP_DIR": str(work / "var" / "uploads"),
        "DATABASE_URL": args.database_url or f"sqlite:///{work / 'var' / 'db.sqlite3'}",
        "MAX_VIDEO_SIZE_MB": str(max(args.size_mb, args.small_mb, args.concurrent_mb) + 1),
        "MAX_CONCURRENT_UPLOADS": str(args.concurrent + 5),
        # The benchmark creates uploads faster than a person would: no creation rate limit.
        "UPLOAD_CREATE_RATE": "",
        # One user sends all the concurrent uploads here; a platform's many users each get the default.
        "UPLOAD_MAX_PATCHES_PER_USER": str(args.concurrent + 1),
        "LOG_LEVEL": "WARNING",
        # As scripts/run.sh sets it: 1 MiB upload buffers go back to the system when freed.
        "MALLOC_MMAP_THRESHOLD_": os.environ.get("MALLOC_MMAP_THRESHOLD_", "131072"),
    }
    chunk = args.chunk_mb * MiB
    procs: list[subprocess.Popen] = []
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        token = (
            subprocess.run(
                [
                    sys.executable,
                    "manage.py",
                    "shell",
                    "-c",
                    "from django.contrib.auth import get_user_model; from rest_framework.authtoken.models import Token;"
                    "from django.contrib.auth.models import Permission;"
                    "u,_=get_user_model().objects.get_or_create(username='bench');"
                    "u.user_permissions.add(Permission.objects.get(codename='add_uploadsession'));"
                    "print(Token.objects.get_or_create(user=u)[0].key)",
                ],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        port = free_port()
        gunicorn = subprocess.Popen(
            [
                str(venv_bin / "gunicorn"),
                "unpuzzle.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--worker-class",
                "gthread",
                "--workers",
                str(args.workers),
                "--threads",
                str(args.threads),
                "--timeout",
                "300",
                "--graceful-timeout",
                "30",
                "--no-control-socket",
                "--access-logfile",
                "-",
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(gunicorn)
        node_port = free_port()
        (work / "node-files").mkdir()
        node = subprocess.Popen(
            [
                "node",
                str(ROOT / "bench" / "tus-node" / "server.mjs"),
                "--dir",
                str(work / "node-files"),
                "--port",
                str(node_port),
            ],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
        )
        procs.append(node)
        wait_for_port(port)
        wait_for_port(node_port)
        ours = f"http://127.0.0.1:{port}/api/v1/uploads/"
        reference = f"http://127.0.0.1:{node_port}/files/"
        auth = {"Authorization": f"Token {token}"}

        big = make_file(work / "big.bin", args.size_mb * MiB)
        tus_upload(ours, make_file(work / "warm.bin", MiB), chunk=chunk, headers=auth)  # import everything once
        idle = RssSampler(gunicorn.pid).current()
        print(
            f"server: gunicorn gthread, {args.workers} workers x {args.threads} threads; "
            f"DATABASE_URL={env['DATABASE_URL']}; chunks of {args.chunk_mb} MiB over loopback; "
            f"idle RSS after warm-up {idle / MiB:.1f} MiB"
        )

        # Alternating runs, after flushing dirty pages, so disk writeback of the previous run
        # (or of the generated file) does not slow the next one down.
        ours_times: list[float] = []
        node_times: list[float] = []
        ours_peak = node_peak = 0
        same = True
        for _ in range(args.repeat):
            os.sync()
            with RssSampler(gunicorn.pid) as rss:
                seconds, location = timed_upload(ours, big, chunk=chunk, headers=auth)
            ours_times.append(seconds)
            ours_peak = max(ours_peak, rss.peak)
            stored = work / "var" / "uploads" / f"{location.rstrip('/').rsplit('/', 1)[-1]}.part"
            same = same and file_sha256(stored) == file_sha256(big)
            stored.unlink()
            os.sync()
            with RssSampler(node.pid) as node_rss:
                seconds, _ = timed_upload(reference, big, chunk=chunk, headers={})
            node_times.append(seconds)
            node_peak = max(node_peak, node_rss.peak)
            for leftover in (work / "node-files").iterdir():
                leftover.unlink()
        ours_mbs, node_mbs = args.size_mb / statistics.median(ours_times), args.size_mb / statistics.median(node_times)
        runs = f"median of {args.repeat} (best {{:.1f}}): "
        print(
            f"django      {args.size_mb} MiB, {runs.format(args.size_mb / min(ours_times))}{ours_mbs:7.1f} MiB/s  "
            f"peak RSS {ours_peak / MiB:6.1f} MiB (+{(ours_peak - idle) / MiB:.1f})  "
            f"stored sha256 {'matches' if same else 'DIFFERS'}"
        )
        print(
            f"@tus/server {args.size_mb} MiB, {runs.format(args.size_mb / min(node_times))}{node_mbs:7.1f} MiB/s  "
            f"peak RSS {node_peak / MiB:6.1f} MiB"
        )
        print(
            "runs (s): django "
            + " ".join(f"{t:.2f}" for t in ours_times)
            + "; @tus/server "
            + " ".join(f"{t:.2f}" for t in node_times)
        )
        print(f"throughput ratio django / @tus/server (medians): {ours_mbs / node_mbs:.2f}")
        big.unlink()
        shutil.rmtree(work / "node-files", ignore_errors=True)

        small = [make_file(work / f"c{i}.bin", args.concurrent_mb * MiB) for i in range(args.concurrent)]
        errors: list[str] = []

        def one(path: Path) -> None:
            try:
                tus_upload(ours, path, chunk=chunk, headers=auth)
            except Exception as exc:  # counted and printed, the run goes on
                errors.append(f"{path.name}: {exc}")

        os.sync()
        with RssSampler(gunicorn.pid) as rss:
            start = time.perf_counter()
            with ThreadPoolExecutor(args.concurrent) as pool:
                list(pool.map(one, small))
            wall = time.perf_counter() - start
        total = args.concurrent * args.concurrent_mb
        print(
            f"django  {args.concurrent} concurrent x {args.concurrent_mb} MiB: {wall:6.2f} s  "
            f"{total / wall:7.1f} MiB/s aggregate  errors {len(errors)}  peak RSS {rss.peak / MiB:6.1f} MiB "
            f"(+{(rss.peak - idle) / MiB:.1f})"
        )
        for line in errors[:5]:
            print(f"  error {line}")
        for path in small:
            path.unlink()
        for part in (work / "var" / "uploads").glob("*.part"):
            part.unlink()

        medium = make_file(work / "medium.bin", args.small_mb * MiB)
        os.sync()
        with RssSampler(gunicorn.pid) as rss:
            seconds, _ = timed_upload(ours, medium, chunk=chunk, headers=auth)
        print(
            f"django  {args.small_mb} MiB: {seconds:6.2f} s  {args.small_mb / seconds:7.1f} MiB/s  "
            f"peak RSS {rss.peak / MiB:6.1f} MiB (+{(rss.peak - idle) / MiB:.1f})"
        )
        per_process = [
            p.memory_info().rss / MiB for p in [psutil.Process(gunicorn.pid), *psutil.Process(gunicorn.pid).children()]
        ]
        print("gunicorn RSS now per process (MiB): " + ", ".join(f"{v:.1f}" for v in per_process))
        print("load average at end (1, 5, 15 min): " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
        return 1 if errors or not same else 0
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
