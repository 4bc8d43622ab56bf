#!/usr/bin/env bash
# `make run`: set up everything, migrate, and start web, worker, webhooks, beat and flower.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
mkdir -p .zaphub
# Login states are encrypted at rest; with no key set (here or in .env, which honcho
# reads), run in development mode with the public key shared.secrets.DEVELOPMENT_KEY.
if [[ -z "${SECRET_KEYS:-}${SECRET_KEY:-}" ]] \
    && ! grep -qsE '^[[:space:]]*(export[[:space:]]+)?SECRET_KEYS?=[^[:space:]]' .env; then
    export DEV_MODE=1 SECRET_KEY=dev-insecure-change-me
    echo "!!! development mode: login states are encrypted with a public key; set SECRET_KEYS for production !!!"
    echo "!!! (a new key: .venv/bin/zaphub keys generate)"
fi
.venv/bin/zaphub db upgrade
# gunicorn runs several workers: their own metrics meet in this folder (prometheus_client's
# multiprocess mode; gunicorn empties it when it starts).
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$PWD/.zaphub/prometheus}"
echo "API on http://127.0.0.1:8000 (Swagger UI at /docs), Flower on http://127.0.0.1:5555"
# The Procfile's commands (gunicorn, celery, python) come from the virtual environment.
export PATH="$PWD/.venv/bin:$PATH"
exec honcho start "$@"
