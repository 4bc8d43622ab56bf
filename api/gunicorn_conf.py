"""gunicorn settings of the ``web`` process (``gunicorn -c python:api.gunicorn_conf``).

The bind address and the app stay on the command line (see the Procfile).

Why gevent workers: ``GET /events/stream`` keeps a connection open for as long as the
client listens (up to ``EVENTS_STREAM_MAX_SECONDS``). On a threaded worker each
stream would hold one of a handful of threads, so a few dashboards would starve
every other request. On gevent each connection is a greenlet: an SSE client costs
a greenlet that sleeps between outbox polls, and ``worker_connections`` of them share
one process. Database waits yield too: psycopg2 runs through the wait callback of
``shared.db``, which waits with ``select()`` - made cooperative by gevent's
monkey-patching, so a slow query blocks only its own greenlet. Redis (Celery
publishing, the broker ping) goes through patched sockets, and the threads ``/health``
starts become greenlets.

gunicorn's gevent worker monkey-patches in the forked worker, after the master has
imported the worker class - and with it the whole ``api`` package (``python:`` configs
and the worker live in it). Module-level thread objects are therefore made unpatched:
the modules that have some make them on first use or use context variables
(``shared.db``, ``shared.services.health``, ``shared.webhooks.dispatch``), and
``tests/faults/test_event_stream_serving.py`` runs this config for real.
"""

import os

workers = 2
# Concurrent connections (SSE streams included) per worker.
worker_connections = 1000
# gevent, with gunicorn's own error pages (bad request line, header too large) in
# the API's JSON error shape.
worker_class = "api.gunicorn_worker.JsonErrorGeventWorker"
accesslog = "-"
# One default control socket path per user: a second instance on the machine (or a
# test run) would take it over. Older gunicorn versions ignore this setting.
control_socket_disable = True


# Metrics (GET /metrics): with PROMETHEUS_MULTIPROC_DIR set, each worker writes its own
# metrics to files there and a scrape merges them all (prometheus_client's multiprocess
# mode). The hooks keep the folder right; prometheus_client is imported inside them so
# that loading this config stays light (gunicorn's master imports it before forking).
def on_starting(server) -> None:
    """Empty the multiprocess folder: files of a previous run would be counted again."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".db"):
            os.remove(os.path.join(folder, name))


def child_exit(server, worker) -> None:
    """A worker died: its live gauges must stop counting (its counters are kept)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
