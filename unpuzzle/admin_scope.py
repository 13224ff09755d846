"""Owner scoping for admin pages: instructors see and change only their own rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.auth import get_user_model

from unpuzzle.permissions import user_sees_all_videos


class OwnerListFilter(admin.SimpleListFilter):
    """Filter by owner, listing only the users who own rows of this model (not every account)."""

    title = "owner"
    parameter_name = "owner"

    def __init__(self, request, params, model, model_admin):
        self.owner_path = getattr(model_admin, "owner_path", "owner")
        super().__init__(request, params, model, model_admin)

    def lookups(self, request, model_admin):
        owner_ids = (
            model_admin.get_queryset(request).order_by().values_list(f"{self.owner_path}__pk", flat=True).distinct()
        )
        users = get_user_model().objects.filter(pk__in=owner_ids).order_by("username")
        return [(str(user.pk), user.get_username()) for user in users]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(**{f"{self.owner_path}__pk": self.value()})


if TYPE_CHECKING:
    # What the mixin is combined with: its super() calls resolve to ModelAdmin's methods.
    _AdminBase = admin.ModelAdmin[Any]
else:
    _AdminBase = object


class OwnerScopedAdminMixin(_AdminBase):
    """Limit a ModelAdmin to the request user's rows unless they may see everything.

    ``owner_path`` is the lookup from the model to its owning user. When the model has its
    own ``owner`` field, it is set when the row is created and read-only afterwards, for everyone
    (an original and the videos made of it keep one owner); scoped users cannot choose it at all:
    their new rows get them as owner.
    """

    owner_path = "owner"

    def owner_scoped(self, request) -> bool:
        return not user_sees_all_videos(request.user)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if self.owner_scoped(request):
            queryset = queryset.filter(**{self.owner_path: request.user})
        return queryset

    def get_list_filter(self, request):
        filters = tuple(super().get_list_filter(request))
        if self.owner_scoped(request):
            filters = tuple(f for f in filters if f != self.owner_path and f is not OwnerListFilter)
        return filters

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        if self.owner_path == "owner" and (obj is not None or self.owner_scoped(request)) and "owner" not in fields:
            fields += ("owner",)
        return fields

    def save_model(self, request, obj, form, change):
        if self.owner_path == "owner" and not change and (self.owner_scoped(request) or obj.owner_id is None):
            obj.owner = request.user
        super().save_model(request, obj, form, change)


class ViewOnlyAdminMixin(_AdminBase):
    """Rows the admin only shows: something else (a service, a schedule, another page) makes,
    changes and deletes them."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
