"""Domain exceptions and the one place that maps them to HTTP statuses."""

from __future__ import annotations

import logging

from rest_framework.exceptions import Throttled
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class DomainError(Exception):
    """Base for errors a service raises on purpose; the message tells the caller what to fix."""

    status_code = 400
    code = "invalid"

    def __init__(
        self, message: str, *, code: str | None = None, status_code: int | None = None, extra: dict | None = None
    ):
        super().__init__(message)
        self.message = message
        # Machine-readable facts added to the error body, e.g. the current status.
        self.extra = extra or {}
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code


class InvalidTransition(DomainError):
    """A state change the model's state machine does not allow."""

    status_code = 409
    code = "invalid_transition"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class VideoNotReady(Conflict):
    """Playback was asked for a video that has nothing playable yet."""

    code = "video_not_ready"


class PermissionDenied(DomainError):
    status_code = 403
    code = "forbidden"


class Gone(DomainError):
    """The resource existed but was terminated or expired."""

    status_code = 410
    code = "gone"


class UnsupportedMediaType(DomainError):
    status_code = 415
    code = "unsupported_media_type"


class Locked(DomainError):
    """Another request holds the resource (e.g. an upload being written)."""

    status_code = 423
    code = "locked"


class UploadOffsetMismatch(Conflict):
    code = "offset_mismatch"


class ChecksumMismatch(DomainError):
    """tus checksum extension: the body does not match Upload-Checksum; nothing was stored."""

    status_code = 460
    code = "checksum_mismatch"


class PayloadTooLarge(DomainError):
    status_code = 413
    code = "too_large"


class TooManyRequests(DomainError):
    status_code = 429
    code = "too_many_requests"


class InsufficientStorage(DomainError):
    """The server's disk is full; the request can be retried once space is freed."""

    status_code = 507
    code = "insufficient_storage"


class StorageUnavailable(DomainError):
    """The object store could not be reached; the caller should retry later."""

    status_code = 503
    code = "storage_unavailable"


def domain_error_response(exc: DomainError) -> Response:
    """The JSON body every API error has: ``{"detail", "code"}`` plus any extra facts."""
    return Response({**exc.extra, "detail": exc.message, "code": exc.code}, status=exc.status_code)


def api_exception_handler(exc, context):
    """DRF exception handler: domain errors get their status, the rest DRF's default.

    A throttled request (429) also gets ``"code": "throttled"``; DRF sets its Retry-After header and
    its detail says in how many seconds to retry.
    """
    # Imported here: rest_framework.views loads the authentication classes, which raise these errors.
    from rest_framework.views import exception_handler

    if isinstance(exc, DomainError):
        logger.info("domain error in %s: %s", context.get("view").__class__.__name__, exc.message)
        return domain_error_response(exc)
    response = exception_handler(exc, context)
    if isinstance(exc, Throttled) and response is not None:
        response.data = {"detail": response.data["detail"], "code": exc.default_code}
    return response
