"""The direct-to-bucket upload API at /api/v1/direct-uploads/ (thin: validate, authorize, call services)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from uploads.bucket import multipart_bucket
from uploads.selectors import direct_upload_get_for_owner, direct_upload_part_count, direct_upload_state
from uploads.serializers import (
    DUPLICATE_OF_HELP,
    CompleteSerializer,
    DirectUploadCreateSerializer,
    DirectUploadSerializer,
    DirectUploadStartSerializer,
    PartNumbersSerializer,
    SignedPartsSerializer,
)
from uploads.services.direct import (
    direct_upload_abort,
    direct_upload_complete,
    direct_upload_create,
    direct_upload_part_urls,
)
from uploads.throttles import UploadCreateThrottle

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from rest_framework.request import Request

CompletedSerializer = inline_serializer(
    "DirectUploadCompleted",
    {
        "id": serializers.UUIDField(),
        "status": serializers.CharField(help_text="'complete' while finalization runs, then 'finalized' or 'failed'"),
        "video_id": serializers.UUIDField(allow_null=True),
        "duplicate_of": serializers.UUIDField(allow_null=True, help_text=DUPLICATE_OF_HELP),
        "media_file_id": serializers.UUIDField(allow_null=True),
    },
)


def _owner(request: Request) -> AbstractBaseUser:
    """The user making the request: the direct-upload endpoints require authentication."""
    user = request.user
    if isinstance(user, AnonymousUser):
        raise NotAuthenticated()
    return user


class DirectUploadView(APIView):
    """Shared: every endpoint needs S3-compatible storage (400 on local storage)."""

    answers_400 = True  # the schema lists 400 on every method (unpuzzle.openapi)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if hasattr(self, request.method.lower()):  # other methods get their 405
            multipart_bucket()

    def session(self, pk):
        return direct_upload_get_for_owner(upload_id=pk, user=_owner(self.request))


class DirectUploadCollectionView(DirectUploadView):
    throttle_classes = [UploadCreateThrottle]

    @extend_schema(
        operation_id="direct_uploads_create",
        request=DirectUploadCreateSerializer,
        responses={201: DirectUploadStartSerializer},
    )
    def post(self, request):
        """Start a direct upload: presigned URLs for the first parts come back."""
        data = DirectUploadCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        session, signed = direct_upload_create(owner=request.user, **data.validated_data)
        body = {
            "id": session.id,
            "part_size": session.part_size,
            "part_count": direct_upload_part_count(session=session),
            "key": session.storage_key,
            "parts": [{"part_number": p.part_number, "url": p.url} for p in signed.parts],
            "urls_expire_at": signed.expires_at,
            "expires_at": session.expires_at,
        }
        return Response(DirectUploadStartSerializer(body).data, status=status.HTTP_201_CREATED)


class DirectUploadDetailView(DirectUploadView):
    @extend_schema(operation_id="direct_uploads_retrieve", responses=DirectUploadSerializer)
    def get(self, request, pk):
        """Status, stored parts and bytes (from the bucket), so a client can resume."""
        return Response(DirectUploadSerializer(direct_upload_state(session=self.session(pk))).data)

    @extend_schema(operation_id="direct_uploads_abort", responses={204: None})
    def delete(self, request, pk):
        """Abort the multipart upload; the bucket frees the stored parts."""
        direct_upload_abort(session=self.session(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DirectUploadPartsView(DirectUploadView):
    @extend_schema(operation_id="direct_uploads_parts", request=PartNumbersSerializer, responses=SignedPartsSerializer)
    def post(self, request, pk):
        """Fresh presigned URLs for the listed parts."""
        data = PartNumbersSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        signed = direct_upload_part_urls(session=self.session(pk), part_numbers=data.validated_data["part_numbers"])
        return Response(SignedPartsSerializer(signed).data)


class DirectUploadCompleteView(DirectUploadView):
    @extend_schema(
        operation_id="direct_uploads_complete",
        request=CompleteSerializer,
        responses={202: CompletedSerializer, 200: CompletedSerializer},
    )
    def post(self, request, pk):
        """Join the parts; finalization into MediaFile + Video runs on the worker (202), GET shows the result."""
        data = CompleteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        parts = [(p["part_number"], p["etag"]) for p in data.validated_data["parts"]]
        session = direct_upload_complete(session=self.session(pk), parts=parts)
        body = {
            "id": session.id,
            "status": session.status,
            "video_id": session.video_id,
            "duplicate_of": session.video.duplicate_of_id if session.video is not None else None,
            "media_file_id": session.media_file_id,
        }
        return Response(body, status=status.HTTP_200_OK if session.video_id else status.HTTP_202_ACCEPTED)
