"""The playback grant budget, shared by the playback API and the player page."""

from __future__ import annotations

from unpuzzle.throttles import SettingRateThrottle


class PlaybackGrantThrottle(SettingRateThrottle):
    """Playback grants per user (``PLAYBACK_GRANT_RATE``): each one counts a play in the delivery estimate."""

    scope = "playback_grant"
    rate_setting = "PLAYBACK_GRANT_RATE"
