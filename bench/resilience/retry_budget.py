#!/usr/bin/env python3
"""Retry budget target (issue 7): with an upstream that answers 503 to everything and a route that
retries 5xx up to 3 times, the upstream request rate stays within (1 + budget) x the client rate.

Starts `portico run` on a temporary configuration (one Upstream with the default retryBudget:
budgetPercent 20, minRetryConcurrency 3; one route with retries {retryOn: 5xx, numRetries: 3}),
a 503 upstream (tests/support/programmable_upstream.py), and clients at a fixed concurrency on
keep-alive connections for a few seconds; prints the client request rate, the upstream request
rate, their ratio, and Portico's retry counters. Exit status 1 when the ratio is over 1 + budget.

  python3 bench/resilience/retry_budget.py --portico build/portico [--concurrency 32] [--seconds 5]

Python clients and upstream: a functional figure (a few thousand requests), not a load test."""

import argparse
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests"))
from support.programmable_upstream import ProgrammableUpstream  # noqa: E402

CONFIG = """kind: Upstream
metadata: {{name: always-503, namespace: default}}
spec:
  static: {{hosts: [{{addr: 127.0.0.1, port: {upstream}}}]}}
  retryBudget: {{budgetPercent: {budget}, minRetryConcurrency: {min_conc}}}
---
kind: VirtualService
metadata: {{name: vs, namespace: default}}
spec:
  virtualHost:
    domains: ['*']
    routes:
      - matchers: [{{prefix: /}}]
        routeAction: {{single: {{upstream: {{name: always-503}}}}}}
        options:
          retries: {{retryOn: 5xx, numRetries: {retries}}}
---
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec: {{bindAddress: 127.0.0.1, bindPort: {port}, virtualServices: [{{name: vs}}]}}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric(text, name, **labels):
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--portico", default=os.environ.get("PORTICO_BIN", "build/portico"))
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--retries", type=int, default=3)
    ap.add_argument("--budget", type=int, default=20)
    ap.add_argument("--min-concurrency", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    upstream = ProgrammableUpstream(lambda n, method, path: ("respond", 503)).start()
    port, admin = free_port(), free_port()
    tmp = tempfile.mkdtemp(prefix="retry-budget-")
    with open(os.path.join(tmp, "config.yaml"), "w") as f:
        f.write(CONFIG.format(upstream=upstream.port, port=port, budget=args.budget,
                              min_conc=args.min_concurrency, retries=args.retries))
    log = open(os.path.join(tmp, "portico.log"), "wb")
    proc = subprocess.Popen([args.portico, "run", tmp, "--admin", f"127.0.0.1:{admin}",
                             "--workers", str(args.workers)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("portico did not become ready")
            time.sleep(0.05)

        counts = [0] * args.concurrency
        other = [0] * args.concurrency
        stop_at = time.monotonic() + args.seconds

        def client(i):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            while time.monotonic() < stop_at:
                try:
                    conn.request("GET", "/x")
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status == 503:
                        counts[i] += 1
                    else:
                        other[i] += 1
                except OSError:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.close()

        before = upstream.count()
        start = time.monotonic()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.concurrency)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.monotonic() - start
        up = upstream.count() - before
        client_total = sum(counts) + sum(other)
        stats = urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats", timeout=5).read().decode()
        retries = metric(stats, "portico_upstream_retries_total", upstream="default/always-503")
        skipped = metric(stats, "portico_upstream_retries_skipped_total",
                         upstream="default/always-503", reason="budget")
        ratio = up / client_total if client_total else float("nan")
        limit = 1 + args.budget / 100
        print(f"concurrency={args.concurrency} seconds={elapsed:.2f} numRetries={args.retries} "
              f"budgetPercent={args.budget} minRetryConcurrency={args.min_concurrency} workers={args.workers}")
        print(f"client requests: {client_total} ({client_total / elapsed:.0f}/s), non-503 answers: {sum(other)}")
        print(f"upstream requests: {up} ({up / elapsed:.0f}/s)")
        print(f"portico retries: {retries:.0f}, retries refused by the budget: {skipped:.0f}")
        print(f"ratio upstream/client: {ratio:.3f} (target <= {limit:.2f}): {'PASS' if ratio <= limit else 'FAIL'}")
        return 0 if ratio <= limit else 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        upstream.stop()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
