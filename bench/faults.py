#!/usr/bin/env python
"""Fault injection: uploads, finalization and transcoding under cut connections, killed
processes, storage outages and a full disk, run against the product as scripts/run.sh starts it.

    .venv/bin/python bench/faults.py [--scenarios cuts,kills,storage,enospc] [--sqlite] [--seed N]
        [--cuts 10] [--cuts-mb 20] [--cuts-rounds 1] [--kill-rounds 1] [--storage-rounds 1]
        [--outage-s 10] [--enospc-rounds 1] [--enospc-s 5] [--enospc-mb 64] [--clip-mb 16]
        [--clip-kbps 2000] [--upload-s 4] [--chunk-mb 8] [--tick-s 5] [--deadline-s 300]
        [--front nginx|none] [--workdir DIR] [--keep-logs DIR] [--postgres postgres://postgres@127.0.0.1:5432]

The full figures: --cuts 100 --cuts-mb 200 --kill-rounds 20 --storage-rounds 20 --outage-s 60.
The web server (gunicorn gthread, behind nginx as scripts/run.sh starts it), the short-task cluster and the transcode cluster run as
their own process groups, on a throwaway PostgreSQL database (or SQLite with --sqlite), with
S3 storage (moto) behind a TCP proxy that refuses or hangs on demand. The periodic tasks (the
reaper, the finalization retry) are run every --tick-s seconds by bench/faults_helper.py.
For each scenario it prints: videos ready with the right sha256, videos that needed a person
(failed, or not ready --deadline-s after the fault ended), the longest time from the end of
the fault to ready, and the orphan bytes left after the sweeps. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.faults_product import KINDS, Database, MiB, Product, Storage  # noqa: E402
from bench.faults_rounds import Bench, Outcome, fill_disk, summary_line  # noqa: E402

SCENARIOS = ("cuts", "kills", "storage", "enospc")


def cuts(bench: Bench, args: argparse.Namespace) -> list[Outcome]:
    """A tus upload cut at random byte offsets (FIN or RST mid-PATCH), resumed with HEAD + PATCH each time."""
    base = bench.base_clip(args.cuts_mb * MiB)
    outcomes = []
    resends = 0
    losses: list[int] = []
    for number in range(args.cuts_rounds):
        size = args.cuts_mb * MiB
        points = sorted(bench.rng.sample(range(1, size), args.cuts))
        upload = bench.upload(base, size, cuts=points, rst=[bench.rng.random() < 0.5 for _ in points])
        upload.done.wait()
        outcome = bench.follow(upload, f"round {number + 1}", fault_end=upload.last_cut_at or upload.created)
        resends += upload.bytes_sent - size
        losses += upload.cut_losses
        answers = ", ".join(f"{k} {v}" for k, v in sorted(upload.answers.items()))
        cut_kinds = ", ".join(f"{k} {v}" for k, v in sorted(upload.cut_kinds.items()))
        outcome.detail = f"cuts {cut_kinds}; answers: {answers}; " + outcome.detail
        outcomes.append(outcome)
    print(
        f"  bytes sent again after cuts: {resends / MiB:.1f} MiB over {args.cuts_rounds} uploads; bytes sent "
        f"before a cut but not stored (as the next HEAD said): median {statistics.median(losses or [0]) / 1024:.0f} "
        f"KiB, max {max(losses or [0]) / 1024:.0f} KiB"
    )
    return outcomes


def kills(bench: Bench, args: argparse.Namespace) -> list[Outcome]:
    """SIGKILL of each process group at a random moment of upload, finalization and transcode, then restart."""
    outcomes = []
    size = args.clip_mb * MiB
    base = bench.base_clip(size)
    for _ in range(args.kill_rounds):
        for phase in ("upload", "finalization", "transcode"):
            for kind in KINDS:
                upload = bench.upload(base, size, rate=size / args.upload_s if phase == "upload" else 0)
                hit = bench.reach_phase(upload, phase)
                bench.product.kill(kind)
                killed_at = time.time()
                time.sleep(args.restart_delay_s)
                fault_end = bench.product.start(kind)
                outcome = bench.follow(upload, f"{kind:9} {phase}", fault_end=fault_end, hit=hit)
                outcome.detail = f"killed {killed_at - upload.created:.1f} s after start; " + outcome.detail
                outcomes.append(outcome)
    return outcomes


def storage(bench: Bench, args: argparse.Namespace) -> list[Outcome]:
    """Storage refuses connections, or hangs, for --outage-s s in finalization and in the output upload.

    "hang": the proxy accepts connections and never answers (boto3 waits out its read timeout).
    """
    outcomes = []
    size = args.clip_mb * MiB
    base = bench.base_clip(size)
    for _ in range(args.storage_rounds):
        for phase in ("finalization", "output"):
            for mode in ("refuse", "hang"):
                upload = bench.upload(base, size)
                # from the moment the upload completes: before finalization's copy to storage starts
                hit = bench.reach_phase(upload, phase, spread=False)
                bench.storage.proxy.set_mode(mode)
                time.sleep(args.outage_s)
                bench.storage.proxy.set_mode("pass")
                outcomes.append(bench.follow(upload, f"{mode:6} {phase}", fault_end=time.time(), hit=hit))
    return outcomes


def enospc(bench: Bench, args: argparse.Namespace) -> list[Outcome]:
    """Part files and work dirs on a small tmpfs another writer fills for --enospc-s s, mid-upload and mid-encode."""
    mount = bench.work / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={args.enospc_mb}m", "tmpfs", str(mount)], check=False)
    if done.returncode:
        print(f"  skipped: mount -t tmpfs failed ({done.returncode})")
        return []
    bench.mounts.append(mount)
    bench.product.restart_with(
        {
            "UPLOAD_TEMP_DIR": str(mount / "uploads"),
            "TRANSCODE_WORK_DIR": str(mount / "transcode"),
            "DISK_MIN_FREE_MB": "1",
        }
    )
    outcomes = []
    size = args.clip_mb * MiB
    base = bench.base_clip(size)
    for _ in range(args.enospc_rounds):
        for phase in ("upload", "encode"):
            upload = bench.upload(base, size, rate=size / args.upload_s if phase == "upload" else 0)
            hit = bench.reach_phase(upload, phase)
            filler = fill_disk(mount)
            time.sleep(args.enospc_s)
            filler.unlink()
            outcomes.append(bench.follow(upload, f"full disk {phase}", fault_end=time.time(), hit=hit))
    return outcomes


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset of " + ",".join(SCENARIOS))
    add("--cuts", type=int, default=10, help="connection cuts per upload (full figure: 100)")
    add("--cuts-mb", type=int, default=20, help="size of the cut upload in MiB (full figure: 200)")
    add("--cuts-rounds", type=int, default=1)
    add("--kill-rounds", type=int, default=1, help="rounds of each process kind x phase (full figure: 20)")
    add("--restart-delay-s", type=float, default=1.0)
    add("--storage-rounds", type=int, default=1, help="rounds of each mode x phase (full figure: 20)")
    add("--outage-s", type=float, default=10, help="storage outage length (full figure: 60)")
    add("--enospc-rounds", type=int, default=1)
    add("--enospc-s", type=float, default=5, help="seconds the disk stays full")
    add("--enospc-mb", type=int, default=64, help="size of the tmpfs")
    add("--clip-mb", type=int, default=16, help="upload size of the kill, storage and enospc rounds, MiB")
    add("--clip-kbps", type=int, default=2000, help="video bitrate of the generated clips")
    add("--upload-s", type=float, default=4, help="throttled upload length in the upload-phase rounds")
    add("--chunk-mb", type=int, default=8, help="PATCH size")
    add("--tick-s", type=float, default=5, help="period of the reaper and finalization retry")
    add("--deadline-s", type=float, default=300, help="not ready this long after the fault: needs a person")
    add("--seed", type=int, default=None)
    add("--sqlite", action="store_true", help="SQLite under VAR_DIR instead of a throwaway PostgreSQL database")
    add("--postgres", default=os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432"))
    add("--front", choices=("nginx", "none"), default=os.environ.get("WEB_FRONT", "nginx"), help="as WEB_FRONT")
    add("--workdir", default=None, help="default: a fresh temp dir, removed at the end")
    add("--keep-logs", default=None, help="copy the processes' logs here before cleaning up")
    args = parser.parse_args()
    unknown = set(args.scenarios.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {','.join(SCENARIOS)}")
    return args


def product_env(args: argparse.Namespace, work: Path, database: Database, storage: Storage) -> dict[str, str]:
    return {
        **os.environ,
        **storage.env(),
        "DEBUG": "0",
        "VAR_DIR": str(work / "var"),
        "UPLOAD_TEMP_DIR": str(work / "var" / "uploads"),
        "TRANSCODE_WORK_DIR": str(work / "var" / "transcode"),
        "DATABASE_URL": database.url,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "LOG_LEVEL": "INFO",
        "HLS_LADDER": "240p:300k",
        "HLS_SEGMENT_SECONDS": "2",
        "TRANSCODE_HEARTBEAT_STALE_S": "20",
        "TRANSCODE_RETRY_BACKOFF_S": "5",
        "TRANSCODE_RETRY_BACKOFF_MAX_S": "20",
        "TRANSCODE_DISPATCH_STALE_S": "20",
        "MAX_VIDEO_SIZE_MB": str(max(args.cuts_mb, args.clip_mb) * 2 + 2),
        "MAX_CONCURRENT_UPLOADS": "1000",
        # Rounds create uploads faster than a person would: no creation rate limit.
        "UPLOAD_CREATE_RATE": "",
        "MALLOC_MMAP_THRESHOLD_": os.environ.get("MALLOC_MMAP_THRESHOLD_", "131072"),
    }


def main() -> int:
    args = parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    print("load average at start (1, 5, 15 min): " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="unpuzzle-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    # Ctrl-C and SIGTERM unwind through the cleanup below, even when started with SIGINT ignored (`&`).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    storage = database = product = bench = None
    try:
        storage = Storage()
        database = Database(server_url=None if args.sqlite else args.postgres, var_dir=work / "var")
        product = Product(
            work=work, env=product_env(args, work, database, storage), tick_s=args.tick_s, front=args.front
        )
        token = product.setup()
        product.start_all()
        bench = Bench(product=product, storage=storage, token=token, work=work, args=args, rng=random.Random(seed))
        print(
            f"seed {seed}; {'SQLite' if args.sqlite else 'PostgreSQL ' + database.name}; S3 (moto) through a "
            f"TCP proxy; ladder 240p:300k, 2 s segments; heartbeat stale 20 s, retry backoff 5-20 s, dispatch "
            f"stale 20 s; reaper and finalization retry every {args.tick_s:g} s; deadline {args.deadline_s:g} s"
        )
        bench.baseline()
        results: dict[str, list[Outcome]] = {}
        for name in [name for name in SCENARIOS if name in args.scenarios.split(",")]:
            print(f"\n== {name}: {globals()[name].__doc__.splitlines()[0]}", flush=True)
            if name == "enospc" and os.geteuid() != 0:
                print("  skipped: needs root")
                continue
            outcomes = globals()[name](bench, args)
            if outcomes:
                results[name] = outcomes
                bench.report(name, outcomes)
        print("\n== summary")
        for name, outcomes in results.items():
            print(summary_line(name, outcomes, bench.orphan_bytes.get(name, 0)))
        print("ERROR lines and tracebacks per log: " + ", ".join(f"{k} {v}" for k, v in product.error_lines().items()))
        print("load average at end (1, 5, 15 min): " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
        return 0
    finally:
        if product is not None:
            product.stop_all()
            if args.keep_logs:
                shutil.copytree(product.logs, args.keep_logs, dirs_exist_ok=True)
        for mount in bench.mounts if bench is not None else []:
            subprocess.run(["umount", "-l", str(mount)], check=False)
        if storage is not None:
            storage.close()
        if database is not None:
            database.drop()
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
