#!/usr/bin/env python3
"""Consul discovery at scale, end to end against the real binary (python3 standard library).

  bench/scale/consul_5000.py [--portico BIN] [-s 5000] [-k 4] [--health-changes 50]
                             [--address-changes 10] [--keep]

Starts the Consul double (tests/support/consul_double.py, its own process) with S services x K passing
instances (`--preload S:K`: svc-00000..., every instance at its own address:port 10.x.y.(j+1):2000j).
The first max(health, address changes) services are then registered again, through Consul's
/v1/catalog/register, at K real HTTP servers (127.0.0.2..: X-Upstream a, b, ...) plus one more
instance at 127.0.0.9 ("new") whose check is critical. `portico run` gets S Upstreams
`consul: {serviceName: svc-NNNNN}` and one VirtualService with S prefix routes (/svc-NNNNN/). Reports:

  CONSUL_PRELOAD ms=..     the double's start with its S x K instances
  FIRST_FULL ms=..         from the start of portico to every cluster of /config_dump having K endpoints
                           (polled every 0.2 s), and to /ready; portico's RSS
                           then (VmRSS, VmHWM), its threads, and its connections to the double
  HEALTH_FOLLOW ...        --health-changes times: the "new" instance's check of one service set passing
                           (PUT /_double/check/...); the time until a request on that service's route is
                           answered by "new" (p50/p99/max). A change Consul's check list names.
  ADDRESS_FOLLOW ...       --address-changes times: one instance of another service registered again at
                           127.0.0.9 (the same check, unchanged: Consul's check list does not move, so
                           bulk discovery sweeps); the time until a request reaches "new".
  END ...                  RSS, threads, connections and CPU seconds of portico and the double at the end
  STATS ...                the bulk watcher's counters at the end

Everything listens on loopback; the double and portico are started here and stopped by their PID.
"""
import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests"))

from support import portico_testlib as t  # noqa: E402

NEW = "127.0.0.9"


def svc(i):
    return f"svc-{i:05d}"


def percentile(xs, q):
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(q / 100.0 * (len(s) - 1)))))]


def summary(label, xs):
    if not xs:
        return f"{label} n=0"
    return (f"{label} n={len(xs)} p50_ms={statistics.median(xs):.1f} p99_ms={percentile(xs, 99):.1f} "
            f"max_ms={max(xs):.1f} min_ms={min(xs):.1f}")


def call(port, method, path, body=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def proc_status(pid):
    out = {"VmRSS": 0.0, "VmHWM": 0.0, "Threads": 0}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k = line.split(":", 1)[0]
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(line.split()[1]) / 1024.0
                elif k == "Threads":
                    out[k] = int(line.split()[1])
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


def connections_to(port):
    """Established TCP connections to 127.0.0.1:port (both ends are here: count the client ends)."""
    n = 0
    for path in ("/proc/net/tcp",):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    rem, st = parts[2], parts[3]
                    if st == "01" and int(rem.split(":")[1], 16) == port:
                        n += 1
        except OSError:
            pass
    return n


def full_count(admin_port, want):
    """Clusters of the configuration in force (/config_dump) with at least `want` endpoints."""
    try:
        status, body = call(admin_port, "GET", "/config_dump", timeout=30)
    except OSError:
        return 0
    if status != 200:
        return 0
    dump = json.loads(body)
    clusters = dump.get("clusters") or dump.get("config", {}).get("clusters") or []
    return sum(1 for c in clusters if len(c.get("endpoints") or []) >= want)


def stat_lines(admin_port, prefix):
    _, body = call(admin_port, "GET", "/stats")
    return [line for line in body.decode().splitlines() if line.startswith(prefix)]


class Poller:
    def __init__(self, port):
        self.port, self.conn = port, None

    def upstream(self, path):
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            self.conn.request("GET", path)
            r = self.conn.getresponse()
            r.read()
            if r.will_close:
                self.conn.close()
                self.conn = None
            return r.getheader("X-Upstream")
        except (OSError, http.client.HTTPException):
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return None


def follow(poller, path, timeout):
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if poller.upstream(path) == "new":
            return (time.perf_counter() - started) * 1000
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--portico", default=os.path.join(REPO, "build", "portico"))
    ap.add_argument("-s", "--services", type=int, default=5000)
    ap.add_argument("-k", "--instances", type=int, default=4)
    ap.add_argument("--health-changes", type=int, default=50)
    ap.add_argument("--address-changes", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds a change may take")
    ap.add_argument("--ready-timeout", type=float, default=300.0)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if not os.access(a.portico, os.X_OK):
        print(f"consul_5000: no Portico binary at {a.portico}", file=sys.stderr)
        return 2
    k = a.instances
    checked = max(a.health_changes, a.address_changes) if a.health_changes or a.address_changes else 0
    checked = min(checked * 2, a.services)  # health changes on the first half, addresses on the second

    work = tempfile.mkdtemp(prefix="portico-consul5000.")
    procs = []
    servers = []
    rc = 0
    try:
        up_port = t.free_port()
        for j in range(k):
            servers.append(t.UpstreamServer(chr(ord("a") + j), host=f"127.0.0.{2 + j}", port=up_port).start())
        servers.append(t.UpstreamServer("new", host=NEW, port=up_port).start())

        t0 = time.monotonic()
        double = subprocess.Popen([sys.executable, os.path.join(REPO, "tests", "support", "consul_double.py"),
                                   "--port", "0", "--preload", f"{a.services}:{k}"],
                                  stdout=subprocess.PIPE, text=True)
        procs.append(double)
        consul_port = int(double.stdout.readline())
        print(f"CONSUL_PRELOAD ms={(time.monotonic() - t0) * 1000:.0f} services={a.services} instances={k}",
              flush=True)
        # The services whose traffic is checked: K real instances and a critical "new" one.
        for i in range(checked):
            for j in range(k):
                call(consul_port, "PUT", "/v1/catalog/register", {
                    "Node": "node1", "Address": "127.0.0.1",
                    "Service": {"ID": f"{svc(i)}-{j}", "Service": svc(i), "Address": f"127.0.0.{2 + j}",
                                "Port": up_port}})
            if i < checked // 2:
                call(consul_port, "PUT", "/v1/catalog/register", {
                    "Node": "node1", "Address": "127.0.0.1",
                    "Service": {"ID": f"{svc(i)}-new", "Service": svc(i), "Address": NEW, "Port": up_port},
                    "Check": {"CheckID": f"service:{svc(i)}-new", "ServiceID": f"{svc(i)}-new",
                              "Name": "new", "Status": "critical"}})

        conf = os.path.join(work, "conf")
        os.mkdir(conf)
        gw_port, admin_port = t.free_port(), t.free_port()
        ups = [t.resource("Upstream", svc(i), {"consul": {"serviceName": svc(i)}}) for i in range(a.services)]
        routes = [t.route(svc(i), [t.matcher(prefix=f"/{svc(i)}/")], to=svc(i)) for i in range(a.services)]
        with open(os.path.join(conf, "gateway.yaml"), "w") as f:
            f.write(t.to_yaml(t.gateway("gw", gw_port, ["vs"])))
        with open(os.path.join(conf, "vs.yaml"), "w") as f:
            f.write(t.to_yaml(t.virtual_service("vs", routes)))
        with open(os.path.join(conf, "upstreams.yaml"), "w") as f:
            f.write("---\n".join(t.to_yaml(u) for u in ups))
        with open(os.path.join(conf, "settings.yaml"), "w") as f:
            f.write(t.to_yaml(t.resource("Settings", "default", {
                "consul": {"address": f"http://127.0.0.1:{consul_port}"}})))

        log = open(os.path.join(work, "portico.log"), "w")
        started = time.monotonic()
        portico = subprocess.Popen([a.portico, "run", conf, "--workers", "1", "--admin",
                                    f"127.0.0.1:{admin_port}", "--log-level", "info"],
                                   stdout=log, stderr=subprocess.STDOUT)
        procs.append(portico)
        ready_ms = full_ms = None
        deadline = started + a.ready_timeout
        while time.monotonic() < deadline and portico.poll() is None:
            if ready_ms is None:
                try:
                    if call(admin_port, "GET", "/ready", timeout=2)[0] == 200:
                        ready_ms = (time.monotonic() - started) * 1000
                except OSError:
                    pass
            if ready_ms is not None and full_count(admin_port, k) >= a.services:
                full_ms = (time.monotonic() - started) * 1000
                break
            time.sleep(0.2)
        if full_ms is None:
            print(f"consul_5000: not every Upstream had {k} hosts after {a.ready_timeout}s "
                  f"({full_count(admin_port, k)} had; ready after {ready_ms} ms)", file=sys.stderr)
            with open(os.path.join(work, "portico.log")) as f:
                sys.stderr.write(f.read()[-2000:])
            return 1
        mem = proc_status(portico.pid)
        print(f"FIRST_FULL ms={full_ms:.0f} ready_ms={ready_ms:.0f} rss_mb={mem['VmRSS']:.1f} "
              f"hwm_mb={mem['VmHWM']:.1f} threads={mem['Threads']} consul_connections={connections_to(consul_port)}"
              f" portico_cpu_s={cpu_seconds(portico.pid):.1f} consul_double_cpu_s={cpu_seconds(double.pid):.1f}"
              f" load={os.getloadavg()[0]:.2f}", flush=True)

        poller = Poller(gw_port)
        health, address, lost = [], [], 0
        for c in range(a.health_changes):
            i = c
            call(consul_port, "PUT", f"/_double/check/service:{svc(i)}-new?status=passing")
            ms = follow(poller, f"/{svc(i)}/x", a.timeout)
            if ms is None:
                lost += 1
            else:
                health.append(ms)
        print(summary("HEALTH_FOLLOW", health), flush=True)
        for c in range(a.address_changes):
            i = checked // 2 + c
            call(consul_port, "PUT", "/v1/catalog/register", {
                "Node": "node1", "Address": "127.0.0.1",
                "Service": {"ID": f"{svc(i)}-0", "Service": svc(i), "Address": NEW, "Port": up_port}})
            ms = follow(poller, f"/{svc(i)}/x", a.timeout)
            if ms is None:
                lost += 1
            else:
                address.append(ms)
        print(summary("ADDRESS_FOLLOW", address), flush=True)
        mem = proc_status(portico.pid)
        print(f"END rss_mb={mem['VmRSS']:.1f} hwm_mb={mem['VmHWM']:.1f} threads={mem['Threads']} "
              f"consul_connections={connections_to(consul_port)} not_followed={lost} "
              f"portico_cpu_s={cpu_seconds(portico.pid):.1f} consul_double_cpu_s={cpu_seconds(double.pid):.1f}",
              flush=True)
        print("STATS " + " ".join(line.split()[0].replace("portico_consul_discovery_", "") + "=" + line.split()[1]
                                  for line in stat_lines(admin_port, "portico_consul_discovery_")), flush=True)
        if lost:
            rc = 1
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for s in servers:
            s.stop()
        if a.keep:
            print(f"# kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
