"""The Django side of bench/faults.py and bench/transcode_chunked.py: runs the periodic tasks and
answers state queries.

Started by the benchmark with the product's environment (same database, storage and VAR_DIR)
as ``.venv/bin/python bench/faults_helper.py TICK_S``. A thread calls
``transcoding.tasks.transcode_reap_stale()`` and ``uploads.tasks.retry_finalization()`` every
TICK_S seconds (instead of django-q2's scheduler, whose shortest period is a minute; 0 leaves
them to the scheduler); the main thread reads one JSON request per line on stdin and answers one
line ``@@<json>`` on stdout. Not a test: it serves the benchmark.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "unpuzzle.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import close_old_connections  # noqa: E402

from media_library.models import MediaFile, PreviousHlsOutput, Video  # noqa: E402
from media_library.services import video_create  # noqa: E402
from transcoding.models import TranscodeJob  # noqa: E402
from transcoding.services.jobs import transcode_enqueue  # noqa: E402
from transcoding.services.media_files import media_file_create_from_path, original_probe  # noqa: E402
from transcoding.tasks import transcode_reap_stale  # noqa: E402
from uploads.models import UploadSession  # noqa: E402
from uploads.tasks import retry_finalization  # noqa: E402

logger = logging.getLogger("bench.faults_helper")


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def sweep() -> dict[str, Any]:
    """One run of the periodic tasks the benchmark drives (reaper with dispatch and sweeps, finalization retry)."""
    close_old_connections()
    result: dict[str, Any] = {}
    for name, task in (("reap", transcode_reap_stale), ("retry_finalization", retry_finalization)):
        try:
            result[name] = task()
        except Exception as exc:  # a storage or database outage: the next tick tries again
            logger.warning("%s failed: %s: %s", name, type(exc).__name__, exc)
            result[name] = f"{type(exc).__name__}: {exc}"
    return result


def tick_forever(every_s: float) -> None:
    while True:
        time.sleep(every_s)
        result = sweep()
        reap = result.get("reap")
        if result.get("retry_finalization") or (isinstance(reap, dict) and any(reap.values())):
            logger.info("tick: %s", result)


def upload_state(upload_id: str) -> dict[str, Any]:
    """The upload, its original, its video and the video's latest transcode job."""
    close_old_connections()
    session = UploadSession.objects.filter(pk=upload_id).first()
    if session is None:
        return {"upload": None}
    state: dict[str, Any] = {
        "upload": {
            "status": session.status,
            "offset": session.offset,
            "length": session.length,
            "error": session.error,
            "completed_at": _epoch(session.completed_at),
            "finalized_at": _epoch(session.finalized_at),
        },
        "media": None,
        "video": None,
        "job": None,
    }
    if session.media_file_id is not None:
        media = MediaFile.objects.get(pk=session.media_file_id)
        state["media"] = {"sha256": media.sha256, "storage_key": media.storage_key, "size": media.size}
    if session.video_id is not None:
        video = Video.objects.get(pk=session.video_id)
        state["video"] = {
            "id": str(video.id),
            "status": video.status,
            "status_reason": video.status_reason,
            "ready_at": _epoch(video.ready_at),
            "hls_master_key": video.hls_master_key,
            "duration": video.duration,
        }
        job = TranscodeJob.objects.filter(video=video).order_by("-created_at").first()
        if job is not None:
            state["job"] = {
                "status": job.status,
                "progress": job.progress,
                "attempts": job.attempts,
                "transient_failures": job.transient_failures,
                "error": job.error,
                "started_at": _epoch(job.started_at),
                "created_at": _epoch(job.created_at),
                "wall_seconds": job.wall_seconds,
            }
    return state


def references() -> dict[str, Any]:
    """What the database says should be stored, and where this deployment keeps local files."""
    close_old_connections()
    return {
        "originals": list(
            MediaFile.objects.filter(status=MediaFile.Status.STORED).values_list("storage_key", flat=True)
        ),
        "hls_folders": [
            key.rsplit("/", 1)[0] + "/"
            for key in Video.objects.exclude(hls_master_key="").values_list("hls_master_key", flat=True)
        ],
        "previous_outputs": list(PreviousHlsOutput.objects.values_list("master_key", flat=True)),
        "upload_dir": str(settings.UPLOAD_TEMP_DIR),
        "work_dir": str(settings.TRANSCODE_WORK_DIR),
        "live_parts": list(
            UploadSession.objects.filter(status__in=UploadSession.LIVE_STATUSES).values_list("temp_path", flat=True)
        ),
    }


def video_enqueue(path: str, username: str) -> dict[str, Any]:
    """A video of ``username`` from the file at ``path``, through the services finalization calls
    (probe, store the original, create the video, queue its transcode); an original the user already
    stored is reused (each call still makes a new video and job)."""
    close_old_connections()
    owner, _ = get_user_model().objects.get_or_create(username=username)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1024 * 1024):
            digest.update(block)
    media_file, _ = media_file_create_from_path(
        owner=owner,
        path=path,
        original_filename=Path(path).name,
        size=Path(path).stat().st_size,
        sha256=digest.hexdigest(),
        mime_type="video/mp4",
        probe=original_probe(path=path),
    )
    video = video_create(owner=owner, title=Path(path).stem, media_file=media_file)
    job = transcode_enqueue(video=video)
    if job is None:
        raise RuntimeError(f"video {video.id} was not queued: {Video.objects.get(pk=video.pk).status_reason}")
    return {"video_id": str(video.id), "job_id": str(job.id)}


def transcode_report(video_id: str) -> dict[str, Any]:
    """The video (status, output, renditions), its latest job and that job's chunks, with times as epochs."""
    close_old_connections()
    video = Video.objects.get(pk=video_id)
    job = TranscodeJob.objects.filter(video=video).order_by("-created_at").first()
    report: dict[str, Any] = {
        "video": {
            "status": video.status,
            "status_reason": video.status_reason,
            "ready_at": _epoch(video.ready_at),
            "hls_master_key": video.hls_master_key,
            "duration": video.duration,
        },
        "renditions": [
            {"name": r.name, "width": r.width, "height": r.height, "playlist_key": r.playlist_key, "bytes": r.bytes}
            for r in video.renditions.order_by("-height")
        ],
        "media_root": str(settings.MEDIA_ROOT),
        "job": None,
        "chunks": [],
    }
    if job is None:
        return report
    report["job"] = {
        "status": job.status,
        "progress": job.progress,
        "attempts": job.attempts,
        "error": job.error,
        "created_at": _epoch(job.created_at),
        "started_at": _epoch(job.started_at),
        "finished_at": _epoch(job.finished_at),
        "wall_seconds": job.wall_seconds,
        "cpu_seconds": job.cpu_seconds,
        "output_bytes": job.output_bytes,
        "chunk_count": job.chunk_count,
    }
    report["chunks"] = [
        {
            "kind": chunk.kind,
            "index": chunk.index,
            "job_attempt": chunk.job_attempt,
            "start_s": chunk.start_s,
            "length_s": chunk.length_s,
            "status": chunk.status,
            "attempts": chunk.attempts,
            "worker": chunk.worker,
            "started_at": _epoch(chunk.started_at),
            "finished_at": _epoch(chunk.finished_at),
            "wall_seconds": chunk.wall_seconds,
            "cpu_seconds": chunk.cpu_seconds,
        }
        for chunk in job.chunks.order_by("job_attempt", "-kind", "index")
    ]
    return report


def main() -> None:
    tick_s = float(sys.argv[1])
    if tick_s > 0:
        threading.Thread(target=tick_forever, args=(tick_s,), daemon=True).start()
    handlers = {
        "state": lambda req: upload_state(req["upload_id"]),
        "sweep": lambda req: sweep(),
        "refs": lambda req: references(),
        "video_enqueue": lambda req: video_enqueue(req["path"], req["username"]),
        "transcode_report": lambda req: transcode_report(req["video_id"]),
    }
    for line in sys.stdin:
        request = json.loads(line)
        answer: dict[str, Any]
        try:
            answer = {"ok": handlers[request["op"]](request)}
        except Exception as exc:  # reported to the benchmark, which decides
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write("@@" + json.dumps(answer, default=str) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
