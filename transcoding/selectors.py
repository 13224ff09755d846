"""Reads for transcode jobs (cost reads live in ``transcoding.costs.selectors``)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import OuterRef, QuerySet, Subquery

from media_library.models import Video
from transcoding.models import TranscodeJob


def videos_with_latest_job(*, queryset: QuerySet[Video], prefix: str, fields: Iterable[str]) -> QuerySet[Video]:
    """Annotate each video of ``queryset`` with ``<prefix><field>`` of its latest transcode job
    for each of ``fields`` (None when it never had one)."""
    latest = TranscodeJob.objects.filter(video=OuterRef("pk")).order_by("-created_at")
    return queryset.annotate(**{f"{prefix}{name}": Subquery(latest.values(name)[:1]) for name in fields})
