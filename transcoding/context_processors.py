"""Template context for the admin: unacknowledged cost alerts for the banner."""

from __future__ import annotations

from django.urls import reverse
from django.utils.functional import SimpleLazyObject

from transcoding.costs.selectors import cost_alerts_unacknowledged, user_can_view_costs


def cost_alerts(request):
    """``cost_alerts`` on admin pages for staff allowed to see costs; queried only when rendered."""
    if not request.path.startswith(reverse("admin:index")):
        return {}
    user = getattr(request, "user", None)
    return {
        "cost_alerts": SimpleLazyObject(lambda: cost_alerts_unacknowledged() if user_can_view_costs(user=user) else [])
    }
