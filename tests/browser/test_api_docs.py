"""The API docs render in chromium with every request to another host refused (no CDN, no fonts)."""

from __future__ import annotations

import pytest

from tests.browser.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _offline(page, live_server) -> list[str]:
    refused: list[str] = []

    def only_this_server(route):
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    return refused


def test_swagger_ui_renders_the_tus_operations_offline(page, live_server):
    refused = _offline(page, live_server)
    page.goto("/api/docs/")
    page.locator(".opblock-summary-path", has_text="/api/v1/uploads/").first.wait_for()
    methods = page.locator(".opblock-tag-section .opblock-summary-method").all_inner_texts()
    assert {"OPTIONS", "POST", "HEAD", "PATCH", "DELETE"} <= set(methods)
    assert page.locator("text=Create a tus upload (optionally with its first bytes)").count() == 1
    screenshot(page, "api-docs-swagger")
    assert refused == []


def test_redoc_renders_offline(page, live_server, console):
    # The page's policy stops Redoc's footer logo (on its makers' CDN) before any request is made.
    console.allow(r"cdn\.redoc\.ly/redoc/logo-mini\.svg' violates the following Content Security Policy")
    refused = _offline(page, live_server)
    page.goto("/api/redoc/")
    page.locator("h2", has_text="Make an API token from a username and password").wait_for()
    screenshot(page, "api-docs-redoc")
    assert refused == []
