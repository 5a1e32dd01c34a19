#!/usr/bin/env python3
"""LogQL query latency over a large log store: pushes `--gb` GB (default 5) of nginx-like access lines
spread over the last 24 hours into Vigil by Loki push, waits until every line is indexed into splits,
then times a fixed set of Loki API queries and checks every answer against what was pushed.

    cargo build --release
    python3 bench/logs_query.py --gb 5 --runs 5 --json /tmp/logs_query.json

Data: 16 streams {job="nginx", host="web-N", env="prod"}; each push carries 4,000 consecutive lines of
one stream (round-robin); timestamps increase over (E - 24h, E - 1s], E being the start of the run.
Lines come from 4,096 precomputed templates (method, path, status, size, agent, rt) with the time of
the line and a unique `req=<16 hex digits>` (the line's number through a fixed 64-bit permutation)
filled in per line, so any line can be rebuilt from its number. 20 lines, spread over the day,
carry `q=needle-7f3a9c-<k>` (k = 0..19). Every push body is written to files in the data directory
first (one process per core; 5 GB of lines is about 6 GB of JSON), before the server starts, so
pushing costs the client only reading a file and a POST; `--generate-while-pushing` builds each body in
the push threads instead (the way earlier results were measured: generation then takes about 0.7 of a
core from the server).

Queries (each `--runs` times; min / median / max / first client-side latency, the server's execTime;
"lines / sum" is the lines a log query returned or the sum of every point of a metric query):
  needle k=3            {job="nginx"} |= "needle-7f3a9c-3", 24 h, limit 100: the one planted line
  needle closed tokens  {job="nginx"} |= "=needle-7f3a9c-3 ": the same line, every token of the
                        needle is whole (the index needs no prefix/suffix match of a token)
  all 20 needles        {job="nginx"} |= "needle-7f3a9c-", 24 h: exactly the 20 planted lines
  request id            {job="nginx"} |= "req=<hex>" of a different random pushed line each run
  count 24h step 1h     sum(count_over_time({job="nginx"}[1h])): total == lines pushed, per step too
  500s by host 1h       sum by (host) (count_over_time({job="nginx"} |= "\\" 500 " [5m])), last hour,
                        step 60 s (a Grafana panel): compared point by point with what was pushed
  log volume 24h 1m     sum by (level) (count_over_time({job="nginx"}[1m])), step 60 s (Grafana's
                        logs volume histogram): total == lines pushed
  latest 100            {job="nginx"}, 24 h, direction backward, limit 100: the 100 newest lines

`--keep` keeps the data directory (its path is printed); `--reuse DIR` runs only the queries on a kept
directory (the lines are rebuilt from DIR/manifest.json).
"""
import argparse, http.client, json, multiprocessing, os, random, shutil, statistics, subprocess, sys, tempfile
import threading, time, urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, cpu_seconds, free_port, get, metric, wait_ready  # noqa: E402
from logs import AGENTS, METHODS, PATHS, STATUS, du  # noqa: E402

NS = 1_000_000_000
DAY = 86400
M64 = (1 << 64) - 1
MUL = 0x9E3779B97F4A7C15  # odd: i -> (i * MUL mod 2^64) ^ XOR is a permutation of 64-bit integers
XOR = 0x5DEECE66DA3C4F17
NEEDLE = "needle-7f3a9c"
N_NEEDLES = 20
N_TEMPLATES = 4096
SEL_BITS = 16  # line i uses template SEL[i % 65536]
TIME_FMT = "%d/%b/%Y:%H:%M:%S +0000"  # always 26 characters
CONFIG = ("scrape_configs: []\nbuiltin_rules: false\nstorage:\n  logs:\n    head_max_age: 30s\n"
          "    maintenance_interval: 1s\n    retention_period: 0s\n")  # 0s: keep forever


def jesc(s):
    return json.dumps(s)[1:-1]


class Data:
    """The lines of a run, numbered 0..n-1: line i has time t0 + i*spacing, is in push i // batch of
    stream host web-(i // batch % streams), and its text is rebuilt by line(i)."""

    def __init__(self, end_s, batch, streams, seed, target_bytes=None, n=None):
        self.end_s, self.batch, self.streams, self.seed = end_s, batch, streams, seed
        rng = random.Random(seed)
        self.tpl = []  # (prefix json, suffix json, prefix raw, suffix raw, status)
        for _ in range(N_TEMPLATES):
            path = rng.choice(PATHS)
            if rng.random() < 0.5:
                path += f"?id={rng.randrange(100000)}&page={rng.randrange(20)}"
            status = rng.choice(STATUS)
            pre = "{}.{}.{}.{} - - [".format(rng.randrange(10, 223), rng.randrange(256), rng.randrange(256),
                                             rng.randrange(256))
            suf = '] "{} {} HTTP/1.1" {} {} "-" "{}" rt={:.3f} req='.format(
                rng.choice(METHODS), path, status, rng.randrange(200, 60000), rng.choice(AGENTS), rng.random() * 2)
            self.tpl.append((jesc(pre), jesc(suf), pre, suf, status))
        self.sel = [rng.randrange(N_TEMPLATES) for _ in range(1 << SEL_BITS)]
        # Raw bytes of lines 0..i-1 (without needles): full cycles of SEL, then a prefix of it.
        self.cum = [0]
        for t in self.sel:
            p = self.tpl[t]
            self.cum.append(self.cum[-1] + len(p[2]) + len(p[3]) + 26 + 16)
        if n is None:
            n = int(target_bytes / (self.cum[-1] / len(self.sel))) + 1
            while self._raw_upto(n) < target_bytes:
                n += 1
        while True:
            self.n = n
            self.spacing = (DAY - 1) * NS // n
            self.t0 = (end_s - DAY) * NS + self.spacing
            self.needles = {int((k + 0.5) * n / N_NEEDLES): k for k in range(N_NEEDLES)}
            self.raw_bytes = self._raw_upto(n) + sum(len(self.line(i)) - self._plain_len(i) for i in self.needles)
            if target_bytes is None or self.raw_bytes >= target_bytes:
                break
            n += 1
        self.pushes = (n + batch - 1) // batch

    def manifest(self):
        return {"n": self.n, "end_s": self.end_s, "batch": self.batch, "streams": self.streams,
                "seed": self.seed, "raw_bytes": self.raw_bytes}

    def _raw_upto(self, i):
        q, r = divmod(i, len(self.sel))
        return q * self.cum[-1] + self.cum[r]

    def _plain_len(self, i):
        p = self.tpl[self.sel[i & ((1 << SEL_BITS) - 1)]]
        return len(p[2]) + len(p[3]) + 42

    def ts(self, i):
        return self.t0 + i * self.spacing

    def host(self, i):
        return f"web-{i // self.batch % self.streams}"

    def rid(self, i):
        return ((i * MUL) & M64) ^ XOR

    def status(self, i):
        return 200 if i in self.needles else self.tpl[self.sel[i & ((1 << SEL_BITS) - 1)]][4]

    def line(self, i):
        ts = time.strftime(TIME_FMT, time.gmtime(self.ts(i) // NS))
        p = self.tpl[self.sel[i & ((1 << SEL_BITS) - 1)]]
        if i in self.needles:
            return '{}{}] "GET /api/v1/search?q={}-{} HTTP/1.1" 200 512 "-" "curl/8.4.0" rt=0.004 req={:016x}'.format(
                p[2], ts, NEEDLE, self.needles[i], self.rid(i))
        return f"{p[2]}{ts}{p[3]}{self.rid(i):016x}"

    def body(self, push):
        """The JSON push body of push number `push` and the raw bytes of its lines."""
        i0 = push * self.batch
        i1 = min(i0 + self.batch, self.n)
        tpl, sel, mask, sp = self.tpl, self.sel, (1 << SEL_BITS) - 1, self.spacing
        strftime, gmtime = time.strftime, time.gmtime
        parts = []
        ap = parts.append
        last, tstr = -1, ""
        ts = self.t0 + i0 * sp
        for i in range(i0, i1):
            s = ts // NS
            if s != last:
                last, tstr = s, strftime(TIME_FMT, gmtime(s))
            p = tpl[sel[i & mask]]
            ap('["%d","%s%s%s%016x"]' % (ts, p[0], tstr, p[1], ((i * MUL) & M64) ^ XOR))
            ts += sp
        raw = self._raw_upto(i1) - self._raw_upto(i0)
        for i, k in self.needles.items():
            if i0 <= i < i1:
                line = self.line(i)
                parts[i - i0] = '["%d",%s]' % (self.ts(i), json.dumps(line))
                raw += len(line) - self._plain_len(i)
        body = ('{"streams":[{"stream":{"job":"nginx","host":"%s","env":"prod"},"values":[%s]}]}'
                % (self.host(i0), ",".join(parts)))
        return body.encode(), raw


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        rev = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True,
                             text=True).stdout.strip()
    except OSError:
        rev = None
    return {"nproc": os.cpu_count(), "cpu": model, "mem_total_gib": round(mem / 2**30, 1) if mem else None,
            "vigil_revision": rev}


def rss(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Watch(threading.Thread):
    """Samples the server's RSS every half second; keeps the peak."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def run(self):
        while not self.stop.wait(0.5):
            self.peak = max(self.peak, rss(self.pid))


_GEN = None  # the Data of the run, inherited by the generating processes (fork)


def _write_bodies(job):
    """Writes the JSON bodies of pushes lo..hi-1 to DIR/<push>.json; returns their raw line bytes."""
    dirpath, lo, hi = job
    raws = []
    for p in range(lo, hi):
        body, raw = _GEN.body(p)
        with open(os.path.join(dirpath, f"{p}.json"), "wb") as f:
            f.write(body)
        raws.append(raw)
    return raws


def pregenerate(d, dirpath, procs):
    """Every push body into files before the server starts, on `procs` processes, so that pushing
    costs the client only reading a file and a POST: the server gets the machine's cores."""
    global _GEN
    _GEN = d
    os.makedirs(dirpath)
    jobs = [(dirpath, lo, min(lo + 64, d.pushes)) for lo in range(0, d.pushes, 64)]
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        return [r for chunk in pool.map(_write_bodies, jobs) for r in chunk]


def push_all(port, data, workers, log_every=10.0, bodies=None, raws=None):
    """Pushes every body with `workers` threads, each building its next body itself or, with `bodies`
    (a directory from `pregenerate`), reading it from there. Retries 429 and 5xx (the head drops
    exact repeats, so a resent body is stored once)."""
    lock = threading.Lock()
    state = {"next": 0, "raw": 0, "json": 0, "errors": [], "retries": 0, "gen_s": 0.0}
    stop = threading.Event()

    def worker():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        while not stop.is_set():
            with lock:
                p = state["next"]
                if p >= data.pushes:
                    return
                state["next"] += 1
            g0 = time.perf_counter()
            if bodies:
                with open(os.path.join(bodies, f"{p}.json"), "rb") as f:
                    body, raw = f.read(), raws[p]
            else:
                body, raw = data.body(p)
            g = time.perf_counter() - g0
            for attempt in range(30):
                try:
                    c.request("POST", "/loki/api/v1/push", body, {"Content-Type": "application/json"})
                    r = c.getresponse()
                    text = r.read()
                except (OSError, http.client.HTTPException) as e:
                    c.close()
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                    status, text, wait = None, str(e).encode(), 1.0
                else:
                    status = r.status
                    wait = float(r.getheader("Retry-After") or 1)
                if status == 204:
                    break
                if status is not None and status < 500 and status != 429:
                    with lock:
                        state["errors"].append((p, status, text[:300].decode(errors="replace")))
                    break
                with lock:
                    state["retries"] += 1
                time.sleep(min(wait, 5))
            else:
                with lock:
                    state["errors"].append((p, status, "gave up after 30 attempts"))
            with lock:
                state["raw"] += raw
                state["json"] += len(body)
                state["gen_s"] += g

    ts = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    t0 = time.time()
    for t in ts:
        t.start()
    last = t0
    try:
        while any(t.is_alive() for t in ts):
            for t in ts:
                t.join(0.5)
            now = time.time()
            if now - last >= log_every:
                last = now
                m = get(f"http://127.0.0.1:{port}/metrics")
                with lock:
                    raw, n = state["raw"], state["next"]
                print(f"  {now - t0:6.0f} s: {n}/{data.pushes} pushes, {raw / 1e6:8.0f} MB "
                      f"({raw / 1e6 / (now - t0):5.1f} MB/s), head {(metric(m, 'vigil_logs_head_bytes') or 0) / 1e6:6.0f} MB, "
                      f"splits {metric(m, 'vigil_logs_splits') or 0:.0f}", flush=True)
    except BaseException:
        stop.set()
        raise
    return time.time() - t0, state


class Client:
    def __init__(self, port):
        self.port = port
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=900)

    def query_range(self, params):
        url = "/loki/api/v1/query_range?" + urllib.parse.urlencode(params)
        t0 = time.perf_counter()
        try:
            self.c.request("GET", url)
            r = self.c.getresponse()
            body = r.read()
        except (OSError, http.client.HTTPException):
            self.c.close()
            self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=900)
            raise
        dt = time.perf_counter() - t0
        try:
            res = json.loads(body)
        except ValueError:
            res = {"status": "error", "message": body[:300].decode(errors="replace")}
        return dt, r.status, res


def entries(res):
    """(ts ns, host, line) of a streams answer, in answer order."""
    out = []
    for s in res["data"]["result"]:
        for v in s["values"]:
            out.append((int(v[0]), s["stream"].get("host"), v[1]))
    return out


def matrix(res):
    """{(labels tuple, t seconds): value} of a matrix answer, zero values left out."""
    out = {}
    for s in res["data"]["result"]:
        key = tuple(sorted(s["metric"].items()))
        for t, v in s["values"]:
            if float(v) != 0:
                out[(key, int(round(float(t))))] = float(v)
    return out


def expected_entries(d, idx):
    return sorted((d.ts(i), d.host(i), d.line(i)) for i in idx)


def count_between(d, a_ns, b_ns):
    """Lines with time in (a, b]."""
    def upto(t):  # lines with ts <= t
        if t < d.t0:
            return 0
        return min(d.n, (t - d.t0) // d.spacing + 1)
    return upto(b_ns) - upto(a_ns)


def expected_counts(d, start_s, end_s, step_s, range_s):
    out = {}
    t = start_s
    while t <= end_s:
        c = count_between(d, (t - range_s) * NS, t * NS)
        if c:
            out[((), t)] = float(c)
        t += step_s
    return out


def expected_500s(d, start_s, end_s, step_s, range_s):
    lo = (start_s - range_s) * NS
    i = max(0, (lo - d.t0) // d.spacing)
    steps = list(range(start_s, end_s + 1, step_s))
    out = {}
    while i < d.n:
        ts = d.ts(i)
        if ts > end_s * NS:
            break
        if ts > lo and d.status(i) == 500:
            key = (("host", d.host(i)),)
            for t in steps:
                if (t - range_s) * NS < ts <= t * NS:
                    out[(key, t)] = out.get((key, t), 0.0) + 1
        i += 1
    return out


def describe_diff(got, want, limit=5):
    keys = sorted(set(got) | set(want), key=str)
    bad = [(k, got.get(k), want.get(k)) for k in keys if got.get(k) != want.get(k)]
    return f"{len(bad)} points differ, e.g. " + "; ".join(f"{k}: got {g} want {w}" for k, g, w in bad[:limit])


def run_queries(port, d, runs, seed):
    E = d.end_s
    sel = '{job="nginx"}'
    log24 = {"start": (E - DAY) * NS, "end": E * NS, "limit": 100}
    rng = random.Random(seed + 1)
    ids = [rng.randrange(d.n) for _ in range(runs)]
    k3 = [i for i, k in d.needles.items() if k == 3]

    def log_q(expr, idx_for_run, direction=None, sort=True):
        def make(r):
            p = dict(log24, query=expr(r))
            if direction:
                p["direction"] = direction
            return p

        def check(r, res):
            got = entries(res)
            want = expected_entries(d, idx_for_run(r))
            if sort:
                got = sorted(got)
            if got == want:
                return len(got), None
            return len(got), f"{len(got)} lines, want {len(want)}; first got {got[:1]}, want {want[:1]}"
        return make, check

    def metric_q(expr, start, end, step, want):
        def make(r):
            return {"query": expr, "start": start * NS, "end": end * NS, "step": step}

        def check(r, res):
            got = matrix(res)
            total = sum(got.values())
            if got == want:
                return total, None
            return total, f"sum {total:.0f}, want {sum(want.values()):.0f}; " + describe_diff(got, want)
        return make, check

    last100 = list(range(d.n - 100, d.n))
    queries = [
        ("needle k=3 (24h)", *log_q(lambda r: sel + f' |= "{NEEDLE}-3"', lambda r: k3)),
        ("needle k=3, closed tokens", *log_q(lambda r: sel + f' |= "={NEEDLE}-3 "', lambda r: k3)),
        ("all 20 needles (24h)", *log_q(lambda r: sel + f' |= "{NEEDLE}-"', lambda r: list(d.needles))),
        ("request id (24h)", *log_q(lambda r: sel + f' |= "req={d.rid(ids[r]):016x}"', lambda r: [ids[r]])),
        ("count 24h step 1h", *metric_q(f"sum(count_over_time({sel}[1h]))", E - DAY, E, 3600,
                                        expected_counts(d, E - DAY, E, 3600, 3600))),
        ("500s by host 1h step 60s", *metric_q(f'sum by (host) (count_over_time({sel} |= "\\" 500 " [5m]))',
                                               E - 3600, E, 60, expected_500s(d, E - 3600, E, 60, 300))),
        ("log volume 24h step 60s", *metric_q(f"sum by (level) (count_over_time({sel}[1m]))", E - DAY, E, 60,
                                              expected_counts(d, E - DAY, E, 60, 60))),
        ("latest 100 backward (24h)", *log_q(lambda r: sel, lambda r: last100, direction="backward")),
    ]
    cl = Client(port)
    out = []
    for name, make, check in queries:
        lat, execs, results, problems, lines, series = [], [], [], [], [], []
        for r in range(runs):
            params = make(r)
            try:
                dt, status, res = cl.query_range(params)
            except Exception as e:  # noqa: BLE001
                problems.append(f"run {r}: {e!r}")
                continue
            if status != 200 or res.get("status") != "success":
                problems.append(f"run {r}: HTTP {status} after {dt:.2f} s: {res.get('message') or res}"[:400])
                continue
            lat.append(dt * 1000)
            summ = (res.get("data", {}).get("stats") or res.get("stats") or {}).get("summary", {})
            execs.append(summ.get("execTime", 0) * 1000)
            lines.append(summ.get("totalLinesProcessed"))
            series.append(len(res["data"]["result"]))
            n, problem = check(r, res)
            results.append(n)
            if problem:
                problems.append(f"run {r}: {problem}"[:600])
        row = {
            "name": name, "query": make(0)["query"], "runs": len(lat),
            "first_ms": lat[0] if lat else None,
            "min_ms": min(lat) if lat else None,
            "median_ms": statistics.median(lat) if lat else None,
            "max_ms": max(lat) if lat else None,
            "server_exec_median_ms": statistics.median(execs) if execs else None,
            "lines_processed": lines[0] if lines else None,
            "results": results[0] if results else None,
            "series": series[0] if series else None,
            "ok": not problems,
            "problems": problems,
            "latencies_ms": lat,
        }
        out.append(row)
        print(f"  {name}: median {row['median_ms'] or float('nan'):.1f} ms, results {row['results']}, "
              f"{'ok' if row['ok'] else 'FAILED: ' + problems[0]}", flush=True)
    return out


def fmt(v, f="{:.1f}"):
    return "-" if v is None else f.format(v)


def table(rows):
    head = ["query", "min ms", "median ms", "max ms", "first ms", "server ms", "lines / sum", "streams / series",
            "check"]
    body = [[r["name"], fmt(r["min_ms"]), fmt(r["median_ms"]), fmt(r["max_ms"]), fmt(r["first_ms"]),
             fmt(r["server_exec_median_ms"]), fmt(r["results"], "{:,.0f}"), fmt(r["series"], "{:,}"),
             "ok" if r["ok"] else "FAILED"]
            for r in rows]
    w = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    lines = ["| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(head)) + " |",
             "|" + "|".join("-" * (w[i] + 1) + ":" if i else "-" * (w[i] + 2) for i in range(len(head))) + "|"]
    for b in body:
        lines.append("| " + " | ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(b)) + " |")
    return "\n".join(lines)


def wait_indexed(port, raw_bytes, limit):
    """Until the head is empty and the splits hold every raw byte pushed."""
    t0 = time.time()
    last_print = t0
    seen, since = None, t0
    while True:
        m = get(f"http://127.0.0.1:{port}/metrics")
        head = metric(m, "vigil_logs_head_bytes") or 0
        split_raw = metric(m, "vigil_logs_split_raw_bytes") or 0
        if head == 0 and (metric(m, "vigil_logs_splits") or 0) > 0 and split_raw >= raw_bytes:
            return time.time() - t0, m
        if (head, split_raw) != seen:
            seen, since = (head, split_raw), time.time()
        elif head == 0 and time.time() - since > 120:
            print(f"WARNING: the head is empty but the splits hold {split_raw:.0f} of {raw_bytes} raw bytes "
                  "pushed (unchanged for 120 s)", file=sys.stderr)
            return since - t0, m
        if time.time() - t0 > limit:
            sys.exit(f"not indexed after {limit} s: head {head:.0f} B, splits hold {split_raw:.0f} of "
                     f"{raw_bytes} raw bytes")
        if time.time() - last_print > 10:
            last_print = time.time()
            print(f"  indexing: head {head / 1e6:.0f} MB, splits hold {split_raw / 1e6:.0f} MB", flush=True)
        time.sleep(0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=5.0, help="raw log gigabytes (1e9 bytes of lines) to push")
    ap.add_argument("--runs", type=int, default=5, help="timed runs of each query")
    ap.add_argument("--workers", type=int, default=4, help="concurrent push connections")
    ap.add_argument("--batch-lines", type=int, default=4000, help="lines per push")
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--vigil", default=os.path.join(ROOT, "target", "release", "vigil"))
    ap.add_argument("--wait-binary", type=int, default=0, help="seconds to wait for the binary to appear")
    ap.add_argument("--index-timeout", type=int, default=3600, help="seconds to wait for indexing")
    ap.add_argument("--json", help="write every figure to this file")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    ap.add_argument("--generate-while-pushing", action="store_true",
                    help="build each body in the push threads as it is sent (the client then takes about "
                         "0.7 of a core from the server) instead of writing all of them to files first")
    ap.add_argument("--reuse", help="a directory kept by --keep: run only the queries on it")
    a = ap.parse_args()

    deadline = time.time() + a.wait_binary
    while not os.access(a.vigil, os.X_OK):
        if time.time() > deadline:
            sys.exit(f"{a.vigil}: not found (cargo build --release)")
        time.sleep(5)

    info = machine()
    print(f"machine: {info['nproc']} cores, {info['cpu']}, {info['mem_total_gib']} GiB; vigil {info['vigil_revision']}")
    res = {"machine": info, "args": vars(a)}

    if a.reuse:
        tmp = os.path.abspath(a.reuse)
        with open(os.path.join(tmp, "manifest.json")) as f:
            man = json.load(f)
        d = Data(man["end_s"], man["batch"], man["streams"], man["seed"], n=man["n"])  # as pushed
    else:
        end_s = int(time.time())
        d = Data(end_s, a.batch_lines, a.streams, a.seed, target_bytes=int(a.gb * 1e9))
        tmp = tempfile.mkdtemp(prefix="vigil-logs-query-bench-")
        with open(os.path.join(tmp, "manifest.json"), "w") as f:
            json.dump(d.manifest(), f)
        # Generation alone (one thread), before the server starts.
        k = min(d.pushes, 25)
        g0 = time.perf_counter()
        gen_raw = sum(d.body(p)[1] for p in range(k))
        gen_rate = gen_raw / (time.perf_counter() - g0) / 1e6
        print(f"{d.n:,} lines, {d.raw_bytes / 1e6:,.0f} MB of lines in {d.pushes:,} pushes over 24 h "
              f"({d.spacing / 1e6:.2f} ms apart); generation alone {gen_rate:.1f} MB/s of lines on one thread",
              flush=True)
        res["data"] = {"lines": d.n, "raw_bytes": d.raw_bytes, "pushes": d.pushes, "streams": d.streams,
                       "batch_lines": d.batch, "end_s": d.end_s, "generation_mb_s_one_thread": gen_rate}
        bodies, raws = None, None
        if not a.generate_while_pushing:
            bodies = os.path.join(tmp, "bodies")
            g0 = time.time()
            raws = pregenerate(d, bodies, max(1, os.cpu_count() or 1))
            print(f"bodies written to {bodies} in {time.time() - g0:.0f} s", flush=True)
            res["data"]["pregenerated"] = True

    port = free_port()
    cfg = os.path.join(tmp, "vigil.yml")
    with open(cfg, "w") as f:
        f.write(CONFIG)
    log = open(os.path.join(tmp, "vigil.log"), "a")
    p = subprocess.Popen([a.vigil, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir",
                          os.path.join(tmp, "data"), "--config", cfg], stdout=log, stderr=log)
    watch = Watch(p.pid)
    watch.start()
    try:
        wait_ready(f"http://127.0.0.1:{port}/-/ready", p)
        if not a.reuse:
            print(f"pushing with {a.workers} connections (data dir {tmp})…", flush=True)
            secs, st = push_all(port, d, a.workers, bodies=bodies, raws=raws)
            if bodies:
                shutil.rmtree(bodies, ignore_errors=True)
            if st["errors"]:
                print(f"push errors: {len(st['errors'])}, e.g. {st['errors'][:3]}", file=sys.stderr)
            acked = d.raw_bytes / secs / 1e6
            print(f"acknowledged: {acked:.1f} MB/s of lines ({st['json'] / secs / 1e6:.1f} MB/s of JSON) in "
                  f"{secs:.1f} s; {len(st['errors'])} errors, {st['retries']} retries; "
                  f"{'reading bodies' if bodies else 'generation'} took {st['gen_s']:.0f} s of the push threads' "
                  f"time; server peak RSS so far "
                  f"{watch.peak / 2**30:.2f} GiB", flush=True)
            rss_ingest = watch.peak
            wait_s, m = wait_indexed(port, d.raw_bytes, a.index_timeout)
            indexed_s = secs + wait_s
            split_disk = metric(m, "vigil_logs_split_disk_bytes") or 0
            split_raw = metric(m, "vigil_logs_split_raw_bytes") or 0
            cut_s = metric(m, "vigil_logs_cut_duration_seconds_sum") or 0
            compaction_s = metric(m, "vigil_logs_compaction_duration_seconds_sum") or 0
            server_cpu = cpu_seconds(p.pid)
            appended = metric(m, "vigil_logs_entries_appended_total")
            dups = metric(m, "vigil_logs_duplicates_dropped_total")
            rejected = metric(m, "vigil_ingest_log_entries_rejected_total")
            res["ingest"] = {
                "push_seconds": secs,
                "acked_mb_s": acked,
                "indexed_seconds": indexed_s,
                "indexed_mb_s": d.raw_bytes / indexed_s / 1e6,
                "cut_seconds_total": cut_s,
                "cuts": metric(m, "vigil_logs_cuts_total"),
                "cut_mb_s": split_raw / cut_s / 1e6 if cut_s else None,
                "compaction_seconds_total": compaction_s,
                "compactions": metric(m, "vigil_logs_compactions_total"),
                # The server's CPU from start to the last split (pushes, cuts, compaction).
                "server_cpu_seconds": server_cpu,
                "server_cpu_seconds_per_gb": server_cpu / (d.raw_bytes / 1e9),
                "splits": metric(m, "vigil_logs_splits"),
                "split_disk_bytes": split_disk,
                "split_raw_bytes": split_raw,
                "disk_per_raw_byte": split_disk / split_raw if split_raw else None,
                "logs_dir_bytes": du(os.path.join(tmp, "data", "logs")),
                "entries_appended": appended,
                "duplicates_dropped": dups,
                "entries_rejected": rejected,
                "push_errors": len(st["errors"]),
                "push_retries": st["retries"],
                "generation_thread_seconds": st["gen_s"],
                "server_peak_rss_bytes_ingest": rss_ingest,
                "server_peak_rss_bytes_indexing": watch.peak,
            }
            g = res["ingest"]
            print(f"indexed: {g['indexed_mb_s']:.1f} MB/s end to end ({indexed_s:.0f} s; {wait_s:.0f} s after the "
                  f"last push), cuts {g['cut_mb_s'] or 0:.1f} MB/s ({g['cuts']:.0f} cuts, {cut_s:.0f} s), compactions {compaction_s:.0f} s, server CPU "
                  f"{g['server_cpu_seconds_per_gb']:.1f} s per GB; "
                  f"{g['splits']:.0f} splits, {g['disk_per_raw_byte'] or 0:.3f} bytes on disk per raw byte "
                  f"(logs dir {g['logs_dir_bytes'] / d.raw_bytes:.3f}); entries appended {appended:.0f} "
                  f"of {d.n}, duplicates {dups:.0f}, rejected {rejected or 0:.0f}; server peak RSS "
                  f"{watch.peak / 2**30:.2f} GiB", flush=True)
            if appended != d.n:
                print(f"WARNING: the server appended {appended:.0f} entries, {d.n} were pushed", file=sys.stderr)
        else:
            wait_indexed(port, d.raw_bytes, a.index_timeout)
        watch.peak = rss(p.pid)
        print(f"queries ({a.runs} runs each)…", flush=True)
        rows = run_queries(port, d, a.runs, a.seed)
        res["queries"] = rows
        res["server_peak_rss_bytes_queries"] = watch.peak
        res["ok"] = all(r["ok"] for r in rows)
        print()
        print(table(rows))
        print(f"\nserver peak RSS during queries: {watch.peak / 2**30:.2f} GiB")
        for r in rows:
            for pr in r["problems"]:
                print(f"{r['name']}: {pr}", file=sys.stderr)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(res, f, indent=2)
        if not res["ok"]:
            sys.exit(1)
    finally:
        watch.stop.set()
        p.terminate()
        try:
            p.wait(120)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        if a.keep or a.reuse:
            print(f"data kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
