"""Schema of the health report."""

from marshmallow import Schema, fields


class HealthSchema(Schema):
    status = fields.String(dump_only=True)
    ok = fields.Boolean(dump_only=True)
    database = fields.String(dump_only=True)
    broker = fields.String(dump_only=True)
    workers = fields.List(fields.String(), dump_only=True)


class LivenessSchema(Schema):
    ok = fields.Boolean(dump_only=True)
