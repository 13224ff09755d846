"""The event types endpoints can subscribe to; no Django here."""

from __future__ import annotations

EVENT_TYPES: dict[str, str] = {
    "upload.completed": "An upload became a video (finalized); data: the upload as the uploads API shows it",
    "upload.failed": "An upload failed (not a playable video, size mismatch, ...); data: the upload",
    "video.ready": "A video can be played (transcoded, or back to its previous output); data: the video",
    "video.failed": "Transcoding a video failed and it has nothing to play; data: the video",
    "video.blocked": "A video waits because spending is stopped (kill switch, budget); data: the video",
    "video.deleted": "A video was deleted; data: the video just before deletion",
    "budget.alert": "A cost alert was raised (80%/100% of budget, forecast, spike); data: the alert and the budget",
    "budget.kill_switch.engaged": "Transcoding was stopped; data: the alert and the budget",
    "budget.kill_switch.released": "Transcoding was allowed again; data: the alert and the budget",
}
# Sent only by the admin's "send test event", whatever the endpoint subscribed to.
TEST_EVENT_TYPE = "webhook.test"
