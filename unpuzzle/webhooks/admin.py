"""Admin for webhooks: endpoints (secret shown once, test event, rotation), their deliveries and each attempt."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from unpuzzle.exceptions import DomainError
from unpuzzle.webhooks.events import EVENT_TYPES
from unpuzzle.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from unpuzzle.webhooks.services import (
    webhook_delivery_redeliver,
    webhook_endpoint_create,
    webhook_endpoint_secret_rotate,
    webhook_endpoint_update,
    webhook_events_check,
    webhook_test_send,
    webhook_url_check,
)


class WebhookEndpointForm(forms.ModelForm):
    """The URL and event types go through the same checks as the API."""

    url = forms.CharField(max_length=2000, help_text="https URL on a public address", widget=forms.URLInput)
    events = forms.MultipleChoiceField(
        choices=[(name, f"{name}: {text}") for name, text in EVENT_TYPES.items()],
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "events", "enabled", "description"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"].strip()
        if self.instance.pk is None or url != self.instance.url:
            try:
                webhook_url_check(url=url)
            except DomainError as exc:
                raise forms.ValidationError(exc.message) from exc
        return url

    def clean_events(self) -> list[str]:
        try:
            return webhook_events_check(events=self.cleaned_data["events"])
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from exc


def _secret_message(model_admin, request, endpoint: WebhookEndpoint, what: str) -> None:
    model_admin.message_user(
        request,
        format_html(
            "{} {}: its secret is <code>{}</code>. Copy it now: it is not shown again.",
            what,
            endpoint.url,
            endpoint.secret,
        ),
        messages.SUCCESS,
    )


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ("url", "enabled", "event_list", "failing_since", "disabled_reason", "deliveries_link")
    list_filter = ("enabled",)
    search_fields = ("url", "description")
    readonly_fields = ("id", "disabled_reason", "failing_since", "previous_secret_expires_at", "deliveries_link")
    actions = ("send_test_event", "rotate_secret")

    @admin.display(description="Events")
    def event_list(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.events)

    @admin.display(description="Deliveries")
    def deliveries_link(self, endpoint: WebhookEndpoint) -> str:
        if endpoint.pk is None:
            return "-"
        url = reverse("admin:unpuzzle_webhookdelivery_changelist") + f"?endpoint__id__exact={endpoint.pk}"
        return format_html('<a href="{}">{} deliveries</a>', url, endpoint.deliveries.count())

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        if change:
            saved = webhook_endpoint_update(
                endpoint=obj,
                url=data["url"],
                events=data["events"],
                enabled=data["enabled"],
                description=data["description"],
            )
        else:
            saved = webhook_endpoint_create(
                url=data["url"],
                events=data["events"],
                enabled=data["enabled"],
                description=data["description"],
                created_by=request.user,
            )
            _secret_message(self, request, saved, "Registered")
        obj.pk = saved.pk
        obj._state.adding = False

    def changelist_view(self, request, extra_context=None):
        for endpoint in WebhookEndpoint.objects.filter(
            enabled=False, disabled_reason__startswith="disabled automatically"
        ):
            self.message_user(request, f"{endpoint.url} was {endpoint.disabled_reason}", messages.WARNING)
        return super().changelist_view(request, extra_context)

    @admin.action(description="Send a test event (webhook.test)", permissions=["change"])
    def send_test_event(self, request, queryset) -> None:
        for endpoint in queryset:
            webhook_test_send(endpoint=endpoint, by=request.user)
        self.message_user(
            request, f"Test event queued for {queryset.count()} endpoint(s); see their deliveries.", messages.SUCCESS
        )

    @admin.action(
        description="Rotate the secret (the old one keeps signing for WEBHOOK_SECRET_OVERLAP_S)", permissions=["change"]
    )
    def rotate_secret(self, request, queryset) -> None:
        for endpoint in queryset:
            _secret_message(self, request, webhook_endpoint_secret_rotate(endpoint=endpoint), "Rotated")


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ("started_at", "succeeded", "status_code", "latency_ms", "error", "answer")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-started_at",)

    @admin.display(description="Answer (first 512 bytes)")
    def answer(self, attempt: WebhookAttempt) -> str:
        # Wraps anywhere: an answer without spaces must not widen the page.
        return format_html('<code style="overflow-wrap: anywhere">{}</code>', attempt.response_body or "-")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Read-only; "redeliver" sends a delivery again."""

    list_display = (
        "event_type",
        "endpoint",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "created_at",
    )
    list_filter = ("status", "endpoint", "event__type")
    list_select_related = ("event", "endpoint")
    search_fields = ("event__id", "endpoint__url")
    readonly_fields = (
        "id",
        "event",
        "endpoint",
        "status",
        "attempts",
        "next_attempt_at",
        "dispatched_at",
        "last_status_code",
        "last_error",
        "created_at",
    )
    fields = readonly_fields
    inlines = (WebhookAttemptInline,)
    actions = ("redeliver",)

    @admin.display(description="Event", ordering="event__type")
    def event_type(self, delivery: WebhookDelivery) -> str:
        return delivery.event.type

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Redeliver (same event id, a new round of attempts)", permissions=["change"])
    def redeliver(self, request, queryset) -> None:
        for delivery in queryset:
            webhook_delivery_redeliver(delivery=delivery)
        self.message_user(request, f"{queryset.count()} delivery(ies) queued again.", messages.SUCCESS)


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    """Read-only outbox: what was recorded and sent."""

    list_display = ("type", "id", "created_at")
    list_filter = ("type",)
    search_fields = ("id",)
    readonly_fields = ("id", "type", "created_at", "data")
    fields = readonly_fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
