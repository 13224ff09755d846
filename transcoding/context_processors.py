"""Template context for the admin: unacknowledged cost alerts and whether transcoding is paused, for the banners."""

from __future__ import annotations

from django.urls import reverse
from django.utils.functional import SimpleLazyObject

from transcoding.costs.selectors import budget_policy_get, cost_alerts_unacknowledged, user_can_view_costs


def cost_alerts(request):
    """On admin pages: ``cost_alerts`` for staff allowed to see costs (whose dashboard the banner links to),
    ``transcoding_paused`` for every signed-in staff user; each queried only when rendered."""
    if not request.path.startswith(reverse("admin:index")):
        return {}
    user = getattr(request, "user", None)
    signed_in_staff = bool(user and user.is_authenticated and user.is_staff)
    return {
        "cost_alerts": SimpleLazyObject(lambda: cost_alerts_unacknowledged() if user_can_view_costs(user=user) else []),
        "transcoding_paused": SimpleLazyObject(lambda: signed_in_staff and budget_policy_get().kill_switch_engaged),
    }
