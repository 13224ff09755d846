"""API routes of this app, mounted under /api/v1/."""

from django.urls import path, re_path

from uploads.api.direct import (
    DirectUploadCollectionView,
    DirectUploadCompleteView,
    DirectUploadDetailView,
    DirectUploadPartsView,
)
from uploads.api.tus import UploadCollectionView, UploadDetailView

urlpatterns = [
    path("uploads/", UploadCollectionView.as_view(), name="uploads-list"),
    # Ids are parsed by the view, so a malformed id still gets a tus-style 404.
    re_path(r"^uploads/(?P<pk>[^/]+)/?$", UploadDetailView.as_view(), name="uploads-detail"),
    path("direct-uploads/", DirectUploadCollectionView.as_view(), name="direct-uploads-list"),
    path("direct-uploads/<str:pk>/", DirectUploadDetailView.as_view(), name="direct-uploads-detail"),
    path("direct-uploads/<str:pk>/parts/", DirectUploadPartsView.as_view(), name="direct-uploads-parts"),
    path("direct-uploads/<str:pk>/complete/", DirectUploadCompleteView.as_view(), name="direct-uploads-complete"),
]
