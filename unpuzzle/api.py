"""The ``/api/v1/`` root, ``/api/v1/me/`` and ``/api/v1/auth/token/``."""

from __future__ import annotations

from django.http import JsonResponse
from django.views.defaults import page_not_found
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from unpuzzle.client_address import client_address
from unpuzzle.exceptions import domain_error_response
from unpuzzle.openapi import ErrorSerializer
from unpuzzle.sign_in import SignInLockedOut
from unpuzzle.tokens import api_token_for_credentials

API_SECTIONS = {
    "me": "/api/v1/me/",
    "token": "/api/v1/auth/token/",
    "uploads": "/api/v1/uploads/",
    "direct_uploads": "/api/v1/direct-uploads/",
    "videos": "/api/v1/videos/",
    "costs": "/api/v1/costs/",
    "webhooks": "/api/v1/webhooks/",
    "schema": "/api/schema/",
    "docs": "/api/docs/",
    "redoc": "/api/redoc/",
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


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)
    name = serializers.CharField(
        required=False, max_length=100, default="API token", help_text="What the token is for; shown in the admin"
    )


class TokenCreatedSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="The key: send `Authorization: Token <key>`. Shown only this once.")
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The key's first characters, as the admin lists the token")
    expires_at = serializers.DateTimeField(allow_null=True)


class TokenView(APIView):
    """Username and password in, a new named API token out (for scripts; people use the admin).

    Counted by the same lockout as signing in: after too many failures for the username or from
    the address, 429 with Retry-After, a correct password included.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=TokenRequestSerializer,
        responses={
            201: TokenCreatedSerializer,
            400: OpenApiResponse(ErrorSerializer, "Wrong username or password, or a field missing"),
            429: OpenApiResponse(ErrorSerializer, "Too many failed sign-ins; Retry-After says when to try again"),
        },
        auth=[],
        summary="Make an API token from a username and password",
    )
    def post(self, request):
        data = TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            token, key = api_token_for_credentials(
                request=request._request,
                username=data.validated_data["username"],
                password=data.validated_data["password"],
                name=data.validated_data["name"],
                address=client_address(request._request),
            )
        except SignInLockedOut as exc:
            response = domain_error_response(exc)
            response["Retry-After"] = str(exc.retry_after_s)
            return response
        body = {"token": key, "name": token.name, "prefix": token.prefix, "expires_at": token.expires_at}
        return Response(TokenCreatedSerializer(body).data, status=201)


def not_found(request, exception=None):
    """404 for URLs nothing serves: JSON under /api/ (what API clients parse), Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": f"nothing is served at {request.path}", "code": "not_found"}, status=404)
    return page_not_found(request, exception)
