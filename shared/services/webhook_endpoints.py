"""Webhook endpoints of a company: register, change, rotate the secret, list deliveries, replay.

Every function takes the caller's ``company_id`` and never looks outside it: another
company's endpoint is reported exactly like a missing one. A URL is vetted (scheme,
and every address it resolves to) before anything is written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from shared.config import Settings
from shared.errors import Conflict, InvalidInput, NotFound
from shared.models import Event, WebhookDelivery, WebhookEndpoint, utcnow
from shared.sealing import seal
from shared.services import events
from shared.uow import UnitOfWork
from shared.webhooks.signing import new_secret
from shared.webhooks.targets import parse_networks, resolve_target

log = logging.getLogger(__name__)

STATUSES = ("active", "paused", "disabled")
# What the ``state`` filter of a delivery list accepts; ``failed`` is "its last attempt failed".
DELIVERY_FILTERS = ("pending", "retrying", "delivered", "dead", "failed")
# A replay re-sends at most this many events per request (the answer says if more were left).
REPLAY_LIMIT = 10_000


@dataclass
class EndpointWithSecret:
    """A newly registered (or re-keyed) endpoint and its secret, shown this once."""

    endpoint: WebhookEndpoint
    secret: str

    def __getattr__(self, name: str) -> Any:
        return getattr(self.endpoint, name)


@dataclass
class DeliveryPage:
    """One page of an endpoint's deliveries, newest first, with their attempts."""

    items: list[WebhookDelivery]
    total: int
    page: int
    per_page: int


@dataclass
class ReplayResult:
    """How many events a replay queued again, and whether the limit cut it short."""

    queued: int
    truncated: bool
    delivery_ids: list[str]


def vet_url(settings: Settings, url: str) -> str:
    """``url`` if it may be posted to; :class:`InvalidInput` naming ``url`` otherwise."""
    resolve_target(url, parse_networks(settings.WEBHOOK_ALLOWED_NETWORKS))
    return url


def _endpoint(uow: UnitOfWork, company_id: str, endpoint_id: str, *, lock: bool = False) -> WebhookEndpoint:
    query = select(WebhookEndpoint).where(
        WebhookEndpoint.id == endpoint_id, WebhookEndpoint.company_id == company_id
    )
    endpoint = uow.db.scalar(query.with_for_update() if lock else query)
    if endpoint is None:
        raise NotFound(f"webhook endpoint {endpoint_id!r} not found")
    return endpoint


def create_endpoint(
    uow: UnitOfWork,
    company_id: str,
    *,
    url: str,
    event_types: Sequence[str] = (),
    sessions: Sequence[str] = (),
    description: str | None = None,
) -> EndpointWithSecret:
    """Register an endpoint; its signing secret is in the answer and never shown again."""
    vet_url(uow.settings, url)
    secret = new_secret()
    with uow:
        # The count under a lock on the company's endpoints: two parallel registrations
        # cannot both slip under the limit.
        held = uow.db.scalars(
            select(WebhookEndpoint.id).where(WebhookEndpoint.company_id == company_id).with_for_update()
        ).all()
        limit = uow.settings.WEBHOOK_MAX_ENDPOINTS
        if len(held) >= limit:
            raise Conflict(f"the company already has {len(held)} webhook endpoints (the limit is {limit})")
        endpoint = WebhookEndpoint(
            company_id=company_id,
            url=url,
            description=description,
            event_types=json.dumps(sorted(set(event_types))),
            session_names=json.dumps(sorted(set(sessions))),
            secret=seal(uow.settings, secret),
            status="active",
            consecutive_failures=0,
        )
        uow.db.add(endpoint)
        uow.commit()
    log.info("company %s: webhook endpoint %s registered", company_id, endpoint.id)
    return EndpointWithSecret(endpoint, secret)


def list_endpoints(uow: UnitOfWork, company_id: str) -> list[WebhookEndpoint]:
    """The company's endpoints, oldest first (there are at most ``WEBHOOK_MAX_ENDPOINTS``)."""
    with uow:
        return list(
            uow.db.scalars(
                select(WebhookEndpoint)
                .where(WebhookEndpoint.company_id == company_id)
                .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
            )
        )


def get_endpoint(uow: UnitOfWork, company_id: str, endpoint_id: str) -> WebhookEndpoint:
    """One endpoint of the company."""
    with uow:
        return _endpoint(uow, company_id, endpoint_id)


def update_endpoint(
    uow: UnitOfWork, company_id: str, endpoint_id: str, changes: dict[str, Any]
) -> WebhookEndpoint:
    """Change url, event types, sessions, description or status (``active`` resumes it)."""
    if "url" in changes:
        vet_url(uow.settings, changes["url"])
    with uow:
        endpoint = _endpoint(uow, company_id, endpoint_id, lock=True)
        if "url" in changes:
            endpoint.url = changes["url"]
        if "event_types" in changes:
            endpoint.event_types = json.dumps(sorted(set(changes["event_types"])))
        if "sessions" in changes:
            endpoint.session_names = json.dumps(sorted(set(changes["sessions"])))
        if "description" in changes:
            endpoint.description = changes["description"]
        if "status" in changes and changes["status"] != endpoint.status:
            endpoint.status = changes["status"]
            endpoint.status_reason = None if changes["status"] == "active" else "set by an admin"
            if changes["status"] == "active":
                endpoint.consecutive_failures = 0
        endpoint.updated_at = utcnow()
        uow.commit()
    log.info(
        "company %s: webhook endpoint %s changed (%s)", company_id, endpoint_id, ", ".join(sorted(changes))
    )
    return endpoint


def delete_endpoint(uow: UnitOfWork, company_id: str, endpoint_id: str) -> None:
    """Remove an endpoint with its deliveries and their attempts."""
    with uow:
        uow.db.delete(_endpoint(uow, company_id, endpoint_id, lock=True))
        uow.commit()
    log.info("company %s: webhook endpoint %s deleted", company_id, endpoint_id)


def rotate_secret(
    uow: UnitOfWork, company_id: str, endpoint_id: str, grace_seconds: float | None = None
) -> EndpointWithSecret:
    """A new signing secret; the old one goes on signing too for ``grace_seconds``."""
    grace = uow.settings.WEBHOOK_SECRET_GRACE_SECONDS if grace_seconds is None else grace_seconds
    secret = new_secret()
    with uow:
        endpoint = _endpoint(uow, company_id, endpoint_id, lock=True)
        endpoint.previous_secret = endpoint.secret if grace > 0 else None
        endpoint.previous_secret_expires_at = utcnow() + timedelta(seconds=grace) if grace > 0 else None
        endpoint.secret = seal(uow.settings, secret)
        endpoint.updated_at = utcnow()
        uow.commit()
    log.info("company %s: webhook endpoint %s secret rotated (grace %.0f s)", company_id, endpoint_id, grace)
    return EndpointWithSecret(endpoint, secret)


def list_deliveries(
    uow: UnitOfWork,
    company_id: str,
    endpoint_id: str,
    *,
    state: str | None = None,
    page: int = 1,
    per_page: int = 20,
) -> DeliveryPage:
    """A page of the endpoint's deliveries, newest first, each with its event and attempts."""
    with uow:
        _endpoint(uow, company_id, endpoint_id)
        conditions = [WebhookDelivery.endpoint_id == endpoint_id]
        if state == "failed":
            conditions.append(WebhookDelivery.state.in_(["retrying", "dead"]))
        elif state is not None:
            conditions.append(WebhookDelivery.state == state)
        total = uow.db.scalar(select(func.count()).select_from(WebhookDelivery).where(*conditions))
        items = list(
            uow.db.scalars(
                select(WebhookDelivery)
                .where(*conditions)
                .options(selectinload(WebhookDelivery.attempt_rows), selectinload(WebhookDelivery.event))
                .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
                .offset((page - 1) * per_page)
                .limit(per_page)
            )
        )
        return DeliveryPage(items=items, total=total or 0, page=page, per_page=per_page)


def replay(
    uow: UnitOfWork,
    company_id: str,
    endpoint_id: str,
    *,
    event_id: str | None = None,
    since: datetime | None = None,
    session: str | None = None,
    after_seq: int | None = None,
) -> ReplayResult:
    """Queue events for the endpoint again: one by id, every one since a time, or after a number.

    Delivered events too: a receiver that lost its data gets them again, under the same
    ``webhook-id``. Only events the endpoint subscribes to are replayed.
    """
    with uow:
        endpoint = _endpoint(uow, company_id, endpoint_id)
        if endpoint.status == "disabled":
            raise Conflict(f"webhook endpoint {endpoint_id!r} is disabled; set its status to active first")
        query = select(Event).where(Event.company_id == company_id)
        if event_id is not None:
            query = query.where(Event.id == event_id)
        if since is not None:
            query = query.where(Event.created_at >= since)
        if session is not None:
            query = query.where(Event.session_name == session)
        if after_seq is not None:
            query = query.where(Event.seq > after_seq)
        found = list(uow.db.scalars(query.order_by(Event.id).limit(REPLAY_LIMIT + 1)))
        if event_id is not None and not found:
            raise NotFound(f"event {event_id!r} not found")
        chosen = [e for e in found[:REPLAY_LIMIT] if events.wants(endpoint, e.type, e.session_name)]
        if event_id is not None and not chosen:
            raise InvalidInput("event_id", "the endpoint does not subscribe to this event's type or session")
        ids: list[str] = []
        for event in chosen:
            ids.extend(events.fan_out(uow.db, event, [endpoint], replay=True))
        uow.commit()
    log.info("company %s: webhook endpoint %s replay of %d events", company_id, endpoint_id, len(ids))
    return ReplayResult(queued=len(ids), truncated=len(found) > REPLAY_LIMIT, delivery_ids=ids)
