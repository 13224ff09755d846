"""The pure parts: signatures, the address guard, the retry schedule."""

from __future__ import annotations

import base64
import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from unpuzzle.webhooks import retries
from unpuzzle.webhooks.addresses import AddressRefused, address_problem, url_check_registration
from unpuzzle.webhooks.signing import secret_generate, secret_key, webhook_headers


def test_secret_is_whsec_and_base64_of_32_random_bytes():
    secret = secret_generate()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert secret_key(secret) == base64.b64decode(secret.removeprefix("whsec_"))
    assert secret_generate() != secret


def test_headers_verify_with_standardwebhooks_and_carry_one_signature_per_secret():
    old, new = secret_generate(), secret_generate()
    body = b'{"id":"e1","type":"video.ready","data":{"title":"\xc3\xa9t\xc3\xa9"}}'
    timestamp = int(datetime.now(UTC).timestamp())
    headers = webhook_headers(secrets_in_use=[new, old], msg_id="e1", timestamp=timestamp, body=body)
    assert headers["webhook-id"] == "e1" and headers["webhook-timestamp"] == str(timestamp)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert all(part.startswith("v1,") for part in headers["webhook-signature"].split(" "))
    assert Webhook(new).verify(body, headers)["type"] == "video.ready"
    assert Webhook(old).verify(body, headers)["type"] == "video.ready"
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(secret_generate()).verify(body, headers)


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.5", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("169.254.10.10", "link-local"),
        ("fe80::1", "link-local"),
        ("fc00::5", "private"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("::ffff:127.0.0.1", "loopback"),
        ("100.64.0.1", "not a public address"),
    ],
)
def test_forbidden_addresses_are_named(address, problem):
    assert problem in address_problem(ipaddress.ip_address(address))


def test_public_addresses_pass():
    assert address_problem(ipaddress.ip_address("93.184.216.34")) == ""
    assert address_problem(ipaddress.ip_address("2606:2800:220:1:248:1893:25c8:1946")) == ""


def test_registration_check():
    with pytest.raises(AddressRefused, match="https://"):
        url_check_registration("http://93.184.216.34/hook", allow_http=False, allowed_hosts=[])
    with pytest.raises(AddressRefused, match="169.254.169.254 is a cloud metadata address"):
        url_check_registration("https://169.254.169.254/latest", allow_http=False, allowed_hosts=[])
    with pytest.raises(AddressRefused, match=r"localhost resolves to (127\.0\.0\.1|::1), which is a loopback"):
        url_check_registration("https://localhost/hook", allow_http=False, allowed_hosts=[])
    with pytest.raises(AddressRefused, match="user name or password"):
        url_check_registration("https://me:pw@93.184.216.34/", allow_http=False, allowed_hosts=[])
    # A name that does not resolve (yet) is accepted; it is checked again at each send.
    assert url_check_registration("https://hooks.invalid/x", allow_http=False, allowed_hosts=[]).host == "hooks.invalid"
    assert url_check_registration("http://127.0.0.1:9/x", allow_http=True, allowed_hosts=["127.0.0.1"]).port == 9


NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_schedule_reaches_about_a_day_and_a_third_in_eight_attempts():
    assert retries.MAX_ATTEMPTS == 8
    assert sum(retries.RETRY_DELAYS_S) == 30 + 300 + 1800 + 7200 + 18000 + 36000 + 50400
    assert 1.2 < sum(retries.RETRY_DELAYS_S) / 86400 < 1.4
    assert retries.next_attempt_at(attempts=1, now=NOW) == NOW + timedelta(seconds=30)
    assert retries.next_attempt_at(attempts=7, now=NOW) == NOW + timedelta(hours=14)
    assert retries.next_attempt_at(attempts=8, now=NOW) is None


def test_retry_after_seconds_or_http_date_only_lengthens_the_wait():
    assert retries.retry_after_seconds("120", now=NOW) == 120
    assert retries.retry_after_seconds("Fri, 01 May 2026 12:10:00 GMT", now=NOW) == 600
    assert retries.retry_after_seconds("soon", now=NOW) is None
    assert retries.retry_after_seconds("", now=NOW) is None
    assert retries.retry_after_seconds("9999999", now=NOW) == retries.RETRY_AFTER_MAX_S
    assert retries.next_attempt_at(attempts=1, now=NOW, retry_after_s=600) == NOW + timedelta(seconds=600)
    assert retries.next_attempt_at(attempts=1, now=NOW, retry_after_s=5) == NOW + timedelta(seconds=30)
    assert [s for s in (200, 301, 400, 404, 429, 500, 503) if retries.status_retryable(s)] == [429, 500, 503]
