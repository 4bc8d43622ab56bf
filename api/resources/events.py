"""``/events``: the company's events as a paginated list and as a live Server-Sent Events stream.

Agents may read events too (they answer the customers), except ``session.qr`` and
``session.pairing_code``: like ``GET /session/<name>/qr`` and ``POST
/session/<name>/pairing-code``, what links a phone to the session is for admins only.
"""

from __future__ import annotations

from flask import Response, request
from flask.views import MethodView
from flask_smorest import abort

from api.auth import authenticate_request, company_id, current_principal
from api.blueprint import Blueprint
from api.extensions import read_only, state, unit_of_work
from api.schemas.events import EventListArgsSchema, EventPageSchema, EventStreamArgsSchema
from api.sse import render
from shared.errors import InvalidInput
from shared.services import event_feed
from shared.services.events import ADMIN_ONLY_TYPES, EVENT_TYPES
from shared.ulid import is_ulid

blp = Blueprint("events", __name__, url_prefix="/events", description="Events of the caller's company")
blp.before_request(authenticate_request)


def _visible_types(requested: list[str] | None) -> list[str]:
    """The types the caller asked for (all by default) that their role may see."""
    types = list(requested or EVENT_TYPES)
    if current_principal().is_admin:
        return types if requested else []
    visible = [t for t in types if t not in ADMIN_ONLY_TYPES]
    if not visible:
        abort(403, message=f"{' and '.join(sorted(ADMIN_ONLY_TYPES))} events need the admin role")
    return visible


@blp.route("")
class EventList(MethodView):
    @blp.arguments(EventListArgsSchema, location="query")
    @blp.response(200, EventPageSchema)
    @read_only
    def get(self, args):
        """The company's events after ``after`` (an event id), oldest first: the feed as pages."""
        args["type"] = _visible_types(args.get("type"))
        return event_feed.list_events(unit_of_work(), company_id(), **args)


@blp.route("/stream")
class EventStream(MethodView):
    @blp.arguments(EventStreamArgsSchema, location="query")
    @blp.response(200, content_type="text/event-stream", description="one SSE message per event")
    def get(self, args):
        """A live Server-Sent Events stream of the company's events.

        Each message has ``id`` (the event id), ``event`` (its type) and ``data`` (the same
        JSON body a webhook receives). A client that reconnects with ``Last-Event-ID``
        (browsers' EventSource does it by itself) gets every event after that one. With
        no ``Last-Event-ID`` the stream starts with the next event. A ``: heartbeat``
        comment comes every 15 s while nothing happens.
        """
        resume = request.headers.get("Last-Event-ID") or args.get("after")
        if resume is not None and not is_ulid(resume):
            raise InvalidInput(
                "Last-Event-ID", "Last-Event-ID must be an event id (a ULID)", location="headers"
            )
        company = company_id()
        if resume is None:
            resume = event_feed.latest_event_id(unit_of_work(), company)
        feed = event_feed.follow(
            state().settings,
            company,
            resume,
            session=args.get("session"),
            types=_visible_types(args.get("type")),
        )
        return Response(
            render(feed),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
