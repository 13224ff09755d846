"""Builds the django-storages options for Backblaze B2 (or any S3-compatible endpoint).

Kept free of Django imports so settings and tests build the same configuration.
"""

from __future__ import annotations

MIB = 1024 * 1024


def normalize_endpoint(endpoint: str) -> str:
    """Return a full endpoint URL; a bare host gets ``https://``."""
    endpoint = endpoint.strip().rstrip("/")
    if not endpoint:
        raise ValueError("BB_ENDPOINT is empty: set it to a host such as s3.us-west-002.backblazeb2.com")
    if "://" not in endpoint:
        endpoint = f"https://{endpoint}"
    if not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"BB_ENDPOINT {endpoint!r} must be a host or an http(s) URL")
    return endpoint


def s3_storage_options(
    *,
    key_id: str,
    application_key: str,
    endpoint: str,
    region: str,
    bucket_name: str,
    url_expire_seconds: int = 3600,
    addressing_style: str = "path",
    connect_timeout: float = 5,
    read_timeout: float = 60,
    max_attempts: int = 5,
) -> dict:
    """Options for ``unpuzzle.storage.MediaS3Storage`` that B2's S3 API accepts.

    B2 rejects the CRC32 checksum headers boto3 >= 1.36 sends by default, refuses SigV2
    presigned URLs (region must be set for SigV4) and has no object ACLs. Every request is
    bounded: ``connect_timeout`` and ``read_timeout`` seconds per try, ``max_attempts`` tries.
    """
    # Imported here: settings import this module, and local storage must not load boto3.
    # boto3 and botocore ship no type information.
    from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    missing = [
        name
        for name, value in (
            ("BB_KEY_ID", key_id),
            ("BB_APPLICATION_KEY", application_key),
            ("BB_REGION", region),
            ("BB_BUCKET_NAME", bucket_name),
        )
        if not value
    ]
    if missing:
        raise ValueError(f"STORAGE_BACKEND=b2 needs {', '.join(missing)} to be set")
    return {
        "access_key": key_id,
        "secret_key": application_key,
        "bucket_name": bucket_name,
        "endpoint_url": normalize_endpoint(endpoint),
        "region_name": region,
        "default_acl": None,
        "querystring_auth": True,
        "querystring_expire": url_expire_seconds,
        "file_overwrite": True,
        # Bounded memory: at most max_concurrency parts of multipart_chunksize in flight.
        "transfer_config": TransferConfig(
            multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=4, use_threads=True
        ),
        "client_config": Config(
            signature_version="s3v4",
            region_name=region,
            s3={"addressing_style": addressing_style},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
        ),
    }
