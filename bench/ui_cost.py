#!/usr/bin/env python3
"""Does an open UI cost ingest? Remote-write throughput of Vigil with no browser, and with three
pages open in headless Chromium on the same machine (the Overview, Explore graphing an hour of a
rate, and the live Recovery view, which redraws at every server-sent event), on the same data.

The `shards` shape of ingest.py (8 shards, one step per request, ~600 samples a request; 300
instances x 3 h by default, so that a run lasts several seconds), replayed by ../shared/tools/rw-replay as fast as Vigil takes it. Runs alternate
closed/open (the order flips each run) on a fresh data directory each; the median of each is
compared. The browsers run on the same 2 cores as Vigil and the replayer, so "open" also pays for
the browsers' own CPU, which is reported (user+system seconds of the chromium processes).

  bench/ui_cost.py [--runs 6] [--instances 300] [--vigil target/release/vigil] [--json out.json]

Needs: chromium (Debian), python3, a release build of vigil.
"""
import argparse, json, os, re, shutil, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import DEFAULT_TOOLS, ROOT, Vigil  # noqa: E402

PAGES = ["/", "/explore?q=sum(rate(vigil_storage_samples_appended_total%5B1m%5D))&range=1h", "/recovery?window=15m"]


def cpu_seconds(pids):
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
        except (FileNotFoundError, IndexError, ValueError):
            pass
    return total


def descendants(pid):
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    children = {}
    for line in out.splitlines():
        p, pp = map(int, line.split())
        children.setdefault(pp, []).append(p)
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo.extend(children.get(p, []))
    return seen


def run_one(binary, workdir, tools, dump, samples, open_ui):
    s = Vigil(workdir, binary)
    browsers, profiles = [], []
    try:
        if open_ui:
            for page in PAGES:
                prof = tempfile.mkdtemp(prefix="chrome-", dir=workdir)
                profiles.append(prof)
                browsers.append(subprocess.Popen(
                    ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--user-data-dir={prof}", "--window-size=1280,900", s.base() + page],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
            time.sleep(5)
        pids = [p for b in browsers for p in descendants(b.pid)]
        cpu0 = cpu_seconds(pids)
        out = subprocess.run(
            [sys.executable, os.path.join(tools, "rw-replay"), "--url", s.base() + s.write_path, "--dir", dump,
             "--samples", str(samples), "--connections", "8"], capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"rw-replay failed: {out.stdout}{out.stderr}")
        rate = float(out.stdout.split()[0])
        seconds = samples / rate
        pids = [p for b in browsers for p in descendants(b.pid)]
        browser_cpu = cpu_seconds(pids) - cpu0 if open_ui else 0.0
        return {"samples_per_s": rate, "seconds": seconds, "browser_cpu_s": browser_cpu}
    finally:
        for b in browsers:
            try:
                os.killpg(b.pid, 9)
            except ProcessLookupError:
                pass
            b.wait()
        for p in profiles:
            shutil.rmtree(p, ignore_errors=True)
        s.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--instances", type=int, default=300)
    ap.add_argument("--vigil", default=os.path.join(ROOT, "target", "release", "vigil"))
    ap.add_argument("--tools", default=DEFAULT_TOOLS)
    ap.add_argument("--json")
    a = ap.parse_args()
    if not shutil.which("chromium"):
        sys.exit("chromium is needed (apt-get install chromium)")
    workdir = tempfile.mkdtemp(prefix="vigil-ui-cost-")
    try:
        dump = os.path.join(workdir, "dump")
        out = subprocess.run([sys.executable, os.path.join(a.tools, "rw-push"), "--instances", str(a.instances), "--hours", "3",
                              "--shards", "8", "--batch-steps", "1", "--end", "1699999185", "--dump", dump],
                             capture_output=True, text=True, check=True)
        samples = int(re.search(r"samples=(\d+)", out.stdout + out.stderr).group(1))
        res = {"closed": [], "open": []}
        for i in range(a.runs):
            order = ["closed", "open"] if i % 2 == 0 else ["open", "closed"]
            for mode in order:
                r = run_one(a.vigil, workdir, a.tools, dump, samples, mode == "open")
                res[mode].append(r)
                print(f"run {i + 1} UI {mode:6}: {r['samples_per_s']:,.0f} samples/s"
                      + (f", browsers used {r['browser_cpu_s']:.1f} CPU s" if mode == "open" else ""), file=sys.stderr)
        c = statistics.median(r["samples_per_s"] for r in res["closed"])
        o = statistics.median(r["samples_per_s"] for r in res["open"])
        spread = lambda xs: f"{min(xs):,.0f}-{max(xs):,.0f}"
        print(f"\n== remote write ({samples:,} samples, 8 shards), {a.runs} runs each, samples/s")
        print(f"UI closed  median {c:,.0f}  ({spread([r['samples_per_s'] for r in res['closed']])})")
        print(f"UI open    median {o:,.0f}  ({spread([r['samples_per_s'] for r in res['open']])}), "
              f"browsers {statistics.median(r['browser_cpu_s'] for r in res['open']):.1f} CPU s a run")
        print(f"open / closed: {o / c:.3f}")
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"samples": samples, "runs": res, "closed_median": c, "open_median": o}, f, indent=1)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
