"""The admin's "Upload videos" page: resumable tus uploads from the browser (tus-js-client).

The page uploads through the same tus endpoint as API clients, with the admin session and
its CSRF token, and follows each upload to its video through the JSON APIs (after a reload
too: it rebuilds the rows of uploads and videos still processing from them). A failed row
shows the plain reason and offers Retry where it can help (send the file again, or POST
``retranscode/``).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.middleware.csrf import get_token
from django.template.response import TemplateResponse
from django.urls import reverse

from media_library.models import Video
from uploads.services.admission import UPLOAD_PERMISSION, max_upload_bytes

# Stands in for an id in URL templates the page's script fills in.
URL_ID_PLACEHOLDER = uuid.UUID(int=0)
# Milliseconds tus-js-client waits before each retry of a failed request (a dropped connection, a 5xx).
RETRY_DELAYS_MS = [0, 1000, 3000, 5000, 10000, 20000]


def upload_page(request, *, admin_site):
    """Render the upload page for staff allowed to upload (``uploads.add_uploadsession``)."""
    if not request.user.has_perm(UPLOAD_PERMISSION):
        raise PermissionDenied
    config = {
        "endpoint": reverse("uploads-list"),
        "uploadUrl": reverse("uploads-detail", kwargs={"pk": URL_ID_PLACEHOLDER}),
        "videoApiUrl": reverse("video-detail", args=[URL_ID_PLACEHOLDER]),
        "videoListUrl": reverse("video-list"),
        "retranscodeUrl": reverse("video-retranscode", args=[URL_ID_PLACEHOLDER]),
        "playerUrl": reverse("video-player", args=[URL_ID_PLACEHOLDER]),
        "changeUrl": reverse("admin:media_library_video_change", args=[URL_ID_PLACEHOLDER]),
        "placeholder": str(URL_ID_PLACEHOLDER),
        "csrfToken": get_token(request),
        "maxBytes": max_upload_bytes(),
        "maxSizeMb": settings.MAX_VIDEO_SIZE_MB,
        "allowedFormats": list(settings.ALLOWED_VIDEO_FORMATS),
        "chunkSize": settings.CHUNK_SIZE_MB * 1024 * 1024,
        "retryDelays": RETRY_DELAYS_MS,
        "userId": request.user.pk,
        "username": request.user.get_username(),
    }
    opts = Video._meta
    context = {
        **admin_site.each_context(request),
        "title": "Upload videos",
        "opts": opts,
        "app_label": opts.app_label,
        "upload_config": config,
        "accept": ",".join(f".{ext}" for ext in settings.ALLOWED_VIDEO_FORMATS) + ",video/*",
    }
    return TemplateResponse(request, "admin/uploads/upload.html", context)
