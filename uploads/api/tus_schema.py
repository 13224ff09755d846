"""OpenAPI descriptions of the tus requests (headers in and out, metadata keys, error bodies).

The tus views answer with headers and empty bodies, which drf-spectacular cannot infer from a
serializer; these declarations say what each request sends and gets back.
"""

from __future__ import annotations

from typing import Final

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema

from unpuzzle.openapi import ERROR_RESPONSE
from uploads import tus

H: Final = "header"

TUS_RESUMABLE = OpenApiParameter(
    "Tus-Resumable", OpenApiTypes.STR, H, required=True, enum=list(tus.SUPPORTED_VERSIONS),
    description="The tus version the client speaks; any other value is answered 412 with Tus-Version.",
)  # fmt: skip
METHOD_OVERRIDE = OpenApiParameter(
    "X-HTTP-Method-Override", OpenApiTypes.STR, H, enum=["PATCH", "DELETE", "HEAD"],
    description="For clients that can only send POST: the method the request stands for.",
)  # fmt: skip
UPLOAD_LENGTH = OpenApiParameter(
    "Upload-Length", OpenApiTypes.INT64, H,
    description="The file's size in bytes. Send it, or Upload-Defer-Length: 1 and the size in a later PATCH.",
)  # fmt: skip
UPLOAD_DEFER_LENGTH = OpenApiParameter(
    "Upload-Defer-Length", OpenApiTypes.STR, H, enum=["1"],
    description="The size is not known yet (creation-defer-length); a later PATCH sends Upload-Length.",
)  # fmt: skip
UPLOAD_METADATA = OpenApiParameter(
    "Upload-Metadata", OpenApiTypes.STR, H,
    description=(
        "Comma-separated `key base64(value)` pairs. Keys read by the server: `filename` (the original "
        "file name; its extension is checked against the accepted formats), `filetype` (the MIME type, "
        "e.g. video/mp4), `title` (the video's title; defaults to the file name without extension). "
        "Other keys are kept and returned by HEAD."
    ),
)  # fmt: skip
UPLOAD_CONCAT = OpenApiParameter(
    "Upload-Concat", OpenApiTypes.STR, H,
    description=(
        "`partial` creates a part of a parallel upload; `final;<url> <url> …` joins finished parts (their "
        "URLs from Location) into one upload, without Upload-Length."
    ),
)  # fmt: skip
UPLOAD_CHECKSUM = OpenApiParameter(
    "Upload-Checksum", OpenApiTypes.STR, H,
    description=(
        f"`<algorithm> <base64 digest>` of this request's body ({', '.join(tus.CHECKSUM_ALGORITHMS)}); "
        f"a mismatch is answered {tus.CHECKSUM_MISMATCH_STATUS} and nothing is stored."
    ),
)  # fmt: skip
UPLOAD_OFFSET_IN = OpenApiParameter(
    "Upload-Offset", OpenApiTypes.INT64, H, required=True,
    description="Where this body starts: the offset HEAD returned. Any other value is answered 409.",
)  # fmt: skip


def _out(name: str, description: str, *, on: list[int], type_=OpenApiTypes.STR) -> OpenApiParameter:
    return OpenApiParameter(name, type_, H, response=on, description=description)


def _tus_out(on: list[int]) -> list[OpenApiParameter]:
    return [_out("Tus-Resumable", f"Always {tus.TUS_VERSION}.", on=on)]


BINARY_BODY = {tus.OFFSET_CONTENT_TYPE: {"type": "string", "format": "binary"}}
TUS_ERRORS = {
    400: ERROR_RESPONSE,
    401: ERROR_RESPONSE,
    404: ERROR_RESPONSE,
    412: OpenApiResponse(ERROR_RESPONSE.response, "Tus-Resumable missing or a version this server does not speak"),
    413: OpenApiResponse(ERROR_RESPONSE.response, "The upload would exceed the maximum size (Tus-Max-Size)"),
    415: OpenApiResponse(ERROR_RESPONSE.response, f"A body sent without Content-Type: {tus.OFFSET_CONTENT_TYPE}"),
    429: OpenApiResponse(ERROR_RESPONSE.response, "Too many uploads or requests; Retry-After says when to retry"),
}

options_schema = extend_schema(
    summary="tus feature discovery (no authentication)",
    description="What this tus server supports; clients may ask before they authenticate.",
    auth=[],
    request=None,
    responses={204: OpenApiResponse(description="The server's tus versions, extensions and limits")},
    parameters=[
        *_tus_out([204]),
        _out("Tus-Version", "Versions spoken, comma-separated.", on=[204]),
        _out("Tus-Extension", f"Extensions supported: {','.join(tus.EXTENSIONS)}.", on=[204]),
        _out("Tus-Max-Size", "The largest upload accepted, in bytes.", on=[204], type_=OpenApiTypes.INT64),
        _out("Tus-Checksum-Algorithm", "Checksum algorithms accepted in Upload-Checksum.", on=[204]),
    ],
)

create_schema = extend_schema(
    operation_id="uploads_create",
    summary="Create a tus upload (optionally with its first bytes)",
    description=(
        "tus creation, creation-with-upload, creation-defer-length and concatenation. The body is empty, "
        f"or the first bytes of the file with Content-Type: {tus.OFFSET_CONTENT_TYPE}; Location is the "
        "upload's URL for HEAD/PATCH/DELETE."
    ),
    request=BINARY_BODY,
    parameters=[
        TUS_RESUMABLE,
        UPLOAD_LENGTH,
        UPLOAD_DEFER_LENGTH,
        UPLOAD_METADATA,
        UPLOAD_CONCAT,
        UPLOAD_CHECKSUM,
        METHOD_OVERRIDE,
        *_tus_out([201]),
        _out("Location", "The new upload's URL.", on=[201]),
        _out("Upload-Offset", "Bytes stored so far (the first bytes sent with the request, if any).", on=[201]),
        _out("Upload-Expires", "When an unfinished upload is removed (RFC 9110 date).", on=[201]),
    ],
    responses={
        201: OpenApiResponse(description="Created; Location is the upload's URL"),
        **TUS_ERRORS,
        405: OpenApiResponse(ERROR_RESPONSE.response, "X-HTTP-Method-Override names a method this URL does not serve"),
    },
)

head_schema = extend_schema(
    operation_id="uploads_offset",
    summary="How many bytes of the upload are stored (resume from Upload-Offset)",
    parameters=[
        TUS_RESUMABLE,
        *_tus_out([200]),
        _out("Upload-Offset", "Bytes stored so far: send the rest from here.", on=[200], type_=OpenApiTypes.INT64),
        _out("Upload-Length", "The declared size (absent while deferred).", on=[200], type_=OpenApiTypes.INT64),
        _out("Upload-Defer-Length", "`1` while the size is not declared yet.", on=[200]),
        _out("Upload-Metadata", "The metadata sent at creation.", on=[200]),
        _out("Upload-Concat", "`partial`, or `final;<urls>` for a concatenated upload.", on=[200]),
        _out("Upload-Expires", "When the unfinished upload is removed.", on=[200]),
    ],
    responses={
        200: OpenApiResponse(description="Offset in Upload-Offset; no body"),
        404: OpenApiResponse(description="No such upload of yours (no body: HEAD)"),
        410: OpenApiResponse(description="The upload was terminated or expired (no body: HEAD)"),
        412: OpenApiResponse(description="Tus-Resumable missing or unsupported (no body: HEAD)"),
    },
)

patch_schema = extend_schema(
    operation_id="uploads_append",
    summary="Append bytes at Upload-Offset",
    request=BINARY_BODY,
    parameters=[
        TUS_RESUMABLE,
        UPLOAD_OFFSET_IN,
        UPLOAD_CHECKSUM,
        OpenApiParameter(
            "Upload-Length", OpenApiTypes.INT64, H, description="Declares the size of a deferred-length upload."
        ),
        METHOD_OVERRIDE,
        *_tus_out([204]),
        _out("Upload-Offset", "Bytes stored after this request.", on=[204], type_=OpenApiTypes.INT64),
        _out("Upload-Expires", "When the unfinished upload is removed.", on=[204]),
    ],
    responses={
        204: OpenApiResponse(description="Stored; the new offset is in Upload-Offset"),
        **TUS_ERRORS,
        408: OpenApiResponse(ERROR_RESPONSE.response, "The body arrived slower than the server's rate floor"),
        409: OpenApiResponse(ERROR_RESPONSE.response, "Upload-Offset is not the stored offset: HEAD, then resume"),
        410: OpenApiResponse(ERROR_RESPONSE.response, "The upload was terminated, expired or already finished"),
        423: OpenApiResponse(ERROR_RESPONSE.response, "Another request is writing this upload"),
        tus.CHECKSUM_MISMATCH_STATUS: OpenApiResponse(ERROR_RESPONSE.response, "Upload-Checksum does not match"),
        507: OpenApiResponse(ERROR_RESPONSE.response, "The server's disk is full; retry later"),
    },
)

delete_schema = extend_schema(
    operation_id="uploads_terminate",
    summary="Terminate the upload and remove its bytes",
    parameters=[TUS_RESUMABLE, METHOD_OVERRIDE, *_tus_out([204])],
    responses={
        204: OpenApiResponse(description="Terminated"),
        **TUS_ERRORS,
        410: OpenApiResponse(ERROR_RESPONSE.response, "Already terminated"),
    },
)
