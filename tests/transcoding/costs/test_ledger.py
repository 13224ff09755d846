"""Ledger lines written per transcode, per daily storage snapshot and for delivery."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone

from media_library.models import MediaFile, Rendition, Video
from tests.factories import make_job, make_media_file, make_video
from transcoding.costs.ledger import (
    cost_estimate_delivery,
    cost_record_delivery,
    cost_record_requests,
    cost_record_transcode,
    cost_snapshot_storage,
)
from transcoding.models import CostLogEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def prices(settings):
    settings.TRANSCODE_USD_PER_MINUTE = "0.005"
    settings.TRANSCODE_USD_PER_CPU_HOUR = "0"
    settings.B2_STORAGE_USD_PER_GB_MONTH = "0.006"
    settings.CDN_USD_PER_GB = "0.01"
    settings.B2_DOWNLOAD_USD_PER_GB = "0"
    settings.B2_CLASS_B_USD_PER_10K = "0.004"
    settings.CDN_URL = "https://unpuzzle.b-cdn.net"
    settings.MONTHLY_BUDGET_USD = "1000000"
    return settings


def _rendition(video, name, height, num_bytes, bandwidth=1_000_000, average=None, segments=10):
    return Rendition.objects.create(
        video=video,
        name=name,
        width=height * 16 // 9,
        height=height,
        bandwidth=bandwidth,
        average_bandwidth=average,
        playlist_key=f"videos/{video.id}/hls/1/{name}.m3u8",
        bytes=num_bytes,
        segment_count=segments,
    )


def test_transcode_writes_one_exact_line_per_job(user, prices):
    video = make_video(owner=user, media_file=make_media_file(owner=user))
    job = make_job(video=video)

    lines = cost_record_transcode(job=job, output_minutes=Decimal("12.5"), cpu_seconds=5400.0)

    assert len(lines) == 1
    line = CostLogEntry.objects.get()
    assert (line.kind, line.unit, line.quantity, line.unit_price, line.amount) == (
        "transcode",
        "minute",
        Decimal("12.5"),
        Decimal("0.005"),
        Decimal("0.0625"),
    )
    assert (line.video, line.job, line.owner, line.date) == (video, job, user, timezone.localdate())
    assert not line.is_estimate
    assert "5400" in line.note


def test_transcode_with_a_cpu_hour_price_adds_a_cpu_line(user, prices):
    prices.TRANSCODE_USD_PER_CPU_HOUR = "0.05"
    job = make_job(video=make_video(owner=user, media_file=make_media_file(owner=user)))

    cost_record_transcode(job=job, output_minutes=3, cpu_seconds=5400)

    cpu = CostLogEntry.objects.get(unit="CPU-hour")
    assert (cpu.quantity, cpu.amount) == (Decimal("1.5"), Decimal("0.075"))
    assert CostLogEntry.objects.get(unit="minute").amount == Decimal("0.015")


def test_recording_the_same_job_twice_is_a_no_op(user, prices):
    job = make_job(video=make_video(owner=user, media_file=make_media_file(owner=user)))
    first = cost_record_transcode(job=job, output_minutes=10, cpu_seconds=60)
    second = cost_record_transcode(job=job, output_minutes=99, cpu_seconds=60)
    assert [line.pk for line in first] == [line.pk for line in second]
    assert CostLogEntry.objects.count() == 1
    assert CostLogEntry.objects.get().amount == Decimal("0.05")


def test_storage_snapshot_prorates_originals_and_renditions(user, other_user, prices):
    day = date(2025, 6, 10)  # June: 30 days, so 1 GB-day costs 0.006 / 30 = 0.0002 USD
    media = make_media_file(owner=user, size=1_500_000_000)
    video = make_video(owner=user, media_file=media)
    _rendition(video, "240p", 240, 200_000_000)
    _rendition(video, "480p", 480, 300_000_000)
    make_video(owner=user, media_file=media, title="duplicate of the same original")
    make_media_file(owner=other_user, size=250_000_000)  # stored, no video yet
    make_media_file(owner=other_user, size=9_000_000_000, status=MediaFile.Status.DELETED)

    cost_snapshot_storage(day=day)

    per_video = CostLogEntry.objects.get(video=video)
    assert (per_video.kind, per_video.unit, per_video.quantity) == ("storage", "GB-day", Decimal("2"))
    assert per_video.unit_price == Decimal("0.0002")
    assert per_video.amount == Decimal("0.0004")
    assert per_video.owner == user and per_video.date == day
    orphan = CostLogEntry.objects.get(video__isnull=True)
    assert (orphan.quantity, orphan.amount) == (Decimal("0.25"), Decimal("0.00005"))
    assert CostLogEntry.objects.count() == 2  # the duplicate video holds nothing of its own; deleted files cost nothing


def test_storage_snapshot_in_a_31_day_month_rounds_half_up(user, prices):
    video = make_video(owner=user, media_file=make_media_file(owner=user, size=1_000_000_000))
    cost_snapshot_storage(day=date(2025, 7, 1))
    line = CostLogEntry.objects.get(video=video)
    # 0.006 / 31 = 0.000193548… per GB-day
    assert line.amount == Decimal("0.000194")
    assert line.unit_price == Decimal("0.00019355")


def test_storage_snapshot_rerun_replaces_the_day(user, prices):
    day = date(2025, 6, 10)
    video = make_video(owner=user, media_file=make_media_file(owner=user, size=1_000_000_000))
    cost_snapshot_storage(day=day)
    _rendition(video, "480p", 480, 500_000_000)
    cost_snapshot_storage(day=day)
    cost_snapshot_storage(day=date(2025, 6, 11))

    assert CostLogEntry.objects.filter(date=day).count() == 1
    assert CostLogEntry.objects.get(date=day).quantity == Decimal("1.5")
    assert CostLogEntry.objects.filter(kind="storage").count() == 2


def test_delivery_through_the_cdn(user, prices):
    video = make_video(owner=user, media_file=make_media_file(owner=user))
    lines = cost_record_delivery(video=video, bytes_served=3_000_000_000, day=date(2025, 6, 3))
    assert [(line.unit_price, line.quantity, line.amount) for line in lines] == [
        (Decimal("0.01"), Decimal("3"), Decimal("0.03"))
    ]
    prices.B2_DOWNLOAD_USD_PER_GB = "0.01"
    lines = cost_record_delivery(video=video, bytes_served=1_000_000_000, day=date(2025, 6, 3))
    assert len(lines) == 2  # CDN plus B2 origin pulls once B2 download is priced


def test_requests_are_priced_per_10k_and_1k(prices, settings):
    lines = cost_record_requests(day=date(2025, 6, 3), class_b=25_000, class_c=500)
    assert [(line.unit, line.quantity, line.amount) for line in lines] == [
        ("10k class B", Decimal("2.5"), Decimal("0.01")),
        ("1k class C", Decimal("0.5"), Decimal("0.002")),
    ]


def _ready_video(user, *, access_count=0):
    media = make_media_file(owner=user, access_count=access_count, duration=600.0)
    video = make_video(
        owner=user, media_file=media, status=Video.Status.READY, hls_master_key="videos/x/master.m3u8", duration=600.0
    )
    _rendition(video, "240p", 240, 1, bandwidth=500_000, average=400_000, segments=100)
    _rendition(video, "480p", 480, 1, bandwidth=1_000_000, average=800_000, segments=100)
    return video


def test_delivery_estimate_from_playback_counters(user, prices):
    video = _ready_video(user, access_count=4)
    day = date(2025, 6, 3)

    cost_estimate_delivery(day=day)

    line = CostLogEntry.objects.get(video=video)
    # 4 plays × 600 000 bit/s (mean average bandwidth) / 8 × 600 s = 180 000 000 bytes = 0.18 GB
    assert (line.kind, line.is_estimate, line.quantity, line.amount) == (
        "egress",
        True,
        Decimal("0.18"),
        Decimal("0.0018"),
    )
    assert "estimate: 4 plays" in line.note

    cost_estimate_delivery(day=day)  # same day again: recomputed from the same base, not doubled
    assert CostLogEntry.objects.get(video=video).quantity == Decimal("0.18")

    MediaFile.objects.filter(pk=video.media_file_id).update(access_count=5)
    cost_estimate_delivery(day=date(2025, 6, 4))
    assert CostLogEntry.objects.get(video=video, date=date(2025, 6, 4)).quantity == Decimal("0.045")
    assert CostLogEntry.objects.aggregate(total=Sum("quantity"))["total"] == Decimal("0.225")


def test_delivery_estimate_without_cdn_counts_class_b_requests(user, prices):
    prices.CDN_URL = ""
    video = _ready_video(user, access_count=2)
    cost_estimate_delivery(day=date(2025, 6, 3))
    requests = CostLogEntry.objects.get(video=video, kind="requests")
    assert requests.quantity == Decimal("0.0204")  # 2 plays × (100 segments + 2 playlists) = 204 class B
    assert CostLogEntry.objects.get(video=video, kind="egress").unit_price == Decimal("0")
