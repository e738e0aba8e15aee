#!/usr/bin/env python3
"""HTTP/1.1 parser hardening over the wire (docs: ../shared/reference/hardening.md): every smuggling attempt
and parser ambiguity, sent with raw sockets, gets an error status (400 unless RFC 9112 says 431/501/505),
the connection is closed after it, and nothing reaches the upstream (the test upstream records what it
received). Also: hop-by-hop headers removed in both directions, re-serialisation, slow clients."""

import http.client
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402

H = b"Host: h.example\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: h.example\r\n\r\n"

# (name, raw request, accepted statuses). The head-level cases must never produce an upstream request.
HEAD_CASES = [
    ("cl-and-te", b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n" + SMUGGLED, {400}),
    ("te-and-cl", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 50\r\n\r\n"
     b"0\r\n\r\n" + SMUGGLED, {400}),
    ("two-content-lengths", b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n"
     b"hello!", {400}),
    ("repeated-content-length", b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\n"
     b"hello", {400}),
    ("content-length-list", b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 5, 6\r\n\r\nhello!", {400}),
    ("empty-content-length", b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: \r\n\r\n", {400}),
    ("signed-content-length", b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello", {400}),
    ("negative-content-length", b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", {400}),
    ("hex-content-length", b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 0x5\r\n\r\nhello", {400}),
    ("overflow-content-length", b"POST /a HTTP/1.1\r\n" + H + b"Content-Length: 184467440737095516160\r\n\r\n",
     {400, 413}),
    ("te-not-chunked-last", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n"
     b"0\r\n\r\n", {400, 501}),
    ("te-chunked-twice", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
     {400, 501}),
    ("te-two-headers", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"
     b"\r\n0\r\n\r\n", {400, 501}),
    ("te-unknown", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", {400, 501}),
    ("te-identity", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n\r\n", {400, 501}),
    ("te-in-http10", b"POST /a HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
     {400}),
    ("te-space-before-colon", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\n"
     b"Content-Length: 4\r\n\r\n0\r\n\r\n", {400}),
    ("te-vertical-tab", b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n",
     {400, 501}),
    ("nul-in-header-value", b"GET /a HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", {400}),
    ("bare-cr-in-header-value", b"GET /a HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", {400}),
    ("bare-lf-in-headers", b"GET /a HTTP/1.1\r\n" + H + b"X-A: a\nX-B: b\r\n\r\n", {400}),
    ("bare-lf-line-endings", b"GET /a HTTP/1.1\nHost: h.example\n\n", {400}),
    ("whitespace-before-colon", b"GET /a HTTP/1.1\r\n" + H + b"X-A : b\r\n\r\n", {400}),
    ("tab-before-colon", b"GET /a HTTP/1.1\r\n" + H + b"Content-Length\t: 0\r\n\r\n", {400}),
    ("obs-fold", b"GET /a HTTP/1.1\r\n" + H + b"X-A: a\r\n b\r\n\r\n", {400}),
    ("obs-fold-te", b"POST /a HTTP/1.1\r\n" + H + b"X-A: a\r\n\tTransfer-Encoding: chunked\r\n"
     b"Content-Length: 4\r\n\r\n0\r\n\r\n", {400}),
    ("header-name-parens", b"GET /a HTTP/1.1\r\n" + H + b"X(A): b\r\n\r\n", {400}),
    ("header-name-space", b"GET /a HTTP/1.1\r\n" + H + b"X A: b\r\n\r\n", {400}),
    ("header-name-empty", b"GET /a HTTP/1.1\r\n" + H + b": b\r\n\r\n", {400}),
    ("header-without-colon", b"GET /a HTTP/1.1\r\n" + H + b"X-A b\r\n\r\n", {400}),
    ("request-line-double-space", b"GET  /a HTTP/1.1\r\n" + H + b"\r\n", {400}),
    ("request-line-trailing-space", b"GET /a HTTP/1.1 \r\n" + H + b"\r\n", {400}),
    ("request-line-tab", b"GET\t/a HTTP/1.1\r\n" + H + b"\r\n", {400}),
    ("request-line-space-in-target", b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", {400}),
    ("request-line-no-version", b"GET /a\r\n" + H + b"\r\n", {400}),
    ("method-with-bad-char", b"G(ET /a HTTP/1.1\r\n" + H + b"\r\n", {400}),
    ("absolute-form-host-mismatch", b"GET http://other.example/a HTTP/1.1\r\n" + H + b"\r\n", {400}),
    ("two-host-headers", b"GET /a HTTP/1.1\r\n" + H + b"Host: other.example\r\n\r\n", {400}),
    ("missing-host", b"GET /a HTTP/1.1\r\nX-A: b\r\n\r\n", {400}),
    ("bad-host-chars", b"GET /a HTTP/1.1\r\nHost: h.example/evil\r\n\r\n", {400}),
    ("host-with-space", b"GET /a HTTP/1.1\r\nHost: h.example evil\r\n\r\n", {400}),
    ("http-version-1-2", b"GET /a HTTP/1.2\r\n" + H + b"\r\n", {400, 505}),
    ("http-version-2", b"GET /a HTTP/2.0\r\n" + H + b"\r\n", {400, 505}),
    ("lowercase-version", b"GET /a http/1.1\r\n" + H + b"\r\n", {400}),
    ("head-too-large", b"GET /a HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 70000 + b"\r\n\r\n", {400, 431}),
    ("too-many-headers", b"GET /a HTTP/1.1\r\n" + H + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n",
     {400, 431}),
]

# Body-level cases: the head is valid, so the proxy may have started forwarding; the upstream must never
# receive a complete request, and never the smuggled one.
CHUNK_HEAD = b"POST /a HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
BODY_CASES = [
    ("chunk-size-0x", CHUNK_HEAD + b"0x5\r\nhello\r\n0\r\n\r\n", {400}),
    ("chunk-size-plus", CHUNK_HEAD + b"+5\r\nhello\r\n0\r\n\r\n", {400}),
    ("chunk-size-minus", CHUNK_HEAD + b"-5\r\nhello\r\n0\r\n\r\n", {400}),
    ("chunk-size-underscore", CHUNK_HEAD + b"1_0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n", {400}),
    ("chunk-size-leading-space", CHUNK_HEAD + b" 5\r\nhello\r\n0\r\n\r\n", {400}),
    ("chunk-size-trailing-space", CHUNK_HEAD + b"5 \r\nhello\r\n0\r\n\r\n", {400}),
    ("chunk-size-too-many-digits", CHUNK_HEAD + b"00000000000000000005\r\nhello\r\n0\r\n\r\n", {400}),
    ("chunk-size-overflow", CHUNK_HEAD + b"fffffffffffffffff\r\nhello\r\n0\r\n\r\n", {400}),
    ("chunk-size-not-hex", CHUNK_HEAD + b"g\r\nhello\r\n0\r\n\r\n", {400}),
    ("chunk-size-bare-lf", CHUNK_HEAD + b"5\nhello\r\n0\r\n\r\n", {400}),
    ("chunk-data-bare-lf", CHUNK_HEAD + b"5\r\nhello\n0\r\n\r\n", {400}),
    ("chunk-missing-crlf", CHUNK_HEAD + b"5\r\nhelloX0\r\n\r\n", {400}),
    ("chunk-data-too-long", CHUNK_HEAD + b"3\r\nhello\r\n0\r\n\r\n", {400}),
    ("chunk-extension-unbounded", CHUNK_HEAD + b"5;" + b"a" * 20000 + b"\r\nhello\r\n0\r\n\r\n", {400}),
    ("chunk-last-bare-lf", CHUNK_HEAD + b"5\r\nhello\r\n0\n\n", {400}),
    ("chunk-smuggle-after-bad-size", CHUNK_HEAD + b"5x\r\nhello\r\n0\r\n\r\n" + SMUGGLED, {400}),
    ("trailer-obs-fold", CHUNK_HEAD + b"5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n", {400}),
]


def response_complete(raw: bytes) -> bool:
    """True when raw holds a whole response head and its Content-Length body (or no length)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                return len(body) >= int(value.strip())
            except ValueError:
                return True
    return True


class HardeningTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.echo = t.start_upstream(cls, "echo")
        cls.cfg = t.new_config(cls)
        cls.port = t.free_port()
        cls.cfg.write_stack(cls.port, [t.virtual_service("vs", [r("all", [m(prefix="/")], to="echo")])],
                            [t.upstream("echo", [(t.LOCALHOST, cls.echo.port)])])
        cls.portico = t.start_portico(cls, cls.cfg)

    def setUp(self):
        super().setUp()
        self.echo.clear()

    def exchange(self, data, timeout=5.0):
        start = time.monotonic()
        raw = t.raw_exchange(self.port, data, timeout=timeout)
        return raw, time.monotonic() - start

    def exchange_error(self, data, timeout=3.0, close_grace=0.5):
        """Sends data, reads one response; then waits at most close_grace for the proxy to close.
        Returns (raw bytes, closed)."""
        raw = b""
        with socket.create_connection((t.LOCALHOST, self.port), timeout=timeout) as s:
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
            deadline = time.monotonic() + timeout
            complete_at = None
            while time.monotonic() < deadline:
                if complete_at is None and response_complete(raw):
                    complete_at = time.monotonic()
                    deadline = min(deadline, complete_at + close_grace)
                s.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                except ConnectionResetError:
                    return raw, True
                if not chunk:
                    return raw, True
                raw += chunk
        return raw, False

    def check_rejected(self, name, data, statuses, head_level):
        raw, closed = self.exchange_error(data)
        status = t.status_of(raw)
        self.assertIn(status, statuses, f"{name}: got {raw[:300]!r}")
        self.assertEqual(t.count_responses(raw), 1, f"{name}: more than one response: {raw[:600]!r}")
        self.assertTrue(closed, f"{name}: the connection was not closed after the error")
        head, _, body = raw.partition(b"\r\n\r\n")
        self.assertTrue(body, f"{name}: the error response has no body naming the reason")
        time.sleep(0.05)
        seen = self.echo.requests()
        if head_level:
            self.assertEqual(seen, [], f"{name}: reached the upstream: {[q['target'] for q in seen]}")
        else:
            self.assertEqual([q for q in seen if q["complete"]], [],
                             f"{name}: a complete request reached the upstream")
        self.assertEqual([q for q in seen if q["path"] == "/smuggled"], [], f"{name}: smuggled request forwarded")

    def test_head_level_attacks(self):
        for name, data, statuses in HEAD_CASES:
            with self.subTest(name):
                self.echo.clear()
                self.check_rejected(name, data, statuses, head_level=True)

    def test_body_level_attacks(self):
        for name, data, statuses in BODY_CASES:
            with self.subTest(name):
                self.echo.clear()
                self.check_rejected(name, data, statuses, head_level=False)

    def test_missing_final_crlf_does_not_complete(self):
        # The last chunk without the final CRLF: the request is not complete; the proxy must wait (or
        # time out), never forward a complete request.
        raw, _ = self.exchange(CHUNK_HEAD + b"5\r\nhello\r\n0\r\n", timeout=1.5)
        self.assertNotEqual(t.status_of(raw), 200, raw[:300])
        self.assertEqual([q for q in self.echo.requests() if q["complete"]], [])

    def test_proxy_survives_attacks(self):
        for _, data, _ in HEAD_CASES[:10] + BODY_CASES[:5]:
            t.raw_exchange(self.port, data, timeout=2)
        resp = t.request(self.port, "GET", "/still-alive")
        self.assertEqual(resp.status, 200)
        self.assertTrue(self.portico.alive())

    # --- valid edge cases must pass --------------------------------------------------------------

    def test_valid_chunked_with_extension_and_trailer(self):
        raw, _ = self.exchange(CHUNK_HEAD[:-2] + b"Connection: close\r\n\r\n"
                               b"5;name=value\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n")
        self.assertEqual(t.status_of(raw), 200, raw[:300])
        req = [q for q in self.echo.requests() if q["complete"]]
        self.assertEqual(len(req), 1)
        self.assertEqual(req[0]["body_length"], 15)

    def test_valid_chunk_sizes_uppercase_hex_and_leading_zeros(self):
        raw, _ = self.exchange(CHUNK_HEAD[:-2] + b"Connection: close\r\n\r\n" + b"000A\r\n0123456789\r\n"
                               b"0\r\n\r\n")
        self.assertEqual(t.status_of(raw), 200, raw[:300])
        self.assertEqual([q["body_length"] for q in self.echo.requests()], [10])

    def test_valid_ows_around_header_values(self):
        raw, _ = self.exchange(b"GET /ows HTTP/1.1\r\nHost:h.example\r\nX-Spaced: \t value \t\r\n"
                               b"Connection: close\r\n\r\n")
        self.assertEqual(t.status_of(raw), 200, raw[:300])
        (req,) = self.echo.requests()
        self.assertEqual([v for k, v in req["headers"] if k.lower() == "x-spaced"], ["value"])

    def test_pipelined_requests_answered_in_order(self):
        data = b"".join(b"GET /p/%d HTTP/1.1\r\n" % i + H + b"\r\n" for i in range(5))
        data += b"GET /p/last HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"
        raw, _ = self.exchange(data)
        self.assertEqual(t.count_responses(raw), 6, raw[:1000])
        order = [q["path"] for q in self.echo.requests()]
        self.assertEqual(order, [f"/p/{i}" for i in range(5)] + ["/p/last"])

    def test_leading_empty_lines_tolerated(self):
        raw, _ = self.exchange(b"\r\nGET /lead HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
        self.assertEqual(t.status_of(raw), 200, raw[:300])

    def test_http10_request(self):
        raw, _ = self.exchange(b"GET /ten HTTP/1.0\r\nHost: h.example\r\n\r\n")
        self.assertEqual(t.status_of(raw), 200, raw[:300])
        self.assertTrue(raw.startswith(b"HTTP/1."))

    def test_request_reserialised(self):
        # Mixed-case names, odd spacing: the upstream gets a clean, re-serialised request.
        raw, _ = self.exchange(b"POST /reser?x=1 HTTP/1.1\r\nhOsT: h.example\r\ncontent-LENGTH:  3 \r\n"
                               b"X-Dup: 1\r\nX-Dup: 2\r\nConnection: close\r\n\r\nabc")
        self.assertEqual(t.status_of(raw), 200, raw[:300])
        (req,) = self.echo.requests()
        self.assertEqual(req["target"], "/reser?x=1")
        self.assertEqual(req["body_length"], 3)
        cl = [v for k, v in req["headers"] if k.lower() == "content-length"]
        self.assertEqual(cl, ["3"])
        self.assertEqual([v for k, v in req["headers"] if k.lower() == "x-dup"], ["1", "2"])

    # --- hop-by-hop ------------------------------------------------------------------------------

    def test_hop_by_hop_request_headers_removed(self):
        resp = t.request(self.port, "GET", "/hop", headers=[
            ("Connection", "keep-alive, X-Custom-Hop"), ("X-Custom-Hop", "secret"),
            ("Keep-Alive", "timeout=5"), ("Proxy-Connection", "keep-alive"), ("X-End-To-End", "kept")])
        self.assertEqual(resp.status, 200)
        echo = resp.json()
        names = {k.lower() for k, _ in echo["headers"]}
        for hop in ("x-custom-hop", "keep-alive", "proxy-connection"):
            self.assertNotIn(hop, names, echo["headers"])
        for v in t.echo_header(echo, "Connection"):
            self.assertNotIn("x-custom-hop", v.lower())
        self.assertEqual(t.echo_header(echo, "X-End-To-End"), ["kept"])

    def test_hop_by_hop_response_headers_removed(self):
        resp = t.request(self.port, "GET", "/response-headers?Connection=X-Resp-Hop&X-Resp-Hop=1"
                                           "&Keep-Alive=timeout%3D5&Proxy-Connection=keep-alive&X-Resp-E2E=kept")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.header_all("X-Resp-Hop"), [])
        self.assertEqual(resp.header_all("Keep-Alive"), [])
        self.assertEqual(resp.header_all("Proxy-Connection"), [])
        for v in resp.header_all("Connection"):
            self.assertNotIn("x-resp-hop", v.lower())
        self.assertEqual(resp.header_all("X-Resp-E2E"), ["kept"])

    def test_upstream_chunked_reframed(self):
        # The upstream's Transfer-Encoding is hop-by-hop: the proxy re-frames, the body arrives intact.
        resp = t.request(self.port, "GET", "/chunked/70000")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body, t.pattern_bytes(70000))
        self.assertLessEqual(len(resp.header_all("Transfer-Encoding")), 1)

    # --- slow clients ----------------------------------------------------------------------------

    def test_slow_client_does_not_block_others(self):
        with socket.create_connection((t.LOCALHOST, self.port), timeout=5) as slow:
            slow.sendall(b"GET /slow HTTP/1.1\r\nHo")
            for _ in range(5):
                resp = t.request(self.port, "GET", "/fast", timeout=3)
                self.assertEqual(resp.status, 200)
            slow.sendall(b"st: h.example\r\nConnection: close\r\n\r\n")
            rest = t.read_response(slow)
            self.assertEqual(rest.status, 200)


class MaxConnectionsTest(t.IntegrationTest):
    """spec.httpOptions.maxConnections: connections over the limit are closed at once and counted;
    capacity comes back when connections close."""

    def test_connections_over_the_limit_are_closed(self):
        cfg = self.new_config()
        port = t.free_port()
        cfg.write_obj("vs-vs.yaml", t.virtual_service("vs", [r("a", [m(prefix="/")], direct=(200, "ok"))]))
        gw = t.gateway("gw", port, ["vs"])
        gw["spec"]["httpOptions"] = {"maxConnections": 4}
        cfg.write_obj("gateway-gw.yaml", gw)
        portico = self.start_portico(cfg)  # 2 workers: each admits 2
        held, served = [], 0
        for _ in range(10):
            s = socket.create_connection((t.LOCALHOST, port), timeout=3)
            self.addCleanup(s.close)
            held.append(s)
            try:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                if t.read_response(s).status == 200:
                    served += 1
            except (OSError, http.client.HTTPException):
                pass
        # SO_REUSEPORT may give one worker more than its share: between 2 and 4 are served, never more.
        self.assertGreaterEqual(served, 2)
        self.assertLessEqual(served, 4)
        overflow = t.metric_sum(portico.stats(), "portico_downstream_connections_overflow_total")
        self.assertEqual(overflow, 10 - served)
        for s in held:
            s.close()
        t.wait_until(lambda: all(t.request(port, "GET", "/").status == 200 for _ in range(8)), 3,
                     message="capacity back once the held connections closed")


class HttpOptionsTest(t.IntegrationTest):
    """Per-Gateway limits and timeouts (spec.httpOptions): slowloris heads get 408, stalled bodies are
    cut, idle keep-alive connections close, header limits give 431."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.echo = t.start_upstream(cls, "echo")
        cls.cfg = t.new_config(cls)
        cls.port = t.free_port()
        cls.cfg.write_obj("upstream-echo.yaml", t.upstream("echo", [(t.LOCALHOST, cls.echo.port)]))
        cls.cfg.write_obj("vs-vs.yaml", t.virtual_service("vs", [r("all", [m(prefix="/")], to="echo")]))
        cls.cfg.write_obj("gateway-gw.yaml", t.resource("Gateway", "gw", {
            "bindAddress": t.LOCALHOST, "bindPort": cls.port, "virtualServices": [t.ref("vs")],
            "httpOptions": {"requestHeaderTimeout": "1s", "idleTimeout": "1s",
                            "maxRequestHeadersBytes": 4096, "maxHeaders": 20}}))
        cls.portico = t.start_portico(cls, cls.cfg)

    def setUp(self):
        super().setUp()
        self.echo.clear()

    def read_until_close(self, s, limit):
        """Reads until the peer closes (returns (bytes, seconds)) or `limit` seconds pass (AssertionError)."""
        start = time.monotonic()
        raw = b""
        s.settimeout(0.2)
        while time.monotonic() - start < limit:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return raw, time.monotonic() - start
            if not chunk:
                return raw, time.monotonic() - start
            raw += chunk
        self.fail(f"connection still open after {limit}s (read {raw[:200]!r})")

    def test_slowloris_head_gets_408(self):
        with socket.create_connection((t.LOCALHOST, self.port), timeout=5) as s:
            start = time.monotonic()
            s.sendall(b"GET /slow HTTP/1.1\r\n")
            try:
                for _ in range(20):  # one header byte every 150 ms: never done within 1 s
                    s.sendall(b"X")
                    time.sleep(0.15)
            except (BrokenPipeError, ConnectionResetError):
                pass
            raw, _ = self.read_until_close(s, 4)
            elapsed = time.monotonic() - start
        self.assertEqual(t.status_of(raw), 408, raw[:300])
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 4.0)
        self.assertEqual(self.echo.requests(), [])

    def test_stalled_body_is_cut(self):
        with socket.create_connection((t.LOCALHOST, self.port), timeout=5) as s:
            s.sendall(b"POST /stall HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
            raw, elapsed = self.read_until_close(s, 4)
        self.assertLess(elapsed, 3.5)
        self.assertIn(t.status_of(raw), (None, 408, 400, 504), raw[:300])
        self.assertEqual([q for q in self.echo.requests() if q["complete"]], [])

    def test_idle_keep_alive_closed(self):
        with socket.create_connection((t.LOCALHOST, self.port), timeout=5) as s:
            s.sendall(b"GET /idle HTTP/1.1\r\nHost: h\r\n\r\n")
            resp = t.read_response(s)
            self.assertEqual(resp.status, 200)
            _, elapsed = self.read_until_close(s, 4)
        self.assertGreaterEqual(elapsed, 0.8)
        self.assertLess(elapsed, 3.0)

    def test_header_bytes_limit(self):
        raw = t.raw_exchange(self.port, b"GET /big HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n",
                             timeout=3)
        self.assertEqual(t.status_of(raw), 431, raw[:300])
        ok = t.raw_exchange(self.port, b"GET /fits HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 3000 +
                            b"\r\nConnection: close\r\n\r\n", timeout=3)
        self.assertEqual(t.status_of(ok), 200, ok[:300])

    def test_header_count_limit(self):
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(25))
        raw = t.raw_exchange(self.port, b"GET /many HTTP/1.1\r\nHost: h\r\n" + many + b"\r\n", timeout=3)
        self.assertEqual(t.status_of(raw), 431, raw[:300])
        self.assertEqual(self.echo.requests(), [])

    def test_too_many_leading_empty_lines(self):
        raw = t.raw_exchange(self.port, b"\r\n" * 5 + b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", timeout=3)
        self.assertEqual(t.status_of(raw), 400, raw[:300])

    def test_others_served_during_slowloris(self):
        socks = []
        try:
            for _ in range(20):
                s = socket.create_connection((t.LOCALHOST, self.port), timeout=5)
                socks.append(s)
                s.sendall(b"GET /slow HTTP/1.1\r\nHo")
            for i in range(10):
                self.assertEqual(t.request(self.port, "GET", f"/fast/{i}", timeout=3).status, 200)
        finally:
            for s in socks:
                s.close()


if __name__ == "__main__":
    t.main()
