"""Rules on client-supplied values, shared by the API schemas and the services."""

from __future__ import annotations

import json
import re
from typing import Any

from shared.errors import InvalidInput

# Session names appear in URLs only; they are never used to build a path.
SESSION_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")
SESSION_NAME_RULE = (
    "must be 1-64 characters: lowercase letters, digits, '_' and '-', starting with a letter or digit"
)
CONFIG_MAX_BYTES = 16 * 1024


def check_session_name(name: Any, field: str = "name") -> str:
    """Return ``name`` if it is a valid session name, else raise :class:`InvalidInput`."""
    if not isinstance(name, str) or not SESSION_NAME_RE.fullmatch(name):
        raise InvalidInput(field, f"{field} {SESSION_NAME_RULE}")
    return name


def encode_config(config: Any, field: str = "config") -> str:
    """Serialise a session config (a JSON object of bounded size) to JSON text."""
    if not isinstance(config, dict):
        raise InvalidInput(field, f"{field} must be a JSON object")
    try:
        # allow_nan=False: a NaN or Infinity stored here would be served back as
        # non-standard JSON that strict clients cannot read.
        text = json.dumps(config, separators=(",", ":"), sort_keys=True, allow_nan=False)
    except ValueError:
        raise InvalidInput(field, f"{field} must be standard JSON: no NaN or Infinity") from None
    if len(text.encode()) > CONFIG_MAX_BYTES:
        raise InvalidInput(field, f"{field} must be at most {CONFIG_MAX_BYTES} bytes of JSON")
    return text
