"""Per-user request rates for the API (DRF throttles), counted in the shared cache.

Each throttle names the setting its rate comes from; the setting is read at each request, so a
change (in tests too) applies at once. Counts live in Django's default cache, which every web
process shares (Redis, or the database cache), and a refused request does not count. DRF reads a
key's history and writes it back; parallel requests of one user would each read the same history
and all pass (8 threads got 523 grants through a 120/hour rate), so each key's read and write
happen under a database row lock (``RateLimitLock``), one request after another.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from rest_framework.throttling import UserRateThrottle

from unpuzzle.client_address import client_address
from unpuzzle.models import RateLimitLock


class SettingRateThrottle(UserRateThrottle):
    """Counts per user (per client address when anonymous) at the rate of the setting ``rate_setting``.

    An empty rate switches the throttle off. Staff are throttled too, each on a budget of their own.
    """

    rate_setting = ""

    def get_rate(self) -> str | None:
        return getattr(settings, self.rate_setting) or None

    def get_ident(self, request) -> str:
        return client_address(request)

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        with transaction.atomic():
            # The row's lock (PostgreSQL) or the write lock it takes (SQLite) holds other requests of
            # this key until this one has read and written its count.
            lock = hashlib.sha256(key.encode()).hexdigest()
            if not RateLimitLock.objects.filter(key=lock).update(key=lock):
                RateLimitLock.objects.get_or_create(key=lock)
                RateLimitLock.objects.select_for_update().get(key=lock)
            return bool(super().allow_request(request, view))

    def allow_page_request(self, request: HttpRequest) -> bool:
        """The same check for a plain Django view (a page that spends the API's budget)."""
        # DRF's check reads the request's user and META only, which a Django request has, and no view.
        return self.allow_request(request, None)
