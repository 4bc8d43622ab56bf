"""Session statuses: uppercase in the database, lowercase in worker memory.

One table maps them both ways; every conversion in the project goes through it.
"""

from __future__ import annotations

import enum


class SessionStatus(enum.StrEnum):
    """Status of a session as stored in the database."""

    DISCONNECTED = "DISCONNECTED"
    CONNECTING = "CONNECTING"
    QRCODE = "QRCODE"
    CONNECTED = "CONNECTED"
    ERROR = "ERROR"


class MemoryStatus(enum.StrEnum):
    """Status of a live session in a worker's memory."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    QRCODE = "qrcode"
    CONNECTED = "connected"
    ERROR = "error"


DATABASE_TO_MEMORY: dict[SessionStatus, MemoryStatus] = {
    SessionStatus.DISCONNECTED: MemoryStatus.DISCONNECTED,
    SessionStatus.CONNECTING: MemoryStatus.CONNECTING,
    SessionStatus.QRCODE: MemoryStatus.QRCODE,
    SessionStatus.CONNECTED: MemoryStatus.CONNECTED,
    SessionStatus.ERROR: MemoryStatus.ERROR,
}
MEMORY_TO_DATABASE: dict[MemoryStatus, SessionStatus] = {
    memory: database for database, memory in DATABASE_TO_MEMORY.items()
}

# Statuses in which a worker holds (or is building) a browser context.
ACTIVE_STATUSES = frozenset({SessionStatus.CONNECTING, SessionStatus.QRCODE, SessionStatus.CONNECTED})


def to_memory(status: SessionStatus | str) -> MemoryStatus:
    """Map a database status (enum or its string) to the worker-memory status."""
    return DATABASE_TO_MEMORY[SessionStatus(status)]


def to_database(status: MemoryStatus | str) -> SessionStatus:
    """Map a worker-memory status (enum or its string) to the database status."""
    return MEMORY_TO_DATABASE[MemoryStatus(status)]


# The old NestJS service (whatsapp-web.js) stored lowercase statuses; ``zaphub import-legacy``
# maps them here. Its five main ones are our memory statuses; the rest are the names it
# used for whatsapp-web.js events (``qr``, ``authenticated``, ``ready``, ``auth_failure``…).
LEGACY_TO_DATABASE: dict[str, SessionStatus] = {
    **{memory.value: database for memory, database in MEMORY_TO_DATABASE.items()},
    "initializing": SessionStatus.CONNECTING,
    "loading": SessionStatus.CONNECTING,
    "qr": SessionStatus.QRCODE,
    "authenticated": SessionStatus.CONNECTED,
    "ready": SessionStatus.CONNECTED,
    "auth_failure": SessionStatus.ERROR,
    "failed": SessionStatus.ERROR,
    "logged_out": SessionStatus.DISCONNECTED,
    "destroyed": SessionStatus.DISCONNECTED,
}


def from_legacy(status: str) -> SessionStatus:
    """Map a status of the old service to the database status; ``KeyError`` if unknown."""
    return LEGACY_TO_DATABASE[status]
