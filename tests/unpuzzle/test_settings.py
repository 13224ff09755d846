"""Settings switch by environment only: defaults, B2 storage, production checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unpuzzle.storage_options import normalize_endpoint, s3_storage_options

ROOT = Path(__file__).resolve().parents[2]

B2_ENV = {
    "STORAGE_BACKEND": "b2",
    "BB_KEY_ID": "key-id",
    "BB_APPLICATION_KEY": "app-key",
    "BB_ENDPOINT": "s3.us-west-002.backblazeb2.com",
    "BB_REGION": "us-west-002",
    "BB_BUCKET_NAME": "unpuzzle-media",
}

PRODUCTION_ENV = {
    **B2_ENV,
    "DEBUG": "0",
    "SECRET_KEY": "x7#production-secret-for-the-check-only-k2m9v4q8z1w6e3r5t0y7u2i4o9p",
    "ALLOWED_HOSTS": "media.example.com",
    "DATABASE_URL": "postgres://app@db.example.com:5432/unpuzzle",
    "SECURE_SSL_REDIRECT": "1",
    "SESSION_COOKIE_SECURE": "1",
    "CSRF_COOKIE_SECURE": "1",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
}


def _clean_env(**overrides: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BB_", "STORAGE_", "DATABASE_URL", "SECRET_KEY", "DEBUG"))
    }
    env.update(overrides)
    return env


def _settings_value(expr: str, **env: str) -> subprocess.CompletedProcess:
    code = (
        f"import django, json; django.setup(); from django.conf import settings; print(json.dumps({expr}, default=str))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_clean_env(DJANGO_SETTINGS_MODULE="unpuzzle.settings", **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_defaults_need_nothing_set(tmp_path):
    result = _settings_value(
        '[settings.DEBUG, settings.DATABASES["default"]["ENGINE"], settings.STORAGES["default"]["BACKEND"], '
        'settings.Q_CLUSTER["orm"], settings.EMAIL_BACKEND, settings.MEDIA_ROOT]',
        VAR_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    debug, engine, backend, broker, email, media_root = json.loads(result.stdout)
    assert debug is False
    assert engine == "django.db.backends.sqlite3"
    assert backend == "django.core.files.storage.FileSystemStorage"
    assert broker == "default"
    assert email == "django.core.mail.backends.console.EmailBackend"
    assert media_root == str(tmp_path / "media")


def test_database_url_switches_to_postgresql():
    result = _settings_value(
        'settings.DATABASES["default"]["ENGINE"]', DATABASE_URL="postgres://postgres@127.0.0.1:5432/x"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == "django.db.backends.postgresql"


def test_b2_storage_settings_follow_the_b2_facts():
    expr = (
        '{k: str(v) for k, v in settings.STORAGES["default"]["OPTIONS"].items()} | '
        '{"backend": settings.STORAGES["default"]["BACKEND"], '
        '"sig": settings.STORAGES["default"]["OPTIONS"]["client_config"].signature_version, '
        '"req": settings.STORAGES["default"]["OPTIONS"]["client_config"].request_checksum_calculation, '
        '"resp": settings.STORAGES["default"]["OPTIONS"]["client_config"].response_checksum_validation}'
    )
    result = _settings_value(expr, **B2_ENV)
    assert result.returncode == 0, result.stderr
    options = json.loads(result.stdout)
    assert options["backend"] == "unpuzzle.storage.MediaS3Storage"
    assert options["endpoint_url"] == "https://s3.us-west-002.backblazeb2.com"
    assert options["region_name"] == "us-west-002"
    assert options["bucket_name"] == "unpuzzle-media"
    assert options["default_acl"] == "None"
    assert (options["sig"], options["req"], options["resp"]) == ("s3v4", "when_required", "when_required")


def test_every_storage_request_is_bounded_by_timeouts_and_attempts():
    config = 'settings.STORAGES["default"]["OPTIONS"]["client_config"]'
    expr = f'[{config}.connect_timeout, {config}.read_timeout, {config}.retries["max_attempts"]]'
    assert json.loads(_settings_value(expr, **B2_ENV).stdout) == [5.0, 60.0, 5]
    tuned = {**B2_ENV, "STORAGE_CONNECT_TIMEOUT_S": "2", "STORAGE_READ_TIMEOUT_S": "30", "STORAGE_MAX_ATTEMPTS": "8"}
    assert json.loads(_settings_value(expr, **tuned).stdout) == [2.0, 30.0, 8]


def test_b2_storage_with_missing_variables_says_which():
    result = _settings_value("1", STORAGE_BACKEND="b2", BB_ENDPOINT="s3.example.com")
    assert result.returncode != 0
    assert "BB_KEY_ID" in result.stderr and "BB_BUCKET_NAME" in result.stderr


def test_unknown_storage_backend_is_refused():
    result = _settings_value("1", STORAGE_BACKEND="ftp")
    assert result.returncode != 0
    assert "STORAGE_BACKEND must be 'local' or 'b2'" in result.stderr


def test_previous_output_grace_defaults_to_the_longest_playback_url_lifetime():
    assert json.loads(_settings_value("settings.HLS_PREVIOUS_OUTPUT_GRACE_S").stdout) == 21600
    longer_storage_urls = _settings_value(
        "settings.HLS_PREVIOUS_OUTPUT_GRACE_S", CDN_TOKEN_TTL="600", STORAGE_URL_EXPIRE_S="7200"
    )
    assert json.loads(longer_storage_urls.stdout) == 7200
    refused = _settings_value("1", HLS_PREVIOUS_OUTPUT_GRACE_S="-1")
    assert refused.returncode != 0 and "HLS_PREVIOUS_OUTPUT_GRACE_S must be 0" in refused.stderr


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("s3.us-west-002.backblazeb2.com", "https://s3.us-west-002.backblazeb2.com"),
        ("https://s3.eu-central-003.backblazeb2.com/", "https://s3.eu-central-003.backblazeb2.com"),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
    ],
)
def test_endpoint_takes_a_host_or_a_url(given, expected):
    assert normalize_endpoint(given) == expected


@pytest.mark.parametrize("bad", ["", "ftp://host"])
def test_endpoint_rejects_nonsense(bad):
    with pytest.raises(ValueError):
        normalize_endpoint(bad)


def test_storage_options_list_every_missing_name():
    with pytest.raises(ValueError, match="BB_KEY_ID, BB_APPLICATION_KEY, BB_REGION, BB_BUCKET_NAME"):
        s3_storage_options(key_id="", application_key="", endpoint="h", region="", bucket_name="")


def test_production_settings_pass_check_deploy():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=_clean_env(**PRODUCTION_ENV),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_without_secret_key_one_is_generated_once_into_var_dir_and_kept(tmp_path):
    var = tmp_path / "var"
    first = _settings_value("settings.SECRET_KEY", VAR_DIR=str(var))
    assert first.returncode == 0, first.stderr
    key = json.loads(first.stdout)
    stored = var / "secret_key"
    assert stored.read_text().strip() == key and len(key) >= 50
    assert stored.stat().st_mode & 0o777 == 0o600
    assert json.loads(_settings_value("settings.SECRET_KEY", VAR_DIR=str(var)).stdout) == key
    other = json.loads(_settings_value("settings.SECRET_KEY", VAR_DIR=str(tmp_path / "other-var")).stdout)
    assert other != key


@pytest.mark.parametrize(
    "key", ["django-insecure-local-development-key-change-me", "django-insecure-anything-else-0123456789", "short"]
)
def test_a_public_or_short_secret_key_is_refused_unless_debug(key, tmp_path):
    refused = _settings_value("1", SECRET_KEY=key, VAR_DIR=str(tmp_path))
    assert refused.returncode != 0
    assert "SECRET_KEY is public or shorter than 50 characters" in refused.stderr
    assert _settings_value("1", SECRET_KEY=key, DEBUG="1", VAR_DIR=str(tmp_path)).returncode == 0


def test_throttle_rates_are_checked_at_start():
    assert json.loads(_settings_value("[settings.PLAYBACK_GRANT_RATE, settings.UPLOAD_CREATE_RATE]").stdout) == [
        "120/hour",
        "30/minute",
    ]
    assert json.loads(_settings_value("settings.UPLOAD_CREATE_RATE", UPLOAD_CREATE_RATE="").stdout) == ""
    refused = _settings_value("1", PLAYBACK_GRANT_RATE="120 per hour")
    assert refused.returncode != 0 and "PLAYBACK_GRANT_RATE='120 per hour' is not a rate" in refused.stderr


def test_a_tls_proxy_counts_as_one_forwarding_proxy_unless_told_otherwise():
    assert json.loads(_settings_value("settings.NUM_PROXIES", BEHIND_TLS_PROXY="0").stdout) == 0
    assert json.loads(_settings_value("settings.NUM_PROXIES", BEHIND_TLS_PROXY="1").stdout) == 1
    assert json.loads(_settings_value("settings.NUM_PROXIES", BEHIND_TLS_PROXY="1", NUM_PROXIES="2").stdout) == 2
    refused = _settings_value("1", NUM_PROXIES="-1")
    assert refused.returncode != 0 and "NUM_PROXIES must be 0" in refused.stderr
