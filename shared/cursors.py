"""Opaque, tamper-evident page cursors.

A cursor names the last row of a page by its keyset position ``(created_at, id)``,
signed with an HMAC derived from the deployment's secret keys: a client can hand it
back, but not forge or edit one, so a cursor that is not ours is refused (422), never
turned into a query.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import UTC, datetime

from shared.config import Settings
from shared.errors import InvalidInput
from shared.secrets import DEVELOPMENT_KEY, secret_keys

_PURPOSE = b"zaphub/cursor/v1"
_MAC_BYTES = 16
_MAX_CHARS = 200


def _macs(settings: Settings, payload: bytes) -> list[bytes]:
    # Every configured key verifies (a rotation keeps old cursors valid); the first signs.
    keys = secret_keys(settings) or [DEVELOPMENT_KEY]
    derived = [hmac.new(key.encode(), _PURPOSE, hashlib.sha256).digest() for key in keys]
    return [hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES] for key in derived]


def encode_cursor(settings: Settings, created_at: datetime, row_id: str) -> str:
    """The cursor of a row at ``(created_at, row_id)``."""
    moment = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
    payload = f"{moment.astimezone(UTC).isoformat()}|{row_id}".encode()
    token = payload + _macs(settings, payload)[0]
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def decode_cursor(settings: Settings, cursor: str, field: str = "before") -> tuple[datetime, str]:
    """The ``(created_at, id)`` a cursor of ours names, or :class:`InvalidInput` naming ``field``."""
    invalid = InvalidInput(field, f"{field} is not a cursor given by this API", location="query")
    if not isinstance(cursor, str) or not cursor or len(cursor) > _MAX_CHARS:
        raise invalid
    try:
        token = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise invalid from None
    payload, mac = token[:-_MAC_BYTES], token[-_MAC_BYTES:]
    if len(token) <= _MAC_BYTES or not any(hmac.compare_digest(mac, m) for m in _macs(settings, payload)):
        raise invalid
    moment, _, row_id = payload.decode().partition("|")
    return datetime.fromisoformat(moment), row_id
