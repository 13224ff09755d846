"""Recording an upload's progress: the one-UPDATE path for uploading uploads and its fallback."""

import pytest

from tests.factories import make_upload_session, make_user
from unpuzzle.exceptions import UploadOffsetMismatch
from uploads.models import UploadSession
from uploads.services.tus import _advance, _advance_uploading

pytestmark = pytest.mark.django_db
S = UploadSession.Status


def _session(**fields) -> UploadSession:
    return make_upload_session(owner=make_user(), length=100, offset=10, **fields)


def test_an_uploading_upload_moves_on_in_one_update(django_assert_num_queries):
    session = _session(status=S.UPLOADING, expires_at=None)
    with django_assert_num_queries(1):
        moved = _advance_uploading(session=session, expected_offset=10, new_offset=40)
    stored = UploadSession.objects.get(pk=session.pk)
    assert moved is session and (stored.offset, stored.status) == (40, S.UPLOADING)
    assert stored.expires_at is not None and stored.expires_at == moved.expires_at


def test_a_moved_row_is_left_alone_and_reported_by_the_locked_path():
    session = _session(status=S.UPLOADING)
    UploadSession.objects.filter(pk=session.pk).update(offset=20)  # another writer got there first
    assert _advance_uploading(session=session, expected_offset=10, new_offset=40) is None
    assert UploadSession.objects.get(pk=session.pk).offset == 20
    with pytest.raises(UploadOffsetMismatch):
        _advance(session_id=session.id, expected_offset=10, new_offset=40)


@pytest.mark.parametrize("status, new_offset", [(S.CREATED, 40), (S.UPLOADING, 100), (S.CANCELLED, 40)])
def test_status_changes_and_ended_uploads_take_the_locked_path(status, new_offset):
    session = _session(status=status)
    assert _advance_uploading(session=session, expected_offset=10, new_offset=new_offset) is None
    assert UploadSession.objects.get(pk=session.pk).offset == 10


def test_an_upload_terminated_meanwhile_is_not_moved():
    session = _session(status=S.UPLOADING)
    UploadSession.objects.filter(pk=session.pk).update(status=S.CANCELLED)  # DELETE while bytes streamed
    assert _advance_uploading(session=session, expected_offset=10, new_offset=40) is None
    assert UploadSession.objects.get(pk=session.pk).offset == 10
