#!/usr/bin/env python3
"""The data plane core through the real binary with raw-socket clients and a small scripted upstream:
an upstream that answers before reading the body is relayed at once, a client that aborts mid-body
aborts the upstream request, a POST is never sent twice when its pooled connection dies, a GET is
retried on a fresh connection, a truncated close-delimited body stays visibly truncated, and a dot-
segment path is routed (and forwarded) as normalised."""

import http.client
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402


class Upstream:
    """HTTP/1.1 upstream on 127.0.0.1, keep-alive, behaviour by path prefix:
      /early  answers 401 right after the head, without reading the body (keeps reading after)
      /drop   reads the whole request, then closes without answering
      /trunc  answers a close-delimited body, then resets the connection
      other   200, body "<method> <target> <body length>"
    Records (method, target, body bytes received, complete) per request."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((t.LOCALHOST, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self.serve, daemon=True).start()

    def stop(self):
        self.stopped = True
        self.sock.close()

    def serve(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.conn, args=(c,), daemon=True).start()

    def conn(self, c):
        c.settimeout(10)
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                line = head.split(b"\r\n")[0].decode()
                method, target = line.split(" ")[:2]
                cl = 0
                for h in head.split(b"\r\n")[1:]:
                    k, _, v = h.partition(b":")
                    if k.strip().lower() == b"content-length":
                        cl = int(v)
                rec = {"method": method, "target": target, "received": 0, "complete": cl == 0}
                with self.lock:
                    self.requests.append(rec)
                if target.startswith("/early"):
                    c.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 6\r\n\r\ndenied")
                    while True:  # drop whatever else comes
                        d = c.recv(65536)
                        if not d:
                            return
                        rec["received"] += len(d)
                while len(buf) < cl:
                    d = c.recv(65536)
                    if not d:
                        rec["received"] = len(buf)
                        return  # the proxy gave up on this request
                    buf += d
                body, buf = buf[:cl], buf[cl:]
                rec["received"] = len(body)
                rec["complete"] = True
                if target.startswith("/drop"):
                    return
                if target.startswith("/trunc"):
                    c.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npartial")
                    time.sleep(0.2)
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    return
                payload = f"{method} {target} {len(body)}".encode()
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
        except OSError:
            return
        finally:
            c.close()

    def seen(self, prefix):
        with self.lock:
            return [q for q in self.requests if q["target"].startswith(prefix)]


class DataPlaneTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.up = Upstream()
        cls.addClassCleanup(cls.up.stop)
        cls.cfg = t.new_config(cls)
        cls.port = t.free_port()
        ups = [t.upstream("up", [(t.LOCALHOST, cls.up.port)])]
        routes = [
            r("public", [m(prefix="/public")], to="up", options={"prefixRewrite": "/was-public"}),
            r("all", [m(prefix="/")], to="up"),
        ]
        cls.cfg.write_stack(cls.port, [t.virtual_service("vs", routes)], ups)
        cls.portico = t.start_portico(cls, cls.cfg)

    def connect(self):
        s = socket.create_connection((t.LOCALHOST, self.port), timeout=5)
        self.addCleanup(s.close)
        return s

    def test_early_answer_is_relayed_before_the_body_is_sent(self):
        s = self.connect()
        # 10 MB announced, 1 KB sent: the 401 must arrive without the rest of the body.
        s.sendall(b"POST /early HTTP/1.1\r\nHost: h\r\nContent-Length: 10000000\r\n\r\n" + b"x" * 1024)
        start = time.monotonic()
        resp = t.read_response(s)
        self.assertEqual((resp.status, resp.body), (401, b"denied"))
        self.assertLess(time.monotonic() - start, 2.0)

    def test_client_abort_mid_body_aborts_the_upstream_request(self):
        s = socket.create_connection((t.LOCALHOST, self.port), timeout=5)
        s.sendall(b"POST /abort HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)
        deadline = time.monotonic() + 5
        while not self.up.seen("/abort") and time.monotonic() < deadline:
            time.sleep(0.02)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # RST mid-body
        # The upstream sees its connection end before a complete request.
        time.sleep(0.5)
        seen = self.up.seen("/abort")
        self.assertEqual(len(seen), 1)
        self.assertFalse(seen[0]["complete"])
        self.assertLess(seen[0]["received"], 100000)

    def test_post_is_never_sent_twice(self):
        # Warm a pooled connection, then POST to an upstream that reads it and closes without an
        # answer: the proxy must answer 502, not send the POST again on a fresh connection.
        # One client connection: both requests on the same worker, hence the same pool.
        conn = http.client.HTTPConnection(t.LOCALHOST, self.port, timeout=10)
        self.addCleanup(conn.close)
        self.assertEqual(t.request(self.port, "GET", "/warm", host="h", conn=conn).status, 200)
        resp = t.request(self.port, "POST", "/drop/post", body=b"payment=1", host="h", conn=conn)
        self.assertEqual(resp.status, 502)
        self.assertEqual(len(self.up.seen("/drop/post")), 1)

    def test_get_on_a_dead_pooled_connection_is_retried_once_on_a_fresh_one(self):
        conn = http.client.HTTPConnection(t.LOCALHOST, self.port, timeout=10)
        self.addCleanup(conn.close)
        self.assertEqual(t.request(self.port, "GET", "/warm2", host="h", conn=conn).status, 200)
        resp = t.request(self.port, "GET", "/drop/get", host="h", conn=conn)
        self.assertEqual(resp.status, 502)
        self.assertEqual(len(self.up.seen("/drop/get")), 2)  # the original and one retry

    def test_truncated_close_delimited_body_is_not_made_complete(self):
        s = self.connect()
        s.sendall(b"GET /trunc HTTP/1.1\r\nHost: h\r\n\r\n")
        raw = b""
        s.settimeout(5)
        while True:
            try:
                d = s.recv(65536)
            except OSError:
                break
            if not d:
                break
            raw += d
        self.assertIn(b"Transfer-Encoding: chunked", raw)
        self.assertIn(b"partial", raw)
        self.assertFalse(raw.endswith(b"0\r\n\r\n"), raw)

    def test_keep_alive_connection_idle_past_the_park_delay_serves_the_next_requests(self):
        # After 100 ms idle a connection gives its read buffer back and waits for readability
        # without one: what arrives then (here two pipelined requests) is read whole, in order.
        s = self.connect()
        s.sendall(b"GET /idle/1 HTTP/1.1\r\nHost: h\r\n\r\n")
        raw = b""
        while t.count_responses(raw) < 1:
            d = s.recv(65536)
            self.assertTrue(d, raw)
            raw += d
        time.sleep(1.3)  # past the 1 s park delay
        s.sendall(b"GET /idle/2 HTTP/1.1\r\nHost: h\r\n\r\nGET /idle/3 HTTP/1.1\r\nHost: h\r\n\r\n")
        while t.count_responses(raw) < 3:
            d = s.recv(65536)
            self.assertTrue(d, raw)
            raw += d
        got = [(status, body) for status, _, body in t.split_responses(raw)]
        self.assertEqual(got, [(200, b"GET /idle/1 0"), (200, b"GET /idle/2 0"), (200, b"GET /idle/3 0")])

    def test_dot_segments_are_resolved_before_routing(self):
        resp = t.request(self.port, "GET", "/public/../admin", host="h")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body, b"GET /admin 0")  # not rewritten by the /public route
        resp = t.request(self.port, "GET", "/public/./x", host="h")
        self.assertEqual(resp.body, b"GET /was-public/x 0")


if __name__ == "__main__":
    import unittest

    unittest.main()
