#!/usr/bin/env bash
# Set up and run the product: web server (gunicorn) and the two django-q2 clusters (short tasks;
# transcodes); Ctrl-C stops all three.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh" requirements.txt

python manage.py migrate --noinput
python manage.py collectstatic --noinput -v 0
python manage.py setup_schedules
python manage.py setup_groups
if [ -n "${DJANGO_SUPERUSER_USERNAME:-}" ] && [ -n "${DJANGO_SUPERUSER_PASSWORD:-}" ]; then
  python manage.py ensure_superuser
else
  echo "run: no admin user created; set DJANGO_SUPERUSER_USERNAME, DJANGO_SUPERUSER_EMAIL and DJANGO_SUPERUSER_PASSWORD to create one, or run: .venv/bin/python manage.py createsuperuser"
fi

HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
pids=()
# Each child runs in its own session so Ctrl-C reaches it once, through this trap:
# django-q2's cluster deadlocks when a second stop signal arrives while it is stopping.
stop() {
  trap - INT TERM EXIT
  echo "run: stopping (at most 30 s; tasks still running then are killed and picked up again later)"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 "${pids[@]}" 2>/dev/null || break
    sleep 0.5
  done
  # The whole session: a cluster waits for a busy worker (a transcode) and would leave it running.
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  if [ -n "${sock_tmp:-}" ]; then rm -rf "$sock_dir"; elif [ -n "${sock_dir:-}" ]; then rm -f "$sock_dir/gunicorn.sock"; fi
}
trap stop INT TERM EXIT

# glibc otherwise raises its mmap threshold after the first freed 1 MiB upload buffer and keeps
# later ones in per-thread arenas: 20 concurrent uploads left ~40 MiB behind instead of ~10.
export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-131072}"
# Threads let one slow upload stream while other requests are served. One process: uploads are
# I/O-bound, and each extra worker costs ~80 MiB; scale with instances (README, "Sizing").
# WEB_FRONT=nginx (the default): nginx listens on HOST:PORT and holds slow clients (slow headers,
# slow bodies of ordinary requests) that would each hold a gunicorn thread; gunicorn listens on a
# unix socket in $VAR_DIR/run/web. WEB_FRONT=none: gunicorn listens on HOST:PORT itself.
bind="$HOST:$PORT"
if [ "${WEB_FRONT:-nginx}" = nginx ]; then
  command -v nginx >/dev/null 2>&1 || PATH="$PATH:/usr/sbin"
  command -v nginx >/dev/null 2>&1 || { echo "run: installing nginx with apt-get"; apt_install nginx; }
  # The deployment's own folder; a unix socket path must stay under ~100 bytes, else a fresh
  # folder of this run's own in the temp dir.
  sock_dir="${VAR_DIR:-$ROOT/var}/run/web"
  # nginx's workers run as another user when nginx is started as root: every folder above the
  # socket must let others through (x), else every request is a 502.
  others_can_enter() {
    local dir
    dir="$(cd "$1" 2>/dev/null && pwd -P)" || return 1
    while [ "$dir" != / ]; do
      [ -n "$(find "$dir" -maxdepth 0 -perm -o+x)" ] || return 1
      dir="$(dirname "$dir")"
    done
  }
  mkdir -p "$(dirname "$(dirname "$sock_dir")")"
  if [ "${#sock_dir}" -gt 80 ] || { [ "$(id -u)" = 0 ] && ! others_can_enter "$(dirname "$(dirname "$sock_dir")")"; }; then
    tmp_base="${TMPDIR:-/tmp}"
    others_can_enter "$tmp_base" || tmp_base=/tmp
    sock_dir="$(mktemp -d -p "$tmp_base" unpuzzle-web-XXXXXX)"
    sock_tmp=1
  fi
  mkdir -p "$sock_dir" && rm -f "$sock_dir/gunicorn.sock"
  # nginx's workers (another user when run as root) reach it; only folders of this deployment
  # change mode, never the shared temp dir a fresh socket folder sits in.
  if [ -n "${sock_tmp:-}" ]; then chmod 711 "$sock_dir"; else chmod 711 "$sock_dir" "$(dirname "$sock_dir")"; fi
  bind="unix:$sock_dir/gunicorn.sock"
  # gunicorn's peer is now nginx: the client is the address nginx appends to X-Forwarded-For.
  export NUM_PROXIES="${NUM_PROXIES:-1}"
  conf="$(python manage.py nginx_conf --listen "$HOST:$PORT" --socket "$sock_dir/gunicorn.sock")"
fi
# --no-control-socket: gunicorn's control socket defaults to one path per user (~/.gunicorn/), which a
# second deployment or test run on the host would take over.
setsid gunicorn unpuzzle.wsgi:application --bind "$bind" --worker-class gthread --no-control-socket \
  --workers "${WEB_WORKERS:-1}" --threads "${WEB_THREADS:-32}" --timeout 300 --graceful-timeout 30 \
  --access-logfile - &
pids+=($!)
if [ "${WEB_FRONT:-nginx}" = nginx ]; then
  setsid nginx -e "$(dirname "$conf")/nginx-error.log" -c "$conf" &
  pids+=($!)
fi
# Short tasks (upload finalization, schedules) and transcodes each have their own cluster, so the
# short ones never wait behind an hours-long transcode (README, "Operations").
Q_CLUSTER_NAME= setsid python manage.py qcluster &
pids+=($!)
workers="short-task worker"
if [ "${TRANSCODE_WORKERS:-1}" != 0 ]; then
  Q_CLUSTER_NAME=transcode setsid python manage.py qcluster &
  pids+=($!)
  workers="short-task and transcode workers"
fi
echo "run: web on http://$HOST:$PORT/admin/ (health: http://$HOST:$PORT/healthz); $workers started. Ctrl-C stops them all."
wait -n "${pids[@]}"
