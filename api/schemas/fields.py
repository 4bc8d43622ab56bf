"""Custom marshmallow fields."""

from datetime import UTC

from marshmallow import fields


class StrictBoolean(fields.Boolean):
    """A JSON boolean only: ``1``, ``"true"`` or ``"yes"`` are rejected."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class UtcDateTime(fields.DateTime):
    """A timestamp written with its zone: SQLite hands back naive UTC datetimes."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return super()._serialize(value, attr, obj, **kwargs)
