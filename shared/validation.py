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
# A phone to link by code: the full international number, digits only (no '+').
PHONE_NUMBER_RE = re.compile(r"^[0-9]{8,15}\Z")
PHONE_NUMBER_RULE = "must be 8 to 15 digits: the full number with country code, no '+' or spaces"


def check_session_name(name: Any, field: str = "name") -> str:
    """Return ``name`` if it is a valid session name, else raise :class:`InvalidInput`."""
    if not isinstance(name, str) or not SESSION_NAME_RE.fullmatch(name):
        raise InvalidInput(field, f"{field} {SESSION_NAME_RULE}")
    return name


def check_phone_number(phone: Any, field: str = "phone") -> str:
    """Return ``phone`` if it is 8-15 digits, else raise :class:`InvalidInput`."""
    if not isinstance(phone, str) or not PHONE_NUMBER_RE.fullmatch(phone):
        raise InvalidInput(field, f"{field} {PHONE_NUMBER_RULE}")
    return phone


# Config keys the project itself reads, with their rule; any other key is the client's own.
LAZY_CONFIG_KEY = "lazy"


def is_lazy(config: Any) -> bool:
    """Whether a session config (a dict or its JSON text) marks the session lazy."""
    if isinstance(config, str):
        try:
            config = json.loads(config or "{}")
        except ValueError:
            return False
    return isinstance(config, dict) and config.get(LAZY_CONFIG_KEY) is True


def encode_config(config: Any, field: str = "config") -> str:
    """Serialise a session config (a JSON object of bounded size) to JSON text."""
    if not isinstance(config, dict):
        raise InvalidInput(field, f"{field} must be a JSON object")
    if LAZY_CONFIG_KEY in config and not isinstance(config[LAZY_CONFIG_KEY], bool):
        # A "true" string or a 1 would silently mean "not lazy" to the worker.
        raise InvalidInput(field, f"{field}.{LAZY_CONFIG_KEY} must be true or false")
    try:
        # allow_nan=False: a NaN or Infinity stored here would be served back as
        # non-standard JSON that strict clients cannot read.
        text = json.dumps(config, separators=(",", ":"), sort_keys=True, allow_nan=False)
    except ValueError:
        raise InvalidInput(field, f"{field} must be standard JSON: no NaN or Infinity") from None
    if len(text.encode()) > CONFIG_MAX_BYTES:
        raise InvalidInput(field, f"{field} must be at most {CONFIG_MAX_BYTES} bytes of JSON")
    return text


# ASCII digits only: ``\d`` would also take other scripts' digits.
PHONE_RE = re.compile(r"^[0-9]{8,15}\Z")
CHAT_ID_RE = re.compile(r"^(?:[0-9]{8,15}@c\.us|[0-9]{5,32}(?:-[0-9]{1,16})?@g\.us)\Z")
# Either of the two: what a ``to`` (or a ``chat`` filter) may be.
RECIPIENT_RE = re.compile(rf"{PHONE_RE.pattern[:-2]}\Z|{CHAT_ID_RE.pattern}")
TO_RULE = "must be a phone number (8-15 digits) or a chat id ('<digits>@c.us' or '<digits>@g.us')"
TEXT_MAX_CHARS = 65_536
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,128}\Z")
IDEMPOTENCY_KEY_RULE = "must be 1-128 visible ASCII characters"


def chat_id_for(to: Any, field: str = "to") -> str:
    """The chat id a recipient stands for: ``5511…`` -> ``5511…@c.us``; chat ids unchanged."""
    if isinstance(to, str) and PHONE_RE.fullmatch(to):
        return f"{to}@c.us"
    if isinstance(to, str) and CHAT_ID_RE.fullmatch(to):
        return to
    raise InvalidInput(field, f"{field} {TO_RULE}")


def check_text(text: Any, field: str = "text") -> str:
    """Return ``text`` if it is a sendable message text (1 to 65,536 characters)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(field, f"{field} must not be empty")
    if len(text) > TEXT_MAX_CHARS:
        raise InvalidInput(field, f"{field} must be at most {TEXT_MAX_CHARS} characters")
    return text


def check_idempotency_key(key: Any, field: str = "Idempotency-Key") -> str:
    """Return ``key`` if it is an acceptable ``Idempotency-Key``."""
    if not isinstance(key, str) or not IDEMPOTENCY_KEY_RE.fullmatch(key):
        raise InvalidInput(field, f"{field} {IDEMPOTENCY_KEY_RULE}")
    return key
