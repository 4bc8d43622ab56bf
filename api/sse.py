"""Server-Sent Events framing of the events feed (``text/event-stream``)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from shared.models import Event
from shared.services.webhook_delivery import envelope

# How long a browser's EventSource waits before it reconnects (it sends Last-Event-ID).
RECONNECT_MS = 2000


def frame(event: Event) -> str:
    """One SSE message: the event id (for Last-Event-ID), its type, the webhook body as data."""
    data = json.dumps(envelope(event), separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n"


def render(feed: Iterator[Event | None]) -> Iterator[str]:
    """The stream's text: a reconnect delay, then each event, and a comment for each heartbeat."""
    yield f"retry: {RECONNECT_MS}\n: connected\n\n"
    for item in feed:
        yield ": heartbeat\n\n" if item is None else frame(item)
