"""The product under test for bench/faults.py: S3 storage (moto) behind a cuttable proxy, a
throwaway database, the web server and both task clusters as killable process groups, the
helper that runs the periodic tasks and reads state, generated clips, and the orphan count."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3  # type: ignore[import-untyped]

from bench.tus_upload import free_port
from tests.tcp_proxy import TcpProxy

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
S3_REGION = "us-west-002"
S3_KEY_ID = "faults-key-id"
S3_SECRET = "faults-application-key"
KINDS = ("web", "short", "transcode")
# What a cluster logs once its workers are up (django-q2).
CLUSTER_READY = b"running."


# --- clips ---------------------------------------------------------------------------------


def make_base_clip(path: Path, *, size: int, kbps: int) -> Path:
    """640x360 testsrc2 + 440 Hz sine, H.264 at about ``kbps`` (a long clip for large sizes), a
    little under ``size`` bytes; ``make_upload_file`` pads each copy to exactly ``size``."""
    duration = max(4.0, size * 0.95 * 8 / (kbps * 1000 + 96_000))
    args = ["-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=30:duration={duration:.2f}"]
    args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={duration:.2f}"]
    args += ["-map", "0:v", "-map", "1:a", "-c:a", "aac", "-b:a", "96k", "-c:v", "libx264", "-preset", "ultrafast"]
    args += ["-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{2 * kbps}k", "-pix_fmt", "yuv420p", "-g", "60"]
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args, str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return path


def make_upload_file(base: Path, path: Path, *, size: int) -> Path:
    """``base`` plus a top-level MP4 ``free`` box of random bytes: exactly ``size`` bytes (at least
    16 more than ``base``), still a playable MP4, and a sha256 of its own so it is never a duplicate."""
    pad = max(16, size - base.stat().st_size)
    with open(base, "rb") as src, open(path, "wb") as out:
        while block := src.read(MiB):
            out.write(block)
        out.write(struct.pack(">I", pad) + b"free" + os.urandom(pad - 8))
    return path


# --- storage and database ------------------------------------------------------------------


class Storage:
    """A moto S3 endpoint with one bucket, reached by the product through a TcpProxy."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.bucket = f"unpuzzle-faults-{uuid.uuid4().hex[:12]}"
        self.client = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{self.port}",
            region_name=S3_REGION,
            aws_access_key_id=S3_KEY_ID,
            aws_secret_access_key=S3_SECRET,
        )
        self.client.create_bucket(Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": S3_REGION})
        self.proxy = TcpProxy("127.0.0.1", self.port)

    def env(self) -> dict[str, str]:
        return {
            "STORAGE_BACKEND": "b2",
            "BB_KEY_ID": S3_KEY_ID,
            "BB_APPLICATION_KEY": S3_SECRET,
            "BB_ENDPOINT": self.proxy.url,
            "BB_REGION": S3_REGION,
            "BB_BUCKET_NAME": self.bucket,
        }

    def objects(self) -> dict[str, int]:
        """Every object in the bucket and its size, listed directly (never through the proxy)."""
        found: dict[str, int] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            found.update({obj["Key"]: obj["Size"] for obj in page.get("Contents", [])})
        return found

    def unfinished_multipart(self) -> tuple[int, int]:
        """Multipart uploads never completed nor aborted: how many, and the bytes of their parts."""
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        size = 0
        for upload in uploads:
            parts = self.client.list_parts(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            size += sum(part["Size"] for part in parts.get("Parts", []))
        return len(uploads), size

    def download(self, prefix: str, dest: Path) -> None:
        """Every object under ``prefix`` into ``dest``, keeping the relative paths."""
        for key in self.objects():
            if key.startswith(prefix):
                target = dest / key[len(prefix) :]
                target.parent.mkdir(parents=True, exist_ok=True)
                self.client.download_file(self.bucket, key, str(target))

    def sha256(self, key: str) -> str:
        import hashlib

        digest = hashlib.sha256()
        for block in self.client.get_object(Bucket=self.bucket, Key=key)["Body"].iter_chunks(MiB):
            digest.update(block)
        return digest.hexdigest()

    def close(self) -> None:
        self.proxy.close()
        self.server.stop()


class Database:
    """A throwaway PostgreSQL database (dropped by ``drop``), or a SQLite file under VAR_DIR."""

    def __init__(self, *, server_url: str | None, var_dir: Path) -> None:
        self.server_url = server_url
        if server_url is None:
            self.url = f"sqlite:///{var_dir / 'db.sqlite3'}"
            self.name = ""
            return
        self.name = f"unpuzzle_faults_{os.getpid()}_{secrets.token_hex(4)}"
        self._admin(f'CREATE DATABASE "{self.name}"')
        parts = urlsplit(server_url)
        self.url = parts._replace(path=f"/{self.name}").geturl()

    def _admin(self, sql: str) -> None:
        import psycopg

        assert self.server_url is not None
        with psycopg.connect(urlsplit(self.server_url)._replace(path="/postgres").geturl(), autocommit=True) as conn:
            conn.execute(sql)

    def drop(self) -> None:
        if self.name:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.name = ""


# --- processes -----------------------------------------------------------------------------


class Helper:
    """bench/faults_helper.py: the periodic tasks every ``tick_s`` seconds, and state queries."""

    def __init__(self, env: dict[str, str], log: Path, tick_s: float) -> None:
        self._lock = threading.Lock()
        self._log = open(log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "faults_helper.py"), str(tick_s)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
            text=True,
        )

    def ask(self, op: str, **fields: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self._lock:
            self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
            self.proc.stdin.flush()
            while True:
                line = self.proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"the helper exited ({self.proc.poll()}); see its log")
                if line.startswith("@@"):
                    answer = json.loads(line[2:])
                    break
        if "error" in answer:
            raise RuntimeError(f"helper {op}: {answer['error']}")
        return answer["ok"]

    def close(self) -> None:
        kill_group(self.proc)
        self._log.close()


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the process group (session) ``proc`` leads and reap it."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class Product:
    """The web server (behind nginx unless ``front`` is "none") and the two clusters, started as
    scripts/run.sh starts them, each in its own session."""

    def __init__(self, *, work: Path, env: dict[str, str], tick_s: float, front: str) -> None:
        self.work = work
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = env
        self.tick_s = tick_s
        self.front = front
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        # nginx's workers (another user when started as root) must reach gunicorn's socket.
        self.socket = work / "sock" / "gunicorn.sock"
        self.socket.parent.mkdir(mode=0o711, exist_ok=True)
        for folder in (work, self.socket.parent):
            folder.chmod(0o711)
        if front == "nginx":
            self.env["NUM_PROXIES"] = self.env.get("NUM_PROXIES", "1")
        self.procs: dict[str, subprocess.Popen] = {}
        self.helper: Helper | None = None

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True, capture_output=True, text=True
        )
        return done.stdout

    def setup(self) -> str:
        """migrate, setup_schedules and setup_groups (as scripts/run.sh), and an instructor with a
        DRF token; returns the token."""
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("setup_schedules")
        self.manage("setup_groups")
        return (
            self.manage(
                "shell",
                "-c",
                "from django.contrib.auth import get_user_model; from django.contrib.auth.models import Group;"
                "from rest_framework.authtoken.models import Token; from unpuzzle.groups import INSTRUCTORS;"
                "u,_=get_user_model().objects.get_or_create(username='faults');"
                "u.groups.add(Group.objects.get(name=INSTRUCTORS));"
                "print(Token.objects.get_or_create(user=u)[0].key)",
            )
            .strip()
            .splitlines()[-1]
        )

    def _command(self, kind: str) -> tuple[list[str], dict[str, str]]:
        if kind == "nginx":
            conf = self.manage("nginx_conf", "--listen", f"127.0.0.1:{self.port}", "--socket", str(self.socket))
            conf_path = Path(conf.strip())
            return ["nginx", "-e", str(conf_path.parent / "nginx-error.log"), "-c", str(conf_path)], self.env
        if kind == "web":
            bind = f"unix:{self.socket}" if self.front == "nginx" else f"127.0.0.1:{self.port}"
            gunicorn = str(Path(sys.executable).parent / "gunicorn")
            return [
                gunicorn,
                "unpuzzle.wsgi:application",
                "--bind",
                bind,
                "--worker-class",
                "gthread",
                "--no-control-socket",
                "--workers",
                self.env.get("WEB_WORKERS", "1"),
                "--threads",
                self.env.get("WEB_THREADS", "32"),
                "--timeout",
                "300",
                "--graceful-timeout",
                "30",
                "--access-logfile",
                "-",
            ], self.env
        cluster = "transcode" if kind == "transcode" else ""
        return [sys.executable, "manage.py", "qcluster"], {**self.env, "Q_CLUSTER_NAME": cluster}

    def start(self, kind: str, timeout: float = 60, *, name: str | None = None, cpus: str | None = None) -> float:
        """Start ``kind`` (nginx, web, short, transcode) and wait until it serves; returns when (epoch).

        ``name`` (default ``kind``) tells several processes of one kind apart (its log and ``procs`` key);
        ``cpus`` pins it and its children to those cores (``taskset -c``), as if it had a machine of its own.
        """
        name = name or kind
        log_path = self.logs / f"{name}.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        command, env = self._command(kind)
        if cpus is not None:
            command = ["taskset", "-c", cpus, *command]
        if kind == "web" and self.front == "nginx":
            self.socket.unlink(missing_ok=True)
        with open(log_path, "ab") as log:
            self.procs[name] = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if kind == "nginx" or (kind == "web" and self.front != "nginx"):
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return time.time()
            elif kind == "web":
                if self.socket.exists():
                    return time.time()
            else:
                with open(log_path, "rb") as fh:
                    fh.seek(offset)
                    if CLUSTER_READY in fh.read():
                        return time.time()
            if self.procs[name].poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{name} did not start; see {log_path}")

    def start_all(self) -> None:
        for kind in (*KINDS, "nginx") if self.front == "nginx" else KINDS:
            self.start(kind)
        self.helper = Helper(self.env, self.logs / "helper.log", self.tick_s)

    def kill(self, kind: str) -> None:
        """SIGKILL the whole process group of ``kind`` (gunicorn master and workers; cluster and ffmpeg)."""
        kill_group(self.procs[kind])

    def restart_with(self, overrides: dict[str, str]) -> None:
        """Stop everything, change the environment, start everything again."""
        self.stop_all()
        self.env = {**self.env, **overrides}
        self.start_all()

    def stop_all(self) -> None:
        """As scripts/run.sh stops: SIGTERM to each main process (one signal only: a second one
        deadlocks a stopping django-q2 cluster), at most 30 s, then SIGKILL to each whole session."""
        if self.helper is not None:
            self.helper.close()
            self.helper = None
        for proc in self.procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(proc.poll() is None for proc in self.procs.values()):
            time.sleep(0.2)
        for proc in self.procs.values():
            kill_group(proc)
        self.procs.clear()

    def ask(self, op: str, **fields: Any) -> Any:
        assert self.helper is not None
        return self.helper.ask(op, **fields)

    def error_lines(self) -> dict[str, int]:
        """ERROR lines and tracebacks in each process's log."""
        counts = {}
        for log in sorted(self.logs.glob("*.log")):
            text = log.read_text(errors="replace")
            counts[log.stem] = text.count(" ERROR ") + text.count("Traceback")
        return counts


# --- orphans -------------------------------------------------------------------------------


def orphans(storage: Storage, refs: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Bytes nothing refers to: bucket objects under originals/ and videos/ outside every
    MediaFile.storage_key and every Video's current HLS folder, unfinished multipart uploads,
    part files of uploads that are no longer live, and transcode work dirs."""
    originals = set(refs["originals"])
    folders = tuple(refs["hls_folders"])
    found: dict[str, dict[str, int]] = {}
    for key, size in storage.objects().items():
        if key.startswith("originals/") and key not in originals:
            found[f"s3:{key}"] = {"bytes": size}
        elif key.startswith("videos/") and not key.startswith(folders):
            found[f"s3:{key}"] = {"bytes": size}
    count, size = storage.unfinished_multipart()
    if count:
        found[f"multipart:{count}"] = {"bytes": size}
    live = set(refs["live_parts"])
    for path in Path(refs["upload_dir"]).glob("*"):
        if path.is_file() and str(path) not in live:
            found[f"part:{path.name}"] = {"bytes": path.stat().st_size}
    work = Path(refs["work_dir"])
    if work.is_dir():
        for folder in work.iterdir():
            size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
            found[f"work:{folder.name}"] = {"bytes": size}
    return found
