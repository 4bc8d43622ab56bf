"""The generated attribute readers of the fast dumps: the edge cases marshmallow decides."""

from __future__ import annotations

from marshmallow import Schema, fields

from api.schemas.fast_dump import fast_dumper


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
