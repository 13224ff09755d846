"""collectstatic with the production (manifest) storage, as scripts/run.sh and the image run it."""

from __future__ import annotations

import io

from django.core.management import call_command


def test_collectstatic_with_the_manifest_storage(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    call_command("collectstatic", "--noinput", verbosity=0, stdout=io.StringIO())
    manifest = (tmp_path / "static" / "staticfiles.json").read_text()
    for asset in (
        "media_library/vendor/hls.js/1.7.4/hls.min.js",
        "uploads/vendor/tus-js-client/4.3.1/tus.min.js",
        "admin/css/base.css",
    ):
        assert f'"{asset}"' in manifest
