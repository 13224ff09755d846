#!/usr/bin/env python
"""What a hostile user can do to a live ``scripts/run.sh``: slow clients, bomb uploads, floods.

Starts the product with ``scripts/run.sh`` (its own VAR_DIR, SQLite there, a free port, no
transcode cluster unless ``--transcode``) and prints, per attack:

- slow clients: ``/healthz`` latency (p50/p99/max, probes that got no answer within 5 s) while
  100 connections send headers or bodies slowly and 4 tus PATCHes trickle, behind the
  shipped nginx front and with ``WEB_FRONT=none`` (bare gunicorn), and the ratio;
- bomb uploads: the 36,000 s timestamp-gap MKV and the 8192x8192 SPS MP4 uploaded over tus:
  how each ended, the reason shown, transcode CPU seconds and dollars charged;
- floods: 40 wrong admin passwords then the right one (refused / signed in), and playback
  grants as fast as 8 threads can ask for 20 s (admitted per minute, 429s).

Usage: .venv/bin/python bench/abuse.py [--threads 8] [--probes 40] [--flood-s 20] [--transcode]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.clips import make_sps_lie, make_timestamp_bomb  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Product:
    """``scripts/run.sh`` in its own session, with its own VAR_DIR and port."""

    def __init__(self, workdir: Path, *, front: str, threads: int, transcode: bool) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "VAR_DIR": str(workdir / f"var-{front}"),
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "WEB_FRONT": front,
            "WEB_THREADS": str(threads),
            "TRANSCODE_WORKERS": "1" if transcode else "0",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "HLS_LADDER": "240p:300k",
        }
        self.env.pop("DATABASE_URL", None)
        self.log = open(workdir / f"run-{front}.log", "wb")
        self.proc = subprocess.Popen(
            ["bash", "scripts/run.sh"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                # nginx answers 502 until gunicorn behind it is up.
                if requests.get(f"{self.base}/healthz", timeout=2).status_code not in (502, 504):
                    break
            if self.proc.poll() is not None:
                raise SystemExit(f"scripts/run.sh exited with {self.proc.returncode}; see {self.log.name}")
            time.sleep(0.5)
        self.token = self.manage(
            "from tests.factories import make_user, make_superuser\n"
            "from rest_framework.authtoken.models import Token\n"
            "make_superuser(username='boss', password='the-right-password-1')\n"
            "print(Token.objects.create(user=make_user(username='mallory')).key)"
        ).split()[-1]

    def manage(self, code: str) -> str:
        result = subprocess.run(
            [PYTHON, "manage.py", "shell", "-c", code], cwd=ROOT, env=self.env, capture_output=True, text=True
        )
        if result.returncode:
            raise SystemExit(result.stderr[-2000:])
        return result.stdout

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=40)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log.close()


@contextlib.contextmanager
def product(workdir: Path, **kwargs) -> Iterator[Product]:
    running = Product(workdir, **kwargs)
    try:
        yield running
    finally:
        running.stop()


def tus_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}", "Tus-Resumable": "1.0.0"}


def create_upload(p: Product, length: int, filename: str) -> str:
    meta = f"filename {base64.b64encode(filename.encode()).decode()}"
    response = requests.post(
        f"{p.base}/api/v1/uploads/",
        headers={**tus_headers(p.token), "Upload-Length": str(length), "Upload-Metadata": meta},
        timeout=30,
    )
    response.raise_for_status()
    return response.headers["Location"]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def slow_clients(p: Product, probes: int) -> dict:
    """100 slow connections and 4 trickling PATCHes (all one user may send at once), then ``probes``
    sequential /healthz requests."""
    held: list[socket.socket] = []
    for number in range(100):
        sock = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        if number % 2:
            sock.sendall(b"GET /api/v1/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        else:
            sock.sendall(b"POST /admin/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\nx")
        held.append(sock)
    for _ in range(4):
        try:
            url = create_upload(p, 10_000, "trickle.mp4")
        except requests.RequestException as exc:  # the server may already be held by the slow clients
            print(f"  could not start a trickling upload: {exc}", flush=True)
            continue
        path = url.split("127.0.0.1", 1)[1].split("/", 1)[1]
        sock = socket.create_connection(("127.0.0.1", p.port), timeout=10)
        sock.sendall(
            f"PATCH /{path} HTTP/1.1\r\nHost: 127.0.0.1:{p.port}\r\nAuthorization: Token {p.token}\r\n"
            "Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
            "Content-Length: 10000\r\n\r\nx".encode()
        )
        held.append(sock)
    latencies, missed = [], 0
    try:
        for _ in range(probes):
            started = time.monotonic()
            try:
                requests.get(f"{p.base}/healthz", timeout=5)
                latencies.append(time.monotonic() - started)
            except requests.RequestException:
                missed += 1
            for sock in held[-4:]:  # keep the PATCHes trickling: 1 byte per probe
                with contextlib.suppress(OSError):
                    sock.sendall(b"x")
    finally:
        for sock in held:
            sock.close()
    return {
        "answered": len(latencies),
        "no_answer_5s": missed,
        "p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "p99_s": round(percentile(latencies, 0.99), 3) if latencies else None,
        "max_s": round(max(latencies), 3) if latencies else None,
    }


def upload_bomb(p: Product, path: Path) -> dict:
    data = path.read_bytes()
    url = create_upload(p, len(data), path.name)
    requests.patch(
        url,
        data=data,
        headers={**tus_headers(p.token), "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"},
        timeout=60,
    ).raise_for_status()
    upload_id = url.rstrip("/").rsplit("/", 1)[-1]
    deadline = time.monotonic() + 300
    state: dict = {}
    while time.monotonic() < deadline:
        state = requests.get(url, headers=tus_headers(p.token), timeout=10).json()
        if state["status"] in ("failed", "finalized") and (state["status"] == "failed" or _video_settled(p, state)):
            break
        time.sleep(1)
    facts = json.loads(
        p.manage(
            "import json\nfrom django.db.models import Sum\n"
            "from uploads.models import UploadSession\nfrom transcoding.models import TranscodeJob, CostLogEntry\n"
            f"s = UploadSession.objects.get(pk='{upload_id}')\n"
            "jobs = TranscodeJob.objects.filter(video_id=s.video_id) if s.video_id else TranscodeJob.objects.none()\n"
            "print(json.dumps({'cpu_s': sum(j.cpu_seconds or 0 for j in jobs), 'jobs': jobs.count(),"
            " 'usd': str(CostLogEntry.objects.filter(job__in=jobs).aggregate(t=Sum('amount'))['t'] or 0)}))"
        )
        .strip()
        .splitlines()[-1]
    )
    return {"bytes": len(data), "upload": state.get("status"), "reason": state.get("error", ""), **facts}


def _video_settled(p: Product, state: dict) -> bool:
    video_id = state.get("video_id")
    if not video_id:
        return True
    video = requests.get(f"{p.base}/api/v1/videos/{video_id}/", headers=tus_headers(p.token), timeout=10).json()
    return video.get("status") in ("ready", "failed", "blocked")


def login_flood(p: Product) -> dict:
    session = requests.Session()
    login = f"{p.base}/admin/login/"

    def attempt(password: str) -> requests.Response:
        page = session.get(login, timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        return session.post(
            login,
            data={"username": "boss", "password": password, "csrfmiddlewaretoken": token.group(1) if token else ""},
            headers={"Referer": login},
            timeout=10,
            allow_redirects=False,
        )

    refused = sum("Too many failed sign-ins" in attempt(f"guess-{n}").text for n in range(40))
    right = attempt("the-right-password-1")
    return {"wrong": 40, "refused_with_lockout": refused, "right_password_signed_in": right.status_code == 302}


def grant_flood(p: Product, seconds: float) -> dict:
    video_id = p.manage(
        "from tests.factories import make_video\nfrom django.contrib.auth.models import User\n"
        "print(make_video(owner=User.objects.get(username='mallory'), status='ready', "
        "hls_master_key='videos/x/hls/1/master.m3u8').id)"
    ).split()[-1]
    url = f"{p.base}/api/v1/videos/{video_id}/playback/"
    deadline = time.monotonic() + seconds
    http = requests.Session()

    def hammer(_: int) -> dict[int, int]:
        statuses: dict[int, int] = {}
        while time.monotonic() < deadline:
            status = http.get(url, headers=tus_headers(p.token), timeout=10).status_code
            statuses[status] = statuses.get(status, 0) + 1
        return statuses

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(hammer, range(8)))
    statuses: dict[int, int] = {}
    for result in results:
        for status, count in result.items():
            statuses[status] = statuses.get(status, 0) + count
    admitted = sum(count for status, count in statuses.items() if status != 429)
    return {"statuses": statuses, "admitted": admitted, "admitted_per_minute": round(admitted * 60 / seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads (fewer than the slow clients)")
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--flood-s", type=float, default=20.0)
    parser.add_argument("--transcode", action="store_true", help="also start a transcode cluster")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="unpuzzle-abuse-") as tmp:
        workdir = Path(tmp)
        results: dict[str, dict] = {}
        for front in ("nginx", "none"):
            with product(workdir, front=front, threads=args.threads, transcode=args.transcode) as p:
                results[front] = slow_clients(p, args.probes)
                print(f"slow clients, WEB_FRONT={front}, {args.threads} threads: {results[front]}", flush=True)
                if front == "nginx":
                    for name, path in (
                        ("timestamp-gap MKV", make_timestamp_bomb(workdir)),
                        ("8192x8192 SPS MP4", make_sps_lie(workdir / "sps.mp4", width=8192, height=8192)),
                    ):
                        print(f"bomb {name}: {upload_bomb(p, path)}", flush=True)
                    print(f"login flood: {login_flood(p)}", flush=True)
                    print(f"grant flood ({args.flood_s:g} s, 8 threads): {grant_flood(p, args.flood_s)}", flush=True)
        front_p99, bare = results["nginx"]["p99_s"], results["none"]
        if front_p99 and bare["p99_s"]:
            print(f"/healthz p99 ratio bare/front: {bare['p99_s'] / front_p99:.1f}x")
        else:
            print(f"/healthz: front p99 {front_p99} s; bare gunicorn answered {bare['answered']}/{args.probes} probes")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
