#!/usr/bin/env python3
"""gRPC proxied end to end through the real binary: a real gRPC server and client (python3-grpcio),
Portico in between speaking HTTP/2 both ways (an Upstream with useHttp2). Unary, client-streaming,
server-streaming and bidirectional calls over an h2c listener (cleartextPriorKnowledge) and over TLS
(ALPN h2); grpc-status / grpc-message and trailing metadata preserved (a server error reaches the
client); grpc-timeout honoured as the route timeout (Portico answers DEADLINE_EXCEEDED, trailers-only,
and resets the upstream stream); cancellation propagated (the server sees the client's cancel);
messages of 8 MiB and more streamed both ways; per-route matching on /package.Service/Method; many
concurrent calls share one upstream connection; a TLS Upstream (ALPN h2); a gRPC call to an Upstream
without useHttp2 fails clearly (UNAVAILABLE naming useHttp2).

The service is registered with generic handlers and identity (bytes) serializers: no generated code."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from concurrent import futures

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402

BIG = 9 * 1024 * 1024  # over 8 MiB
MSG_OPTS = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
SERVICES = ["test.Echo", "test.Slow", "test.Shared", "test.H1", "test.TlsUp", "test.Blocked"]


def make_cert(d: str):
    key, crt = os.path.join(d, "tls.key"), os.path.join(d, "tls.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=grpc.test",
                    "-addext", "subjectAltName=DNS:grpc.test"], check=True, capture_output=True,
                   timeout=60)
    return crt, key


class Service:
    """The test service: every method of every name in SERVICES."""

    def __init__(self):
        self.lock = threading.Lock()
        self.metadata: list[dict] = []
        self.cancelled = threading.Event()
        self.waiting = threading.Event()

    def unary(self, req: bytes, ctx) -> bytes:
        with self.lock:
            self.metadata.append(dict(ctx.invocation_metadata()))
        if req.startswith(b"fail"):
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad thing: 100% wrong")
        if req.startswith(b"sleep:"):
            time.sleep(float(req[6:].decode()))
        ctx.set_trailing_metadata((("x-trailer", "t1"),))
        return req

    def client_stream(self, it, ctx) -> bytes:
        n = total = 0
        for msg in it:
            n += 1
            total += len(msg)
        return f"{n}:{total}".encode()

    def server_stream(self, req: bytes, ctx):
        n, size = (int(x) for x in req.decode().split(":"))
        for i in range(n):
            yield bytes([i % 256]) * size

    def bidi(self, it, ctx):
        for msg in it:
            yield b"echo:" + msg

    def wait(self, req: bytes, ctx) -> bytes:
        done = threading.Event()
        ctx.add_callback(done.set)
        self.waiting.set()
        done.wait(20)
        if not ctx.is_active():
            self.cancelled.set()
        return b""

    def handlers(self):
        out = []
        for name in SERVICES:
            out.append(grpc.method_handlers_generic_handler(name, {
                "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
                "ClientStream": grpc.stream_unary_rpc_method_handler(self.client_stream),
                "ServerStream": grpc.unary_stream_rpc_method_handler(self.server_stream),
                "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi),
                "Wait": grpc.unary_unary_rpc_method_handler(self.wait),
            }))
        return out


def start_server(svc: Service, tls=None):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32), options=MSG_OPTS)
    server.add_generic_rpc_handlers(svc.handlers())
    if tls:
        with open(tls[0], "rb") as c, open(tls[1], "rb") as k:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])
        port = server.add_secure_port(f"{t.LOCALHOST}:0", creds)
    else:
        port = server.add_insecure_port(f"{t.LOCALHOST}:0")
    server.start()
    return server, port


def grpc_upstream(name: str, port: int, http2: bool = True) -> dict:
    u = t.upstream(name, [(t.LOCALHOST, port)])
    if http2:
        u["spec"]["useHttp2"] = True
    return u


def counter(p, name, **labels):
    return t.metric_sum(p.stats(), name, **labels)


class GrpcTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.certdir = tempfile.mkdtemp(prefix="portico-grpc-")
        cls.crt, cls.key = make_cert(cls.certdir)
        cls.svc = Service()
        cls.server, cls.server_port = start_server(cls.svc)
        cls.shared_svc = Service()
        cls.shared_server, cls.shared_port = start_server(cls.shared_svc)
        cls.tls_svc = Service()
        cls.tls_server, cls.tls_server_port = start_server(cls.tls_svc, (cls.crt, cls.key))
        cls.cfg = t.new_config(cls)
        cls.port = t.free_port()
        cls.tls_port = t.free_port()
        routes = [
            r("blocked", [m(exact="/test.Blocked/Unary")], direct=(403, "no\n")),
            r("slow", [m(prefix="/test.Slow/")], to="grpc", options={"timeout": "0.5s"}),
            r("shared", [m(prefix="/test.Shared/")], to="shared"),
            r("h1", [m(prefix="/test.H1/")], to="h1"),
            r("tlsup", [m(prefix="/test.TlsUp/")], to="tlsup"),
            r("echo", [m(prefix="/test.Echo/")], to="grpc"),
        ]
        tls_up = grpc_upstream("tlsup", cls.tls_server_port)
        tls_up["spec"]["sslConfig"] = {"sslFiles": {"rootCa": cls.crt}, "sni": "grpc.test"}
        for u in (grpc_upstream("grpc", cls.server_port), grpc_upstream("shared", cls.shared_port),
                  grpc_upstream("h1", cls.server_port, http2=False), tls_up):
            cls.cfg.write_obj(f"upstream-{u['metadata']['name']}.yaml", u)
        cls.cfg.write_obj("vs.yaml", t.virtual_service("vs", routes))
        vs_tls = t.virtual_service("vs-tls", routes, domains=["grpc.test"])
        vs_tls["spec"]["sslConfig"] = {"secretRef": t.ref("tls")}
        cls.cfg.write_obj("vs-tls.yaml", vs_tls)
        gw = t.gateway("gw", cls.port, ["vs"])
        gw["spec"]["httpOptions"] = {"http2": {"cleartextPriorKnowledge": True}}
        cls.cfg.write_obj("gateway-gw.yaml", gw)
        tls_gw = t.gateway("gw-tls", cls.tls_port, ["vs-tls"])
        tls_gw["spec"]["ssl"] = True
        tls_gw["spec"]["sslConfig"] = {"secretRef": t.ref("tls")}
        cls.cfg.write_obj("gateway-tls.yaml", tls_gw)
        cls.cfg.write_obj("secret.yaml", t.resource("Secret", "tls", {
            "tls": {"certChainFile": cls.crt, "privateKeyFile": cls.key}}))
        cls.p = t.start_portico(cls, cls.cfg)
        t.wait_for_port(cls.port)
        t.wait_for_port(cls.tls_port)

    @classmethod
    def tearDownClass(cls):
        for s in (cls.server, cls.shared_server, cls.tls_server):
            s.stop(0).wait(5)
        shutil.rmtree(cls.certdir, ignore_errors=True)
        super().tearDownClass()

    def channel(self, tls: bool = False) -> grpc.Channel:
        if tls:
            with open(self.crt, "rb") as f:
                creds = grpc.ssl_channel_credentials(root_certificates=f.read())
            ch = grpc.secure_channel(f"{t.LOCALHOST}:{self.tls_port}", creds, options=MSG_OPTS + [
                ("grpc.ssl_target_name_override", "grpc.test"), ("grpc.default_authority", "grpc.test")])
        else:
            ch = grpc.insecure_channel(f"{t.LOCALHOST}:{self.port}", options=MSG_OPTS)
        self.addCleanup(ch.close)
        return ch

    # ---- the four call types -----------------------------------------------------------------

    def check_four_kinds(self, ch: grpc.Channel, service: str = "test.Echo"):
        unary = ch.unary_unary(f"/{service}/Unary")
        resp, call = unary.with_call(b"hello", timeout=10, metadata=(("x-client", "c1"),))
        self.assertEqual(resp, b"hello")
        self.assertEqual(call.code(), grpc.StatusCode.OK)
        self.assertIn(("x-trailer", "t1"), list(call.trailing_metadata()))

        cs = ch.stream_unary(f"/{service}/ClientStream")
        self.assertEqual(cs(iter([b"a" * 10] * 100), timeout=10), b"100:1000")

        ss = ch.unary_stream(f"/{service}/ServerStream")
        got = list(ss(b"50:1000", timeout=10))
        self.assertEqual(len(got), 50)
        self.assertEqual(got[7], bytes([7]) * 1000)

        # Bidi in lockstep: each answer is read before the next message is sent.
        bidi = ch.stream_stream(f"/{service}/Bidi")
        outbox: list = []
        cond = threading.Condition()

        def gen():
            for i in range(20):
                with cond:
                    outbox.append(i)
                    cond.notify_all()
                yield f"m{i}".encode()
                with cond:
                    cond.wait_for(lambda: len(outbox) == 0, timeout=10)

        answers = []
        for a in bidi(gen(), timeout=20):
            answers.append(a)
            with cond:
                outbox.clear()
                cond.notify_all()
        self.assertEqual(answers, [f"echo:m{i}".encode() for i in range(20)])

    def test_four_call_kinds_h2c(self):
        self.check_four_kinds(self.channel())
        md = self.svc.metadata[-1]
        self.assertEqual(md.get("x-client"), "c1")  # metadata reaches the server

    def test_four_call_kinds_tls(self):
        self.check_four_kinds(self.channel(tls=True))

    def test_tls_upstream_alpn_h2(self):
        self.check_four_kinds(self.channel(), service="test.TlsUp")
        self.assertGreaterEqual(counter(self.p, "portico_upstream_h2_connections_total",
                                        upstream="default/tlsup"), 1)

    # ---- status, deadlines, cancellation -----------------------------------------------------

    def test_server_error_status_and_message_reach_the_client(self):
        unary = self.channel().unary_unary("/test.Echo/Unary")
        with self.assertRaises(grpc.RpcError) as e:
            unary(b"fail please", timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(e.exception.details(), "bad thing: 100% wrong")

    def test_route_timeout_is_deadline_exceeded(self):
        # The client sets no deadline: DEADLINE_EXCEEDED can only come from Portico (route timeout
        # 0.5 s), and the server's call is cancelled (the upstream stream was reset).
        unary = self.channel().unary_unary("/test.Slow/Unary")
        before = counter(self.p, "portico_upstream_h2_resets_sent_total", upstream="default/grpc")
        start = time.monotonic()
        with self.assertRaises(grpc.RpcError) as e:
            unary(b"sleep:3")
        self.assertEqual(e.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertLess(time.monotonic() - start, 2.5)
        t.wait_until(lambda: counter(self.p, "portico_upstream_h2_resets_sent_total",
                                     upstream="default/grpc") > before, 5, message="RST_STREAM sent")

    def test_grpc_timeout_header_is_the_route_timeout(self):
        # A raw HTTP/2 client sends grpc-timeout: 300m and never gives up itself: Portico answers
        # trailers-only grpc-status 4 after ~300 ms (the route timeout is 15 s).
        sock = socket.create_connection((t.LOCALHOST, self.port), timeout=10)
        self.addCleanup(sock.close)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                   header_encoding="utf-8"))
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":path", "/test.Echo/Unary"),
                                (":authority", "grpc.test"), ("content-type", "application/grpc"),
                                ("te", "trailers"), ("grpc-timeout", "300m")])
        msg = b"sleep:3"
        conn.send_data(sid, b"\x00" + len(msg).to_bytes(4, "big") + msg, end_stream=True)
        sock.sendall(conn.data_to_send())
        start = time.monotonic()
        headers = None
        ended = False
        while not ended and time.monotonic() - start < 5:
            data = sock.recv(65536)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    headers = dict(ev.headers)
                if isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    ended = True
            sock.sendall(conn.data_to_send())
        elapsed = time.monotonic() - start
        self.assertTrue(ended)
        self.assertIsNotNone(headers)
        self.assertEqual(headers[":status"], "200")
        self.assertEqual(headers["grpc-status"], "4")  # DEADLINE_EXCEEDED, trailers-only
        self.assertEqual(headers["content-type"], "application/grpc")
        self.assertLess(elapsed, 2.0)

    def test_client_cancel_reaches_the_server(self):
        svc = self.shared_svc
        svc.cancelled.clear()
        svc.waiting.clear()
        wait = self.channel().unary_unary("/test.Shared/Wait")
        fut = wait.future(b"", timeout=30)
        self.assertTrue(svc.waiting.wait(10), "the call reached the server")
        fut.cancel()
        self.assertTrue(svc.cancelled.wait(10), "the server saw the cancel")

    # ---- large messages, matching, sharing, the HTTP/1.1 refusal ------------------------------

    def test_large_messages_both_ways(self):
        ch = self.channel()
        payload = t.pattern_bytes(BIG)
        self.assertEqual(ch.unary_unary("/test.Echo/Unary")(payload, timeout=60), payload)
        got = list(ch.unary_stream("/test.Echo/ServerStream")(f"2:{BIG}".encode(), timeout=60))
        self.assertEqual([len(x) for x in got], [BIG, BIG])
        cs = ch.stream_unary("/test.Echo/ClientStream")
        self.assertEqual(cs(iter([payload, payload]), timeout=60), f"2:{2 * BIG}".encode())

    def test_per_method_route(self):
        ch = self.channel()
        with self.assertRaises(grpc.RpcError) as e:
            ch.unary_unary("/test.Blocked/Unary")(b"x", timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.PERMISSION_DENIED)  # HTTP 403
        # The same service's other methods match no route: 404 → UNIMPLEMENTED.
        with self.assertRaises(grpc.RpcError) as e:
            ch.unary_unary("/test.Blocked/Other")(b"x", timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.UNIMPLEMENTED)

    def test_concurrent_calls_share_one_upstream_connection(self):
        ch = self.channel()
        unary = ch.unary_unary("/test.Shared/Unary")
        # One downstream connection lives on one worker. A burst of 20 calls on a fresh upstream
        # (no connection yet) shares the first connect: one connection opened (streams arriving
        # while it is in flight wait for it), then 20 more calls ride on it.
        before = counter(self.p, "portico_upstream_h2_connections_total", upstream="default/shared")
        streams_before = counter(self.p, "portico_upstream_h2_streams_total", upstream="default/shared")
        for _ in range(2):
            with futures.ThreadPoolExecutor(max_workers=20) as ex:
                results = list(ex.map(lambda i: unary(f"sleep:0.2{i}".encode(), timeout=20), range(20)))
            self.assertEqual(len(results), 20)
        opened = counter(self.p, "portico_upstream_h2_connections_total", upstream="default/shared") - before
        self.assertLessEqual(opened, 1)
        self.assertEqual(counter(self.p, "portico_upstream_h2_streams_total",
                                 upstream="default/shared") - streams_before, 40)

    def test_grpc_to_http1_upstream_fails_clearly(self):
        with self.assertRaises(grpc.RpcError) as e:
            self.channel().unary_unary("/test.H1/Unary")(b"x", timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertIn("useHttp2", e.exception.details())


if __name__ == "__main__":
    unittest.main()
