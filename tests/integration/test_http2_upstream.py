#!/usr/bin/env python3
"""HTTP/2 to upstreams (useHttp2) with an HTTP/2-only upstream written on python3-h2 (it speaks
nothing else: an HTTP/1.1 request would fail). HTTP/1.1 clients (curl, raw sockets) through Portico:
the request translated per RFC 9113 (:authority from Host, connection-specific fields dropped,
te: trailers), bodies both ways (1 MiB up, several stream windows down), response trailers relayed
to an HTTP/1.1 client that accepts them, a GOAWAY that refuses a stream (not processed: sent again on
a new connection, the client sees 200), a GOAWAY mid-stream (the stream in flight completes; the next
request opens a new connection), an upstream RST_STREAM before the head (502) and after it (the
client sees a truncated body), and the /stats counters."""

import hashlib
import json
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.errors  # noqa: E402
import h2.events  # noqa: E402
import h2.exceptions  # noqa: E402
import hyperframe.frame as hf  # noqa: E402


class H2Upstream:
    """A threaded HTTP/2 (prior knowledge) server with scripted behaviours by path."""

    def __init__(self):
        self.lock = threading.Lock()
        self.connections = 0
        self.requests: list[dict] = []
        self.goaway_done = set()  # the /goaway-refuse* paths already refused once
        self.sent: dict[str, int] = {}  # DATA bytes sent per /big path
        self.resets: list = []  # paths of the streams Portico reset
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((t.LOCALHOST, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self):
        self.stopped = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                   header_encoding="utf-8"))
        conn.initiate_connection()
        c.sendall(conn.data_to_send())
        streams: dict[int, dict] = {}
        pending: dict[int, bytes] = {}  # response bodies waiting for window
        paths: dict[int, str] = {}

        def send_body(sid: int, body: bytes, end: bool = True, trailers=None):
            pending[sid] = (body, end, trailers)
            flush_pending()

        def flush_pending():
            for sid in list(pending):
                body, end, trailers = pending[sid]
                if conn._stream_is_closed_by_reset(sid) or sid not in conn.streams:
                    del pending[sid]  # reset by Portico (its client went away)
                    continue
                while body:
                    n = min(len(body), conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
                    if n <= 0:
                        break
                    conn.send_data(sid, body[:n])
                    body = body[n:]
                    if sid in paths:
                        with self.lock:
                            self.sent[paths[sid]] = self.sent.get(paths[sid], 0) + n
                if body:
                    pending[sid] = (body, end, trailers)
                    continue
                del pending[sid]
                if trailers:
                    conn.send_headers(sid, trailers, end_stream=True)
                elif end:
                    conn.end_stream(sid)

        try:
            while True:
                data = c.recv(65536)
                if not data:
                    return
                try:
                    events = conn.receive_data(data)
                except h2.exceptions.ProtocolError:
                    return
                close_after = False
                for ev in events:
                    if isinstance(ev, h2.events.RequestReceived):
                        streams[ev.stream_id] = {"headers": ev.headers, "body": b"", "trailers": None}
                        paths[ev.stream_id] = dict(ev.headers)[":path"]
                    elif isinstance(ev, h2.events.DataReceived):
                        streams[ev.stream_id]["body"] += ev.data
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.TrailersReceived):
                        streams[ev.stream_id]["trailers"] = ev.headers
                    elif isinstance(ev, h2.events.WindowUpdated):
                        flush_pending()
                    elif isinstance(ev, h2.events.StreamReset):
                        pending.pop(ev.stream_id, None)
                        with self.lock:
                            self.resets.append(paths.get(ev.stream_id))
                    elif isinstance(ev, h2.events.StreamEnded):
                        close_after |= self._respond(conn, ev.stream_id, streams.pop(ev.stream_id),
                                                     send_body)
                out = conn.data_to_send()
                if out:
                    c.sendall(out)
                if close_after:
                    c.shutdown(socket.SHUT_WR)
        except OSError:
            return
        finally:
            c.close()

    def _respond(self, conn, sid: int, req: dict, send_body) -> bool:
        hs = req["headers"]
        path = dict(hs)[":path"]
        with self.lock:
            self.requests.append({"headers": hs, "path": path, "body": req["body"],
                                  "trailers": req["trailers"]})
        if path.startswith("/goaway-refuse"):
            with self.lock:
                first = path not in self.goaway_done
                self.goaway_done.add(path)
            if first:
                # This stream is above last_stream_id: not processed, the client may resend it.
                conn.close_connection(error_code=h2.errors.ErrorCodes.NO_ERROR,
                                      last_stream_id=sid - 2 if sid > 2 else 0)
                return True
        if path.startswith("/goaway-mid"):
            conn.send_headers(sid, [(":status", "200"), ("content-type", "text/plain")])
            conn.send_data(sid, b"first part;")
            # GOAWAY naming this stream as processed, then the rest of its body (python3-h2 sends
            # nothing after its own close_connection, so the frame is queued by hand).
            conn._data_to_send += hf.GoAwayFrame(stream_id=0, last_stream_id=sid,
                                                 error_code=0).serialize()
            conn.send_data(sid, b"second part", end_stream=True)
            return True
        if path.startswith("/rst-early"):
            conn.reset_stream(sid, error_code=h2.errors.ErrorCodes.INTERNAL_ERROR)
            return False
        if path.startswith("/rst-late"):
            conn.send_headers(sid, [(":status", "200"), ("content-type", "text/plain")])
            conn.send_data(sid, b"x" * 1000)
            conn.reset_stream(sid, error_code=h2.errors.ErrorCodes.INTERNAL_ERROR)
            return False
        if path.startswith("/trailers"):
            body = b"with trailers\n"
            conn.send_headers(sid, [(":status", "200"), ("content-type", "text/plain")])
            send_body(sid, body, trailers=[("x-checksum", hashlib.sha256(body).hexdigest()[:16])])
            return False
        if path.startswith("/big"):
            n = int(path.split("?")[0].split("/")[2])
            conn.send_headers(sid, [(":status", "200"), ("content-length", str(n))])
            send_body(sid, t.pattern_bytes(n))
            return False
        # Echo: what arrived, as JSON.
        out = json.dumps({
            "path": path,
            "headers": [[k, v] for k, v in hs],
            "body_len": len(req["body"]),
            "body_sha256": hashlib.sha256(req["body"]).hexdigest(),
            "trailers": [[k, v] for k, v in (req["trailers"] or [])],
        }).encode()
        conn.send_headers(sid, [(":status", "200"), ("content-type", "application/json"),
                                ("x-proto", "h2")])
        send_body(sid, out)
        return False


def counter(p, name, **labels):
    return t.metric_sum(p.stats(), name, **labels)


class Http2UpstreamTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.up = H2Upstream()
        cls.cfg = t.new_config(cls)
        cls.port = t.free_port()
        u = t.upstream("h2up", [(t.LOCALHOST, cls.up.port)])
        u["spec"]["useHttp2"] = True
        u["spec"]["http2ProtocolOptions"] = {"maxConcurrentStreams": 10}
        cls.cfg.write_stack(cls.port, [t.virtual_service("vs", [t.route("all", to="h2up")])], [u])
        cls.p = t.start_portico(cls, cls.cfg, workers=1)
        t.wait_for_port(cls.port)

    @classmethod
    def tearDownClass(cls):
        cls.up.stop()
        super().tearDownClass()

    def url(self, path: str) -> str:
        return f"http://{t.LOCALHOST}:{self.port}{path}"

    def test_request_translation(self):
        r = t.curl("-sS", "--http1.1", "-H", "Connection: keep-alive, x-hop", "-H", "X-Hop: 1",
                   "-H", "Keep-Alive: timeout=5", "-H", "TE: gzip", "-H", "X-Custom: Value",
                   self.url("/echo?q=1"))
        self.assertEqual(r.returncode, 0, r.stderr)
        echo = json.loads(r.stdout)
        hs = echo["headers"]
        names = [k for k, _ in hs]
        self.assertEqual(echo["path"], "/echo?q=1")
        self.assertEqual(dict(hs)[":authority"], f"{t.LOCALHOST}:{self.port}")
        self.assertEqual(dict(hs)[":scheme"], "http")
        self.assertEqual(dict(hs)["te"], "trailers")
        self.assertEqual(dict(hs)["x-custom"], "Value")
        for banned in ("connection", "keep-alive", "host", "x-hop", "transfer-encoding", "upgrade"):
            self.assertNotIn(banned, names)
        self.assertEqual(names[:4], [":method", ":scheme", ":authority", ":path"])

    def test_small_body_held_and_sent_with_the_head(self):
        # Up to 64 KiB that arrived with the head: held, sent as HEADERS + one DATA with END_STREAM
        # (and content-length).
        r = t.request(self.port, method="POST", path="/echo", body=b"hello h2")
        self.assertEqual(r.status, 200)
        echo = r.json()
        self.assertEqual(echo["body_len"], 8)
        self.assertEqual(dict(echo["headers"]).get("content-length"), "8")

    def test_bodies_both_ways(self):
        body = t.pattern_bytes(1 << 20)
        path = os.path.join(self.cfg.path, "..", "up.bin")
        with open(path, "wb") as f:
            f.write(body)
        r = t.curl("-sS", "--http1.1", "--data-binary", f"@{path}", self.url("/echo"))
        self.assertEqual(r.returncode, 0, r.stderr)
        echo = json.loads(r.stdout)
        self.assertEqual(echo["body_len"], len(body))
        self.assertEqual(echo["body_sha256"], hashlib.sha256(body).hexdigest())
        # Chunked upload (length unknown): DATA frames until END_STREAM.
        r = t.curl("-sS", "--http1.1", "-H", "Transfer-Encoding: chunked", "--data-binary", f"@{path}",
                   self.url("/echo"))
        self.assertEqual(json.loads(r.stdout)["body_len"], len(body))
        # 3 MiB down: many stream windows, acknowledged as the client reads.
        n = 3 << 20
        r = t.request(self.port, path=f"/big/{n}", timeout=30)
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.body), n)
        self.assertEqual(hashlib.sha256(r.body).hexdigest(), t.pattern_sha256(n))

    def test_response_trailers_reach_an_http1_client(self):
        raw = t.raw_exchange(self.port, (
            f"GET /trailers HTTP/1.1\r\nHost: h.test\r\nTE: trailers\r\nConnection: close\r\n\r\n"
        ).encode(), timeout=5)
        self.assertTrue(raw.startswith(b"HTTP/1.1 200"), raw[:200])
        self.assertIn(b"transfer-encoding: chunked", raw.lower())
        self.assertIn(b"x-checksum: ", raw.lower())
        self.assertIn(b"with trailers", raw)

    def test_goaway_refused_stream_is_sent_again(self):
        before = counter(self.p, "portico_upstream_h2_goaway_total", upstream="default/h2up")
        r = t.request(self.port, path="/goaway-refuse", timeout=10)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.header("x-proto"), "h2")
        self.assertEqual(counter(self.p, "portico_upstream_h2_goaway_total", upstream="default/h2up"),
                         before + 1)
        self.assertGreaterEqual(counter(self.p, "portico_upstream_retries_total", upstream="default/h2up"),
                                1)

    def test_goaway_refused_streamed_post_is_sent_again(self):
        # A POST whose body is streamed (chunked, in two pieces) and whose stream the upstream
        # refuses with GOAWAY was not processed: it goes again, whole, on a new connection,
        # whatever its method (the body was kept in the replay buffer for that).
        s = socket.create_connection((t.LOCALHOST, self.port), timeout=10)
        try:
            s.sendall(b"POST /goaway-refuse-post HTTP/1.1\r\nHost: h.test\r\n"
                      b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n")
            time.sleep(0.2)
            s.sendall(b"6\r\n world\r\n0\r\n\r\n")
            r = t.read_response(s, "POST")
        finally:
            s.close()
        self.assertEqual(r.status, 200, r.body)
        with self.up.lock:
            bodies = [q["body"] for q in self.up.requests if q["path"] == "/goaway-refuse-post"]
        self.assertEqual(bodies, [b"hello world", b"hello world"])

    def test_goaway_mid_stream_completes_the_stream(self):
        conns = self.up.connections
        r = t.request(self.port, path="/goaway-mid", timeout=10)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"first part;second part")
        # The connection that sent GOAWAY takes no new stream: the next request opens another.
        r = t.request(self.port, path="/echo", timeout=10)
        self.assertEqual(r.status, 200)
        self.assertGreater(self.up.connections, conns)

    def test_slow_client_stalls_only_its_stream(self):
        # A client that does not read a 32 MiB response: Portico stops taking it from the upstream
        # (the stream's window is not reopened), and another request on the same upstream
        # connection (one worker) is answered meanwhile.
        n = 32 << 20
        path = f"/big/{n}?slow"
        slow = socket.create_connection((t.LOCALHOST, self.port))
        self.addCleanup(slow.close)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        slow.sendall(f"GET {path} HTTP/1.1\r\nHost: h.test\r\n\r\n".encode())
        t.wait_until(lambda: self.up.sent.get(path, 0) > 0, 5, message="the big response started")
        # Wait until the upstream stops sending (socket buffers on the way are full).
        last, stable_since = -1, time.monotonic()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and time.monotonic() - stable_since < 1.0:
            now = self.up.sent.get(path, 0)
            if now != last:
                last, stable_since = now, time.monotonic()
            time.sleep(0.1)
        r = t.request(self.port, path="/echo", timeout=5)
        self.assertEqual(r.status, 200)
        # Kernel socket buffers on the way absorb a few MiB; nothing like the whole body.
        self.assertLess(self.up.sent.get(path, 0), n // 2)
        # Reading resumes the stream: the whole body arrives.
        slow.settimeout(30)
        got = 0
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += slow.recv(65536)
        got = len(buf.split(b"\r\n\r\n", 1)[1])
        while got < n:
            chunk = slow.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
        self.assertEqual(got, n)

    def test_client_gone_resets_the_upstream_stream(self):
        n = 32 << 20
        path = f"/big/{n}?gone"
        c = socket.create_connection((t.LOCALHOST, self.port))
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.sendall(f"GET {path} HTTP/1.1\r\nHost: h.test\r\n\r\n".encode())
        t.wait_until(lambda: self.up.sent.get(path, 0) > 0, 5, message="the big response started")
        before = counter(self.p, "portico_upstream_h2_resets_sent_total", upstream="default/h2up")
        c.close()
        t.wait_until(lambda: path in self.up.resets, 10, message="the upstream saw RST_STREAM")
        self.assertGreater(counter(self.p, "portico_upstream_h2_resets_sent_total",
                                   upstream="default/h2up"), before)

    def test_upstream_reset_before_head_is_502(self):
        r = t.request(self.port, path="/rst-early", timeout=10)
        self.assertEqual(r.status, 502)

    def test_upstream_reset_after_head_truncates(self):
        r = t.curl("-sS", "--http1.1", "-o", "/dev/null", "-w", "%{http_code}", self.url("/rst-late"))
        self.assertNotEqual(r.returncode, 0)  # curl: the chunked body never ended
        self.assertEqual(r.stdout, "200")

    def test_streams_multiplexed_and_counted(self):
        before = counter(self.p, "portico_upstream_h2_streams_total", upstream="default/h2up")
        results = []

        def one():
            results.append(t.request(self.port, path="/echo", timeout=10).status)

        threads = [threading.Thread(target=one) for _ in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.assertEqual(results, [200] * 8)
        self.assertEqual(counter(self.p, "portico_upstream_h2_streams_total", upstream="default/h2up"),
                         before + 8)


if __name__ == "__main__":
    unittest.main()
