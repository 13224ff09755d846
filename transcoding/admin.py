"""Admin for transcoding: jobs, the Video admin extended with its jobs and transcode operations, and costs."""

import csv
import itertools
from datetime import date, timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import BadRequest, PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from media_library import admin as media_admin
from media_library.models import Video
from transcoding.costs import budget, charts, pricing
from transcoding.costs import selectors as cost_selectors
from transcoding.costs.selectors import budget_status, user_can_manage_budget, user_can_view_costs
from transcoding.models import BudgetPolicy, CostAlert, CostDashboard, CostLogEntry, TranscodeChunk, TranscodeJob
from transcoding.selectors import videos_with_latest_job
from transcoding.services.jobs import transcode_cancel, transcode_request
from transcoding.services.videos import video_delete
from unpuzzle.admin_scope import OwnerListFilter, OwnerScopedAdminMixin, ViewOnlyAdminMixin
from unpuzzle.exceptions import DomainError
from unpuzzle.failures import failure_plain
from unpuzzle.money import format_usd
from unpuzzle.permissions import user_sees_all_videos
from unpuzzle.redact import redact_server_details


def cancel_jobs(model_admin, request, jobs) -> None:
    """Cancel each active job through the service and report how many stopped."""
    cancelled = 0
    for job in jobs:
        try:
            transcode_cancel(job=job, by=request.user)
            cancelled += 1
        except DomainError as exc:
            model_admin.message_user(request, f"job {job.id}: {exc.message}", messages.WARNING)
    level = messages.SUCCESS if cancelled else messages.WARNING
    model_admin.message_user(request, f"Cancelled {cancelled} transcode job(s).", level)


class TranscodeChunkInline(admin.TabularInline):
    """The chunks of a chunked job, every attempt's: which ran where, when, how long, how it ended."""

    model = TranscodeChunk
    extra = 0
    can_delete = False
    verbose_name_plural = "chunks (long sources are encoded in parallel)"
    fields = (
        "job_attempt",
        "kind",
        "index",
        "start_s",
        "length_s",
        "status",
        "progress",
        "attempts",
        "worker",
        "started_at",
        "wall_seconds",
        "cpu_seconds",
        "error",
    )
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(TranscodeChunk)
class TranscodeChunkAdmin(ViewOnlyAdminMixin, OwnerScopedAdminMixin, admin.ModelAdmin):
    """Chunks across jobs, for staff watching a busy transcode cluster."""

    owner_path = "job__video__owner"
    list_display = ("__str__", "status", "progress", "attempts", "worker", "started_at", "wall_seconds", "cpu_seconds")
    list_filter = ("status", "kind")
    search_fields = ("job__id", "job__video__title", "worker")
    list_select_related = ("job",)


@admin.register(TranscodeJob)
class TranscodeJobAdmin(OwnerScopedAdminMixin, admin.ModelAdmin):
    owner_path = "video__owner"
    list_display = ("id", "video", "status", "progress", "attempts", "heartbeat_at", "wall_seconds", "created_at")
    list_filter = ("status", OwnerListFilter, "created_at")
    search_fields = ("id", "video__title", "video__id", "task_id")
    date_hierarchy = "created_at"
    list_select_related = ("video",)
    readonly_fields = (
        "id",
        "video",
        "status",
        "progress",
        "attempts",
        "transient_failures",
        "not_before",
        "heartbeat_at",
        "started_at",
        "finished_at",
        "error",
        "error_code",
        "log_tail",
        "task_id",
        "dispatched_at",
        "output_prefix",
        "chunk_count",
        "wall_seconds",
        "cpu_seconds",
        "output_bytes",
        "requested_by",
        "created_at",
        "updated_at",
    )
    actions = ["cancel"]
    inlines = [TranscodeChunkInline]

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None and obj.chunks.exists() else []

    def has_add_permission(self, request):
        # Jobs are queued by transcode_request and the upload's finalization, with their video's checks.
        return False

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if user_sees_all_videos(request.user):
            return fields
        # Instructors read why their job failed in plain words; the raw error and ffmpeg's log are for staff.
        return ["error_shown" if name == "error" else name for name in fields if name not in ("log_tail", "error_code")]

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), "error_shown")

    @admin.display(description="Error")
    def error_shown(self, job: TranscodeJob) -> str:
        return job_error_for_owner(job=job)

    @admin.action(description="Cancel the selected queued or running jobs")
    def cancel(self, request, queryset):
        active = queryset.filter(status__in=TranscodeJob.ACTIVE_STATUSES)
        skipped = queryset.count() - active.count()
        if skipped:
            self.message_user(request, f"{skipped} job(s) skipped: they already ended.", messages.WARNING)
        cancel_jobs(self, request, active)


def job_error_for_owner(*, job: TranscodeJob) -> str:
    """Why a job ended, as its owner reads it: the plain reason of its code, else its error without server details."""
    plain = failure_plain(job.error_code) if job.error_code else None
    return plain if plain is not None else redact_server_details(job.error)


class TranscodeJobInline(admin.TabularInline):
    """The video's transcode jobs, newest first, read-only: what ran, how far, why it ended."""

    model = TranscodeJob
    fk_name = "video"
    extra = 0
    can_delete = False
    ordering = ("-created_at",)
    verbose_name = "transcode job"
    verbose_name_plural = "job history"
    fields = ("created_at", "status", "attempts", "progress", "wall_seconds", "requested_by", "error", "ffmpeg_log")
    readonly_fields = (*fields, "error_shown")

    def get_fields(self, request, obj=None):
        if user_sees_all_videos(request.user):
            return self.fields
        # The owner reads why in plain words; the raw error and ffmpeg's log are for staff.
        return tuple("error_shown" if name == "error" else name for name in self.fields if name != "ffmpeg_log")

    @admin.display(description="Error")
    def error_shown(self, job: TranscodeJob) -> str:
        return job_error_for_owner(job=job)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="ffmpeg log tail")
    def ffmpeg_log(self, job):
        if not job.log_tail:
            return "-"
        lines = job.log_tail.count("\n") + 1
        return format_html(
            '<details class="job-log"><summary>{} lines</summary><pre>{}</pre></details>', lines, job.log_tail
        )


class VideoAdmin(media_admin.VideoAdmin):
    """The Video admin with the latest job's column, the job history, and retry, re-transcode and cancel
    as list actions and change-page buttons; deleting a video cancels its active jobs first."""

    list_display = (
        "poster_thumbnail",
        "title",
        "watch_links",
        "status_badge",
        "transcode",
        "duration_display",
        "size_display",
        "renditions_display",
        "owner",
        "created",
    )
    readonly_fields = (
        "id",
        "status",
        "status_reason",
        "transcode",
        "hls_master_key",
        "poster_key",
        "duration",
        "max_quality",
        "duplicate_of",
        "created_at",
        "updated_at",
        "ready_at",
    )
    inlines = [*media_admin.VideoAdmin.inlines, TranscodeJobInline]
    actions = ["retry_transcode", "retranscode", "cancel_transcode"]

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/transcode/<str:operation>/",
                self.admin_site.admin_view(self.transcode_view),
                name="{}_{}_transcode".format(*info),
            ),
        ] + super().get_urls()

    def get_queryset(self, request):
        return videos_with_latest_job(
            queryset=super().get_queryset(request),
            prefix="job_",
            fields=("status", "progress", "attempts", "error", "error_code"),
        )

    @admin.display(description="job")
    def transcode(self, obj):
        """Latest job: status, progress while it runs, and why it ended otherwise."""
        return format_html('<span class="video-job" data-video-id="{}">{}</span>', obj.pk, self._job_text(obj))

    @staticmethod
    def _job_text(obj) -> str:
        status = getattr(obj, "job_status", None)
        if status is None:
            return "-"
        if status == TranscodeJob.Status.RUNNING:
            return f"running {obj.job_progress}% (attempt {obj.job_attempts})"
        if status in (TranscodeJob.Status.FAILED, TranscodeJob.Status.CANCELLED) and obj.job_error:
            # The plain reason: the list is read by owners too; staff find the raw error on the job.
            plain = failure_plain(obj.job_error_code) if obj.job_error_code else None
            return f"{status}: {plain or redact_server_details(obj.job_error)[:120]}"
        return status

    def _enqueue(self, request, videos, *, verb: str):
        queued = blocked = 0
        for video in videos:
            if video.media_file_id is None:
                self.message_user(
                    request, f"{video}: no original file to transcode (legacy URL only)", messages.WARNING
                )
                continue
            try:
                job = transcode_request(video=video, by=request.user)
            except DomainError as exc:
                self.message_user(request, f"{video}: {exc}", messages.WARNING)
                continue
            if job is None:
                blocked += 1
            else:
                queued += 1
        if queued:
            self.message_user(request, f"{verb} {queued} video(s) for transcoding.", messages.SUCCESS)
        if blocked:
            self.message_user(
                request, f"{blocked} video(s) blocked: spending is stopped (see the costs dashboard).", messages.WARNING
            )

    @admin.action(description="Retry transcoding of failed or blocked videos", permissions=["change"])
    def retry_transcode(self, request, queryset):
        skipped = queryset.exclude(status__in=[Video.Status.FAILED, Video.Status.BLOCKED]).count()
        if skipped:
            self.message_user(
                request, f"{skipped} video(s) skipped: only failed or blocked videos are retried.", messages.WARNING
            )
        self._enqueue(request, queryset.filter(status__in=[Video.Status.FAILED, Video.Status.BLOCKED]), verb="Queued")

    @admin.action(description="Re-transcode (replace the HLS output)", permissions=["change"])
    def retranscode(self, request, queryset):
        self._enqueue(request, queryset, verb="Queued")

    @admin.action(description="Cancel transcoding", permissions=["change"])
    def cancel_transcode(self, request, queryset):
        jobs = TranscodeJob.objects.filter(video__in=queryset, status__in=TranscodeJob.ACTIVE_STATUSES)
        cancel_jobs(self, request, jobs)

    TRANSCODE_OPERATIONS = {"retry": retry_transcode, "retranscode": retranscode, "cancel": cancel_transcode}

    def transcode_view(self, request, object_id, operation):
        """The change page's buttons: run one of the list actions on this video, then go back."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        action = self.TRANSCODE_OPERATIONS.get(operation)
        video = self.get_object(request, object_id)
        if action is None or video is None:
            raise Http404(f"no video {object_id} or no operation {operation!r} here")
        if not self.has_change_permission(request, video):
            raise PermissionDenied
        action(self, request, self.get_queryset(request).filter(pk=video.pk))
        return HttpResponseRedirect(reverse("admin:media_library_video_change", args=[video.pk]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """Add the transcode buttons that make sense for the video's state to the change page."""
        extra_context = dict(extra_context or {})
        video = self.get_object(request, object_id)
        if video is not None:
            extra_context["transcode_operations"] = self._operations_for(video)
        return super().change_view(request, object_id, form_url, extra_context)

    @staticmethod
    def _operations_for(video) -> list[tuple[str, str]]:
        """The buttons that make sense for the video's state: (operation, label)."""
        if video.media_file_id is None:
            return []
        operations = []
        if video.status in (Video.Status.FAILED, Video.Status.BLOCKED):
            operations.append(("retry", "Retry transcoding"))
        if video.status in (Video.Status.QUEUED, Video.Status.PROCESSING):
            operations.append(("cancel", "Cancel transcoding"))
        else:
            operations.append(("retranscode", "Re-transcode"))
        return operations

    def delete_model(self, request, obj):
        video_delete(video=obj, deleted_by=request.user)

    def delete_queryset(self, request, queryset):
        for video in queryset:
            video_delete(video=video, deleted_by=request.user)


admin.site.unregister(Video)
admin.site.register(Video, VideoAdmin)


@admin.register(CostLogEntry)
class CostLogEntryAdmin(admin.ModelAdmin):
    list_display = ("date", "kind", "quantity", "unit", "unit_price_usd", "amount_usd", "is_estimate", "video", "owner")
    list_filter = ("kind", "is_estimate", "date")
    search_fields = ("note", "video__title", "owner__username")
    date_hierarchy = "date"
    list_select_related = ("video", "owner")
    readonly_fields = (
        "date",
        "kind",
        "quantity",
        "unit",
        "unit_price_usd",
        "amount_usd",
        "is_estimate",
        "video",
        "job",
        "owner",
        "note",
        "created_at",
    )
    fields = readonly_fields

    @admin.display(description="unit price", ordering="unit_price")
    def unit_price_usd(self, entry: CostLogEntry) -> str:
        return format_usd(entry.unit_price)

    @admin.display(description="amount", ordering="amount")
    def amount_usd(self, entry: CostLogEntry) -> str:
        return format_usd(entry.amount)

    def has_add_permission(self, request):
        # The ledger is written by the cost runs and the pipeline; a hand-made line would invent spend.
        return False


@admin.register(BudgetPolicy)
class BudgetPolicyAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "monthly_budget",
        "kill_switch_engaged",
        "kill_switch_by",
        "kill_switch_at",
        "auto_engage",
    )
    # The switch changes only through the dashboard's button, which alerts and requeues.
    readonly_fields = (
        "kill_switch_engaged",
        "kill_switch_reason",
        "kill_switch_by",
        "kill_switch_at",
        "kill_switch_auto",
        "updated_at",
    )

    @admin.display(description="monthly budget", ordering="monthly_budget_usd")
    def monthly_budget(self, policy: BudgetPolicy) -> str:
        return format_usd(policy.monthly_budget_usd)

    def has_add_permission(self, request):
        return super().has_add_permission(request) and not BudgetPolicy.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        """Through ``budget_update``, as the API's PATCH: the new values are checked against the month's
        spend at once (alerts; the kill switch engaged, or released when the rules engaged it)."""
        budget.budget_update(
            by=request.user,
            monthly_budget_usd=obj.monthly_budget_usd,
            auto_engage=obj.auto_engage,
            auto_engage_on_forecast=obj.auto_engage_on_forecast,
            spike_threshold_pct=obj.spike_threshold_pct,
        )
        obj.refresh_from_db()


@admin.register(CostAlert)
class CostAlertAdmin(admin.ModelAdmin):
    list_display = ("created_at", "kind", "period", "subject", "actor", "acknowledged_at")
    list_filter = ("kind", "created_at")
    search_fields = ("subject", "message", "period")
    date_hierarchy = "created_at"
    readonly_fields = (
        "kind",
        "period",
        "subject",
        "message",
        "actor",
        "created_at",
        "acknowledged_at",
        "acknowledged_by",
    )

    def has_add_permission(self, request):
        return False


class KillSwitchForm(forms.Form):
    action = forms.ChoiceField(choices=[("engage", "Engage"), ("release", "Release")])
    reason = forms.CharField(max_length=1000, required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}))

    def clean(self):
        data = super().clean()
        assert data is not None  # forms.Form.clean returns cleaned_data
        if data.get("action") == "engage" and not (data.get("reason") or "").strip():
            raise forms.ValidationError(
                "Give a reason to engage the kill switch: it is mailed to the admins and kept in the history."
            )
        return data


class BudgetForm(forms.Form):
    """The dashboard's budget field; saving goes through ``budget_update`` as the admin form and the API do."""

    monthly_budget_usd = forms.DecimalField(
        max_digits=12,
        decimal_places=2,
        min_value=0,
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0", "aria-describedby": "budget-help"}),
    )


class _Echo:
    """A file-like object whose write returns the line, for streaming csv.writer output."""

    def write(self, value):
        return value


@admin.register(CostDashboard)
class CostDashboardAdmin(ViewOnlyAdminMixin, admin.ModelAdmin):
    """The staff costs dashboard, listed in the admin index as "Costs dashboard"."""

    def has_view_permission(self, request, obj=None):
        return user_can_view_costs(user=request.user)

    def get_urls(self):
        app_label, model_name = self.opts.app_label, self.opts.model_name
        return [
            path("export.csv", self.admin_site.admin_view(self.export_view), name=f"{app_label}_{model_name}_export"),
            path(
                "kill-switch/",
                self.admin_site.admin_view(self.kill_switch_view),
                name=f"{app_label}_{model_name}_kill_switch",
            ),
            path("budget/", self.admin_site.admin_view(self.budget_view), name=f"{app_label}_{model_name}_budget"),
            path(
                "acknowledge/",
                self.admin_site.admin_view(self.acknowledge_view),
                name=f"{app_label}_{model_name}_acknowledge",
            ),
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
        return self._dashboard(request)

    def _dashboard(self, request, *, budget_form: BudgetForm | None = None, status_code: int = 200):
        """The dashboard page; ``budget_form`` is a refused budget form to show with its errors."""
        if not user_can_view_costs(user=request.user):
            raise PermissionDenied
        today = timezone.localdate()
        month = self._month(request)
        start, end = pricing.month_bounds(month)
        status = budget_status(day=today)
        chart_days = cost_selectors.cost_daily_by_kind(start=today - timedelta(days=89), end=today)
        totals = cost_selectors.cost_totals_by_kind(start=start, end=end)
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
            "chart_svg": mark_safe(
                charts.stacked_daily_svg(
                    chart_days, kinds=cost_selectors.KINDS, title="Daily spend by kind, last 90 days (USD)"
                )
            ),
            "top_videos": cost_selectors.cost_top_videos(start=start, end=end),
            "top_users": cost_selectors.cost_top_users(start=start, end=end),
            "history": cost_selectors.kill_switch_history(),
            "alerts": cost_selectors.cost_alerts_unacknowledged(limit=20),
            "blocked_count": Video.objects.filter(status=Video.Status.BLOCKED).count(),
            "can_manage": user_can_manage_budget(user=request.user),
            "form": KillSwitchForm(initial={"action": "release" if status.policy.kill_switch_engaged else "engage"}),
            "budget_form": budget_form
            or BudgetForm(initial={"monthly_budget_usd": status.policy.monthly_budget_usd}, auto_id="budget_%s"),
        }
        return TemplateResponse(request, "admin/transcoding/costs_dashboard.html", context, status=status_code)

    def budget_view(self, request):
        """Set the monthly budget from the dashboard; the rules apply at once (``budget_update``)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not user_can_manage_budget(user=request.user):
            raise PermissionDenied
        form = BudgetForm(request.POST, auto_id="budget_%s")
        if not form.is_valid():
            return self._dashboard(request, budget_form=form, status_code=400)
        try:
            policy = budget.budget_update(by=request.user, monthly_budget_usd=form.cleaned_data["monthly_budget_usd"])
        except DomainError as exc:
            form.add_error("monthly_budget_usd", exc.message)
            return self._dashboard(request, budget_form=form, status_code=400)
        state = "engaged" if policy.kill_switch_engaged else "released"
        messages.success(
            request, f"Monthly budget set to {format_usd(policy.monthly_budget_usd)}. The kill switch is {state}."
        )
        return HttpResponseRedirect(reverse("admin:transcoding_costdashboard_changelist"))

    def kill_switch_view(self, request):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not user_can_manage_budget(user=request.user):
            raise PermissionDenied
        form = KillSwitchForm(request.POST)
        if not form.is_valid():
            for error in form.errors.get("__all__", []) + form.errors.get("action", []):
                messages.error(request, str(error))
        else:
            reason = form.cleaned_data["reason"].strip()
            try:
                if form.cleaned_data["action"] == "engage":
                    budget.budget_engage_kill_switch(by=request.user, reason=reason)
                    messages.success(request, "Kill switch engaged: no transcode starts until it is released.")
                else:
                    budget.budget_release_kill_switch(by=request.user, reason=reason)
                    messages.success(request, "Kill switch released: blocked videos are requeued.")
            except DomainError as exc:
                messages.error(request, exc.message)
        return HttpResponseRedirect(reverse("admin:transcoding_costdashboard_changelist"))

    def acknowledge_view(self, request):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not user_can_view_costs(user=request.user):
            raise PermissionDenied
        count = budget.cost_alerts_acknowledge(by=request.user)
        messages.success(request, f"{count} alerts acknowledged.")
        return HttpResponseRedirect(request.POST.get("next") or reverse("admin:transcoding_costdashboard_changelist"))

    def export_view(self, request):
        if not user_can_view_costs(user=request.user):
            raise PermissionDenied
        month = self._month(request)
        start, end = pricing.month_bounds(month)
        rows = (
            cost_selectors.cost_entries_between(start=start, end=end)
            .order_by("date", "id")
            .values_list(
                "date",
                "kind",
                "quantity",
                "unit",
                "unit_price",
                "amount",
                "is_estimate",
                "video_id",
                "job_id",
                "owner__username",
                "note",
            )
        )
        writer = csv.writer(_Echo())
        header = [
            "date",
            "kind",
            "quantity",
            "unit",
            "unit_price_usd",
            "amount_usd",
            "is_estimate",
            "video_id",
            "job_id",
            "owner",
            "note",
        ]
        lines = itertools.chain([writer.writerow(header)], (writer.writerow(row) for row in rows.iterator()))
        response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="costs-{month:%Y-%m}.csv"'
        return response
