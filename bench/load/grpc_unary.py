#!/usr/bin/env python3
"""gRPC unary through Portico against a direct connection: req/s and p99.

    /usr/bin/python3 bench/load/grpc_unary.py [--portico build/portico] [--seconds 10]
                                              [--connections 16] [--streams 10] [--workers 1]

Starts a python3-grpcio server (one generic unary method echoing its request, identity
serializers), `portico run` with a cleartext HTTP/2 Gateway (cleartextPriorKnowledge) routing to it
through an Upstream with useHttp2, then runs h2load twice with a gRPC-framed request body
(-d FILE -H 'content-type: application/grpc' -H 'te: trailers'): straight to the server, then
through Portico. p99 comes from h2load's --log-file (per-request durations). The Python server is
the bottleneck of both runs: the ratio says what Portico costs when the upstream is the limit, not
Portico's own ceiling. Every process is started here and stopped by its PID; everything listens on
127.0.0.1. Short runs only."""

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent import futures

import grpc

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} never opened")


def h2load(port: int, body: str, args, log: str) -> dict:
    cmd = ["h2load", "-c", str(args.connections), "-m", str(args.streams), "-D", str(args.seconds),
           "-d", body, "-H", "content-type: application/grpc", "-H", "te: trailers",
           f"--log-file={log}", f"http://127.0.0.1:{port}/bench.Echo/Unary"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 60).stdout
    m = re.search(r"finished in [^,]+, ([\d.]+) req/s", out)
    ok = re.search(r"(\d+) succeeded", out)
    durations = []
    with open(log) as f:
        for line in f:
            parts = line.split("\t")
            if len(parts) >= 3 and parts[1] == "200":
                durations.append(int(parts[2]))
    durations.sort()
    p99 = durations[int(len(durations) * 0.99) - 1] / 1000.0 if durations else float("nan")
    p50 = durations[len(durations) // 2] / 1000.0 if durations else float("nan")
    return {"rps": float(m.group(1)) if m else 0.0, "succeeded": int(ok.group(1)) if ok else 0,
            "p50_ms": p50, "p99_ms": p99, "cmd": " ".join(cmd)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--portico", default=os.path.join(REPO, "build", "portico"))
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--streams", type=int, default=10)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)}),))
    gport = server.add_insecure_port("127.0.0.1:0")
    server.start()

    work = tempfile.mkdtemp(prefix="portico-grpc-bench-")
    msg = b"x" * 64
    body = os.path.join(work, "req.bin")
    with open(body, "wb") as f:
        f.write(b"\x00" + len(msg).to_bytes(4, "big") + msg)
    pport = free_port()
    cfg = os.path.join(work, "config")
    os.mkdir(cfg)
    with open(os.path.join(cfg, "all.yaml"), "w") as f:
        f.write(f"""apiVersion: gateway.portico.dev/v1
kind: Upstream
metadata: {{name: grpc, namespace: default}}
spec:
  static: {{hosts: [{{addr: 127.0.0.1, port: {gport}}}]}}
  useHttp2: true
---
apiVersion: gateway.portico.dev/v1
kind: VirtualService
metadata: {{name: vs, namespace: default}}
spec:
  virtualHost:
    domains: ["*"]
    routes:
    - matchers: [{{prefix: /bench.Echo/}}]
      routeAction: {{single: {{upstream: {{name: grpc, namespace: default}}}}}}
---
apiVersion: gateway.portico.dev/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  bindAddress: 127.0.0.1
  bindPort: {pport}
  httpOptions: {{http2: {{cleartextPriorKnowledge: true, maxConcurrentStreams: 1000}}}}
  virtualServices: [{{name: vs, namespace: default}}]
""")
    admin = free_port()
    proc = subprocess.Popen([args.portico, "run", cfg, "--workers", str(args.workers), "--admin",
                             f"127.0.0.1:{admin}"], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(work, "portico.log"), "w"))
    try:
        wait_port(pport)
        # Warm-up, then the two runs.
        subprocess.run(["h2load", "-n", "200", "-c", "2", "-d", body, "-H",
                        "content-type: application/grpc", "-H", "te: trailers",
                        f"http://127.0.0.1:{pport}/bench.Echo/Unary"], capture_output=True, timeout=60)
        direct = h2load(gport, body, args, os.path.join(work, "direct.log"))
        proxied = h2load(pport, body, args, os.path.join(work, "proxied.log"))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        server.stop(0).wait(5)
    for name, r in (("direct", direct), ("portico", proxied)):
        print(f"{name}: {r['rps']:.0f} req/s, {r['succeeded']} succeeded, p50 {r['p50_ms']:.2f} ms, "
              f"p99 {r['p99_ms']:.2f} ms   ({r['cmd']})")
    ratio = proxied["rps"] / direct["rps"] if direct["rps"] else float("nan")
    print(f"GRPC_UNARY portico_rps={proxied['rps']:.0f} direct_rps={direct['rps']:.0f} "
          f"ratio={ratio:.2f} portico_p99_ms={proxied['p99_ms']:.2f} direct_p99_ms={direct['p99_ms']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
