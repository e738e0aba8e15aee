#!/usr/bin/env python3
"""Data-plane core through the real binary: chunked trailers both ways (forwardable fields only, dropped on
a Content-Length response), local replies through the route's response header changes, cluster stat slots
gone from /stats once an Upstream is removed by reload, and the replay of an idempotent request's streamed
body when its pooled upstream connection turns out stale (a POST is never sent twice)."""

import hashlib
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402


def read_until(sock: socket.socket, buf: bytearray, marker: bytes) -> int:
    """Reads into buf until marker is in it; returns the index just past the marker, -1 on EOF."""
    while True:
        i = buf.find(marker)
        if i >= 0:
            return i + len(marker)
        data = sock.recv(65536)
        if not data:
            return -1
        buf += data


def read_exact(sock: socket.socket, buf: bytearray, n: int) -> bool:
    while len(buf) < n:
        data = sock.recv(65536)
        if not data:
            return False
        buf += data
    return True


def read_chunked(sock: socket.socket, buf: bytearray):
    """Decodes a chunked body at the start of buf (consumed). Returns (body, [(name, value)] trailers) or
    None on EOF."""
    body = b""
    while True:
        end = read_until(sock, buf, b"\r\n")
        if end < 0:
            return None
        size = int(bytes(buf[:end - 2]).split(b";")[0], 16)
        del buf[:end]
        if size == 0:
            break
        if not read_exact(sock, buf, size + 2):
            return None
        body += bytes(buf[:size])
        del buf[:size + 2]
    trailers = []
    while True:
        end = read_until(sock, buf, b"\r\n")
        if end < 0:
            return None
        line = bytes(buf[:end - 2])
        del buf[:end]
        if not line:
            return body, trailers
        name, _, value = line.partition(b":")
        trailers.append((name.decode(), value.strip().decode()))


class RawUpstream:
    """A raw HTTP/1.1 keep-alive upstream on 127.0.0.1:<free port> (python's http.server does not expose
    trailers). Every request is recorded as (method, path, body, trailers) in self.seen. Answers:
      /trailers  a chunked response "hello" with the trailers X-Checksum: <sha256 of the request body>,
                 X-Got: <the request's trailer names> and the forbidden Content-Type / Set-Cookie
      other      200 "<method> <path> <len> <sha256>" with Content-Length
    After a response, a connection idle for more than `idle_close` seconds is done: the next request
    that arrives on it is read (and recorded) but never answered, and the connection is closed, like
    a server whose keep-alive timer fired as the request arrived (a stale pooled connection)."""

    def __init__(self, idle_close: float | None = None):
        self.idle_close = idle_close
        self.seen: list[tuple] = []
        self.connections = 0
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

    def start(self) -> "RawUpstream":
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

    def requests(self, method: str | None = None) -> list[tuple]:
        with self._lock:
            return [s for s in self.seen if method is None or s[0] == method]

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
                self._conns.append(conn)
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, conn: socket.socket):
        conn.settimeout(10)
        buf = bytearray()
        answered_at = None
        try:
            while True:
                end = read_until(conn, buf, b"\r\n\r\n")
                if end < 0:
                    return
                stale = (self.idle_close is not None and answered_at is not None
                         and time.monotonic() - answered_at > self.idle_close)
                head = bytes(buf[:end]).decode("latin-1")
                del buf[:end]
                lines = head.split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if line:
                        k, _, v = line.partition(":")
                        headers[k.strip().lower()] = v.strip()
                trailers = []
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    got = read_chunked(conn, buf)
                    if got is None:
                        return
                    body, trailers = got
                else:
                    n = int(headers.get("content-length", "0"))
                    if not read_exact(conn, buf, n):
                        return
                    body = bytes(buf[:n])
                    del buf[:n]
                with self._lock:
                    self.seen.append((method, path, body, trailers, stale))
                if stale:
                    conn.close()
                    return
                sha = hashlib.sha256(body).hexdigest()
                if path.startswith("/trailers"):
                    names = ",".join(n for n, _ in trailers)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
                                 + f"X-Checksum: {sha}\r\nX-Got: {names}\r\n".encode()
                                 + b"Content-Type: evil/trailer\r\nSet-Cookie: evil=1\r\n\r\n")
                else:
                    payload = f"{method} {path} {len(body)} {sha}".encode()
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
                answered_at = time.monotonic()
        except OSError:
            return


def raw_request(port: int, parts: list[bytes], pause: float = 0.0, timeout: float = 10.0) -> bytes:
    """Sends parts (pausing between them; the request should say Connection: close), then reads until
    the server closes. Returns the raw response bytes."""
    with socket.create_connection((t.LOCALHOST, port), timeout=timeout) as s:
        for i, p in enumerate(parts):
            if i and pause:
                time.sleep(pause)
            s.sendall(p)
        out = b""
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            out += data
        return out


def split_head(raw: bytes) -> tuple[int, bytes, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.") else 0
    return status, head + b"\r\n", body


class StreamCoreTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.raw = RawUpstream().start()
        t._register_cleanup(cls, cls.raw.stop)
        cls.stale = RawUpstream(idle_close=0.2).start()
        t._register_cleanup(cls, cls.stale.stop)
        cls.echo = t.start_upstream(cls, "echo")
        cls.cfg = t.new_config(cls)
        cls.port = t.free_port()
        strip = {"headerManipulation": {
            "responseHeadersToAdd": [{"header": {"key": "X-Route", "value": "direct"}, "append": False}],
            "responseHeadersToRemove": ["Server"]}}
        routes = [
            r("direct", [m(prefix="/direct")], direct=(200, "hello"), options=strip),
            r("down", [m(prefix="/down")], to="down", options=strip),
            r("trailers", [m(prefix="/trailers")], to="raw"),
            r("stale", [m(prefix="/stale")], to="stale"),
            r("extra", [m(prefix="/extra")], to="extra"),
            r("echo", [m(prefix="/")], to="echo"),
        ]
        cls.ups = [
            t.upstream("raw", [(t.LOCALHOST, cls.raw.port)]),
            t.upstream("stale", [(t.LOCALHOST, cls.stale.port)]),
            t.upstream("echo", [(t.LOCALHOST, cls.echo.port)]),
            t.upstream("extra", [(t.LOCALHOST, cls.echo.port)]),
            t.upstream("down", [(t.LOCALHOST, t.free_port())]),
        ]
        cls.vs = t.virtual_service("vs", routes)
        cls.cfg.write_stack(cls.port, [cls.vs], cls.ups)
        gw = t.gateway("gw", cls.port, ["vs"])
        gw["spec"]["httpOptions"] = {"serverName": "portico"}
        cls.cfg.write_obj("gateway-gw.yaml", gw)
        # One worker: the pooled connection of one request is the one the next request finds.
        cls.portico = t.start_portico(cls, cls.cfg, workers=1)
        t.wait_until(lambda: t.request(cls.port, "GET", "/direct").status == 200, 10)

    # ---- trailers ----------------------------------------------------------------------------

    def test_request_and_response_trailers(self):
        body = b"hello world"
        req = (b"POST /trailers HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"%x\r\n%s\r\n0\r\nX-Checksum: abc\r\nContent-Length: 99\r\nAuthorization: x\r\n\r\n"
               % (len(body), body))
        raw = raw_request(self.port, [req])
        status, head, rest = split_head(raw)
        self.assertEqual(status, 200, raw)
        # The upstream got the forwardable request trailer only.
        seen = [s for s in self.raw.requests("POST") if s[1] == "/trailers"]
        self.assertEqual(len(seen), 1)
        self.assertEqual(seen[-1][2], body)
        self.assertEqual(seen[-1][3], [("X-Checksum", "abc")])
        # The client got the response trailers after the last chunk, never as headers; forbidden
        # fields dropped.
        self.assertIn(b"transfer-encoding: chunked", head.lower())
        sha = hashlib.sha256(body).hexdigest().encode()
        self.assertEqual(rest, b"5\r\nhello\r\n0\r\nX-Checksum: " + sha + b"\r\nX-Got: X-Checksum\r\n\r\n")
        self.assertNotIn(b"X-Checksum", head)
        self.assertNotIn(b"evil", raw)

    def test_response_trailers_with_curl(self):
        res = t.curl("-s", "-i", "--raw", f"http://{t.LOCALHOST}:{self.port}/trailers/curl")
        self.assertEqual(res.returncode, 0, res.stderr)
        out = res.stdout.replace("\r\n", "\n")  # text mode
        self.assertIn("\n0\nX-Checksum: ", out)
        self.assertNotIn("evil", out)

    def test_trailers_dropped_for_http10_client(self):
        raw = raw_request(self.port, [b"GET /trailers HTTP/1.0\r\nHost: a\r\n\r\n"])
        status, head, rest = split_head(raw)
        self.assertEqual(status, 200, raw)
        self.assertEqual(rest, b"hello")  # close-delimited: no chunk framing, no trailers
        self.assertNotIn(b"X-Checksum", raw)

    # ---- local replies -----------------------------------------------------------------------

    def test_local_replies_get_the_routes_response_header_changes(self):
        resp = t.request(self.port, "GET", "/direct")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.header("X-Route"), "direct")
        self.assertIsNone(resp.header("Server"))  # removed by the route, as on upstream responses
        down = t.request(self.port, "GET", "/down")
        self.assertEqual(down.status, 503)
        self.assertEqual(down.header("X-Route"), "direct")
        self.assertIsNone(down.header("Server"))
        # Without the route's changes the Gateway's Server header is there (an upstream response).
        self.assertIsNone(t.request(self.port, "GET", "/echo").header("X-Route"))

    # ---- replay on a stale pooled connection -------------------------------------------------

    def _warm_then_stale(self):
        warm = t.request(self.port, "GET", "/stale/warm")
        self.assertEqual(warm.status, 200)
        time.sleep(0.5)  # the upstream's keep-alive timer fires; the pooled connection is stale

    def test_streamed_put_is_replayed_on_a_fresh_connection(self):
        self._warm_then_stale()
        body = os.urandom(20000)
        head = (b"PUT /stale/put HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
                % len(body))
        retries = t.metric_sum(self.portico.stats(), "portico_upstream_retries_total", upstream="default/stale")
        raw = raw_request(self.port, [head + body[:1000], body[1000:]], pause=0.3)  # the body is streamed
        status, _, rest = split_head(raw)
        self.assertEqual(status, 200, raw[:300])
        sha = hashlib.sha256(body).hexdigest()
        self.assertEqual(rest.decode(), f"PUT /stale/put {len(body)} {sha}")
        puts = [s for s in self.stale.requests("PUT") if s[1] == "/stale/put"]
        self.assertEqual(len(puts), 2)  # the stale attempt, then the replay with the whole body
        self.assertTrue(puts[0][4])
        self.assertEqual(puts[1][2], body)
        self.assertEqual(t.metric_sum(self.portico.stats(), "portico_upstream_retries_total",
                                      upstream="default/stale"), retries + 1)

    def test_streamed_post_is_not_replayed(self):
        self._warm_then_stale()
        head = b"POST /stale/post HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 6\r\n\r\n"
        raw = raw_request(self.port, [head + b"abc", b"def"], pause=0.3)
        status, _, _ = split_head(raw)
        self.assertEqual(status, 502, raw[:300])
        time.sleep(0.2)
        posts = [s for s in self.stale.requests("POST") if s[1] == "/stale/post"]
        self.assertEqual(len(posts), 1)  # seen once, never sent again
        self.assertGreaterEqual(t.metric_sum(self.portico.stats(), "portico_upstream_retries_skipped_total",
                                             upstream="default/stale", reason="not_idempotent"), 1)

    # ---- cluster stat slots ------------------------------------------------------------------

    def test_removed_upstream_leaves_stats(self):
        self.assertEqual(t.request(self.port, "GET", "/extra/x").status, 200)
        has_extra = lambda: any(l.get("upstream") == "default/extra" for _, l, _ in self.portico.stats())  # noqa: E731
        self.assertTrue(has_extra())
        routes = [x for x in self.vs["spec"]["virtualHost"]["routes"] if x["name"] != "extra"]
        self.cfg.write_obj("vs-vs.yaml", t.virtual_service("vs", routes))
        self.cfg.remove("upstream-extra.yaml")
        t.wait_until(lambda: not has_extra(), 5, message="default/extra gone from /stats")
        self.assertTrue(any(l.get("upstream") == "default/echo" for _, l, _ in self.portico.stats()))
        # Put it back for the other tests.
        self.cfg.write_obj("upstream-extra.yaml", t.upstream("extra", [(t.LOCALHOST, self.echo.port)]))
        self.cfg.write_obj("vs-vs.yaml", self.vs)
        t.wait_until(lambda: t.request(self.port, "GET", "/extra/y").status == 200, 5)


if __name__ == "__main__":
    import unittest
    unittest.main()
