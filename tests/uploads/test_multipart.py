"""Pure multipart helpers: part sizes within S3's limits, ETag form, which uploads the cleanup aborts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from uploads.multipart import (
    MAX_PART_SIZE,
    MAX_PARTS,
    MIB,
    PendingUpload,
    choose_part_size,
    normalize_etag,
    part_count,
    stale_uploads,
)


def test_part_size_is_the_preferred_size_but_never_under_5_mib():
    assert choose_part_size(100, preferred=8 * MIB) == 8 * MIB
    assert choose_part_size(100, preferred=1 * MIB) == 5 * MIB


def test_part_size_grows_in_whole_mib_to_stay_within_10000_parts():
    size = 200 * 1024 * MIB  # 200 GiB
    part = choose_part_size(size, preferred=8 * MIB)
    assert part % MIB == 0 and part > 8 * MIB
    assert part_count(size, part) <= MAX_PARTS
    assert part_count(size, part - MIB) > MAX_PARTS


def test_a_file_too_big_for_10000_parts_of_5_gib_is_refused():
    with pytest.raises(ValueError, match="10000 parts"):
        choose_part_size(MAX_PARTS * MAX_PART_SIZE + 1, preferred=8 * MIB)


def test_part_count():
    assert part_count(1, 5 * MIB) == 1
    assert part_count(5 * MIB, 5 * MIB) == 1
    assert part_count(5 * MIB + 1, 5 * MIB) == 2


def test_etags_are_compared_with_their_quotes():
    assert normalize_etag("abc") == '"abc"'
    assert normalize_etag('"abc"') == '"abc"'
    assert normalize_etag(' "abc" ') == '"abc"'


def test_stale_uploads_keeps_open_sessions_and_recent_strangers():
    now = datetime(2025, 6, 10, 12, tzinfo=UTC)
    cutoff = now - timedelta(hours=48)
    old_open = PendingUpload("originals/a/x.mp4", "open", now - timedelta(hours=50))
    old_orphan = PendingUpload("originals/b/x.mp4", "orphan", now - timedelta(hours=50))
    recent_orphan = PendingUpload("originals/c/x.mp4", "recent", now - timedelta(hours=1))
    due = PendingUpload("originals/d/x.mp4", "due", now - timedelta(hours=1))
    chosen = stale_uploads(
        [old_open, old_orphan, recent_orphan, due], cutoff=cutoff, keep_ids={"open"}, abort_ids={"due"}
    )
    assert [u.upload_id for u in chosen] == ["orphan", "due"]
