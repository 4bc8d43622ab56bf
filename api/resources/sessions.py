"""``/session`` routes: each loads its input, calls one service, dumps the result."""

from __future__ import annotations

from flask import Response, jsonify, request
from flask.views import MethodView

from api.auth import admin_required, authenticate_request, company_id
from api.blueprint import Blueprint
from api.extensions import publisher, read_only, unit_of_work
from api.prefer import answer_job
from api.qr_render import negotiate_qr_format, render_qr
from api.schemas.jobs import JobSchema
from api.schemas.sessions import (
    CleanupPreviewSchema,
    PairingCodeRequestSchema,
    PairingCodeSchema,
    QrArgsSchema,
    QrSchema,
    RemoveArgsSchema,
    SessionCreateSchema,
    SessionDetailsSchema,
    SessionListArgsSchema,
    SessionPageSchema,
    SessionSchema,
    SessionStatsSchema,
    SessionUpdateSchema,
    SessionWithJobSchema,
)
from shared.models import Job
from shared.services import maintenance, sessions

blp = Blueprint(
    "sessions", __name__, url_prefix="/session", description="WhatsApp sessions of the caller's company"
)
blp.before_request(authenticate_request)


@blp.route("")
class SessionCollection(MethodView):
    @blp.arguments(SessionListArgsSchema, location="query")
    @blp.response(200, SessionPageSchema)
    @read_only
    def get(self, args):
        """List the company's sessions (filter by status and is_active, paginated)."""
        return sessions.find_all_by_company(unit_of_work(), company_id(), **args)

    @admin_required
    @blp.arguments(SessionCreateSchema)
    @blp.response(202, SessionWithJobSchema)
    def post(self, data):
        """Create a session; a worker will open WhatsApp Web for it (follow the job)."""
        return sessions.create_session(unit_of_work(), publisher(), company_id(), **data)


@blp.route("/stats")
@blp.response(200, SessionStatsSchema)
@read_only
def stats():
    """Counts by status, active/inactive and per worker."""
    return sessions.session_stats(unit_of_work(), company_id())


@blp.route("/cleanup")
class Cleanup(MethodView):
    @blp.response(200, CleanupPreviewSchema)
    def get(self):
        """What a cleanup would do now (dry run), on the database and on every live worker.

        Each live worker is asked for its local plan and answers within
        ``CLEANUP_PREVIEW_WAIT`` seconds; ``workers_unanswered`` names those that did not.
        """
        return maintenance.cleanup_preview(unit_of_work(), company_id(), publisher())

    @admin_required
    @blp.response(202, JobSchema)
    @blp.alt_response(200, schema=JobSchema, description="finished within the client's `Prefer: wait=N`")
    def post(self):
        """Run a cleanup; the job's result holds the metrics (summed over workers, and per worker).

        With ``Prefer: wait=N`` (RFC 7240) the answer waits up to N seconds (at most
        ``JOB_WAIT_MAX_SECONDS``) for the job: 200 with the finished job, or 202 as without it.
        """
        return answer_job(maintenance.request_cleanup(unit_of_work(), publisher(), company_id()))


@blp.route("/sync", methods=["POST"])
@admin_required
@blp.response(202, JobSchema)
@blp.alt_response(200, schema=JobSchema, description="finished within the client's `Prefer: wait=N`")
def sync():
    """Reconcile workers' memory and the database for the company's sessions.

    ``Prefer: wait=N`` waits for the job as on ``POST /session/cleanup``.
    """
    return answer_job(maintenance.request_sync(unit_of_work(), publisher(), company_id()))


@blp.route("/<string:name>")
class SessionItem(MethodView):
    @blp.response(200, SessionSchema)
    @read_only
    def get(self, name: str):
        """One session."""
        return sessions.find_by_company(unit_of_work(), company_id(), name)

    @admin_required
    @blp.arguments(SessionUpdateSchema)
    @blp.response(200, SessionWithJobSchema)
    def patch(self, changes, name: str):
        """Update name, config or is_active (deactivating stops the browser)."""
        return sessions.update_session(unit_of_work(), publisher(), company_id(), name, changes)

    @admin_required
    @blp.arguments(RemoveArgsSchema, location="query")
    @blp.response(202, SessionWithJobSchema)
    def delete(self, args, name: str):
        """Stop and deactivate; ``?purge=true`` also deletes the row."""
        return sessions.remove_session(unit_of_work(), publisher(), company_id(), name, **args)


@blp.route("/<string:name>/details")
@blp.response(200, SessionDetailsSchema)
@read_only
def details(name: str):
    """The row, its owner worker and liveness, and its recent jobs."""
    return sessions.session_details(unit_of_work(), company_id(), name)


@blp.route("/<string:name>/restart", methods=["POST"])
@admin_required
@blp.response(202, SessionWithJobSchema)
def restart(name: str):
    """Full restart: close the browser, clear local files, start from the stored login."""
    return sessions.restart_session(unit_of_work(), publisher(), company_id(), name)


@blp.route("/<string:name>/qr")
@admin_required
@blp.arguments(QrArgsSchema, location="query")
@blp.response(200, QrSchema, content_type="application/json")
@blp.alt_response(200, description="the QR as an image", content_type="image/png")
def qr(args, name: str):
    """The current QR code as JSON, PNG or SVG (``?format=`` or the Accept header).

    Admin only: whoever scans the QR links the company's session to their phone.
    """
    session = sessions.current_qr(unit_of_work(), company_id(), name)
    fmt = negotiate_qr_format(args.get("format"), request.accept_mimetypes)
    if fmt == "json":
        return session
    body, mimetype = render_qr(session.qr_code, fmt)
    return Response(body, mimetype=mimetype, headers={"Cache-Control": "no-store"})


@blp.route("/<string:name>/pairing-code", methods=["POST"])
@admin_required
@blp.arguments(PairingCodeRequestSchema)
@blp.response(200, PairingCodeSchema)
@blp.alt_response(202, schema=JobSchema, description="the worker has not answered yet: follow the job")
def pairing_code(data, name: str):
    """Link by phone number: an 8-character code to type on the phone, instead of a QR scan.

    The session must be waiting to be linked (status QRCODE). The worker's page switches
    from the QR to the code; it renews the code until the phone is linked, each new one
    also a ``session.pairing_code`` event. Waits a few seconds for the worker's answer,
    then answers 202 with the job to follow. Admin only, like the QR.
    """
    answer = sessions.pairing_code(unit_of_work(), publisher(), company_id(), name, data["phone"])
    if isinstance(answer, Job):
        # A Response goes out as it is (the 200 schema is not applied to it).
        response = jsonify(JobSchema().dump(answer))
        response.status_code = 202
        return response
    return answer
