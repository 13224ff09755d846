"""Admin for the core's own rows: recent failed sign-ins, so an administrator can see a lockout and lift it."""

from __future__ import annotations

from django.contrib import admin

from unpuzzle.models import SignInFailure


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


# Webhook endpoints, deliveries and attempts (their admin lives with their code).
import unpuzzle.webhooks.admin  # noqa: E402,F401
