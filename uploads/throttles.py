"""The upload creation budget, shared by tus creations and direct-upload starts."""

from __future__ import annotations

from unpuzzle.throttles import SettingRateThrottle


class UploadCreateThrottle(SettingRateThrottle):
    """Upload creations per user (``UPLOAD_CREATE_RATE``): only POSTs count, not listing or OPTIONS."""

    scope = "upload_create"
    rate_setting = "UPLOAD_CREATE_RATE"

    def allow_request(self, request, view) -> bool:
        if request.method != "POST":
            return True
        return super().allow_request(request, view)
