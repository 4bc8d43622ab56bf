"""Message ack states: names in the database, integers in WhatsApp Web.

One table maps them both ways (like :mod:`shared.statuses`); every conversion in the
project goes through it. Acks only move forward: a late SERVER never overwrites READ,
and ERROR is final.
"""

from __future__ import annotations

import enum


class Ack(enum.StrEnum):
    """Delivery state of a message as stored in the database."""

    ERROR = "ERROR"
    PENDING = "PENDING"
    SERVER = "SERVER"
    DEVICE = "DEVICE"
    READ = "READ"
    PLAYED = "PLAYED"


PAGE_TO_ACK: dict[int, Ack] = {
    -1: Ack.ERROR,
    0: Ack.PENDING,
    1: Ack.SERVER,
    2: Ack.DEVICE,
    3: Ack.READ,
    4: Ack.PLAYED,
}
ACK_TO_PAGE: dict[Ack, int] = {ack: number for number, ack in PAGE_TO_ACK.items()}

# Acks after which an inbound message counts as read by the phone.
READ_ACKS = frozenset({Ack.READ, Ack.PLAYED})
# Acks from which a failure can still happen (the message has not reached a device).
UNDELIVERED_ACKS = frozenset({Ack.PENDING, Ack.SERVER})


def from_page(value: int) -> Ack:
    """Map the page's integer ack to an :class:`Ack` (unknown values raise ``KeyError``)."""
    return PAGE_TO_ACK[int(value)]


def to_page(ack: Ack | str) -> int:
    """Map a stored ack name to the page's integer."""
    return ACK_TO_PAGE[Ack(ack)]


def advances(current: Ack | str, new: Ack | str) -> bool:
    """Whether moving from ``current`` to ``new`` is progress (acks never go back).

    ERROR is final, and replaces only a message that reached no device yet: a message
    that was delivered or read cannot fail afterwards.
    """
    current, new = Ack(current), Ack(new)
    if current is Ack.ERROR or current == new:
        return False
    if new is Ack.ERROR:
        return current in UNDELIVERED_ACKS
    return ACK_TO_PAGE[new] > ACK_TO_PAGE[current]
