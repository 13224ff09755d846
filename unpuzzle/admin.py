"""Admin for the core's own rows: recent failed sign-ins (an administrator can see a lockout and lift it)
and each user's API tokens."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils import timezone
from rest_framework.authtoken.models import TokenProxy

from unpuzzle.models import ApiToken, SignInFailure
from unpuzzle.tokens import api_token_create, api_token_revoke, api_token_usable_reason

# DRF's token admin lists keys in clear text; named tokens (below) replace it.
if admin.site.is_registered(TokenProxy):
    admin.site.unregister(TokenProxy)


@admin.register(SignInFailure)
class SignInFailureAdmin(admin.ModelAdmin):
    """Read-only; deleting an account's or an address's rows lifts its lockout at once."""

    list_display = ("username", "address", "attempted_at")
    search_fields = ("username", "address")
    date_hierarchy = "attempted_at"
    ordering = ("-attempted_at",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ("name", "expires_at")

    def clean_expires_at(self):
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and self.instance.pk is None and expires_at <= timezone.now():
            raise forms.ValidationError(
                "Pick a time in the future, or leave it empty for a token that does not expire."
            )
        return expires_at


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Each user's own API tokens (superusers see everyone's): make one (its key is shown once),
    see when it was last used, revoke it."""

    form = ApiTokenForm
    list_display = ("name", "prefix", "state", "created_at", "expires_at", "last_used_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix")
    actions = ["revoke"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request).select_related("owner")
        return queryset if request.user.is_superuser else queryset.filter(owner=request.user)

    def get_list_display(self, request):
        display = super().get_list_display(request)
        return (*display, "owner") if request.user.is_superuser else display

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("owner", "prefix", "state", "created_at", "expires_at", "last_used_at", "revoked_at")

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("name", "expires_at")
        return ("name", "owner", "prefix", "state", "created_at", "expires_at", "last_used_at", "revoked_at")

    @admin.display(description="state")
    def state(self, obj: ApiToken) -> str:
        return api_token_usable_reason(obj, now=timezone.now()).replace("this token ", "") or "active"

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        token, key = api_token_create(owner=request.user, name=obj.name, expires_at=obj.expires_at)
        obj.pk = token.pk
        request._api_token_key = key  # shown once by response_add

    def response_add(self, request, obj, post_url_continue=None):
        key = getattr(request, "_api_token_key", None)
        if key is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "API token made",
            "token": ApiToken.objects.get(pk=obj.pk),
            "key": key,
        }
        return TemplateResponse(request, "admin/unpuzzle/apitoken/created.html", context)

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request, queryset):
        revoked = 0
        for token in queryset.filter(revoked_at__isnull=True):
            api_token_revoke(token=token)
            revoked += 1
        self.message_user(request, f"Revoked {revoked} token{'' if revoked == 1 else 's'}.", messages.SUCCESS)


# Webhook endpoints, deliveries and attempts (their admin lives with their code).
import unpuzzle.webhooks.admin  # noqa: E402,F401
