"""Celery settings (lowercase), read from the environment through ``shared.config``.

``broker_settings()`` gives the broker part for any :class:`Settings`, so the API
and the tests can build a Celery app for another broker than the process default.
"""

from typing import Any

from kombu import Exchange, Queue

from shared.config import CONTROL_QUEUE, WEBHOOKS_QUEUE, Settings, get_settings


def broker_settings(settings: Settings) -> dict[str, Any]:
    """The broker URL and transport options for ``settings``."""
    options: dict[str, Any] = {
        "socket_connect_timeout": settings.BROKER_TIMEOUT,
        "socket_timeout": 30,
        # Longer than any task: an unacked message is redelivered only after this.
        "visibility_timeout": 3600,
    }
    if settings.BROKER_KEY_PREFIX:
        options["global_keyprefix"] = settings.BROKER_KEY_PREFIX
    return {
        "broker_url": settings.REDIS_URL,
        "broker_connection_timeout": settings.BROKER_TIMEOUT,
        "broker_transport_options": options,
    }


_settings = get_settings()
globals().update(broker_settings(_settings))

broker_connection_retry_on_startup = True
# Jobs live in the database; no result backend is needed or used.
result_backend = None
task_ignore_result = True

task_serializer = "json"
accept_content = ["json"]
timezone = "UTC"
enable_utc = True

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_default_queue = CONTROL_QUEUE
task_queues = [Queue(CONTROL_QUEUE, Exchange(CONTROL_QUEUE, type="direct"), routing_key=CONTROL_QUEUE)]
task_create_missing_queues = True
# Fail fast on publish when Redis is down: the API answers 503 instead of hanging.
task_publish_retry_policy = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
worker_send_task_events = True
# No "task-sent" event per publish: it doubled each publish's Redis work (about 1 ms of a
# POST that enqueues a job, on the 2-core test machine), and a job still waiting in its
# queue is in the jobs table already. Flower sees every task from the moment a worker
# receives it.
task_send_sent_event = False
worker_hijack_root_logger = False

# A tick nobody consumed within its interval is dropped (the next tick replaces it),
# so ticks do not pile up while no worker runs and then all run at once.
beat_schedule = {
    name: {"task": task, "schedule": interval, "options": {"expires": interval, "queue": queue}}
    for name, task, interval, queue in (
        ("cleanup", "zaphub.beat.cleanup", _settings.CLEANUP_INTERVAL, CONTROL_QUEUE),
        ("sync", "zaphub.beat.sync", _settings.SYNC_INTERVAL, CONTROL_QUEUE),
        # Lazy sessions open now and then to collect the messages that waited on the phone.
        ("lazy-wake", "zaphub.beat.lazy_wake", _settings.LAZY_WAKE_INTERVAL, CONTROL_QUEUE),
        # Due webhook deliveries with no message on the broker (lost, flushed) are enqueued again.
        ("webhook-sweep", "zaphub.webhook.sweep", _settings.WEBHOOK_SWEEP_INTERVAL, WEBHOOKS_QUEUE),
    )
}
