"""Where throttle state lives (a cache every process shares) and which client address is counted."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import RequestFactory

from tests.unpuzzle.test_settings import _settings_value
from unpuzzle.client_address import client_address


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
