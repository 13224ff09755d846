"""S3 multipart plumbing for direct-to-bucket uploads; no Django imports.

Works with any boto3 S3 client (B2's S3 API included: presigned PUT and the multipart calls
work there, presigned POST does not). Part numbers run 1..N; S3 limits parts to 5 MiB–5 GiB
(the last part may be smaller) and at most 10,000 of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB
MAX_PART_SIZE = 5 * 1024 * MIB
MAX_PARTS = 10_000


@dataclass(frozen=True)
class StoredPart:
    """A part the bucket holds for an unfinished multipart upload."""

    part_number: int
    size: int
    etag: str


@dataclass(frozen=True)
class PendingUpload:
    """An unfinished multipart upload as ListMultipartUploads reports it."""

    key: str
    upload_id: str
    initiated: datetime


def choose_part_size(file_size: int, *, preferred: int) -> int:
    """The part size for ``file_size`` bytes: ``preferred`` (at least 5 MiB), grown in whole MiB
    so the file needs at most 10,000 parts; ValueError past 10,000 parts of 5 GiB."""
    if file_size < 0:
        raise ValueError(f"file size {file_size} is negative")
    size = max(preferred, MIN_PART_SIZE)
    needed = math.ceil(file_size / MAX_PARTS)
    if needed > size:
        size = math.ceil(needed / MIB) * MIB
    if size > MAX_PART_SIZE:
        raise ValueError(f"{file_size} bytes do not fit in {MAX_PARTS} parts of at most {MAX_PART_SIZE} bytes")
    return size


def part_count(file_size: int, part_size: int) -> int:
    """How many parts ``file_size`` bytes take (one, possibly empty, for an empty file)."""
    return max(1, math.ceil(file_size / part_size))


def normalize_etag(etag: str) -> str:
    """An ETag as S3 lists it, with its double quotes (clients often drop them)."""
    return f'"{etag.strip().strip(chr(34))}"'


def stale_uploads(
    uploads: Iterable[PendingUpload], *, cutoff: datetime, keep_ids: set[str], abort_ids: set[str]
) -> list[PendingUpload]:
    """Which uploads to abort: those in ``abort_ids`` (known to be abandoned), and those
    started before ``cutoff`` unless listed in ``keep_ids`` (still in use)."""
    return [u for u in uploads if u.upload_id in abort_ids or (u.upload_id not in keep_ids and u.initiated < cutoff)]


class MultipartBucket:
    """The multipart calls on one bucket through a boto3 S3 client."""

    # boto3 builds its clients at run time and ships no type information: the client is Any.
    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def create(self, key: str, *, content_type: str, cache_control: str) -> str:
        """Start a multipart upload at ``key``; returns its UploadId."""
        response = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=content_type, CacheControl=cache_control
        )
        upload_id: str = response["UploadId"]
        return upload_id

    def part_url(self, key: str, upload_id: str, part_number: int, *, expires_in: int) -> str:
        """A presigned URL a client PUTs part ``part_number``'s bytes to (signed by the client's config)."""
        url: str = self.client.generate_presigned_url(
            "upload_part",
            Params={"Bucket": self.bucket, "Key": key, "UploadId": upload_id, "PartNumber": part_number},
            ExpiresIn=expires_in,
            HttpMethod="PUT",
        )
        return url

    def parts(self, key: str, upload_id: str) -> list[StoredPart]:
        """Every part stored so far, in part-number order (ListParts, all pages)."""
        stored: list[StoredPart] = []
        paginator = self.client.get_paginator("list_parts")
        for page in paginator.paginate(Bucket=self.bucket, Key=key, UploadId=upload_id):
            for part in page.get("Parts", []):
                stored.append(StoredPart(part["PartNumber"], part["Size"], normalize_etag(part["ETag"])))
        return sorted(stored, key=lambda p: p.part_number)

    def complete(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        """Join the parts, given as ``(part_number, etag)`` in ascending order, into the object."""
        self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": normalize_etag(e)} for n, e in parts]},
        )

    def abort(self, key: str, upload_id: str) -> None:
        """Abort the upload and free its parts."""
        self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    def object_size(self, key: str) -> int:
        """The stored object's size (HeadObject)."""
        size: int = self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"]
        return size

    def pending(self, prefix: str) -> Iterator[PendingUpload]:
        """Unfinished multipart uploads whose key starts with ``prefix`` (all pages)."""
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                yield PendingUpload(upload["Key"], upload["UploadId"], upload["Initiated"])
