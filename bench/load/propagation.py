#!/usr/bin/env python3
"""Configuration propagation time of Portico: from a file being written to the first request served
by the new route (python3 standard library only; wrk optional for --under-load).

  bench/load/propagation.py [--portico BIN] [--changes 50] [--under-load [--load-tool wrk|python]]

Starts `portico run DIR --workers 1` on a config without upstreams (directResponseAction routes only):
a Gateway and one VirtualService with the route /load. Then, --changes times, rewrites the VirtualService
file so that it also has the exact route /r<i> answering 200 "v<i>" (every earlier /r<j> is kept), and
polls GET /r<i> every --poll-ms until it answers 200 with body "v<i>". Even changes are written atomically
(temporary file in the same directory + rename), odd ones by overwriting the file in place (open, truncate,
write: the watcher can see an empty or partial file). The delay from the start of the write to that first
good answer is recorded; p50, p99 and max are printed.

--under-load: while the changes are made, a load generator (wrk, or a pool of python threads) sends
continuous requests to /load; every failed request (non-200 answer, wrong body with the python load, socket
error) is counted and printed as `FAILED_REQUESTS n` (it must be 0). The exit status is 1 when a change did
not propagate within --timeout or a request failed.

Everything listens on 127.0.0.1; portico and wrk are started here and stopped by their PID.
"""
import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def gateway_yaml(port):
    return f"""apiVersion: gateway.portico.dev/v1
kind: Gateway
metadata:
  name: prop
spec:
  bindAddress: 127.0.0.1
  bindPort: {port}
"""


def vs_yaml(n_routes):
    """The VirtualService with /load and the exact routes /r0 .. /r<n_routes-1>."""
    lines = ["apiVersion: gateway.portico.dev/v1", "kind: VirtualService", "metadata:", "  name: prop", "spec:", "  virtualHost:",
             '    domains: ["*"]', "    routes:"]

    def route(path, body, exact):
        kind = "exact" if exact else "prefix"
        return ["      - matchers:", f"          - {kind}: {path}", "        directResponseAction:",
                "          status: 200", f'          body: "{body}"']

    for j in range(n_routes):
        lines += route(f"/r{j}", f"v{j}", True)
    lines += route("/load", "load", True)
    return "\n".join(lines) + "\n"


def write_atomic(path, text):
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=d)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def write_in_place(path, text):
    with open(path, "w") as f:
        f.write(text)


def http_get(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_for(url, body, timeout):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            status, got = http_get(url)
            last = (status, got[:80])
            if status == 200 and (body is None or got.strip() == body):
                return True
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    print(f"propagation: {url} not ready after {timeout}s (last: {last})", file=sys.stderr)
    return False


class Poller:
    """A keep-alive connection that is reopened after any error."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def get(self, path):
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            self.conn.request("GET", path)
            r = self.conn.getresponse()
            body = r.read()
            if r.will_close:
                self.conn.close()
                self.conn = None
            return r.status, body
        except (OSError, http.client.HTTPException):
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return None, b""


def percentile(xs, q):
    """Nearest-rank percentile of a non-empty list."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))
    return s[k]


def summarize(label, delays):
    if not delays:
        return f"PROPAGATION {label} n=0"
    ms = [d * 1000 for d in delays]
    return (f"PROPAGATION {label} n={len(ms)} p50_ms={statistics.median(ms):.1f} "
            f"p99_ms={percentile(ms, 99):.1f} max_ms={max(ms):.1f} min_ms={min(ms):.1f} "
            f"mean_ms={statistics.fmean(ms):.1f}")


class PythonLoad:
    """Threads that each keep one connection busy with GET /load and count failures."""

    def __init__(self, port, threads):
        self.port = port
        self.n = threads
        self.stop = threading.Event()
        self.ok = 0
        self.failed = 0
        self.failures = []
        self.lock = threading.Lock()
        self.threads = []

    def _run(self):
        p = Poller(self.port)
        ok = failed = 0
        while not self.stop.is_set():
            status, body = p.get("/load")
            if status == 200 and body == b"load":
                ok += 1
            else:
                failed += 1
                with self.lock:
                    if len(self.failures) < 10:
                        self.failures.append((time.monotonic(), status, body[:80]))
        with self.lock:
            self.ok += ok
            self.failed += failed

    def start(self):
        for _ in range(self.n):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self.threads.append(t)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=10)
        return {"requests": self.ok + self.failed, "failed": self.failed, "detail": self.failures}


class WrkLoad:
    """wrk on /load, bounded by -d, stopped early with SIGINT (wrk then prints its statistics)."""

    def __init__(self, port, connections, bound_s, cpu, logdir):
        self.cmd = ["wrk", "-t1", f"-c{connections}", f"-d{bound_s}s", f"http://127.0.0.1:{port}/load"]
        if cpu is not None:
            self.cmd = ["taskset", "-c", str(cpu)] + self.cmd
        self.out_path = os.path.join(logdir, "wrk.out")
        self.proc = None

    def start(self):
        self.out = open(self.out_path, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=self.out, stderr=subprocess.STDOUT)
        time.sleep(0.5)  # let wrk connect before the first change

    def finish(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.out.close()
        with open(self.out_path) as f:
            text = f.read()
        res = {"requests": None, "failed": None, "detail": text.strip()}
        m = re.search(r"^\s*(\d+) requests in", text, re.M)
        if not m:
            return res
        res["requests"] = int(m.group(1))
        failed = 0
        m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
        if m:
            failed += int(m.group(1))
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
        if m:
            failed += sum(map(int, m.groups()))
        res["failed"] = failed
        return res


def stat_values(admin_port):
    try:
        _, body = http_get(f"http://127.0.0.1:{admin_port}/stats")
    except OSError:
        return {}
    vals = {}
    for line in body.decode("utf-8", "replace").splitlines():
        for name in ("portico_config_version", "portico_config_reload_errors_total"):
            if line.startswith(name + " ") or line.startswith(name + "{"):
                try:
                    vals[name] = vals.get(name, 0) + float(line.rsplit(None, 1)[1])
                except ValueError:
                    pass
    return vals


def check_setup(a):
    """The checks both propagation scripts make before starting: --portico is an executable, and wrk
    is there when it is the load tool. Returns (pin, load_tool), or None after saying what is
    missing (exit status 2)."""
    if not (os.path.isfile(a.portico) and os.access(a.portico, os.X_OK)):
        print(f"propagation: no Portico binary at {a.portico} (pass --portico BIN)", file=sys.stderr)
        return None
    pin = not a.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset")
    load_tool = a.load_tool or ("wrk" if shutil.which("wrk") else "python")
    if a.under_load and load_tool == "wrk" and not shutil.which("wrk"):
        print("propagation: wrk not found; run scripts/install-deps.sh or use --load-tool python",
              file=sys.stderr)
        return None
    return pin, load_tool


def print_stats_delta(stats0, stats1):
    """One STATS line: each configuration counter from /stats and its change since stats0."""
    if stats1:
        print("STATS " + " ".join(f"{k}={stats1[k]:g}(+{stats1[k] - stats0.get(k, 0):g})"
                                  for k in sorted(stats1)))


def report_load(load):
    """Stops the load generator and prints LOAD_REQUESTS and FAILED_REQUESTS. True when a request
    failed or the generator's output could not be read."""
    res = load.finish()
    if res["failed"] is None:
        print("propagation: could not read the load generator's output:\n" + str(res["detail"])[-2000:],
              file=sys.stderr)
        print("FAILED_REQUESTS unknown")
        return True
    print(f"LOAD_REQUESTS {res['requests']}")
    print(f"FAILED_REQUESTS {res['failed']}")
    if res["failed"]:
        print("propagation: load generator output / first failures:\n" + str(res["detail"])[-2000:],
              file=sys.stderr)
        return True
    return False


def shut_down(proc, load, log, work, keep, stop_timeout):
    """Stops the load generator (if still running) and portico (by its PID), closes the log, and
    removes the work directory unless keep."""
    if load is not None:
        try:
            load.finish()
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.close()
    if keep:
        print(f"# kept {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--portico", default=os.path.join(REPO, "build", "portico"))
    ap.add_argument("--changes", type=int, default=50)
    ap.add_argument("--poll-ms", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds a change may take to propagate")
    ap.add_argument("--gap", type=float, default=0.05, help="seconds between a change served and the next")
    ap.add_argument("--under-load", action="store_true")
    ap.add_argument("--load-tool", choices=["wrk", "python"], default=None,
                    help="default: wrk when installed, else python threads")
    ap.add_argument("--connections", type=int, default=16, help="load connections (wrk) or threads (python)")
    ap.add_argument("--no-pin", action="store_true",
                    help="do not pin portico to CPU 1 and the load and this script to CPU 0")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args()

    setup = check_setup(a)
    if setup is None:
        return 2
    pin, load_tool = setup

    work = tempfile.mkdtemp(prefix="portico-prop.")
    conf = os.path.join(work, "conf")
    os.mkdir(conf)
    gw_port, admin_port = free_ports(2)
    with open(os.path.join(conf, "gateway.yaml"), "w") as f:
        f.write(gateway_yaml(gw_port))
    vs_path = os.path.join(conf, "vs.yaml")
    write_atomic(vs_path, vs_yaml(0))

    cmd = [a.portico, "run", conf, "--workers", "1", "--admin", f"127.0.0.1:{admin_port}", "--log-level", "warn"]
    if pin:
        cmd = ["taskset", "-c", "1"] + cmd
        os.sched_setaffinity(0, {0})
    log = open(os.path.join(work, "portico.log"), "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    load = None
    rc = 0
    try:
        if not wait_for(f"http://127.0.0.1:{admin_port}/ready", b"ready", 20) or \
                not wait_for(f"http://127.0.0.1:{gw_port}/load", b"load", 10):
            log.flush()
            with open(log.name) as f:
                sys.stderr.write(f.read()[-3000:])
            rc = 1
            return rc
        stats0 = stat_values(admin_port)
        print(f"# portico {a.portico}; changes={a.changes} poll={a.poll_ms}ms under_load={a.under_load}"
              + (f" load={load_tool} c={a.connections}" if a.under_load else "")
              + f"; portico on CPU {'1' if pin else 'any'}; load {os.getloadavg()[0]:.2f}", flush=True)
        if a.under_load:
            if load_tool == "wrk":
                bound = int(a.changes * (a.timeout + a.gap + 1)) + 30
                load = WrkLoad(gw_port, a.connections, bound, 0 if pin else None, work)
            else:
                load = PythonLoad(gw_port, a.connections)
            load.start()

        poller = Poller(gw_port)
        delays = {"rename": [], "overwrite": []}
        timeouts = 0
        interval = a.poll_ms / 1000.0
        for i in range(a.changes):
            mode = "rename" if i % 2 == 0 else "overwrite"
            text = vs_yaml(i + 1)
            want = f"v{i}".encode()
            path = f"/r{i}"
            t0 = time.perf_counter()
            (write_atomic if mode == "rename" else write_in_place)(vs_path, text)
            deadline = t0 + a.timeout
            nxt = t0
            done = None
            while True:
                status, body = poller.get(path)
                now = time.perf_counter()
                if status == 200 and body == want:
                    done = now
                    break
                if now > deadline:
                    break
                nxt += interval
                if nxt > now:
                    time.sleep(nxt - now)
                else:
                    nxt = now
            if done is None:
                timeouts += 1
                print(f"change {i} ({mode}): not served within {a.timeout}s (last status {status})", flush=True)
            else:
                delays[mode].append(done - t0)
            time.sleep(a.gap)

        all_delays = delays["rename"] + delays["overwrite"]
        print(summarize("mode=all", all_delays) + f" timeouts={timeouts}")
        print(summarize("mode=rename", delays["rename"]))
        print(summarize("mode=overwrite", delays["overwrite"]))
        stats1 = stat_values(admin_port)
        print_stats_delta(stats0, stats1)
        if timeouts:
            rc = 1
        if load is not None:
            stopped, load = load, None
            if report_load(stopped):
                rc = 1
        if proc.poll() is not None:
            print(f"propagation: portico exited with {proc.returncode}", file=sys.stderr)
            rc = 1
        return rc
    finally:
        shut_down(proc, load, log, work, a.keep or rc, stop_timeout=15)


if __name__ == "__main__":
    sys.exit(main())
