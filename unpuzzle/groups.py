"""The admin's permission groups: "Instructors" (their own media) and "Finance" (costs).

``groups_setup`` creates or updates them; ``manage.py setup_groups`` (run by
``scripts/run.sh``) calls it, so a re-run after an upgrade adds new permissions.
"""

from __future__ import annotations

import logging

from django.apps import apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.db import transaction

logger = logging.getLogger(__name__)

INSTRUCTORS = "Instructors"
FINANCE = "Finance"

# Everyone who signs in to the admin manages their own API tokens (the admin shows only theirs).
TOKEN_PERMISSIONS = (
    "unpuzzle.view_apitoken",
    "unpuzzle.add_apitoken",
    "unpuzzle.change_apitoken",
    "unpuzzle.delete_apitoken",
)

# "app_label.codename"; instructors see only their own rows (the admin filters by owner).
GROUP_PERMISSIONS: dict[str, tuple[str, ...]] = {
    INSTRUCTORS: (
        "media_library.view_video",
        "media_library.add_video",
        "media_library.change_video",
        "media_library.delete_video",
        "media_library.view_mediafile",
        "media_library.view_rendition",
        "media_library.view_captiontrack",
        "media_library.add_captiontrack",
        "media_library.change_captiontrack",
        "media_library.delete_captiontrack",
        "uploads.view_uploadsession",
        "uploads.add_uploadsession",
        "uploads.delete_uploadsession",
        "transcoding.view_transcodejob",
        *TOKEN_PERMISSIONS,
    ),
    FINANCE: (
        "transcoding.view_costs",
        "transcoding.manage_budget",
        "transcoding.view_costlogentry",
        "transcoding.view_budgetpolicy",
        "transcoding.change_budgetpolicy",
        "transcoding.view_costalert",
        *TOKEN_PERMISSIONS,
    ),
}


@transaction.atomic
def groups_setup() -> dict[str, int]:
    """Create the groups and set exactly their listed permissions; returns permissions per group.

    Permissions are created first, so this works right after ``migrate`` on an empty database.
    """
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0)
    counts = {}
    for name, wanted in GROUP_PERMISSIONS.items():
        permissions = []
        for dotted in wanted:
            app_label, codename = dotted.split(".", 1)
            permissions.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        group, created = Group.objects.get_or_create(name=name)
        group.permissions.set(permissions)
        counts[name] = len(permissions)
        logger.info("group %r %s with %d permissions", name, "created" if created else "updated", len(permissions))
    return counts
