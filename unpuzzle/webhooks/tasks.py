"""django-q2 entry points of webhooks (their dotted paths are stored in queued tasks and schedules)."""

from __future__ import annotations


def webhook_deliver(delivery_id: str) -> None:
    """Queued once per delivery attempt on the short-task cluster: make that one attempt."""
    from unpuzzle.webhooks.services import webhook_delivery_attempt

    webhook_delivery_attempt(delivery_id=delivery_id)


def webhooks_sweep() -> None:
    """Scheduled every minute: queue deliveries that are due and have no task (lost dispatch, retry due)."""
    from unpuzzle.webhooks.services import webhook_deliveries_sweep

    webhook_deliveries_sweep()
