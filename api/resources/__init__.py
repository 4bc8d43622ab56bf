"""Blueprints of the API, one module per resource."""

from flask_smorest import Api

from api.resources.events import blp as events_blp
from api.resources.health import blp as health_blp
from api.resources.jobs import blp as jobs_blp
from api.resources.me import blp as me_blp
from api.resources.messages import blp as messages_blp
from api.resources.sessions import blp as sessions_blp
from api.resources.webhooks import blp as webhooks_blp
from api.schemas.events import register_payload_schemas


def register_blueprints(api: Api) -> None:
    """Attach every blueprint to ``api``."""
    for blueprint in (health_blp, sessions_blp, messages_blp, jobs_blp, webhooks_blp, events_blp, me_blp):
        api.register_blueprint(blueprint)
    register_payload_schemas(api.spec)
