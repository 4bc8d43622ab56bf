"""ULIDs: 26-character ids that sort by time (48-bit milliseconds, then 80 random bits).

Event ids must also sort in commit order within a company, so :func:`next_ulid` makes
each id strictly greater than the previous one it is given, even within the same
millisecond or when the clock steps back (the monotonic variant of the ULID spec).
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32
LENGTH = 26
_RANDOM_BITS = 80
_MAX = (1 << 128) - 1
_DIGITS = {char: value for value, char in enumerate(ALPHABET)}


def encode(value: int) -> str:
    """The 26-character text of a 128-bit ULID value."""
    chars = []
    for _ in range(LENGTH):
        value, digit = divmod(value, 32)
        chars.append(ALPHABET[digit])
    return "".join(reversed(chars))


def decode(text: str) -> int:
    """The 128-bit value of a ULID text; ``ValueError`` if it is not one."""
    if not is_ulid(text):
        raise ValueError(f"not a ULID: {text!r}")
    value = 0
    for char in text.upper():
        value = value * 32 + _DIGITS[char]
    return value


def is_ulid(text: object) -> bool:
    """Whether ``text`` is a well-formed ULID (case-insensitive, at most 128 bits)."""
    return (
        isinstance(text, str)
        and len(text) == LENGTH
        and all(char in _DIGITS for char in text.upper())
        and text[0] in "01234567"
    )


def next_ulid(previous: str | None = None, now_ms: int | None = None) -> str:
    """A new ULID for now, strictly greater than ``previous`` when one is given."""
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if previous is not None:
        last = decode(previous)
        if ms <= last >> _RANDOM_BITS:
            if last == _MAX:
                raise OverflowError("no ULID is greater than the last one")
            return encode(last + 1)
    return encode((ms << _RANDOM_BITS) | secrets.randbits(_RANDOM_BITS))


def ulid_time(text: str) -> datetime:
    """The time a ULID carries (millisecond precision, UTC)."""
    return datetime.fromtimestamp((decode(text) >> _RANDOM_BITS) / 1000, UTC)


def floor_ulid(at: datetime) -> str:
    """The smallest ULID of the millisecond ``at``: every id made at or after it is not smaller."""
    return encode(int(at.timestamp() * 1000) << _RANDOM_BITS)
