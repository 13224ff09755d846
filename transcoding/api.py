"""The transcoding API: retranscoding and job fields on the videos API, and the staff costs API (budget, kill switch, monthly summaries)."""

from __future__ import annotations

from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from media_library import api as media_api
from transcoding.costs import pricing
from transcoding.costs.budget import budget_engage_kill_switch, budget_release_kill_switch, budget_update
from transcoding.costs.selectors import (
    KINDS,
    budget_representation,
    cost_daily_by_kind,
    cost_totals_by_kind,
    user_can_manage_budget,
    user_can_view_costs,
)
from transcoding.costs.serializers import BudgetSerializer, money_field
from transcoding.serializers import RetranscodeSerializer, VideoSerializer, videos_for_representation
from transcoding.services.jobs import transcode_request
from transcoding.services.videos import video_delete
from unpuzzle.exceptions import DomainError
from unpuzzle.openapi import ErrorSerializer


# No docstring of its own: the OpenAPI descriptions stay those of the videos API it extends.
class VideoViewSet(media_api.VideoViewSet):
    serializer_class = VideoSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "playback":
            return queryset
        return videos_for_representation(queryset=queryset)

    def perform_destroy(self, instance):
        video_delete(video=instance, deleted_by=self.request.user)

    @extend_schema(
        summary="Transcode the video again",
        description=(
            "Staff who manage all videos may transcode any video again. An owner may retry their own video while "
            "it has nothing to play (failed, cancelled or blocked); re-transcoding a video that plays spends budget "
            "for the same lecture, so owners get 403 for it. Idempotent while a job is active; job_id is null when "
            "the kill switch or budget blocks it."
        ),
        request=None,
        responses={
            202: RetranscodeSerializer,
            409: OpenApiResponse(ErrorSerializer, "The video has no original file to transcode (a legacy URL only)"),
        },
    )
    @action(detail=True, methods=["post"])
    def retranscode(self, request, pk=None):
        video = self.get_object()
        job = transcode_request(video=video, by=request.user)
        video.refresh_from_db(fields=["status", "status_reason"])
        body = {"video_status": video.status, "status_reason": video.status_reason, "job_id": job.id if job else None}
        return Response(RetranscodeSerializer(body).data, status=status.HTTP_202_ACCEPTED)


class CanViewCosts(BasePermission):
    """Staff with ``transcoding.view_costs``; writes also need ``transcoding.manage_budget``."""

    message = (
        "costs are visible to staff with the transcoding.view_costs permission (changes need transcoding.manage_budget)"
    )

    def has_permission(self, request, view) -> bool:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return user_can_view_costs(user=request.user)
        return user_can_manage_budget(user=request.user)


class CostsRootView(APIView):
    """Links to the costs endpoints."""

    permission_classes = [CanViewCosts]

    @extend_schema(
        responses=inline_serializer("CostsRoot", {"budget": serializers.URLField(), "summary": serializers.URLField()})
    )
    def get(self, request):
        return Response(
            {
                "budget": request.build_absolute_uri(reverse("costs-budget")),
                "summary": request.build_absolute_uri(reverse("costs-summary")),
            }
        )


class BudgetView(APIView):
    """The monthly budget, spend so far, forecast and the kill switch."""

    permission_classes = [CanViewCosts]

    @extend_schema(responses=BudgetSerializer)
    def get(self, request):
        return Response(BudgetSerializer(budget_representation()).data)

    @extend_schema(
        request=BudgetSerializer,
        responses={
            200: BudgetSerializer,
            409: OpenApiResponse(
                ErrorSerializer, "The switch cannot be released while the rules would engage it again at once"
            ),
        },
        examples=[
            OpenApiExample(
                "Engage",
                value={"kill_switch_engaged": True, "kill_switch_reason": "runaway uploads"},
                request_only=True,
            ),
            OpenApiExample(
                "Raise budget and release",
                value={"monthly_budget_usd": "250.00", "kill_switch_engaged": False},
                request_only=True,
            ),
        ],
    )
    def patch(self, request):
        serializer = BudgetSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        budget_update(
            by=request.user,
            monthly_budget_usd=data.get("monthly_budget_usd"),
            auto_engage=data.get("auto_engage"),
            auto_engage_on_forecast=data.get("auto_engage_on_forecast"),
            spike_threshold_pct=data.get("spike_threshold_pct"),
        )
        if data.get("kill_switch_engaged") is True:
            reason = data.get("kill_switch_reason", "").strip()
            if not reason:
                raise DomainError(
                    "kill_switch_reason is required to engage the kill switch: say why spending stops",
                    code="reason_required",
                )
            budget_engage_kill_switch(by=request.user, reason=reason)
        elif data.get("kill_switch_engaged") is False:
            budget_release_kill_switch(by=request.user, reason=data.get("kill_switch_reason", ""))
        return Response(BudgetSerializer(budget_representation()).data)


class KindTotalsSerializer(serializers.Serializer):
    storage = money_field()
    egress = money_field()
    transcode = money_field()
    requests = money_field()


class DaySerializer(serializers.Serializer):
    date = serializers.DateField()
    total_usd = money_field()
    by_kind = KindTotalsSerializer()


class SummarySerializer(serializers.Serializer):
    month = serializers.CharField()
    start = serializers.DateField()
    end = serializers.DateField()
    total_usd = money_field()
    by_kind = KindTotalsSerializer()
    by_day = DaySerializer(many=True)


class SummaryView(APIView):
    """Spend of one month: totals by kind and by day."""

    permission_classes = [CanViewCosts]

    @extend_schema(
        parameters=[OpenApiParameter("month", OpenApiTypes.STR, description="YYYY-MM; the current month when omitted")],
        responses=SummarySerializer,
    )
    def get(self, request):
        raw = request.query_params.get("month")
        try:
            first = pricing.parse_month(raw) if raw is not None else timezone.localdate().replace(day=1)
        except ValueError as exc:
            raise DomainError(str(exc), code="invalid_month") from exc
        start, end = pricing.month_bounds(first)
        by_kind = cost_totals_by_kind(start=start, end=end)
        by_day = [
            {"date": day, "total_usd": sum(amounts.values()), "by_kind": amounts}
            for day, amounts in cost_daily_by_kind(start=start, end=end)
        ]
        payload = {
            "month": first.strftime("%Y-%m"),
            "start": start,
            "end": end,
            "total_usd": sum(by_kind[kind] for kind in KINDS),
            "by_kind": by_kind,
            "by_day": by_day,
        }
        return Response(SummarySerializer(payload).data)
