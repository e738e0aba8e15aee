#!/usr/bin/env python3
"""Memory held by idle keep-alive client connections.

Starts `portico run` (PORTICO_BIN, default build/portico) with one Gateway and a direct-response
route, opens N client connections, sends one request on each (so that every connection has served a
request and sits idle in keep-alive), then reports the proxy's RSS growth per connection.

  bench/load/idle_conns.py [--connections N] [--workers W]

Prints one line: "idle_conns N=<n> rss_before_kb=<a> rss_after_kb=<b> per_conn_bytes=<c>".
Goal (docs/architecture.md): <= 4096 bytes per idle connection. python3 standard library only.
"""
import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))
from support import portico_testlib as t  # noqa: E402


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, a.connections + 256)), hard))

    binary = os.environ.get("PORTICO_BIN", "build/portico")
    port = t.free_port()
    admin = t.free_port()
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "gw.yaml"), "w") as f:
            f.write(f"""apiVersion: gateway.solo.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  bindAddress: 127.0.0.1
  bindPort: {port}
  httpGateway: {{}}
---
apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata: {{name: vs, namespace: default}}
spec:
  virtualHost:
    domains: ["*"]
    routes:
    - matchers: [{{prefix: /}}]
      directResponseAction: {{status: 200, body: ok}}
""")
        p = subprocess.Popen([binary, "run", d, "--admin", f"127.0.0.1:{admin}", "--workers",
                              str(a.workers)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            # Warm up: the first connections allocate per-worker structures once.
            warm = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
            for s in warm:
                s.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
                s.recv(4096)
            time.sleep(0.5)
            before = rss_kb(p.pid)
            conns = []
            for _ in range(a.connections):
                s = socket.create_connection(("127.0.0.1", port))
                s.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
                conns.append(s)
            for s in conns:
                s.settimeout(5)
                s.recv(4096)
            time.sleep(1.0)
            after = rss_kb(p.pid)
            per = (after - before) * 1024 / a.connections
            print(f"idle_conns N={a.connections} rss_before_kb={before} rss_after_kb={after} "
                  f"per_conn_bytes={per:.0f}")
            for s in conns + warm:
                s.close()
        finally:
            p.terminate()
            p.wait(10)


if __name__ == "__main__":
    main()
