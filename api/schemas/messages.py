"""Schemas of messages, chats and contacts: input validation and output shapes."""

from marshmallow import EXCLUDE, Schema, fields, validate

from api.schemas.fields import UtcDateTime
from api.schemas.jobs import JobSchema
from api.schemas.pagination import PageSchema
from shared.validation import (
    IDEMPOTENCY_KEY_RE,
    IDEMPOTENCY_KEY_RULE,
    RECIPIENT_RE,
    TEXT_MAX_CHARS,
    TO_RULE,
)

RECIPIENT = validate.Regexp(RECIPIENT_RE, error=f"must be {TO_RULE[8:]}")


class MessageCreateSchema(Schema):
    to = fields.String(
        required=True,
        validate=RECIPIENT,
        metadata={"description": "a phone number (digits) or a chat id", "example": "5511999990001"},
    )
    text = fields.String(
        required=True,
        validate=validate.Length(min=1, max=TEXT_MAX_CHARS),
        metadata={"example": "Olá! Seu pedido saiu para entrega."},
    )
    reply_to = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=32),
        metadata={"description": "id of a message of this session to reply to"},
    )


class IdempotencyHeaderSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    idempotency_key = fields.String(
        data_key="Idempotency-Key",
        load_default=None,
        validate=validate.Regexp(IDEMPOTENCY_KEY_RE, error=f"Idempotency-Key {IDEMPOTENCY_KEY_RULE}"),
        metadata={"description": "a retried request with the same key returns the first message"},
    )


class MessageListArgsSchema(Schema):
    chat = fields.String(
        validate=RECIPIENT, metadata={"description": "only this chat (a phone number or a chat id)"}
    )
    direction = fields.String(validate=validate.OneOf(["in", "out"]))
    since = fields.AwareDateTime(
        default_timezone=None, metadata={"description": "only messages stored at or after this time"}
    )
    before = fields.String(
        validate=validate.Length(min=1, max=200),
        metadata={"description": "the next_cursor of the previous page"},
    )
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))


class AckChangeSchema(Schema):
    ack = fields.String(dump_only=True)
    at = fields.String(dump_only=True)


class MessageSchema(Schema):
    id = fields.String(dump_only=True)
    direction = fields.String(dump_only=True, metadata={"description": "in or out"})
    chat_id = fields.String(dump_only=True, allow_none=True)
    sender = fields.String(dump_only=True, allow_none=True)
    recipient = fields.String(dump_only=True, allow_none=True)
    body = fields.String(dump_only=True)
    type = fields.String(dump_only=True)
    ack = fields.String(
        dump_only=True, metadata={"description": "PENDING, SERVER, DEVICE, READ, PLAYED or ERROR"}
    )
    wa_message_id = fields.String(dump_only=True, allow_none=True)
    wa_timestamp = UtcDateTime(dump_only=True, allow_none=True)
    reply_to = fields.String(attribute="reply_to_id", dump_only=True, allow_none=True)
    quoted_wa_id = fields.String(dump_only=True, allow_none=True)
    contact_id = fields.String(dump_only=True, allow_none=True)
    send_state = fields.String(
        dump_only=True, allow_none=True, metadata={"description": "outbound: queued, sending, sent or failed"}
    )
    error = fields.String(dump_only=True, allow_none=True)
    job_id = fields.String(dump_only=True, allow_none=True)
    sent_at = UtcDateTime(dump_only=True, allow_none=True)
    created_at = UtcDateTime(dump_only=True)
    updated_at = UtcDateTime(dump_only=True)


class MessageWithHistorySchema(MessageSchema):
    ack_history = fields.Function(
        lambda message: message.ack_history_list,
        dump_only=True,
        metadata={"description": "every ack change, oldest first: [{ack, at}]"},
    )


class MessageWithJobSchema(Schema):
    message = fields.Nested(MessageSchema, dump_only=True)
    job = fields.Nested(JobSchema, dump_only=True, allow_none=True)


class MessagePageSchema(Schema):
    items = fields.List(fields.Nested(MessageSchema), dump_only=True)
    next_cursor = fields.String(
        dump_only=True, allow_none=True, metadata={"description": "pass as before= for the next page"}
    )
    limit = fields.Integer(dump_only=True)


class ContactSchema(Schema):
    id = fields.String(dump_only=True)
    number = fields.String(dump_only=True)
    name = fields.String(dump_only=True, allow_none=True)
    push_name = fields.String(dump_only=True, allow_none=True)
    created_at = UtcDateTime(dump_only=True)


class ChatSchema(Schema):
    chat_id = fields.String(dump_only=True)
    last_message = fields.Nested(MessageSchema, dump_only=True, allow_none=True)
    last_message_at = UtcDateTime(dump_only=True)
    message_count = fields.Integer(dump_only=True)
    unread_count = fields.Integer(
        dump_only=True,
        metadata={"description": "inbound messages the phone has not read (ack not READ/PLAYED)"},
    )
    contact = fields.Nested(ContactSchema, dump_only=True, allow_none=True)


class ChatPageSchema(PageSchema):
    items = fields.List(fields.Nested(ChatSchema), dump_only=True)


class ContactPageSchema(PageSchema):
    items = fields.List(fields.Nested(ContactSchema), dump_only=True)
