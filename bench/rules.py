#!/usr/bin/env python3
"""Rule evaluation benchmark: 10,000 alerting rules over ~100,000 series, 15 s interval.

Loads rw-push data (default 2,100 instances ≈ 100k series, the last 10 minutes at 15 s, ending now) into
Vigil by remote write, with a rule file of 100 groups × 100 alerting rules (interval 15s). Each rule
selects one instance's series with rate(), comparisons or aggregations, as dashboards' alert rules do.
After a few evaluation rounds it reads /api/v1/rules and prints each group's evaluation time: every
group must finish well within its 15 s interval, and the sum over groups (the CPU the rules cost per
interval, groups run concurrently on 2 cores) is printed too.

  bench/rules.py [--instances 2100] [--groups 100] [--rules-per-group 100] [--rounds 4]
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import DEFAULT_TOOLS, ROOT, free_port, get, wait_ready  # noqa: E402

TEMPLATES = [
    'rate(demo_cpu_seconds_total{{instance="{i}",mode="user"}}[5m]) > 0.5',
    'demo_memory_used_bytes{{instance="{i}"}} / demo_memory_total_bytes{{instance="{i}"}} > 0.9',
    'demo_temperature_celsius{{instance="{i}"}} > 49',
    'sum by (instance) (rate(demo_http_requests_total{{instance="{i}",status="500"}}[5m])) > 5',
    'demo_up{{instance="{i}"}} == 0',
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instances", type=int, default=2100)
    ap.add_argument("--groups", type=int, default=100)
    ap.add_argument("--rules-per-group", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=4, help="evaluation rounds to wait for")
    ap.add_argument("--vigil", default=os.path.join(ROOT, "target", "release", "vigil"))
    ap.add_argument("--tools", default=DEFAULT_TOOLS)
    ap.add_argument("--json")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="vigil-rbench-")
    groups = []
    n = 0
    for g in range(a.groups):
        rules = []
        for r in range(a.rules_per_group):
            inst = f"host-{n % a.instances:03d}:9100"
            expr = TEMPLATES[n % len(TEMPLATES)].format(i=inst)
            rules.append(f"      - alert: Bench{n}\n        expr: '{expr}'\n        for: 1m\n        labels: {{severity: warning}}\n")
            n += 1
        groups.append(f"  - name: bench-{g:03d}\n    interval: 15s\n    rules:\n" + "".join(rules))
    with open(os.path.join(work, "rules.yml"), "w") as f:
        f.write("groups:\n" + "".join(groups))
    with open(os.path.join(work, "vigil.yml"), "w") as f:
        f.write("scrape_configs: []\nbuiltin_rules: false\nrule_files: [rules.yml]\n")
    port = free_port()
    log = open(os.path.join(work, "log.txt"), "w")
    proc = subprocess.Popen([a.vigil, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", f"{work}/data",
                             "--config", f"{work}/vigil.yml", "--log", "warn"], stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base + "/-/ready", proc)
        t0 = time.time()
        out = subprocess.run([sys.executable, os.path.join(a.tools, "rw-push"), "--url", base + "/api/v1/write",
                              "--instances", str(a.instances), "--hours", "0.17"], capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"rw-push failed: {out.stdout}{out.stderr}")
        print(f"data: {out.stdout.strip()} (pushed in {time.time() - t0:.0f} s)")
        print(f"rules: {n} alerting rules in {a.groups} groups, interval 15s")
        # Wait for `rounds` evaluations of every group after the data is in.
        start = time.time()
        while True:
            time.sleep(15)
            data = json.loads(get(base + "/api/v1/rules", timeout=60))["data"]["groups"]
            done = sum(1 for g in data if g["lastEvaluation"] > time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start)))
            if time.time() - start >= 15 * a.rounds and done == len(data):
                break
        times = [g["evaluationTime"] for g in data]
        health = [r["health"] for g in data for r in g["rules"]]
        firing = sum(1 for g in data for r in g["rules"] if r["state"] != "inactive")
        metrics = get(base + "/metrics")
        head_series = next((float(l.split()[-1]) for l in metrics.splitlines() if l.startswith("vigil_storage_head_series ")), None)
        print(f"head series: {head_series:.0f}; rules ok: {health.count('ok')}/{len(health)}; alerts pending or firing: {firing}")
        print(f"group evaluation time (s): median {statistics.median(times):.4f}, p90 "
              f"{sorted(times)[int(len(times) * 0.9)]:.4f}, max {max(times):.4f}; "
              f"sum over groups {sum(times):.2f} s per 15 s interval")
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"rules": n, "groups": a.groups, "head_series": head_series, "group_seconds": times}, f)
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
