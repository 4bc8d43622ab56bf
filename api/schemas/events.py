"""Schemas of the events feed: the event envelope, each type's payload, list arguments."""

from marshmallow import Schema, ValidationError, fields, validate

from api.schemas.fields import UtcDateTime
from api.schemas.messages import MessageSchema
from api.schemas.sessions import NAME_RULE
from shared.services.events import EVENT_TYPES
from shared.ulid import is_ulid


def ulid_rule(field: str):
    """A validator: ``field`` must be an event id."""

    def check(value: str) -> None:
        if not is_ulid(value):
            raise ValidationError(f"{field} must be an event id (a ULID)")

    return check


class SessionStatusPayload(Schema):
    """``session.status``: the session's status changed."""

    old_status = fields.String(allow_none=True)
    status = fields.String(metadata={"description": "CONNECTING, QRCODE, CONNECTED, DISCONNECTED or ERROR"})
    reason = fields.String(
        allow_none=True, metadata={"description": "what caused it (logout, conflict, qr, ...)"}
    )


class SessionQrPayload(Schema):
    """``session.qr``: a new QR code to scan."""

    qr = fields.String(metadata={"description": "the QR text (render it, or GET /session/<name>/qr)"})


class SessionPairingCodePayload(Schema):
    """``session.pairing_code``: a code to link the session by phone number (the first or a renewal)."""

    code = fields.String(
        metadata={"description": "8 characters to type on the phone (shown there as ABCD-1234)"}
    )
    phone = fields.String(allow_none=True, metadata={"description": "the phone number being linked"})
    expires_at = fields.String(
        metadata={"description": "when the page replaces it with a new code (ISO 8601)"}
    )


class SessionRemovedPayload(Schema):
    """``session.removed``: the session was removed (and its row deleted when ``purged``)."""

    purged = fields.Boolean()
    reason = fields.String(metadata={"description": "removed (by a request) or cleanup"})


class MessagePayload(Schema):
    """``message.received``, ``message.sent``, ``message.failed``: the message as stored."""

    message = fields.Nested(MessageSchema)


class MessageAckPayload(MessagePayload):
    """``message.ack``: the message's ack moved forward."""

    previous_ack = fields.String()
    ack = fields.String(metadata={"description": "PENDING, SERVER, DEVICE, READ, PLAYED or ERROR"})


PAYLOADS = {
    "session.status": SessionStatusPayload,
    "session.qr": SessionQrPayload,
    "session.removed": SessionRemovedPayload,
    "session.pairing_code": SessionPairingCodePayload,
    "message.received": MessagePayload,
    "message.sent": MessagePayload,
    "message.failed": MessagePayload,
    "message.ack": MessageAckPayload,
}


class EventSchema(Schema):
    id = fields.String(dump_only=True, metadata={"description": "ULID; sorts in commit order per company"})
    type = fields.String(dump_only=True, metadata={"enum": list(EVENT_TYPES)})
    session_id = fields.String(dump_only=True)
    session = fields.String(attribute="session_name", dump_only=True)
    seq = fields.Integer(
        dump_only=True, metadata={"description": "the session's event number, 1, 2, 3... no gaps"}
    )
    created_at = UtcDateTime(dump_only=True)
    payload = fields.Function(
        lambda event: event.payload_dict,
        dump_only=True,
        metadata={
            "description": "by type: " + ", ".join(f"{t} -> {s.__name__}" for t, s in PAYLOADS.items()),
            "oneOf": [
                {"$ref": f"#/components/schemas/{name}"}
                for name in sorted({s.__name__ for s in PAYLOADS.values()})
            ],
        },
    )


class EventFilterSchema(Schema):
    session = fields.String(validate=NAME_RULE, metadata={"description": "only this session's events"})
    type = fields.List(
        fields.String(validate=validate.OneOf(EVENT_TYPES)),
        metadata={"description": "only these types (repeat the parameter)"},
    )


class EventStreamArgsSchema(EventFilterSchema):
    after = fields.String(
        validate=ulid_rule("after"), metadata={"description": "the id of the last event already seen"}
    )


class EventListArgsSchema(EventStreamArgsSchema):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class EventPageSchema(Schema):
    items = fields.List(fields.Nested(EventSchema), dump_only=True)
    next_after = fields.String(
        dump_only=True, allow_none=True, metadata={"description": "pass as after= for the next page"}
    )


def register_payload_schemas(spec) -> None:
    """Name every payload schema in the OpenAPI document (``EventSchema.payload`` refers to them)."""
    for schema in {cls.__name__: cls for cls in PAYLOADS.values()}.values():
        spec.components.schema(schema.__name__, schema=schema)
