"""SQLAlchemy 2 typed models of ZapHub.

Every tenant-owned row carries ``company_id`` so that each query can be scoped to one
company; the indexes follow the queries the API makes (per-company listing, stats).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from shared.acks import Ack
from shared.statuses import SessionStatus


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def aware(moment: datetime | None) -> datetime | None:
    """``moment`` with its UTC zone: SQLite hands datetimes back without it (all stored times are UTC)."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def new_id() -> str:
    """A global opaque id (32 hex chars): safe in URLs and file names."""
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    """Declarative base of every model."""


class Company(Base):
    __tablename__ = "companies"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The newest event id of the company: the next one is made strictly greater under
    # this row's lock, so ids sort in commit order (``shared.services.events``).
    last_event_id: Mapped[str | None] = mapped_column(String(26))

    users: Mapped[list[User]] = relationship(back_populates="company")


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="agent")
    # sha256 of the API token; the token itself is shown once and never stored.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    token_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    company: Mapped[Company] = relationship(back_populates="users")


class WhatsappSession(Base):
    __tablename__ = "whatsapp_sessions"
    __table_args__ = (
        UniqueConstraint("company_id", "name", name="uq_whatsapp_sessions_company_name"),
        Index("ix_whatsapp_sessions_company_status", "company_id", "status"),
        Index("ix_whatsapp_sessions_company_active", "company_id", "is_active"),
        Index("ix_whatsapp_sessions_worker", "worker_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    phone_number: Mapped[str | None] = mapped_column(String(32))
    qr_code: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=SessionStatus.DISCONNECTED.value)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    config: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    worker_id: Mapped[str | None] = mapped_column(String(64))
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    push_name: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str | None] = mapped_column(Text)
    # Compressed, encrypted archive of the profile's storage (shared.login_state).
    auth_state: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    auth_state_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The sequence number of the session's newest event (no gaps: taken in the event's transaction).
    event_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    messages: Mapped[list[Message]] = relationship(
        back_populates="session", cascade="all, delete-orphan", passive_deletes=True
    )
    contacts: Mapped[list[Contact]] = relationship(
        back_populates="session", cascade="all, delete-orphan", passive_deletes=True
    )
    tickets: Mapped[list[Ticket]] = relationship(
        back_populates="session", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def config_dict(self) -> dict[str, Any]:
        """The session's configuration, decoded from its JSON text."""
        text = self.config or "{}"
        try:
            # orjson reads the stored (standard) JSON twice as fast; a page of sessions
            # decodes one per row. Integers past 64 bits are json's alone.
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return json.loads(text)

    @property
    def has_qr_code(self) -> bool:
        """Whether a QR code waits to be scanned."""
        return bool(self.qr_code)

    @property
    def has_auth_state(self) -> bool:
        """Whether a login state is stored (without loading the deferred blob)."""
        return self.auth_state_updated_at is not None


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("session_id", "number", name="uq_contacts_session_number"),
        Index("ix_contacts_company", "company_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    session_id: Mapped[str] = mapped_column(ForeignKey("whatsapp_sessions.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(128))
    # The name the contact gave itself in WhatsApp (``name`` is the phone book's).
    push_name: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    session: Mapped[WhatsappSession] = relationship(back_populates="contacts")


class Message(Base):
    """A WhatsApp message of a session, inbound or outbound.

    Inbound rows (and outbound ones sent from the phone) come from the page and are
    stored once per ``(session_id, wa_message_id)``. Outbound rows created by the API
    start ``queued`` with no WhatsApp id; the worker gives them one just before sending.
    """

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("session_id", "wa_message_id", name="uq_messages_session_wa_id"),
        UniqueConstraint("session_id", "idempotency_key", name="uq_messages_session_idempotency"),
        Index("ix_messages_session_created", "session_id", "created_at"),
        Index("ix_messages_session_chat_created", "session_id", "chat_id", "created_at"),
        Index("ix_messages_session_send_state", "session_id", "send_state", "created_at"),
        Index("ix_messages_company", "company_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    session_id: Mapped[str] = mapped_column(ForeignKey("whatsapp_sessions.id", ondelete="CASCADE"))
    contact_id: Mapped[str | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    ticket_id: Mapped[str | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    direction: Mapped[str] = mapped_column(String(8))  # "in" | "out"
    body: Mapped[str] = mapped_column(Text, default="")
    # The page's serialized message key, unique per session.
    wa_message_id: Mapped[str | None] = mapped_column(String(128))
    # The bare id inside that key: a resend of a half-done send reuses it.
    wa_key_id: Mapped[str | None] = mapped_column(String(64))
    chat_id: Mapped[str | None] = mapped_column(String(128))
    sender: Mapped[str | None] = mapped_column(String(128))
    recipient: Mapped[str | None] = mapped_column(String(128))
    wa_timestamp: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    type: Mapped[str] = mapped_column(String(32), default="chat", server_default="chat")
    ack: Mapped[str] = mapped_column(String(8), default=Ack.PENDING.value, server_default=Ack.PENDING.value)
    # JSON list of {"ack": name, "at": ISO time}: every change of ``ack``, oldest first.
    ack_history: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    # No foreign key: the message replied to may be one we never stored.
    reply_to_id: Mapped[str | None] = mapped_column(String(32))
    quoted_wa_id: Mapped[str | None] = mapped_column(String(128))
    # Outbound only: queued -> sending -> sent | failed.
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    send_state: Mapped[str | None] = mapped_column(String(8))
    error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(32))
    # When the page was asked to send it (the per-session rate counts from here).
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    session: Mapped[WhatsappSession] = relationship(back_populates="messages")

    @property
    def ack_history_list(self) -> list[dict[str, Any]]:
        """The ack history, decoded from its JSON text."""
        return json.loads(self.ack_history or "[]")


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_session_status", "session_id", "status"),
        Index("ix_tickets_company", "company_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    session_id: Mapped[str] = mapped_column(ForeignKey("whatsapp_sessions.id", ondelete="CASCADE"))
    contact_id: Mapped[str | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    session: Mapped[WhatsappSession] = relationship(back_populates="tickets")


class Worker(Base):
    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    queue: Mapped[str] = mapped_column(String(80))
    hostname: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    capacity: Mapped[int] = mapped_column(Integer, default=20)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Random per worker process: only the process holding the lease may write as this worker.
    lease_token: Mapped[str | None] = mapped_column(String(32))


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_company_created", "company_id", "created_at"),
        Index("ix_jobs_session_created", "session_id", "created_at"),
        Index("ix_jobs_status", "status"),
        Index("ix_jobs_status_published", "status", "published_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    company_id: Mapped[str | None] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    # No foreign key: a purged session keeps its job history readable.
    session_id: Mapped[str | None] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    queue: Mapped[str | None] = mapped_column(String(80))
    worker_id: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[str] = mapped_column(Text, default="{}")
    result: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When its message was last put on the broker, and how many times (sync republishes).
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    publish_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Started by beat rather than by a client; ``noop`` once it finished changing nothing.
    scheduled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    noop: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    @property
    def params_dict(self) -> dict[str, Any]:
        """Job parameters, decoded from JSON."""
        return json.loads(self.params or "{}")

    @property
    def result_dict(self) -> Any:
        """Job result, decoded from JSON (``None`` until finished)."""
        return json.loads(self.result) if self.result else None


class Event(Base):
    """One row of the outbox: a change, written in the same transaction as the change.

    ``id`` is a ULID, strictly increasing per company in commit order; ``seq`` counts
    the session's events from 1 with no gaps. No foreign key to the session: the
    ``session.removed`` event outlives a purged session.
    """

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("session_id", "seq", name="uq_events_session_seq"),
        Index("ix_events_company_id", "company_id", "id"),
        Index("ix_events_created", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    session_id: Mapped[str] = mapped_column(String(32))
    session_name: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def payload_dict(self) -> dict[str, Any]:
        """The event's payload, decoded from its JSON text."""
        return json.loads(self.payload or "{}")


class WebhookEndpoint(Base):
    """A company's receiver of events; its signing secrets are stored encrypted."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_company", "company_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(String(200))
    # JSON lists; empty means every event type / every session of the company.
    event_types: Mapped[str] = mapped_column(Text, default="[]")
    session_names: Mapped[str] = mapped_column(Text, default="[]")
    secret: Mapped[str] = mapped_column(Text)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # active | paused (too many failures in a row, or by an admin) | disabled (410 Gone, or by an admin)
    status: Mapped[str] = mapped_column(String(16), default="active")
    status_reason: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    @property
    def event_types_list(self) -> list[str]:
        """The event types this endpoint wants (empty: all)."""
        return json.loads(self.event_types or "[]")

    @property
    def session_names_list(self) -> list[str]:
        """The session names this endpoint covers (empty: all)."""
        return json.loads(self.session_names or "[]")


class WebhookDelivery(Base):
    """One event on its way to one endpoint: pending -> retrying -> delivered | dead."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),
        Index("ix_webhook_deliveries_event", "event_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Last put on the broker; a due delivery not enqueued since is enqueued again by the sweep.
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Claimed by a delivery task until then (a killed task's claim just runs out).
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    replay: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    event: Mapped[Event] = relationship()
    attempt_rows: Mapped[list[WebhookAttempt]] = relationship(
        order_by="WebhookAttempt.attempted_at", cascade="all, delete-orphan", passive_deletes=True
    )


class WebhookAttempt(Base):
    """One POST of a delivery: when, what came back, how long it took."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "attempted_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    response_excerpt: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)


class LegacyImport(Base):
    """One session brought over from the old NestJS service, and what was imported.

    Keyed by the legacy id, without a foreign key: a session removed in ZapHub after its
    import keeps this row, so running the import again does not bring it back.
    ``session_updated_at`` is the session's ``updated_at`` as the import left it; any
    later change in ZapHub moves ``updated_at`` past it and the import leaves it alone.
    """

    __tablename__ = "legacy_imports"

    legacy_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(32), unique=True)
    company_id: Mapped[str] = mapped_column(String(32))
    # The entry's ``updatedAt`` text as the old service wrote it.
    legacy_updated_at: Mapped[str] = mapped_column(String(64))
    # sha256 of the profile's storage files, or None when no usable login was imported.
    profile_digest: Mapped[str | None] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    session_updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LegacyImportRun(Base):
    """A claim on (and the record of) one automatic import, so only one worker runs it.

    ``key`` names the file by its content digest: the same file is imported once.
    """

    __tablename__ = "legacy_import_runs"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    summary: Mapped[str | None] = mapped_column(Text)
