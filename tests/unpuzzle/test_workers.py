"""Cluster heartbeats: /healthz says which task cluster stopped reporting instead of 200 "ok"."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from tests.factories import make_staff
from unpuzzle.models import ClusterHeartbeat
from unpuzzle.workers import cluster_beat, clusters_heartbeat, clusters_report

pytestmark = pytest.mark.django_db(transaction=True)  # /healthz reads from its own threads

SHORT, TRANSCODE = "unpuzzle", "transcode"


def workers_check(client) -> tuple[int, dict]:
    client.force_login(make_staff())
    response = client.get("/healthz")
    return response.status_code, response.json()["checks"]["workers"]


def test_a_cluster_that_never_reported_makes_healthz_503(client):
    cluster_beat(cluster=SHORT)
    status, check = workers_check(client)
    assert status == 503 and check["ok"] is False
    assert (
        "cluster 'transcode' has not reported yet (is `Q_CLUSTER_NAME=transcode manage.py qcluster` running?)"
        in (check["error"])
    )
    assert "'unpuzzle'" not in check["error"]


def test_a_silent_cluster_is_named_with_how_long_it_has_been_silent(client, settings):
    settings.HEALTH_WORKERS_STALE_S = 600
    now = timezone.now()
    cluster_beat(cluster=SHORT, now=now - timedelta(seconds=30))
    cluster_beat(cluster=TRANSCODE, now=now - timedelta(seconds=601))
    status, check = workers_check(client)
    assert status == 503
    assert "cluster 'transcode' has not reported for 601 s" in check["error"]
    assert "HEALTH_WORKERS_STALE_S=600" in check["error"]

    cluster_beat(cluster=TRANSCODE)
    status, check = workers_check(client)
    assert status == 200 and check["ok"] is True
    assert set(check["clusters"]) == {SHORT, TRANSCODE}
    assert check["clusters"][SHORT]["seconds_since_beat"] in (30, 31)


def test_the_schedule_beats_and_asks_the_transcode_cluster_once_at_a_time(settings):
    settings.HEALTH_WORKERS_STALE_S = 600
    now = timezone.now()
    clusters_heartbeat(now=now)
    assert ClusterHeartbeat.objects.get(cluster=SHORT).beat_at == now
    asked = OrmQ.objects.get()
    assert asked.key == TRANSCODE and asked.task["func"] == "unpuzzle.tasks.cluster_heartbeat"

    # Unanswered (the cluster is busy or gone): no second task until the first is answered...
    clusters_heartbeat(now=now + timedelta(minutes=1))
    assert OrmQ.objects.count() == 1
    # ...which the transcode cluster's worker does by running it.
    from unpuzzle.tasks import cluster_heartbeat

    cluster_heartbeat()
    ClusterHeartbeat.objects.filter(cluster=TRANSCODE).update(beat_at=now + timedelta(minutes=1, seconds=30))
    clusters_heartbeat(now=now + timedelta(minutes=2))
    assert OrmQ.objects.count() == 2
    # A task a killed cluster holds is given up on after HEALTH_WORKERS_STALE_S.
    clusters_heartbeat(now=now + timedelta(minutes=3))
    assert OrmQ.objects.count() == 2
    clusters_heartbeat(now=now + timedelta(minutes=2, seconds=601))
    assert OrmQ.objects.count() == 3


def test_the_heartbeat_schedule_exists():
    from unpuzzle.schedules import SCHEDULES

    spec = next(s for s in SCHEDULES if s.name == "clusters-heartbeat")
    assert spec.func == "unpuzzle.tasks.clusters_heartbeat" and spec.minutes == 1


def test_report_lists_both_clusters_when_alive(clusters_alive):
    assert set(clusters_report()) == {SHORT, TRANSCODE}
