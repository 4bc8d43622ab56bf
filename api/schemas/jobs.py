"""Schemas of jobs."""

from marshmallow import Schema, fields

from api.schemas.fields import UtcDateTime


class JobSchema(Schema):
    id = fields.String(dump_only=True)
    kind = fields.String(dump_only=True)
    status = fields.String(dump_only=True, metadata={"description": "queued, running, succeeded or failed"})
    session_id = fields.String(dump_only=True, allow_none=True)
    queue = fields.String(dump_only=True, allow_none=True)
    worker_id = fields.String(dump_only=True, allow_none=True, metadata={"description": "worker that ran it"})
    params = fields.Function(lambda job: job.params_dict, dump_only=True)
    result = fields.Function(lambda job: job.result_dict, dump_only=True, allow_none=True)
    error = fields.String(dump_only=True, allow_none=True)
    created_at = UtcDateTime(dump_only=True)
    started_at = UtcDateTime(dump_only=True, allow_none=True)
    finished_at = UtcDateTime(dump_only=True, allow_none=True)
