"""Schemas of WhatsApp sessions: input validation and output shapes."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.schemas.fields import StrictBoolean, UtcDateTime
from api.schemas.jobs import JobSchema
from api.schemas.pagination import PageArgsSchema, PageSchema
from shared.statuses import SessionStatus
from shared.validation import PHONE_NUMBER_RE, PHONE_NUMBER_RULE, SESSION_NAME_RE, SESSION_NAME_RULE

NAME_RULE = validate.Regexp(SESSION_NAME_RE, error=f"name {SESSION_NAME_RULE}")

SessionName = fields.String(
    required=True,
    validate=NAME_RULE,
    metadata={"description": "unique within the company", "example": "vendas"},
)


class SessionCreateSchema(Schema):
    name = SessionName
    config = fields.Dict(
        keys=fields.String(), load_default=dict, metadata={"description": "free-form JSON object"}
    )


class SessionUpdateSchema(Schema):
    name = fields.String(validate=NAME_RULE)
    config = fields.Dict(keys=fields.String())
    is_active = StrictBoolean()

    @validates_schema
    def not_empty(self, data, **_kwargs):
        if not data:
            raise ValidationError("give at least one of name, config, is_active", "_schema")


class SessionListArgsSchema(PageArgsSchema):
    status = fields.String(
        validate=validate.OneOf([s.value for s in SessionStatus] + [s.value.lower() for s in SessionStatus])
    )
    is_active = fields.Boolean()


class RemoveArgsSchema(Schema):
    purge = fields.Boolean(load_default=False)


class QrArgsSchema(Schema):
    format = fields.String(validate=validate.OneOf(["json", "png", "svg"]))


class SessionSchema(Schema):
    id = fields.String(dump_only=True)
    name = fields.String(dump_only=True)
    status = fields.String(dump_only=True)
    is_active = fields.Boolean(dump_only=True)
    phone_number = fields.String(dump_only=True, allow_none=True)
    push_name = fields.String(dump_only=True, allow_none=True)
    last_seen = UtcDateTime(dump_only=True, allow_none=True)
    last_error = fields.String(dump_only=True, allow_none=True)
    config = fields.Function(lambda s: s.config_dict, dump_only=True)
    worker_id = fields.String(dump_only=True, allow_none=True)
    epoch = fields.Integer(dump_only=True)
    has_qr_code = fields.Function(lambda s: s.has_qr_code, dump_only=True)
    has_login_state = fields.Function(lambda s: s.has_auth_state, dump_only=True)
    created_at = UtcDateTime(dump_only=True)
    updated_at = UtcDateTime(dump_only=True)


class SessionWithJobSchema(SessionSchema):
    job = fields.Nested(JobSchema, dump_only=True, allow_none=True)


class SessionPageSchema(PageSchema):
    items = fields.List(fields.Nested(SessionSchema), dump_only=True)


class WorkerSchema(Schema):
    id = fields.String(dump_only=True)
    queue = fields.String(dump_only=True)
    hostname = fields.String(dump_only=True, allow_none=True)
    heartbeat_at = UtcDateTime(dump_only=True, allow_none=True)
    capacity = fields.Integer(dump_only=True)


class LiveStateSchema(Schema):
    worker_id = fields.String(dump_only=True)
    status = fields.String(dump_only=True, metadata={"description": "status in the worker's memory"})
    live = fields.Boolean(dump_only=True, metadata={"description": "a browser context is open"})
    phone_number = fields.String(dump_only=True, allow_none=True)
    push_name = fields.String(dump_only=True, allow_none=True)
    last_error = fields.String(dump_only=True, allow_none=True)


class SendQueueSchema(Schema):
    pending = fields.Integer(dump_only=True, metadata={"description": "outbound messages not sent yet"})
    oldest_pending_age = fields.Float(
        dump_only=True, allow_none=True, metadata={"description": "seconds since the oldest was queued"}
    )
    next_send_not_before = UtcDateTime(dump_only=True, allow_none=True)


class SessionDetailsSchema(Schema):
    session = fields.Nested(SessionSchema, dump_only=True)
    owner = fields.Nested(WorkerSchema, dump_only=True, allow_none=True)
    owner_alive = fields.Boolean(dump_only=True)
    live = fields.Nested(
        LiveStateSchema,
        dump_only=True,
        allow_none=True,
        metadata={"description": "as the owner worker reports it; null when no worker runs it"},
    )
    jobs = fields.List(fields.Nested(JobSchema), dump_only=True)
    send_queue = fields.Nested(SendQueueSchema, dump_only=True, allow_none=True)


class SessionStatsSchema(Schema):
    total = fields.Integer(dump_only=True)
    active = fields.Integer(dump_only=True)
    inactive = fields.Integer(dump_only=True)
    by_status = fields.Dict(keys=fields.String(), values=fields.Integer(), dump_only=True)
    by_worker = fields.Dict(keys=fields.String(), values=fields.Integer(), dump_only=True)


class WorkerCleanupSchema(Schema):
    """One worker's part of a cleanup (the result of its ``worker_cleanup`` job)."""

    worker_id = fields.String(dump_only=True)
    status = fields.String(dump_only=True, metadata={"description": "succeeded or failed"})
    error = fields.String(dump_only=True, allow_none=True)
    profile_folders_removed = fields.Integer(dump_only=True)
    browsers_killed = fields.Integer(dump_only=True)
    stale_locks_removed = fields.Integer(dump_only=True)
    profile_folders = fields.List(fields.String(), dump_only=True)
    browser_pids = fields.List(fields.Integer(), dump_only=True)
    stale_locks = fields.List(fields.String(), dump_only=True, metadata={"description": "folder/file"})


class CleanupPreviewSchema(Schema):
    dry_run = fields.Boolean(dump_only=True)
    sessions_to_purge = fields.Integer(dump_only=True)
    purge_session_names = fields.List(fields.String(), dump_only=True)
    stale_jobs = fields.Integer(dump_only=True)
    stale_qr_codes = fields.Integer(dump_only=True)
    beat_jobs_purged = fields.Integer(
        dump_only=True, metadata={"description": "beat runs that changed nothing, past their retention"}
    )
    events_purged = fields.Integer(
        dump_only=True,
        metadata={"description": "events older than EVENT_RETENTION_DAYS, with their deliveries"},
    )
    jobs_purged = fields.Integer(
        dump_only=True, metadata={"description": "finished jobs older than JOB_RETENTION_DAYS"}
    )
    profile_folders_removed = fields.Integer(
        dump_only=True, metadata={"description": "profile folders of no session a worker owns (all workers)"}
    )
    browsers_killed = fields.Integer(
        dump_only=True,
        metadata={"description": "Chromium processes no live browser context owns (all workers)"},
    )
    stale_locks_removed = fields.Integer(
        dump_only=True,
        metadata={"description": "Singleton* lock files in profiles with no running Chromium (all workers)"},
    )
    workers = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(WorkerCleanupSchema),
        dump_only=True,
        metadata={"description": "each live worker's part, by worker id"},
    )
    workers_unanswered = fields.List(
        fields.String(),
        dump_only=True,
        metadata={"description": "live workers that did not answer within CLEANUP_PREVIEW_WAIT"},
    )


class QrSchema(Schema):
    name = fields.String(dump_only=True)
    status = fields.String(dump_only=True)
    qr_code = fields.String(dump_only=True, metadata={"description": "the text to encode as a QR"})


class PairingCodeRequestSchema(Schema):
    phone = fields.String(
        required=True,
        validate=validate.Regexp(PHONE_NUMBER_RE, error=f"phone {PHONE_NUMBER_RULE}"),
        metadata={"description": "the phone to link: digits with country code", "example": "5511999990001"},
    )


class PairingCodeSchema(Schema):
    code = fields.String(
        dump_only=True,
        metadata={"description": "8 characters to type on the phone (shown there as ABCD-1234)"},
    )
    phone = fields.String(dump_only=True)
    expires_at = fields.String(
        dump_only=True, metadata={"description": "when the page replaces it with a new code (ISO 8601)"}
    )
