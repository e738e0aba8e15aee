#!/usr/bin/env python3
"""Tunnels through the real binary: WebSocket upgrades (RFC 6455 over HTTP/1.1, ws:// and wss://) and CONNECT.

A python3-websockets echo server behind Portico and a python3-websockets client through it: text, binary
and 1 MiB messages both ways, close handshakes from either side. A route without `upgrades` does not
tunnel (the upgrade is served as a plain request); malformed handshakes are refused (400/426) and never
reach the upstream; the idle timeout closes an idle tunnel; half-close is carried both ways; an upstream
that declines the upgrade is relayed; the tunnel's upstream connection is never pooled (a raw upstream
counts its connections); the /stats counters move; CONNECT through curl reaches an allowed upstream and
is refused (403) elsewhere; on SIGTERM a tunnel lives until the drain deadline, then is closed."""

import asyncio
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

import websockets

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
VALID_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's example nonce (16 bytes)
WS = {"upgrades": [{"websocket": {"enabled": True}}]}


def ws_accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def upgrade_request(path: str, *, key: str | None = VALID_KEY, version: str | None = "13",
                    method: str = "GET", host: str = "ws.test", extra: str = "") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: Upgrade", "Upgrade: websocket"]
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def read_head(sock: socket.socket, buf: bytearray) -> tuple[int, dict]:
    """Reads a response head (consumed from buf): (status, {lower-case name: value})."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise EOFError(f"connection closed before a response head: {bytes(buf)!r}")
        buf += data
    end = buf.index(b"\r\n\r\n") + 4
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    del buf[:end]
    headers = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    return int(lines[0].split(" ")[1]), headers


def recv_until_eof(sock: socket.socket, buf: bytearray, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    while True:
        data = sock.recv(65536)
        if not data:
            return bytes(buf)
        buf += data


class WsEchoServer:
    """A python3-websockets echo server on 127.0.0.1:<free port>, in a thread with its own event loop.
    "close-me" makes the server close with code 4000. Counts handshakes it saw and sessions."""

    def __init__(self):
        self.port = 0
        self.handshakes = 0
        self.sessions = 0
        self.closed_codes: list[int] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="ws-echo")

    def start(self) -> "WsEchoServer":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("websocket echo server did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=5)

    def _run(self):
        asyncio.set_event_loop(self._loop)

        async def process_request(path, headers):
            self.handshakes += 1
            return None

        async def handler(ws, path=None):
            self.sessions += 1
            try:
                async for msg in ws:
                    if msg == "close-me":
                        await ws.close(code=4000, reason="server says bye")
                        break
                    await ws.send(msg)
            except websockets.ConnectionClosed:
                pass
            self.closed_codes.append(ws.close_code)

        async def main():
            self._stop = asyncio.Event()
            server = await websockets.serve(handler, t.LOCALHOST, 0, ping_interval=None,
                                            max_size=4 * 2**20, process_request=process_request)
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()
            server.close()
            await server.wait_closed()

        self._loop.run_until_complete(main())
        self._loop.close()


class TunnelUpstream:
    """A raw HTTP/1.1 upstream that counts its connections. Keep-alive requests are answered 200 with the
    body "conn=<n>"; an upgrade request (Upgrade: websocket) is answered 101 with the right
    Sec-WebSocket-Accept, after which every byte is echoed, and the end of the proxy's direction (EOF) is
    answered "bye" and a close. An upgrade on a path containing /decline is answered 200 like a plain request. Records
    (connection, method, path, headers) for every request."""

    def __init__(self):
        self.connections = 0
        self.seen: list[tuple[int, str, str, dict]] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((t.LOCALHOST, 0))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> "TunnelUpstream":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()
        with self._lock:
            for c in self._conns:
                try:
                    c.close()
                except OSError:
                    pass

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                cid = self.connections
                self._conns.append(conn)
            threading.Thread(target=self._conn, args=(conn, cid), daemon=True).start()

    def _conn(self, conn: socket.socket, cid: int):
        conn.settimeout(30)
        buf = bytearray()
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                end = buf.index(b"\r\n\r\n") + 4
                lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
                del buf[:end]
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if line:
                        k, _, v = line.partition(":")
                        headers[k.strip().lower()] = v.strip()
                with self._lock:
                    self.seen.append((cid, method, path, headers))
                if headers.get("upgrade", "").lower() == "websocket" and "/decline" not in path:
                    key = headers.get("sec-websocket-key", "")
                    conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                  "Connection: Upgrade\r\n"
                                  f"Sec-WebSocket-Accept: {ws_accept(key)}\r\n\r\n").encode() + bytes(buf))
                    buf.clear()
                    while True:
                        data = conn.recv(65536)
                        if not data:
                            conn.sendall(b"bye")
                            return
                        conn.sendall(data)
                body = f"conn={cid}".encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        except OSError:
            return
        finally:
            try:
                conn.close()
            except OSError:
                pass


def stats_of(p: t.Portico):
    return t.parse_prometheus(p.admin_get("/stats").text())


def refused(samples, reason: str) -> float:
    return t.metric_sum(samples, "portico_upgrades_refused_total", reason=reason)


class WebSocketTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.echo = t.start_upstream(cls, "echo")
        cls.wsecho = WsEchoServer().start()
        cls.addClassCleanup(cls.wsecho.stop)
        cls.raw = TunnelUpstream().start()
        cls.addClassCleanup(cls.raw.stop)
        cls.port = t.free_port()
        cfg = t.new_config(cls)
        main_vs = t.virtual_service("ws", [
            r("lib", [m(prefix="/lib")], to="wsecho", options=WS),
            r("idle", [m(prefix="/idle")], to="wsecho",
              options={**WS, "idleTimeout": "1s"}),
            r("raw", [m(prefix="/raw")], to="raw", options=WS),
            r("plain-lib", [m(prefix="/plain-lib")], to="wsecho"),
            r("plain", [m(prefix="/plain")], to="echo"),
            r("strict", [m(prefix="/strict")], to="echo", options=WS),
        ])
        proxy_vs = t.virtual_service("proxy", [
            r("tunnel", [m(prefix="/", methods=["CONNECT"])], to="echo",
              options={"upgrades": [{"connect": {"enabled": True}}]}),
            r("web", [m(prefix="/")], to="echo"),
        ], domains=["allowed.test"])
        denied_vs = t.virtual_service("denied", [r("web", [m(prefix="/")], to="echo")],
                                      domains=["denied.test"])
        cfg.write_stack(cls.port, [main_vs, proxy_vs, denied_vs], [
            t.upstream("echo", [(t.LOCALHOST, cls.echo.port)]),
            t.upstream("wsecho", [(t.LOCALHOST, cls.wsecho.port)]),
            t.upstream("raw", [(t.LOCALHOST, cls.raw.port)]),
        ])
        cls.portico = t.start_portico(cls, cfg)

    def uri(self, path: str) -> str:
        return f"ws://{t.LOCALHOST}:{self.port}{path}"

    def connect(self, path: str):
        # No compression: the byte counters below measure what the messages weigh.
        return websockets.connect(self.uri(path), ping_interval=None, max_size=4 * 2**20,
                                  open_timeout=5, close_timeout=5, compression=None)

    # ------------------------------------------------------------------------------------------

    def test_echo_text_binary_large_and_close(self):
        before = stats_of(self.portico)
        big = os.urandom(1 << 20)

        async def session():
            async with self.connect("/lib/chat") as ws:
                await ws.send("hello, tunnel")
                self.assertEqual(await asyncio.wait_for(ws.recv(), 5), "hello, tunnel")
                await ws.send(b"\x00\x01binary\xff")
                self.assertEqual(await asyncio.wait_for(ws.recv(), 5), b"\x00\x01binary\xff")
                await ws.send(big)
                got = await asyncio.wait_for(ws.recv(), 10)
                self.assertEqual(hashlib.sha256(got).hexdigest(), hashlib.sha256(big).hexdigest())
                for i in range(20):  # many small messages both ways
                    await ws.send(f"m{i}")
                for i in range(20):
                    self.assertEqual(await asyncio.wait_for(ws.recv(), 5), f"m{i}")
            return ws.close_code

        self.assertEqual(asyncio.run(session()), 1000)  # the client's close handshake completed
        t.wait_until(lambda: 1000 in self.wsecho.closed_codes, 5, message="server saw the close")
        after = t.wait_until(
            lambda: (lambda s: s if t.metric_sum(s, "portico_tunnels_active", kind="websocket") == 0
                     else None)(stats_of(self.portico)), 5, message="tunnel gone from the gauge")
        opened = (t.metric_sum(after, "portico_tunnels_opened_total", kind="websocket")
                  - t.metric_sum(before, "portico_tunnels_opened_total", kind="websocket"))
        self.assertEqual(opened, 1)
        up = (t.metric_sum(after, "portico_tunnel_bytes_total", kind="websocket", direction="upstream")
              - t.metric_sum(before, "portico_tunnel_bytes_total", kind="websocket", direction="upstream"))
        down = (t.metric_sum(after, "portico_tunnel_bytes_total", kind="websocket", direction="downstream")
                - t.metric_sum(before, "portico_tunnel_bytes_total", kind="websocket",
                               direction="downstream"))
        self.assertGreater(up, 1 << 20)
        self.assertGreater(down, 1 << 20)

    def test_server_initiated_close(self):
        async def session():
            async with self.connect("/lib/x") as ws:
                await ws.send("close-me")
                with self.assertRaises(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                return ws.close_code, ws.close_reason

        code, reason = asyncio.run(session())
        self.assertEqual(code, 4000)
        self.assertEqual(reason, "server says bye")

    def test_gauge_counts_an_open_tunnel(self):
        async def session():
            async with self.connect("/lib/gauge") as ws:
                await ws.send("x")
                await asyncio.wait_for(ws.recv(), 5)
                return t.metric_sum(stats_of(self.portico), "portico_tunnels_active", kind="websocket")

        self.assertGreaterEqual(asyncio.run(session()), 1)

    def test_route_without_upgrades_does_not_tunnel(self):
        before = refused(stats_of(self.portico), "websocket_disabled")
        handshakes = self.wsecho.handshakes

        async def attempt():
            async with self.connect("/plain-lib/x"):
                pass

        # The websockets server sees a request without Upgrade: it refuses the handshake itself.
        with self.assertRaises(websockets.InvalidStatusCode):
            asyncio.run(attempt())
        # A raw upgrade to a plain route: served as a plain request, without the upgrade fields.
        n = len(self.echo.requests())
        with socket.create_connection((t.LOCALHOST, self.port), timeout=5) as s:
            s.sendall(upgrade_request("/plain/thing"))
            buf = bytearray()
            status, headers = read_head(s, buf)
        self.assertEqual(status, 200)
        self.assertNotIn("upgrade", headers)
        reqs = self.echo.wait_for_requests(n + 1)
        seen = {k.lower(): v for k, v in reqs[-1]["headers"]}
        self.assertNotIn("upgrade", seen)
        self.assertNotIn("connection", seen)
        self.assertGreaterEqual(refused(stats_of(self.portico), "websocket_disabled") - before, 2)
        self.assertGreater(self.wsecho.handshakes, handshakes)

    def test_malformed_handshakes_are_refused_and_never_reach_the_upstream(self):
        before = stats_of(self.portico)
        n = len(self.echo.requests())
        cases = [
            (upgrade_request("/strict/a", version="12"), 426, "bad_version"),
            (upgrade_request("/strict/a", version=None), 426, "bad_version"),
            (upgrade_request("/strict/a", key=None), 400, "bad_key"),
            (upgrade_request("/strict/a", key="not-a-nonce"), 400, "bad_key"),
            (upgrade_request("/strict/a", key="dGhlIHNhbXBsZSBub25jZQ"), 400, "bad_key"),
            (upgrade_request("/strict/a", extra=f"Sec-WebSocket-Key: {VALID_KEY}\r\n"), 400, "bad_key"),
            (upgrade_request("/strict/a", method="POST"), 400, "bad_request"),
            (upgrade_request("/strict/a", extra="Content-Length: 5\r\n") + b"hello", 400, "bad_request"),
        ]
        for raw, want, _ in cases:
            with self.subTest(raw=raw[:60]):
                with socket.create_connection((t.LOCALHOST, self.port), timeout=5) as s:
                    s.sendall(raw)
                    buf = bytearray()
                    status, headers = read_head(s, buf)
                    self.assertEqual(status, want)
                    if want == 426:
                        self.assertEqual(headers.get("sec-websocket-version"), "13")
                    self.assertEqual(headers.get("connection"), "close")
                    self.assertNotIn("upgrade", headers)
        time.sleep(0.2)
        self.assertEqual(len(self.echo.requests()), n, "a refused handshake reached the upstream")
        after = stats_of(self.portico)
        for reason in ("bad_version", "bad_key", "bad_request"):
            want = sum(1 for c in cases if c[2] == reason)
            self.assertEqual(refused(after, reason) - refused(before, reason), want, reason)
        # A valid handshake on the same route does reach the upstream, which (a plain HTTP server)
        # answers 200: relayed as an ordinary response, counted as declined.
        with socket.create_connection((t.LOCALHOST, self.port), timeout=5) as s:
            s.sendall(upgrade_request("/strict/ok"))
            status, _ = read_head(s, bytearray())
        self.assertEqual(status, 200)
        reqs = self.echo.wait_for_requests(n + 1)
        seen = {k.lower(): v for k, v in reqs[-1]["headers"]}
        self.assertEqual(seen.get("upgrade"), "websocket")
        self.assertEqual(seen.get("sec-websocket-key"), VALID_KEY)
        self.assertEqual(refused(stats_of(self.portico), "upstream_declined")
                         - refused(after, "upstream_declined"), 1)

    def test_idle_timeout_closes_an_idle_tunnel(self):
        async def session():
            async with self.connect("/idle/x") as ws:
                await ws.send("ping")
                self.assertEqual(await asyncio.wait_for(ws.recv(), 5), "ping")
                start = time.monotonic()
                with self.assertRaises(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 10)
                return time.monotonic() - start

        took = asyncio.run(session())
        self.assertGreater(took, 0.8)
        self.assertLess(took, 4.0)

    def test_half_close_and_no_pooling_after_a_tunnel(self):
        before = stats_of(self.portico)
        with socket.create_connection((t.LOCALHOST, self.port), timeout=5) as s:
            s.sendall(b"GET /raw/plain HTTP/1.1\r\nHost: ws.test\r\n\r\n")
            buf = bytearray()
            status, headers = read_head(s, buf)
            self.assertEqual(status, 200)
        first = self.raw.connections
        self.assertGreaterEqual(first, 1)
        with socket.create_connection((t.LOCALHOST, self.port), timeout=5) as s:
            # Bytes sent right behind the head reach the upstream after its 101.
            s.sendall(upgrade_request("/raw/tunnel") + b"early bytes|")
            buf = bytearray()
            status, headers = read_head(s, buf)
            self.assertEqual(status, 101)
            self.assertEqual(headers.get("upgrade"), "websocket")
            self.assertEqual(headers.get("connection", "").lower(), "upgrade")
            self.assertEqual(headers.get("sec-websocket-accept"), ws_accept(VALID_KEY))
            s.sendall(b"more bytes")
            while len(buf) < len(b"early bytes|more bytes"):
                buf += s.recv(65536)
            self.assertEqual(bytes(buf), b"early bytes|more bytes")
            # Half-close: the upstream sees the end of our direction and still answers.
            s.shutdown(socket.SHUT_WR)
            rest = recv_until_eof(s, bytearray())
            self.assertEqual(rest, b"bye")
        # The tunnel's connection was closed, not pooled: the next request opens a new one.
        t.wait_until(lambda: t.metric_sum(stats_of(self.portico), "portico_tunnels_active", kind="websocket")
                     == 0, 5, message="tunnel closed")
        r1 = t.request(self.port, "GET", "/raw/after", headers={"Host": "ws.test"})
        self.assertEqual(r1.status, 200)
        tunnel_conn = [c for c, _, p, _ in self.raw.seen if p == "/raw/tunnel"][0]
        after_conn = [c for c, _, p, _ in self.raw.seen if p == "/raw/after"][0]
        self.assertNotEqual(after_conn, tunnel_conn)
        self.assertEqual(r1.body, f"conn={after_conn}".encode())
        # No HTTP request ever arrived on the tunnel's connection after the upgrade (it may have been
        # a pooled one before: the upgrade request itself can use an idle keep-alive connection).
        self.assertEqual([p for c, _, p, _ in self.raw.seen if c == tunnel_conn][-1], "/raw/tunnel")
        after = stats_of(self.portico)
        self.assertEqual(t.metric_sum(after, "portico_tunnel_bytes_total", kind="websocket",
                                      direction="upstream")
                         - t.metric_sum(before, "portico_tunnel_bytes_total", kind="websocket",
                                        direction="upstream"), len(b"early bytes|more bytes"))
        self.assertEqual(t.metric_sum(after, "portico_tunnel_bytes_total", kind="websocket",
                                      direction="downstream")
                         - t.metric_sum(before, "portico_tunnel_bytes_total", kind="websocket",
                                        direction="downstream"), len(b"early bytes|more bytes") + 3)

    def test_upstream_declining_is_relayed(self):
        with socket.create_connection((t.LOCALHOST, self.port), timeout=5) as s:
            s.sendall(upgrade_request("/raw/decline"))
            buf = bytearray()
            status, headers = read_head(s, buf)
            self.assertEqual(status, 200)
            self.assertNotIn("upgrade", headers)
            while len(buf) < int(headers["content-length"]):
                buf += s.recv(65536)
            self.assertTrue(bytes(buf).startswith(b"conn="))

    # ---- CONNECT ---------------------------------------------------------------------------

    def test_connect_to_an_allowed_destination(self):
        before = stats_of(self.portico)
        n = len(self.echo.requests())
        res = t.curl("-sS", "-p", "-x", f"http://{t.LOCALHOST}:{self.port}", "--max-time", "10",
                     "http://allowed.test/through/the/tunnel")
        self.assertEqual(res.returncode, 0, res.stderr)
        echo = json.loads(res.stdout)
        self.assertEqual(echo["path"], "/through/the/tunnel")
        self.assertEqual(echo["server"], "echo")
        # The upstream saw curl's own request (through the tunnel), never the CONNECT.
        reqs = self.echo.wait_for_requests(n + 1)
        self.assertEqual([q["method"] for q in reqs[n:]], ["GET"])
        after = t.wait_until(
            lambda: (lambda s: s if t.metric_sum(s, "portico_tunnels_active", kind="connect") == 0
                     else None)(stats_of(self.portico)), 5, message="connect tunnel closed")
        self.assertEqual(t.metric_sum(after, "portico_tunnels_opened_total", kind="connect")
                         - t.metric_sum(before, "portico_tunnels_opened_total", kind="connect"), 1)
        self.assertGreater(t.metric_sum(after, "portico_tunnel_bytes_total", kind="connect",
                                        direction="downstream"), 0)

    def test_connect_elsewhere_is_refused(self):
        before = refused(stats_of(self.portico), "connect_refused")
        n = len(self.echo.requests())
        for target in ("http://denied.test/", "http://unknown.test/"):
            with self.subTest(target=target):
                res = t.curl("-sS", "-p", "-x", f"http://{t.LOCALHOST}:{self.port}", "--max-time", "10",
                             target)
                self.assertNotEqual(res.returncode, 0)
                self.assertIn("403", res.stderr)
        # A raw CONNECT to the allowed host's non-CONNECT route is refused as well.
        with socket.create_connection((t.LOCALHOST, self.port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
            status, _ = read_head(s, bytearray())
            self.assertEqual(status, 200)  # (the plain route works)
        time.sleep(0.2)
        self.assertEqual(len(self.echo.requests()), n + 1)
        self.assertEqual(refused(stats_of(self.portico), "connect_refused") - before, 2)


class WssTest(t.IntegrationTest):
    def test_websocket_over_tls(self):
        d = tempfile.mkdtemp(prefix="portico-wss-")
        self.addCleanup(shutil.rmtree, d, True)
        crt, key = os.path.join(d, "ws.crt"), os.path.join(d, "ws.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=ws.example.test",
                        "-addext", "subjectAltName=DNS:ws.example.test"],
                       check=True, capture_output=True, timeout=60)
        wsecho = WsEchoServer().start()
        self.addCleanup(wsecho.stop)
        port = t.free_port()
        cfg = self.new_config()
        secret = t.resource("Secret", "ws-tls", {"tls": {"certChainFile": crt, "privateKeyFile": key}})
        vs = t.virtual_service("ws", [r("lib", [m(prefix="/")], to="wsecho", options=WS)],
                               ["ws.example.test"])
        vs["spec"]["sslConfig"] = {"secretRef": t.ref("ws-tls")}
        gw = t.gateway("gw", port, ["ws"])
        gw["spec"]["ssl"] = True
        cfg.write_obj("secret.yaml", secret)
        cfg.write_obj("upstream.yaml", t.upstream("wsecho", [(t.LOCALHOST, wsecho.port)]))
        cfg.write_obj("vs.yaml", vs)
        cfg.write_obj("gateway.yaml", gw)
        self.start_portico(cfg)
        ctx = ssl.create_default_context(cafile=crt)
        big = os.urandom(1 << 20)

        async def session():
            async with websockets.connect(f"wss://ws.example.test:{port}/secure", host=t.LOCALHOST,
                                          port=port, ssl=ctx, server_hostname="ws.example.test",
                                          ping_interval=None, max_size=4 * 2**20,
                                          open_timeout=5, close_timeout=5, compression=None) as ws:
                await ws.send("over tls")
                self.assertEqual(await asyncio.wait_for(ws.recv(), 5), "over tls")
                await ws.send(big)
                self.assertEqual(await asyncio.wait_for(ws.recv(), 10), big)
                await ws.send("close-me")
                with self.assertRaises(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                return ws.close_code

        self.assertEqual(asyncio.run(session()), 4000)  # closed from the server's side, over TLS


class DrainTest(t.IntegrationTest):
    def test_tunnel_lives_until_the_drain_deadline(self):
        wsecho = WsEchoServer().start()
        self.addCleanup(wsecho.stop)
        port = t.free_port()
        cfg = self.new_config()
        vs = t.virtual_service("ws", [r("lib", [m(prefix="/")], to="wsecho", options=WS)])
        gw = t.gateway("gw", port, ["ws"])
        gw["spec"]["httpOptions"] = {"drainTimeout": "2s"}
        cfg.write_obj("upstream.yaml", t.upstream("wsecho", [(t.LOCALHOST, wsecho.port)]))
        cfg.write_obj("vs.yaml", vs)
        cfg.write_obj("gateway.yaml", gw)
        p = self.start_portico(cfg)

        async def session():
            async with websockets.connect(f"ws://{t.LOCALHOST}:{port}/x", ping_interval=None,
                                          open_timeout=5, close_timeout=2) as ws:
                await ws.send("before")
                self.assertEqual(await asyncio.wait_for(ws.recv(), 5), "before")
                p.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                await asyncio.sleep(0.5)
                # Draining: the tunnel still carries messages.
                await ws.send("during")
                self.assertEqual(await asyncio.wait_for(ws.recv(), 5), "during")
                with self.assertRaises(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 10)
                return time.monotonic() - signalled

        took = asyncio.run(session())
        self.assertGreater(took, 1.5)
        self.assertLess(took, 6.0)
        self.assertEqual(p.wait(10), 0)


if __name__ == "__main__":
    t.main()
