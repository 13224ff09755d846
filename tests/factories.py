"""Small builders for test data; each returns a saved object."""
from __future__ import annotations

import hashlib
import itertools
import uuid

from django.contrib.auth import get_user_model

from media_library.models import MediaFile, Video

_counter = itertools.count(1)


def make_user(*, username: str | None = None, password: str = "pw-for-tests-1", **extra):
    username = username or f"user{next(_counter)}"
    return get_user_model().objects.create_user(username=username, password=password, email=f"{username}@example.com", **extra)


def make_staff(**extra):
    """Platform staff: the admin plus every video (instructors are staff without that permission)."""
    from django.contrib.auth.models import Permission

    user = make_user(is_staff=True, **extra)
    user.user_permissions.add(Permission.objects.get(codename="view_all_videos", content_type__app_label="media_library"))
    return user


def make_staff_with(*codenames: str, app_label: str = "transcoding"):
    """Platform staff holding the named permissions of ``app_label`` (e.g. the cost permissions)."""
    from django.contrib.auth.models import Permission

    user = make_staff()
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames))
    return user


def make_instructor(**extra):
    """An instructor: admin access, sees only their own videos, uploads and jobs."""
    return make_user(is_staff=True, **extra)


def make_superuser(*, username: str | None = None, password: str = "pw-for-tests-1"):
    username = username or f"admin{next(_counter)}"
    return get_user_model().objects.create_superuser(username=username, password=password, email=f"{username}@example.com")


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
