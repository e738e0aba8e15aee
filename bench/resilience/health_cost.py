#!/usr/bin/env python3
"""Target (a): active health checks of 1,000 hosts cost < 2 % of one core.

One nginx listens on 127.0.0.1..127.0.3.232 (1,000 loopback addresses, one port); portico (2 workers,
no traffic) has one Upstream with those 1,000 hosts. Portico's CPU time (utime+stime, all threads) is
measured over --seconds (default 60) twice: with an HTTP health check every 1 s (keep-alive, the
default), and with the same Upstream without health checks. The difference is the checks' cost; the
CPU time of the health thread itself ("portico-health") is shown too.

usage: bench/resilience/health_cost.py [--seconds 60] [--hosts 1000] [--tcp]
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def addresses(n: int) -> list[str]:
    out = []
    for i in range(n):
        k = i + 1  # 127.0.0.1 ...
        out.append(f"127.0.{k // 254}.{k % 254 + 1}" if k >= 254 else f"127.0.0.{k}")
    return out


def run(hosts, port, checks: dict | None, seconds: float) -> dict:
    listen = common.free_port()
    extra = {"healthChecks": [checks]} if checks else {}
    p = common.Portico(common.stack(listen, [(a, port) for a in hosts], extra)).start()
    try:
        if checks:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if p.metric("portico_upstream_hosts_healthy", upstream="default/up") >= len(hosts):
                    break
                time.sleep(0.5)
        time.sleep(2)  # settle
        h0 = common.thread_cpu_seconds(p.proc.pid, "portico-health")
        c0, t0 = common.cpu_seconds(p.proc.pid), time.monotonic()
        hc0 = p.metric("portico_upstream_health_checks_total", upstream="default/up")
        time.sleep(seconds)
        c1, t1 = common.cpu_seconds(p.proc.pid), time.monotonic()
        h1 = common.thread_cpu_seconds(p.proc.pid, "portico-health")
        hc1 = p.metric("portico_upstream_health_checks_total", upstream="default/up")
        healthy = p.metric("portico_upstream_hosts_healthy", upstream="default/up")
        fails = p.metric("portico_upstream_health_checks_total", upstream="default/up", result="failure") + \
            p.metric("portico_upstream_health_checks_total", upstream="default/up", result="timeout")
        return {"checks": bool(checks), "cpu_s": round(c1 - c0, 3), "wall_s": round(t1 - t0, 2),
                "core_pct": round(100 * (c1 - c0) / (t1 - t0), 3),
                "health_thread_core_pct": round(100 * (h1 - h0) / (t1 - t0), 3), "health_checks": hc1 - hc0,
                "checks_per_s": round((hc1 - hc0) / (t1 - t0), 1), "hosts_healthy": healthy,
                "failed_or_timed_out_checks": fails}
    finally:
        p.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--tcp", action="store_true", help="TCP connect checks instead of HTTP")
    a = ap.parse_args()
    hosts = addresses(a.hosts)
    port = common.free_port()
    nginx = common.Nginx([(h, port) for h in hosts]).start()
    try:
        check = {"timeout": "1s", "interval": "1s", "unhealthyThreshold": 3, "healthyThreshold": 2}
        if a.tcp:
            check["tcpHealthCheck"] = {}
        else:
            check["httpHealthCheck"] = {"path": "/healthz"}
        with_checks = run(hosts, port, check, a.seconds)
        print(json.dumps(with_checks), flush=True)
        without = run(hosts, port, None, a.seconds)
        print(json.dumps(without), flush=True)
        cost = with_checks["core_pct"] - without["core_pct"]
        print(json.dumps({"hosts": a.hosts, "kind": "tcp" if a.tcp else "http", "interval_s": 1,
                          "cost_core_pct": round(cost, 3),
                          "health_thread_core_pct": with_checks["health_thread_core_pct"],
                          "target_core_pct": 2.0, "met": cost < 2.0}))
    finally:
        nginx.stop()


if __name__ == "__main__":
    main()
