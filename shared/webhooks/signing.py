"""Standard Webhooks signatures (https://www.standardwebhooks.com) for outgoing deliveries.

The HMAC itself comes from the ``standardwebhooks`` package so that receivers using any Standard Webhooks
library verify exactly what we sign.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from math import floor

from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24


def new_secret() -> str:
    """A fresh signing secret: ``"whsec_"`` followed by 24 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode("ascii")


def signature_headers(secrets: Sequence[str], msg_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    """The ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers for one message.

    Each secret contributes one ``v1,<base64>`` signature, space-separated, so that during a secret
    rotation's grace period receivers holding either the new or the old secret can verify. ``timestamp``
    must be timezone-aware. Raises ``ValueError`` when no secret is given or a secret is empty.
    """
    if not secrets:
        raise ValueError("at least one signing secret is required")
    if not msg_id or any(ord(char) <= 0x20 or ord(char) == 0x7F for char in msg_id):
        raise ValueError("msg_id must be non-empty and free of spaces and control characters")
    if timestamp.tzinfo is None or timestamp.utcoffset() is None:
        # Webhook.sign() stamps UTC onto the datetime with replace(), so a naive or non-UTC value would be
        # signed as a different instant than the one in the header; require an aware one and convert.
        raise ValueError("timestamp must be timezone-aware")
    utc_timestamp = timestamp.astimezone(UTC)
    signatures = []
    for secret in secrets:
        try:
            signatures.append(Webhook(secret).sign(msg_id, utc_timestamp, body))
        except EmptyWebhookSecretError:
            raise ValueError("webhook secret must not be empty") from None
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(floor(utc_timestamp.timestamp())),
        "webhook-signature": " ".join(signatures),
    }
