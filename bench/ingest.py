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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_TOOLS = os.path.normpath(os.path.join(ROOT, "..", "shared", "tools"))
BLOCK_MS = 2 * 3600 * 1000


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def wait_ready(url, proc, limit=120):
    t = time.time() + limit
    while time.time() < t:
        if proc.poll() is not None:
            sys.exit(f"{url}: process exited with {proc.returncode}")
        try:
            get(url, 2)
            return
        except Exception:
            time.sleep(0.2)
    sys.exit(f"{url} not ready after {limit}s")


def metric(text, name):
    """Sum of every sample of `name` (with or without labels) in an exposition page."""
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m and m.group(1) == name:
            total += float(m.group(3))
            found = True
    return total if found else None


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def blocks_on_disk(blocks_dir, samples_key):
    """(bytes of every file in block directories, samples counted by their meta.json, blocks)."""
    total_bytes, samples, n = 0, 0, 0
    if not os.path.isdir(blocks_dir):
        return 0, 0, 0
    for d in sorted(os.listdir(blocks_dir)):
        p = os.path.join(blocks_dir, d)
        meta = os.path.join(p, "meta.json")
        if not os.path.isfile(meta):
            continue
        with open(meta) as f:
            m = json.load(f)
        n += 1
        samples += samples_key(m)
        for root, _, files in os.walk(p):
            total_bytes += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total_bytes, samples, n


class System:
    """A system under test: started on an empty directory, stopped by stop()."""
    write_path = "/api/v1/write"
    config_name, config_text = None, None
    # Names of (head series, head min time ms, head max time ms, compactions) in its /metrics.
    head_metrics = ()

    def __init__(self, name, workdir, binary):
        self.name, self.dir = name, os.path.join(workdir, name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.port = free_port()
        self.log = open(os.path.join(self.dir, "log.txt"), "w")
        cfg = os.path.join(self.dir, self.config_name)
        with open(cfg, "w") as f:
            f.write(self.config_text)
        self.proc = subprocess.Popen(self.argv(binary, cfg), stdout=self.log, stderr=self.log)
        wait_ready(self.base() + "/-/ready", self.proc)

    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def head(self):
        t = get(self.base() + "/metrics")
        return tuple(metric(t, n) for n in self.head_metrics)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Prometheus(System):
    config_name, config_text = "prometheus.yml", "global: {}\nscrape_configs: []\n"
    head_metrics = ("prometheus_tsdb_head_series", "prometheus_tsdb_head_min_time",
                    "prometheus_tsdb_head_max_time", "prometheus_tsdb_compactions_total")

    def __init__(self, workdir, binary):
        super().__init__("prometheus", workdir, binary)

    def argv(self, binary, cfg):
        return [binary, f"--config.file={cfg}", f"--storage.tsdb.path={self.dir}/data",
                f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-remote-write-receiver",
                "--log.level=warn"]

    def disk(self):
        return blocks_on_disk(os.path.join(self.dir, "data"), lambda m: m["stats"]["numSamples"])


class Vigil(System):
    config_name, config_text = "vigil.yml", "scrape_configs: []\n"
    head_metrics = ("vigil_storage_head_series", "vigil_storage_head_min_time_ms",
                    "vigil_storage_head_max_time_ms", "vigil_storage_compactions_total")

    def __init__(self, workdir, binary):
        super().__init__("vigil", workdir, binary)

    def argv(self, binary, cfg):
        return [binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", f"{self.dir}/data",
                "--config", cfg, "--log", "warn"]

    def disk(self):
        return blocks_on_disk(os.path.join(self.dir, "data", "blocks"), lambda m: m["stats"]["num_samples"])


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
        # Wait for the head cut: both cut the oldest 2h range once the head spans > 1.5 block durations,
        # checking once a minute; then wait for the block count to settle (compaction).
        deadline = time.time() + settle_limit
        last, stable_since = None, time.time()
        while time.time() < deadline:
            _, mint, maxt, comp = s.head()
            state = (s.disk()[2], comp)
            if state != last:
                last, stable_since = state, time.time()
            cut = mint is not None and maxt is not None and maxt - mint <= 1.5 * BLOCK_MS and state[0] > 0
            if cut and time.time() - stable_since > 70:
                break
            time.sleep(2)
        else:
            print(f"warning: {s.name} did not settle within {settle_limit}s", file=sys.stderr)
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
