"""The bucket side of direct uploads: S3 multipart calls through the storage backend's client.

Shared by the direct-upload services, their selectors (stored parts) and their finalization
and cleanup; errors of the bucket become the domain errors the API reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from unpuzzle.exceptions import DomainError, StorageUnavailable
from unpuzzle.storage import get_storage, is_s3
from uploads.multipart import MultipartBucket

if TYPE_CHECKING:
    from storages.backends.s3 import S3Storage

ORIGINALS_PREFIX = "originals/"
MISSING_UPLOAD_CODES = {"NoSuchUpload", "404"}
MISSING_OBJECT_CODES = {"NoSuchKey", "404", "NotFound"}


class DirectUploadsUnavailable(DomainError):
    """Direct uploads need S3-compatible storage to sign URLs for."""

    status_code = 400
    code = "direct_uploads_unavailable"


def error_code(exc: ClientError) -> str:
    """The S3 error code of a boto3 client error ("NoSuchUpload", "404", ...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def multipart_bucket() -> tuple[MultipartBucket, S3Storage]:
    """The bucket's multipart calls through the storage backend's boto3 client; 400 on local storage."""
    storage = get_storage()
    if not is_s3(storage):
        raise DirectUploadsUnavailable(
            "direct-to-bucket uploads need S3-compatible storage (STORAGE_BACKEND=b2); "
            "this server stores files locally, so upload through the tus endpoint /api/v1/uploads/ instead"
        )
    return MultipartBucket(storage.connection.meta.client, storage.bucket_name), storage


def object_key(storage: S3Storage, key: str) -> str:
    """The bucket key of a storage name (the backend's location prefix applied)."""
    name: str = storage._normalize_name(key)
    return name


def storage_unavailable(action: str, exc: Exception) -> StorageUnavailable:
    """The error reported when the bucket did not answer while doing ``action``."""
    return StorageUnavailable(f"the bucket did not answer while {action}: {exc}; try again shortly")


def abort_quietly(bucket: MultipartBucket, key: str, upload_id: str) -> None:
    """Abort a multipart upload; one the bucket no longer has is already what was wanted."""
    try:
        bucket.abort(key, upload_id)
    except ClientError as exc:
        if error_code(exc) not in MISSING_UPLOAD_CODES:
            raise
