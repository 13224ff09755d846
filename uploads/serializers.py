"""JSON shapes of uploads for people and dashboards."""
from __future__ import annotations

from rest_framework import serializers

from uploads.models import UploadSession


class UploadProgressSerializer(serializers.ModelSerializer):
    progress = serializers.FloatField(read_only=True, allow_null=True, help_text="Percent stored")
    video_id = serializers.UUIDField(read_only=True, allow_null=True)

    class Meta:
        model = UploadSession
        fields = ["id", "status", "offset", "length", "progress", "filename", "video_id", "error", "expires_at"]
        read_only_fields = fields
