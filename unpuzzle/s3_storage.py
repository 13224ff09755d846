"""The B2/S3 storage backend (``STORAGE_BACKEND=b2``), apart so local deployments never import boto3.

Settings name it as ``unpuzzle.storage.MediaS3Storage``; ``unpuzzle.storage`` resolves that lazily.
"""

from __future__ import annotations

from storages.backends.s3 import S3Storage

from unpuzzle.content_types import content_headers_for_key


class MediaS3Storage(S3Storage):
    """S3Storage that writes an explicit Content-Type and Cache-Control on every object.

    The values come from the key's extension (``content_headers_for_key``) unless the
    content being saved carries its own ``content_type`` / ``cache_control`` attributes.
    """

    def _get_write_parameters(self, name, content=None):
        params = self.get_object_parameters(name)
        content_type, cache_control = content_headers_for_key(name)
        params["ContentType"] = getattr(content, "forced_content_type", None) or content_type
        params["CacheControl"] = getattr(content, "cache_control", None) or cache_control
        return params
