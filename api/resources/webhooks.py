"""``/webhooks``: a company's webhook endpoints, their deliveries, secret rotation and replay.

Admins only: an endpoint receives every event of the company it subscribes to.
Each handler loads its input, calls one service, dumps the result.
"""

from __future__ import annotations

from flask.views import MethodView

from api.auth import admin_required, authenticate_request, company_id
from api.blueprint import Blueprint
from api.extensions import read_only, unit_of_work
from api.schemas.webhooks import (
    DeliveryListArgsSchema,
    DeliveryPageSchema,
    ReplayResultSchema,
    ReplaySchema,
    RotateSecretSchema,
    WebhookCreateSchema,
    WebhookListSchema,
    WebhookSchema,
    WebhookUpdateSchema,
    WebhookWithSecretSchema,
)
from shared.services import webhook_endpoints

blp = Blueprint(
    "webhooks", __name__, url_prefix="/webhooks", description="Webhook endpoints of the company (admins only)"
)
blp.before_request(authenticate_request)


@blp.route("")
class WebhookCollection(MethodView):
    decorators = [admin_required]

    @blp.response(200, WebhookListSchema)
    @read_only
    def get(self):
        """The company's endpoints."""
        return {"items": webhook_endpoints.list_endpoints(unit_of_work(), company_id())}

    @blp.arguments(WebhookCreateSchema)
    @blp.response(201, WebhookWithSecretSchema)
    def post(self, data):
        """Register an endpoint. The answer holds its signing secret, shown this once."""
        return webhook_endpoints.create_endpoint(unit_of_work(), company_id(), **data)


@blp.route("/<string:endpoint_id>")
class WebhookItem(MethodView):
    decorators = [admin_required]

    @blp.response(200, WebhookSchema)
    @read_only
    def get(self, endpoint_id: str):
        """One endpoint, with why it is paused or disabled."""
        return webhook_endpoints.get_endpoint(unit_of_work(), company_id(), endpoint_id)

    @blp.arguments(WebhookUpdateSchema)
    @blp.response(200, WebhookSchema)
    def patch(self, changes, endpoint_id: str):
        """Change url, event types, sessions, description or status (``active`` resumes it)."""
        return webhook_endpoints.update_endpoint(unit_of_work(), company_id(), endpoint_id, changes)

    @blp.response(204)
    def delete(self, endpoint_id: str):
        """Remove the endpoint and its delivery history."""
        webhook_endpoints.delete_endpoint(unit_of_work(), company_id(), endpoint_id)


@blp.route("/<string:endpoint_id>/rotate-secret", methods=["POST"])
@admin_required
@blp.arguments(RotateSecretSchema)
@blp.response(200, WebhookWithSecretSchema)
def rotate_secret(args, endpoint_id: str):
    """A new signing secret (shown this once); the old one also signs for ``grace_seconds``."""
    return webhook_endpoints.rotate_secret(unit_of_work(), company_id(), endpoint_id, args["grace_seconds"])


@blp.route("/<string:endpoint_id>/deliveries")
@admin_required
@blp.arguments(DeliveryListArgsSchema, location="query")
@blp.response(200, DeliveryPageSchema)
@read_only
def deliveries(args, endpoint_id: str):
    """The endpoint's deliveries, newest first, each with its attempts (``state=failed``, ``dead``...)."""
    return webhook_endpoints.list_deliveries(unit_of_work(), company_id(), endpoint_id, **args)


@blp.route("/<string:endpoint_id>/replay", methods=["POST"])
@admin_required
@blp.arguments(ReplaySchema)
@blp.response(202, ReplayResultSchema)
def replay(args, endpoint_id: str):
    """Send events again: one (``event_id``), all ``since`` a time, or a ``session``'s after ``after_seq``."""
    return webhook_endpoints.replay(unit_of_work(), company_id(), endpoint_id, **args)
