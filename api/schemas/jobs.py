"""Schemas of jobs."""

import math

from flask import g, has_request_context
from marshmallow import Schema, ValidationError, fields

from api.schemas.fields import UtcDateTime
from shared.jobs import JobKind

# Result fields only admins may read: a pairing code links a phone to the session.
ADMIN_ONLY_RESULT_FIELDS = {JobKind.PAIR.value: ("code",)}


def visible_result(job):
    """The job's result, without what the caller's role may not see."""
    result = job.result_dict
    hidden = ADMIN_ONLY_RESULT_FIELDS.get(job.kind)
    if not hidden or not isinstance(result, dict) or _caller_is_admin():
        return result
    return {k: v for k, v in result.items() if k not in hidden}


def _caller_is_admin() -> bool:
    principal = g.get("principal") if has_request_context() else None
    return bool(principal is not None and principal.is_admin)


class JobSchema(Schema):
    id = fields.String(dump_only=True)
    kind = fields.String(dump_only=True)
    status = fields.String(dump_only=True, metadata={"description": "queued, running, succeeded or failed"})
    session_id = fields.String(dump_only=True, allow_none=True)
    queue = fields.String(dump_only=True, allow_none=True)
    worker_id = fields.String(dump_only=True, allow_none=True, metadata={"description": "worker that ran it"})
    params = fields.Function(lambda job: job.params_dict, dump_only=True)
    result = fields.Function(visible_result, dump_only=True, allow_none=True)
    error = fields.String(dump_only=True, allow_none=True)
    created_at = UtcDateTime(dump_only=True)
    started_at = UtcDateTime(dump_only=True, allow_none=True)
    finished_at = UtcDateTime(dump_only=True, allow_none=True)


def _valid_wait(seconds: float) -> None:
    # Late import: the schemas load before any app exists.
    from api.extensions import state

    longest = state().settings.JOB_WAIT_MAX_SECONDS
    if not math.isfinite(seconds) or not 0 <= seconds <= longest:
        raise ValidationError(f"must be between 0 and {longest:g} seconds")


class JobWaitArgsSchema(Schema):
    wait = fields.Float(
        load_default=0.0,
        validate=_valid_wait,
        metadata={
            "description": "seconds to wait for the job to finish before answering, from 0 "
            "(the default: no wait) to JOB_WAIT_MAX_SECONDS (60 unless configured); "
            "answers as soon as it finishes"
        },
    )
