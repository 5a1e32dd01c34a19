#!/bin/sh
# The demo's fence for a PostgreSQL node whose data directory is on this host: kill what may still
# run of it and leave a standby.signal, so that whatever starts it again starts a read-only
# replica. pg-failover runs it (declared in vigil.yml) before promoting the other node.
set -eu
data="$1"
if [ -f "$data/postmaster.pid" ]; then kill -9 "$(head -n 1 "$data/postmaster.pid")" 2>/dev/null || true; fi
touch "$data/standby.signal"
chown postgres:postgres "$data/standby.signal"
echo "fenced $VIGIL_NODE ($VIGIL_ADDRESS)"
