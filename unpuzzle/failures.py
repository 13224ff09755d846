"""Why an upload or a transcode failed, in words an instructor can act on.

Services record a failure as a machine code (``ProbeError.reason`` for files the probe
refuses, the pipeline's own codes for transcodes) and store the plain reason this module
gives for it; the raw text (ffmpeg's words, server details) stays for staff in the
job's ``error``/``log_tail``, the upload's ``error_detail`` and the logs. ``retryable``
says whether trying the same thing again can help (a failure on our side, a lost upload),
as opposed to a file the owner must change first.
"""

from __future__ import annotations

import dataclasses

from unpuzzle.redact import redact_server_details

REEXPORT = "Re-export it as MP4 (H.264 video, AAC audio) and upload it again."
RETRY_THEN_STAFF = "Retry; if it fails again, contact staff."


@dataclasses.dataclass(frozen=True)
class Failure:
    """A failure as owners see it: ``code`` for programs, ``message`` for people."""

    code: str
    message: str
    retryable: bool


# code -> (plain reason, whether retrying the same file can help). "{detail}" takes the
# cause's own plain words where they name a limit (size, duration, cost ceiling).
_REASONS: dict[str, tuple[str, bool]] = {
    # the probe's verdicts on an upload or an original (transcoding.ffmpeg.probe.ProbeError.reason)
    "not_video": (f"We could not read this file as a video. {REEXPORT}", False),
    "no_video": (f"This file has no video picture in it. {REEXPORT}", False),
    "audio_only": (
        "This file has sound but no picture. Upload a video file (for example MP4 with H.264 video).",
        False,
    ),
    "unsupported": (f"This kind of video file is not accepted. {REEXPORT}", False),
    "truncated": ("The file is incomplete (truncated): upload it again from the original.", False),
    "corrupt": (f"The file is damaged: parts of it cannot be read. {REEXPORT}", False),
    "implausible": (f"The file's timing information is damaged. {REEXPORT}", False),
    "empty": ("The file is empty. Choose the video file itself and upload it again.", False),
    "unreadable": (f"We could not read this file. {RETRY_THEN_STAFF}", True),
    "timeout": (f"Checking the file took too long. {RETRY_THEN_STAFF}", True),
    "too_large": ("This video is over the limits: {detail}.", False),
    # finalization of an upload
    "format_not_accepted": ("This kind of video file is not accepted: {detail}. " + REEXPORT, False),
    "over_cost_ceiling": ("This video is too long to convert: {detail}.", False),
    "size_mismatch": ("The upload arrived incomplete. Retry to upload it again.", True),
    "bytes_missing": ("The uploaded file was lost on our side. Retry to upload it again.", True),
    "storage_unavailable": ("Our storage cannot be reached right now; the upload is kept and finished later.", False),
    # transcoding
    "encode_failed": (f"Processing failed on our side. {RETRY_THEN_STAFF}", True),
    "transcode_timeout": (
        f"Processing took longer than the {{detail}} allowed and was stopped. {RETRY_THEN_STAFF}",
        True,
    ),
    "original_missing": ("The original file is missing on our side. Upload the video again.", False),
    "server_error": (f"Processing failed on our side. {RETRY_THEN_STAFF}", True),
    "worker_lost": (f"Processing stopped on our side. {RETRY_THEN_STAFF}", True),
    "cancelled": ("Processing was cancelled by {detail}. Retry to process it again.", True),
    "retrying": ("Processing hit a temporary problem on our side; it tries again on its own in {detail}.", False),
}
UNKNOWN = "server_error"


def failure_for(code: str, *, detail: str = "") -> Failure:
    """The plain failure for ``code`` (an unknown code reads as a failure on our side).

    ``detail`` fills the reasons that name a limit or a person; it is already written for
    people (e.g. ``transcode_ceiling_reason``), and server paths and URLs are taken out of it.
    """
    if code not in _REASONS:
        code = UNKNOWN
    template, retryable = _REASONS[code]
    detail = redact_server_details(detail).strip().rstrip(".")
    message = template.replace("{detail}", detail) if "{detail}" in template else template
    return Failure(code=code, message=message[:1].upper() + message[1:], retryable=retryable)


def failure_plain(code: str) -> str | None:
    """The plain reason for ``code`` when it needs no detail (a limit, a person), else None."""
    template = _REASONS.get(code, _REASONS[UNKNOWN])[0]
    return None if "{detail}" in template else failure_for(code).message


def failure_retryable(code: str) -> bool:
    """Whether trying again can help a failure recorded with ``code`` ("" = no failure: False)."""
    return bool(code) and _REASONS.get(code, _REASONS[UNKNOWN])[1]


def failure_codes() -> list[str]:
    """Every code a failure may be recorded with (for the API documentation and its tests)."""
    return list(_REASONS)
