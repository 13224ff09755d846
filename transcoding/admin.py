import csv
import itertools
from datetime import date, timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import BadRequest, PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.safestring import mark_safe

from media_library.models import Video
from transcoding import charts, costs, pricing, selectors
from transcoding.models import BudgetPolicy, CostAlert, CostDashboard, CostLogEntry, TranscodeJob
from transcoding.selectors import budget_status, user_can_manage_budget, user_can_view_costs
from unpuzzle.admin_scope import OwnerListFilter, OwnerScopedAdminMixin
from unpuzzle.exceptions import DomainError


@admin.register(TranscodeJob)
class TranscodeJobAdmin(OwnerScopedAdminMixin, admin.ModelAdmin):
    owner_path = "video__owner"
    list_display = ("id", "video", "status", "progress", "attempts", "heartbeat_at", "wall_seconds", "created_at")
    list_filter = ("status", OwnerListFilter, "created_at")
    search_fields = ("id", "video__title", "video__id", "task_id")
    date_hierarchy = "created_at"
    list_select_related = ("video",)
    readonly_fields = (
        "id", "video", "status", "progress", "attempts", "heartbeat_at", "started_at", "finished_at", "error",
        "log_tail", "task_id", "output_prefix", "wall_seconds", "cpu_seconds", "output_bytes", "requested_by",
        "created_at", "updated_at",
    )
    actions = ["cancel"]

    @admin.action(description="Cancel the selected queued or running jobs")
    def cancel(self, request, queryset):
        from media_library.admin import cancel_jobs

        active = queryset.filter(status__in=TranscodeJob.ACTIVE_STATUSES)
        skipped = queryset.count() - active.count()
        if skipped:
            self.message_user(request, f"{skipped} job(s) skipped: they already ended.", messages.WARNING)
        cancel_jobs(self, request, active)


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
    # The switch changes only through the dashboard's button, which alerts and requeues.
    readonly_fields = ("kill_switch_engaged", "kill_switch_reason", "kill_switch_by", "kill_switch_at", "kill_switch_auto", "updated_at")

    def has_add_permission(self, request):
        return super().has_add_permission(request) and not BudgetPolicy.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(CostAlert)
class CostAlertAdmin(admin.ModelAdmin):
    list_display = ("created_at", "kind", "period", "subject", "actor", "acknowledged_at")
    list_filter = ("kind", "created_at")
    search_fields = ("subject", "message", "period")
    date_hierarchy = "created_at"
    readonly_fields = ("kind", "period", "subject", "message", "actor", "created_at", "acknowledged_at", "acknowledged_by")

    def has_add_permission(self, request):
        return False


class KillSwitchForm(forms.Form):
    action = forms.ChoiceField(choices=[("engage", "Engage"), ("release", "Release")])
    reason = forms.CharField(max_length=1000, required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}))

    def clean(self):
        data = super().clean()
        if data.get("action") == "engage" and not (data.get("reason") or "").strip():
            raise forms.ValidationError("Give a reason to engage the kill switch: it is mailed to the admins and kept in the history.")
        return data


class _Echo:
    """A file-like object whose write returns the line, for streaming csv.writer output."""

    def write(self, value):
        return value


@admin.register(CostDashboard)
class CostDashboardAdmin(admin.ModelAdmin):
    """The staff costs dashboard, listed in the admin index as "Costs dashboard"."""

    def has_view_permission(self, request, obj=None):
        return user_can_view_costs(request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("export.csv", self.admin_site.admin_view(self.export_view), name="%s_%s_export" % info),
            path("kill-switch/", self.admin_site.admin_view(self.kill_switch_view), name="%s_%s_kill_switch" % info),
            path("acknowledge/", self.admin_site.admin_view(self.acknowledge_view), name="%s_%s_acknowledge" % info),
        ] + super().get_urls()

    def _month(self, request) -> date:
        raw = request.GET.get("month")
        if not raw:
            return timezone.localdate().replace(day=1)
        try:
            return pricing.parse_month(raw)
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc

    def changelist_view(self, request, extra_context=None):
        if not user_can_view_costs(request.user):
            raise PermissionDenied
        today = timezone.localdate()
        month = self._month(request)
        start, end = pricing.month_bounds(month)
        status = budget_status(day=today)
        chart_days = selectors.cost_daily_by_kind(start=today - timedelta(days=89), end=today)
        totals = selectors.cost_totals_by_kind(start=start, end=end)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Costs dashboard",
            "status": status,
            "policy": status.policy,
            "month": month,
            "month_param": month.strftime("%Y-%m"),
            "totals": totals,
            "month_total": sum(totals.values()),
            "chart_svg": mark_safe(charts.stacked_daily_svg(chart_days, kinds=selectors.KINDS, title="Daily spend by kind, last 90 days (USD)")),
            "top_videos": selectors.cost_top_videos(start=start, end=end),
            "top_users": selectors.cost_top_users(start=start, end=end),
            "history": selectors.kill_switch_history(),
            "alerts": selectors.cost_alerts_unacknowledged(limit=20),
            "blocked_count": Video.objects.filter(status=Video.Status.BLOCKED).count(),
            "can_manage": user_can_manage_budget(request.user),
            "form": KillSwitchForm(initial={"action": "release" if status.policy.kill_switch_engaged else "engage"}),
        }
        return TemplateResponse(request, "admin/transcoding/costs_dashboard.html", context)

    def kill_switch_view(self, request):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not user_can_manage_budget(request.user):
            raise PermissionDenied
        form = KillSwitchForm(request.POST)
        if not form.is_valid():
            for error in form.errors.get("__all__", []) + form.errors.get("action", []):
                messages.error(request, error)
        else:
            reason = form.cleaned_data["reason"].strip()
            try:
                if form.cleaned_data["action"] == "engage":
                    costs.budget_engage_kill_switch(by=request.user, reason=reason)
                    messages.success(request, "Kill switch engaged: no transcode starts until it is released.")
                else:
                    costs.budget_release_kill_switch(by=request.user, reason=reason)
                    messages.success(request, "Kill switch released: blocked videos are requeued.")
            except DomainError as exc:
                messages.error(request, exc.message)
        return HttpResponseRedirect(reverse("admin:transcoding_costdashboard_changelist"))

    def acknowledge_view(self, request):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not user_can_view_costs(request.user):
            raise PermissionDenied
        count = costs.cost_alerts_acknowledge(by=request.user)
        messages.success(request, f"{count} alerts acknowledged.")
        return HttpResponseRedirect(request.POST.get("next") or reverse("admin:transcoding_costdashboard_changelist"))

    def export_view(self, request):
        if not user_can_view_costs(request.user):
            raise PermissionDenied
        month = self._month(request)
        start, end = pricing.month_bounds(month)
        rows = (
            selectors.cost_entries_between(start=start, end=end)
            .order_by("date", "id")
            .values_list("date", "kind", "quantity", "unit", "unit_price", "amount", "is_estimate", "video_id", "job_id", "owner__username", "note")
        )
        writer = csv.writer(_Echo())
        header = ["date", "kind", "quantity", "unit", "unit_price_usd", "amount_usd", "is_estimate", "video_id", "job_id", "owner", "note"]
        lines = itertools.chain([writer.writerow(header)], (writer.writerow(row) for row in rows.iterator()))
        response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="costs-{month:%Y-%m}.csv"'
        return response
