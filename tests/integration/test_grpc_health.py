#!/usr/bin/env python3
"""gRPC health checks (grpcHealthCheck) through the real binary against real gRPC servers (grpcio):
a host answering SERVING serves traffic; a host switched to NOT_SERVING is taken out after
unhealthyThreshold checks and returns after healthyThreshold SERVING checks; a host whose gRPC server
is stopped is taken out; an unknown serviceName (grpc-status 5 NOT_FOUND) is a failure; over TLS the
check negotiates ALPN h2.

Each host is one port that speaks both protocols, as a real gRPC service with a REST side would: a small
front peeks at the first bytes of every connection and hands HTTP/2 (the client preface) to the gRPC
server behind it and HTTP/1.1 (what portico forwards) to an HTTP handler naming the host. Stopping the
gRPC server leaves the HTTP side up, so a host taken out can only have been taken out by its check."""

import http.server
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402

SERVING, NOT_SERVING = 1, 2
SERVICE = "portico.test.Cart"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_service(request: bytes) -> str:
    """HealthCheckRequest.service (field 1, length-delimited), decoded by hand."""
    if not request:
        return ""
    if request[0] != 0x0A:
        raise ValueError(f"unexpected field {request[0]:#x}")
    n, shift, i = 0, 0, 1
    while True:
        b = request[i]
        n |= (b & 0x7F) << shift
        i += 1
        shift += 7
        if b < 0x80:
            break
    return request[i:i + n].decode()


class HealthServer:
    """A real gRPC server (grpcio) with grpc.health.v1.Health/Check registered as a generic handler
    with identity (bytes) serializers and hand-encoded answers. `statuses` maps service names to
    SERVING / NOT_SERVING; a name it does not know gets grpc-status 5 (NOT_FOUND), trailers-only."""

    def __init__(self, tls: tuple[str, str] | None = None):
        self.statuses = {"": SERVING, SERVICE: SERVING}
        self.checks = 0
        self.delay = 0.0  # seconds before answering
        self.metadata: list[dict] = []
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
            "Check": grpc.unary_unary_rpc_method_handler(self._check, request_deserializer=None,
                                                         response_serializer=None)})
        self.server.add_generic_rpc_handlers((handler,))
        if tls:
            with open(tls[0], "rb") as c, open(tls[1], "rb") as k:
                creds = grpc.ssl_server_credentials([(k.read(), c.read())])
            self.port = self.server.add_secure_port(f"{t.LOCALHOST}:0", creds)
        else:
            self.port = self.server.add_insecure_port(f"{t.LOCALHOST}:0")
        self.stopped = False

    def _check(self, request: bytes, context) -> bytes:
        service = read_service(request)
        with self.lock:
            self.checks += 1
            self.metadata.append(dict(context.invocation_metadata()))
            status = self.statuses.get(service)
            delay = self.delay
        if delay:
            time.sleep(delay)
        if status is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return b"\x08" + varint(status)  # HealthCheckResponse{status}

    def set(self, status: int, service: str = SERVICE) -> None:
        with self.lock:
            self.statuses[service] = status

    def forget(self, service: str = SERVICE) -> None:
        with self.lock:
            self.statuses.pop(service, None)

    def count(self) -> int:
        with self.lock:
            return self.checks

    def start(self) -> "HealthServer":
        self.server.start()
        return self

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.server.stop(0).wait(5)


class DualHost:
    """One port: HTTP/2 connections go to the gRPC server, HTTP/1.1 requests are answered here
    (200, X-Upstream: name)."""

    def __init__(self, name: str, grpc_server: HealthServer):
        self.name = name
        self.grpc = grpc_server
        self.hits = 0
        self.h2_connections = 0  # handed to the gRPC server
        self.lock = threading.Lock()
        owner = self

        class H1(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                with owner.lock:
                    owner.hits += 1
                body = owner.name.encode()
                self.send_response(200)
                self.send_header("X-Upstream", owner.name)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Front(socketserver.BaseRequestHandler):
            def handle(self):
                sock = self.request
                head = b""
                while len(head) < len(PREFACE) and PREFACE.startswith(head):
                    head = sock.recv(len(PREFACE), socket.MSG_PEEK)
                    if not head:
                        return
                    if len(head) < len(PREFACE) and PREFACE.startswith(head):
                        time.sleep(0.005)
                if head.startswith(PREFACE):
                    owner._pipe(sock)
                else:
                    H1(sock, self.client_address, self.server)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                pass

        self.server = Server((t.LOCALHOST, 0), Front)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def _pipe(self, client: socket.socket) -> None:
        with self.lock:
            self.h2_connections += 1
        try:
            backend = socket.create_connection((t.LOCALHOST, self.grpc.port), timeout=2)
        except OSError:
            return  # the gRPC server is down: the connection closes
        backend.settimeout(None)

        def copy(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        other = threading.Thread(target=copy, args=(backend, client), daemon=True)
        other.start()
        copy(client, backend)
        other.join(timeout=5)
        backend.close()

    def start(self) -> "DualHost":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def count(self) -> int:
        with self.lock:
            return self.hits


def grpc_check(service: str = SERVICE, unhealthy: int = 3, healthy: int = 2, **extra) -> list[dict]:
    check = {"serviceName": service, **extra}
    return [{"timeout": "1s", "interval": "200ms", "unhealthyThreshold": unhealthy,
             "healthyThreshold": healthy, "grpcHealthCheck": check}]


class GrpcHealthTest(t.IntegrationTest):
    def start_host(self, name: str) -> DualHost:
        g = HealthServer().start()
        self.addCleanup(g.stop)
        h = DualHost(name, g).start()
        self.addCleanup(h.stop)
        return h

    def serve(self, name: str, ports: list[int], checks: list[dict], **extra) -> tuple[t.Portico, int]:
        self.cfg = self.new_config()
        port = t.free_port()
        u = t.upstream(name, [(t.LOCALHOST, p) for p in ports], lb="roundRobin")
        u["spec"]["healthChecks"] = checks
        u["spec"].update(extra)
        self.cfg.write_stack(port, [t.virtual_service("vs", [r("all", [m(prefix="/")], to=name)])], [u])
        return self.start_portico(self.cfg), port

    def metric(self, p: t.Portico, name: str, upstream: str, **labels) -> float:
        return t.metric_sum(p.stats(), name, upstream=f"default/{upstream}", **labels)

    def healthy(self, p: t.Portico, upstream: str) -> float:
        return self.metric(p, "portico_upstream_hosts_healthy", upstream)

    def who(self, port: int, n: int = 30) -> list[tuple[int, str]]:
        out = []
        for _ in range(n):
            resp = t.request(port, "GET", "/")
            out.append((resp.status, resp.headers.get("X-Upstream") or ""))
        return out

    def test_not_serving_host_is_taken_out_and_returns(self):
        a, b = self.start_host("a"), self.start_host("b")
        p, port = self.serve("g", [a.port, b.port],
                             grpc_check(initialMetadata=[{"header": {"key": "X-Token", "value": "s3cret"}}]))
        t.wait_until(lambda: self.healthy(p, "g") == 2, 10, message="both hosts healthy")
        self.assertEqual({w for _, w in self.who(port, n=10)}, {"a", "b"})
        # The checks reached the gRPC servers, with the initial metadata.
        self.assertGreater(a.grpc.count(), 0)
        self.assertEqual(a.grpc.metadata[-1].get("x-token"), "s3cret")
        self.assertEqual(a.grpc.metadata[-1].get("user-agent", "").split(" ")[0], "portico-health-check")

        # NOT_SERVING: out after three failed checks (unhealthyThreshold 3), not before.
        failures = self.metric(p, "portico_upstream_health_checks_total", "g", result="failure")
        a.grpc.set(NOT_SERVING)
        t.wait_until(lambda: self.healthy(p, "g") == 1, 10, message="host a marked down")
        self.assertGreaterEqual(
            self.metric(p, "portico_upstream_health_checks_total", "g", result="failure") - failures, 3)
        hits = a.count()
        answers = self.who(port, n=40)
        self.assertEqual(answers, [(200, "b")] * 40)
        self.assertEqual(a.count(), hits)
        self.assertIn("(last: not_serving: NOT_SERVING)", p.log())

        # SERVING again: back after two good checks (healthyThreshold 2).
        successes = self.metric(p, "portico_upstream_health_checks_total", "g", result="success")
        a.grpc.set(SERVING)
        t.wait_until(lambda: self.healthy(p, "g") == 2, 10, message="host a back")
        self.assertGreaterEqual(
            self.metric(p, "portico_upstream_health_checks_total", "g", result="success") - successes, 2)
        self.assertIn("a", {w for _, w in self.who(port, n=10)})

        # One checker per host for the process (two workers): about one check per interval
        # (200 ms), not two.
        c0 = a.grpc.count()
        time.sleep(1.0)
        self.assertLessEqual(a.grpc.count() - c0, 7)
        # One HTTP/2 connection carried them all (kept from one check to the next, NOT_SERVING
        # answers included).
        self.assertGreaterEqual(a.grpc.count(), 10)
        self.assertEqual(a.h2_connections, 1)

    def test_host_whose_grpc_server_stops_is_taken_out(self):
        a, b = self.start_host("a"), self.start_host("b")
        p, port = self.serve("stop", [a.port, b.port], grpc_check(unhealthy=2))
        t.wait_until(lambda: self.healthy(p, "stop") == 2, 10, message="both hosts healthy")
        a.grpc.stop()  # the HTTP side of host a stays up: only its check can take it out
        t.wait_until(lambda: self.healthy(p, "stop") == 1, 10, message="host a marked down")
        hits = a.count()
        self.assertEqual(self.who(port, n=30), [(200, "b")] * 30)
        self.assertEqual(a.count(), hits)
        self.assertGreaterEqual(
            self.metric(p, "portico_upstream_health_checks_total", "stop", result="failure"), 2)

    def test_unknown_service_is_a_failure(self):
        a, b = self.start_host("a"), self.start_host("b")
        p, port = self.serve("unknown", [a.port, b.port], grpc_check(unhealthy=2))
        t.wait_until(lambda: self.healthy(p, "unknown") == 2, 10, message="both hosts healthy")
        a.grpc.forget()  # grpc-status 5 (NOT_FOUND) in a trailers-only answer
        t.wait_until(lambda: self.healthy(p, "unknown") == 1, 10, message="host a marked down")
        self.assertEqual({w for _, w in self.who(port, n=20)}, {"b"})
        self.assertIn("grpc-status 5 (NOT_FOUND): unknown service", p.log())


    def test_slow_answer_times_out(self):
        a, b = self.start_host("a"), self.start_host("b")
        checks = grpc_check(unhealthy=2, healthy=1)
        checks[0]["timeout"] = "300ms"
        p, port = self.serve("slow", [a.port, b.port], checks)
        t.wait_until(lambda: self.healthy(p, "slow") == 2, 10, message="both hosts healthy")
        timeouts = self.metric(p, "portico_upstream_health_checks_total", "slow", result="timeout")
        a.grpc.delay = 1.0  # the answer comes after the check's timeout
        t.wait_until(lambda: self.healthy(p, "slow") == 1, 10, message="slow host marked down")
        self.assertGreaterEqual(
            self.metric(p, "portico_upstream_health_checks_total", "slow", result="timeout") - timeouts, 2)
        self.assertEqual({w for _, w in self.who(port, n=20)}, {"b"})
        self.assertIn("(last: timeout)", p.log())
        a.grpc.delay = 0.0
        t.wait_until(lambda: self.healthy(p, "slow") == 2, 10, message="host a back")

    def test_service_no_host_knows_is_never_healthy(self):
        a = self.start_host("a")
        p, port = self.serve("nosvc", [a.port], grpc_check(service="no.such.Service", unhealthy=1, healthy=1))
        t.wait_until(lambda: self.metric(p, "portico_upstream_health_checks_total", "nosvc",
                                         result="failure") >= 3, 10, message="three failed checks")
        self.assertGreaterEqual(a.grpc.count(), 3)  # they were answered (NOT_FOUND), not refused
        self.assertEqual(self.metric(p, "portico_upstream_health_checks_total", "nosvc", result="success"), 0)
        self.assertEqual(self.healthy(p, "nosvc"), 0)

    def test_check_over_tls_negotiates_h2(self):
        d = tempfile.mkdtemp(prefix="portico-grpc-tls-")
        self.addCleanup(shutil.rmtree, d, True)
        cert, key = os.path.join(d, "up.crt"), os.path.join(d, "up.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-days", "1", "-subj", "/CN=grpc.example.test",
                        "-addext", "subjectAltName=DNS:grpc.example.test",
                        "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=30)
        g = HealthServer(tls=(cert, key)).start()
        self.addCleanup(g.stop)
        # Verified against the certificate as CA (not insecureSkipVerify): the real handshake.
        self.cfg = self.new_config()
        port = t.free_port()
        u = t.upstream("tlsg", [(t.LOCALHOST, g.port)], lb="roundRobin")
        u["spec"]["healthChecks"] = grpc_check(unhealthy=1, healthy=1)
        u["spec"]["sslConfig"] = {"sni": "grpc.example.test", "sslFiles": {"rootCa": cert}}
        self.cfg.write_stack(port, [t.virtual_service("vs", [r("all", [m(prefix="/")], to="tlsg")])], [u])
        p = self.start_portico(self.cfg)
        t.wait_until(lambda: self.healthy(p, "tlsg") == 1, 10, message="TLS host healthy")
        self.assertGreater(g.count(), 0)
        g.set(NOT_SERVING)
        t.wait_until(lambda: self.healthy(p, "tlsg") == 0, 10, message="TLS host marked down")


if __name__ == "__main__":
    t.main()
