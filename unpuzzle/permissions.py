"""Who may see what: the one rule that separates staff who see every video from instructors."""

from __future__ import annotations

from typing import Any


def user_sees_all_videos(user: Any) -> bool:
    """True for superusers and holders of ``media_library.view_all_videos``; in the admin
    everyone else (instructors) sees only their own videos, uploads and jobs."""
    return bool(user and user.is_active and (user.is_superuser or user.has_perm("media_library.view_all_videos")))
