#!/usr/bin/env bash
# Start SGLang's router (sglang-router, the SGLang Model Gateway) in front of SGLang workers
# and wait until it is ready. The gateway then uses the router's URL as one engine URL.
#
#   ROUTER_WORKER_URLS="http://127.0.0.1:30000 http://127.0.0.1:30002" bash scripts/start_router.sh
#
# On success it prints the router's base URL on stdout; everything else goes to stderr.
# Stop it with scripts/stop_router.sh.
#
# Configuration (config/.env; variables already set in the environment win):
#   ROUTER_WORKER_URLS     space- or comma-separated SGLang worker base URLs (required)
#   ROUTER_HOST            bind address (127.0.0.1)
#   ROUTER_PORT            port (30100)
#   ROUTER_POLICY          cache_aware (default) | round_robin | random | power_of_two
#   ROUTER_PROMETHEUS_PORT the router's own metrics port (ROUTER_PORT + 1)
#   ROUTER_START_TIMEOUT   seconds to wait until it answers /readiness (120)
#   ROUTER_EXTRA_ARGS      extra flags for `sglang-router launch` (split on spaces), e.g.
#                          "--retry-max-retries 2 --disable-circuit-breaker"
# The router's own venv comes from scripts/setup_engine_env.sh router (cached).
# Process handling like scripts/start_engine.sh: logs/router.pid (process group leader),
# logs/router.log (previous one kept as router.log.1); starting twice is idempotent.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib/common.sh
lkn_load_env

workers="${ROUTER_WORKER_URLS:-}"
[ -n "$workers" ] || lkn_die "ROUTER_WORKER_URLS is empty: name the SGLang workers to route to"
read -r -a worker_list <<< "${workers//,/ }"
host="${ROUTER_HOST:-127.0.0.1}"
port="${ROUTER_PORT:-30100}"
policy="${ROUTER_POLICY:-cache_aware}"
metrics_port="${ROUTER_PROMETHEUS_PORT:-$((port + 1))}"
timeout="${ROUTER_START_TIMEOUT:-120}"
case "$host" in 0.0.0.0|'') probe_host=127.0.0.1 ;; *) probe_host="$host" ;; esac
url="http://$probe_host:$port"
name=router
pidfile="$LKN_LOG_DIR/$name.pid"
logfile="$LKN_LOG_DIR/$name.log"

exec 8>"$LKN_LOG_DIR/$name.start.lock"
flock -w 300 8 || lkn_die "another start of the router holds $LKN_LOG_DIR/$name.start.lock"

if lkn_pid_matches "$name" router; then
  lkn_exit_if_ready "$name" "$url/readiness" "$url" "the router"
  lkn_die "the router is running (pid $(cat "$pidfile")) but not ready; see $logfile"
fi
if (exec 3<>"/dev/tcp/$probe_host/$port") 2>/dev/null; then
  lkn_die "port $port on $probe_host is already in use by a process this script did not start"
fi

venv="$(bash scripts/setup_engine_env.sh router)" || lkn_die "could not set up the router environment"
extra_args=()
if [ -n "${ROUTER_EXTRA_ARGS:-}" ]; then read -r -a extra_args <<< "$ROUTER_EXTRA_ARGS"; fi
cmd=("$venv/bin/sglang-router" launch --host "$host" --port "$port" --policy "$policy"
     --worker-urls "${worker_list[@]}"
     --prometheus-host 127.0.0.1 --prometheus-port "$metrics_port"
     --worker-startup-timeout-secs "$timeout" --worker-startup-check-interval 1
     "${extra_args[@]}")

if [ -f "$logfile" ]; then mv -f "$logfile" "$logfile.1"; fi
printf '# %s starting the router: %s\n' "$(date '+%Y-%m-%dT%H:%M:%S%z')" "${cmd[*]}" > "$logfile"
lkn_say "starting the router ($policy over ${worker_list[*]}) on $url (log: $logfile)"
lkn_spawn "$pidfile" env NO_COLOR=1 "${cmd[@]}" >> "$logfile" 2>&1 < /dev/null 8>&- \
  || lkn_die "the router process did not start (no $pidfile); see $logfile"
pid="$(cat "$pidfile")"
if ! lkn_wait_started "$url/readiness" "$timeout" "$pid" "the router" "$logfile"; then
  if kill -0 "$pid" 2>/dev/null; then lkn_stop_group "$name" router 10 || true; else rm -f "$pidfile"; fi
  lkn_die "the router failed to start"
fi
lkn_say "the router is ready at $url (pid $pid)"
printf '%s\n' "$url"
