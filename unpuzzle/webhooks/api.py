"""``/api/v1/webhooks/``: staff register, change, rotate and remove webhook endpoints."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response

from unpuzzle.webhooks.events import EVENT_TYPES
from unpuzzle.webhooks.models import WebhookEndpoint
from unpuzzle.webhooks.services import (
    webhook_endpoint_create,
    webhook_endpoint_secret_rotate,
    webhook_endpoint_update,
    webhook_test_send,
)


class WebhookEndpointSerializer(serializers.ModelSerializer):
    """An endpoint; ``events`` lists the event types it receives (unknown ones are refused with 400)."""

    events = serializers.ListField(child=serializers.CharField(), help_text=f"Any of: {', '.join(EVENT_TYPES)}")
    url = serializers.CharField(max_length=2000, help_text="https URL on a public address")

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "events",
            "enabled",
            "description",
            "disabled_reason",
            "previous_secret_expires_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "disabled_reason", "previous_secret_expires_at", "created_at", "updated_at"]


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    """An endpoint with its secret: answered once, at creation and at rotation."""

    secret = serializers.CharField(read_only=True, help_text="whsec_...: verify signatures with it; shown only now")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = [*WebhookEndpointSerializer.Meta.read_only_fields, "secret"]


class TestDeliverySerializer(serializers.Serializer):
    delivery_id = serializers.UUIDField()


@extend_schema_view(
    list=extend_schema(summary="Webhook endpoints (staff)"),
    create=extend_schema(
        summary="Register an endpoint; the answer holds its secret, shown only once",
        responses={201: WebhookEndpointWithSecretSerializer},
    ),
    retrieve=extend_schema(summary="A webhook endpoint (without its secret)"),
    update=extend_schema(summary="Replace an endpoint's url, events, enabled and description"),
    partial_update=extend_schema(summary="Change an endpoint"),
    destroy=extend_schema(summary="Remove an endpoint and its delivery history"),
)
class WebhookEndpointViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Endpoints that receive signed events (docs/api.md, Webhooks). Staff only."""

    permission_classes = [IsAdminUser]
    serializer_class = WebhookEndpointSerializer
    queryset = WebhookEndpoint.objects.order_by("created_at")

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_create(created_by=request.user, **serializer.validated_data)
        return Response(WebhookEndpointWithSecretSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer):
        serializer.instance = webhook_endpoint_update(endpoint=serializer.instance, **serializer.validated_data)

    @extend_schema(
        summary="A new secret, shown only now; the previous one also signs for WEBHOOK_SECRET_OVERLAP_S",
        request=None,
        responses=WebhookEndpointWithSecretSerializer,
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        endpoint = webhook_endpoint_secret_rotate(endpoint=self.get_object())
        return Response(WebhookEndpointWithSecretSerializer(endpoint).data)

    @extend_schema(
        summary="Send a webhook.test event to this endpoint", request=None, responses={202: TestDeliverySerializer}
    )
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        delivery = webhook_test_send(endpoint=self.get_object(), by=request.user)
        return Response(TestDeliverySerializer({"delivery_id": delivery.id}).data, status=status.HTTP_202_ACCEPTED)
