#!/usr/bin/env bash
# `make test`: set up everything the tests need, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

pg_url=${TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
pg_ping() { .venv/bin/python -c "import psycopg2; psycopg2.connect('$pg_url', connect_timeout=3).close()" 2>/dev/null; }
if ! pg_ping; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "==> starting the local PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 50); do pg_ping && break; sleep 0.2; done
  fi
  pg_ping || { echo "PostgreSQL at $pg_url does not answer: start it or set TEST_POSTGRES_URL" >&2; exit 1; }
fi

# Most of the suite waits (leases, timeouts, browsers starting), so two test processes
# (pytest-xdist, one file at a time each) halve its time on 2 cores. Each process has its
# own PostgreSQL database and Redis key prefix (tests/conftest.py). TEST_WORKERS=0 runs
# it in one process. The slowest tests are listed at the end: the suite has a time budget.
exec .venv/bin/pytest -p no:cacheprovider -n "${TEST_WORKERS:-2}" --dist loadfile --durations=20 "$@"
