"""Configuration read from the environment, in one place.

Both the API and the workers build a :class:`Settings` from ``os.environ``; tests
build one with overrides.  Nothing else in the project reads the environment.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

BROWSER_MODES = ("profile", "shared")


def _default_database_url() -> str:
    return f"sqlite:///{Path.cwd() / 'zaphub.db'}"


def _env_bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Every tunable of ZapHub; field names are the environment variable names."""

    DATABASE_URL: str = field(default_factory=_default_database_url)
    REDIS_URL: str = "redis://localhost:6379/0"
    # Prefix for every broker key, so several deployments (or test runs) share a Redis.
    BROKER_KEY_PREFIX: str = ""
    SECRET_KEY: str = ""
    # Comma-separated, newest first: encrypt with the first, decrypt with any.
    SECRET_KEYS: str = ""
    # Explicit opt-in to run with no secret or the public development one (``make run``).
    DEV_MODE: bool = False
    WORKER_ID: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    WORKER_CAPACITY: int = 20
    HEARTBEAT_INTERVAL: float = 5.0
    WORKER_LEASE: float = 30.0
    SESSIONS_DIR: str = field(default_factory=lambda: str(Path.cwd() / "sessions"))
    CHROMIUM_PATH: str = ""
    WA_WEB_URL: str = "https://web.whatsapp.com/"
    QR_MAX_ROTATIONS: int = 5
    # A connected page reports its own changes (no polling); the driver still looks this often.
    WATCH_SAFETY_PROBE_SECONDS: float = 15.0
    # Linking by phone number: the page renews the code this often (seconds; whatsapp-web.js's
    # default), and POST /session/<name>/pairing-code waits this long for the worker's answer.
    PAIRING_CODE_INTERVAL: float = 180.0
    PAIRING_CODE_WAIT: float = 20.0
    BROWSER_TIMEOUT: float = 60.0
    LOGIN_STATE_SAVE_INTERVAL: float = 300.0
    CLEANUP_INTERVAL: float = 3600.0
    SYNC_INTERVAL: float = 30.0
    # A starting worker restores at most this many sessions at once, each launch a little
    # later at random, so 50 stored sessions do not start 50 Chromiums in the same second.
    # Not the CPU count: a start mostly waits (on the network against the real site, on the
    # page's own timers on the simulator), so even on 2 cores K=2 restores 10 sessions more
    # slowly than 3, and 4 faster still (README, "Restoring many sessions"); 3 keeps the
    # burst of new Chromiums (CPU, ~125 MiB each) small on a small machine.
    RESTORE_CONCURRENCY: int = 3
    RESTORE_JITTER_SECONDS: float = 0.5
    # Lazy sessions (config {"lazy": true}): closed again after this long with no activity,
    # and woken by beat this often to collect the messages that waited on the phone.
    LAZY_IDLE_SECONDS: float = 300.0
    LAZY_WAKE_INTERVAL: float = 3600.0
    # Inactive, disconnected sessions untouched for this long are purged by cleanup.
    CLEANUP_RETENTION_DAYS: int = 30
    # Jobs stuck in queued/running longer than this are failed by cleanup.
    JOB_STALE_SECONDS: float = 3600.0
    # Finished jobs (succeeded/failed) older than this are deleted by cleanup.
    JOB_RETENTION_DAYS: int = 30
    # A cleanup job waits this long for every live worker's part (then reports who did not answer);
    # the dry run (GET /session/cleanup) waits CLEANUP_PREVIEW_WAIT for the workers' dry-run parts.
    CLEANUP_WORKER_WAIT: float = 30.0
    CLEANUP_PREVIEW_WAIT: float = 5.0
    # A leftover Chromium gets SIGTERM, then SIGKILL after this many seconds.
    CLEANUP_KILL_GRACE: float = 3.0
    BROKER_TIMEOUT: float = 3.0
    # Database timeouts: connect, each statement (client- and server-side), pool checkout.
    DB_CONNECT_TIMEOUT: float = 3.0
    DB_STATEMENT_TIMEOUT: float = 5.0
    DB_POOL_TIMEOUT: float = 5.0
    # /health gives up on the database after this long and answers 503.
    HEALTH_TIMEOUT: float = 1.5
    # A job still queued this long after it was published is published again by sync.
    JOB_REPUBLISH_SECONDS: float = 60.0
    # Rows of scheduled (beat) jobs that changed nothing are purged after this long.
    BEAT_NOOP_RETENTION_SECONDS: float = 86400.0
    # Waiting for jobs (GET /jobs/<id>?wait=, a cleanup gathering its workers' parts) is woken
    # by a Redis notice when a job finishes; the table is read again at least this often, so a
    # lost notice only delays. A worker that finds a job row not yet committed (the API
    # publishes just before its commit) reads it again for up to JOB_VISIBLE_WAIT seconds
    # before handing the message back to Celery for a later retry.
    JOB_WAIT_RECHECK_SECONDS: float = 1.0
    JOB_WAIT_MAX_SECONDS: float = 60.0
    JOB_VISIBLE_WAIT: float = 0.5
    # A company's second cleanup/sync request within this window gets the queued job back.
    MAINTENANCE_COALESCE_SECONDS: float = 5.0
    # Flower: "user:password" (comma-separated pairs); required unless bound to loopback.
    FLOWER_BASIC_AUTH: str = ""
    FLOWER_ADDRESS: str = "127.0.0.1"
    PAGE_SIZE_MAX: int = 100
    # GET /metrics: a bearer token of its own; unset, only loopback clients may scrape.
    METRICS_TOKEN: str = ""
    # gunicorn: a folder (emptied at start) where each worker keeps its own metrics for
    # the others to merge (prometheus_client's multiprocess mode); unset, one process's.
    PROMETHEUS_MULTIPROC_DIR: str = ""
    # Sends of one session leave at most this many a minute, each a little later at random.
    SEND_RATE_PER_MINUTE: float = 30.0
    SEND_JITTER_SECONDS: float = 0.5
    # How long the page may take to accept one send.
    SEND_TIMEOUT: float = 30.0
    # Webhooks: who may be posted to, how many endpoints, how hard to try, how long to wait.
    WEBHOOK_ALLOWED_NETWORKS: str = ""  # comma-separated CIDRs allowed despite being private/loopback
    WEBHOOK_MAX_ENDPOINTS: int = 10
    WEBHOOK_MAX_ATTEMPTS: int = 15
    WEBHOOK_RETRY_WINDOW_SECONDS: float = 86400.0
    WEBHOOK_PAUSE_AFTER_FAILURES: int = 50
    WEBHOOK_CONNECT_TIMEOUT: float = 3.0
    WEBHOOK_READ_TIMEOUT: float = 10.0
    WEBHOOK_SECRET_GRACE_SECONDS: float = 86400.0
    # The sweep enqueues due deliveries; one enqueued this long ago that did not run is enqueued again.
    WEBHOOK_SWEEP_INTERVAL: float = 5.0
    WEBHOOK_REQUEUE_SECONDS: float = 60.0
    WEBHOOK_CONCURRENCY: int = 16
    # The live stream: how often it looks for new events, and its keep-alive comment.
    EVENTS_STREAM_POLL_SECONDS: float = 1.0
    EVENTS_STREAM_HEARTBEAT_SECONDS: float = 15.0
    # A stream ends after this long; the client reconnects with Last-Event-ID and misses nothing.
    EVENTS_STREAM_MAX_SECONDS: float = 3600.0
    # Events (and their deliveries) older than this are purged by cleanup.
    EVENT_RETENTION_DAYS: int = 30
    # Upgrading from the old NestJS service: its sessions.json and whatsapp-web.js LocalAuth
    # folder (``.wwebjs_auth``); when set, the first worker to start imports them once.
    # API token cache: a token's user is remembered in each API process for at most this
    # long after it was read, so a revoke or rotate made in another process (the CLI, the
    # other gunicorn workers) takes effect there within this many seconds (in the revoking
    # process at once); 0 turns the cache off. At most TOKEN_CACHE_SIZE tokens are kept.
    TOKEN_CACHE_SECONDS: float = 5.0
    TOKEN_CACHE_SIZE: int = 10_000
    LEGACY_SESSIONS_FILE: str = ""
    LEGACY_PROFILES_DIR: str = ""
    # Browser mode: "profile" (one Chromium per session on a persistent profile folder, the
    # default) or "shared" (sessions in non-persistent contexts of a few shared Chromiums,
    # their login carried as data). A shared Chromium holds at most
    # BROWSER_SESSIONS_PER_PROCESS sessions, so a browser crash touches a bounded group;
    # the default matches WORKER_CAPACITY's: one shared Chromium per default-sized worker.
    BROWSER_MODE: str = "profile"
    BROWSER_SESSIONS_PER_PROCESS: int = 20
    TESTING: bool = False

    def __post_init__(self) -> None:
        if self.BROWSER_MODE not in BROWSER_MODES:
            choices = ", ".join(BROWSER_MODES)
            raise ValueError(f"BROWSER_MODE must be one of {choices}, not {self.BROWSER_MODE!r}")
        if self.BROWSER_SESSIONS_PER_PROCESS < 1:
            raise ValueError(
                f"BROWSER_SESSIONS_PER_PROCESS must be at least 1, not {self.BROWSER_SESSIONS_PER_PROCESS}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``), then ``overrides``."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, spec in cls.__dataclass_fields__.items():
            if name not in environ or environ[name] == "":
                continue
            raw = environ[name]
            kind = spec.type
            if kind in ("int", int):
                values[name] = int(raw)
            elif kind in ("float", float):
                values[name] = float(raw)
            elif kind in ("bool", bool):
                values[name] = _env_bool(raw)
            else:
                values[name] = raw
        values.update(overrides)
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy of these settings with some fields replaced."""
        return replace(self, **overrides)

    @property
    def worker_queue(self) -> str:
        """The queue this worker consumes besides ``control``."""
        return queue_for_worker(self.WORKER_ID)


CONTROL_QUEUE = "control"
# Webhook deliveries have their own queue and workers: a slow receiver never delays a session job.
WEBHOOKS_QUEUE = "webhooks"


def queue_for_worker(worker_id: str) -> str:
    """The name of the queue owned by ``worker_id``."""
    return f"worker.{worker_id}"


_settings: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def set_settings(settings: Settings) -> None:
    """Replace the process-wide settings (app factory and tests)."""
    global _settings
    _settings = settings
