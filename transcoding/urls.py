"""API routes of this app, mounted under /api/v1/."""

from django.urls import path

from transcoding.api import BudgetView, CostsRootView, SummaryView

urlpatterns: list = [
    path("costs/", CostsRootView.as_view(), name="costs-root"),
    path("costs/budget/", BudgetView.as_view(), name="costs-budget"),
    path("costs/summary/", SummaryView.as_view(), name="costs-summary"),
]
