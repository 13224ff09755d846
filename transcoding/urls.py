"""API routes of this app, mounted under /api/v1/."""
from django.urls import path

from transcoding.api import BudgetView, SummaryView

urlpatterns: list = [
    path("costs/budget/", BudgetView.as_view(), name="costs-budget"),
    path("costs/summary/", SummaryView.as_view(), name="costs-summary"),
]
