#!/usr/bin/env python3
"""Ingest benchmark: Vigil against Prometheus 2.42 on the same synthetic data, in one run.

Three shapes (--shape, default all), each a deterministic node_exporter-like data set made with
../shared/tools/rw-push and replayed with ../shared/tools/rw-replay, each system in turn (the other one
stopped, so they never compete for the CPU), on an empty data directory:

  batches      40 instances x 6 h, 20 time steps per request, one connection: samples/s, then the head
               is cut into blocks -> bytes on disk per sample.
  shards       100 instances x 3 h as Prometheus's remote write sends it: 8 shards (one connection
               each), one time step per request (~600 samples a request) -> samples/s.
  cardinality  2,100 instances (100,800 series) x 15 min, 56 shards of one time step (~1,800 samples
               a request) -> samples/s and resident memory (VmRSS) per series, right after ingest,
               after 15 s idle, and the lowest of the next 2 min (sampled every 2 s: a Go runtime
               collects at least every 2 min, so Prometheus's figure there is after a GC).
Prints a table per shape with the ratios Vigil/Prometheus, and writes everything as JSON with --json.

  bench/ingest.py [--shape all|batches|shards|cardinality] [--runs 1] [--vigil target/release/vigil]
                  [--json out.json]

Needs: python3, prometheus (Debian package 2.42), a release build of vigil (`cargo build --release`).
"""
import argparse, json, os, re, shutil, socket, statistics, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import DEFAULT_TOOLS, ROOT, Prometheus, Vigil, rss_bytes, settle  # noqa: E402

def run_one(cls, binary, workdir, tools, dump, samples, connections, settle_limit, idle_wait=0):
    s = cls(workdir, binary)
    try:
        idle_rss = rss_bytes(s.proc.pid)
        out = subprocess.run(
            [sys.executable, os.path.join(tools, "rw-replay"), "--url", s.base() + s.write_path, "--dir", dump,
             "--samples", str(samples), "--connections", str(connections)],
            capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"{s.name}: rw-replay failed: {out.stdout}{out.stderr}")
        rate = float(out.stdout.split()[0])
        series, _, _, _ = s.head()
        rss = rss_bytes(s.proc.pid)
        r = {
            "samples_per_s": rate,
            "head_series": series,
            "rss_bytes": rss,
            "idle_rss_bytes": idle_rss,
            "rss_per_series": rss / series if series else None,
            "rss_growth_per_series": (rss - idle_rss) / series if series else None,
        }
        if idle_wait:
            time.sleep(idle_wait)
            settled = rss_bytes(s.proc.pid)
            r["settled_rss_bytes"] = settled
            r["settled_rss_per_series"] = settled / series if series else None
            lowest, end = settled, time.time() + IDLE_WINDOW
            while time.time() < end:
                time.sleep(2)
                lowest = min(lowest, rss_bytes(s.proc.pid))
            r["lowest_idle_rss_bytes"] = lowest
            r["lowest_idle_rss_per_series"] = lowest / series if series else None
        if settle_limit:
            settle(s, settle_limit)
            nbytes, nsamples, nblocks = s.disk()
            r.update({"block_bytes": nbytes, "block_samples": nsamples, "blocks": nblocks,
                      "bytes_per_sample": nbytes / nsamples if nsamples else None})
        return r
    finally:
        s.stop()


# Seconds after the settled reading over which the lowest RSS is taken (cardinality shape).
IDLE_WINDOW = 120

SHAPES = {
    # name: (rw-push arguments, rw-replay connections, wait for blocks, idle seconds before the 2nd RSS)
    "batches": (["--instances", "40", "--hours", "6"], 1, True, 0),
    "shards": (["--instances", "100", "--hours", "3", "--shards", "8", "--batch-steps", "1"], 8, False, 0),
    "cardinality": (["--instances", "2100", "--hours", "0.25", "--shards", "56", "--batch-steps", "1"], 56,
                    False, 15),
}

ROWS = [
    ("remote-write samples/s", "samples_per_s", "{:,.0f}", "higher is better"),
    ("bytes on disk / sample", "bytes_per_sample", "{:.3f}", "lower is better"),
    ("RSS / series after ingest (B)", "rss_per_series", "{:,.0f}", "lower is better"),
    ("RSS / series 15 s later (B)", "settled_rss_per_series", "{:,.0f}", "lower is better"),
    ("RSS / series, lowest in 2 min (B)", "lowest_idle_rss_per_series", "{:,.0f}", "lower is better"),
    ("RSS growth / series (B)", "rss_growth_per_series", "{:,.0f}", "lower is better"),
    ("head series", "head_series", "{:,.0f}", ""),
]


def run_shape(name, a, workdir, prom_version):
    push_args, connections, blocks, idle = SHAPES[name]
    dump = os.path.join(workdir, "dump-" + name)
    cmd = [sys.executable, os.path.join(a.tools, "rw-push"), *push_args, "--end", str(a.end), "--dump", dump]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    m = re.search(r"samples=(\d+)", out.stdout + out.stderr)
    if not m:
        sys.exit(f"cannot read the sample count from rw-push: {out.stdout}{out.stderr}")
    samples = int(m.group(1))
    print(f"\n== {name}: rw-push {' '.join(push_args)} --end {a.end}: {samples} samples, "
          f"{len(os.listdir(dump))} requests, {connections} connection(s)")
    results = {}
    for sysname, cls, binary in (("prometheus", Prometheus, a.prometheus), ("vigil", Vigil, a.vigil)):
        runs = [run_one(cls, binary, workdir, a.tools, dump, samples, connections,
                        a.settle if blocks else 0, idle) for _ in range(a.runs)]
        r = dict(runs[-1])
        r["samples_per_s"] = statistics.median(x["samples_per_s"] for x in runs)
        r["samples_per_s_runs"] = [x["samples_per_s"] for x in runs]
        results[sysname] = r
    p, v = results["prometheus"], results["vigil"]
    fmt = lambda x, f: "n/a" if x is None else f.format(x)
    print(f"{'':32} {'prometheus':>14} {'vigil':>14} {'vigil/prom':>11}")
    for label, key, f, note in ROWS:
        if p.get(key) is None and v.get(key) is None:
            continue
        ratio = (v[key] / p[key]) if p.get(key) and v.get(key) is not None else None
        print(f"{label:32} {fmt(p.get(key), f):>14} {fmt(v.get(key), f):>14} {fmt(ratio, '{:.2f}'):>11}  {note}")
    results["data"] = {"rw_push": push_args, "end": a.end, "samples": samples, "connections": connections,
                       "reference": prom_version, "runs": a.runs}
    shutil.rmtree(dump, ignore_errors=True)
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="all", choices=["all", *SHAPES])
    ap.add_argument("--end", type=int, default=1699999185,
                    help="unix seconds of the last sample (default: one step before a 2h boundary, so the data fills whole block ranges)")
    ap.add_argument("--runs", type=int, default=1, help="ingest runs per system (median reported)")
    ap.add_argument("--vigil", default=os.path.join(ROOT, "target", "release", "vigil"))
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    ap.add_argument("--tools", default=DEFAULT_TOOLS)
    ap.add_argument("--settle", type=int, default=600, help="seconds to wait for the head cut")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    for p in (a.vigil, a.prometheus):
        if not os.path.exists(p):
            sys.exit(f"missing {p} (cargo build --release; apt-get install prometheus)")
    workdir = tempfile.mkdtemp(prefix="vigil-bench-")
    prom_version = subprocess.run([a.prometheus, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    print(f"reference: {prom_version}")
    shapes = list(SHAPES) if a.shape == "all" else [a.shape]
    results = {name: run_shape(name, a, workdir, prom_version) for name in shapes}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
