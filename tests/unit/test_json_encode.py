"""Response JSON: the orjson path writes exactly Flask's bytes, and refuses what it cannot."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime

import pytest
from flask import Flask

from api.json_body import StrictJSONProvider
from api.json_encode import encode_compact

PLAIN = [
    {"b": 1, "a": {"z": [True, False, None, -5, 2**63 - 1, -(2**63)], "y": ""}, "A": [], "": {}},
    [{"k" + chr(c): chr(c) * 3} for c in range(127)],  # every ASCII character but DEL, escaped or not
    {"items": [{"id": "x" * 32, "epoch": n, "config": {"team": "x"}} for n in range(50)], "total": 50},
    ("a", ("b", 1)),
]
# Each of these the orjson path must hand back to json.dumps.
NOT_PLAIN = [
    {"f": 1.5},
    {"f": 1e16},  # orjson writes 1e16, json.dumps 1e+16
    {"n": "Zé"},
    {"emoji": "\U0001f600"},
    {"del": "\x7f"},
    {"big": 2**64},
    {1: "int key"},
    {"when": datetime(2026, 1, 1, tzinfo=UTC)},
    {"id": uuid.UUID(int=1)},
    {"sub": type("Text", (str,), {})("x")},
]


def reference(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


@pytest.mark.parametrize("obj", PLAIN)
def test_plain_values_come_out_as_json_dumps_writes_them(obj):
    assert encode_compact(obj) == reference(obj)


@pytest.mark.parametrize("obj", NOT_PLAIN)
def test_anything_else_is_left_to_json_dumps(obj):
    assert encode_compact(obj) is None


def test_a_cycle_is_left_to_json_dumps():
    cycle: list = []
    cycle.append(cycle)
    assert encode_compact(cycle) is None


def test_the_provider_answers_flasks_own_bytes_and_still_refuses_nan():
    app = Flask(__name__)
    app.json = StrictJSONProvider(app)
    for obj in PLAIN[:3] + NOT_PLAIN[:5]:
        with app.app_context():
            assert app.json.response(obj).get_data(as_text=True) == reference(obj) + "\n"
    with app.app_context(), pytest.raises(ValueError):
        app.json.response({"x": [1, {"y": math.nan}]})
