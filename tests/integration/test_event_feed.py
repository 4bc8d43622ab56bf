"""``GET /events`` and ``GET /events/stream``: the feed as pages and as Server-Sent Events.

Both databases, the Flask test client in this process. Events are written with the
real :func:`shared.services.events.emit` in committed transactions; the stream is read
from the response as it is produced, with short poll and heartbeat intervals.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from api import create_app
from shared.services import events
from shared.uow import UnitOfWork
from tests.conftest import make_tenant
from tests.integration.test_messages_store import make_linked


def emit(settings, session_id: str, event_type: str, payload: dict | None = None, count: int = 1) -> list:
    """Commit ``count`` events of ``event_type`` for the session, one transaction each; their ids."""
    ids = []
    for n in range(count):
        with UnitOfWork(settings) as uow:
            event = events.emit(uow.db, session_id, event_type, payload or {"n": n})
            uow.commit()
            ids.append(event.id)
    return ids


@pytest.fixture
def fast(settings):
    """Settings with a stream that polls often, beats rarely and ends soon."""
    return settings.with_overrides(
        EVENTS_STREAM_POLL_SECONDS=0.02,
        EVENTS_STREAM_HEARTBEAT_SECONDS=30.0,
        EVENTS_STREAM_MAX_SECONDS=0.8,
    )


@pytest.fixture
def client(fast):
    return create_app(fast).test_client()


@pytest.fixture
def vendas(settings, tenant):
    return make_linked(settings, tenant.company_id, "vendas")


# ------------------------------------------------------------------ the list


def test_pages_follow_next_after_to_the_end(client, settings, tenant, vendas):
    ids = emit(settings, vendas.id, events.SESSION_STATUS, count=7)
    seen, after, pages = [], None, 0
    while True:
        query = {"limit": 3} | ({"after": after} if after else {})
        response = client.get("/events", query_string=query, headers=tenant.admin)
        assert response.status_code == 200, response.json
        page = response.json
        pages += 1
        seen += [item["id"] for item in page["items"]]
        if page["next_after"] is None:
            break
        assert page["next_after"] == page["items"][-1]["id"]
        after = page["next_after"]
    assert seen == ids
    assert pages == 3  # 3 + 3 + 1

    first = client.get("/events", query_string={"after": ids[4]}, headers=tenant.admin).json
    assert [item["id"] for item in first["items"]] == ids[5:]
    assert first["next_after"] is None
    item = first["items"][0]
    assert item["type"] == "session.status" and item["session"] == "vendas"
    assert item["session_id"] == vendas.id and item["seq"] == 6 and item["payload"] == {"n": 5}


def test_filters_by_session_and_repeated_type(client, settings, tenant, vendas):
    suporte = make_linked(settings, tenant.company_id, "suporte", token=vendas.token)
    status = emit(settings, vendas.id, events.SESSION_STATUS)
    qr = emit(settings, vendas.id, events.SESSION_QR, {"qr": "2@x"})
    received = emit(settings, vendas.id, events.MESSAGE_RECEIVED)
    other = emit(settings, suporte.id, events.SESSION_STATUS)

    def listed(query) -> list[str]:
        response = client.get("/events", query_string=query, headers=tenant.admin)
        assert response.status_code == 200, response.json
        return [item["id"] for item in response.json["items"]]

    assert listed({}) == status + qr + received + other
    assert listed({"session": "vendas"}) == status + qr + received
    assert listed({"session": "suporte"}) == other
    assert listed({"type": ["session.status", "message.received"]}) == status + received + other
    assert listed({"session": "vendas", "type": "session.qr"}) == qr
    assert listed({"session": "nobody"}) == []


@pytest.mark.parametrize("bad", ["not-an-id", "0" * 25, "01ARZ3NDEKTSV4RRFFQ69G5FAU!"])
def test_a_bad_after_is_422_naming_the_field(client, tenant, bad):
    response = client.get("/events", query_string={"after": bad}, headers=tenant.admin)
    assert response.status_code == 422
    assert "after" in response.json["errors"]["query"]


def test_a_bad_type_is_422_naming_the_field(client, tenant):
    response = client.get("/events", query_string={"type": "session.nope"}, headers=tenant.admin)
    assert response.status_code == 422
    assert "type" in response.json["errors"]["query"]


def test_agents_never_see_qr_events(client, settings, tenant, vendas):
    status = emit(settings, vendas.id, events.SESSION_STATUS)
    emit(settings, vendas.id, events.SESSION_QR, {"qr": "2@secret"})
    received = emit(settings, vendas.id, events.MESSAGE_RECEIVED)

    everything = client.get("/events", headers=tenant.agent)
    assert everything.status_code == 200
    assert [item["id"] for item in everything.json["items"]] == status + received
    assert "2@secret" not in everything.get_data(as_text=True)

    both = {"type": ["session.qr", "session.status"]}
    mixed = client.get("/events", query_string=both, headers=tenant.agent)
    assert [item["id"] for item in mixed.json["items"]] == status

    only_qr = client.get("/events", query_string={"type": "session.qr"}, headers=tenant.agent)
    assert only_qr.status_code == 403
    stream = client.get("/events/stream", query_string={"type": "session.qr"}, headers=tenant.agent)
    assert stream.status_code == 403

    admin = client.get("/events", query_string={"type": "session.qr"}, headers=tenant.admin)
    assert [item["payload"] for item in admin.json["items"]] == [{"qr": "2@secret"}]


def test_another_companys_events_are_never_listed(client, settings, tenant, vendas):
    globex = make_tenant(settings, "globex")
    theirs = make_linked(settings, globex.company_id, "vendas", token=vendas.token)
    ours = emit(settings, vendas.id, events.SESSION_STATUS, count=2)
    other = emit(settings, theirs.id, events.SESSION_STATUS, count=3)

    mine = client.get("/events", headers=tenant.admin).json
    assert [item["id"] for item in mine["items"]] == ours
    # Nor by the name of a session both companies have.
    named = client.get("/events", query_string={"session": "vendas"}, headers=tenant.admin).json
    assert [item["id"] for item in named["items"]] == ours
    assert [item["id"] for item in client.get("/events", headers=globex.agent).json["items"]] == other


# ------------------------------------------------------------------ the stream


class Stream:
    """An open ``/events/stream`` response of the test client, read message by message."""

    def __init__(self, response) -> None:
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.mimetype == "text/event-stream"
        self.response = response
        self._chunks = iter(response.response)
        self._buffer = ""

    def messages(self) -> Iterator[str]:
        """Each message's text (the lines up to its blank line), until the stream ends."""
        while True:
            while "\n\n" not in self._buffer:
                chunk = next(self._chunks, None)
                if chunk is None:
                    return
                self._buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
            message, self._buffer = self._buffer.split("\n\n", 1)
            yield message

    def events(self) -> Iterator[dict]:
        """Each event message as ``{"id", "event", "data"}`` (comments and ``retry`` skipped)."""
        for message in self.messages():
            fields = dict(line.split(": ", 1) for line in message.split("\n") if not line.startswith(":"))
            if "id" in fields:
                yield {"id": fields["id"], "event": fields["event"], "data": json.loads(fields["data"])}

    def close(self) -> None:
        self.response.close()


def open_stream(client, headers, **query) -> Stream:
    return Stream(client.get("/events/stream", query_string=query, headers=headers, buffered=False))


def test_reconnecting_with_last_event_id_resumes_after_it_once_each(client, settings, tenant, vendas):
    """The issue's check: a client drops at event 50 of 100, reconnects, gets 51 to 100 once each."""
    first = open_stream(client, tenant.admin)
    ids = emit(settings, vendas.id, events.MESSAGE_RECEIVED, count=100)
    got = []
    for event in first.events():
        got.append(event["id"])
        if len(got) == 50:
            break
    first.close()
    assert got == ids[:50]

    again = open_stream(client, tenant.admin | {"Last-Event-ID": got[-1]})
    resumed = list(again.events())  # until the stream ends
    assert [event["id"] for event in resumed] == ids[50:]
    assert [event["data"]["seq"] for event in resumed] == list(range(51, 101))


def test_messages_carry_the_webhook_envelope(client, settings, tenant, vendas):
    stream = open_stream(client, tenant.admin)
    (event_id,) = emit(settings, vendas.id, events.SESSION_STATUS, {"old_status": "A", "status": "B"})
    event = next(stream.events())
    stream.close()
    assert event["id"] == event_id and event["event"] == "session.status"
    data = event["data"]
    assert data["id"] == event_id and data["type"] == "session.status"
    assert data["session"] == {"id": vendas.id, "name": "vendas"}
    assert data["seq"] == 1 and data["data"] == {"old_status": "A", "status": "B"}
    assert data["company_id"] == tenant.company_id and data["timestamp"]


def test_a_new_stream_starts_with_the_next_event_not_history(client, settings, tenant, vendas):
    emit(settings, vendas.id, events.SESSION_STATUS, count=3)
    stream = open_stream(client, tenant.admin)
    preamble = next(stream.messages())
    assert preamble.startswith("retry: ") and ": connected" in preamble
    # Committed while the client is connected (after its preamble was read).
    later = emit(settings, vendas.id, events.MESSAGE_RECEIVED, count=2)
    assert [event["id"] for event in stream.events()] == later  # and nothing older; then it ends


def test_the_stream_filters_and_hides_qr_from_agents(client, settings, tenant, vendas):
    agent = open_stream(client, tenant.agent)
    admin_qr = open_stream(client, tenant.admin, type="session.qr")
    status = emit(settings, vendas.id, events.SESSION_STATUS)
    qr = emit(settings, vendas.id, events.SESSION_QR, {"qr": "2@x"})
    assert [event["id"] for event in agent.events()] == status
    assert [event["id"] for event in admin_qr.events()] == qr


def test_another_companys_events_never_reach_the_stream(client, settings, tenant, vendas):
    globex = make_tenant(settings, "globex")
    theirs = make_linked(settings, globex.company_id, "vendas", token=vendas.token)
    stream = open_stream(client, tenant.admin)
    emit(settings, theirs.id, events.SESSION_STATUS, count=3)
    ours = emit(settings, vendas.id, events.SESSION_STATUS)
    assert [event["id"] for event in stream.events()] == ours


def test_an_idle_stream_sends_heartbeats(settings, tenant):
    idle = settings.with_overrides(
        EVENTS_STREAM_POLL_SECONDS=0.02, EVENTS_STREAM_HEARTBEAT_SECONDS=0.1, EVENTS_STREAM_MAX_SECONDS=0.6
    )
    stream = open_stream(create_app(idle).test_client(), tenant.admin)
    messages = list(stream.messages())
    assert messages[0].startswith("retry: ")
    beats = [m for m in messages[1:] if m == ": heartbeat"]
    assert len(beats) >= 2 and beats == messages[1:]


def test_the_stream_ends_after_its_maximum(client, tenant):
    stream = open_stream(client, tenant.admin)
    assert len(list(stream.messages())) == 1  # the preamble, then the end (0.8 s)


@pytest.mark.parametrize("bad", ["42", "not-a-ulid", "01ARZ3NDEKTSV4RRFFQ69G5FA"])
def test_a_last_event_id_that_is_not_an_event_id_is_422(client, tenant, bad):
    response = client.get("/events/stream", headers=tenant.admin | {"Last-Event-ID": bad})
    assert response.status_code == 422
    assert "Last-Event-ID" in response.json["errors"]["headers"]
