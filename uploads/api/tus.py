"""The tus 1.0.0 endpoint at /api/v1/uploads/ (thin: parse headers, authorize, call services).

DRF views, so session and token authentication work the same as on the rest of the API
(session-authenticated PATCH/POST/DELETE need the X-CSRFToken header). Request bodies are
never read through ``request.body``: the services stream them from the WSGI input.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotAuthenticated
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from unpuzzle.exceptions import DomainError, UnsupportedMediaType
from uploads import tus
from uploads.api import tus_schema
from uploads.body_rate import RateFloorStream
from uploads.models import UploadSession
from uploads.partfiles import patch_slot
from uploads.selectors import upload_session_get_for_owner, upload_sessions_for_owner
from uploads.serializers import UploadProgressSerializer
from uploads.services.admission import max_upload_bytes
from uploads.services.tus import (
    BodyStream,
    upload_session_append,
    upload_session_concat,
    upload_session_create,
    upload_session_terminate,
)
from uploads.throttles import UploadCreateThrottle
from uploads.wsgi_body import socket_body

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from rest_framework.request import Request

# tus recommends a 30 s read timeout; a stalled body then frees its upload's lock.
BODY_READ_TIMEOUT_S = 30
TUS_METHODS = ("HEAD", "PATCH", "POST", "DELETE")


def _header(request, name: str) -> str | None:
    return request.headers.get(name)


def _owner(request: Request) -> AbstractBaseUser:
    """The user making the request: every upload endpoint but OPTIONS requires authentication."""
    user = request.user
    if isinstance(user, AnonymousUser):
        raise NotAuthenticated()
    return user


def _body(request) -> tuple[BodyStream, int | None]:
    """The request body as a stream and its declared length (None: chunked, read to the end)."""
    django_request = request._request
    declared = django_request.META.get("CONTENT_LENGTH")
    if declared not in (None, ""):
        length = tus.parse_non_negative_int("Content-Length", declared)
        # Under gunicorn, read the socket directly into a reused buffer (see uploads/wsgi_body.py).
        return _rate_floor(socket_body(django_request.META, length) or django_request), length
    if "chunked" in django_request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        if django_request.META.get("wsgi.input_terminated"):
            return django_request.META["wsgi.input"], None
        raise DomainError("send Content-Length: this server cannot read chunked request bodies", status_code=411)
    return django_request, 0


def _rate_floor(stream: BodyStream) -> BodyStream:
    """Cut a body slower than ``UPLOAD_MIN_BYTES_PER_S`` over ``UPLOAD_RATE_WINDOW_S`` (0: no floor)."""
    if settings.UPLOAD_MIN_BYTES_PER_S <= 0:
        return stream
    return cast(
        "BodyStream",
        RateFloorStream(
            stream, min_bytes_per_s=settings.UPLOAD_MIN_BYTES_PER_S, window_s=settings.UPLOAD_RATE_WINDOW_S
        ),
    )


@contextlib.contextmanager
def _read_timeout(request) -> Iterator[None]:
    """Bound each socket read of the body (gunicorn exposes the socket; other servers rely on the proxy)."""
    sock = request._request.META.get("gunicorn.socket")
    if sock is None:
        yield
        return
    previous = sock.gettimeout()
    sock.settimeout(BODY_READ_TIMEOUT_S)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(previous)


def _patch_slot(request) -> contextlib.AbstractContextManager[None]:
    """One of the user's ``UPLOAD_MAX_PATCHES_PER_USER`` slots for sending bytes (429 when all are in use):
    one account cannot hold every web thread with slow bodies."""
    return patch_slot(user_id=_owner(request).pk, slots=settings.UPLOAD_MAX_PATCHES_PER_USER)


def _upload_url(request, session: UploadSession) -> str:
    return request.build_absolute_uri(reverse("uploads-detail", kwargs={"pk": str(session.id)}))


def _upload_id_from_url(url: str) -> uuid.UUID:
    last = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    try:
        return uuid.UUID(last)
    except ValueError:
        raise DomainError(f"Upload-Concat lists {url!r}, which is not an upload URL of this server") from None


def _empty(status: int) -> HttpResponse:
    response = HttpResponse(status=status)
    del response["Content-Type"]
    return response


def _offset_headers(response: HttpResponse, session: UploadSession) -> HttpResponse:
    response["Upload-Offset"] = str(session.offset)
    if session.expires_at is not None and session.status in UploadSession.ACTIVE_STATUSES:
        response["Upload-Expires"] = tus.format_http_date(session.expires_at)
    return response


class TusView(GenericAPIView):
    """Shared tus behaviour: method override, version check, tus headers on every response."""

    serializer_class = UploadProgressSerializer

    def get_permissions(self):
        # OPTIONS is feature discovery: clients ask before they authenticate.
        if self.request.method == "OPTIONS":
            return [AllowAny()]
        return super().get_permissions()

    def initial(self, request, *args, **kwargs):
        method = tus.parse_method_override(request.method, request.headers.get("X-HTTP-Method-Override"))
        request.method = request._request.method = method
        super().initial(request, *args, **kwargs)
        # A method this URL does not serve gets its 405 rather than a tus version complaint.
        if request.method in TUS_METHODS and hasattr(self, request.method.lower()):
            tus.check_tus_resumable(_header(request, "Tus-Resumable"))

    def handle_exception(self, exc):
        if isinstance(exc, tus.TusHeaderError):
            code = "checksum_mismatch" if exc.status == tus.CHECKSUM_MISMATCH_STATUS else "invalid_tus_request"
            exc = DomainError(exc.message, status_code=exc.status, code=code)
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Tus-Resumable"] = tus.TUS_VERSION
        response["Cache-Control"] = "no-store"
        if response.status_code == 412:
            response["Tus-Version"] = ",".join(tus.SUPPORTED_VERSIONS)
        return response

    @tus_schema.options_schema
    def options(self, request, *args, **kwargs):
        response = _empty(204)
        response["Tus-Version"] = ",".join(tus.SUPPORTED_VERSIONS)
        response["Tus-Extension"] = ",".join(tus.EXTENSIONS)
        response["Tus-Max-Size"] = str(max_upload_bytes())
        response["Tus-Checksum-Algorithm"] = ",".join(tus.CHECKSUM_ALGORITHMS)
        return response


class UploadCollectionView(TusView):
    """``POST`` creates a tus upload (creation, creation-with-upload, defer-length, concatenation);
    ``GET`` lists the user's own uploads."""

    throttle_classes = [UploadCreateThrottle]

    def get_queryset(self):
        return upload_sessions_for_owner(user=_owner(self.request))

    @extend_schema(operation_id="uploads_list", responses=UploadProgressSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(UploadProgressSerializer(page, many=True).data)

    @tus_schema.create_schema
    def post(self, request):
        concat = tus.parse_concat(_header(request, "Upload-Concat"))
        metadata = tus.parse_metadata(_header(request, "Upload-Metadata"))
        if concat is not None and not concat.partial:
            if _header(request, "Upload-Length") is not None:
                raise DomainError("a final concatenation must not send Upload-Length; its length is the parts' sum")
            session = upload_session_concat(
                owner=request.user, partial_ids=[_upload_id_from_url(u) for u in concat.urls], metadata=metadata
            )
            return self._created(request, session)

        defer = tus.parse_defer_length(_header(request, "Upload-Defer-Length"))
        length = tus.parse_non_negative_int("Upload-Length", _header(request, "Upload-Length"))
        if (length is None) == (not defer):
            raise DomainError("send exactly one of Upload-Length (the file size in bytes) or Upload-Defer-Length: 1")
        stream, content_length = _body(request)
        with_body = content_length is None or content_length > 0
        checksum = None
        if with_body:
            if request._request.content_type != tus.OFFSET_CONTENT_TYPE:
                raise UnsupportedMediaType(
                    f"a creation request with a body needs Content-Type: {tus.OFFSET_CONTENT_TYPE}"
                )
            checksum = tus.parse_checksum(_header(request, "Upload-Checksum"))
        session = upload_session_create(
            owner=request.user, length=length, metadata=metadata, partial=bool(concat and concat.partial)
        )
        if with_body:
            # creation-with-upload: keep what can be kept; the client resumes from Upload-Offset.
            with contextlib.suppress(DomainError), _read_timeout(request), _patch_slot(request):
                session = upload_session_append(
                    session=session, offset=0, stream=stream, content_length=content_length, checksum=checksum
                )
            session.refresh_from_db()
        return self._created(request, session)

    def _created(self, request, session: UploadSession) -> HttpResponse:
        response = _offset_headers(_empty(201), session)
        response["Location"] = _upload_url(request, session)
        return response


class UploadDetailView(TusView):
    """One upload: ``HEAD`` offset, ``PATCH`` bytes, ``DELETE`` terminate, ``GET`` JSON progress."""

    def _session(self, pk) -> UploadSession:
        return upload_session_get_for_owner(upload_id=pk, user=_owner(self.request))

    @extend_schema(operation_id="uploads_retrieve", responses=UploadProgressSerializer)
    def get(self, request, pk):
        return Response(UploadProgressSerializer(self._session(pk)).data)

    @tus_schema.head_schema
    def head(self, request, pk):
        session = self._session(pk)
        session.check_not_ended(advice="")
        response = _offset_headers(_empty(200), session)
        if session.length is None:
            response["Upload-Defer-Length"] = "1"
        else:
            response["Upload-Length"] = str(session.length)
        if session.metadata:
            response["Upload-Metadata"] = tus.format_metadata(session.metadata)
        if session.is_partial:
            response["Upload-Concat"] = tus.format_concat(partial=True)
        elif session.concat_parts:
            response["Upload-Concat"] = tus.format_concat(
                partial=False, urls=[reverse("uploads-detail", kwargs={"pk": p}) for p in session.concat_parts]
            )
        return response

    @tus_schema.patch_schema
    def patch(self, request, pk):
        session = self._session(pk)
        session.check_not_ended()
        if request._request.content_type != tus.OFFSET_CONTENT_TYPE:
            raise UnsupportedMediaType(f"PATCH bodies must be sent with Content-Type: {tus.OFFSET_CONTENT_TYPE}")
        offset = tus.parse_non_negative_int("Upload-Offset", _header(request, "Upload-Offset"), required=True)
        upload_length = tus.parse_non_negative_int("Upload-Length", _header(request, "Upload-Length"))
        checksum = tus.parse_checksum(_header(request, "Upload-Checksum"))
        stream, content_length = _body(request)
        with _read_timeout(request), _patch_slot(request):
            session = upload_session_append(
                session=session,
                offset=offset,
                stream=stream,
                content_length=content_length,
                checksum=checksum,
                upload_length=upload_length,
            )
        return _offset_headers(_empty(204), session)

    @tus_schema.delete_schema
    def delete(self, request, pk):
        session = self._session(pk)
        session.check_not_ended(advice="", already=True)
        upload_session_terminate(session=session)
        return _empty(204)
