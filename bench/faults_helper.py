"""The Django side of bench/faults.py: runs the periodic tasks and answers state queries.

Started by bench/faults.py with the product's environment (same database, storage and VAR_DIR)
as ``.venv/bin/python bench/faults_helper.py TICK_S``. A thread calls
``transcoding.tasks.transcode_reap_stale()`` and ``uploads.tasks.retry_finalization()`` every
TICK_S seconds (instead of django-q2's scheduler, whose shortest period is a minute); the main
thread reads one JSON request per line on stdin and answers one line ``@@<json>`` on stdout.
Not a test: it serves the benchmark.
"""

from __future__ import annotations

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
from django.db import close_old_connections  # noqa: E402

from media_library.models import MediaFile, PreviousHlsOutput, Video  # noqa: E402
from transcoding.models import TranscodeJob  # noqa: E402
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


def main() -> None:
    threading.Thread(target=tick_forever, args=(float(sys.argv[1]),), daemon=True).start()
    handlers = {
        "state": lambda req: upload_state(req["upload_id"]),
        "sweep": lambda req: sweep(),
        "refs": lambda req: references(),
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
