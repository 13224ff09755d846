"""The plain failure reasons owners read (unpuzzle.failures): one per cause, each saying what to do."""

from __future__ import annotations

import re

import pytest

from transcoding.ffmpeg.probe import ProbeError
from unpuzzle.failures import failure_codes, failure_for, failure_plain, failure_retryable

# Words of ffmpeg, ffprobe and the server that an instructor should never have to read.
TECHNICAL = re.compile(r"ffmpeg|ffprobe|moov|@ 0x|exit(ed)? with code|Traceback|OSError|/tmp/|/var/", re.IGNORECASE)

# The ProbeError reasons the probe documents (transcoding/ffmpeg/probe.py).
PROBE_REASONS = (
    "not_video audio_only no_video unsupported truncated corrupt empty timeout unreadable too_large implausible".split()
)


@pytest.mark.parametrize(
    ("code", "words", "retryable"),
    [
        ("not_video", "We could not read this file as a video. Re-export it as MP4 (H.264 video, AAC audio)", False),
        ("truncated", "The file is incomplete (truncated): upload it again from the original.", False),
        ("corrupt", "The file is damaged", False),
        ("audio_only", "sound but no picture", False),
        ("empty", "The file is empty", False),
        ("encode_failed", "Processing failed on our side. Retry; if it fails again, contact staff.", True),
        ("server_error", "Processing failed on our side. Retry; if it fails again, contact staff.", True),
        ("worker_lost", "Retry; if it fails again, contact staff.", True),
        ("bytes_missing", "Retry to upload it again.", True),
        ("size_mismatch", "The upload arrived incomplete. Retry to upload it again.", True),
        ("original_missing", "Upload the video again.", False),
    ],
)
def test_each_cause_reads_as_a_plain_reason_with_what_to_do(code, words, retryable):
    failure = failure_for(code)
    assert words in failure.message
    assert failure.code == code and failure.retryable is retryable
    assert failure_retryable(code) is retryable


@pytest.mark.parametrize("reason", PROBE_REASONS)
def test_every_probe_reason_has_its_own_plain_reason(reason):
    assert reason in failure_codes()
    message = failure_for(reason, detail="the video is 3 h long, more than the 2 h accepted").message
    assert message[0].isupper() and message.endswith(".")
    assert not TECHNICAL.search(message), message


def test_limits_name_the_limit_and_server_details_never_reach_the_owner():
    too_long = failure_for("too_large", detail="the video is 3 h long, more than the 2 h accepted.")
    assert too_long.message == "This video is over the limits: the video is 3 h long, more than the 2 h accepted."
    assert too_long.retryable is False
    timeout = failure_for("transcode_timeout", detail="6 h")
    assert timeout.message.startswith("Processing took longer than the 6 h allowed and was stopped.")
    leaked = failure_for("over_cost_ceiling", detail="about $9 for /srv/unpuzzle/var/work/a.mp4")
    assert "/srv" not in leaked.message and "<server file>" in leaked.message


def test_an_unknown_code_reads_as_a_failure_on_our_side():
    failure = failure_for("something_new")
    assert failure.code == "server_error" and failure.retryable
    assert failure_retryable("") is False


def test_reasons_that_need_a_detail_are_not_shown_without_one():
    assert failure_plain("cancelled") is None
    assert failure_plain("encode_failed") == failure_for("encode_failed").message


def test_probe_errors_carry_reasons_the_mapping_knows():
    # A ProbeError the probe raises for a limit keeps its plain message as the detail.
    error = ProbeError("the picture is 8000x8000, more than accepted", reason="too_large")
    assert failure_for(error.reason, detail=str(error)).message.endswith("more than accepted.")
