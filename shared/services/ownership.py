"""Who runs a session: placement, forwarding and fencing of session jobs.

A session row names its owner (``worker_id``) and an ``epoch``; every change of owner
bumps the epoch. A job carries the epoch it was issued for, and a worker acts on a
session only while it is the owner *and* the epochs match, so a stale or duplicated
job can never overwrite newer state.
"""

from __future__ import annotations

import enum
import json
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Row, func, select, update
from sqlalchemy.orm import Session as DbSession

from shared import worker_stats
from shared.config import CONTROL_QUEUE, queue_for_worker
from shared.db import seconds_since_outage
from shared.jobs import JobKind, JobPublisher, JobStatus
from shared.models import Job, WhatsappSession, Worker, utcnow
from shared.services import events
from shared.services.jobs import enqueue, publish
from shared.services.workers import choose_worker, is_alive, live_workers
from shared.statuses import SessionStatus
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)


class Verdict(enum.StrEnum):
    RUN = "run"  # this worker owns the session at the job's epoch: act
    FORWARDED = "forwarded"  # sent on to the owner's queue
    STALE = "stale"  # the job was issued for an older epoch: change nothing
    GONE = "gone"  # the session no longer exists
    NO_WORKER = "no_worker"  # nobody live with free capacity can take it


@dataclass
class Routing:
    """What a worker should do with a session job it received."""

    verdict: Verdict
    epoch: int = 0
    owner: str | None = None
    reason: str = ""


def job_epoch(job: Job) -> int | None:
    """The session epoch a job was issued for (``None`` before placement)."""
    return job.params_dict.get("epoch")


# Closing and deactivating mean the same thing at any epoch: a move of the session
# must not cancel them, and any live worker may carry them out.
EPOCH_FREE_KINDS = frozenset({JobKind.STOP, JobKind.REMOVE})
# A send is the client's wish at any epoch: after a move it follows the session to its
# new owner instead of going stale (the message's own send state keeps it exactly-once).
EPOCH_FOLLOWING_KINDS = frozenset({JobKind.SEND})
PLACEMENT_ATTEMPTS = 3
# Workers that heartbeated within this many leases count as "alive recently".
SILENCE_LOOKBACK_LEASES = 10


def route_job(uow: UnitOfWork, publisher: JobPublisher, job_id: str, me: str) -> Routing:
    """Decide whether worker ``me`` runs job ``job_id``, forwarding it when it should not.

    Placement happens here too: a job for a session without a live owner makes the
    least-loaded live worker its owner (epoch + 1) and goes to that worker's queue.
    """
    for _ in range(PLACEMENT_ATTEMPTS):
        routing = _route_once(uow, publisher, job_id, me)
        if routing is not None:
            return routing
    return Routing(Verdict.NO_WORKER, reason="the session kept moving while being placed; retry")


def _route_once(uow: UnitOfWork, publisher: JobPublisher, job_id: str, me: str) -> Routing | None:
    lease = uow.settings.WORKER_LEASE
    with uow:
        job = uow.db.get(Job, job_id)
        session = uow.db.get(WhatsappSession, job.session_id) if job and job.session_id else None
        if job is None or session is None:
            return Routing(Verdict.GONE, reason="session no longer exists")
        kind = JobKind(job.kind)
        epoch, issued = session.epoch, job_epoch(job)
        stale_able = kind not in EPOCH_FREE_KINDS | EPOCH_FOLLOWING_KINDS
        if stale_able and issued is not None and issued < epoch:
            return Routing(
                Verdict.STALE,
                epoch,
                session.worker_id,
                f"stale job: issued for epoch {issued}, session is at epoch {epoch}",
            )
        owner = uow.db.get(Worker, session.worker_id) if session.worker_id else None
        if not is_alive(owner, lease):
            owner = uow.db.get(Worker, me) if kind in EPOCH_FREE_KINDS else choose_worker(uow.db, lease)
            if owner is None:
                return Routing(Verdict.NO_WORKER, epoch, None, "no live worker with free capacity")
            # Compare-and-set on the epoch: of two concurrent placements only one wins.
            moved = uow.db.execute(
                update(WhatsappSession)
                .where(WhatsappSession.id == session.id, WhatsappSession.epoch == epoch)
                .values(worker_id=owner.id, epoch=epoch + 1)
                .execution_options(synchronize_session=False)
            )
            if moved.rowcount != 1:
                return None
            log.info(
                "session %s of company %s placed on worker %s (epoch %d)",
                session.id,
                session.company_id,
                owner.id,
                epoch + 1,
            )
            epoch += 1
        job.params = json.dumps({**job.params_dict, "epoch": epoch})
        if owner.id == me:
            uow.commit()
            return Routing(Verdict.RUN, epoch, me)
        queue = queue_for_worker(owner.id)
        job.status, job.worker_id = JobStatus.QUEUED.value, None
        publish(uow.db, publisher, job, queue)
        uow.commit()
        log.info("job %s for session %s forwarded to %s", job.id, session.id, queue)
        return Routing(Verdict.FORWARDED, epoch, owner.id)


# Sends are not failed with their worker: the message is still owed to the client.
# Such a job goes back to ``queued`` on ``control`` (its last publish time kept), so the
# next sync republishes it and it follows the session to its new owner, which looks
# the half-done send up in the page before sending anything.
_SENDS = Job.kind == JobKind.SEND.value
_REQUEUED_SEND = {"status": JobStatus.QUEUED.value, "worker_id": None, "queue": CONTROL_QUEUE}


def fail_stranded_jobs(uow: UnitOfWork, company_id: str | None) -> int:
    """Fail unfinished jobs held by dead workers (their queue will not be consumed).

    Send jobs among them are queued again on ``control`` instead (see ``_REQUEUED_SEND``).
    """
    with uow:
        alive = [w.id for w in live_workers(uow.db, uow.settings.WORKER_LEASE)]
        alive_queues = [queue_for_worker(w) for w in alive] + [CONTROL_QUEUE]
        unfinished = [JobStatus.QUEUED.value, JobStatus.RUNNING.value]
        query = update(Job).where(
            Job.status.in_(unfinished),
            ((Job.status == JobStatus.QUEUED.value) & Job.queue.not_in(alive_queues))
            | ((Job.status == JobStatus.RUNNING.value) & Job.worker_id.not_in(alive)),
        )
        if company_id is not None:
            query = query.where(Job.company_id == company_id)
        uow.db.execute(
            query.where(_SENDS).values(**_REQUEUED_SEND).execution_options(synchronize_session=False)
        )
        result = uow.db.execute(
            query.where(~_SENDS)
            .values(
                status=JobStatus.FAILED.value,
                error="its worker died before finishing it",
                finished_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        uow.commit()
        return result.rowcount


def fail_interrupted_jobs(uow: UnitOfWork, worker_id: str) -> int:
    """At start: fail jobs this worker was running when it went down (sends are queued again)."""
    with uow:
        interrupted = update(Job).where(Job.status == JobStatus.RUNNING.value, Job.worker_id == worker_id)
        uow.db.execute(
            interrupted.where(_SENDS).values(**_REQUEUED_SEND).execution_options(synchronize_session=False)
        )
        result = uow.db.execute(
            interrupted.where(~_SENDS)
            .values(
                status=JobStatus.FAILED.value,
                error="interrupted: its worker restarted while running it",
                finished_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        uow.commit()
        return result.rowcount


def _should_be_live():
    # Mid-start, waiting for a scan or connected; or closed quietly (a worker shutdown,
    # a restart half-way) - whether or not a login was stored, so a session that was
    # waiting for its QR gets a fresh one. Sessions that ended with a reason (logout,
    # conflict, QR timeout, error) stay down until someone starts them: restoring a
    # conflict would steal the phone back.
    return WhatsappSession.status.in_(
        [SessionStatus.CONNECTING.value, SessionStatus.QRCODE.value, SessionStatus.CONNECTED.value]
    ) | ((WhatsappSession.status == SessionStatus.DISCONNECTED.value) & WhatsappSession.last_error.is_(None))


def sessions_to_restore(uow: UnitOfWork, worker_id: str) -> list[tuple[str, int]]:
    """Active sessions owned by ``worker_id`` that should have a live browser."""
    with uow:
        rows = uow.db.execute(
            select(WhatsappSession.id, WhatsappSession.epoch).where(
                WhatsappSession.worker_id == worker_id,
                WhatsappSession.is_active.is_(True),
                _should_be_live(),
            )
        )
        return [(session_id, epoch) for session_id, epoch in rows]


def orphaned_sessions(uow: UnitOfWork, company_id: str | None) -> list[WhatsappSession]:
    """Active sessions that should be live, whose owner is missing or dead, with no job pending.

    Only a job that can still arrive counts as pending: one queued (or republished)
    recently, or one running on a live worker. An older queued job has likely lost its
    message and must not keep the session down; sync republishes it anyway.
    """
    with uow:
        alive = [w.id for w in live_workers(uow.db, uow.settings.WORKER_LEASE)]
        pending = select(Job.session_id).where(
            Job.session_id.is_not(None),
            ((Job.status == JobStatus.QUEUED.value) & (_last_publish() >= _republish_cutoff(uow)))
            | ((Job.status == JobStatus.RUNNING.value) & Job.worker_id.in_(alive)),
        )
        query = select(WhatsappSession).where(
            WhatsappSession.id.not_in(pending),
            WhatsappSession.is_active.is_(True),
            _should_be_live() | WhatsappSession.worker_id.is_(None),
            WhatsappSession.worker_id.is_(None) | WhatsappSession.worker_id.not_in(alive),
        )
        if company_id is not None:
            query = query.where(WhatsappSession.company_id == company_id)
        return list(uow.db.scalars(query))


def requeue_orphans(
    uow: UnitOfWork, publisher: JobPublisher, sessions: list[WhatsappSession]
) -> list[tuple[WhatsappSession, str]]:
    """Mark each orphan CONNECTING and enqueue its start on ``control`` (placed when it runs).

    A session whose owner is dead must not go on saying CONNECTED. The write only
    matches while owner and epoch are still what the caller read, so a live owner's
    newer state (or a placement by someone else) is never overwritten; such a
    session is left alone and gets no start job.
    """
    requeued = []
    for session in sessions:
        with uow:
            old_status = uow.db.scalar(
                select(WhatsappSession.status)
                .where(
                    WhatsappSession.id == session.id,
                    WhatsappSession.epoch == session.epoch,
                    WhatsappSession.worker_id.is_(None)
                    if session.worker_id is None
                    else WhatsappSession.worker_id == session.worker_id,
                )
                .with_for_update()
            )
            if old_status is None:
                log.info(
                    "session %s of company %s changed while being recovered; left as it is",
                    session.id,
                    session.company_id,
                )
                continue
            uow.db.execute(
                update(WhatsappSession)
                .where(WhatsappSession.id == session.id)
                .values(status=SessionStatus.CONNECTING.value, qr_code=None)
                .execution_options(synchronize_session=False)
            )
            events.status_change(
                uow.db, session.id, old_status, SessionStatus.CONNECTING.value, "worker lost"
            )
            job = enqueue(
                uow,
                publisher,
                kind=JobKind.START,
                queue=CONTROL_QUEUE,
                company_id=session.company_id,
                session_id=session.id,
            )
        log.info(
            "session %s of company %s lost its worker %s; start job %s queued",
            session.id,
            session.company_id,
            session.worker_id,
            job.id,
        )
        # The restoring worker ends the failover and times it from here (GET /metrics).
        worker_stats.mark_failover_pending(uow.settings, session.id)
        requeued.append((session, job.id))
    return requeued


def _last_publish():
    # Rows recorded without a publish of ours (beat runs) count from their creation.
    return func.coalesce(Job.published_at, Job.created_at)


def _republish_cutoff(uow: UnitOfWork):
    return utcnow() - timedelta(seconds=uow.settings.JOB_REPUBLISH_SECONDS)


def republish_lost_jobs(uow: UnitOfWork, publisher: JobPublisher, company_id: str | None) -> list[str]:
    """Publish again every job still queued long after its last publish; returns their ids.

    Its message was most likely lost (Redis flushed or restarted without persistence).
    A job goes back to its recorded queue while that worker is live, else to
    ``control``, which places it. Handling a job is idempotent, so when the message was
    only slow the duplicate is harmless. Each job is re-checked under a row lock, so two
    concurrent syncs do not both republish it.
    """
    with uow:
        query = select(Job.id).where(
            Job.status == JobStatus.QUEUED.value, _last_publish() < _republish_cutoff(uow)
        )
        if company_id is not None:
            query = query.where(Job.company_id == company_id)
        candidates = list(uow.db.scalars(query))
        alive_queues = {queue_for_worker(w.id) for w in live_workers(uow.db, uow.settings.WORKER_LEASE)}
    republished = []
    for job_id in candidates:
        with uow:
            job = uow.db.scalar(
                select(Job)
                .where(
                    Job.id == job_id,
                    Job.status == JobStatus.QUEUED.value,
                    _last_publish() < _republish_cutoff(uow),
                )
                .with_for_update()
            )
            if job is None:  # started or republished meanwhile
                continue
            queue = job.queue if job.queue in alive_queues else CONTROL_QUEUE
            publish(uow.db, publisher, job, queue)
            uow.commit()
        log.warning(
            "job %s (%s) of company %s session %s still queued: republished on %s (publish #%d)",
            job.id,
            job.kind,
            job.company_id,
            job.session_id,
            queue,
            job.publish_count,
        )
        republished.append(job.id)
    return republished


def placement_hold(uow: UnitOfWork) -> str | None:
    """Why a sync must not re-place sessions right now, or ``None`` when it may.

    Right after this process lost the database, or while every worker looks silent at
    once, missing heartbeats say more about the database than about the workers:
    re-placing then would move every session at once. The next sync, once heartbeats
    are back, sees the truth.
    """
    lease = uow.settings.WORKER_LEASE
    since = seconds_since_outage()
    if since is not None and since < lease:
        return f"database outage seen {since:.1f} s ago"
    with uow:
        if live_workers(uow.db, lease):
            return None
        owners = select(WhatsappSession.worker_id).where(
            WhatsappSession.is_active.is_(True), WhatsappSession.worker_id.is_not(None)
        )
        recently = utcnow() - timedelta(seconds=lease * SILENCE_LOOKBACK_LEASES)
        silent = uow.db.scalar(
            select(func.count())
            .select_from(Worker)
            .where(Worker.stopped_at.is_(None), (Worker.heartbeat_at >= recently) | Worker.id.in_(owners))
        )
    if silent:
        return f"no live worker while {silent} did not stop: every worker went silent at once"
    return None


def fence(session_id: str, worker_id: str, epoch: int, lease_token: str):
    """An UPDATE on ``session_id`` that matches only while ``worker_id`` owns it at ``epoch``.

    It is also bound to the process holding ``worker_id``'s lease: a second process that
    started with the same id (or an old one that lost its lease) carries another token,
    so its writes match nothing.
    """
    return update(WhatsappSession).where(
        WhatsappSession.id == session_id,
        WhatsappSession.worker_id == worker_id,
        WhatsappSession.epoch == epoch,
        WhatsappSession.worker_id.in_(
            select(Worker.id).where(Worker.id == worker_id, Worker.lease_token == lease_token)
        ),
    )


def hold_fence(db: DbSession, session_id: str, worker_id: str, epoch: int, lease_token: str) -> Row | None:
    """Lock the session row if this process owns it at ``epoch``: its company, name and status.

    ``None`` when fenced out. The UPDATE changes no value; it is there for its match
    and its row lock, which holds until the commit, so an owner change cannot slip in
    between this check and the caller's writes (and the status read is the one replaced).
    """
    return db.execute(
        fence(session_id, worker_id, epoch, lease_token)
        .values(epoch=WhatsappSession.epoch, updated_at=WhatsappSession.updated_at)
        .returning(WhatsappSession.company_id, WhatsappSession.name, WhatsappSession.status)
        .execution_options(synchronize_session=False)
    ).one_or_none()
