"""Expiry and cleanup: unfinished uploads go (files and, later, rows); completed ones stay."""

from __future__ import annotations

import io
import os
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from unpuzzle.schedules import SCHEDULES
from uploads.models import UploadSession
from uploads.partfiles import part_path
from uploads.services.cleanup import uploads_cleanup
from uploads.services.tus import upload_session_append, upload_session_create, upload_session_terminate

pytestmark = pytest.mark.django_db(transaction=True)


def _started(owner, *, length=10, data=b"hello", partial=False) -> UploadSession:
    session = upload_session_create(owner=owner, length=length, metadata={"filename": "a.mp4"}, partial=partial)
    return upload_session_append(session=session, offset=0, stream=io.BytesIO(data), content_length=len(data))


def test_expired_unfinished_uploads_lose_their_files_then_their_rows(user):
    session = _started(user)
    later = session.expires_at + timedelta(seconds=1)
    assert uploads_cleanup(now=later - timedelta(seconds=2)) == {"expired": 0, "purged": 0, "orphans": 0}
    assert uploads_cleanup(now=later)["expired"] == 1
    session.refresh_from_db()
    assert session.status == UploadSession.Status.EXPIRED and not os.path.exists(session.temp_path)
    # The row answers 410 for a week, then goes.
    assert uploads_cleanup(now=timezone.now() + timedelta(days=6))["purged"] == 0
    assert uploads_cleanup(now=timezone.now() + timedelta(days=8))["purged"] == 1
    assert not UploadSession.objects.filter(pk=session.pk).exists()


def test_completed_uploads_never_expire_but_unconcatenated_parts_do(user):
    done = _started(user, length=5)
    part = _started(user, length=5, partial=True)
    assert done.status == part.status == UploadSession.Status.COMPLETE
    assert done.expires_at is None and part.expires_at is not None
    result = uploads_cleanup(now=timezone.now() + timedelta(days=3))
    assert result["expired"] == 1
    done.refresh_from_db()
    part.refresh_from_db()
    assert done.status == UploadSession.Status.COMPLETE and os.path.exists(done.temp_path)
    assert part.status == UploadSession.Status.EXPIRED and not os.path.exists(part.temp_path)


def test_activity_extends_the_expiry(user, settings):
    settings.UPLOAD_EXPIRY_HOURS = 1
    session = upload_session_create(owner=user, length=10, metadata={"filename": "a.mp4"})
    first_expiry = session.expires_at
    time.sleep(0.01)
    session = upload_session_append(session=session, offset=0, stream=io.BytesIO(b"abc"), content_length=3)
    assert session.expires_at > first_expiry


def test_terminate_frees_disk_at_once(user):
    session = _started(user)
    upload_session_terminate(session=session)
    session.refresh_from_db()
    assert session.status == UploadSession.Status.CANCELLED and not os.path.exists(session.temp_path)


def test_orphan_part_files_are_removed(user, settings):
    live = _started(user)
    orphan = part_path("00000000-0000-0000-0000-000000000001")
    orphan.write_bytes(b"left by a crash")
    old = time.time() - (settings.UPLOAD_EXPIRY_HOURS + 1) * 3600
    os.utime(orphan, (old, old))
    os.utime(live.temp_path, (old, old))
    assert uploads_cleanup()["orphans"] == 1
    assert not orphan.exists() and os.path.exists(live.temp_path)


def test_management_command_and_schedule(user, capsys):
    session = _started(user)
    UploadSession.objects.filter(pk=session.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    call_command("cleanup_uploads")
    assert "expired 1 uploads" in capsys.readouterr().out
    funcs = {spec.func for spec in SCHEDULES}
    assert {"uploads.tasks.cleanup_uploads", "uploads.tasks.retry_finalization"} <= funcs
