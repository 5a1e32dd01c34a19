#!/usr/bin/env python3
"""Query benchmark: dashboard queries on Vigil and on Prometheus 2.42 holding the same data, in one run.

Loads ../shared/tools/rw-push data (default: 40 instances, 24 hours at 15 s) into both systems by remote
write, waits until both have cut their heads into blocks, then runs a fixed set of dashboard queries
(rate / sum by / histogram_quantile over 1h, 6h and 24h at 15-60 s steps, and high-cardinality selectors)
against each system alternately, and prints the median latency of each query for both and the ratio.

  bench/query.py [--instances 40] [--hours 24] [--runs 7] [--vigil target/release/vigil] [--json out.json]
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time, urllib.parse, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import DEFAULT_TOOLS, ROOT, Prometheus, Vigil, settle  # noqa: E402

H = 3600
# (name, query, range seconds or 0 for instant, step seconds)
QUERIES = [
    ("sum by zone rate 1h", "sum by (zone) (rate(demo_http_requests_total[5m]))", 1 * H, 15),
    ("sum by zone rate 6h", "sum by (zone) (rate(demo_http_requests_total[5m]))", 6 * H, 30),
    ("sum by zone rate 24h", "sum by (zone) (rate(demo_http_requests_total[5m]))", 24 * H, 60),
    ("p99 histogram 1h", "histogram_quantile(0.99, sum by (le) (rate(demo_http_request_duration_seconds_bucket[5m])))", 1 * H, 15),
    ("p99 histogram 6h", "histogram_quantile(0.99, sum by (le) (rate(demo_http_request_duration_seconds_bucket[5m])))", 6 * H, 30),
    ("p99 histogram 24h", "histogram_quantile(0.99, sum by (le, method) (rate(demo_http_request_duration_seconds_bucket[5m])))", 24 * H, 60),
    ("cpu rate all series 1h", "rate(demo_cpu_seconds_total[5m])", 1 * H, 15),
    ("cpu busy by instance 24h", "sum by (instance) (rate(demo_cpu_seconds_total{mode!=\"idle\"}[5m]))", 24 * H, 60),
    ("memory ratio 6h", "demo_memory_used_bytes / on(instance) demo_memory_total_bytes", 6 * H, 30),
    ("avg_over_time 24h", "avg_over_time(demo_temperature_celsius[1h])", 24 * H, 60),
    ("topk rate 6h", "topk(5, rate(demo_http_requests_total[5m]))", 6 * H, 30),
    ("all demo series, instant", "{__name__=~\"demo_.*\"}", 0, 0),
    ("all series regex, instant", "count by (__name__) ({__name__=~\".+\"})", 0, 0),
]


def run_query(base, q, start, end, step):
    if step:
        path, params = "/api/v1/query_range", {"query": q, "start": start, "end": end, "step": step}
    else:
        path, params = "/api/v1/query", {"query": q, "time": end}
    data = urllib.parse.urlencode(params).encode()
    t0 = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(base + path, data=data), timeout=300) as r:
        body = r.read()
    dt = time.perf_counter() - t0
    res = json.loads(body)
    if res.get("status") != "success":
        raise RuntimeError(f"{base}: {q}: {res}")
    return dt, len(res["data"]["result"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instances", type=int, default=40)
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--end", type=int, default=1699999185)
    ap.add_argument("--runs", type=int, default=7, help="timed runs per query and system (median reported)")
    ap.add_argument("--vigil", default=os.path.join(ROOT, "target", "release", "vigil"))
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    ap.add_argument("--tools", default=DEFAULT_TOOLS)
    ap.add_argument("--settle", type=int, default=900)
    ap.add_argument("--json")
    a = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="vigil-qbench-")
    prom = Prometheus(workdir, a.prometheus)
    vig = Vigil(workdir, a.vigil)
    try:
        t0 = time.time()
        out = subprocess.run(
            [sys.executable, os.path.join(a.tools, "rw-push"), "--url", prom.base() + "/api/v1/write",
             "--url", vig.base() + "/api/v1/write", "--instances", str(a.instances), "--hours", str(a.hours),
             "--end", str(a.end)], capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"rw-push failed: {out.stdout}{out.stderr}")
        print(f"data: {out.stdout.strip()} (loaded in {time.time() - t0:.0f} s)")
        for s in (prom, vig):
            settle(s, a.settle)
        print(f"blocks: prometheus {prom.disk()[2]}, vigil {vig.disk()[2]}")
        rows, results = [], {}
        for name, q, rng, step in QUERIES:
            end = a.end
            start = end - rng
            times = {"prometheus": [], "vigil": []}
            counts = {}
            for sysname, s in (("prometheus", prom), ("vigil", vig)):
                run_query(s.base(), q, start, end, step)  # warm-up
            for _ in range(a.runs):
                for sysname, s in (("prometheus", prom), ("vigil", vig)):
                    dt, n = run_query(s.base(), q, start, end, step)
                    times[sysname].append(dt)
                    counts[sysname] = n
            p, v = statistics.median(times["prometheus"]), statistics.median(times["vigil"])
            results[name] = {"query": q, "range_s": rng, "step_s": step, "prometheus_s": p, "vigil_s": v,
                             "series": counts}
            rows.append((name, p, v, p / v if v else float("inf"), counts))
        print(f"\n{'query':30} {'prometheus ms':>14} {'vigil ms':>10} {'speed-up':>9}  series")
        for name, p, v, r, c in rows:
            flag = "" if r >= 1 else "  <- slower"
            print(f"{name:30} {p * 1000:14.1f} {v * 1000:10.1f} {r:8.2f}x  {c['vigil']}/{c['prometheus']}{flag}")
        speedups = [r for *_, r, _ in rows]
        print(f"\nmedian speed-up {statistics.median(speedups):.2f}x, slowest {min(speedups):.2f}x "
              f"(target: median >= 2x, every query >= 1x)")
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"queries": results, "median_speedup": statistics.median(speedups),
                           "min_speedup": min(speedups)}, f, indent=1)
    finally:
        prom.stop()
        vig.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
