"""Custom marshmallow fields."""

from marshmallow import fields


class StrictBoolean(fields.Boolean):
    """A JSON boolean only: ``1``, ``"true"`` or ``"yes"`` are rejected."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value
