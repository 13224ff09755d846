"""Per-user request rates for the API (DRF throttles), counted in the shared cache.

Each throttle names the setting its rate comes from; the setting is read at each request, so a
change (in tests too) applies at once. Counts live in Django's default cache, which every web
process shares (Redis, or the database cache), and a refused request does not count. DRF's
read-then-write count can let a few parallel requests past the rate, never far past it.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from rest_framework.throttling import UserRateThrottle

from unpuzzle.client_address import client_address


class SettingRateThrottle(UserRateThrottle):
    """Counts per user (per client address when anonymous) at the rate of the setting ``rate_setting``.

    An empty rate switches the throttle off. Staff are throttled too, each on a budget of their own.
    """

    rate_setting = ""

    def get_rate(self) -> str | None:
        return getattr(settings, self.rate_setting) or None

    def get_ident(self, request) -> str:
        return client_address(request)

    def allow_page_request(self, request: HttpRequest) -> bool:
        """The same check for a plain Django view (a page that spends the API's budget)."""
        # DRF's check reads the request's user and META only, which a Django request has, and no view.
        return self.allow_request(request, None)  # type: ignore[arg-type]
