"""Two django-q2 clusters: transcodes on their own, short tasks never wait behind them.

The end-to-end tests start real ``manage.py qcluster`` processes (``Q_CLUSTER_NAME`` picks the
cluster) against the test database, which is a file (SQLite) or a server (PostgreSQL) they can open.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.utils import timezone
from django_q.models import OrmQ, Schedule, Success
from django_q.tasks import async_task

from media_library.models import Video
from tests.factories import make_media_file, make_stored_video, make_video
from transcoding.models import TranscodeJob
from transcoding.services.jobs import transcode_enqueue
from transcoding.tasks import transcode_reap_stale
from uploads.models import UploadSession
from uploads.services.tus import upload_session_append, upload_session_create

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
SHORT = django_settings.SHORT_TASKS_CLUSTER
TRANSCODE = django_settings.TRANSCODE_CLUSTER
WAIT_LIMIT_S = 60  # only guards against a hang; nothing here is timed


def hold_until(gate: str, started: str) -> str:
    """A task that keeps its worker busy until the test creates ``gate``, as a long transcode would."""
    Path(started).touch()
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return "released"


def wait_for(condition: Callable[[], object], what: str, procs: list[subprocess.Popen] = ()) -> object:
    deadline = time.monotonic() + WAIT_LIMIT_S
    while time.monotonic() < deadline:
        if value := condition():
            return value
        for proc in procs:
            if proc.poll() is not None:
                log = proc.log_path.read_text(errors="replace")[-3000:]
                raise AssertionError(f"qcluster exited with {proc.returncode} while waiting for {what}:\n{log}")
        time.sleep(0.1)
    raise AssertionError(f"gave up after {WAIT_LIMIT_S} s waiting for {what}")


@pytest.fixture
def start_cluster(process_env, isolated_var) -> Iterator[Callable[[str], subprocess.Popen]]:
    """Start ``manage.py qcluster`` for a cluster; every one is stopped before the database is flushed."""
    started: list[subprocess.Popen] = []

    def start(name: str) -> subprocess.Popen:
        log_path = isolated_var / f"qcluster-{name or SHORT}-{len(started) + 1}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"],
                cwd=ROOT,
                env={**process_env, "Q_CLUSTER_NAME": name},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc.log_path = log_path
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.send_signal(signal.SIGTERM)
    for proc in started:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        # The rest of its session too: a cluster waits for a worker that is still in a task.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def complete_upload(owner, clip: Path) -> UploadSession:
    data = clip.read_bytes()
    session = upload_session_create(owner=owner, length=len(data), metadata={"filename": "lecture.mp4"})
    return upload_session_append(session=session, offset=0, stream=io.BytesIO(data), content_length=len(data))


# --- Routing: which queue each task lands in (the ORM broker, not sync mode) ------------------


def test_transcodes_go_to_the_transcode_queue_and_finalization_to_the_short_one(user, below_ladder_clip):
    video = make_video(owner=user, media_file=make_media_file(owner=user))
    job = transcode_enqueue(video=video)
    session = complete_upload(user, below_ladder_clip)  # its last byte queues the finalization

    queued = {row.task["name"]: row for row in OrmQ.objects.all()}
    assert set(queued) == {f"transcode-{job.id}", f"finalize-upload-{session.id}"}
    assert queued[f"transcode-{job.id}"].key == TRANSCODE
    assert queued[f"transcode-{job.id}"].task["cluster"] == TRANSCODE
    assert queued[f"finalize-upload-{session.id}"].key == SHORT


def django_q_conf(**env: str) -> subprocess.CompletedProcess:
    """django-q2's own view of the cluster a process with ``env`` serves."""
    code = (
        "import django, json; django.setup(); from django_q.conf import Conf; print(json.dumps("
        "[Conf.CLUSTER_NAME, Conf.TIMEOUT, Conf.RETRY, Conf.WORKERS, Conf.QUEUE_LIMIT, Conf.SCHEDULER]))"
    )
    sizes = {"Q_TIMEOUT_S": "600", "TRANSCODE_TIMEOUT_S": "3600", "Q_WORKERS": "3", "TRANSCODE_WORKERS": "2"}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "unpuzzle.settings", **sizes, **env},
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("", [SHORT, 600, 1200, 3, 4, True]),
        (TRANSCODE, [TRANSCODE, 3900, 4500, 2, 1, False]),
    ],
    ids=["short-tasks", "transcode"],
)
def test_q_cluster_name_picks_the_cluster_and_its_timeouts(name, expected):
    result = django_q_conf(Q_CLUSTER_NAME=name)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected  # retry above timeout: no running task is handed out twice


def test_a_misspelt_cluster_name_is_refused():
    result = django_q_conf(Q_CLUSTER_NAME="transcoder")
    assert result.returncode != 0
    assert "Q_CLUSTER_NAME='transcoder' names no cluster" in result.stderr


def test_health_counts_both_queues(client, user, below_ladder_clip, monitor_headers):
    transcode_enqueue(video=make_video(owner=user, media_file=make_media_file(owner=user)))
    complete_upload(user, below_ladder_clip)
    queue = client.get("/healthz", headers=monitor_headers).json()["checks"]["queue"]
    assert queue["ok"] and queue["queues"] == {SHORT: 1, TRANSCODE: 1} and queue["queued"] == 2


# --- Real clusters ------------------------------------------------------------------------------


def test_a_busy_transcode_cluster_does_not_hold_up_finalization(start_cluster, user, below_ladder_clip, isolated_var):
    transcoder = start_cluster(TRANSCODE)
    short = start_cluster("")
    procs = [transcoder, short]
    gate, started = isolated_var / "gate", isolated_var / "started"
    async_task(f"{__name__}.hold_until", str(gate), str(started), task_name="hold", cluster=TRANSCODE)
    wait_for(started.exists, "the transcode cluster to take the long task", procs)

    # Its one worker is busy: an upload is finalized by the short-task cluster all the same.
    session = complete_upload(user, below_ladder_clip)
    finalized = wait_for(
        lambda: Success.objects.filter(name=f"finalize-upload-{session.id}").first(), "finalization", procs
    )
    assert finalized.cluster == SHORT
    session.refresh_from_db()
    assert session.status == UploadSession.Status.FINALIZED
    job = TranscodeJob.objects.get(video_id=session.video_id)
    assert job.status == TranscodeJob.Status.QUEUED, "the transcode waits for the transcode cluster's worker"
    assert not Success.objects.filter(name="hold").exists(), "the long task was still running"

    gate.touch()
    done = wait_for(lambda: Success.objects.filter(name=f"transcode-{job.id}").first(), "the transcode", procs)
    assert done.cluster == TRANSCODE
    assert Success.objects.get(name="hold").cluster == TRANSCODE
    job.refresh_from_db()
    assert job.status == TranscodeJob.Status.SUCCEEDED
    assert Video.objects.get(pk=session.video_id).status == Video.Status.READY


def test_only_the_short_task_cluster_runs_the_schedules(process_env):
    call_command("setup_schedules", verbosity=0)
    Schedule.objects.update(next_run=timezone.now() - timedelta(minutes=1))

    def run_scheduler(cluster: str) -> None:
        """One pass of django-q2's scheduler, as the guard of that cluster runs it."""
        code = "import django; django.setup(); from django_q.scheduler import scheduler; scheduler()"
        env = {**process_env, "DJANGO_SETTINGS_MODULE": "unpuzzle.settings", "Q_CLUSTER_NAME": cluster}
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr

    run_scheduler(TRANSCODE)
    assert OrmQ.objects.count() == 0

    run_scheduler("")
    assert sorted(row.task["group"] for row in OrmQ.objects.filter(key=SHORT)) == sorted(
        s.name for s in Schedule.objects.all()
    )
    assert OrmQ.objects.count() == Schedule.objects.count()


def test_transcodes_a_killed_cluster_fetched_ahead_reach_the_next_cluster(
    start_cluster, user, other_user, below_ladder_clip, isolated_var, settings
):
    settings.TRANSCODE_DISPATCH_STALE_S = 0
    first = start_cluster(TRANSCODE)
    gate, started = isolated_var / "gate", isolated_var / "started"
    async_task(f"{__name__}.hold_until", str(gate), str(started), task_name="hold", cluster=TRANSCODE)
    wait_for(started.exists, "the transcode cluster to take the long task", [first])
    jobs = [transcode_enqueue(video=make_stored_video(owner, below_ladder_clip)) for owner in (user, other_user)]
    # Its pusher takes both off the queue ahead of the busy worker: locked for the cluster's `retry`.
    wait_for(
        lambda: OrmQ.objects.filter(key=TRANSCODE, lock__gt=timezone.now()).count() == 3,
        "the cluster to fetch both transcodes ahead",
        [first],
    )
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()

    second = start_cluster(TRANSCODE)
    counts = transcode_reap_stale()  # the reaper schedule's task
    assert counts["redispatched"] == 2
    for job in jobs:
        wait_for(
            lambda job=job: TranscodeJob.objects.filter(pk=job.pk, status=TranscodeJob.Status.SUCCEEDED).exists(),
            f"job {job.id} to run on the new cluster",
            [second],
        )
    assert not OrmQ.objects.filter(key=TRANSCODE).exclude(lock__gt=timezone.now()).exists()
    assert transcode_reap_stale()["redispatched"] == 0


def test_healthz_names_a_killed_cluster_and_sees_it_come_back(start_cluster, client, settings, monitor_headers):
    settings.HEALTH_WORKERS_STALE_S = 3

    def workers() -> dict:
        return client.get("/healthz", headers=monitor_headers).json()["checks"]["workers"]

    short = start_cluster("")
    transcoder = start_cluster(TRANSCODE)
    # Workers report as they start: no schedule has run yet.
    wait_for(lambda: workers()["ok"], "both clusters to report", [short, transcoder])

    os.killpg(transcoder.pid, signal.SIGKILL)
    transcoder.wait()
    check = wait_for(
        lambda: (w := workers()) and "cluster 'transcode'" in w.get("error", "") and w,
        "/healthz to notice the dead cluster",
        [short],
    )
    assert not check["ok"] and "cluster 'transcode' has not reported for" in check["error"]

    start_cluster(TRANSCODE)
    wait_for(lambda: "cluster 'transcode'" not in workers().get("error", ""), "the restarted cluster to report")
