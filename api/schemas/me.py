"""Schema of ``GET /me``: who the bearer token belongs to."""

from marshmallow import Schema, fields


class MeSchema(Schema):
    email = fields.String(dump_only=True)
    role = fields.String(dump_only=True, metadata={"description": "admin or agent"})
    company = fields.String(dump_only=True, metadata={"description": "the company's id"})
