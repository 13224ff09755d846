"""Rounds of bench/faults.py: start an upload, reach a phase, follow the video to its end, and
report ready videos, videos that needed a person, recovery times and orphan bytes."""

from __future__ import annotations

import argparse
import errno
import random
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.faults_client import Upload
from bench.faults_product import MiB, Product, Storage, make_base_clip, make_upload_file, orphans
from bench.tus_upload import file_sha256
from transcoding.hls.playlists import MEDIA_PLAYLIST_NAME

# HLS_SEGMENT_SECONDS=2 plus slack: a rendition may end up to a segment short or long.
SEGMENT_TOLERANCE_S = 2.5


@dataclass
class Outcome:
    """How one round ended."""

    label: str
    ready: bool = False  # ready, and the stored original has the uploaded sha256
    wrong_sha: bool = False
    broken_output: bool = False  # ready, but its HLS does not decode to the whole video
    failed: bool = False
    stuck: bool = False
    recovery_s: float | None = None
    hit: bool | None = None  # the fault landed in the phase it aimed at
    detail: str = ""
    state: dict[str, Any] = field(default_factory=dict)  # the last state read

    @property
    def needed_person(self) -> bool:
        return self.failed or self.stuck or self.wrong_sha or self.broken_output


def fill_disk(mount: Path) -> Path:
    """Another writer takes every free byte of ``mount``; returns its file (delete it to free the space)."""
    filler = mount / "filler"
    block = b"\0" * MiB
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(block)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler


def _frame_rate(playlist: Path) -> float:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=avg_frame_rate"]
        + ["-of", "csv=p=0", str(playlist)],
        capture_output=True,
        text=True,
    )
    for line in done.stdout.split():
        num, _, den = line.partition("/")
        if num.isdigit() and den.isdigit() and int(den):
            return int(num) / int(den)
    return 0.0


def hls_problem(storage: Storage, video: dict[str, Any], work: Path) -> str:
    """Why the video's current HLS output is not the whole video ('' when it is): a segment a
    playlist lists is missing or empty, ffmpeg reports errors decoding it, or it decodes to
    fewer (or more) frames than the video's duration holds, give or take a segment."""
    folder = video["hls_master_key"].rsplit("/", 1)[0] + "/"
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        storage.download(folder, Path(tmp))
        playlists = sorted(Path(tmp).glob(f"*/{MEDIA_PLAYLIST_NAME}"))
        if not playlists:
            return f"no media playlist under {folder}"
        for playlist in playlists:
            listed = [line for line in playlist.read_text().splitlines() if line and not line.startswith("#")]
            empty = [
                name
                for name in listed
                if not (playlist.parent / name).is_file() or not (playlist.parent / name).stat().st_size
            ]
            done = subprocess.run(
                ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-nostats", "-progress", "pipe:1"]
                + ["-i", str(playlist), "-map", "0:v:0", "-f", "null", "-"],
                capture_output=True,
                text=True,
            )
            frames = max(
                (
                    int(line[6:])
                    for line in done.stdout.splitlines()
                    if line[6:].isdigit() and line.startswith("frame=")
                ),
                default=0,
            )
            fps = _frame_rate(playlist)
            expected = video["duration"] * fps
            errors = [line for line in done.stderr.splitlines() if line.strip()]
            if empty or done.returncode or errors or abs(frames - expected) > SEGMENT_TOLERANCE_S * fps:
                first = f"; first: {errors[0][:200]}" if errors else ""
                return (
                    f"{playlist.parent.name}: {len(empty)} of {len(listed)} listed segments missing or empty "
                    f"({', '.join(empty[:3])}{', ...' if len(empty) > 3 else ''}), decodes to {frames} of "
                    f"{expected:.0f} frames, {len(errors)} ffmpeg errors{first}"
                )
    return ""


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def summary_line(name: str, outcomes: list[Outcome], orphan_bytes: int) -> str:
    ready = sum(o.ready for o in outcomes)
    person = sum(o.needed_person for o in outcomes)
    recoveries = [o.recovery_s for o in outcomes if o.recovery_s is not None]
    return (
        f"  {name:8} rounds {len(outcomes):3}  ready (right sha256, HLS plays) {ready:3}  needed a person {person:3}  "
        f"longest recovery {_seconds(max(recoveries) if recoveries else None):>8}  "
        f"orphan bytes after sweeps {orphan_bytes}"
    )


class Bench:
    """Shared state of a run: the product, storage, the clips, baseline phase times, orphans seen."""

    def __init__(
        self,
        *,
        product: Product,
        storage: Storage,
        token: str,
        work: Path,
        args: argparse.Namespace,
        rng: random.Random,
    ) -> None:
        self.product = product
        self.storage = storage
        self.token = token
        self.work = work
        self.args = args
        self.rng = rng
        self.files = work / "files"
        self.files.mkdir(exist_ok=True)
        self.bases: dict[int, Path] = {}
        self.phase_s: dict[str, float] = {}
        self.seen_orphans: set[str] = set()
        self.orphan_bytes: dict[str, int] = {}
        self.mounts: list[Path] = []
        self.count = 0

    # --- uploads ------------------------------------------------------------------------------

    def base_clip(self, size: int) -> Path:
        if size not in self.bases:
            started = time.monotonic()
            path = make_base_clip(self.files / f"base-{size}.mp4", size=size, kbps=self.args.clip_kbps)
            print(f"  generated a {path.stat().st_size / MiB:.1f} MiB clip in {time.monotonic() - started:.1f} s")
            self.bases[size] = path
        return self.bases[size]

    def upload(self, base: Path, size: int, *, rate: float = 0, **faults: Any) -> Upload:
        """Start uploading a unique copy of ``base`` padded to ``size`` bytes."""
        self.count += 1
        path = make_upload_file(base, self.files / f"upload-{self.count}.mp4", size=size)
        upload = Upload(
            base_url=self.product.base_url,
            token=self.token,
            path=path,
            chunk=self.args.chunk_mb * MiB,
            rate=rate,
            deadline=time.time() + self.args.deadline_s + 600,
            **faults,
        )
        upload.sha256 = file_sha256(path)
        upload.created = time.time()
        upload.start()
        return upload

    def state(self, upload: Upload) -> dict[str, Any]:
        return self.product.ask("state", upload_id=upload.upload_id) if upload.upload_id else {"upload": None}

    def _poll(self, upload: Upload, until, *, every: float = 0.05) -> dict[str, Any] | None:
        deadline = time.time() + self.args.deadline_s
        while time.time() < deadline:
            state = self.state(upload)
            if until(state):
                return state
            video = state.get("video") or {}
            if video.get("status") in ("ready", "failed") or (state.get("upload") or {}).get("status") == "failed":
                return None
            time.sleep(every)
        return None

    def reach_phase(self, upload: Upload, phase: str, *, spread: bool = True) -> bool:
        """Wait for ``phase`` of ``upload`` (upload, finalization, transcode, encode, output) and, when
        ``spread``, a random moment within its baseline length; True when the phase is still on."""
        pick = (lambda seconds: self.rng.uniform(0, seconds)) if spread else (lambda seconds: 0.0)
        if phase == "upload":
            upload.started.wait(self.args.deadline_s)
            time.sleep(pick(self.phase_s.get("upload", 1.0) * 0.9))
            return not upload.done.is_set()
        if phase == "finalization":
            upload.done.wait()
            # most of it is the broker's 1 s poll: aim at its first half
            time.sleep(pick(self.phase_s.get("finalization", 0.5) * 0.5))
            return (self.state(upload).get("upload") or {}).get("status") == "complete"
        upload.done.wait()
        # progress moves once ffmpeg encodes (saved every ~2 s), reaches 90 when the encode is done
        min_progress = {"transcode": 0, "encode": 1, "output": 90}[phase]
        running = self._poll(
            upload, lambda s: (s.get("job") or {}).get("status") == "running" and s["job"]["progress"] >= min_progress
        )
        if running is None:
            return False
        spread_s = {"transcode": 1.0, "encode": 0.3, "output": 0.0}[phase] * self.phase_s.get("transcode", 1.0)
        time.sleep(pick(spread_s))
        job = self.state(upload).get("job") or {}
        return job.get("status") == "running" and (phase != "encode" or job["progress"] < 90)

    def follow(self, upload: Upload, label: str, *, fault_end: float, hit: bool | None = None) -> Outcome:
        """Wait until the upload's video is ready or failed, or the deadline after ``fault_end`` passed."""
        outcome = Outcome(label=label, hit=hit)
        upload.done.wait()
        state: dict[str, Any] = {}
        while not upload.error:
            state = self.state(upload)
            video, session = state.get("video") or {}, state.get("upload") or {}
            if video.get("status") in ("ready", "failed") or session.get("status") == "failed":
                break
            if time.time() > fault_end + self.args.deadline_s:
                outcome.stuck = True
                break
            time.sleep(0.25)
        video, session, job = state.get("video") or {}, state.get("upload") or {}, state.get("job") or {}
        notes = [f"upload {session.get('status')}", f"video {video.get('status')}"]
        if job:
            notes.append(
                f"job {job['status']} after {job['attempts']} attempts ({job['transient_failures']} transient)"
            )
        for name, text in (("upload error", upload.error), ("upload", session.get("error")), ("job", job.get("error"))):
            if text:
                notes.append(f"{name}: {text[:300]}")
        if video.get("status_reason") and video.get("status") != "ready":
            notes.append(f"video: {video['status_reason'][:300]}")
        if upload.error and not outcome.stuck:
            outcome.failed = True
        elif video.get("status") == "ready":
            media = state.get("media") or {}
            stored = self.storage.sha256(media["storage_key"])
            outcome.wrong_sha = not media.get("sha256") == upload.sha256 == stored
            problem = hls_problem(self.storage, video, self.work)
            if problem:
                outcome.broken_output = True
                notes.append(f"READY BUT BROKEN: {problem}")
            outcome.ready = not outcome.wrong_sha and not outcome.broken_output
            if outcome.ready:
                outcome.recovery_s = max(0.0, video["ready_at"] - fault_end)
        elif not outcome.stuck:
            outcome.failed = True
        outcome.detail = "; ".join(notes)
        outcome.state = state
        upload.path.unlink(missing_ok=True)
        return outcome

    # --- baseline and report ------------------------------------------------------------------

    def baseline(self) -> None:
        """One upload without faults: the phase lengths the random fault moments are drawn from."""
        size = self.args.clip_mb * MiB
        upload = self.upload(self.base_clip(size), size, rate=size / self.args.upload_s)
        outcome = self.follow(upload, "baseline", fault_end=upload.created)
        state = outcome.state
        if not outcome.ready:
            raise RuntimeError(f"the baseline upload did not become ready: {outcome.detail}")
        session, job, video = state["upload"], state["job"], state["video"]
        self.phase_s = {
            "upload": session["completed_at"] - upload.created,
            "finalization": session["finalized_at"] - session["completed_at"],
            "queue": job["started_at"] - session["finalized_at"],
            "transcode": video["ready_at"] - job["started_at"],
        }
        print(
            f"baseline, {size / MiB:.0f} MiB clip without faults: "
            + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.phase_s.items())
            + " (fault moments are drawn within these)"
        )
        self.sweep_orphans()

    def sweep_orphans(self) -> dict[str, dict[str, int]]:
        """Run the periodic tasks once more, then return the orphans not seen before."""
        self.product.ask("sweep")
        found = orphans(self.storage, self.product.ask("refs"))
        new = {key: value for key, value in found.items() if key not in self.seen_orphans}
        self.seen_orphans.update(found)
        return new

    def report(self, name: str, outcomes: list[Outcome]) -> None:
        groups: dict[str, list[Outcome]] = defaultdict(list)
        for outcome in outcomes:
            groups[outcome.label if name != "cuts" else "upload with cuts"].append(outcome)
        print(
            f"  {'round':28} {'rounds':>6} {'in phase':>8} {'ready ok':>9} {'person':>6} {'recovery max':>12} {'median':>8}"
        )
        for label, group in groups.items():
            recoveries = [o.recovery_s for o in group if o.recovery_s is not None]
            hits = sum(o.hit is not False for o in group)
            print(
                f"  {label:28} {len(group):6} {hits:8} {sum(o.ready for o in group):9} "
                f"{sum(o.needed_person for o in group):6} {_seconds(max(recoveries) if recoveries else None):>12} "
                f"{_seconds(statistics.median(recoveries) if recoveries else None):>8}"
            )
        for outcome in outcomes:
            if outcome.needed_person or name == "cuts":
                flag = "NEEDED A PERSON" if outcome.needed_person else "ok"
                print(f"    {outcome.label}: {flag}: {outcome.detail}")
        new = self.sweep_orphans()
        kinds: dict[str, list[int]] = defaultdict(list)
        for key, value in new.items():
            kinds[key.split(":", 1)[0] if not key.startswith("s3:") else key.split("/", 1)[0]].append(value["bytes"])
        total = sum(sum(sizes) for sizes in kinds.values())
        self.orphan_bytes[name] = total
        parts = ", ".join(f"{kind} {len(sizes)} ({sum(sizes)} B)" for kind, sizes in sorted(kinds.items()))
        print(f"  orphans after the sweeps: {total} B" + (f": {parts}" if parts else ""))
        for key in sorted(new)[:10]:
            print(f"    {key} {new[key]['bytes']} B")
