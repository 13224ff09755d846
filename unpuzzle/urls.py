from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from media_library.views import video_player
from transcoding.api import VideoViewSet
from unpuzzle.api import ApiRootView, MeView, TokenView
from unpuzzle.forms import ThrottledAdminAuthenticationForm, ThrottledAuthenticationForm
from unpuzzle.health import healthz
from unpuzzle.webhooks.api import WebhookEndpointViewSet

# The videos API of media_library with what transcoding adds (retranscode, job fields, cost estimate).
videos = SimpleRouter()
videos.register("videos", VideoViewSet, basename="video")
webhooks = SimpleRouter()
webhooks.register("webhooks", WebhookEndpointViewSet, basename="webhook")

api_v1 = [
    path("", ApiRootView.as_view(), name="api-root"),
    path("me/", MeView.as_view(), name="api-me"),
    path("auth/token/", TokenView.as_view(), name="api-token"),
    path("", include("uploads.urls")),
    path("", include("media_library.urls")),
    *videos.urls,
    path("", include("transcoding.urls")),
    *webhooks.urls,
]

# Both sign-in forms count failed sign-ins per username and per address (unpuzzle.sign_in).
admin.site.login_form = ThrottledAdminAuthenticationForm
# No public site to view: learners open each video's player page (/videos/<id>/), linked from the video list.
admin.site.site_url = None

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("healthz", healthz, name="healthz"),
    path("accounts/login/", LoginView.as_view(authentication_form=ThrottledAuthenticationForm), name="login"),
    path("videos/<uuid:video_id>/", video_player, name="video-player"),
]

handler404 = "unpuzzle.api.not_found"
