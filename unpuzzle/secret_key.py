"""The SECRET_KEY when none is configured: generated once per deployment, kept in its VAR_DIR.

No Django imports: settings call this before Django is set up.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

MIN_LENGTH = 50


def secret_key_problem(key: str) -> str:
    """Why ``key`` must not sign anything in production, or "" when it may."""
    if key.startswith("django-insecure-") or len(key) < MIN_LENGTH:
        return (
            f"SECRET_KEY is public or shorter than {MIN_LENGTH} characters: anyone could forge playback "
            "tokens and sessions with it. Unset it (a key is then generated into VAR_DIR) or set a long "
            'random one (python -c "import secrets; print(secrets.token_urlsafe(50))")'
        )
    return ""


def secret_key_load_or_create(path: Path) -> str:
    """The key stored at ``path`` (mode 0600), created there on first use; safe when several
    processes of the deployment start at once (exactly one writes it, the others read it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process may be writing it right now: wait for a whole key.
        for _ in range(50):
            key = path.read_text().strip()
            if len(key) >= MIN_LENGTH:
                return key
            time.sleep(0.1)
        raise RuntimeError(f"{path} holds no usable SECRET_KEY; delete it to have a new one generated") from None
    key = secrets.token_urlsafe(MIN_LENGTH)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key
