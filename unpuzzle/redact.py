"""Take server details out of messages people other than staff read: absolute paths on the
server and URLs (storage endpoints, bucket names) become placeholders. Staff keep the raw text
in the job's ``error`` and ``log_tail`` and in the logs."""

from __future__ import annotations

import re

_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE)
# An absolute path of two or more parts ("/var/lib/x", "/tmp/a.mp4"); not "1/2" or "and/or".
_PATH = re.compile(r"(?<![\w.~/-])/(?:[^\s'\"<>/:]+/)+[^\s'\"<>/:,;)]*")


def redact_server_details(text: str) -> str:
    """``text`` with URLs replaced by ``<storage URL>`` and absolute paths by ``<server file>``."""
    return _PATH.sub("<server file>", _URL.sub("<storage URL>", text))
