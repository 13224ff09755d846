"""Standard Webhooks signatures and secrets (https://www.standardwebhooks.com/); no Django here.

A secret is ``whsec_`` + base64 of random bytes; the HMAC key is those bytes. The signature of
a message is ``v1,`` + base64 of HMAC-SHA256 over ``"<webhook-id>.<webhook-timestamp>.<body>"``;
several signatures (a rotated secret and its predecessor) are joined by spaces in one header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def secret_generate() -> str:
    """A new endpoint secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key a secret stands for (the base64-decoded part after ``whsec_``)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    return base64.b64decode(encoded + "=" * (-len(encoded) % 4))


def signature(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64 HMAC-SHA256>`` signature of ``body`` sent as ``msg_id`` at ``timestamp`` (Unix seconds)."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(*, secrets_in_use: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per secret, space-separated."""
    return " ".join(
        signature(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body) for secret in secrets_in_use
    )


def webhook_headers(*, secrets_in_use: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one delivery attempt, plus its content type."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(
            secrets_in_use=secrets_in_use, msg_id=msg_id, timestamp=timestamp, body=body
        ),
    }
