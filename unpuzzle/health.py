"""``/healthz``: database, storage, free disk, ffmpeg/ffprobe, queue and worker clusters, as JSON (200 or 503).

Anyone gets the status and which checks pass; what each check found (paths, bucket, errors)
only staff and monitors holding ``HEALTH_TOKEN`` (``Authorization: Bearer …``) see.

The checks run side by side in a small pool of their own and the answer waits at most
``HEALTH_CHECK_TIMEOUT_S``: a dependency that hangs is reported as not answering, and never
holds a web thread.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, connections
from django.http import HttpRequest, JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from unpuzzle.storage import get_storage, is_local

if TYPE_CHECKING:
    from storages.backends.s3 import S3Storage

logger = logging.getLogger(__name__)


def _check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"vendor": connection.vendor}


def _check_storage() -> dict:
    storage = get_storage()
    if is_local(storage):
        location = settings.MEDIA_ROOT
        location.mkdir(parents=True, exist_ok=True)
        return {"backend": "local", "location": str(location)}
    # Storage is local or B2 (STORAGE_BACKEND): any non-local backend is django-storages' S3 one.
    s3: S3Storage = storage
    # HeadBucket proves endpoint, credentials and bucket name in one request.
    _probe_client(s3).head_bucket(Bucket=s3.bucket_name)
    return {"backend": type(s3).__name__, "bucket": getattr(s3, "bucket_name", "")}


_probe_clients: dict[tuple[Any, ...], Any] = {}


def _probe_client(s3: S3Storage) -> Any:
    """An S3 client like the storage's, with one try and short timeouts: a hung endpoint frees the
    check's thread in a few seconds instead of the minutes the storage's own retries allow."""
    # boto3 is imported only where S3 storage is in use (local deployments never load it).
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    limit = 2 * settings.HEALTH_CHECK_TIMEOUT_S
    key = (s3.endpoint_url, s3.access_key, s3.region_name, limit)
    if key not in _probe_clients:
        config = s3.client_config.merge(
            Config(connect_timeout=limit, read_timeout=limit, retries={"max_attempts": 1, "mode": "standard"})
        )
        session = boto3.session.Session(
            aws_access_key_id=s3.access_key, aws_secret_access_key=s3.secret_key, region_name=s3.region_name
        )
        _probe_clients[key] = session.client("s3", endpoint_url=s3.endpoint_url, config=config)
    return _probe_clients[key]


def _check_disk() -> dict:
    """Free space where uploads, transcode work dirs and (local storage) media are written."""
    places = {"uploads": settings.UPLOAD_TEMP_DIR, "transcode": settings.TRANSCODE_WORK_DIR}
    if is_local(get_storage()):
        places["media"] = settings.MEDIA_ROOT
    free_mib = {}
    for name, directory in places.items():
        Path(directory).mkdir(parents=True, exist_ok=True)
        free_mib[name] = shutil.disk_usage(directory).free // (1024 * 1024)
    low = sorted(name for name, free in free_mib.items() if free < settings.DISK_MIN_FREE_MB)
    if low:
        raise RuntimeError(
            f"less than {settings.DISK_MIN_FREE_MB} MiB free (DISK_MIN_FREE_MB) for {', '.join(low)}: "
            + ", ".join(f"{name} {free} MiB" for name, free in free_mib.items())
        )
    return {"free_mib": free_mib}


def _check_binary(name: str) -> dict:
    path = shutil.which(name)
    if not path:
        raise RuntimeError(f"{name!r} not found on PATH")
    return {"path": path}


def _check_queue() -> dict:
    from django_q.brokers import get_broker

    queues = {}
    for cluster in (settings.SHORT_TASKS_CLUSTER, settings.TRANSCODE_CLUSTER):
        broker = get_broker(cluster)
        if not broker.ping():
            raise RuntimeError(f"the broker of cluster {cluster!r} did not answer")
        queues[cluster] = broker.queue_size()
    return {"broker": type(broker).__name__, "queued": sum(queues.values()), "queues": queues}


def _check_workers() -> dict:
    from unpuzzle.workers import clusters_report

    return {"clusters": clusters_report()}


# Threads of the checks, shared by all requests: a hung check holds one of these, never a web thread.
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="healthz")


def _run_check(name: str, check: Callable[[], dict]) -> dict:
    try:
        return {"ok": True, **check()}
    except Exception as exc:  # a health check reports every failure, whatever its type
        logger.warning("health check %s failed: %s", name, exc)
        return {"ok": False, "error": str(exc)}
    finally:
        # This pool thread's own database connection, if the check opened one.
        connections.close_all()


def run_checks() -> tuple[bool, dict]:
    """Run every check side by side; a failing check reports its error instead of raising, and a
    check with no answer within ``HEALTH_CHECK_TIMEOUT_S`` is reported as failed."""
    checks: dict[str, Callable[[], dict]] = {
        "database": _check_database,
        "storage": _check_storage,
        "disk": _check_disk,
        "ffmpeg": lambda: _check_binary(settings.FFMPEG_BIN),
        "ffprobe": lambda: _check_binary(settings.FFPROBE_BIN),
        "queue": _check_queue,
        "workers": _check_workers,
    }
    limit = settings.HEALTH_CHECK_TIMEOUT_S
    futures: dict[str, Future[dict]] = {name: _pool.submit(_run_check, name, check) for name, check in checks.items()}
    wait(futures.values(), timeout=limit)
    results: dict[str, dict] = {}
    for name, future in futures.items():
        if future.done():
            results[name] = future.result()
        else:
            logger.warning("health check %s gave no answer within %g s", name, limit)
            results[name] = {"ok": False, "error": f"no answer within {limit:g} s (HEALTH_CHECK_TIMEOUT_S)"}
    return all(result["ok"] for result in results.values()), results


def may_see_details(request: HttpRequest) -> bool:
    """Staff (signed in, or by API token) and monitors holding ``HEALTH_TOKEN`` see what each check
    found; anyone else only whether it passed (paths, bucket, ffmpeg location and errors stay inside)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    header = request.headers.get("Authorization", "")
    if settings.HEALTH_TOKEN and constant_time_compare(header, f"Bearer {settings.HEALTH_TOKEN}"):
        return True
    from unpuzzle.authentication import token_user

    user = token_user(request)
    return user is not None and bool(getattr(user, "is_staff", False))


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    healthy, results = run_checks()
    if not may_see_details(request):
        results = {name: {"ok": result["ok"]} for name, result in results.items()}
    return JsonResponse({"status": "ok" if healthy else "unhealthy", "checks": results}, status=200 if healthy else 503)
