#!/usr/bin/env python3
"""Memory held by idle keep-alive client connections.

Starts `portico run` (PORTICO_BIN, default build/portico) with one Gateway and a direct-response
route, opens N client connections, sends one request on each (so that every connection has served a
request and sits idle in keep-alive), then reports the proxy's RSS growth per connection.

  bench/load/idle_conns.py [--connections N] [--workers W] [--tls] [--h2]

With --tls the Gateway is an ssl Gateway (`ssl: true`, a Secret with an ECDSA P-256 certificate made
here with the openssl command) and every client connection completes a full TLS 1.3 handshake (no
resumption) before its request: the figure then includes the SSL object and what OpenSSL keeps per
connection.

With --h2 every connection speaks HTTP/2 (cleartext with prior knowledge: the Gateway sets
`http2.cleartextPriorKnowledge`; with --tls, ALPN h2): it sends the client preface and its SETTINGS,
acknowledges Portico's SETTINGS, sends one GET on stream 1 (HPACK encoded here, no library) and reads
the response to its END_STREAM, then stays open and idle. The figure then includes the nghttp2 session
(its HPACK tables and stream state) that an HTTP/2 connection keeps between requests.

Prints one line: "idle_conns N=<n> tls=<0|1> h2=<0|1> rss_before_kb=<a> rss_after_kb=<b> per_conn_bytes=<c>".
Goal (docs/architecture.md): <= 4096 bytes per idle plaintext connection. python3 standard library
(and the openssl command for --tls) only.
"""
import argparse
import os
import resource
import socket
import ssl
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


# ---- a minimal HTTP/2 client exchange (RFC 9113), standard library only ------------------------------
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_frame(ftype: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + stream.to_bytes(4, "big") + payload


def h2_request(secure: bool) -> bytes:
    """Preface, empty SETTINGS, then HEADERS for GET / on stream 1 (END_STREAM | END_HEADERS). HPACK:
    indexed :method GET (2), :scheme http/https (6/7), :path / (4); :authority "h" as a literal
    without indexing (name index 1)."""
    block = bytes([0x82, 0x87 if secure else 0x86, 0x84, 0x01, 0x01]) + b"h"
    return H2_PREFACE + h2_frame(0x4, 0, 0) + h2_frame(0x1, 0x5, 1, block)


def h2_read_response(s) -> None:
    """Reads frames until stream 1 ends; acknowledges the server's SETTINGS."""
    buf = b""
    acked = False
    while True:
        while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
            n = int.from_bytes(buf[:3], "big")
            ftype, flags, stream = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
            buf = buf[9 + n:]
            if ftype == 0x4 and not flags & 0x1 and not acked:
                s.sendall(h2_frame(0x4, 0x1, 0))  # SETTINGS ACK
                acked = True
            if stream == 1 and ftype in (0x0, 0x1) and flags & 0x1:
                if not acked:
                    raise RuntimeError("response before the server's SETTINGS")
                return
            if ftype == 0x3 and stream == 1:
                raise RuntimeError("stream 1 reset")
            if ftype == 0x7:
                raise RuntimeError("GOAWAY")
        data = s.recv(65536)
        if not data:
            raise RuntimeError("connection closed before the response ended")
        buf += data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--tls", action="store_true", help="an ssl Gateway; clients connect with TLS 1.3")
    ap.add_argument("--h2", action="store_true",
                    help="HTTP/2 connections (prior knowledge in cleartext, ALPN h2 with --tls)")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, a.connections + 256)), hard))

    binary = os.environ.get("PORTICO_BIN", "build/portico")
    port = t.free_port()
    admin = t.free_port()
    with tempfile.TemporaryDirectory() as d:
        tls_spec = ""
        client_ctx = None
        if a.tls:
            key, crt = os.path.join(d, "idle.key"), os.path.join(d, "idle.crt")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt, "-days",
                            "2", "-subj", "/CN=idle.test", "-addext", "subjectAltName=DNS:idle.test"],
                           check=True, capture_output=True, timeout=60)
            tls_spec = "  ssl: true\n  sslConfig: {secretRef: {name: idle-tls, namespace: default}}\n"
            client_ctx = ssl.create_default_context(cafile=crt)
            client_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
            if a.h2:
                client_ctx.set_alpn_protocols(["h2"])
        elif a.h2:
            tls_spec = "  httpOptions: {http2: {cleartextPriorKnowledge: true}}\n"
        conf = os.path.join(d, "conf")
        os.mkdir(conf)
        with open(os.path.join(conf, "gw.yaml"), "w") as f:
            f.write(f"""apiVersion: gateway.portico.dev/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  bindAddress: 127.0.0.1
  bindPort: {port}
{tls_spec}---
apiVersion: gateway.portico.dev/v1
kind: VirtualService
metadata: {{name: vs, namespace: default}}
spec:
  virtualHost:
    domains: ["*"]
    routes:
    - matchers: [{{prefix: /}}]
      directResponseAction: {{status: 200, body: ok}}
""")
            if a.tls:
                f.write(f"""---
apiVersion: gateway.portico.dev/v1
kind: Secret
metadata: {{name: idle-tls, namespace: default}}
spec:
  tls: {{certChainFile: {crt}, privateKeyFile: {key}}}
""")

        def connect():
            s = socket.create_connection(("127.0.0.1", port))
            if client_ctx is not None:
                s = client_ctx.wrap_socket(s, server_hostname="idle.test")
                if a.h2 and s.selected_alpn_protocol() != "h2":
                    raise RuntimeError("ALPN did not select h2")
            return s

        def send_request(s):
            s.sendall(h2_request(a.tls) if a.h2 else b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")

        def read_response(s):
            if a.h2:
                h2_read_response(s)
            else:
                s.recv(4096)

        p = subprocess.Popen([binary, "run", conf, "--admin", f"127.0.0.1:{admin}", "--workers",
                              str(a.workers)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    connect().close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            # Warm up: the first connections allocate per-worker structures once.
            warm = [connect() for _ in range(50)]
            for s in warm:
                send_request(s)
                read_response(s)
            time.sleep(0.5)
            before = rss_kb(p.pid)
            conns = []
            for _ in range(a.connections):
                s = connect()
                send_request(s)
                conns.append(s)
            for s in conns:
                s.settimeout(5)
                read_response(s)
            time.sleep(2.0)  # every connection past the 1 s park delay
            after = rss_kb(p.pid)
            per = (after - before) * 1024 / a.connections
            print(f"idle_conns N={a.connections} tls={int(a.tls)} h2={int(a.h2)} rss_before_kb={before} rss_after_kb={after} "
                  f"per_conn_bytes={per:.0f}")
            for s in conns + warm:
                s.close()
        finally:
            p.terminate()
            p.wait(10)


if __name__ == "__main__":
    main()
