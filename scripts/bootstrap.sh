#!/usr/bin/env bash
# Shared set-up for `make run` and `make test`: a virtual environment with ZapHub
# installed, a system Chromium, and a Redis that answers. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

apt_install() {
  command -v apt-get >/dev/null || return 1
  [ -n "${ZAPHUB_APT_UPDATED:-}" ] || { as_root apt-get update -qq || true; export ZAPHUB_APT_UPDATED=1; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.zaphub-installed"
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ]; then
  say "installing ZapHub and its dependencies"
  mkdir -p .zaphub
  if ! { "$VENV/bin/pip" install -q --upgrade pip && "$VENV/bin/pip" install -q -e '.[dev]'; } \
      > .zaphub/pip.log 2>&1; then
    tail -n 30 .zaphub/pip.log >&2
    echo "installing dependencies failed; full log in .zaphub/pip.log" >&2
    exit 1
  fi
  touch "$stamp"
fi

chromium_path() {
  for candidate in "${CHROMIUM_PATH:-}" chromium chromium-browser google-chrome; do
    [ -n "$candidate" ] && command -v "$candidate" 2>/dev/null && return 0
  done
  return 1
}
if ! chromium_path >/dev/null; then
  say "installing Chromium from the OS packages"
  apt_install chromium || { echo "Chromium is missing: install it (apt-get install -y chromium) or set CHROMIUM_PATH" >&2; exit 1; }
fi

redis_url=${REDIS_URL:-redis://localhost:6379/0}
redis_ping() { "$VENV/bin/python" -c "import redis,sys; redis.Redis.from_url('$redis_url', socket_connect_timeout=2).ping()" 2>/dev/null; }
if ! redis_ping; then
  case "$redis_url" in
    redis://localhost*|redis://127.0.0.1*)
      if ! command -v redis-server >/dev/null; then
        say "installing redis-server from the OS packages"
        apt_install redis-server || { echo "Redis is not running: install and start redis-server, or set REDIS_URL" >&2; exit 1; }
      fi
      say "starting a local Redis"
      mkdir -p .zaphub
      redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir "$PWD/.zaphub" --logfile "$PWD/.zaphub/redis.log"
      for _ in $(seq 1 50); do redis_ping && break; sleep 0.1; done
      redis_ping || { echo "Redis did not start; see .zaphub/redis.log" >&2; exit 1; }
      ;;
    *) echo "Redis at $redis_url does not answer: start it or fix REDIS_URL" >&2; exit 1 ;;
  esac
fi
