#!/usr/bin/env bash
# Vigil's self-healing demo: a web container, an API that scales, and a PostgreSQL pair behind
# HAProxy, watched and healed by one Vigil; three incidents driven by `vigil loadtest`.
#
#   examples/self-healing/demo.sh          # up, the three scenarios, a summary, down
#   examples/self-healing/demo.sh up       # start everything and leave it running
#   examples/self-healing/demo.sh run container-crash|overload|primary-loss
#   examples/self-healing/demo.sh down
#
# Needs Docker, Debian's postgresql-15 and haproxy, python3 with psycopg2, and the runbooks of
# sdk/examples built (Debian's rustc-web; this script builds them when they are missing). Run as
# root: PostgreSQL runs as the `postgres` user. Environment: VIGIL (the binary, default
# target/release/vigil), DEMO_STATE (default /tmp/vigil-demo), the ports VIGIL_PORT WEB_PORT
# APP_PORT API_PORT PG_PORT PG1_PORT PG2_PORT STATS_PORT, KEEP=1 to leave everything running
# after the scenarios.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
STATE=${DEMO_STATE:-/tmp/vigil-demo}
VIGIL=${VIGIL:-$ROOT/target/release/vigil}
VIGIL_PORT=${VIGIL_PORT:-9201} WEB_PORT=${WEB_PORT:-8081} APP_PORT=${APP_PORT:-8082}
API_PORT=${API_PORT:-8083} PG_PORT=${PG_PORT:-5000} PG1_PORT=${PG1_PORT:-15432}
PG2_PORT=${PG2_PORT:-15433} STATS_PORT=${STATS_PORT:-8404}
IMAGE=vigil-test-busybox:1
URL="http://127.0.0.1:$VIGIL_PORT"
SCENARIOS=(container-crash overload primary-loss)

say() { echo "demo: $*" >&2; }
die() { say "$*"; exit 1; }

pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
as_pg() { runuser -u postgres -- "$@"; }

# Polls a command for up to $2 seconds.
wait_for() {
  local what=$1 secs=$2
  shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || die "timed out after ${secs}s waiting for $what"
    sleep 0.2
  done
}

fill() {
  sed -e "s|@HERE@|$HERE|g" -e "s|@ROOT@|$ROOT|g" -e "s|@STATE@|$STATE|g" \
    -e "s|@VIGIL_PORT@|$VIGIL_PORT|g" -e "s|@WEB_PORT@|$WEB_PORT|g" -e "s|@APP_PORT@|$APP_PORT|g" \
    -e "s|@API_PORT@|$API_PORT|g" -e "s|@PG_PORT@|$PG_PORT|g" -e "s|@PG1_PORT@|$PG1_PORT|g" \
    -e "s|@PG2_PORT@|$PG2_PORT|g" -e "s|@STATS_PORT@|$STATS_PORT|g" "$1" >"$2"
}

# A value from Vigil's API: python3 evaluates $2 on the JSON `r` of GET $1.
api() {
  curl -fsS "$URL$1" | python3 -c "import json,sys; r=json.load(sys.stdin); print($2)"
}

build_runbooks() {
  WASM_DIR=${WASM_DIR:-$ROOT/target/wasm-examples/wasm32-wasip1/release}
  if [ ! -f "$WASM_DIR/pg_failover.wasm" ]; then
    say "building the runbooks (sdk/examples) for wasm32-wasip1"
    (cd "$ROOT/sdk/examples" && env -u RUSTUP_TOOLCHAIN -u CARGO RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
      RUSTFLAGS="-L /usr/lib/wasm32-wasi -C linker=wasm-ld" CARGO_TARGET_DIR="$ROOT/target/wasm-examples" \
      /usr/bin/cargo build -q --release --locked --target wasm32-wasip1 -Zbuild-std=std,panic_abort)
  fi
  mkdir -p "$STATE/runbooks"
  for rb in restart-container pg-failover scale-out scale-in; do
    cp "$WASM_DIR/${rb//-/_}.wasm" "$STATE/runbooks/$rb.wasm"
    cp "$ROOT/sdk/examples/$rb/$rb.runbook.yml" "$STATE/runbooks/"
  done
}

start_pg() {
  local bin sock
  bin=$(pgbin)
  [ -n "$bin" ] || die "PostgreSQL is not installed (apt-get install postgresql-15)"
  sock="$STATE/sock"
  mkdir -p "$sock" && chown postgres:postgres "$sock"
  install -d -o postgres -g postgres -m 700 "$STATE/pg1"
  as_pg "$bin/initdb" -D "$STATE/pg1" -A trust -U postgres --no-sync >"$STATE/initdb.log" 2>&1
  as_pg "$bin/postgres" -D "$STATE/pg1" -p "$PG1_PORT" -k "$sock" -c listen_addresses=127.0.0.1 \
    -c synchronous_standby_names=replica1 -c synchronous_commit=on >"$STATE/pg1.log" 2>&1 &
  wait_for "the primary" 30 "$bin/pg_isready" -h 127.0.0.1 -p "$PG1_PORT" -q
  install -d -o postgres -g postgres -m 700 "$STATE/pg2"
  as_pg "$bin/pg_basebackup" -h 127.0.0.1 -p "$PG1_PORT" -U postgres -D "$STATE/pg2" -R -X stream \
    --no-sync -d application_name=replica1 >"$STATE/basebackup.log" 2>&1
  as_pg "$bin/postgres" -D "$STATE/pg2" -p "$PG2_PORT" -k "$sock" -c listen_addresses=127.0.0.1 \
    >"$STATE/pg2.log" 2>&1 &
  wait_for "the synchronous replica" 30 sh -c \
    "psql -h 127.0.0.1 -p $PG1_PORT -U postgres -Atc 'select sync_state from pg_stat_replication' | grep -q sync"
}

up() {
  [ -x "$VIGIL" ] || die "$VIGIL is not built (cargo build --release)"
  command -v docker >/dev/null || die "docker is needed"
  command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || die "haproxy is needed (apt-get install haproxy)"
  python3 -c "import psycopg2" 2>/dev/null || die "python3 needs psycopg2 (pip install psycopg2-binary)"
  down 2>/dev/null || true
  rm -rf "$STATE"
  install -d -m 755 "$STATE" "$STATE/reports" "$STATE/scenarios"
  build_runbooks
  "$ROOT/tests/fixtures/docker/busybox-image" >/dev/null
  say "web container on :$WEB_PORT"
  docker run -d --name vigil-demo-web --label app=web -p "127.0.0.1:$WEB_PORT:8080" "$IMAGE" /bin/sh -c \
    '/bin/busybox mkdir -p /www && echo ok > /www/index.html && exec /bin/busybox httpd -f -p 8080 -h /www' >/dev/null
  say "PostgreSQL primary :$PG1_PORT with a synchronous replica :$PG2_PORT"
  start_pg
  say "HAProxy: PostgreSQL :$PG_PORT, the API :$API_PORT, metrics :$STATS_PORT"
  fill "$HERE/haproxy.cfg.tmpl" "$STATE/haproxy.cfg"
  PATH=$PATH:/usr/sbin haproxy -D -p "$STATE/haproxy.pid" -f "$STATE/haproxy.cfg"
  say "the app (writes to PostgreSQL) on :$APP_PORT"
  python3 "$HERE/app.py" "$APP_PORT" "host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres" \
    >"$STATE/app.log" 2>&1 &
  echo $! >"$STATE/app.pid"
  wait_for "the app" 20 curl -fsS "http://127.0.0.1:$APP_PORT/write"
  say "Vigil on :$VIGIL_PORT"
  fill "$HERE/vigil.yml.tmpl" "$STATE/vigil.yml"
  "$VIGIL" serve --listen "127.0.0.1:$VIGIL_PORT" --data-dir "$STATE/vigil-data" \
    --config "$STATE/vigil.yml" >"$STATE/vigil.log" 2>&1 &
  echo $! >"$STATE/vigil.pid"
  wait_for "Vigil" 60 curl -fsS "$URL/-/ready"
  say "the API's first replica (a run of scale-out by hand)"
  "$VIGIL" runbook run scale-out --server "$URL" --no-dry-run \
    --params '{"group": "vigil-demo-api", "route": "api", "port": 8080, "min": 1, "max": 1}' >"$STATE/api-1.json"
  wait_for "the API" 30 curl -fsS "http://127.0.0.1:$API_PORT/"
  wait_for "the probes" 30 sh -c "test \"\$(curl -fsS '$URL/api/v1/query?query=count(probe_success%3D%3D1)' | python3 -c 'import json,sys; r=json.load(sys.stdin)[\"data\"][\"result\"]; print(r[0][\"value\"][1] if r else 0)')\" = 3"
  say "up. UI: $URL/  Recovery view: $URL/recovery"
}

# Waits until none of the demo's alerts fires, so a scenario starts from a healthy system.
quiet() {
  wait_for "no firing alert" 120 sh -c \
    "test \"\$(curl -fsS '$URL/api/v1/alerts' | python3 -c 'import json,sys; print(sum(1 for a in json.load(sys.stdin)[\"data\"][\"alerts\"] if a[\"labels\"][\"alertname\"] in (\"WebDown\",\"PostgresPrimaryMissing\",\"ApiSaturated\") and a[\"state\"]==\"firing\"))')\" = 0"
}

run() {
  local name=$1
  [ -f "$HERE/scenarios/$name.yaml.tmpl" ] || die "no scenario $name (${SCENARIOS[*]})"
  quiet
  fill "$HERE/scenarios/$name.yaml.tmpl" "$STATE/scenarios/$name.yaml"
  say "scenario $name"
  "$VIGIL" loadtest "$STATE/scenarios/$name.yaml" --json "$STATE/reports/$name.json"
  # The runbook may still be verifying: wait for its verdict, keep its final record.
  local id
  id=$(python3 -c "import json; print((json.load(open('$STATE/reports/$name.json')).get('vigil') or {}).get('execution') or '')")
  if [ -n "$id" ]; then
    wait_for "execution $id's verdict" 180 sh -c \
      "curl -fsS '$URL/api/v1/runbooks/executions/$id' | python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)[\"data\"][\"outcome\"] in (\"running\",\"pending\"))'"
    curl -fsS "$URL/api/v1/runbooks/executions/$id" >"$STATE/reports/$name.execution.json"
  fi
}

summary() {
  python3 - "$STATE/reports" "${SCENARIOS[@]}" <<'PY'
import json, os, sys
d, names = sys.argv[1], sys.argv[2:]
f = lambda v: "-" if v is None else f"{v:.2f} s"
print(f"{'scenario':<16} {'detect':>9} {'remediate':>10} {'recover':>9}  runbook (outcome)      errors  p99 during")
for n in names:
    p = os.path.join(d, n + ".json")
    if not os.path.exists(p):
        continue
    r = json.load(open(p))
    v = r.get("vigil") or {}
    e = {}
    ep = os.path.join(d, n + ".execution.json")
    if os.path.exists(ep):
        e = json.load(open(ep))["data"]
    during = next((s for s in r.get("stretches", []) if s["name"] == "during"), r["total"])
    rb = f"{e.get('runbook', v.get('runbook', '-'))} ({e.get('outcome', v.get('outcome', '-'))})"
    print(f"{n:<16} {f(v.get('time_to_detect_s')):>9} {f(v.get('time_to_remediate_s')):>10} "
          f"{f((r.get('recovery') or {}).get('time_to_recover_s')):>9}  {rb:<22} {r['total']['errors']:>6}  {during['p99_ms']:.0f} ms")
PY
}

down() {
  for p in vigil app; do
    if [ -f "$STATE/$p.pid" ]; then kill "$(cat "$STATE/$p.pid")" 2>/dev/null || true; fi
  done
  if [ -f "$STATE/haproxy.pid" ]; then kill "$(cat "$STATE/haproxy.pid")" 2>/dev/null || true; fi
  for d in pg1 pg2; do
    if [ -f "$STATE/$d/postmaster.pid" ]; then kill -9 "$(head -n 1 "$STATE/$d/postmaster.pid")" 2>/dev/null || true; fi
  done
  docker rm -f vigil-demo-web >/dev/null 2>&1 || true
  for c in $(docker ps -aq --filter label=vigil.group=vigil-demo-api 2>/dev/null); do
    docker rm -f "$c" >/dev/null 2>&1 || true
  done
}

case "${1:-all}" in
  up) up ;;
  run) shift; for s in "$@"; do run "$s"; done; summary ;;
  down) down; say "down" ;;
  summary) summary ;;
  all)
    if [ "${KEEP:-0}" != 1 ]; then trap down EXIT; fi
    up
    for s in "${SCENARIOS[@]}"; do run "$s"; done
    summary
    ;;
  *) die "usage: $0 [all|up|run SCENARIO...|summary|down]" ;;
esac
