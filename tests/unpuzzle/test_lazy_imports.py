"""Local-storage deployments never load boto3 (about 22 MiB in every web process)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys, django
django.setup()
from django.urls import get_resolver
get_resolver().url_patterns
import uploads.api.tus, uploads.api.direct, uploads.services.direct, uploads.tasks, transcoding.tasks, unpuzzle.storage
from unpuzzle.storage import is_s3
assert not is_s3()
print(",".join(m for m in ("boto3", "s3transfer", "storages.backends.s3", "botocore.client") if m in sys.modules))
"""


def test_local_storage_loads_no_boto3(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "unpuzzle.settings",
        "STORAGE_BACKEND": "local",
        "VAR_DIR": str(tmp_path),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_the_s3_backend_still_resolves_by_its_settings_path():
    from django.utils.module_loading import import_string

    backend = import_string("unpuzzle.storage.MediaS3Storage")
    assert backend.__module__ == "unpuzzle.s3_storage"
    assert "storages.backends.s3" in sys.modules
