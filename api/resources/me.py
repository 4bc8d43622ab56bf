"""``GET /me``: the caller's identity and role, so a client can show only what it may do."""

from __future__ import annotations

from api.auth import authenticate_request, current_principal
from api.blueprint import Blueprint
from api.extensions import read_only
from api.schemas.me import MeSchema

blp = Blueprint("me", __name__, url_prefix="/me", description="The caller")
blp.before_request(authenticate_request)


@blp.route("")
@blp.response(200, MeSchema)
@read_only
def me():
    """The user the token belongs to: email, role (admin or agent) and company id."""
    principal = current_principal()
    return {"email": principal.email, "role": principal.role, "company": principal.company_id}
