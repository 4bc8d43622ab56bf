"""The generated attribute readers of the fast dumps: the edge cases marshmallow decides."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from marshmallow import Schema, fields

from api.schemas.fast_dump import fast_dumper
from api.schemas.fields import UtcDateTime


class Shape(Schema):
    text = fields.String()
    number = fields.Integer()
    flag = fields.Boolean()
    renamed = fields.String(attribute="source")


class Partial:
    """An object with some of the schema's attributes only, read through slots."""

    __slots__ = ("text", "flag")

    def __init__(self, text, flag) -> None:
        self.text, self.flag = text, flag


class Raising:
    """An attribute whose property raises AttributeError reads as missing, like getattr's default."""

    text = "t"
    number = 3

    @property
    def flag(self):
        raise AttributeError("not here")

    source = 12


def test_missing_attributes_and_odd_values_dump_as_marshmallow_dumps_them():
    schema = Shape()
    fast = fast_dumper(schema)
    objects = [Partial("a", True), Partial(7, None), Partial(None, False), Raising(), {"text": "m"}]
    for obj in objects:
        assert fast(obj) == Schema.dump(schema, obj), obj
    assert fast(Partial(7, None)) == {"text": "7", "flag": None}
    assert fast(Raising()) == {"text": "t", "number": 3, "renamed": "12"}


class Times(Schema):
    count = fields.Integer()
    at = fields.DateTime()
    utc_at = UtcDateTime()


class Stamped:
    def __init__(self, count, at, utc_at) -> None:
        self.count, self.at, self.utc_at = count, at, utc_at


def test_inlined_integers_and_iso_datetimes_dump_as_marshmallow_dumps_them():
    schema = Times()
    fast = fast_dumper(schema)
    naive = datetime(2026, 1, 2, 3, 4, 5)
    aware = datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=timezone(timedelta(hours=-3)))
    objects = [
        Stamped(3, naive, naive),
        Stamped(True, aware, aware),  # a bool is an int to marshmallow: 1
        Stamped("12", None, None),
        Stamped(2**70, naive.replace(microsecond=0), aware),
    ]
    for obj in objects:
        assert fast(obj) == Schema.dump(schema, obj), vars(obj)
    expected = {"count": 3, "at": "2026-01-02T03:04:05", "utc_at": "2026-01-02T03:04:05+00:00"}
    assert fast(objects[0]) == expected
    assert type(fast(objects[1])["count"]) is int


def test_a_date_in_a_datetime_field_fails_as_marshmallow_fails():
    fast = fast_dumper(Times())
    with pytest.raises(TypeError):
        Schema.dump(Times(), Stamped(1, date(2026, 1, 2), None))
    with pytest.raises(TypeError):
        fast(Stamped(1, date(2026, 1, 2), None))


def test_the_same_instant_in_two_zones_keeps_each_zones_text():
    # Equal datetimes: a memo keyed on the value alone would answer the first one's text.
    fast = fast_dumper(Times())
    utc = datetime(2026, 5, 6, 7, 8, 9, 10, tzinfo=UTC)
    for at in (utc, utc.astimezone(timezone(timedelta(hours=2))), utc.replace(tzinfo=None), utc):
        assert fast(Stamped(0, at, at)) == Schema.dump(Times(), Stamped(0, at, at)), at
    assert fast(Stamped(0, None, utc.astimezone(timezone(timedelta(hours=2)))))["utc_at"].endswith("+02:00")
