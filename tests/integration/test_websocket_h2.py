#!/usr/bin/env python3
"""WebSocket over HTTP/2 (RFC 8441 extended CONNECT) and CONNECT over HTTP/2, through the real binary.

Frame level with python3-h2: the client checks that Portico's SETTINGS carry ENABLE_CONNECT_PROTOCOL=1,
opens a stream with `:method CONNECT`, `:protocol websocket`, and then speaks WebSocket frames it encodes
by hand (masked, as a client must) in DATA frames. The upstream is a real python3-websockets echo server
reached over HTTP/1.1 (Portico translates the handshake, with a key of its own whose accept it checks).
Covered: echo both ways (text, binary, 1 MiB: more than the stream and connection windows, so flow
control moves both ways), a client that holds its stream window stalls that tunnel only (the connection
serves other streams), close from the client and from the server, half-close carried to the upstream,
over h2c (prior knowledge) and over TLS (ALPN h2), a tunnel kept after the drain's GOAWAY until the
drain deadline; refusals that never tunnel: a route without upgrades
(403), an unknown :protocol (501), a bad Sec-WebSocket-Version (426), malformed extended CONNECTs
(RST_STREAM PROTOCOL_ERROR), an upstream 101 with a wrong accept (502); plain CONNECT to an allowed
upstream and refused elsewhere (403); the /stats counters by downstream protocol."""

import hashlib
import os
import shutil
import signal
import ssl
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from support import portico_testlib as t  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402

import h2.events  # noqa: E402
import h2.settings  # noqa: E402

from test_http2 import H2Client, make_cert  # noqa: E402
from test_websocket import TunnelUpstream, WsEchoServer  # noqa: E402

WS = {"upgrades": [{"websocket": {"enabled": True}}]}
PROTOCOL_ERROR = 0x1
OP_TEXT, OP_BINARY, OP_CLOSE = 0x1, 0x2, 0x8


def ws_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A client frame (RFC 6455 §5.2): masked."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def parse_frame(buf: bytes):
    """(opcode, payload, rest) of the first complete server (unmasked) frame in buf, or None."""
    if len(buf) < 2:
        return None
    opcode = buf[0] & 0x0F
    n = buf[1] & 0x7F
    at = 2
    if n == 126:
        if len(buf) < 4:
            return None
        n = struct.unpack("!H", buf[2:4])[0]
        at = 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n = struct.unpack("!Q", buf[2:10])[0]
        at = 10
    if buf[1] & 0x80:
        raise AssertionError("a server frame must not be masked")
    if len(buf) < at + n:
        return None
    return opcode, buf[at:at + n], buf[at + n:]


def stats_of(p):
    return t.parse_prometheus(p.admin_get("/stats").text())


def responses(samples, status_class: str, route_part: str = "") -> float:
    """portico_requests_total of a status class, over the routes whose label contains route_part."""
    return sum(v for n, labels, v in samples if n == "portico_requests_total"
               and labels.get("status_class") == status_class and route_part in labels.get("route", ""))


class H2WebSocket:
    """One extended CONNECT stream on an H2Client, with WebSocket framing by hand."""

    def __init__(self, client: H2Client, path: str, authority: str = "ws.test", scheme: str = "http",
                 protocol: str = "websocket", extra=None, version: str | None = "13"):
        self.c = client
        settings = client.wait_for(lambda e: isinstance(e, h2.events.RemoteSettingsChanged))
        assert settings is not None, "no SETTINGS from Portico"
        self.connect_protocol = client.conn.remote_settings.enable_connect_protocol
        self.sid = client.conn.get_next_available_stream_id()
        hs = [(":method", "CONNECT"), (":protocol", protocol), (":scheme", scheme), (":path", path),
              (":authority", authority)]
        if version is not None:
            hs.append(("sec-websocket-version", version))
        hs += list(extra or [])
        client.conn.send_headers(self.sid, hs, end_stream=False)
        client.flush()
        self.buf = b""
        self.seen = 0  # events consumed

    def response(self, timeout=10.0):
        """(:status, headers) of the response head, or raises on a reset."""
        e = self.c.wait_for(lambda e: getattr(e, "stream_id", None) == self.sid and isinstance(
            e, (h2.events.ResponseReceived, h2.events.StreamReset)), timeout)
        if e is None:
            raise AssertionError(f"no response on stream {self.sid}: {self.c.events[-10:]}")
        if isinstance(e, h2.events.StreamReset):
            raise AssertionError(f"stream {self.sid} reset with {e.error_code}")
        headers = dict(e.headers)
        return int(headers[":status"]), headers

    def send_bytes(self, data: bytes, end_stream: bool = False):
        """Sends within the flow-control windows, reading (and acknowledging) while they are shut."""
        deadline = time.monotonic() + 20
        while data:
            window = min(self.c.conn.local_flow_control_window(self.sid),
                         self.c.conn.max_outbound_frame_size)
            if window <= 0:
                assert time.monotonic() < deadline, "the send window never reopened"
                self.c.pump(0.2)
                continue
            piece, data = data[:window], data[window:]
            self.c.conn.send_data(self.sid, piece)
            self.c.flush()
        if end_stream:
            self.c.conn.end_stream(self.sid)
            self.c.flush()

    def send(self, opcode: int, payload: bytes):
        self.send_bytes(ws_frame(opcode, payload))

    def _drain(self):
        evs = self.c.events
        while self.seen < len(evs):
            e = evs[self.seen]
            self.seen += 1
            if isinstance(e, h2.events.DataReceived) and e.stream_id == self.sid:
                self.buf += e.data

    def ended(self) -> bool:
        return any(isinstance(e, h2.events.StreamEnded) and e.stream_id == self.sid for e in self.c.events)

    def reset_code(self):
        for e in self.c.events:
            if isinstance(e, h2.events.StreamReset) and e.stream_id == self.sid:
                return e.error_code
        return None

    def recv(self, timeout=10.0):
        """The next WebSocket frame (opcode, payload)."""
        deadline = time.monotonic() + timeout
        while True:
            self._drain()
            f = parse_frame(self.buf)
            if f is not None:
                self.buf = f[2]
                return f[0], f[1]
            if self.ended() or self.reset_code() is not None:
                raise AssertionError(f"stream ended before a frame; {len(self.buf)} bytes left")
            if time.monotonic() > deadline:
                raise AssertionError("no WebSocket frame in time")
            if not self.c.pump(0.2):
                self._drain()
                if parse_frame(self.buf) is None:
                    raise AssertionError("connection closed")

    def recv_raw_until_end(self, timeout=10.0) -> bytes:
        deadline = time.monotonic() + timeout
        while not self.ended():
            assert self.reset_code() is None, f"reset {self.reset_code()}"
            assert time.monotonic() < deadline, "the stream did not end"
            if not self.c.pump(0.2):
                break
        self._drain()
        out, self.buf = self.buf, b""
        return out

    def wait_end(self, timeout=10.0) -> bool:
        deadline = time.monotonic() + timeout
        while not self.ended() and time.monotonic() < deadline:
            if self.reset_code() is not None or not self.c.pump(0.2):
                break
        return self.ended()


class WebSocketH2Test(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.echo = t.start_upstream(cls, "echo")
        cls.wsecho = WsEchoServer().start()
        cls.addClassCleanup(cls.wsecho.stop)
        cls.raw = TunnelUpstream().start()
        cls.addClassCleanup(cls.raw.stop)
        cls.liar = t.start_scripted(cls, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                         b"Connection: Upgrade\r\n"
                                         b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
        cls.certdir = tempfile.mkdtemp(prefix="portico-wsh2-")
        cls.addClassCleanup(shutil.rmtree, cls.certdir, True)
        cls.crt, cls.key = make_cert(cls.certdir)
        cls.port = t.free_port()
        cls.tls_port = t.free_port()
        cfg = t.new_config(cls)
        routes = [
            r("lib", [m(prefix="/ws")], to="wsecho", options=WS),
            r("raw", [m(prefix="/raw")], to="raw", options=WS),
            r("liar", [m(prefix="/liar")], to="liar", options=WS),
            r("plain-lib", [m(prefix="/plain-lib")], to="wsecho"),
            r("direct", [m(prefix="/direct")], direct=(200, "direct\n")),
        ]
        main_vs = t.virtual_service("ws", routes)
        proxy_vs = t.virtual_service("proxy", [
            r("tunnel", [m(prefix="/", methods=["CONNECT"])], to="echo",
              options={"upgrades": [{"connect": {"enabled": True}}]}),
            r("web", [m(prefix="/")], to="echo"),
        ], domains=["allowed.test:443"])
        tls_vs = t.virtual_service("ws-tls", [routes[0], routes[-1]], domains=["h2.test"])
        tls_vs["spec"]["sslConfig"] = {"secretRef": t.ref("tls")}
        for u in (t.upstream("echo", [(t.LOCALHOST, cls.echo.port)]),
                  t.upstream("wsecho", [(t.LOCALHOST, cls.wsecho.port)]),
                  t.upstream("raw", [(t.LOCALHOST, cls.raw.port)]),
                  t.upstream("liar", [(t.LOCALHOST, cls.liar.port)])):
            cfg.write_obj(f"upstream-{u['metadata']['name']}.yaml", u)
        cfg.write_obj("vs.yaml", main_vs, proxy_vs)
        cfg.write_obj("vs-tls.yaml", tls_vs)
        gw = t.gateway("gw", cls.port, ["ws", "proxy"])
        gw["spec"]["httpOptions"] = {"http2": {"cleartextPriorKnowledge": True}}
        cfg.write_obj("gateway.yaml", gw)
        tls_gw = t.gateway("gw-tls", cls.tls_port, ["ws-tls"])
        tls_gw["spec"]["ssl"] = True
        tls_gw["spec"]["sslConfig"] = {"secretRef": t.ref("tls")}
        cfg.write_obj("gateway-tls.yaml", tls_gw)
        cfg.write_obj("secret.yaml", t.resource("Secret", "tls", {
            "tls": {"certChainFile": cls.crt, "privateKeyFile": cls.key}}))
        cls.portico = t.start_portico(cls, cfg)
        t.wait_for_port(cls.port)
        t.wait_for_port(cls.tls_port)

    def client(self, tls: bool = False) -> H2Client:
        if tls:
            ctx = ssl.create_default_context(cafile=self.crt)
            ctx.set_alpn_protocols(["h2"])
            c = H2Client(self.tls_port, tls_context=ctx, server_name="h2.test")
            self.assertEqual(c.sock.selected_alpn_protocol(), "h2")
        else:
            c = H2Client(self.port)
        self.addCleanup(c.close)
        return c

    def opened(self, samples, downstream="http2", kind="websocket"):
        return t.metric_sum(samples, "portico_tunnels_opened_total", kind=kind, downstream=downstream)

    def echo_session(self, tls: bool):
        before = stats_of(self.portico)
        ws = H2WebSocket(self.client(tls), "/ws/chat", authority="h2.test" if tls else "ws.test",
                         scheme="https" if tls else "http")
        self.assertEqual(ws.connect_protocol, 1, "SETTINGS_ENABLE_CONNECT_PROTOCOL not advertised")
        status, headers = ws.response()
        self.assertEqual(status, 200)  # RFC 8441: 200 where HTTP/1.1 answers 101
        for name in ("sec-websocket-accept", "upgrade", "connection"):
            self.assertNotIn(name, headers)
        ws.send(OP_TEXT, b"hello over h2")
        self.assertEqual(ws.recv(), (OP_TEXT, b"hello over h2"))
        ws.send(OP_BINARY, b"\x00\x01binary\xff")
        self.assertEqual(ws.recv(), (OP_BINARY, b"\x00\x01binary\xff"))
        # 1 MiB: more than the stream window (64 KiB) and the connection window (1 MiB) with framing,
        # so both directions wait for WINDOW_UPDATEs.
        big = os.urandom(1 << 20)
        ws.send(OP_BINARY, big)
        op, got = ws.recv(20)
        self.assertEqual(op, OP_BINARY)
        self.assertEqual(hashlib.sha256(got).hexdigest(), hashlib.sha256(big).hexdigest())
        for i in range(10):
            ws.send(OP_TEXT, f"m{i}".encode())
        for i in range(10):
            self.assertEqual(ws.recv(), (OP_TEXT, f"m{i}".encode()))
        active = t.metric_sum(stats_of(self.portico), "portico_tunnels_active", kind="websocket",
                              downstream="http2")
        self.assertGreaterEqual(active, 1)
        # The client closes: the server answers the close, then ends its connection, which Portico
        # carries as END_STREAM; the client ends its direction too.
        closes = len(self.wsecho.closed_codes)
        ws.send(OP_CLOSE, struct.pack("!H", 1000) + b"done")
        op, payload = ws.recv()
        self.assertEqual(op, OP_CLOSE)
        self.assertEqual(struct.unpack("!H", payload[:2])[0], 1000)
        self.assertTrue(ws.wait_end(), "no END_STREAM after the server closed")
        self.assertIsNone(ws.reset_code())
        ws.c.conn.end_stream(ws.sid)
        ws.c.flush()
        t.wait_until(lambda: len(self.wsecho.closed_codes) > closes, 5, message="server saw the close")
        self.assertEqual(self.wsecho.closed_codes[-1], 1000)
        after = t.wait_until(
            lambda: (lambda s: s if t.metric_sum(s, "portico_tunnels_active", kind="websocket",
                                                 downstream="http2") == 0 else None)(stats_of(self.portico)),
            5, message="tunnel gone from the gauge")
        self.assertEqual(self.opened(after) - self.opened(before), 1)
        self.assertEqual(self.opened(after, "http1") - self.opened(before, "http1"), 0)
        # Counted as the client saw it: 200, not the upstream's 101.
        self.assertEqual(responses(after, "1xx") - responses(before, "1xx"), 0)
        self.assertGreaterEqual(responses(after, "2xx") - responses(before, "2xx"), 1)
        up = (t.metric_sum(after, "portico_tunnel_bytes_total", kind="websocket", direction="upstream")
              - t.metric_sum(before, "portico_tunnel_bytes_total", kind="websocket", direction="upstream"))
        self.assertGreater(up, 1 << 20)
        # The same connection still serves ordinary requests.
        sid = ws.c.request("/direct", authority="h2.test" if tls else "ws.test")
        self.assertEqual(ws.c.response(sid)[0], 200)

    def test_echo_and_client_close_h2c(self):
        self.echo_session(tls=False)

    def test_echo_and_client_close_over_tls(self):
        self.echo_session(tls=True)

    def test_a_slow_reader_stalls_its_tunnel_not_the_connection(self):
        c = self.client()
        ws = H2WebSocket(c, "/ws/slow")
        self.assertEqual(ws.response()[0], 200)
        # The client stops opening this stream's window: the echo of 1 MiB stops at the window
        # (python3-h2's initial 65,535 bytes), however long we wait.
        c.hold.add(ws.sid)
        big = os.urandom(1 << 20)
        ws.send(OP_BINARY, big)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # until the echo starts (a busy machine is slow)...
            c.pump(0.2)
            ws._drain()
            if ws.buf:
                break
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # ... and a while longer: nothing beyond the window
            c.pump(0.2)
        ws._drain()
        held = len(ws.buf)
        self.assertGreater(held, 0)
        self.assertLessEqual(held, 65535)
        # Meanwhile the connection serves other streams.
        self.assertEqual(c.response(c.request("/direct/while-stalled", authority="ws.test"))[0], 200)
        # The window opens again: the rest arrives, intact.
        c.hold.discard(ws.sid)
        c.conn.increment_flow_control_window(held, stream_id=ws.sid)
        c.flush()
        op, got = ws.recv(20)
        self.assertEqual(op, OP_BINARY)
        self.assertEqual(hashlib.sha256(got).hexdigest(), hashlib.sha256(big).hexdigest())

    def test_server_initiated_close(self):
        ws = H2WebSocket(self.client(), "/ws/x")
        self.assertEqual(ws.response()[0], 200)
        ws.send(OP_TEXT, b"close-me")
        op, payload = ws.recv()
        self.assertEqual(op, OP_CLOSE)
        self.assertEqual(struct.unpack("!H", payload[:2])[0], 4000)
        self.assertEqual(payload[2:], b"server says bye")
        ws.send(OP_CLOSE, payload[:2])  # the client's answer to the close
        self.assertTrue(ws.wait_end(), "no END_STREAM after the server closed")
        self.assertIsNone(ws.reset_code())

    def test_upstream_leg_is_an_http11_handshake_and_half_close_is_carried(self):
        n = len(self.raw.seen)
        ws = H2WebSocket(self.client(), "/raw/tunnel?x=1",
                         extra=[("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                ("sec-websocket-protocol", "chat")])
        status, headers = ws.response()
        self.assertEqual(status, 200)
        self.assertNotIn("sec-websocket-accept", headers)
        t.wait_until(lambda: len(self.raw.seen) > n, 5, message="upstream saw the handshake")
        _, method, path, seen = self.raw.seen[-1]
        self.assertEqual((method, path), ("GET", "/raw/tunnel?x=1"))
        self.assertEqual(seen.get("upgrade"), "websocket")
        self.assertEqual(seen.get("connection", "").lower(), "upgrade")
        self.assertEqual(seen.get("sec-websocket-version"), "13")
        self.assertEqual(seen.get("sec-websocket-protocol"), "chat")
        # Portico's own key, never the client's (HTTP/2 does not use it).
        key = seen.get("sec-websocket-key", "")
        self.assertEqual(len(key), 24)
        self.assertNotEqual(key, "dGhlIHNhbXBsZSBub25jZQ==")
        # Raw bytes both ways, then the client's END_STREAM reaches the upstream as EOF: it answers
        # "bye" and closes, which comes back as DATA then END_STREAM.
        ws.send_bytes(b"raw bytes|")
        ws.send_bytes(b"more", end_stream=True)
        self.assertEqual(ws.recv_raw_until_end(), b"raw bytes|morebye")
        self.assertIsNone(ws.reset_code())

    def test_route_without_upgrades_refuses(self):
        before = stats_of(self.portico)
        handshakes = self.wsecho.handshakes
        for path in ("/plain-lib/x", "/direct/x"):
            with self.subTest(path=path):
                ws = H2WebSocket(self.client(), path)
                status, _ = ws.response()
                self.assertEqual(status, 403)
        time.sleep(0.2)
        self.assertEqual(self.wsecho.handshakes, handshakes, "a refused handshake reached the upstream")
        after = stats_of(self.portico)
        self.assertEqual(t.metric_sum(after, "portico_upgrades_refused_total", reason="websocket_disabled")
                         - t.metric_sum(before, "portico_upgrades_refused_total",
                                        reason="websocket_disabled"), 2)
        self.assertEqual(self.opened(after) - self.opened(before), 0)

    def test_unknown_protocol_and_bad_version_refused(self):
        before = stats_of(self.portico)
        handshakes = self.wsecho.handshakes
        ws = H2WebSocket(self.client(), "/ws/x", protocol="connect-udp")
        self.assertEqual(ws.response()[0], 501)
        ws = H2WebSocket(self.client(), "/ws/x", version="8")
        status, headers = ws.response()
        self.assertEqual(status, 426)
        self.assertEqual(headers.get("sec-websocket-version"), "13")
        ws = H2WebSocket(self.client(), "/ws/x", version=None)
        self.assertEqual(ws.response()[0], 426)
        time.sleep(0.2)
        self.assertEqual(self.wsecho.handshakes, handshakes)
        after = stats_of(self.portico)
        for reason, want in (("unknown_protocol", 1), ("bad_version", 2)):
            self.assertEqual(t.metric_sum(after, "portico_upgrades_refused_total", reason=reason)
                             - t.metric_sum(before, "portico_upgrades_refused_total", reason=reason),
                             want, reason)

    def test_malformed_extended_connect_is_reset(self):
        handshakes = self.wsecho.handshakes
        full = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                (":path", "/ws/x"), (":authority", "ws.test"), ("sec-websocket-version", "13")]
        cases = {
            "no :path": [h for h in full if h[0] != ":path"],
            "no :scheme": [h for h in full if h[0] != ":scheme"],
            "no :authority": [h for h in full if h[0] != ":authority"] + [("host", "ws.test")],
            ":protocol with GET": [(":method", "GET")] + full[1:],
            "two :protocol": full[:2] + [(":protocol", "websocket")] + full[2:],
            "content-length": full + [("content-length", "0")],
            "plain CONNECT with :path": [(":method", "CONNECT"), (":authority", "allowed.test:443"),
                                         (":path", "/")],
        }
        for name, headers in cases.items():
            with self.subTest(case=name):
                c = self.client()
                c.wait_for(lambda e: isinstance(e, h2.events.RemoteSettingsChanged))
                sid = c.conn.get_next_available_stream_id()
                c.conn.send_headers(sid, headers, end_stream=False)
                c.flush()
                self.assertEqual(c.reset_of(sid), PROTOCOL_ERROR)
                # The connection lives on.
                self.assertEqual(c.response(c.request("/direct", authority="ws.test"))[0], 200)
        self.assertEqual(self.wsecho.handshakes, handshakes)

    def test_upstream_101_with_a_wrong_accept_is_502(self):
        before = stats_of(self.portico)
        ws = H2WebSocket(self.client(), "/liar/x")
        status, _ = ws.response()
        self.assertEqual(status, 502)
        after = t.wait_until(lambda: (lambda s: s if responses(s, "5xx", "liar") > responses(before, "5xx", "liar")
                                      else None)(stats_of(self.portico)), 5, message="502 counted")
        self.assertEqual(responses(after, "1xx", "liar"), responses(before, "1xx", "liar"))
        self.assertEqual(self.opened(after) - self.opened(before), 0)
        self.assertEqual(len(self.liar.received), 1)
        self.assertIn(b"sec-websocket-key:", self.liar.received[0].lower())

    def test_plain_connect_to_an_allowed_destination(self):
        before = stats_of(self.portico)
        c = self.client()
        c.wait_for(lambda e: isinstance(e, h2.events.RemoteSettingsChanged))
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "CONNECT"), (":authority", "allowed.test:443")],
                            end_stream=False)
        c.flush()
        e = c.wait_for(lambda e: getattr(e, "stream_id", None) == sid and isinstance(
            e, (h2.events.ResponseReceived, h2.events.StreamReset)))
        self.assertIsInstance(e, h2.events.ResponseReceived)
        self.assertEqual(dict(e.headers)[":status"], "200")
        n = len(self.echo.requests())
        c.conn.send_data(sid, b"GET /through/the/tunnel HTTP/1.1\r\nHost: allowed.test\r\n"
                              b"Connection: close\r\n\r\n", end_stream=True)
        c.flush()
        e = c.wait_for(lambda e: isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset))
                       and e.stream_id == sid)
        self.assertIsInstance(e, h2.events.StreamEnded)
        body = b"".join(x.data for x in c.events if isinstance(x, h2.events.DataReceived) and x.stream_id == sid)
        self.assertTrue(body.startswith(b"HTTP/1.1 200"), body[:100])
        self.assertIn(b"/through/the/tunnel", body)
        reqs = self.echo.wait_for_requests(n + 1)
        self.assertEqual(reqs[-1]["method"], "GET")
        after = t.wait_until(
            lambda: (lambda s: s if t.metric_sum(s, "portico_tunnels_active", kind="connect") == 0
                     else None)(stats_of(self.portico)), 5, message="connect tunnel closed")
        self.assertEqual(self.opened(after, kind="connect") - self.opened(before, kind="connect"), 1)

    def test_plain_connect_elsewhere_is_refused(self):
        n = len(self.echo.requests())
        c = self.client()
        for authority in ("denied.test:443", "allowed.test:80"):
            with self.subTest(authority=authority):
                sid = c.conn.get_next_available_stream_id()
                c.conn.send_headers(sid, [(":method", "CONNECT"), (":authority", authority)],
                                    end_stream=False)
                c.flush()
                e = c.wait_for(lambda e: getattr(e, "stream_id", None) == sid and isinstance(
                    e, (h2.events.ResponseReceived, h2.events.StreamReset)))
                self.assertIsInstance(e, h2.events.ResponseReceived)
                # "denied.test" matches the catch-all host, whose routes do not enable connect.
                self.assertEqual(dict(e.headers)[":status"], "403")
        time.sleep(0.2)
        self.assertEqual(len(self.echo.requests()), n)


class WebSocketH2DrainTest(t.IntegrationTest):
    def test_tunnel_lives_after_goaway_until_the_drain_deadline(self):
        wsecho = WsEchoServer().start()
        self.addCleanup(wsecho.stop)
        port = t.free_port()
        cfg = self.new_config()
        gw = t.gateway("gw", port, ["ws"])
        gw["spec"]["httpOptions"] = {"drainTimeout": "2s", "http2": {"cleartextPriorKnowledge": True}}
        cfg.write_obj("upstream.yaml", t.upstream("wsecho", [(t.LOCALHOST, wsecho.port)]))
        cfg.write_obj("vs.yaml", t.virtual_service("ws", [r("lib", [m(prefix="/")], to="wsecho", options=WS)]))
        cfg.write_obj("gateway.yaml", gw)
        p = self.start_portico(cfg)
        c = H2Client(port)
        self.addCleanup(c.close)
        ws = H2WebSocket(c, "/x")
        self.assertEqual(ws.response()[0], 200)
        ws.send(OP_TEXT, b"before")
        self.assertEqual(ws.recv(), (OP_TEXT, b"before"))
        p.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        goaway = c.goaway()
        self.assertIsNotNone(goaway, "no GOAWAY on drain")
        self.assertEqual(goaway.error_code, 0)
        # Draining: the tunnel (opened before the GOAWAY) still carries messages.
        ws.send(OP_TEXT, b"during")
        self.assertEqual(ws.recv(), (OP_TEXT, b"during"))
        # At the drain deadline it is closed (the stream reset or the connection closed).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not c.closed and ws.reset_code() is None and not ws.ended():
            c.pump(0.2)
        took = time.monotonic() - signalled
        self.assertGreater(took, 1.5)
        self.assertLess(took, 6.0)
        self.assertEqual(p.wait(10), 0)


if __name__ == "__main__":
    t.main()
