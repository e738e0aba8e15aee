#!/usr/bin/env python3
"""Helpers for bench/load/run.sh (python3 standard library only).

Subcommands:
  freeports N                   print N free TCP ports on 127.0.0.1, one per line
  wait-http URL [options]       poll URL until it answers the expected status (and body), or fail
  measure [options]             run one load run (wrk, or h2load with --tool h2load) and print one
                                JSON line with its figures
  wait-quiet [--max S]          wait until the machine is quiet for 1 s (at most S seconds)
  summarize FILE [options]      read measure's JSON lines, print medians and RATIO lines

The measure subcommand samples /proc before and after the wrk run:
  - the proxy's CPU (utime+stime of the proxy process and its descendants, e.g. nginx master + worker);
  - the CPU of the other processes this benchmark started (upstream nginx, via --ours) and of wrk itself
    (from wait4's rusage);
  - the whole machine's busy time (user+nice+system+irq+softirq from /proc/stat).
"other" = machine busy - proxy - ours - wrk - kernel threads (ksoftirqd, kworkers); a run whose other CPU exceeds --busy-threshold cores is
marked busy and left out of the medians.
"""
import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------- /proc
def proc_stat_fields(pid):
    """Fields of /proc/<pid>/stat after the comm field (index 0 = state), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    return data[data.rindex(")") + 2:].split()


def descendants(pid):
    """pid and all its descendant pids (scan of /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = proc_stat_fields(entry)
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_cpu_seconds(pid):
    """utime+stime (seconds) of pid and its live descendants (all threads included)."""
    total = 0
    for p in descendants(pid):
        fields = proc_stat_fields(p)
        if fields is None:
            continue
        # after comm: state(0) ppid(1) ... utime is field 14 of stat => index 11 here, stime index 12
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def kernel_threads_cpu_seconds():
    """utime+stime of the kernel threads (children of kthreadd, pid 2): ksoftirqd and kworkers do part
    of the loopback networking of the load itself, so they are not counted as "the rest of the machine"."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = proc_stat_fields(entry)
        if fields is None or (fields[1] != "2" and entry != "2"):
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def tree_rss_kb(pid):
    """Resident memory (VmRSS, kB) of pid and its live descendants."""
    total = 0
    for p in descendants(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def machine_busy_seconds():
    """Busy (user+nice+system+irq+softirq) and steal seconds, summed over all CPUs.

    irq and softirq are included because, with tick-based accounting, a tick that lands in a softirq
    (loopback networking) is counted there in /proc/stat but charged to the running task's stime.
    """
    with open("/proc/stat") as f:
        parts = f.readline().split()
    vals = [int(x) for x in parts[1:]] + [0] * 10
    user, nice, system, _idle, _iowait, irq, softirq, steal = vals[:8]
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


# ---------------------------------------------------------------------------------------------- wrk
UNITS_TIME = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def parse_time_ms(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"unparsable wrk time {text!r}")
    return float(m.group(1)) * UNITS_TIME[m.group(2)]


def parse_wrk(out):
    res = {"requests": None, "rps": None, "p50_ms": None, "p99_ms": None, "non2xx": 0,
           "sock_connect": 0, "sock_read": 0, "sock_write": 0, "sock_timeout": 0}
    m = re.search(r"^\s*(\d+) requests in ([0-9.]+)(\w+)", out, re.M)
    if m:
        res["requests"] = int(m.group(1))
    m = re.search(r"^Requests/sec:\s*([0-9.]+)", out, re.M)
    if m:
        res["rps"] = float(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s*{pct}(?:\.000)?%\s+(\S+)", out, re.M)
        if m:
            res[key] = parse_time_ms(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    if m:
        res["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["sock_connect"], res["sock_read"], res["sock_write"], res["sock_timeout"] = map(int, m.groups())
    return res


# ---------------------------------------------------------------------------------------------- h2load
def parse_h2load(out, log_path):
    """h2load's summary (requests, req/s, failures) and, from its --log-file (one row per request:
    start µs, status, µs to the end of the response), p50 and p99 and the non-2xx/3xx count: h2load
    prints only min/max/mean/sd itself."""
    res = {"requests": None, "rps": None, "p50_ms": None, "p99_ms": None, "non2xx": 0,
           "sock_connect": 0, "sock_read": 0, "sock_write": 0, "sock_timeout": 0,
           "h2_failed": None, "h2_errored": None, "mean_ms": None}
    m = re.search(r"^finished in [0-9.]+\w+, ([0-9.]+) req/s", out, re.M)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"^requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", out, re.M)
    if m:
        total, done, ok, failed, errored, timeout = map(int, m.groups())
        res["requests"] = done
        res["h2_failed"], res["h2_errored"] = failed, errored
        # Failed streams are what wrk calls socket errors; timeouts likewise.
        res["sock_read"], res["sock_timeout"] = failed, timeout
    m = re.search(r"^time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out, re.M)
    if m:
        res["mean_ms"] = parse_time_ms(m.group(3))
    lat = []
    bad = 0
    try:
        with open(log_path) as f:
            for line in f:
                cols = line.split("\t")
                if len(cols) < 3:
                    continue
                status = int(cols[1])
                if not 200 <= status < 400:
                    bad += 1
                lat.append(int(cols[2]))
    except OSError:
        pass
    if lat:
        lat.sort()
        res["p50_ms"] = lat[int(0.50 * (len(lat) - 1))] / 1000.0
        res["p99_ms"] = lat[int(0.99 * (len(lat) - 1))] / 1000.0
    res["non2xx"] = bad
    return res


def cmd_measure(a):
    ours = [int(p) for p in a.ours.split(",") if p] if a.ours else []
    log_path = None
    if a.tool == "h2load":
        # -t1: one client thread, like wrk -t1; -m: concurrent streams per connection; h2c (prior
        # knowledge) for http:// URLs, ALPN h2 for https:// ones.
        fd, log_path = tempfile.mkstemp(prefix="h2load-", suffix=".tsv")
        os.close(fd)
        wrk = ["h2load", "-t1", f"-c{a.connections}", f"-m{a.streams}", f"-D{a.duration}",
               f"--log-file={log_path}"]
        for h in a.header or []:
            wrk += ["-H", h]
    else:
        wrk = ["wrk", "-t1", f"-c{a.connections}", f"-d{a.duration}s", "--latency"]
        for h in a.header or []:
            wrk += ["-H", h]
    wrk.append(a.url)
    if a.wrk_cpu != "":
        wrk = ["taskset", "-c", a.wrk_cpu] + wrk
    if a.nice:
        wrk = ["nice", "-n", a.nice] + wrk
    with tempfile.TemporaryFile(mode="w+") as out:
        busy0, steal0 = machine_busy_seconds()
        proxy0 = tree_cpu_seconds(a.proxy_pid)
        ours0 = sum(tree_cpu_seconds(p) for p in ours)
        kthr0 = kernel_threads_cpu_seconds()
        t0 = time.monotonic()
        p = subprocess.Popen(wrk, stdout=out, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        busy1, steal1 = machine_busy_seconds()
        proxy1 = tree_cpu_seconds(a.proxy_pid)
        ours1 = sum(tree_cpu_seconds(p) for p in ours)
        kthr1 = kernel_threads_cpu_seconds()
        rss_kb = tree_rss_kb(a.proxy_pid)  # connections are closed by now: what the proxy kept
        out.seek(0)
        text = out.read()
    if log_path:
        res = parse_h2load(text, log_path)
        os.unlink(log_path)
    else:
        res = parse_wrk(text)
    proxy_cpu = proxy1 - proxy0
    ours_cpu = ours1 - ours0
    wrk_cpu = ru.ru_utime + ru.ru_stime
    kthr_cpu = kthr1 - kthr0
    other = (busy1 - busy0) - proxy_cpu - ours_cpu - wrk_cpu - kthr_cpu
    rec = {
        "scenario": a.scenario, "proxy": a.label, "round": a.round, "url": a.url, "tool": a.tool,
        "connections": a.connections, "streams": a.streams if a.tool == "h2load" else None, "duration_s": a.duration, "wall_s": round(wall, 3),
        "wrk_exit": p.returncode, **res,
        "proxy_cpu_s": round(proxy_cpu, 3),
        "proxy_cpu_util": round(proxy_cpu / wall, 3) if wall > 0 else None,
        "cpu_us_per_req": round(proxy_cpu / res["requests"] * 1e6, 3) if res["requests"] else None,
        "ours_cpu_s": round(ours_cpu, 3), "wrk_cpu_s": round(wrk_cpu, 3),
        "kthreads_cpu_s": round(kthr_cpu, 3), "proxy_rss_mb_after": round(rss_kb / 1024, 1), "machine_busy_s": round(busy1 - busy0, 3),
        "other_cores": round(other / wall, 3) if wall > 0 else None,
        "steal_cores": round((steal1 - steal0) / wall, 3) if wall > 0 else None,
    }
    rec["busy"] = rec["other_cores"] is not None and rec["other_cores"] > a.busy_threshold
    if res["requests"] is None or p.returncode != 0:
        rec["error"] = text.strip()[-500:]
    print(json.dumps(rec), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------- summary
def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=2):
    return "NA" if x is None else f"{x:.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def cmd_summarize(a):
    recs = []
    with open(a.file) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                recs.append(json.loads(line))
    scenarios, proxies = [], []
    for r in recs:
        if r["scenario"] not in scenarios:
            scenarios.append(r["scenario"])
        if r["proxy"] not in proxies:
            proxies.append(r["proxy"])
    med = {}
    for s in scenarios:
        for p in proxies:
            runs = [r for r in recs if r["scenario"] == s and r["proxy"] == p]
            if not runs:
                continue
            quiet = [r for r in runs if not r.get("busy") and r.get("requests")]
            used = quiet
            note = ""
            if not quiet:
                used = [r for r in runs if r.get("requests")]
                note = " note=ALL_RUNS_BUSY(medians_of_busy_runs)"
            m = {
                "rps": median([r["rps"] for r in used]),
                "p50": median([r["p50_ms"] for r in used]),
                "p99": median([r["p99_ms"] for r in used]),
                "cpu": median([r["cpu_us_per_req"] for r in used]),
                "util": median([r["proxy_cpu_util"] for r in used]),
                "rss": max([r.get("proxy_rss_mb_after") or 0 for r in runs]),
            }
            med[(s, p)] = m
            non2xx = sum(r["non2xx"] for r in runs)
            sock = sum(r["sock_connect"] + r["sock_read"] + r["sock_write"] + r["sock_timeout"] for r in runs)
            print(f"RESULT scenario={s} proxy={p} runs={len(quiet)}/{len(runs)} rps={fmt(m['rps'], 0)} "
                  f"p50_ms={fmt(m['p50'], 3)} p99_ms={fmt(m['p99'], 3)} cpu_us_per_req={fmt(m['cpu'], 2)} "
                  f"proxy_core_util={fmt(m['util'], 2)} rss_mb_max={fmt(m['rss'], 1)} non2xx={non2xx} "
                  f"socket_errors={sock}{note}")
    base = a.subject if a.subject in proxies else None
    for s in scenarios:
        if base:
            pairs = [(base, peer) for peer in proxies if peer != base]
        else:
            pairs = [(proxies[i], proxies[0]) for i in range(1, len(proxies))]
        for num, den in pairs:
            x, y = med.get((s, num)), med.get((s, den))
            if not x or not y:
                continue
            print(f"RATIO scenario={s} {num}/{den} rps={fmt(ratio(x['rps'], y['rps']))} "
                  f"p99={fmt(ratio(x['p99'], y['p99']))} cpu_per_req={fmt(ratio(x['cpu'], y['cpu']))}")
    return 0


# ---------------------------------------------------------------------------------------------- misc
def cmd_freeports(a):
    socks = []
    for _ in range(a.n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    for s in socks:
        print(s.getsockname()[1])
    for s in socks:
        s.close()
    return 0


def cmd_wait_http(a):
    deadline = time.monotonic() + a.timeout
    last = ""
    context = None
    if a.insecure:  # the benchmark's self-signed certificates
        import ssl
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(a.url, timeout=2, context=context) as r:
                body = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        except (OSError, ValueError) as e:
            last = str(e)
            time.sleep(0.05)
            continue
        last = f"status {status}, {len(body)} bytes"
        if status == a.status and (a.body is None or body.strip() == a.body.encode()) and \
                (a.size is None or len(body) == a.size):
            return 0
        time.sleep(0.05)
    print(f"wait-http: {a.url} not as expected after {a.timeout}s (last: {last})", file=sys.stderr)
    return 1


def cmd_wait_quiet(a):
    """Wait (at most --max seconds) for a 1-second window in which the machine is busy with less than
    --threshold cores; our own idle processes count too, which is what we want. Prints the wait."""
    t0 = time.monotonic()
    while True:
        b0, _ = machine_busy_seconds()
        w0 = time.monotonic()
        time.sleep(1.0)
        b1, _ = machine_busy_seconds()
        cores = (b1 - b0) / (time.monotonic() - w0)
        waited = time.monotonic() - t0
        if cores <= a.threshold:
            print(f"quiet after {waited:.0f}s (busy {cores:.2f} cores)")
            return 0
        if waited >= a.max:
            print(f"still busy after {waited:.0f}s ({cores:.2f} cores); running anyway")
            return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("freeports")
    p.add_argument("n", type=int)
    p.set_defaults(fn=cmd_freeports)
    p = sub.add_parser("wait-http")
    p.add_argument("url")
    p.add_argument("--status", type=int, default=200)
    p.add_argument("--body")
    p.add_argument("--size", type=int)
    p.add_argument("--timeout", type=float, default=10)
    p.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    p.set_defaults(fn=cmd_wait_http)
    p = sub.add_parser("wait-quiet")
    p.add_argument("--max", type=float, default=15)
    p.add_argument("--threshold", type=float, default=0.25)
    p.set_defaults(fn=cmd_wait_quiet)
    p = sub.add_parser("measure")
    p.add_argument("--proxy-pid", type=int, required=True)
    p.add_argument("--ours", default="", help="comma-separated pids of our other processes (upstream)")
    p.add_argument("--label", required=True)
    p.add_argument("--scenario", required=True)
    p.add_argument("--round", type=int, default=0)
    p.add_argument("--url", required=True)
    p.add_argument("--connections", type=int, required=True)
    p.add_argument("--duration", type=int, required=True)
    p.add_argument("--wrk-cpu", default="0")
    p.add_argument("--busy-threshold", type=float, default=0.25)
    p.add_argument("--nice", default="", help="run wrk at this nice level")
    p.add_argument("--header", action="append", help="request header for wrk (repeatable)")
    p.add_argument("--tool", choices=["wrk", "h2load"], default="wrk",
                   help="load generator: wrk (HTTP/1.1) or h2load (HTTP/2: h2c or ALPN h2)")
    p.add_argument("--streams", type=int, default=10, help="h2load: concurrent streams per connection")
    p.set_defaults(fn=cmd_measure)
    p = sub.add_parser("summarize")
    p.add_argument("file")
    p.add_argument("--subject", default="portico", help="proxy compared against every other one")
    p.set_defaults(fn=cmd_summarize)
    a = ap.parse_args()
    sys.exit(a.fn(a))


if __name__ == "__main__":
    main()
