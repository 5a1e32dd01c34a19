#!/usr/bin/env python3
"""Ingest benchmark: Vigil against Prometheus 2.42 on the same synthetic data, in one run.

Generates a deterministic node_exporter-like data set with ../shared/tools/rw-push (default: 40 instances,
6 hours at 15 s), then for each system in turn (the other one stopped, so they never compete for the CPU):
  1. starts it on an empty data directory (Prometheus with --web.enable-remote-write-receiver),
  2. replays the remote-write requests with rw-replay as fast as it accepts them -> samples/s,
  3. reads resident memory (VmRSS) and head series -> bytes of RSS per active series,
  4. waits until it has cut its head into blocks (head span <= 1.5 block durations) and compacted,
  5. sums the files of its blocks and the samples their meta.json count -> bytes on disk per sample.
Prints a table and the ratios Vigil/Prometheus, and writes them as JSON with --json.

  bench/ingest.py [--instances 40] [--hours 6] [--runs 1] [--vigil target/release/vigil] [--json out.json]

Needs: python3, prometheus (Debian package 2.42), a release build of vigil (`cargo build --release`).
"""
import argparse, json, os, re, shutil, socket, statistics, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import DEFAULT_TOOLS, ROOT, Prometheus, Vigil, rss_bytes, settle  # noqa: E402

def run_one(cls, binary, workdir, tools, dump, samples, connections, settle_limit):
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
        settle(s, settle_limit)
        nbytes, nsamples, nblocks = s.disk()
        return {
            "samples_per_s": rate,
            "head_series": series,
            "rss_bytes": rss,
            "idle_rss_bytes": idle_rss,
            "rss_per_series": rss / series if series else None,
            "rss_growth_per_series": (rss - idle_rss) / series if series else None,
            "block_bytes": nbytes,
            "block_samples": nsamples,
            "blocks": nblocks,
            "bytes_per_sample": nbytes / nsamples if nsamples else None,
        }
    finally:
        s.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instances", type=int, default=40)
    ap.add_argument("--hours", type=float, default=6)
    ap.add_argument("--end", type=int, default=1699999185,
                    help="unix seconds of the last sample (default: one step before a 2h boundary, so the data fills whole block ranges)")
    ap.add_argument("--runs", type=int, default=1, help="ingest runs per system (median reported)")
    ap.add_argument("--connections", type=int, default=1)
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
    dump = os.path.join(workdir, "dump")
    out = subprocess.run(
        [sys.executable, os.path.join(a.tools, "rw-push"), "--instances", str(a.instances), "--hours", str(a.hours),
         "--end", str(a.end), "--dump", dump], capture_output=True, text=True, check=True)
    m = re.search(r"samples=(\d+)", out.stdout + out.stderr)
    if not m:
        sys.exit(f"cannot read the sample count from rw-push: {out.stdout}{out.stderr}")
    samples = int(m.group(1))
    prom_version = subprocess.run([a.prometheus, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    print(f"data: rw-push --instances {a.instances} --hours {a.hours} --end {a.end}: {samples} samples")
    print(f"reference: {prom_version}")
    results = {}
    for name, cls, binary in (("prometheus", Prometheus, a.prometheus), ("vigil", Vigil, a.vigil)):
        runs = [run_one(cls, binary, workdir, a.tools, dump, samples, a.connections, a.settle) for _ in range(a.runs)]
        r = dict(runs[-1])
        r["samples_per_s"] = statistics.median(x["samples_per_s"] for x in runs)
        r["samples_per_s_runs"] = [x["samples_per_s"] for x in runs]
        results[name] = r
    p, v = results["prometheus"], results["vigil"]
    fmt = lambda x, f: "n/a" if x is None else f.format(x)
    rows = [
        ("remote-write samples/s", "samples_per_s", "{:,.0f}", "higher is better"),
        ("bytes on disk / sample", "bytes_per_sample", "{:.3f}", "lower is better"),
        ("RSS / active series (B)", "rss_per_series", "{:,.0f}", "lower is better"),
        ("RSS growth / series (B)", "rss_growth_per_series", "{:,.0f}", "lower is better"),
        ("head series", "head_series", "{:,.0f}", ""),
        ("blocks / samples in blocks", None, None, ""),
    ]
    print(f"\n{'':28} {'prometheus':>14} {'vigil':>14} {'vigil/prom':>11}")
    for label, key, f, note in rows:
        if key is None:
            print(f"{label:28} {p['blocks']:>5} / {p['block_samples']:<8} {v['blocks']:>4} / {v['block_samples']:<8}")
            continue
        ratio = (v[key] / p[key]) if p.get(key) and v.get(key) is not None else None
        print(f"{label:28} {fmt(p[key], f):>14} {fmt(v[key], f):>14} {fmt(ratio, '{:.2f}'):>11}  {note}")
    results["data"] = {"instances": a.instances, "hours": a.hours, "end": a.end, "samples": samples,
                       "reference": prom_version, "runs": a.runs, "connections": a.connections}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
