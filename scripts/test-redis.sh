#!/usr/bin/env bash
# Start a local Redis (Debian's redis-server) on loopback for the Redis queue test, and print its URL:
# redis://127.0.0.1:PORT/0. No persistence, no password, a directory of its own under $TMPDIR. Installs the package
# with apt when missing. Idempotent: a second call while it runs prints the same URL.
# `scripts/test-redis.sh stop` stops the server this script started and removes its directory.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
STATE="${TMPDIR:-/tmp}/baonhung-test-redis"

stop() {
  if [ -f "$STATE/redis.pid" ]; then
    pid=$(cat "$STATE/redis.pid")
    # only a process of ours: its command line names our port file's server
    if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "redis-server"; then
      kill "$pid" 2>/dev/null || true
    fi
    sleep 0.5
  fi
  rm -rf "$STATE"
}

if [ "${1:-}" = stop ]; then
  stop
  exit 0
fi

if [ -f "$STATE/port" ] && redis-cli -p "$(cat "$STATE/port")" ping >/dev/null 2>&1; then
  echo "redis://127.0.0.1:$(cat "$STATE/port")/0"
  exit 0
fi
stop

if ! command -v redis-server >/dev/null; then
  $SUDO apt-get install -y -q redis-server >/dev/null
fi

mkdir -p "$STATE"
PORT=$(python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
redis-server --bind 127.0.0.1 --port "$PORT" --save "" --appendonly no --dir "$STATE" \
  --pidfile "$STATE/redis.pid" --daemonize yes --logfile "$STATE/redis.log" >/dev/null
for _ in $(seq 50); do
  if redis-cli -p "$PORT" ping >/dev/null 2>&1; then
    echo "$PORT" > "$STATE/port"
    echo "redis://127.0.0.1:$PORT/0"
    exit 0
  fi
  sleep 0.1
done
echo "redis-server did not answer on port $PORT (see $STATE/redis.log)" >&2
exit 1
