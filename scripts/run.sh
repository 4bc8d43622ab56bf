#!/usr/bin/env bash
# `make run`: set up everything, migrate, and start web, worker, beat and flower.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
mkdir -p .zaphub
.venv/bin/zaphub db upgrade
echo "API on http://127.0.0.1:8000 (Swagger UI at /docs), Flower on http://127.0.0.1:5555"
# The Procfile's commands (gunicorn, celery, python) come from the virtual environment.
export PATH="$PWD/.venv/bin:$PATH"
exec honcho start "$@"
