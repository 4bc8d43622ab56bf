"""Sending a session's messages: in order, at the session's pace, exactly once.

A send job takes its session's lock on this worker and sends the oldest unsent
outbound messages of the session, one by one, until its own message is sent; a
message sent on the way by an older job makes the newer job a no-op. Sends are
spaced by ``SEND_RATE_PER_MINUTE`` (plus up to ``SEND_JITTER_SECONDS`` at random),
counted from the last send stored in the database.

Exactly once: before the page is asked, the message's WhatsApp id is generated and
stored with ``sending`` (committed, fenced). A message found ``sending`` later (the
job died half-way, or was redelivered) is looked up in the page by that id: found,
it counts as sent; not found, it is sent once more with the same id, which the page
cannot turn into a second message.

A lazy session that is closed is opened by its send job first (see ``workers.lazy``).
"""

from __future__ import annotations

import importlib
import logging
import random
import threading
import time
from types import ModuleType
from typing import Any

from shared.acks import Ack
from shared.jobs import JobPublisher
from shared.models import Message, aware, utcnow
from shared.send_state import UNSENT_STATES
from shared.services import jobs as job_services
from shared.services import outbox
from shared.services.inbox import page_ack
from shared.services.ownership import Verdict, route_job
from shared.services.send_queue import send_interval
from workers import lazy
from workers.context import WorkerContext
from workers.runner import JobNotVisible

log = logging.getLogger(__name__)

# Longer waits for the session's pace are not slept in a worker thread: the job is retried.
MAX_INLINE_WAIT = 10.0
# How soon a job that could not go ahead (not connected yet, lock busy) tries again.
RETRY_SOON = 2.0
PAGE_KNOWLEDGE = "workers.whatsapp.messaging"

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


class SendLater(Exception):
    """The send cannot go ahead now; retry the job after ``countdown`` seconds.

    ``patient``: only waiting its turn (the session's pace, another send of the
    session); such waits never count towards giving up.
    """

    def __init__(self, countdown: float, reason: str, *, patient: bool = False) -> None:
        super().__init__(reason)
        self.countdown = countdown
        self.patient = patient


class FencedOut(RuntimeError):
    """This worker no longer owns the session at the job's epoch."""


def page_knowledge() -> ModuleType:
    """The page-knowledge module of messages (ids, keys, chat ids), imported on first use."""
    return importlib.import_module(PAGE_KNOWLEDGE)


def session_lock(session_id: str) -> threading.Lock:
    """The lock that keeps one sender per session on this worker."""
    with _locks_guard:
        return _locks.setdefault(session_id, threading.Lock())


def run_send_job(
    ctx: WorkerContext, publisher: JobPublisher, job_id: str, *, last_attempt: bool = False
) -> dict[str, Any] | None:
    """Carry out send job ``job_id``; raises :class:`SendLater` when it must wait.

    On the ``last_attempt`` a message that still cannot be sent (or confirmed) ends
    ERROR with the reason, instead of waiting again.
    """
    job = job_services.start_job(ctx.uow(), job_id, ctx.worker_id)
    if job is None:
        raise JobNotVisible(job_id)
    if job.status in ("succeeded", "failed"):
        return job.result_dict
    message_id = job.params_dict.get("message_id")
    own = outbox.message(ctx.uow(), message_id) if message_id else None
    if own is None:
        job_services.fail_job(ctx.uow(), job_id, "the message no longer exists")
        return None
    if own.send_state not in UNSENT_STATES:
        result = _result(ctx, own, note=f"already {own.send_state}")
        job_services.finish_job(ctx.uow(), job_id, result)
        return result
    routing = route_job(ctx.uow(), publisher, job_id, ctx.worker_id)
    if routing.verdict is Verdict.FORWARDED:
        return None
    if routing.verdict is Verdict.GONE:
        job_services.fail_job(ctx.uow(), job_id, routing.reason)
        return None
    try:
        if routing.verdict is not Verdict.RUN:
            raise SendLater(RETRY_SOON, routing.reason)
        result = _send_in_order(ctx, own.session_id, routing.epoch, own.id)
    except SendLater as later:
        if not last_attempt or later.patient:
            log.info(
                "send job %s of session %s waits %.1fs: %s", job_id, own.session_id, later.countdown, later
            )
            raise
        return _give_up(ctx, job_id, own, routing.epoch, f"not sent: {later}")
    except FencedOut as exc:
        job_services.fail_job(ctx.uow(), job_id, str(exc))
        return None
    except Exception as exc:  # the page failed mid-send: the message stays sending, looked up next time
        log.warning("send job %s of session %s: %s", job_id, own.session_id, type(exc).__name__)
        if not last_attempt:
            raise SendLater(RETRY_SOON, f"{type(exc).__name__}: {exc}") from exc
        return _give_up(ctx, job_id, own, routing.epoch, f"not sent: {type(exc).__name__}: {exc}")
    job_services.finish_job(ctx.uow(), job_id, result)
    return result


def _give_up(ctx: WorkerContext, job_id: str, own: Message, epoch: int, reason: str) -> None:
    outbox.mark_failed(ctx.uow(), own.session_id, ctx.worker_id, epoch, own.id, reason, lease_token=ctx.token)
    job_services.fail_job(ctx.uow(), job_id, reason)
    log.warning("message %s of session %s failed: %s", own.id, own.session_id, reason)


def _connected(ctx: WorkerContext, session_id: str, epoch: int) -> bool:
    state = ctx.manager.status(session_id) if ctx.manager else None
    return ctx.epoch_of(session_id) == epoch and bool(state) and state.get("status") == "connected"


def _send_in_order(ctx: WorkerContext, session_id: str, epoch: int, own_id: str) -> dict[str, Any]:
    """Send the session's oldest unsent messages until ``own_id`` is sent."""
    if not _connected(ctx, session_id, epoch):
        if lazy.open_if_lazy(ctx, session_id, epoch, why="open for a send"):
            # Opening is bounded by the browser timeout; waiting for it is not a failure.
            raise SendLater(RETRY_SOON, "opening the lazy session first", patient=True)
        raise SendLater(RETRY_SOON, "the session is not connected on its worker")
    ctx.touch(session_id)  # a lazy session stays open while it sends
    lock = session_lock(session_id)
    if not lock.acquire(timeout=1.0):
        raise SendLater(RETRY_SOON, "another send of this session is in progress", patient=True)
    sent: list[str] = []
    try:
        while True:
            own = outbox.message(ctx.uow(), own_id)
            if own is None or own.send_state not in UNSENT_STATES:
                break
            oldest = outbox.oldest_unsent(ctx.uow(), session_id)
            if oldest is None:
                break
            _send_one(ctx, session_id, epoch, oldest)
            sent.append(oldest.id)
    finally:
        lock.release()
    return _result(ctx, outbox.message(ctx.uow(), own_id), sent=sent)


def _pace(ctx: WorkerContext, session_id: str) -> None:
    """Wait for the session's next send slot (retrying the job later if it is far)."""
    not_before = aware(outbox.next_send_not_before(ctx.uow(), session_id))
    if not_before is None:
        return
    jitter = random.uniform(0, max(ctx.settings.SEND_JITTER_SECONDS, 0))
    wait = (not_before - utcnow()).total_seconds() + jitter
    if wait > MAX_INLINE_WAIT:
        raise SendLater(
            min(wait, send_interval(ctx.settings)), "waiting for the session's send rate", patient=True
        )
    if wait > 0:
        time.sleep(wait)


def _send_one(ctx: WorkerContext, session_id: str, epoch: int, message: Message) -> None:
    """Send ``message`` once: look it up first if a former attempt may have sent it."""
    page = page_knowledge()
    chat_id = page.chat_id_for(message.chat_id)
    fenced = dict(lease_token=ctx.token)
    if message.send_state == "sending" and message.wa_key_id:
        found = ctx.manager.find_message(session_id, message.wa_message_id, timeout=10)
        if found is not None:
            _confirmed(found)
            log.info("message %s of session %s was sent before; not sent again", message.id, session_id)
            _stored(
                outbox.mark_sent(ctx.uow(), session_id, ctx.worker_id, epoch, message.id, found, **fenced)
            )
            return
        key_id = message.wa_key_id
        _pace(ctx, session_id)
        _stored(outbox.mark_resending(ctx.uow(), session_id, ctx.worker_id, epoch, message.id, **fenced))
    else:
        key_id = page.new_message_id()
        _pace(ctx, session_id)
        _stored(
            outbox.mark_sending(
                ctx.uow(),
                session_id,
                ctx.worker_id,
                epoch,
                message.id,
                wa_key_id=key_id,
                wa_message_id=page.own_message_key(chat_id, key_id),
                **fenced,
            )
        )
    payload = ctx.manager.send_text(
        session_id,
        chat_id=chat_id,
        text=message.body,
        message_id=key_id,
        quoted_wa_id=message.quoted_wa_id or outbox.quoted_wa_id(ctx.uow(), message),
        timeout=ctx.settings.SEND_TIMEOUT,
    )
    _confirmed(payload)
    _stored(outbox.mark_sent(ctx.uow(), session_id, ctx.worker_id, epoch, message.id, payload, **fenced))
    log.info("message %s of session %s sent", message.id, session_id)


def _confirmed(payload: dict[str, Any]) -> None:
    """Go on only once WhatsApp took the message (ack past PENDING, or ERROR).

    A message still PENDING lives only in this page, which keeps trying: it stays
    ``sending`` and the job looks it up again later, so if this worker dies meanwhile
    the next owner does not find it and sends it once more, instead of it counting as
    sent while it never left. Patient: while WhatsApp is unreachable the message waits
    in the page like on a phone, it is not given up (the page could still send it).
    """
    if page_ack(payload.get("ack")) is Ack.PENDING:
        raise SendLater(RETRY_SOON, "WhatsApp has not confirmed the message yet", patient=True)


def _stored(applied: bool) -> None:
    if not applied:
        raise FencedOut("the session moved to another worker (or the message changed) while sending")


def _result(
    ctx: WorkerContext, message: Message | None, *, sent: list[str] | None = None, note: str = ""
) -> dict:
    result: dict[str, Any] = {"worker_id": ctx.worker_id}
    if message is not None:
        result.update(
            message_id=message.id,
            send_state=message.send_state,
            ack=message.ack,
            wa_message_id=message.wa_message_id,
            error=message.error,
        )
    if sent is not None:
        result["sent"] = sent
    if note:
        result["note"] = note
    return result
