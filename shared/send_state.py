"""Where an outbound message is on its way out: queued -> sending -> sent | failed."""

from __future__ import annotations

import enum


class SendState(enum.StrEnum):
    """Send state of an outbound message (``None`` for inbound ones)."""

    QUEUED = "queued"  # stored by the API, its job not yet at the page
    SENDING = "sending"  # its WhatsApp id is stored and the page was (maybe) asked
    SENT = "sent"  # the page has it
    FAILED = "failed"  # given up, ``error`` says why


UNSENT_STATES = (SendState.QUEUED.value, SendState.SENDING.value)
