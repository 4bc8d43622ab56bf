"""Schemas of webhook endpoints, their deliveries and attempts, and replays."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.schemas.events import EventSchema, ulid_rule
from api.schemas.fields import UtcDateTime
from api.schemas.pagination import PageArgsSchema, PageSchema
from api.schemas.sessions import NAME_RULE
from shared.services.events import EVENT_TYPES
from shared.services.webhook_endpoints import DELIVERY_FILTERS, STATUSES

URL = fields.String(
    validate=validate.Length(min=1, max=2048),
    metadata={
        "description": "http(s) URL the events are POSTed to",
        "example": "https://crm.example.com/zaphub",
    },
)
EVENT_TYPE_LIST = fields.List(
    fields.String(validate=validate.OneOf(EVENT_TYPES)),
    validate=validate.Length(max=len(EVENT_TYPES)),
    metadata={"description": "event types to receive; empty or absent: all"},
)
SESSION_LIST = fields.List(
    fields.String(validate=NAME_RULE),
    validate=validate.Length(max=100),
    metadata={"description": "session names covered; empty or absent: every session"},
)
DESCRIPTION = fields.String(validate=validate.Length(max=200), allow_none=True)


class WebhookCreateSchema(Schema):
    url = fields.String(required=True, validate=URL.validate, metadata=URL.metadata)
    event_types = EVENT_TYPE_LIST
    sessions = SESSION_LIST
    description = DESCRIPTION


class WebhookUpdateSchema(Schema):
    url = fields.String(validate=URL.validate, metadata=URL.metadata)
    event_types = EVENT_TYPE_LIST
    sessions = SESSION_LIST
    description = DESCRIPTION
    status = fields.String(
        validate=validate.OneOf(STATUSES),
        metadata={"description": "active (also resumes a paused endpoint), paused or disabled"},
    )

    @validates_schema
    def not_empty(self, data, **_kwargs):
        if not data:
            raise ValidationError(
                "give at least one of url, event_types, sessions, description, status", "_schema"
            )


class WebhookSchema(Schema):
    id = fields.String(dump_only=True)
    url = fields.String(dump_only=True)
    description = fields.String(dump_only=True, allow_none=True)
    event_types = fields.Function(lambda e: e.event_types_list, dump_only=True)
    sessions = fields.Function(lambda e: e.session_names_list, dump_only=True)
    status = fields.String(dump_only=True, metadata={"description": "active, paused or disabled"})
    status_reason = fields.String(
        dump_only=True, allow_none=True, metadata={"description": "why it is paused or disabled"}
    )
    consecutive_failures = fields.Integer(dump_only=True)
    previous_secret_expires_at = UtcDateTime(
        dump_only=True, allow_none=True, metadata={"description": "until then the old secret signs too"}
    )
    created_at = UtcDateTime(dump_only=True)
    updated_at = UtcDateTime(dump_only=True)


class WebhookWithSecretSchema(WebhookSchema):
    secret = fields.String(
        dump_only=True, metadata={"description": "the signing secret (whsec_...); shown only in this answer"}
    )


class WebhookListSchema(Schema):
    items = fields.List(fields.Nested(WebhookSchema), dump_only=True)


class RotateSecretSchema(Schema):
    grace_seconds = fields.Float(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=0, max=30 * 86400),
        metadata={
            "description": "how long the old secret goes on signing (default WEBHOOK_SECRET_GRACE_SECONDS)"
        },
    )


class AttemptSchema(Schema):
    attempted_at = UtcDateTime(dump_only=True)
    status_code = fields.Integer(dump_only=True, allow_none=True)
    latency_ms = fields.Float(dump_only=True)
    response_excerpt = fields.String(dump_only=True, metadata={"description": "first KB of the response"})
    error = fields.String(dump_only=True, allow_none=True)


class DeliverySchema(Schema):
    id = fields.String(dump_only=True)
    event = fields.Nested(EventSchema, dump_only=True)
    state = fields.String(dump_only=True, metadata={"description": "pending, retrying, delivered or dead"})
    attempts = fields.Integer(dump_only=True)
    next_attempt_at = UtcDateTime(dump_only=True)
    last_status_code = fields.Integer(dump_only=True, allow_none=True)
    last_error = fields.String(dump_only=True, allow_none=True)
    replay = fields.Boolean(dump_only=True)
    created_at = UtcDateTime(dump_only=True)
    delivered_at = UtcDateTime(dump_only=True, allow_none=True)
    attempt_list = fields.List(
        fields.Nested(AttemptSchema), attribute="attempt_rows", data_key="attempt_list", dump_only=True
    )


class DeliveryListArgsSchema(PageArgsSchema):
    state = fields.String(
        validate=validate.OneOf(DELIVERY_FILTERS),
        metadata={"description": "pending, retrying, delivered, dead, or failed (retrying or dead)"},
    )


class DeliveryPageSchema(PageSchema):
    items = fields.List(fields.Nested(DeliverySchema), dump_only=True)


class ReplaySchema(Schema):
    event_id = fields.String(
        validate=ulid_rule("event_id"),
        metadata={"description": "re-send this one event"},
    )
    since = fields.AwareDateTime(
        default_timezone=None, metadata={"description": "re-send every event at or after this time"}
    )
    session = fields.String(validate=NAME_RULE, metadata={"description": "only this session's events"})
    after_seq = fields.Integer(
        validate=validate.Range(min=0),
        metadata={"description": "with session: re-send the session's events numbered above this"},
    )

    @validates_schema
    def one_selection(self, data, **_kwargs):
        if not any(key in data for key in ("event_id", "since", "after_seq")):
            raise ValidationError("give event_id, since, or session with after_seq", "_schema")
        if "event_id" in data and len(data) > 1:
            raise ValidationError("event_id cannot be combined with other selections", "event_id")
        if "after_seq" in data and "session" not in data:
            raise ValidationError("after_seq needs session (sequence numbers are per session)", "session")


class ReplayResultSchema(Schema):
    queued = fields.Integer(dump_only=True, metadata={"description": "deliveries queued again"})
    truncated = fields.Boolean(
        dump_only=True, metadata={"description": "more events matched than one replay takes; replay again"}
    )
