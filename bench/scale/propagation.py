#!/usr/bin/env python3
"""Route propagation at scale, end to end against the real binary (python3 standard library; wrk
optional for --under-load).

  bench/scale/propagation.py [--portico BIN] [-n 10000] [-u 5000] [-r 10] [--changes 20]
                             [--under-load [--load-tool wrk|python] [--connections 16]]

Generates a configuration with bench/scale/gen.py (in a temporary directory, Gateway on a free port),
starts `portico run DIR --workers 1` (pinned to CPU 1; this script and the load generator on CPU 0)
and reports:

  READY ms=..         from the start of the process to /ready answering 200, then to the first route
                      of the configuration answering (`first_route_ms`); the process's RSS then
                      (VmRSS, and VmHWM: its peak)
  PROPAGATION ...     --changes times, one route of one VirtualService file is changed (the body of
                      the `healthz` direct response of VirtualService k, a different k each time; even
                      changes written atomically by rename, odd ones in place); GET /healthz with
                      Host vs<k>.example.com is polled every --poll-ms on a keep-alive connection until
                      it answers the new body. The delay from the start of the write is recorded:
                      p50, p99, max.
  BUILD ...           Portico's own log of every rebuild ("configuration version N applied ... in X
                      us"): the control plane's time per change, without the debounce and the polling
  FAILED_REQUESTS n   with --under-load: wrk (or python threads) load GET /healthz of a VirtualService
                      that is never changed, during all the changes; non-2xx answers and socket errors
                      (python: also a wrong body) are counted. It must be 0.

Exit status 1 when a change did not propagate within --timeout or a request failed. Everything
listens on 127.0.0.1; portico and wrk are started here and stopped by their PID.
"""
import argparse
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import gen  # noqa: E402  (bench/scale/gen.py)


def _load_small():
    """bench/load/propagation.py (ports, wrk, percentiles, stats), loaded by path: same file name."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("load_propagation",
                                                  os.path.join(REPO, "bench", "load", "propagation.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


small = _load_small()


class HostPoller(small.Poller):
    """A keep-alive connection sending a given Host header, reopened after any error."""

    def get_host(self, path, host):
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            self.conn.request("GET", path, headers={"Host": host})
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


class HostWrkLoad(small.WrkLoad):
    """wrk on one path of one virtual host (Host header), stopped with SIGINT."""

    def __init__(self, port, host, path, connections, bound_s, cpu, logdir):
        super().__init__(port, connections, bound_s, cpu, logdir)
        self.cmd = [c for c in self.cmd if not c.startswith("http://")]
        self.cmd += ["-H", f"Host: {host}", f"http://127.0.0.1:{port}{path}"]


class HostPythonLoad(small.PythonLoad):
    """Python threads loading one path of one virtual host, checking status and body."""

    def __init__(self, port, host, path, body, threads):
        super().__init__(port, threads)
        self.host, self.path, self.body = host, path, body

    def _run(self):
        p = HostPoller(self.port)
        ok = failed = 0
        while not self.stop.is_set():
            status, body = p.get_host(self.path, self.host)
            if status == 200 and body == self.body:
                ok += 1
            else:
                failed += 1
                with self.lock:
                    if len(self.failures) < 10:
                        self.failures.append((time.monotonic(), status, body[:80]))
        with self.lock:
            self.ok += ok
            self.failed += failed


def proc_status(pid):
    """VmRSS and VmHWM of a process in MB (0 when unknown)."""
    out = {"VmRSS": 0.0, "VmHWM": 0.0}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k = line.split(":", 1)[0]
                if k in out:
                    out[k] = int(line.split()[1]) / 1000.0
    except OSError:
        pass
    return out


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (0 when unknown)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def build_times(log_path, since):
    """Rebuild durations (ms) logged by portico after byte offset `since`."""
    with open(log_path, errors="replace") as f:
        f.seek(since)
        text = f.read()
    return [int(m.group(1)) / 1000.0 for m in re.finditer(r"configuration version \d+ applied .* in (\d+) us", text)]


def summary(label, xs):
    if not xs:
        return f"{label} n=0"
    return (f"{label} n={len(xs)} p50_ms={statistics.median(xs):.1f} p99_ms={small.percentile(xs, 99):.1f} "
            f"max_ms={max(xs):.1f} min_ms={min(xs):.1f} mean_ms={statistics.fmean(xs):.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--portico", default=os.path.join(REPO, "build", "portico"))
    gen.add_arguments(ap)
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--poll-ms", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds a change may take to propagate")
    ap.add_argument("--ready-timeout", type=float, default=300.0)
    ap.add_argument("--gap", type=float, default=0.05, help="seconds between a change served and the next")
    ap.add_argument("--under-load", action="store_true")
    ap.add_argument("--load-tool", choices=["wrk", "python"], default=None,
                    help="default: wrk when installed, else python threads")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args()

    setup = small.check_setup(a)
    if setup is None:
        return 2
    pin, load_tool = setup

    work = tempfile.mkdtemp(prefix="portico-scale.")
    conf = os.path.join(work, "conf")
    gw_port, admin_port = small.free_ports(2)
    a.port = gw_port
    a.gateways = 1
    p = gen.params_from(a)
    t0 = time.monotonic()
    g = gen.generate(conf, p)
    print(f"# generated virtual_services={g['virtual_services']} routes={g['routes']} upstreams={g['upstreams']} "
          f"files={g['files']} bytes={g['bytes']} in {time.monotonic() - t0:.1f}s", flush=True)
    n = p.virtual_services
    load_vs = n - 1  # never changed
    targets = [(c * 7919 + 1) % max(1, n - 1) for c in range(a.changes)]  # never load_vs

    cmd = [a.portico, "run", conf, "--workers", str(a.workers), "--admin", f"127.0.0.1:{admin_port}",
           "--log-level", "info"]
    if pin:
        cmd = ["taskset", "-c", "1"] + cmd
        os.sched_setaffinity(0, {0})
    log_path = os.path.join(work, "portico.log")
    log = open(log_path, "w")
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    load = None
    rc = 0
    try:
        deadline = started + a.ready_timeout
        ready_ms = first_ms = None
        poller = HostPoller(gw_port)
        while time.monotonic() < deadline and proc.poll() is None:
            if ready_ms is None:
                try:
                    status, _ = small.http_get(f"http://127.0.0.1:{admin_port}/ready", timeout=2)
                    if status == 200:
                        ready_ms = (time.monotonic() - started) * 1000
                except OSError:
                    pass
            if ready_ms is not None:
                status, body = poller.get_host("/healthz", gen.vs_host(load_vs))
                if status == 200 and body == f"ok vs{load_vs}".encode():
                    first_ms = (time.monotonic() - started) * 1000
                    break
            time.sleep(0.005)
        if first_ms is None:
            log.flush()
            with open(log_path, errors="replace") as f:
                sys.stderr.write(f.read()[-3000:])
            print(f"propagation: not ready after {a.ready_timeout}s", file=sys.stderr)
            rc = 1
            return rc
        mem = proc_status(proc.pid)
        cpu0 = cpu_seconds(proc.pid)
        print(f"READY ms={ready_ms:.0f} first_route_ms={first_ms:.0f} cpu_s={cpu0:.1f} rss_mb={mem['VmRSS']:.1f} "
              f"hwm_mb={mem['VmHWM']:.1f}", flush=True)
        log.flush()
        print(summary("BUILD startup", build_times(log_path, 0)), flush=True)
        log_offset = os.path.getsize(log_path)
        stats0 = small.stat_values(admin_port)
        print(f"# portico {a.portico}; changes={a.changes} workers={a.workers} poll={a.poll_ms}ms "
              f"under_load={a.under_load}" + (f" load={load_tool} c={a.connections}" if a.under_load else "")
              + f"; portico on CPU {'1' if pin else 'any'}; load {os.getloadavg()[0]:.2f}", flush=True)
        if a.under_load:
            host, body = gen.vs_host(load_vs), f"ok vs{load_vs}".encode()
            if load_tool == "wrk":
                bound = int(a.changes * (a.timeout + a.gap + 1)) + 60
                load = HostWrkLoad(gw_port, host, "/healthz", a.connections, bound, 0 if pin else None, work)
            else:
                load = HostPythonLoad(gw_port, host, "/healthz", body, a.connections)
            load.start()

        delays = {"rename": [], "overwrite": []}
        timeouts = 0
        interval = a.poll_ms / 1000.0
        for c, k in enumerate(targets):
            mode = "rename" if c % 2 == 0 else "overwrite"
            first = k - k % p.vs_per_file
            path = os.path.join(conf, gen.vs_file(first, p))
            want = f"v{c}".encode()
            text = gen.vs_file_text(first, p, {k: want.decode()})
            host = gen.vs_host(k)
            t_start = time.perf_counter()
            (small.write_atomic if mode == "rename" else small.write_in_place)(path, text)
            deadline = t_start + a.timeout
            nxt = t_start
            done = None
            status = None
            while True:
                status, body = poller.get_host("/healthz", host)
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
                print(f"change {c} (vs {k}, {mode}): not served within {a.timeout}s (last status {status})",
                      flush=True)
            else:
                delays[mode].append((done - t_start) * 1000)
            time.sleep(a.gap)

        print(summary("PROPAGATION mode=all", delays["rename"] + delays["overwrite"]) + f" timeouts={timeouts}")
        print(summary("PROPAGATION mode=rename", delays["rename"]))
        print(summary("PROPAGATION mode=overwrite", delays["overwrite"]))
        time.sleep(0.5)  # the last rebuild's log line
        log.flush()
        print(summary("BUILD changes", build_times(log_path, log_offset)))
        stats1 = small.stat_values(admin_port)
        small.print_stats_delta(stats0, stats1)
        cpu1 = cpu_seconds(proc.pid)
        print(f"CPU portico_cpu_s={cpu1 - cpu0:.1f} per_change_ms={(cpu1 - cpu0) * 1000 / max(1, a.changes):.0f}"
              + (" (includes serving the load)" if a.under_load else ""))
        mem = proc_status(proc.pid)
        print(f"MEMORY rss_mb={mem['VmRSS']:.1f} hwm_mb={mem['VmHWM']:.1f}")
        if timeouts:
            rc = 1
        if load is not None:
            stopped, load = load, None
            if small.report_load(stopped):
                rc = 1
        if proc.poll() is not None:
            print(f"propagation: portico exited with {proc.returncode}", file=sys.stderr)
            rc = 1
        return rc
    finally:
        small.shut_down(proc, load, log, work, a.keep or rc, stop_timeout=30)


if __name__ == "__main__":
    sys.exit(main())
