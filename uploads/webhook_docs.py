"""What the upload webhook events carry, for the OpenAPI schema (``SPECTACULAR_SETTINGS["WEBHOOKS"]``)."""

from __future__ import annotations

from unpuzzle.openapi import webhook_doc
from uploads.serializers import UploadProgressSerializer

upload_completed = webhook_doc("upload.completed", UploadProgressSerializer())
upload_failed = webhook_doc("upload.failed", UploadProgressSerializer())
