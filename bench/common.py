"""Shared pieces of the benchmarks: free ports, starting Vigil and Prometheus on empty directories, and
reading their metrics, memory and blocks."""
import json, os, re, shutil, socket, subprocess, sys, time, urllib.request

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


def executions(data):
    """Vigil's runbook executions under the data directory `data`, the latest version of each,
    oldest first."""
    out = {}
    try:
        with open(os.path.join(data, "runbooks", "executions.jsonl")) as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                out[e["id"]] = e
    except FileNotFoundError:
        pass
    return sorted(out.values(), key=lambda e: e["times"]["created"])


def cpu_seconds(pid):
    """User and system CPU seconds a process has used so far (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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




def settle(s, limit):
    """Waits until `s` has cut its head (both cut the oldest 2h range once the head spans more than 1.5
    block durations, checking once a minute) and its block count and compactions have been stable for
    70 s."""
    deadline = time.time() + limit
    last, stable_since = None, time.time()
    while time.time() < deadline:
        _, mint, maxt, comp = s.head()
        state = (s.disk()[2], comp)
        if state != last:
            last, stable_since = state, time.time()
        cut = mint is not None and maxt is not None and maxt - mint <= 1.5 * BLOCK_MS and state[0] > 0
        if cut and time.time() - stable_since > 70:
            return True
        time.sleep(2)
    print(f"warning: {s.name} did not settle within {limit}s", file=sys.stderr)
    return False
