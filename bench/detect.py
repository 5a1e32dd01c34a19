#!/usr/bin/env python3
"""Detection speed: how long after an HTTP endpoint goes down does an alert fire?

Vigil probes the endpoint itself every second (a `probe_configs` job, module http_2xx) and evaluates
`probe_success == 0` with `for: 2s` every second. The reference is the usual Prometheus setup at its
tightest practical settings: Prometheus 2.42 scraping blackbox_exporter 0.23 every second (1 s
scrape timeout) and evaluating the same rule every second. Both watch the same endpoint at the same
time. Each trial takes the endpoint down (it answers 503) at a random phase, polls both systems'
`/api/v1/alerts` every 20 ms until the alert is firing, brings the endpoint back and waits until both
alerts are gone. Prints the distribution of time-to-detect for both and writes it as JSON.

  bench/detect.py [--trials 20] [--vigil target/release/vigil] [--json out.json]

Needs: prometheus and prometheus-blackbox-exporter (Debian), a release build of vigil.
"""
import argparse, http.server, json, os, random, shutil, statistics, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, free_port, get, wait_ready  # noqa: E402

RULES = """groups:
  - name: detect
    interval: 1s
    rules:
      - alert: EndpointDown
        expr: probe_success{job="target"} == 0
        for: 2s
"""

DOWN = threading.Event()


class Target(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 503 if DOWN.is_set() else 200
        body = b"down\n" if code == 503 else b"ok\n"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def start(argv, log, ready):
    p = subprocess.Popen(argv, stdout=log, stderr=log)
    wait_ready(ready, p)
    return p


def firing(base):
    try:
        alerts = json.loads(get(base + "/api/v1/alerts", 2))["data"]["alerts"]
    except Exception:
        return None
    return any(a["labels"].get("alertname") == "EndpointDown" and a["state"] == "firing" for a in alerts)


def active(base):
    try:
        alerts = json.loads(get(base + "/api/v1/alerts", 2))["data"]["alerts"]
    except Exception:
        return True
    return any(a["labels"].get("alertname") == "EndpointDown" for a in alerts)


def summary(xs):
    xs = sorted(xs)
    q = lambda p: xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]
    return {"min": xs[0], "p50": statistics.median(xs), "p90": q(0.9), "max": xs[-1],
            "mean": statistics.mean(xs), "all": xs}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--vigil", default=os.path.join(ROOT, "target", "release", "vigil"))
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    ap.add_argument("--blackbox", default=shutil.which("prometheus-blackbox-exporter") or "/usr/bin/prometheus-blackbox-exporter")
    ap.add_argument("--json")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="vigil-detect-")
    procs = []
    try:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Target)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        target = f"http://127.0.0.1:{srv.server_address[1]}/"
        rules = os.path.join(work, "rules.yml")
        with open(rules, "w") as f:
            f.write(RULES)
        bb_port, prom_port, vigil_port = free_port(), free_port(), free_port()
        with open(os.path.join(work, "blackbox.yml"), "w") as f:
            f.write("modules:\n  http_2xx:\n    prober: http\n")
        log = open(os.path.join(work, "log.txt"), "w")
        procs.append(start([a.blackbox, f"--config.file={work}/blackbox.yml",
                            f"--web.listen-address=127.0.0.1:{bb_port}"], log,
                           f"http://127.0.0.1:{bb_port}/-/healthy"))
        with open(os.path.join(work, "prometheus.yml"), "w") as f:
            f.write(f"""global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}
rule_files: ['{rules}']
scrape_configs:
  - job_name: target
    metrics_path: /probe
    params: {{module: [http_2xx]}}
    static_configs: [{{targets: ['{target}']}}]
    relabel_configs:
      - {{source_labels: [__address__], target_label: __param_target}}
      - {{source_labels: [__param_target], target_label: instance}}
      - {{target_label: __address__, replacement: '127.0.0.1:{bb_port}'}}
""")
        procs.append(start([a.prometheus, f"--config.file={work}/prometheus.yml",
                            f"--storage.tsdb.path={work}/prom", f"--web.listen-address=127.0.0.1:{prom_port}",
                            "--log.level=warn"], log, f"http://127.0.0.1:{prom_port}/-/ready"))
        with open(os.path.join(work, "vigil.yml"), "w") as f:
            f.write(f"""builtin_rules: false
scrape_configs: []
rule_files: ['{rules}']
probe_configs:
  - job_name: target
    module: http_2xx
    interval: 1s
    static_configs: [{{targets: ['{target}']}}]
""")
        procs.append(start([a.vigil, "serve", "--listen", f"127.0.0.1:{vigil_port}", "--data-dir", f"{work}/vigil",
                            "--config", f"{work}/vigil.yml", "--log", "warn"], log,
                           f"http://127.0.0.1:{vigil_port}/-/ready"))
        systems = {"prometheus+blackbox_exporter": f"http://127.0.0.1:{prom_port}",
                   "vigil": f"http://127.0.0.1:{vigil_port}"}
        time.sleep(5)  # both have probed a few times
        results = {k: [] for k in systems}
        for i in range(a.trials):
            time.sleep(random.uniform(0, 1))
            t0 = time.monotonic()
            DOWN.set()
            pending = dict(systems)
            while pending and time.monotonic() - t0 < 60:
                for name, base in list(pending.items()):
                    if firing(base):
                        results[name].append(time.monotonic() - t0)
                        del pending[name]
                time.sleep(0.02)
            if pending:
                sys.exit(f"trial {i}: no alert within 60 s from {list(pending)}")
            DOWN.clear()
            t1 = time.monotonic()
            while any(active(b) for b in systems.values()):
                if time.monotonic() - t1 > 60:
                    sys.exit(f"trial {i}: alerts did not resolve")
                time.sleep(0.05)
            print(f"trial {i + 1:2}: " + "  ".join(f"{n} {results[n][-1]:.2f} s" for n in systems), flush=True)
        out = {n: summary(v) for n, v in results.items()}
        print(f"\n{'':32} {'min':>6} {'p50':>6} {'p90':>6} {'max':>6}  (seconds from down to firing, {a.trials} trials)")
        for n, s in out.items():
            print(f"{n:32} {s['min']:6.2f} {s['p50']:6.2f} {s['p90']:6.2f} {s['max']:6.2f}")
        within = sum(1 for x in results["vigil"] if x <= 4.0)
        print(f"\nvigil fired within 4 s in {within} of {a.trials} trials")
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"trials": a.trials, "results": out, "vigil_within_4s": within}, f, indent=1)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
