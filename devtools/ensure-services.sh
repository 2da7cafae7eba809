#!/usr/bin/env bash
# Make sure the services the test suite talks to are up: PostgreSQL, Redis
# and Chromium. Start what can be started; under CI=true fail loudly when
# something is still missing rather than letting tests skip.
set -u
problems=()

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start >/dev/null 2>&1 || true
    for _ in $(seq 1 20); do pg_up && break; sleep 0.5; done
  fi
  pg_up || problems+=("PostgreSQL is not answering on 127.0.0.1:5432")
fi

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
if ! redis_up; then
  if command -v redis-server >/dev/null 2>&1; then
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no >/dev/null 2>&1 || true
    for _ in $(seq 1 20); do redis_up && break; sleep 0.5; done
  fi
  redis_up || problems+=("Redis is not answering on 127.0.0.1:6379")
fi

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Chromium for the browser tests (apt-get)..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 || true
  fi
  [ -x /usr/bin/chromium ] || problems+=("Chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
fi

if [ ${#problems[@]} -gt 0 ]; then
  printf 'Missing test services:\n'; printf '  - %s\n' "${problems[@]}"
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  echo "(continuing outside CI; the tests that need them will fail)"
fi
exit 0
