#!/usr/bin/env python3
"""Binary upgrade target (issue 7): under continuous load (wrk, 64 connections) across a binary
upgrade, zero refused connections and zero failed requests.

Starts nginx as the upstream (a static file; tests/support/portico_testlib.Nginx), `portico run` on a
temporary configuration (one Gateway, one route to nginx), then wrk -c64 for --seconds; in the middle
a new `portico run --upgrade` takes the listening sockets over and the old process drains and exits.
Prints wrk's requests and errors (connect, read, write, timeout, non-2xx/3xx), the PIDs, and whether
the old process exited 0 and the new one serves. Exit status 1 on any error.

  python3 bench/resilience/upgrade_under_load.py --portico build/portico [--seconds 10] [--raw FILE]

One short run: a functional figure under load, not a throughput benchmark."""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests"))
from support import portico_testlib as t  # noqa: E402

CONFIG = """kind: Upstream
metadata: {{name: nginx, namespace: default}}
spec:
  static: {{hosts: [{{addr: 127.0.0.1, port: {upstream}}}]}}
---
kind: VirtualService
metadata: {{name: vs, namespace: default}}
spec:
  virtualHost:
    domains: ['*']
    routes:
      - matchers: [{{prefix: /}}]
        routeAction: {{single: {{upstream: {{name: nginx}}}}}}
---
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec: {{bindAddress: 127.0.0.1, bindPort: {port}, virtualServices: [{{name: vs}}]}}
"""


def ready(admin_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/ready", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--portico", default="build/portico")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--raw", help="write wrk's output and the processes' logs here")
    args = ap.parse_args()
    binary = os.path.abspath(args.portico)

    root = tempfile.mkdtemp(prefix="portico-upgrade-bench-")
    www = os.path.join(root, "www")
    os.makedirs(www)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write("x" * 256)
    conf = os.path.join(root, "conf")
    os.makedirs(conf)
    nginx = t.Nginx(www).start()
    port, admin = t.free_port(), t.free_port()
    with open(os.path.join(conf, "all.yaml"), "w") as f:
        f.write(CONFIG.format(upstream=nginx.port, port=port))
    base = [binary, "run", conf, "--admin", f"127.0.0.1:{admin}", "--workers", str(args.workers),
            "--log-level", "info"]
    old_log = open(os.path.join(root, "old.log"), "wb")
    new_log = open(os.path.join(root, "new.log"), "wb")
    old = subprocess.Popen(base, stdout=old_log, stderr=old_log, stdin=subprocess.DEVNULL)
    new = None
    try:
        deadline = time.monotonic() + 10
        while not ready(admin):
            if time.monotonic() > deadline or old.poll() is not None:
                raise SystemExit("portico did not start")
            time.sleep(0.05)
        wrk_cmd = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.seconds}s",
                   "--latency", f"http://127.0.0.1:{port}/index.html"]
        wrk = subprocess.Popen(wrk_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(args.seconds / 2)
        upgraded_at = time.monotonic()
        new = subprocess.Popen(base + ["--upgrade"], stdout=new_log, stderr=new_log, stdin=subprocess.DEVNULL)
        old_rc = old.wait(timeout=30)
        drained_in = time.monotonic() - upgraded_at
        out, _ = wrk.communicate(timeout=args.seconds + 30)
        serves = new.poll() is None and ready(admin)
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        errs = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        if m:
            errs = dict(zip(errs, map(int, m.groups())))
        non2xx = int((re.search(r"Non-2xx or 3xx responses: (\d+)", out) or [0, 0])[1])
        rps = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
        summary = (f"command: {' '.join(wrk_cmd)}; upgrade at {args.seconds / 2:.0f} s: "
                   f"{' '.join(base[1:])} --upgrade\n"
                   f"requests {requests} ({rps}/s), errors connect {errs['connect']} read {errs['read']} "
                   f"write {errs['write']} timeout {errs['timeout']} non-2xx {non2xx}\n"
                   f"old pid {old.pid} exited {old_rc} {drained_in:.2f} s after the new one started; "
                   f"new pid {new.pid} serving: {serves}\n")
        print(summary, end="")
        if args.raw:
            old_log.flush()
            new_log.flush()
            with open(args.raw, "w") as f:
                f.write(summary + "\n--- wrk ---\n" + out + "\n--- old process log ---\n" +
                        open(os.path.join(root, "old.log")).read() + "\n--- new process log ---\n" +
                        open(os.path.join(root, "new.log")).read())
        failed = sum(errs.values()) + non2xx
        return 0 if failed == 0 and old_rc == 0 and serves else 1
    finally:
        for p in (new, old):
            if p is not None:
                t._stop_pid(p, 10)
        nginx.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
