"""The ``/api/v1/`` root and ``/api/v1/me/``."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

API_SECTIONS = {
    "me": "/api/v1/me/",
    "uploads": "/api/v1/uploads/",
    "direct_uploads": "/api/v1/direct-uploads/",
    "videos": "/api/v1/videos/",
    "costs": "/api/v1/costs/",
    "webhooks": "/api/v1/webhooks/",
    "schema": "/api/schema/",
    "docs": "/api/docs/",
    "health": "/healthz",
}


class ApiRootView(APIView):
    """Links to every section of the API."""

    permission_classes = [AllowAny]

    @extend_schema(
        responses=inline_serializer("ApiRoot", {name: serializers.URLField() for name in API_SECTIONS}),
    )
    def get(self, request):
        return Response({name: request.build_absolute_uri(path) for name, path in API_SECTIONS.items()})


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    is_staff = serializers.BooleanField()


class MeView(APIView):
    """Who the request is authenticated as; lets a client check its token."""

    @extend_schema(responses=MeSerializer)
    def get(self, request):
        user = request.user
        return Response(MeSerializer({"id": user.pk, "username": user.get_username(), "is_staff": user.is_staff}).data)
