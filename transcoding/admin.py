from django.contrib import admin

from transcoding.models import BudgetPolicy, CostLogEntry, TranscodeJob


@admin.register(TranscodeJob)
class TranscodeJobAdmin(admin.ModelAdmin):
    list_display = ("id", "video", "status", "progress", "attempts", "heartbeat_at", "wall_seconds", "created_at")
    list_filter = ("status", "created_at")
    search_fields = ("id", "video__title", "video__id", "task_id")
    date_hierarchy = "created_at"
    list_select_related = ("video",)
    readonly_fields = (
        "id", "video", "status", "progress", "attempts", "heartbeat_at", "started_at", "finished_at", "error",
        "log_tail", "task_id", "output_prefix", "wall_seconds", "cpu_seconds", "output_bytes", "requested_by",
        "created_at", "updated_at",
    )


@admin.register(CostLogEntry)
class CostLogEntryAdmin(admin.ModelAdmin):
    list_display = ("date", "kind", "quantity", "unit", "unit_price", "amount", "is_estimate", "video", "owner")
    list_filter = ("kind", "is_estimate", "date")
    search_fields = ("note", "video__title", "owner__username")
    date_hierarchy = "date"
    list_select_related = ("video", "owner")
    readonly_fields = ("date", "kind", "quantity", "unit", "unit_price", "amount", "is_estimate", "video", "job", "owner", "note", "created_at")


@admin.register(BudgetPolicy)
class BudgetPolicyAdmin(admin.ModelAdmin):
    list_display = ("__str__", "monthly_budget_usd", "kill_switch_engaged", "kill_switch_by", "kill_switch_at", "auto_engage")
    readonly_fields = ("kill_switch_by", "kill_switch_at", "updated_at")

    def has_add_permission(self, request):
        return not BudgetPolicy.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False
