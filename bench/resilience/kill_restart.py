#!/usr/bin/env python3
"""Target (b): continuous moderate load (wrk -t2 -c8, 20 s) through portico to an Upstream of three
nginx hosts; one host is killed (SIGKILL) at 5 s and started again at 12 s. Failed requests (responses
other than 200, and wrk socket errors) are reported per second relative to the kill: the target is
failures only within the detection window, none after the ejection.

The Upstream has outlier detection (consecutive5xx 5, which counts connect failures, baseEjectionTime
30s) and an HTTP health check (interval 1s, unhealthyThreshold 2); --no-health-check drops the check
to show outlier detection alone.

With --retries the route retries (5xx, reset, connect-failure; 2 retries to other hosts): the target is
then zero failed GETs.

usage: bench/resilience/kill_restart.py [--duration 20] [--no-health-check] [--retries]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--kill-at", type=float, default=5)
    ap.add_argument("--restart-at", type=float, default=12)
    ap.add_argument("--no-health-check", action="store_true")
    ap.add_argument("--retries", action="store_true",
                    help="the route retries GETs (retryOn 5xx,reset,connect-failure, numRetries 2)")
    ap.add_argument("--min-retry-concurrency", type=int, default=0,
                    help="the Upstream's retryBudget.minRetryConcurrency (0: the default, 3)")
    a = ap.parse_args()
    ports = [common.free_port() for _ in range(3)]
    hosts = [common.Nginx([("127.0.0.1", p)]).start() for p in ports]
    extra = {"outlierDetection": {"consecutive5xx": 5, "interval": "1s", "baseEjectionTime": "30s",
                                  "maxEjectionPercent": 50}}
    if not a.no_health_check:
        extra["healthChecks"] = [{"timeout": "500ms", "interval": "1s", "unhealthyThreshold": 2,
                                  "healthyThreshold": 2, "httpHealthCheck": {"path": "/healthz"}}]
    if a.min_retry_concurrency:
        extra["retryBudget"] = {"minRetryConcurrency": a.min_retry_concurrency}
    listen = common.free_port()
    options = {"retries": {"retryOn": "5xx,reset,connect-failure", "numRetries": 2}} if a.retries else None
    p = common.Portico(common.stack(listen, [("127.0.0.1", x) for x in ports], extra, options)).start()
    try:
        deadline = time.monotonic() + 10
        while a.no_health_check is False and time.monotonic() < deadline:
            if p.metric("portico_upstream_hosts_healthy", upstream="default/up") == 3:
                break
            time.sleep(0.2)
        events = {}

        def chaos():
            time.sleep(a.kill_at)
            hosts[1].kill()
            events["kill"] = time.time()
            time.sleep(a.restart_at - a.kill_at)
            hosts[1] = common.Nginx([("127.0.0.1", ports[1])]).start()
            events["restart"] = time.time()

        th = threading.Thread(target=chaos)
        started = time.time()
        th.start()
        out = subprocess.run(["wrk", "-t2", "-c8", f"-d{a.duration}s", "-s", os.path.join(HERE, "fails.lua"),
                              f"http://127.0.0.1:{listen}/"], capture_output=True, text=True)
        th.join()
        print(out.stdout)
        fails = {}
        for m in re.finditer(r"^FAILS (\d+) (\d+)$", out.stdout, re.M):
            fails[int(m.group(1))] = int(m.group(2))
        total = int(re.search(r"^TOTAL (\d+)$", out.stdout, re.M).group(1))
        sock = re.search(r"Socket errors: (.*)$", out.stdout, re.M)
        kill = events.get("kill", 0)
        rel = {str(int(t - int(kill))): c for t, c in sorted(fails.items())}
        ejections = p.metric("portico_upstream_ejections_total", upstream="default/up")
        result = {
            "duration_s": a.duration, "health_check": not a.no_health_check, "retry_policy": a.retries,
            "responses": total, "failed": sum(fails.values()),
            "failed_by_second_after_kill": rel,
            "last_failure_s_after_kill": (max(fails) - int(kill)) if fails else None,
            "socket_errors": sock.group(1) if sock else "none",
            "kill_at_s": round(kill - started, 2), "restart_at_s": round(events.get("restart", 0) - started, 2),
            "ejections": ejections,
            "upstream_errors": {r: p.metric("portico_upstream_errors_total", upstream="default/up", reason=r)
                                for r in ("connect_failed", "reset", "timeout")},
            "retries": p.metric("portico_upstream_retries_total", upstream="default/up"),
            "retries_refused_by_budget": p.metric("portico_upstream_retries_skipped_total",
                                                  upstream="default/up", reason="budget"),
            "health_check_failures": p.metric("portico_upstream_health_checks_total", upstream="default/up",
                                              result="failure"),
        }
        print(json.dumps(result))
    finally:
        p.stop()
        for h in hosts:
            h.stop()


if __name__ == "__main__":
    main()
