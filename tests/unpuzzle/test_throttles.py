"""Where throttle state lives (a cache every process shares) and which client address is counted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import RequestFactory
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.unpuzzle.test_settings import _settings_value
from unpuzzle.client_address import client_address

ROOT = Path(__file__).resolve().parents[2]
TUS = {"HTTP_TUS_RESUMABLE": "1.0.0", "HTTP_UPLOAD_LENGTH": "10", "HTTP_UPLOAD_METADATA": "filename bGVjdHVyZS5tcDQ="}


def test_the_cache_is_shared_by_processes_with_nothing_set_and_redis_with_redis_url(tmp_path):
    expr = '[settings.CACHES["default"]["BACKEND"], settings.Q_CLUSTER["cache"]]'
    default = _settings_value(expr, VAR_DIR=str(tmp_path), REDIS_URL="")
    assert default.returncode == 0, default.stderr
    assert json.loads(default.stdout) == ["django.core.cache.backends.db.DatabaseCache", "cluster_stats"]
    redis = _settings_value(expr, VAR_DIR=str(tmp_path), REDIS_URL="redis://127.0.0.1:6379/3")
    assert redis.returncode == 0, redis.stderr
    assert json.loads(redis.stdout) == ["django.core.cache.backends.redis.RedisCache", "default"]


def test_the_configured_cache_is_not_per_process(settings):
    assert "locmem" not in settings.CACHES["default"]["BACKEND"].lower()


def _database_url() -> str:
    """The test database as a DATABASE_URL, for a second Django process."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


SECOND_PROCESS = """
import django, json, os
django.setup()
from rest_framework.test import APIClient
client = APIClient()
client.credentials(HTTP_AUTHORIZATION="Token " + os.environ["TEST_TOKEN"])
response = client.post("/api/v1/uploads/", **json.loads(os.environ["TEST_HEADERS"]))
print(json.dumps([response.status_code, response.headers.get("Retry-After")]))
"""


@pytest.mark.django_db(transaction=True)
def test_a_second_django_process_sees_the_budget_this_one_spent(settings, user, tmp_path):
    settings.UPLOAD_CREATE_RATE = "2/min"
    settings.MAX_CONCURRENT_UPLOADS = 10
    token = Token.objects.create(user=user).key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    try:
        assert [client.post("/api/v1/uploads/", **TUS).status_code for _ in range(2)] == [201, 201]

        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        env.update(
            DJANGO_SETTINGS_MODULE="unpuzzle.settings",
            DATABASE_URL=_database_url(),
            VAR_DIR=str(tmp_path / "var"),
            UPLOAD_CREATE_RATE="2/min",
            MAX_CONCURRENT_UPLOADS="10",
            TEST_TOKEN=token,
            TEST_HEADERS=json.dumps(TUS),
        )
        result = subprocess.run(
            [sys.executable, "-c", SECOND_PROCESS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        status, retry_after = json.loads(result.stdout.strip().splitlines()[-1])
        assert status == 429 and int(retry_after) > 0
    finally:
        cache.clear()


@pytest.fixture
def redis_cache(settings):
    """The Redis cache REDIS_URL selects, on a database and key prefix of this test only (skipped without Redis)."""
    redis = pytest.importorskip("redis")
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip(f"no Redis at {url}")
    prefix = f"unpuzzle-test-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url, "KEY_PREFIX": prefix}
    }
    yield client, prefix
    for key in client.scan_iter(match=f"{prefix}:*"):
        client.delete(key)
    client.close()


@pytest.mark.django_db
def test_throttles_keep_their_state_in_redis_when_it_is_configured(settings, redis_cache, api_client, user):
    client, prefix = redis_cache
    settings.UPLOAD_CREATE_RATE = "2/min"
    settings.MAX_CONCURRENT_UPLOADS = 10
    answers = [api_client.post("/api/v1/uploads/", **TUS).status_code for _ in range(3)]
    assert answers == [201, 201, 429]
    assert client.exists(f"{prefix}:1:throttle_upload_create_{user.pk}")


# --- the client address ---------------------------------------------------------------


def _request(remote: str = "10.0.0.5", forwarded: str | None = None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


def test_without_a_proxy_x_forwarded_for_is_ignored(settings):
    settings.NUM_PROXIES = 0
    assert client_address(_request("198.51.100.4", forwarded="1.2.3.4")) == "198.51.100.4"


def test_behind_one_proxy_the_address_it_appended_counts_not_what_the_client_sent(settings):
    settings.NUM_PROXIES = 1
    # nginx's $proxy_add_x_forwarded_for appends the peer it saw to whatever the client sent.
    assert client_address(_request("127.0.0.1", forwarded="1.2.3.4, 198.51.100.4")) == "198.51.100.4"
    assert client_address(_request("127.0.0.1", forwarded="198.51.100.4")) == "198.51.100.4"
    assert client_address(_request("127.0.0.1")) == "127.0.0.1"


def test_behind_two_proxies_the_second_from_the_right_counts(settings):
    settings.NUM_PROXIES = 2
    assert client_address(_request("10.0.0.2", forwarded="1.2.3.4, 198.51.100.4, 10.0.0.1")) == "198.51.100.4"


def test_a_forwarded_value_that_is_not_an_address_falls_back_to_the_peer(settings):
    settings.NUM_PROXIES = 1
    assert client_address(_request("127.0.0.1", forwarded="1.2.3.4, not-an-address")) == "127.0.0.1"


def test_ipv6_clients_count_per_64_prefix(settings):
    settings.NUM_PROXIES = 0
    a = client_address(_request("2001:db8:1:2:aaaa::1"))
    b = client_address(_request("2001:db8:1:2:bbbb::99"))
    assert a == b == "2001:db8:1:2::/64"
    assert client_address(_request("2001:db8:1:3::1")) != a


@pytest.mark.django_db(transaction=True)
def test_migrate_makes_the_cache_table(settings):
    table = settings.CACHES["default"]["LOCATION"]
    with connection.schema_editor() as editor:
        editor.execute(f"DROP TABLE {editor.quote_name(table)}")
    assert table not in connection.introspection.table_names()

    call_command("migrate", interactive=False, verbosity=0)

    assert table in connection.introspection.table_names()
    cache.set("migrate-made-me", 1)
    assert cache.get("migrate-made-me") == 1
    cache.clear()
