"""Small builders for test data; each returns a saved object (``make_stored_video`` also stores its original)."""

from __future__ import annotations

import hashlib
import itertools
import uuid
from decimal import Decimal
from pathlib import Path

from django.contrib.auth import get_user_model
from django.utils import timezone

from media_library.models import MediaFile, Video
from transcoding.models import CostLogEntry, TranscodeJob
from unpuzzle import storage
from uploads.models import UploadSession

_counter = itertools.count(1)


def make_user(*, username: str | None = None, password: str = "pw-for-tests-1", can_upload: bool = True, **extra):
    """A user who may upload (``uploads.add_uploadsession``, as instructors and REST clients that
    upload have) unless ``can_upload`` is False."""
    from django.contrib.auth.models import Permission

    username = username or f"user{next(_counter)}"
    user = get_user_model().objects.create_user(
        username=username, password=password, email=f"{username}@example.com", **extra
    )
    if can_upload:
        user.user_permissions.add(
            Permission.objects.get(codename="add_uploadsession", content_type__app_label="uploads")
        )
    return user


def make_staff(**extra):
    """Platform staff: the admin plus every video (instructors are staff without that permission)."""
    from django.contrib.auth.models import Permission

    user = make_user(is_staff=True, **extra)
    user.user_permissions.add(
        Permission.objects.get(codename="view_all_videos", content_type__app_label="media_library")
    )
    return user


def make_staff_with(*codenames: str, app_label: str = "transcoding"):
    """Platform staff holding the named permissions of ``app_label`` (e.g. the cost permissions)."""
    from django.contrib.auth.models import Permission

    user = make_staff()
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames))
    return user


def make_instructor(**extra):
    """An instructor: admin access, sees only their own videos, uploads and jobs (the permission
    to upload comes with the Instructors group, as ``setup_groups`` makes it)."""
    extra.setdefault("can_upload", False)
    return make_user(is_staff=True, **extra)


def make_superuser(*, username: str | None = None, password: str = "pw-for-tests-1"):
    username = username or f"admin{next(_counter)}"
    return get_user_model().objects.create_superuser(
        username=username, password=password, email=f"{username}@example.com"
    )


def make_media_file(*, owner, content: bytes | None = None, **fields) -> MediaFile:
    content = content if content is not None else uuid.uuid4().bytes
    media_id = fields.pop("id", uuid.uuid4())
    defaults = {
        "original_filename": "lecture.mp4",
        "storage_key": f"originals/{media_id}/lecture.mp4",
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "mime_type": "video/mp4",
    }
    defaults.update(fields)
    return MediaFile.objects.create(id=media_id, owner=owner, **defaults)


def make_video(*, owner, media_file: MediaFile | None = None, **fields) -> Video:
    fields.setdefault("title", f"Lecture {next(_counter)}")
    return Video.objects.create(owner=owner, media_file=media_file, **fields)


def make_stored_video(owner, clip: Path) -> Video:
    """Put ``clip`` in storage as an original and make a video of it (as upload finalization does)."""
    media_id = uuid.uuid4()
    key = f"originals/{media_id}/{clip.name}"
    storage.save_file(key, clip)
    media = make_media_file(
        owner=owner, id=media_id, storage_key=key, size=clip.stat().st_size, content=clip.read_bytes()
    )
    return make_video(owner=owner, media_file=media)


def make_job(*, video: Video | None = None, owner=None, **fields) -> TranscodeJob:
    """A transcode job; without ``video``, one of a new video of ``owner`` (or of a new user)."""
    if video is None:
        video = make_video(owner=owner or make_user())
    return TranscodeJob.objects.create(video=video, **fields)


def make_upload_session(*, owner=None, **fields) -> UploadSession:
    """A tus upload session row (no part file on disk); ``length`` defaults to 10 bytes."""
    fields.setdefault("length", 10)
    return UploadSession.objects.create(owner=owner or make_user(), **fields)


COST_UNITS = {"storage": "GB-day", "egress": "GB", "transcode": "minute", "requests": "10k class B"}


def make_cost_entry(*, kind: str = "transcode", quantity="1", unit_price="0.005", **fields) -> CostLogEntry:
    """A ledger line dated today; ``unit`` follows ``kind`` and ``amount`` is quantity × unit price unless given."""
    fields.setdefault("date", timezone.localdate())
    fields.setdefault("unit", COST_UNITS[kind])
    fields.setdefault("amount", Decimal(str(quantity)) * Decimal(str(unit_price)))
    return CostLogEntry.objects.create(kind=kind, quantity=quantity, unit_price=unit_price, **fields)
