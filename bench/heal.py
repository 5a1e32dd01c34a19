#!/usr/bin/env python3
"""Self-healing benchmark: seconds from a crash to a healthy service again, on real Docker.

A web container (busybox httpd from the local vigil-test-busybox image) is crashed by SIGKILL of its
process from the host, `--runs` times. Measured from the kill to the first HTTP 200 the bench itself
gets (polling every 50 ms, independent of either system):

  vigil   no restart policy; Vigil probes it every 1 s (probe_configs, http_2xx), a rule fires on
          probe_success == 0 for 2s, a runbook receiver runs sdk/examples/restart-container, and the
          execution is verified when the alert clears. Detect / act / recover come from the record.
  docker  the same container with Docker's own `--restart on-failure` and no Vigil (a reference: it
          sees the process exit at once, but it cannot see a process that hangs or answers 500).

  bench/heal.py [--runs 10] [--vigil target/release/vigil] [--json out.json]

Needs docker, busybox-static, and Debian's rustc-web/cargo-web/rust-web-src/lld/wasi-libc for the
runbook (built like tests/e2e/runbook_authors.rs does).
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, executions, free_port  # noqa: E402

IMAGE = "vigil-test-busybox:1"


def sh(*args, check=True):
    r = subprocess.run(args, capture_output=True, text=True)
    if check and r.returncode != 0:
        sys.exit(f"{' '.join(args)}: {r.stderr.strip()}")
    return r.stdout.strip()


def http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=0.5) as r:
            return r.status == 200
    except Exception:
        return False


def wait(pred, limit, what):
    t = time.time() + limit
    while time.time() < t:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    sys.exit(f"timed out waiting for {what}")


def build_runbook():
    target = os.path.join(ROOT, "target", "wasm-examples")
    env = dict(os.environ, RUSTC="/usr/bin/rustc", RUSTC_BOOTSTRAP="1", CARGO_TARGET_DIR=target,
               RUSTFLAGS="-L /usr/lib/wasm32-wasi -C linker=wasm-ld")
    env.pop("RUSTUP_TOOLCHAIN", None)
    subprocess.run(["/usr/bin/cargo", "build", "-q", "--release", "--locked", "--target", "wasm32-wasip1",
                    "-Zbuild-std=std,panic_abort"], cwd=os.path.join(ROOT, "sdk/examples"),
                   env=env, check=True)
    return os.path.join(target, "wasm32-wasip1/release/restart_container.wasm")


def start_web(name, port, restart):
    sh("docker", "rm", "-f", name, check=False)
    args = ["docker", "run", "-d", "--name", name, "--label", "app=web", "-p", f"127.0.0.1:{port}:8080"]
    if restart:
        args += ["--restart", "on-failure"]
    args += [IMAGE, "/bin/sh", "-c",
             "/bin/busybox mkdir -p /www && echo ok > /www/index.html && exec /bin/busybox httpd -f -p 8080 -h /www"]
    sh(*args)


def crash(name):
    pid = sh("docker", "inspect", "-f", "{{.State.Pid}}", name)
    os.kill(int(pid), 9)
    return time.time()


def run_vigil(binary, wasm, runs):
    name, port = f"vigil-bench-heal-{os.getpid()}", free_port()
    work = tempfile.mkdtemp(prefix="vigil-heal-")
    rb = os.path.join(work, "rb")
    os.makedirs(rb)
    with open(wasm, "rb") as f, open(os.path.join(rb, "restart-container.wasm"), "wb") as g:
        g.write(f.read())
    with open(os.path.join(ROOT, "sdk/examples/restart-container/restart-container.runbook.yml")) as f, \
            open(os.path.join(rb, "restart-container.runbook.yml"), "w") as g:
        g.write(f.read())
    with open(os.path.join(work, "am.yml"), "w") as f:
        f.write("""route:
  receiver: heal
  group_by: [alertname, instance]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1m
receivers:
  - name: heal
    runbook_configs:
      - runbook: restart-container
        params: {container: '{{ $labels.container }}'}
        target: 'container:{{ $labels.container }}'
        grants: [{capability: docker.restart, scope: {labels: {app: web}}}, {capability: docker.inspect}]
        verify_within: 60s
""")
    with open(os.path.join(work, "r.yml"), "w") as f:
        f.write("groups:\n  - name: heal\n    interval: 1s\n    rules:\n      - alert: WebDown\n"
                "        expr: probe_success{job=\"web\"} == 0\n        for: 2s\n")
    with open(os.path.join(work, "vigil.yml"), "w") as f:
        f.write(f"""scrape_configs: []
builtin_rules: false
rule_files: [r.yml]
alertmanager_config: am.yml
probe_configs:
  - job_name: web
    module: http_2xx
    interval: 1s
    timeout: 1s
    static_configs:
      - targets: ['http://127.0.0.1:{port}/']
        labels: {{container: {name}}}
runbooks:
  dir: rb
  verify_every: 250ms
  policy: {{cooldown: 0s, max_attempts: 1000}}
""")
    vport = free_port()
    data = os.path.join(work, "data")
    start_web(name, port, restart=False)
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{vport}", "--data-dir", data,
                             "--config", os.path.join(work, "vigil.yml"), "--log", "warn"],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "vigil.log"), "w"))
    url = f"http://127.0.0.1:{port}/"
    out = []
    try:
        wait(lambda: http_ok(f"http://127.0.0.1:{vport}/-/ready"), 60, "vigil")
        for i in range(runs):
            wait(lambda: http_ok(url), 60, "the web container")
            # A fresh alert each time: wait until the previous one has resolved.
            wait(lambda: json.loads(urllib.request.urlopen(
                f"http://127.0.0.1:{vport}/api/v1/alerts").read())["data"]["alerts"] == [], 60, "no alert")
            time.sleep(1.5)
            before = len(executions(data))
            t0 = crash(name)
            wait(lambda: not http_ok(url) or None, 5, "the crash to show")
            t1 = wait(lambda: time.time() if http_ok(url) else None, 120, f"run {i}: healthy again")
            ex = wait(lambda: (lambda e: e[before] if len(e) > before and e[before]["outcome"] in
                               ("verified", "failed", "escalated", "timed_out", "denied") else None)(executions(data)),
                      90, f"run {i}: the execution's verdict")
            t = ex["times"]
            out.append({"healthy_s": t1 - t0, "outcome": ex["outcome"],
                        "fault_to_act_s": (t["acted"] / 1000 - t0) if t.get("acted") else None,
                        "act_to_verified_s": ((t["recovered"] - t["acted"]) / 1000)
                        if t.get("recovered") and t.get("acted") else None})
            print(f"vigil run {i + 1}: healthy after {t1 - t0:.2f} s, {ex['outcome']}", file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(30)
        sh("docker", "rm", "-f", name, check=False)
    return out


def run_docker(runs):
    name, port = f"vigil-bench-restart-{os.getpid()}", free_port()
    start_web(name, port, restart=True)
    url = f"http://127.0.0.1:{port}/"
    out = []
    try:
        for i in range(runs):
            wait(lambda: http_ok(url), 60, "the web container")
            time.sleep(1.5)
            t0 = crash(name)
            t1 = wait(lambda: time.time() if http_ok(url) else None, 120, f"docker run {i}: healthy again")
            out.append({"healthy_s": t1 - t0})
            print(f"docker run {i + 1}: healthy after {t1 - t0:.2f} s", file=sys.stderr)
    finally:
        sh("docker", "rm", "-f", name, check=False)
    return out


def dist(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return "-"
    q = lambda p: xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]
    return f"min {xs[0]:.2f}  p50 {statistics.median(xs):.2f}  p90 {q(0.9):.2f}  max {xs[-1]:.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--vigil", default=os.path.join(ROOT, "target", "release", "vigil"))
    ap.add_argument("--json")
    a = ap.parse_args()
    subprocess.run([os.path.join(ROOT, "tests/fixtures/docker/busybox-image")], check=True,
                   stdout=subprocess.DEVNULL)
    wasm = build_runbook()
    v = run_vigil(a.vigil, wasm, a.runs)
    d = run_docker(a.runs)
    print(f"\n== crash (SIGKILL of the container's process) to HTTP 200 again, {a.runs} runs, seconds")
    print(f"vigil (1 s probe, for: 2s, restart-container runbook)  {dist([r['healthy_s'] for r in v])}")
    print(f"  of which crash -> restart call made                   {dist([r['fault_to_act_s'] for r in v])}")
    print(f"  verified {sum(r['outcome'] == 'verified' for r in v)} / {len(v)}")
    print(f"docker --restart on-failure                             {dist([r['healthy_s'] for r in d])}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"vigil": v, "docker": d}, f, indent=1)


if __name__ == "__main__":
    main()
