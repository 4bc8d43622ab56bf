"""Strict JSON in and out: standard JSON only, and bounded work to parse it.

Python's ``json`` module accepts ``NaN``, ``Infinity`` and numbers too large for a
float (``1e999999`` becomes ``inf``), and writes them back out as bare ``NaN`` or
``Infinity``, which no strict client can read. It also crashes (not a ``ValueError``
a parser would catch) on very deep nesting, and refuses integers of more than 4300
digits with an error that looks like a bug. Requests go through :func:`parse_body`,
responses through :class:`StrictJSONProvider`, so neither ever happens in the API.
"""

from __future__ import annotations

import json
import math
from typing import Any

from flask.json.provider import DefaultJSONProvider

from api.json_encode import encode_compact

# Far deeper than any real body of this API, far shallower than Python's stack.
MAX_DEPTH = 64


class InvalidJsonBody(ValueError):
    """The body is not JSON this API can take (syntax, nesting, number size)."""


class NonStandardNumber(ValueError):
    """The body holds ``NaN``, ``Infinity`` or a number no JSON client can represent.

    ``field`` is the top-level member that holds it (``"config"``), or ``"_body"``.
    """

    def __init__(self, field: str, path: str) -> None:
        super().__init__(f"{path} is NaN, Infinity or out of range: only standard JSON numbers are accepted")
        self.field = field


class _NonFinite:
    """Placeholder for a non-standard number, so its position can be reported."""


_NON_FINITE = _NonFinite()


def _parse_float(text: str) -> float | _NonFinite:
    value = float(text)
    return value if math.isfinite(value) else _NON_FINITE


def _find_non_finite(value: Any) -> list[str | int] | None:
    """The path to the first non-standard number in ``value`` (``[]``: ``value`` itself)."""
    if value is _NON_FINITE:
        return []
    if isinstance(value, dict):
        children = value.items()
    elif isinstance(value, list):
        children = enumerate(value)
    else:
        return None
    for key, child in children:
        found = _find_non_finite(child)
        if found is not None:
            return [key, *found]
    return None


def _depth_exceeds(text: str, limit: int) -> bool:
    # Counting brackets outside strings is linear and cannot overflow the stack, so a
    # hostile body is refused before the recursive parser ever sees it.
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def parse_body(text: str) -> Any:
    """Parse a request body as standard JSON.

    Raises :class:`InvalidJsonBody` for anything that is not JSON or is too deep or
    too large to parse, and :class:`NonStandardNumber` naming where a ``NaN``,
    ``Infinity`` or out-of-range number sits.
    """
    if _depth_exceeds(text, MAX_DEPTH):
        raise InvalidJsonBody(f"nested deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(text, parse_constant=lambda _name: _NON_FINITE, parse_float=_parse_float)
    except json.JSONDecodeError as exc:
        raise InvalidJsonBody(str(exc)) from None
    except ValueError:  # the only other one: an integer beyond Python's 4300-digit limit
        raise InvalidJsonBody("a number has more digits than this API accepts") from None
    except RecursionError:
        raise InvalidJsonBody("nested too deeply") from None
    path = _find_non_finite(value)
    if path is not None:
        field = path[0] if path and isinstance(value, dict) else "_body"
        raise NonStandardNumber(str(field), _describe(path))
    return value


def _describe(path: list[str | int]) -> str:
    # ["config", "a", 0] -> "config.a[0]", the way a client would point at it.
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text or "the body"


# What Flask's response() passes for a compact body.
_COMPACT = {"separators": (",", ":")}


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, reading with :func:`parse_body` and never writing ``NaN``.

    Compact bodies of plain values go through :func:`api.json_encode.encode_compact`:
    the same bytes, several times faster.
    """

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        """Serialise ``obj``; a non-finite float is an error, never bare ``NaN`` output."""
        if kwargs == _COMPACT and self.sort_keys and self.ensure_ascii:
            text = encode_compact(obj)
            if text is not None:
                return text
        kwargs.setdefault("allow_nan", False)
        return super().dumps(obj, **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Parse with the same rules as request bodies."""
        return parse_body(s.decode() if isinstance(s, bytes) else s)
