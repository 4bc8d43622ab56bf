"""The send job: order, pace, exactly-once across half-done sends, fencing (both databases).

These tests drive ``workers.sending`` against a FAKE page: ``FakePage`` stands in for
the session manager's ``send_text``/``find_message``/``status`` and ``PAGE`` for the
page-knowledge module (``workers.whatsapp.messaging``), both written to the contract
agreed with the page side. The end-to-end test against the simulator comes with it.
"""

from __future__ import annotations

import itertools
import time
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from shared.models import Job, Message, WhatsappSession, Worker
from shared.services import messages as message_services
from shared.uow import UnitOfWork
from tests.integration.test_messages_store import make_linked
from workers import sending
from workers.context import WorkerContext
from workers.sending import SendLater, run_send_job

_ids = itertools.count(1)
PAGE = SimpleNamespace(
    new_message_id=lambda: f"3EB0{next(_ids):016X}",
    own_message_key=lambda chat_id, message_id: f"true_{chat_id}_{message_id}",
    chat_id_for=lambda to: to if "@" in to else f"{to}@c.us",
)


class FakePage:
    """A linked page keeping what it was sent by message key: a resend with the same id is one message."""

    def __init__(self) -> None:
        self.sent: dict[str, dict] = {}
        self.calls: list[tuple[str, str, float]] = []  # (key, text, when)
        self.connected = True
        self.crash: str | None = None  # "before" or "after" the page takes the next send
        self.ack = 1

    def status(self, _session_id):
        return {"status": "connected" if self.connected else "connecting", "live": True}

    def send_text(self, session_id, *, chat_id, text, message_id, quoted_wa_id=None, timeout=30):
        key = PAGE.own_message_key(chat_id, message_id)
        crash, self.crash = self.crash, None
        if crash == "before":
            raise TimeoutError("page did not answer")
        self.calls.append((key, text, time.monotonic()))
        self.sent.setdefault(key, self._payload(key, message_id, chat_id, text, quoted_wa_id))
        if crash == "after":
            raise RuntimeError("browser crashed after the page took the message")
        return self.sent[key]

    def find_message(self, session_id, wa_id, timeout=10):
        return self.sent.get(wa_id)

    def _payload(self, key, message_id, chat_id, text, quoted_wa_id):
        return {
            "wa_id": key,
            "id": message_id,
            "chat_id": chat_id,
            "from_me": True,
            "sender": "5511888880000@c.us",
            "recipient": chat_id,
            "timestamp": int(time.time()),
            "type": "chat",
            "body": text,
            "ack": self.ack,
            "quoted_wa_id": quoted_wa_id,
            "contact": None,
        }


class Recorder:
    """A job publisher that only records (the routes' own tests check the broker)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str, str]] = []

    def publish(self, kind, job_id, queue) -> None:
        self.published.append((str(kind), job_id, queue))


@pytest.fixture(autouse=True)
def page_knowledge(monkeypatch):
    monkeypatch.setattr(sending, "page_knowledge", lambda: PAGE)


@pytest.fixture
def linked(settings, tenant):
    return make_linked(settings, tenant.company_id)


@pytest.fixture
def page() -> FakePage:
    return FakePage()


def context(settings, linked, page, **overrides) -> WorkerContext:
    fast = {"WORKER_ID": "w1", "SEND_RATE_PER_MINUTE": 60_000.0, "SEND_JITTER_SECONDS": 0.0, **overrides}
    ctx = WorkerContext(settings.with_overrides(**fast))
    ctx.lease_token = linked.token
    ctx.manager = page
    ctx.adopt(linked.id, linked.epoch)
    return ctx


@pytest.fixture
def ctx(settings, linked, page) -> WorkerContext:
    return context(settings, linked, page)


def queue_send(settings, text: str, **extra) -> message_services.MessageJob:
    return message_services.send_message(
        UnitOfWork(settings), Recorder(), _company(settings), "vendas", "5511999990001", text, **extra
    )


def _company(settings) -> str:
    with UnitOfWork(settings) as uow:
        return uow.db.scalar(select(WhatsappSession.company_id).where(WhatsappSession.name == "vendas"))


def row(settings, message_id: str) -> Message:
    with UnitOfWork(settings) as uow:
        return uow.db.get(Message, message_id)


def job_row(settings, job_id: str) -> Job:
    with UnitOfWork(settings) as uow:
        return uow.db.get(Job, job_id)


def test_sends_leave_in_created_order_and_older_jobs_become_no_ops(settings, ctx, page):
    queued = [queue_send(settings, f"m{n}") for n in range(3)]
    result = run_send_job(ctx, Recorder(), queued[2].job.id)
    assert result["send_state"] == "sent" and result["sent"] == [q.message.id for q in queued]
    assert [text for _, text, _ in page.calls] == ["m0", "m1", "m2"]
    for q in queued[:2]:
        assert run_send_job(ctx, Recorder(), q.job.id)["note"] == "already sent"
    assert len(page.calls) == 3
    for q in queued:
        stored = row(settings, q.message.id)
        assert (stored.send_state, stored.ack, stored.error) == ("sent", "SERVER", None)
        assert stored.wa_message_id == f"true_5511999990001@c.us_{stored.wa_key_id}"
        assert [h["ack"] for h in stored.ack_history_list] == ["PENDING", "SERVER"]
        assert job_row(settings, q.job.id).status == "succeeded"


def test_a_job_stops_at_its_own_message(settings, ctx, page):
    first, second = queue_send(settings, "a"), queue_send(settings, "b")
    assert run_send_job(ctx, Recorder(), first.job.id)["sent"] == [first.message.id]
    assert row(settings, second.message.id).send_state == "queued"


def test_sends_are_spaced_by_the_session_rate(settings, linked, page):
    ctx = context(settings, linked, page, SEND_RATE_PER_MINUTE=200.0)  # one each 0.3 s
    queued = [queue_send(settings, f"m{n}") for n in range(3)]
    run_send_job(ctx, Recorder(), queued[-1].job.id)
    times = [when for _, _, when in page.calls]
    assert all(later - earlier >= 0.28 for earlier, later in itertools.pairwise(times)), times


def test_a_far_next_slot_retries_the_job_instead_of_sleeping(settings, linked, page):
    ctx = context(settings, linked, page, SEND_RATE_PER_MINUTE=2.0)  # one each 30 s
    first, second = queue_send(settings, "a"), queue_send(settings, "b")
    run_send_job(ctx, Recorder(), first.job.id)
    with pytest.raises(SendLater) as later:
        run_send_job(ctx, Recorder(), second.job.id)
    assert 0 < later.value.countdown <= 30
    assert row(settings, second.message.id).send_state == "queued" and len(page.calls) == 1
    with UnitOfWork(settings) as uow:
        from shared.services.send_queue import send_queue

        queue = send_queue(uow.db, linked.id, settings)
    assert queue.pending == 1 and queue.next_send_not_before is not None


def test_a_send_that_died_after_the_page_took_it_is_found_and_not_sent_again(settings, ctx, page):
    queued = queue_send(settings, "once")
    page.crash = "after"
    with pytest.raises(SendLater):
        run_send_job(ctx, Recorder(), queued.job.id)
    half = row(settings, queued.message.id)
    assert half.send_state == "sending" and half.wa_key_id
    result = run_send_job(ctx, Recorder(), queued.job.id)  # the retry
    assert result["send_state"] == "sent"
    assert len(page.calls) == 1 and list(page.sent) == [half.wa_message_id]


def test_a_send_that_died_before_the_page_took_it_is_sent_once_more_with_the_same_id(settings, ctx, page):
    queued = queue_send(settings, "again")
    page.crash = "before"
    with pytest.raises(SendLater):
        run_send_job(ctx, Recorder(), queued.job.id)
    key = row(settings, queued.message.id).wa_message_id
    assert page.sent == {}
    assert run_send_job(ctx, Recorder(), queued.job.id)["send_state"] == "sent"
    assert [k for k, _, _ in page.calls] == [key] and list(page.sent) == [key]


def test_a_send_still_pending_in_the_page_stays_sending_until_whatsapp_takes_it(settings, ctx, page):
    queued = queue_send(settings, "pending")
    page.ack = 0  # WhatsApp unreachable: the page keeps the message PENDING and retries
    with pytest.raises(SendLater):
        run_send_job(ctx, Recorder(), queued.job.id)
    held = row(settings, queued.message.id)
    assert (held.send_state, held.ack) == ("sending", "PENDING")
    with pytest.raises(SendLater):  # looked up, still PENDING: not counted as sent
        run_send_job(ctx, Recorder(), queued.job.id)
    assert row(settings, queued.message.id).send_state == "sending"

    page.sent.clear()  # the page died with it: a new page does not know it
    page.ack = 1
    assert run_send_job(ctx, Recorder(), queued.job.id)["send_state"] == "sent"
    assert [k for k, _, _ in page.calls] == [held.wa_message_id] * 2 and list(page.sent) == [
        held.wa_message_id
    ]
    assert row(settings, queued.message.id).ack == "SERVER"


def test_a_redelivered_job_of_a_sent_message_is_a_no_op(settings, ctx, page):
    queued = queue_send(settings, "x")
    run_send_job(ctx, Recorder(), queued.job.id)
    with UnitOfWork(settings) as uow:  # as if the job row had not been closed
        uow.db.get(Job, queued.job.id).status = "running"
        uow.commit()
    assert run_send_job(ctx, Recorder(), queued.job.id)["note"] == "already sent"
    assert len(page.calls) == 1


def test_the_last_attempt_while_not_connected_ends_error_with_a_reason(settings, ctx, page):
    queued = queue_send(settings, "x")
    page.connected = False
    with pytest.raises(SendLater):
        run_send_job(ctx, Recorder(), queued.job.id)
    run_send_job(ctx, Recorder(), queued.job.id, last_attempt=True)
    failed = row(settings, queued.message.id)
    assert (failed.send_state, failed.ack) == ("failed", "ERROR") and "not connected" in failed.error
    assert job_row(settings, queued.job.id).status == "failed" and page.calls == []


def test_a_page_refusal_is_error(settings, ctx, page):
    queued = queue_send(settings, "x")
    page.ack = -1
    run_send_job(ctx, Recorder(), queued.job.id)
    refused = row(settings, queued.message.id)
    assert (refused.send_state, refused.ack) == ("failed", "ERROR") and refused.error


def test_a_fenced_out_worker_sends_nothing(settings, ctx, page, linked):
    queued = queue_send(settings, "x")
    with UnitOfWork(settings) as uow:  # another process took over the worker id
        uow.db.get(Worker, "w1").lease_token = "f" * 32
        uow.commit()
    run_send_job(ctx, Recorder(), queued.job.id)
    assert page.calls == [] and row(settings, queued.message.id).send_state == "queued"
    assert job_row(settings, queued.job.id).status == "failed"


def test_a_job_issued_before_a_move_follows_the_session(settings, ctx, page, linked):
    queued = queue_send(settings, "x")
    with UnitOfWork(settings) as uow:  # the session moved (to this worker) after the request
        uow.db.get(WhatsappSession, linked.id).epoch = 4
        uow.commit()
    ctx.adopt(linked.id, 4)
    assert run_send_job(ctx, Recorder(), queued.job.id)["send_state"] == "sent"


def test_a_reply_quotes_the_wa_id_of_the_message_it_answers(settings, ctx, page):
    first = queue_send(settings, "question")
    reply = queue_send(settings, "answer", reply_to=first.message.id)
    run_send_job(ctx, Recorder(), reply.job.id)
    quoted = row(settings, first.message.id).wa_message_id
    assert page.sent[row(settings, reply.message.id).wa_message_id]["quoted_wa_id"] == quoted


def test_the_send_task_is_registered_by_its_explicit_name():
    from shared.jobs import TASK_NAMES, JobKind
    from workers.celery_app import app
    from workers.tasks import send_message

    assert send_message.name == TASK_NAMES[JobKind.SEND] == "zaphub.message.send"
    assert "zaphub.message.send" in app.tasks


def test_a_send_of_a_dead_worker_is_queued_again_and_the_next_owner_finishes_it_once(
    settings, ctx, page, linked
):
    from datetime import timedelta

    from shared.models import utcnow
    from shared.services import workers as worker_services
    from shared.services.ownership import fail_stranded_jobs, republish_lost_jobs

    queued = queue_send(settings, "survives")
    page.crash = "after"  # the page took it, then the worker died before storing that
    with pytest.raises(SendLater):
        run_send_job(ctx, Recorder(), queued.job.id)
    with UnitOfWork(settings) as uow:
        uow.db.get(Worker, "w1").heartbeat_at = utcnow() - timedelta(seconds=300)
        uow.commit()
    token = worker_services.register_worker(
        UnitOfWork(settings), "w2", hostname="h2", pid=2, capacity=5, lease_seconds=30
    )

    assert fail_stranded_jobs(UnitOfWork(settings), None) == 0  # not failed: queued again
    stranded = job_row(settings, queued.job.id)
    assert (stranded.status, stranded.queue, stranded.worker_id) == ("queued", "control", None)
    recorder = Recorder()
    fast = settings.with_overrides(JOB_REPUBLISH_SECONDS=0.0)
    assert republish_lost_jobs(UnitOfWork(fast), recorder, None) == [queued.job.id]
    assert recorder.published == [("send", queued.job.id, "control")]

    successor = context(settings, linked, page, WORKER_ID="w2")
    successor.lease_token = token
    successor.adopt(linked.id, linked.epoch + 1)  # the restore on w2 runs it at the next epoch
    result = run_send_job(successor, Recorder(), queued.job.id)
    assert result["send_state"] == "sent" and len(page.calls) == 1
    assert job_row(settings, queued.job.id).status == "succeeded"


@pytest.mark.parametrize("patient,counted", [(True, 3), (False, 4)])
def test_waiting_its_turn_never_counts_towards_giving_up(monkeypatch, patient, counted):
    import workers.tasks as tasks

    seen = {}

    def run(_ctx, _publisher, job_id, *, last_attempt):
        seen["last_attempt"] = last_attempt
        raise SendLater(1.5, "busy", patient=patient)

    class Retry(Exception):
        pass

    def retry(**options):
        seen.update(options)
        return Retry()

    monkeypatch.setattr(tasks, "run_send_job", run)
    monkeypatch.setattr(tasks, "current", lambda: None)
    monkeypatch.setattr(tasks, "_publisher", lambda: None)
    monkeypatch.setattr(tasks.send_message, "retry", retry)
    with pytest.raises(Retry):
        tasks.send_message.run("job-1", failures=3)
    assert seen["kwargs"] == {"failures": counted} and seen["args"] == ["job-1"]
    assert seen["countdown"] == 1.5 and seen["max_retries"] is None and seen["last_attempt"] is False
