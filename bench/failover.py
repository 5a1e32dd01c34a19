#!/usr/bin/python3
"""Failover benchmark: write unavailability when a PostgreSQL primary dies, Vigil against Patroni.

Every trial builds a fresh two-node PostgreSQL 15 cluster whose replica is synchronous, puts HAProxy
in front of it, and runs a client that writes numbered rows through HAProxy as fast as they are
acknowledged, keeping the time of each acknowledged commit. Then the primary's postmaster gets
`kill -9`. Write unavailability is the longest gap between two acknowledged writes around the
fault; afterwards every acknowledged row must be on the primary (lost rows are counted).

  vigil           Vigil (target/release/vigil) probes both nodes every 1 s with its postgres
                  module, evaluates the shipped rule file alerting/rules/probes.yml
                  (PostgresPrimaryMissing, for: 2s), and the pg-failover runbook
                  (sdk/examples/pg-failover) fences the old primary (a declared command), promotes
                  the replica and repoints HAProxy through its runtime API.
  patroni         Patroni 3.0 (Debian) with etcd, its defaults (ttl 30, loop_wait 10,
                  retry_timeout 10), synchronous_mode on, behind HAProxy as Patroni documents it
                  (`option httpchk OPTIONS /primary`, `inter 3s fall 3 rise 2`,
                  `on-marked-down shutdown-sessions`). The same kill of the postmaster: Patroni
                  still holds the leader key, so it restarts PostgreSQL in place at its next loop.
  patroni-node    Patroni when the whole node is lost (`kill -9` of Patroni, then of the
                  postmaster): the leader key expires after ttl and the replica takes over.

  /usr/bin/python3 bench/failover.py [--runs 10] [--node-runs 3] [--vigil target/release/vigil]
                                     [--only vigil,patroni,patroni-node] [--jitter 10] [--json out.json]

The kill comes 0 to --jitter seconds (uniform, seeded) after 300 acknowledged writes, so that it
lands anywhere in the probe/evaluation cycle and in Patroni's loop.

Run as root (PostgreSQL and Patroni run as the `postgres` user). Needs Debian's postgresql-15,
haproxy, patroni, etcd-server and python3-psycopg2 (the system python3: Patroni's own), and the
Rust runbook toolchain (rustc-web, cargo-web, rust-web-src, lld, wasi-libc) for the runbook.
"""
import argparse, json, os, pwd, random, shutil, signal, statistics, subprocess, sys, tempfile, threading, time
import urllib.request

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from common import executions, free_port  # noqa: E402

PG = "/usr/lib/postgresql/15/bin"
PW = pwd.getpwnam("postgres")


def as_postgres():
    os.setgid(PW.pw_gid)
    os.setuid(PW.pw_uid)


def run(args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"{' '.join(args)}: {r.stdout}{r.stderr}")
    return r.stdout


def wait(pred, limit, what):
    t = time.time() + limit
    while time.time() < t:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {limit}s waiting for {what}")


def connect(port, timeout=2):
    c = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                         connect_timeout=timeout, password="pg")
    c.autocommit = True
    return c


def sql(port, q):
    try:
        c = connect(port)
        try:
            with c.cursor() as cur:
                cur.execute(q)
                return cur.fetchall() if cur.description else None
        finally:
            c.close()
    except psycopg2.Error:
        return None


def owned_dir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    os.chown(d, PW.pw_uid, PW.pw_gid)
    return d


class Procs:
    """Processes of one trial, killed (with their process groups) at the end."""

    def __init__(self, work):
        self.work, self.procs = work, []

    def start(self, name, args, postgres=False):
        log = open(os.path.join(self.work, f"{name}.log"), "w")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             preexec_fn=as_postgres if postgres else None, start_new_session=True)
        self.procs.append(p)
        return p

    def stop(self):
        for p in reversed(self.procs):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


class Writer(threading.Thread):
    """Writes numbered rows through `port`, reconnecting after any error; keeps acknowledged ids
    and times."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.acked, self.errors, self.stopped = port, [], 0, False

    def run(self):
        n, conn = 0, None
        while not self.stopped:
            if conn is None:
                try:
                    conn = connect(self.port, 1)
                    with conn.cursor() as cur:
                        cur.execute("SET statement_timeout = 2000")
                except psycopg2.Error:
                    conn = None
                    self.errors += 1
                    time.sleep(0.02)
                    continue
            n += 1
            try:
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO acked (id, at) VALUES (%s, now())", (n,))
                self.acked.append((n, time.monotonic()))
            except psycopg2.Error:
                self.errors += 1
                try:
                    conn.close()
                except psycopg2.Error:
                    pass
                conn = None
                time.sleep(0.02)

    def stop(self):
        self.stopped = True
        self.join(10)


def gap(acked, fault):
    """Longest time between consecutive acknowledged writes from a second before the fault."""
    g = 0.0
    for (_, a), (_, b) in zip(acked, acked[1:]):
        if b >= fault - 1:
            g = max(g, b - a)
    return g


def lost(acked, port):
    rows = sql(port, "SELECT id FROM acked")
    if rows is None:
        return None
    have = {r[0] for r in rows}
    return sum(1 for i, _ in acked if i not in have)


# Seconds of extra writing before the kill, drawn per trial: the kill lands at a uniformly random
# point of the probe, evaluation and Patroni loop cycles instead of always the same one.
JITTER = random.Random(11)
JITTER_S = 10.0


def measure(writer, kill, resumed_port, settle=3.0, limit=180):
    """Lets the writer run, kills, waits for writes to resume; returns (gap, acked, fault)."""
    wait(lambda: len(writer.acked) >= 300, 30, "writes acknowledged")
    time.sleep(JITTER.uniform(0, JITTER_S))
    before = len(writer.acked)
    kill()
    fault = time.monotonic()
    wait(lambda: len(writer.acked) > before and writer.acked[-1][1] > fault + 0.5 and
         len([a for a in writer.acked if a[1] > fault]) >= 50, limit, "writes acknowledged after the fault")
    time.sleep(settle)
    writer.stop()
    return gap(writer.acked, fault), writer.acked, fault


# ---- Vigil ------------------------------------------------------------------------------------

FENCE_SH = """#!/bin/sh
set -eu
data="$1"
if [ -f "$data/postmaster.pid" ]; then kill -9 "$(head -n 1 "$data/postmaster.pid")" 2>/dev/null || true; fi
touch "$data/standby.signal"
chown postgres:postgres "$data/standby.signal"
"""


def build_runbook():
    target = os.path.join(ROOT, "target", "wasm-examples")
    env = dict(os.environ, RUSTC="/usr/bin/rustc", RUSTC_BOOTSTRAP="1", CARGO_TARGET_DIR=target,
               RUSTFLAGS="-L /usr/lib/wasm32-wasi -C linker=wasm-ld")
    env.pop("RUSTUP_TOOLCHAIN", None)
    env.pop("CARGO", None)
    subprocess.run(["/usr/bin/cargo", "build", "-q", "--release", "--locked", "--target", "wasm32-wasip1",
                    "-Zbuild-std=std,panic_abort"], cwd=os.path.join(ROOT, "sdk/examples"), env=env, check=True)
    return os.path.join(target, "wasm32-wasip1/release/pg_failover.wasm")


def vigil_trial(binary, wasm):
    work = owned_dir("vigil-failover-")
    procs = Procs(work)
    try:
        sock = os.path.join(work, "sock")
        os.mkdir(sock)
        os.chown(sock, PW.pw_uid, PW.pw_gid)
        p1, p2, front, vport = free_port(), free_port(), free_port(), free_port()
        d1, d2 = os.path.join(work, "pg1"), os.path.join(work, "pg2")
        run([f"{PG}/initdb", "-D", d1, "-A", "trust", "-U", "postgres", "--no-sync"], preexec_fn=as_postgres)
        procs.start("pg1", [f"{PG}/postgres", "-D", d1, "-p", str(p1), "-c", "listen_addresses=127.0.0.1",
                            "-k", sock, "-c", "synchronous_standby_names=replica1", "-c", "synchronous_commit=on"],
                    postgres=True)
        wait(lambda: sql(p1, "SELECT 1"), 30, "pg1")
        run([f"{PG}/pg_basebackup", "-h", "127.0.0.1", "-p", str(p1), "-U", "postgres", "-D", d2, "-R",
             "-X", "stream", "--no-sync", "-d", "application_name=replica1"], preexec_fn=as_postgres)
        procs.start("pg2", [f"{PG}/postgres", "-D", d2, "-p", str(p2), "-c", "listen_addresses=127.0.0.1",
                            "-k", sock], postgres=True)
        wait(lambda: (sql(p1, "SELECT sync_state FROM pg_stat_replication") or [[None]])[0][0] == "sync", 30,
             "the replica in sync")
        sql(p1, "CREATE TABLE acked (id bigint PRIMARY KEY, at timestamptz)")
        admin = os.path.join(work, "haproxy.sock")
        with open(os.path.join(work, "haproxy.cfg"), "w") as f:
            f.write(f"""global
  stats socket {admin} mode 600 level admin
defaults
  mode tcp
  timeout connect 1s
  timeout client 10m
  timeout server 10m
frontend pg
  bind 127.0.0.1:{front}
  default_backend pg
backend pg
  server pg1 127.0.0.1:{p1}
  server pg2 127.0.0.1:{p2} disabled
""")
        procs.start("haproxy", ["haproxy", "-db", "-f", os.path.join(work, "haproxy.cfg")])
        wait(lambda: os.path.exists(admin), 10, "haproxy")
        rb = os.path.join(work, "rb")
        os.mkdir(rb)
        shutil.copy(wasm, os.path.join(rb, "pg-failover.wasm"))
        shutil.copy(os.path.join(ROOT, "sdk/examples/pg-failover/pg-failover.runbook.yml"), rb)
        fence = os.path.join(work, "fence.sh")
        with open(fence, "w") as f:
            f.write(FENCE_SH)
        with open(os.path.join(work, "blackbox.yml"), "w") as f:
            f.write("modules:\n  pg:\n    prober: postgres\n    timeout: 900ms\n    postgres:\n"
                    "      user: postgres\n      dbname: postgres\n")
        with open(os.path.join(work, "am.yml"), "w") as f:
            f.write("""route:
  receiver: oncall
  group_by: [alertname, job]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - matchers: ['alertname="PostgresPrimaryMissing"']
      receiver: failover
receivers:
  - name: oncall
  - name: failover
    runbook_configs:
      - runbook: pg-failover
        params: {cluster: main, route: writer, job: '{{ $labels.job }}'}
        target: 'postgres:main'
        grants: [{capability: postgres.status}, {capability: postgres.fence}, {capability: postgres.promote},
                 {capability: postgres.write_check}, {capability: route.get}, {capability: route.set},
                 {capability: query.promql}]
        verify_within: 30s
""")
        with open(os.path.join(work, "vigil.yml"), "w") as f:
            f.write(f"""scrape_configs: []
builtin_rules: false
rule_files: ['{os.path.join(ROOT, "alerting/rules/probes.yml")}']
alertmanager_config: am.yml
blackbox_config: blackbox.yml
probe_configs:
  - job_name: pg
    module: pg
    interval: 1s
    timeout: 900ms
    static_configs:
      - targets: ['127.0.0.1:{p1}', '127.0.0.1:{p2}']
runbooks:
  dir: rb
  deadline: 2m
  verify_every: 250ms
  policy: {{cooldown: 0s}}
  postgres:
    main:
      endpoint: '127.0.0.1:{front}'
      login: {{connect_timeout: 1s}}
      nodes:
        pg1: {{address: '127.0.0.1:{p1}', fence: {{command: [sh, '{fence}', '{d1}']}}}}
        pg2: {{address: '127.0.0.1:{p2}', fence: {{command: [sh, '{fence}', '{d2}']}}}}
  routes:
    writer: {{kind: haproxy, socket: '{admin}', backend: pg}}
""")
        data = os.path.join(work, "data")
        procs.start("vigil", [binary, "serve", "--listen", f"127.0.0.1:{vport}", "--data-dir", data,
                              "--config", os.path.join(work, "vigil.yml"), "--log", "warn"])

        def ready():
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{vport}/-/ready", timeout=1).status == 200
            except Exception:
                return False
        wait(ready, 60, "vigil")
        # Both nodes probed and in their roles before the fault.
        q = urllib.request.quote("count(vigil_probe_pg_is_primary == 1 or vigil_probe_pg_in_recovery == 1)")

        def probed():
            r = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{vport}/api/v1/query?query={q}").read())
            return r["data"]["result"] and r["data"]["result"][0]["value"][1] == "2"
        wait(probed, 30, "both nodes probed")
        w = Writer(front)
        w.start()
        pid = int(open(os.path.join(d1, "postmaster.pid")).readline())
        g, acked, fault = measure(w, lambda: os.kill(pid, signal.SIGKILL), front)
        ex = wait(lambda: next((e for e in executions(data) if e["outcome"] not in ("running", "pending")), None),
                  90, "the execution's verdict")
        t = ex["times"]
        wall0 = time.time() - (time.monotonic() - fault)
        return {"unavailable_s": g, "acked": len(acked), "lost": lost(acked, p2), "outcome": ex["outcome"],
                "fault_to_detect_s": t["detected"] / 1000 - wall0 if t.get("detected") else None,
                "fault_to_act_s": t["acted"] / 1000 - wall0 if t.get("acted") else None,
                "run_s": (t["finished"] - t["started"]) / 1000 if t.get("finished") and t.get("started") else None}
    finally:
        procs.stop()
        shutil.rmtree(work, ignore_errors=True)


# ---- Patroni ----------------------------------------------------------------------------------

def patroni_trial(node_loss):
    work = owned_dir("patroni-failover-")
    procs = Procs(work)
    try:
        cport, pport = free_port(), free_port()
        procs.start("etcd", ["etcd", "--name", "e1", "--data-dir", os.path.join(work, "etcd"),
                             "--listen-client-urls", f"http://127.0.0.1:{cport}",
                             "--advertise-client-urls", f"http://127.0.0.1:{cport}",
                             "--listen-peer-urls", f"http://127.0.0.1:{pport}",
                             "--initial-advertise-peer-urls", f"http://127.0.0.1:{pport}",
                             "--initial-cluster", f"e1=http://127.0.0.1:{pport}"])
        ports = {n: (free_port(), free_port()) for n in ("node1", "node2")}
        patronis = {}
        for n, (pg, api) in ports.items():
            cfg = os.path.join(work, f"{n}.yml")
            with open(cfg, "w") as f:
                f.write(f"""scope: bench
name: {n}
restapi:
  listen: 127.0.0.1:{api}
  connect_address: 127.0.0.1:{api}
etcd3:
  hosts: 127.0.0.1:{cport}
bootstrap:
  dcs:
    ttl: 30
    loop_wait: 10
    retry_timeout: 10
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    postgresql:
      parameters:
        synchronous_commit: "on"
  initdb:
    - encoding: UTF8
  pg_hba:
    - host replication replicator 127.0.0.1/32 trust
    - host all all 127.0.0.1/32 trust
    - local all all trust
postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {os.path.join(work, n)}
  bin_dir: {PG}
  pgpass: {os.path.join(work, n + '.pgpass')}
  authentication:
    replication: {{username: replicator, password: rep}}
    superuser: {{username: postgres, password: pg}}
  parameters:
    unix_socket_directories: '{work}'
""")
            os.chown(cfg, PW.pw_uid, PW.pw_gid)
        patronis["node1"] = procs.start("patroni1", ["/usr/bin/patroni", os.path.join(work, "node1.yml")], postgres=True)
        wait(lambda: sql(ports["node1"][0], "SELECT NOT pg_is_in_recovery()") == [(True,)], 60, "node1 leader")
        patronis["node2"] = procs.start("patroni2", ["/usr/bin/patroni", os.path.join(work, "node2.yml")], postgres=True)

        def cluster():
            try:
                return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{ports['node1'][1]}/cluster",
                                                         timeout=1).read())["members"]
            except Exception:
                return []
        wait(lambda: any(m["role"] == "sync_standby" for m in cluster()), 90, "a synchronous standby")
        leader = next(m["name"] for m in cluster() if m["role"] == "leader")
        lport = ports[leader][0]
        sql(lport, "CREATE TABLE acked (id bigint PRIMARY KEY, at timestamptz)")
        front = free_port()
        servers = "\n".join(f"  server {n} 127.0.0.1:{pg} maxconn 100 check port {api}" for n, (pg, api) in ports.items())
        with open(os.path.join(work, "haproxy.cfg"), "w") as f:
            f.write(f"""global
  maxconn 100
defaults
  mode tcp
  retries 2
  timeout connect 4s
  timeout client 30m
  timeout server 30m
  timeout check 5s
frontend pg
  bind 127.0.0.1:{front}
  default_backend primary
backend primary
  option httpchk OPTIONS /primary
  http-check expect status 200
  default-server inter 3s fall 3 rise 2 on-marked-down shutdown-sessions
{servers}
""")
        procs.start("haproxy", ["haproxy", "-db", "-f", os.path.join(work, "haproxy.cfg")])
        wait(lambda: sql(front, "SELECT 1"), 30, "haproxy routing to the leader")
        w = Writer(front)
        w.start()
        data = os.path.join(work, leader)
        pid = int(open(os.path.join(data, "postmaster.pid")).readline())

        def kill():
            if node_loss:
                os.kill(patronis[leader].pid, signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)
        g, acked, _ = measure(w, kill, front, limit=240)
        now = next((m for m in cluster() if m["role"] == "leader"), None)
        if now is None:
            other = [n for n in ports if n != leader][0]
            try:
                now = next(m for m in json.loads(urllib.request.urlopen(
                    f"http://127.0.0.1:{ports[other][1]}/cluster", timeout=1).read())["members"] if m["role"] == "leader")
            except Exception:
                now = {"name": other}
        return {"unavailable_s": g, "acked": len(acked), "lost": lost(acked, ports[now["name"]][0]),
                "new_leader": now["name"], "old_leader": leader}
    finally:
        procs.stop()
        shutil.rmtree(work, ignore_errors=True)


def dist(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return "-"
    q = lambda p: xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]
    return f"min {xs[0]:.2f}  p50 {statistics.median(xs):.2f}  p90 {q(0.9):.2f}  max {xs[-1]:.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--node-runs", type=int, default=3)
    ap.add_argument("--vigil", default=os.path.join(ROOT, "target", "release", "vigil"))
    ap.add_argument("--only", default="vigil,patroni,patroni-node")
    ap.add_argument("--jitter", type=float, default=10.0,
                    help="longest random delay before each kill, seconds (uniform, seeded)")
    ap.add_argument("--json")
    a = ap.parse_args()
    global JITTER_S
    JITTER_S = a.jitter
    only = a.only.split(",")
    res = {"vigil": [], "patroni": [], "patroni-node": []}
    if "vigil" in only:
        wasm = build_runbook()
        for i in range(a.runs):
            r = vigil_trial(a.vigil, wasm)
            res["vigil"].append(r)
            print(f"vigil {i + 1}: writes unavailable {r['unavailable_s']:.2f} s, {r['acked']} acknowledged, "
                  f"{r['lost']} lost, {r['outcome']}", file=sys.stderr)
    if "patroni" in only:
        for i in range(a.runs):
            r = patroni_trial(False)
            res["patroni"].append(r)
            print(f"patroni {i + 1}: writes unavailable {r['unavailable_s']:.2f} s, {r['acked']} acknowledged, "
                  f"{r['lost']} lost, leader {r['old_leader']} -> {r['new_leader']}", file=sys.stderr)
    if "patroni-node" in only:
        for i in range(a.node_runs):
            r = patroni_trial(True)
            res["patroni-node"].append(r)
            print(f"patroni node loss {i + 1}: writes unavailable {r['unavailable_s']:.2f} s, "
                  f"{r['acked']} acknowledged, {r['lost']} lost, leader {r['old_leader']} -> {r['new_leader']}",
                  file=sys.stderr)
    print("\n== kill -9 of the primary's postmaster: write unavailability through HAProxy, seconds")
    v = res["vigil"]
    if v:
        print(f"vigil (1 s probe, for: 2s, pg-failover)   {dist([r['unavailable_s'] for r in v])}")
        print(f"  fault -> alert (startsAt)               {dist([r['fault_to_detect_s'] for r in v])}")
        print(f"  fault -> first action                   {dist([r['fault_to_act_s'] for r in v])}")
        print(f"  runbook run                             {dist([r['run_s'] for r in v])}")
        print(f"  verified {sum(r['outcome'] == 'verified' for r in v)} / {len(v)}, "
              f"lost rows {sum(r['lost'] or 0 for r in v)}")
    p = res["patroni"]
    if p:
        print(f"patroni (ttl 30, loop_wait 10), same kill {dist([r['unavailable_s'] for r in p])}")
        print(f"  leader changed {sum(r['new_leader'] != r['old_leader'] for r in p)} / {len(p)}, "
              f"lost rows {sum(r['lost'] or 0 for r in p)}")
    n = res["patroni-node"]
    if n:
        print(f"patroni, node lost (patroni killed too)   {dist([r['unavailable_s'] for r in n])}")
        print(f"  leader changed {sum(r['new_leader'] != r['old_leader'] for r in n)} / {len(n)}, "
              f"lost rows {sum(r['lost'] or 0 for r in n)}")
    if v and p:
        print(f"ratio of medians patroni / vigil (same kill): "
              f"{statistics.median([r['unavailable_s'] for r in p]) / statistics.median([r['unavailable_s'] for r in v]):.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
