"""How the OpenAPI schema describes what every endpoint shares: the error body and the errors
an endpoint can answer because of its authentication, permissions, throttles and path ids."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.generators import EndpointEnumerator, SchemaGenerator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import (
    OpenApiResponse,
    OpenApiWebhook,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView


class ErrorSerializer(serializers.Serializer):
    """Every API error: ``detail`` says what to fix, ``code`` is stable for programs. Validation
    errors of a request body instead map each field name to its messages."""

    detail = serializers.CharField(required=False, help_text="What went wrong and what to send instead")
    code = serializers.CharField(required=False, help_text="Machine-readable, e.g. not_found, throttled")


ERROR_RESPONSE = OpenApiResponse(ErrorSerializer, "Error: `detail` says what to fix")

_STANDARD = {
    "400": "The request is invalid: `detail`, or the messages of each invalid field",
    "401": "Not authenticated: send `Authorization: Token <key>` (or sign in for a session)",
    "403": "Authenticated, but not allowed to do this",
    "404": "No such object (or not one of yours), or a page past the end of a list",
    "429": "Too many requests; Retry-After says in how many seconds to try again",
}


class ApiAutoSchema(AutoSchema):
    """drf-spectacular's schema plus the error responses each operation can give, unless the
    operation declares its own: 401/403 when it needs a signed-in user, 404 on paths with an
    id, 429 when throttled, 400 when it takes input."""

    method_mapping = {**AutoSchema.method_mapping, "options": "options", "head": "head"}

    def get_operation_id(self) -> str:
        operation_id = super().get_operation_id()
        if self.method in ("OPTIONS", "HEAD") and "{" in self.path:
            operation_id += "_one"  # the same method on the collection has the plain id
        return operation_id

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code in self._standard_error_codes():
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    OpenApiResponse(ErrorSerializer, _STANDARD[code]), code, direction=direction
                )
        return responses

    def _standard_error_codes(self) -> list[str]:
        codes = []
        takes_input = self.method in ("POST", "PUT", "PATCH") or self.get_override_parameters()
        if (
            takes_input
            or self.get_filter_backends()
            or self._is_list_view()
            or getattr(self.view, "answers_400", False)
        ):
            codes.append("400")
        if not all(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            codes += ["401", "403"]
        if "{" in self.path or (self._is_list_view() and getattr(self.view, "pagination_class", None)):
            codes.append("404")  # a list answers 404 to a page number past its end
        if getattr(self.view, "throttle_classes", None):
            codes.append("429")
        return codes


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Named API tokens in the schema (``Authorization: Token upz_…``)."""

    target_class = "unpuzzle.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": (
                "`Token <key>`. Make a token in the admin (API tokens) or with POST /api/v1/auth/token/; "
                "the key is shown once. Older unnamed tokens (tokenAuth) use the same header."
            ),
        }


class ApiEndpointEnumerator(EndpointEnumerator):
    """drf-spectacular leaves out every HEAD and OPTIONS; a view that implements its own (tus: offset
    and feature discovery) has them as endpoints of their own, so they are listed."""

    def get_allowed_methods(self, callback):
        methods = super().get_allowed_methods(callback)
        cls = callback.cls
        if getattr(callback, "actions", None) is None:
            if "head" in dir(cls):
                methods.append("HEAD")
            if cls.options is not APIView.options:
                methods.append("OPTIONS")
        return methods


class ApiSchemaGenerator(SchemaGenerator):
    endpoint_inspector_cls = ApiEndpointEnumerator


def webhook_doc(event_type: str, data: serializers.BaseSerializer) -> OpenApiWebhook:
    """The OpenAPI description of one webhook event: the signed POST a receiver gets, its envelope
    ``{"id", "type", "created_at", "data"}`` with ``data`` as the API shows that object."""
    from unpuzzle.webhooks.events import EVENT_TYPES

    component = "Webhook" + "".join(part.capitalize() for part in event_type.replace("_", ".").split("."))
    envelope = inline_serializer(
        component,
        {
            "id": serializers.CharField(
                help_text="Unique per event: receivers drop repeats (delivery is at least once)"
            ),
            "type": serializers.ChoiceField(choices=[event_type]),
            "created_at": serializers.DateTimeField(),
            "data": data,
        },
    )
    return OpenApiWebhook(
        name=event_type,
        decorator=extend_schema(
            summary=EVENT_TYPES[event_type],
            description=(
                "Headers: `webhook-id` (the event's id), `webhook-timestamp` (Unix seconds when signed) and "
                "`webhook-signature` (space-separated `v1,<signature>` entries; two while a rotated secret "
                "overlaps), as the Standard Webhooks specification says. Verify the signature "
                '(`v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">`, with the endpoint\'s '
                "secret) before trusting the body. Answer 2xx within 10 s; anything else is retried with backoff."
            ),
            request=envelope,
            responses={200: OpenApiResponse(description="Received (any 2xx)")},
        ),
    )
