"""``GET /health``: liveness and readiness (no authentication)."""

from api.blueprint import Blueprint
from api.extensions import state, unit_of_work
from api.schemas.health import HealthSchema, LivenessSchema
from shared.services.health import check_health

blp = Blueprint("health", __name__, description="Liveness and readiness")


@blp.route("/health")
@blp.doc(security=[])
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=HealthSchema, description="database or broker unreachable")
def health():
    """Database, broker and live workers."""
    report = check_health(unit_of_work(), state().broker_ping)
    return report, 200 if report["ok"] else 503


@blp.route("/health/live")
@blp.doc(security=[])
@blp.response(200, LivenessSchema)
def live():
    """Liveness: the process answers. Touches neither the database nor the broker."""
    return {"ok": True}
