"""Log ingest: raw log bytes per second through Loki push, until acknowledged and until indexed into
splits, and bytes on disk per raw byte, on nginx-like access logs.

    cargo build --release
    python3 bench/logs.py --mb 1024 --workers 4

Grafana Loki cannot be installed here, so there is no reference run: the figures are compared with the
issue's goal (>= 50 MB/s on 2 cores; Loki is measured at roughly 0.4-1.7 MB/s per core, Quickwit about
7.5 MB/s per core) and its disk goal (<= 0.15 bytes on disk per raw byte).
"""
import argparse, http.client, json, os, random, shutil, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, cpu_seconds, free_port, get, metric, wait_ready  # noqa: E402

METHODS = ["GET"] * 8 + ["POST", "PUT", "DELETE"]
PATHS = ["/", "/api/v1/users", "/api/v1/orders", "/static/app.js", "/static/style.css", "/login",
         "/api/v1/cart", "/health", "/api/v1/search", "/images/logo.png"]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
          "curl/8.4.0", "Go-http-client/1.1", "python-requests/2.31.0",
          "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"]
STATUS = [200] * 40 + [201, 204, 301, 302, 304, 400, 401, 403, 404, 404, 500, 502, 503]


def random_path(rng):
    path = rng.choice(PATHS)
    if rng.random() < 0.5:
        path += f"?id={rng.randrange(100000)}&page={rng.randrange(20)}"
    return path


def nginx_lines(rng, n, t0):
    out = []
    for i in range(n):
        ts = t0 + i
        sec = ts // 1_000_000_000
        path = random_path(rng)
        out.append((ts, '{}.{}.{}.{} - - [{}] "{} {} HTTP/1.1" {} {} "-" "{}" rt={:.3f} req={:016x}'.format(
            rng.randrange(10, 223), rng.randrange(256), rng.randrange(256), rng.randrange(256),
            time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(sec)),
            rng.choice(METHODS), path, rng.choice(STATUS), rng.randrange(200, 60000),
            rng.choice(AGENTS), rng.random() * 2, rng.getrandbits(64))))
    return out


REFERERS = ["-", "-", "-", "https://example.com/", "https://example.com/shop", "https://www.google.com/"]


def combined_lines(rng, n, t0, clients):
    """nginx's default `combined` format, as access logs are: clients from a pool (they come back),
    no request id or timing field."""
    out = []
    for i in range(n):
        ts = t0 + i
        sec = ts // 1_000_000_000
        path = random_path(rng)
        c = clients[int(rng.paretovariate(1.2)) % len(clients)]
        out.append((ts, '{} - - [{}] "{} {} HTTP/1.1" {} {} "{}" "{}"'.format(
            c, time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(sec)),
            rng.choice(METHODS), path, rng.choice(STATUS), rng.randrange(200, 60000),
            rng.choice(REFERERS), rng.choice(AGENTS))))
    return out


def bodies(total_bytes, batch_lines, streams, seed=7, fmt="reqid"):
    """JSON push bodies of `batch_lines` lines each, round-robin over `streams` streams."""
    rng = random.Random(seed)
    crng = random.Random(seed + 1)
    clients = ["{}.{}.{}.{}".format(crng.randrange(10, 223), crng.randrange(256), crng.randrange(256),
                                    crng.randrange(256)) for _ in range(5000)]
    now = time.time_ns()
    out, raw, k = [], 0, 0
    t = now - 3600 * 1_000_000_000
    while raw < total_bytes:
        lines = (nginx_lines(rng, batch_lines, t) if fmt == "reqid"
                 else combined_lines(rng, batch_lines, t, clients))
        t += batch_lines * 1000
        raw += sum(len(l) for _, l in lines)
        body = json.dumps({"streams": [{
            "stream": {"job": "nginx", "host": f"web-{k % streams}", "env": "prod"},
            "values": [[str(ts), l] for ts, l in lines]}]}).encode()
        out.append(body)
        k += 1
    return out, raw


def send_all(port, chunks, workers, retries=None):
    """Pushes every chunk; a 429 or 5xx is retried after its Retry-After (at most 1 s), as Promtail
    and Alloy retry, so a push larger than the server's backlog measures the sustained rate."""
    errors = []
    it = iter(range(len(chunks)))
    lock = threading.Lock()

    def worker():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                i = next(it, None)
            if i is None:
                return
            while True:
                c.request("POST", "/loki/api/v1/push", chunks[i], {"Content-Type": "application/json"})
                r = c.getresponse()
                r.read()
                if r.status == 429 or r.status >= 500:
                    if retries is not None:
                        with lock:
                            retries.append(r.status)
                    time.sleep(min(float(r.getheader("Retry-After") or 1), 1.0))
                    continue
                if r.status != 204:
                    errors.append(r.status)
                break

    ts = [threading.Thread(target=worker) for _ in range(workers)]
    t0 = time.time()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.time() - t0, errors


def du(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(d, f))
            except OSError:
                pass
    return total


def by_component(splits_dir):
    """Bytes of the splits by file kind (.lines raw lines, .store Tantivy's doc store, .term
    dictionary, .idx postings, .fast columns, .fieldnorm, other)."""
    out = {}
    for d, dirs, files in os.walk(splits_dir):
        # A compaction in progress writes its output in `<id>.tmp` (not a split yet).
        dirs[:] = [x for x in dirs if not x.endswith(".tmp")]
        for f in files:
            ext = f.rsplit(".", 1)[-1] if "." in f else f
            if ext not in ("lines", "store", "term", "idx", "fast", "fieldnorm", "pos"):
                ext = "other"
            out[ext] = out.get(ext, 0) + os.path.getsize(os.path.join(d, f))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=1024, help="raw log megabytes to push")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--batch-lines", type=int, default=4000)
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--vigil", default=os.path.join(ROOT, "target", "release", "vigil"))
    ap.add_argument("--head-max-age", default="30s",
                    help="storage.logs.head_max_age: the last head waits this long before its cut, which the "
                         "end-to-end figure includes")
    ap.add_argument("--zstd", type=int, help="storage.logs.docstore_zstd_level (default: Vigil's)")
    ap.add_argument("--format", choices=["reqid", "combined"], default="reqid",
                    help="reqid: nginx-like lines with a random 64-bit request id and a response time each "
                         "(every line has a unique token); combined: nginx's default combined format")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    ap.add_argument("--json")
    a = ap.parse_args()
    print(f"generating {a.mb} MB of nginx-like lines…", flush=True)
    chunks, raw = bodies(a.mb << 20, a.batch_lines, a.streams, fmt=a.format)
    print(f"{len(chunks)} requests, {raw / 1e6:.0f} MB of lines, {sum(map(len, chunks)) / 1e6:.0f} MB of JSON",
          flush=True)
    tmp = tempfile.mkdtemp(prefix="vigil-logs-bench-")
    port = free_port()
    cfg = os.path.join(tmp, "vigil.yml")
    with open(cfg, "w") as f:
        f.write("scrape_configs: []\nbuiltin_rules: false\nstorage:\n  logs:\n"
                f"    head_max_age: {a.head_max_age}\n    maintenance_interval: 1s\n"
                + (f"    docstore_zstd_level: {a.zstd}\n" if a.zstd else ""))
    log = open(os.path.join(tmp, "vigil.log"), "w")
    p = subprocess.Popen([a.vigil, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir",
                          os.path.join(tmp, "data"), "--config", cfg], stdout=log, stderr=log)
    try:
        wait_ready(f"http://127.0.0.1:{port}/-/ready", p)
        retried = []
        client0 = sum(os.times()[:2])
        secs, errors = send_all(port, chunks, a.workers, retried)
        client_cpu = sum(os.times()[:2]) - client0
        acked = raw / secs / 1e6
        print(f"acknowledged: {acked:.1f} MB/s of lines in {secs:.1f} s ({len(errors)} errors, "
              f"{len(retried)} pushes retried after 429)", flush=True)
        # Until the head is empty: every line indexed in a split.
        t_idx = time.time()
        while True:
            m = get(f"http://127.0.0.1:{port}/metrics")
            if (metric(m, "vigil_logs_head_bytes") or 0) == 0 and (metric(m, "vigil_logs_splits") or 0) > 0:
                break
            if time.time() - t_idx > 1800:
                sys.exit("the head was not cut within 30 minutes")
            time.sleep(0.5)
        indexed_secs = secs + (time.time() - t_idx)
        m = get(f"http://127.0.0.1:{port}/metrics")
        split_disk = metric(m, "vigil_logs_split_disk_bytes")
        split_raw = metric(m, "vigil_logs_split_raw_bytes")
        cut_s = metric(m, "vigil_logs_cut_duration_seconds_sum")
        compaction_s = metric(m, "vigil_logs_compaction_duration_seconds_sum")
        server_cpu = cpu_seconds(p.pid)
        logs_dir = du(os.path.join(tmp, "data", "logs"))
        parts = by_component(os.path.join(tmp, "data", "logs", "splits"))
        res = {
            "format": a.format,
            "raw_mb": raw / 1e6,
            "requests": len(chunks),
            "workers": a.workers,
            "acked_mb_s": acked,
            "indexed_mb_s": raw / indexed_secs / 1e6,
            "cut_seconds_total": cut_s,
            "cut_mb_s": split_raw / cut_s / 1e6 if cut_s else None,
            "compaction_seconds_total": compaction_s,
            # CPU of the server for the whole run (pushes, cuts, compaction), of this client's pushes.
            "server_cpu_seconds": server_cpu,
            "server_cpu_seconds_per_gb": server_cpu / (raw / 1e9),
            "client_cpu_seconds": client_cpu,
            "disk_per_raw_byte": split_disk / split_raw if split_raw else None,
            "logs_dir_per_raw_byte": logs_dir / raw,
            "errors": len(errors),
            "retried": len(retried),
            "disk_per_raw_byte_by_file_kind": {k: round(v / split_raw, 4) for k, v in sorted(parts.items())}
            if split_raw else None,
        }
        print(json.dumps(res, indent=2))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(res, f, indent=2)
    finally:
        p.terminate()
        p.wait(60)
        if a.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
