"""Webhook tests: a real receiver on 127.0.0.1, allowed past the SSRF guard here only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.webhook_receiver import Receiver, running_receiver
from unpuzzle.webhooks.services import webhook_endpoint_create


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as receiver:
        yield receiver


@pytest.fixture(autouse=True)
def loopback_allowed(settings) -> None:
    """The receiver listens on 127.0.0.1 over http: allowed here only, as a developer's .env would."""
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.WEBHOOK_TIMEOUT_S = 10.0


def make_endpoint(url: str, events: list[str] | None = None, **fields):
    return webhook_endpoint_create(url=url, events=events or ["video.ready"], **fields)
