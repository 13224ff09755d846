"""What the video and budget webhook events carry, for the OpenAPI schema (``SPECTACULAR_SETTINGS["WEBHOOKS"]``)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from media_library.serializers import VideoSerializer as LibraryVideoSerializer
from transcoding.costs.serializers import BudgetSerializer, CostAlertSerializer
from transcoding.serializers import VideoSerializer
from unpuzzle.openapi import webhook_doc


@extend_schema_serializer(component_name="DeletedVideo")
class DeletedVideoSerializer(LibraryVideoSerializer):
    """The video as it was just before deletion (without its job fields)."""


class CostAlertEventSerializer(serializers.Serializer):
    alert = CostAlertSerializer()
    budget = BudgetSerializer(help_text="The budget as GET /api/v1/costs/budget/ shows it at that moment")


video_ready = webhook_doc("video.ready", VideoSerializer())
video_failed = webhook_doc("video.failed", VideoSerializer())
video_blocked = webhook_doc("video.blocked", VideoSerializer())
video_deleted = webhook_doc("video.deleted", DeletedVideoSerializer())
budget_alert = webhook_doc("budget.alert", CostAlertEventSerializer())
kill_switch_engaged = webhook_doc("budget.kill_switch.engaged", CostAlertEventSerializer())
kill_switch_released = webhook_doc("budget.kill_switch.released", CostAlertEventSerializer())
