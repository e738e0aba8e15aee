#!/usr/bin/env python3
"""HTTP/2 downstream end to end: real clients (curl --http2-prior-knowledge, curl over TLS with ALPN
h2, nghttp), GET/POST with bodies both ways, trailers both ways, many concurrent streams on one
connection; and frame-level tests with python3-h2 for each limit, defence and protocol rule:
the concurrent-stream limit, a header list too large (431), connection-specific and upper-case
fields refused, content-length against DATA, rapid reset (GOAWAY ENHANCE_YOUR_CALM, counted, no
upstream fan-out), ping flood, flow control (a body larger than the connection window), and a
graceful GOAWAY on SIGTERM that lets a stream in flight complete."""

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.exceptions  # noqa: E402
import h2.errors  # noqa: E402
import h2.settings  # noqa: E402
import hyperframe.frame as hf  # noqa: E402

ENHANCE_YOUR_CALM = 0xB
PROTOCOL_ERROR = 0x1
REFUSED_STREAM = 0x7


class H2Client:
    """A python3-h2 client over one socket, permissive about what it sends (tests send bad
    requests on purpose)."""

    def __init__(self, port: int, tls_context=None, server_name: str | None = None):
        raw = socket.create_connection((t.LOCALHOST, port), timeout=10)
        self.sock = tls_context.wrap_socket(raw, server_hostname=server_name) if tls_context else raw
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                        validate_outbound_headers=False,
                                        normalize_outbound_headers=False,
                                        validate_inbound_headers=False)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        self.flush()
        self.events: list = []
        self.closed = False
        self.error = None
        self.buf = b""
        self.hold: set = set()  # streams whose receive window is not reopened

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path="/", method="GET", headers=None, body: bytes | None = None,
                authority="h2.test", end_stream=True, flush=True) -> int:
        sid = self.conn.get_next_available_stream_id()
        hs = [(":method", method), (":scheme", "http"), (":path", path), (":authority", authority)]
        hs += list(headers or [])
        self.conn.send_headers(sid, hs, end_stream=end_stream and body is None)
        if body is not None:
            self.conn.send_data(sid, body, end_stream=end_stream)
        if flush:
            self.flush()
        return sid

    def pump(self, timeout=5.0) -> bool:
        """Reads once (up to timeout); False when the connection closed."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return True
        except (ConnectionResetError, OSError):
            self.closed = True
            return False
        if not data:
            self.closed = True
            return False
        # Frame by frame: python3-h2 refuses every frame after a GOAWAY, but a graceful GOAWAY
        # (NO_ERROR) lets the streams in flight finish, so the tests go on reading them.
        self.buf += data
        evs = []
        while len(self.buf) >= 9:
            n = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + n:
                break
            frame, self.buf = self.buf[:9 + n], self.buf[9 + n:]
            try:
                got = self.conn.receive_data(frame)
            except h2.exceptions.ProtocolError as e:
                self.error = e
                self.closed = True
                self.events.extend(evs)
                return False
            evs.extend(got)
            if any(isinstance(e, h2.events.ConnectionTerminated) and e.error_code == 0 for e in got):
                self.conn.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        for e in evs:
            if isinstance(e, h2.events.DataReceived):
                if e.stream_id in self.hold:
                    # Held stream: only the connection window is opened again.
                    self.conn.increment_flow_control_window(e.flow_controlled_length)
                else:
                    self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        self.events.extend(evs)
        self.flush()
        return True

    def wait_for(self, pred, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events:
                if pred(e):
                    return e
            if not self.pump(min(0.5, max(0.01, deadline - time.monotonic()))):
                for e in self.events:
                    if pred(e):
                        return e
                return None
        return None

    def response(self, sid, timeout=10.0):
        """(status, headers dict, body, trailers dict) once the stream ended; raises on reset."""
        ended = self.wait_for(
            lambda e: getattr(e, "stream_id", None) == sid and isinstance(
                e, (h2.events.StreamEnded, h2.events.StreamReset)), timeout)
        if ended is None:
            raise AssertionError(f"stream {sid} did not end; events: {self.events[-10:]}; "
                                 f"error: {self.error!r}")
        if isinstance(ended, h2.events.StreamReset):
            raise AssertionError(f"stream {sid} reset with {ended.error_code}")
        status, headers, body, trailers = None, {}, b"", {}
        for e in self.events:
            if getattr(e, "stream_id", None) != sid:
                continue
            if isinstance(e, h2.events.ResponseReceived):
                headers = dict(e.headers)
                status = int(headers[":status"])
            elif isinstance(e, h2.events.DataReceived):
                body += e.data
            elif isinstance(e, h2.events.TrailersReceived):
                trailers = dict(e.headers)
        return status, headers, body, trailers

    def reset_of(self, sid, timeout=5.0):
        e = self.wait_for(lambda e: isinstance(e, h2.events.StreamReset) and e.stream_id == sid,
                          timeout)
        return e.error_code if e else None

    def goaway(self, timeout=5.0):
        return self.wait_for(lambda e: isinstance(e, h2.events.ConnectionTerminated), timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class TrailerUpstream:
    """A raw HTTP/1.1 upstream: records each request (head and chunked body, trailers included) and
    answers a chunked body with a trailer field."""

    def __init__(self):
        self.received: list[bytes] = []
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((t.LOCALHOST, 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self._stop:
            try:
                c, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(c,), daemon=True).start()

    def _conn(self, c):
        c.settimeout(5)
        data = b""
        try:
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = c.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, rest = data.partition(b"\r\n\r\n")
                if b"chunked" in head.lower():
                    while not (rest.startswith(b"0\r\n") or b"\r\n0\r\n" in rest) or not rest.endswith(b"\r\n\r\n"):
                        chunk = c.recv(65536)
                        if not chunk:
                            return
                        rest += chunk
                self.received.append(head + b"\r\n\r\n" + rest)
                data = b""
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"5\r\nhello\r\n0\r\nX-Checksum: abc123\r\n\r\n")
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self._stop = True
        self._sock.close()


def make_cert(d: str):
    key, crt = os.path.join(d, "tls.key"), os.path.join(d, "tls.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=h2.test",
                    "-addext", "subjectAltName=DNS:h2.test"], check=True, capture_output=True, timeout=60)
    return crt, key


def counter(p, name, **labels):
    return t.metric_sum(p.stats(), name, **labels)


class Http2Test(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.up = t.start_upstream(cls)
        cls.trailers_up = TrailerUpstream()
        cls.silent = t.start_scripted(cls, "silent")
        cls.cfg = t.new_config(cls)
        cls.port = t.free_port()
        cls.tls_port = t.free_port()
        cls.certdir = tempfile.mkdtemp(prefix="portico-h2-")
        cls.crt, cls.key = make_cert(cls.certdir)
        routes = [
            t.route("direct", [t.matcher(prefix="/direct")], direct=(200, "direct\n")),
            t.route("trailers", [t.matcher(prefix="/trailers")], to="trailers"),
            t.route("silent", [t.matcher(prefix="/silent")], to="silent"),
            t.route("all", to="up"),
        ]
        vs = t.virtual_service("vs", routes)
        # The TLS Gateway serves virtual services with their own sslConfig.
        vs_tls = t.virtual_service("vs-tls", routes, domains=["h2.test"])
        vs_tls["spec"]["sslConfig"] = {"secretRef": t.ref("tls")}
        cls.cfg.write_obj("vs-tls.yaml", vs_tls)
        ups = [t.upstream("up", [(t.LOCALHOST, cls.up.port)]),
               t.upstream("trailers", [(t.LOCALHOST, cls.trailers_up.port)]),
               t.upstream("silent", [(t.LOCALHOST, cls.silent.port)])]
        for u in ups:
            cls.cfg.write_obj(f"upstream-{u['metadata']['name']}.yaml", u)
        cls.cfg.write_obj("vs.yaml", vs)
        gw = t.gateway("gw", cls.port, ["vs"])
        gw["spec"]["httpOptions"] = {"maxRequestHeadersBytes": 8192,
                                     "http2": {"cleartextPriorKnowledge": True, "maxConcurrentStreams": 10}}
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
        cls.trailers_up.stop()
        shutil.rmtree(cls.certdir, ignore_errors=True)
        super().tearDownClass()

    def client(self) -> H2Client:
        c = H2Client(self.port)
        self.addCleanup(c.close)
        return c

    # ---- real clients ----------------------------------------------------------------------

    def test_curl_prior_knowledge_get_and_post(self):
        r = t.curl("-sS", "--http2-prior-knowledge", "-o", "-", "-w", "\\n%{http_version} %{http_code}",
                   f"http://{t.LOCALHOST}:{self.port}/hello?x=1")
        self.assertEqual(r.returncode, 0, r.stderr)
        body, _, tail = r.stdout.rpartition("\n")
        self.assertEqual(tail, "2 200")
        echo = __import__("json").loads(body)
        self.assertEqual(echo["path"], "/hello")
        self.assertEqual(echo["query"], "x=1")
        self.assertEqual(t.echo_header(echo, "Host"), [f"{t.LOCALHOST}:{self.port}"])
        # A POST body of 300 KB (several windows) reaches the upstream whole.
        data = t.pattern_bytes(300_000)
        path = os.path.join(self.certdir, "body.bin")
        with open(path, "wb") as f:
            f.write(data)
        r = t.curl("-sS", "--http2-prior-knowledge", "--data-binary", "@" + path,
                   f"http://{t.LOCALHOST}:{self.port}/upload")
        self.assertEqual(r.returncode, 0, r.stderr)
        echo = __import__("json").loads(r.stdout)
        self.assertEqual(echo["method"], "POST")
        self.assertEqual(echo["body_length"], 300_000)
        self.assertEqual(echo["body_sha256"], hashlib.sha256(data).hexdigest())

    def test_http1_still_served_on_prior_knowledge_listener(self):
        r = t.request(self.port, "GET", "/direct")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"direct\n")
        r = t.request(self.port, "POST", "/x", body=b"abc")
        self.assertEqual(r.status, 200)

    def test_curl_tls_alpn_h2_and_large_response(self):
        r = t.curl("-sS", "--http2", "--cacert", self.crt, "--resolve", f"h2.test:{self.tls_port}:127.0.0.1",
                   "-o", "/dev/null", "-w", "%{http_version} %{http_code} %{size_download}",
                   f"https://h2.test:{self.tls_port}/bytes/2000000")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "2 200 2000000")
        # A client offering only http/1.1 still gets HTTP/1.1.
        r = t.curl("-sS", "--http1.1", "--cacert", self.crt, "--resolve", f"h2.test:{self.tls_port}:127.0.0.1",
                   "-o", "/dev/null", "-w", "%{http_version} %{http_code}", f"https://h2.test:{self.tls_port}/")
        self.assertEqual(r.stdout, "1.1 200")

    def test_nghttp_many_streams(self):
        if not shutil.which("nghttp"):
            self.skipTest("nghttp not installed")
        # 50 streams at once over TLS (ALPN h2; the TLS Gateway has the default limit of 100).
        urls = [f"https://{t.LOCALHOST}:{self.tls_port}/n/{i}" for i in range(50)]
        r = subprocess.run(["nghttp", "-n", "-s", "-H", ":authority: h2.test", *urls],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # Every response came back: nghttp's statistics list each request with its status.
        self.assertEqual(r.stdout.count("  200 "), 50, r.stdout)

    def test_concurrent_streams_on_one_connection(self):
        c = self.client()
        sids = [c.request(f"/delay/200?i={i}") for i in range(8)]
        start = time.monotonic()
        for sid in sids:
            status, _, body, _ = c.response(sid)
            self.assertEqual(status, 200)
        # Served concurrently: far less than 8 × 200 ms.
        self.assertLess(time.monotonic() - start, 1.2)

    def test_response_trailers_and_request_trailers(self):
        c = self.client()
        sid = c.request("/trailers", method="POST", end_stream=False, headers=[("te", "trailers")])
        c.conn.send_data(sid, b"part", end_stream=False)
        c.conn.send_headers(sid, [("x-request-sum", "42"), ("content-type", "dropped")], end_stream=True)
        c.flush()
        status, headers, body, trailers = c.response(sid)
        self.assertEqual(status, 200)
        self.assertEqual(body, b"hello")
        self.assertEqual(trailers.get("x-checksum"), "abc123")
        raw = self.trailers_up.received[-1].lower()
        self.assertIn(b"transfer-encoding: chunked", raw)
        self.assertIn(b"x-request-sum: 42", raw)
        self.assertNotIn(b"content-type: dropped", raw)  # not a forwardable trailer

    def test_requests_after_the_connection_parked(self):
        # After 1 s without a stream the read gives its buffer back (idle_park_after) and waits for
        # readability; the next request is served as before, on the same connection.
        c = self.client()
        self.assertEqual(c.response(c.request("/direct"))[0], 200)
        time.sleep(1.4)
        c.conn.ping(b"12345678")
        c.flush()
        self.assertIsNotNone(c.wait_for(lambda e: isinstance(e, h2.events.PingAckReceived)))
        time.sleep(1.4)
        sids = [c.request(f"/after-park/{i}") for i in range(3)]
        for sid in sids:
            self.assertEqual(c.response(sid)[0], 200)
        # The same over TLS (ALPN h2), where waiting for readability looks into OpenSSL first.
        import ssl
        ctx = ssl.create_default_context(cafile=self.crt)
        ctx.set_alpn_protocols(["h2"])
        tc = H2Client(self.tls_port, tls_context=ctx, server_name="h2.test")
        self.addCleanup(tc.close)
        self.assertEqual(tc.sock.selected_alpn_protocol(), "h2")
        self.assertEqual(tc.response(tc.request("/direct"))[0], 200)
        time.sleep(1.4)
        self.assertEqual(tc.response(tc.request("/tls-after-park"))[0], 200)

    def test_head_and_direct_response(self):
        c = self.client()
        status, headers, body, _ = c.response(c.request("/direct"))
        self.assertEqual((status, body), (200, b"direct\n"))
        self.assertEqual(headers.get("content-length"), "7")
        status, headers, body, _ = c.response(c.request("/direct", method="HEAD"))
        self.assertEqual((status, body), (200, b""))

    def test_cookies_joined_for_http1(self):
        c = self.client()
        sid = c.request("/cookies", headers=[("cookie", "a=1"), ("cookie", "b=2")])
        status, _, body, _ = c.response(sid)
        echo = __import__("json").loads(body)
        self.assertEqual(t.echo_header(echo, "Cookie"), ["a=1; b=2"])

    # ---- flow control ----------------------------------------------------------------------

    def test_request_body_larger_than_connection_window(self):
        # 3 MiB through a 1 MiB connection window and 64 KiB stream windows: the windows reopen
        # only as the body is forwarded, and all of it arrives.
        c = self.client()
        data = t.pattern_bytes(3 * 1024 * 1024)
        sid = c.request("/big", method="POST", end_stream=False)
        off = 0
        deadline = time.monotonic() + 30
        while off < len(data) and time.monotonic() < deadline:
            window = min(c.conn.local_flow_control_window(sid), c.conn.max_outbound_frame_size)
            if window <= 0:
                c.pump(0.5)
                continue
            n = min(window, len(data) - off)
            c.conn.send_data(sid, data[off:off + n], end_stream=off + n == len(data))
            c.flush()
            off += n
        status, _, body, _ = c.response(sid, timeout=30)
        echo = __import__("json").loads(body)
        self.assertEqual(echo["body_length"], len(data))
        self.assertEqual(echo["body_sha256"], hashlib.sha256(data).hexdigest())

    def test_slow_upstream_stalls_its_stream_only(self):
        # The upstream never reads the body: the client can send no more than the stream window
        # plus what the sockets between Portico and the upstream hold, never the whole body; the
        # same connection keeps serving other streams meanwhile.
        c = self.client()
        sid = c.request("/silent", method="POST", end_stream=False)
        chunk = b"x" * 16384
        sent = 0
        start = time.monotonic()
        sent_at = {}
        while time.monotonic() - start < 3.0 and sent < 64 * 1024 * 1024:
            elapsed = time.monotonic() - start
            if elapsed > 2.0 and "2s" not in sent_at:
                sent_at["2s"] = sent
            window = min(c.conn.local_flow_control_window(sid), len(chunk))
            if window <= 0:
                c.pump(0.05)
                continue
            c.conn.send_data(sid, chunk[:window])
            c.flush()
            sent += window
        # Bounded (the socket buffers fill, then nothing moves), and stalled by the last second.
        self.assertLess(sent, 16 * 1024 * 1024)
        self.assertLess(sent - sent_at.get("2s", 0), 1024 * 1024, (sent, sent_at))
        other = c.request("/direct")
        self.assertEqual(c.response(other)[0], 200)
        c.conn.reset_stream(sid)
        c.flush()

    def test_slow_client_stalls_its_response_only(self):
        # A client that does not open a stream's window gets no more than that window of its
        # response; the other streams of the connection are served meanwhile, and the held
        # response resumes once the window opens.
        c = self.client()
        big = c.request("/bytes/3000000")
        c.hold.add(big)
        time.sleep(0.5)
        for _ in range(5):
            c.pump(0.1)
        got = sum(len(e.data) for e in c.events
                  if isinstance(e, h2.events.DataReceived) and e.stream_id == big)
        self.assertLessEqual(got, 65535)
        other = c.request("/direct")
        self.assertEqual(c.response(other)[0], 200)
        c.hold.discard(big)
        c.conn.increment_flow_control_window(3_000_000, stream_id=big)
        c.flush()
        status, _, body, _ = c.response(big, timeout=30)
        self.assertEqual(status, 200)
        self.assertEqual(len(body), 3_000_000)

    def test_expect_100_continue(self):
        c = self.client()
        sid = c.request("/expect", method="PUT", end_stream=False,
                        headers=[("content-length", "5"), ("expect", "100-continue")])
        info = c.wait_for(lambda e: isinstance(e, h2.events.InformationalResponseReceived)
                          and e.stream_id == sid)
        self.assertIsNotNone(info)
        self.assertEqual(dict(info.headers)[":status"], "100")
        c.conn.send_data(sid, b"hello", end_stream=True)
        c.flush()
        status, _, body, _ = c.response(sid)
        self.assertEqual(status, 200)
        echo = __import__("json").loads(body)
        self.assertEqual(echo["body_length"], 5)
        self.assertEqual(t.echo_header(echo, "Expect"), [])

    # ---- protocol rules --------------------------------------------------------------------

    def test_connection_specific_header_refused(self):
        for name, value in [("connection", "keep-alive"), ("transfer-encoding", "chunked"),
                            ("upgrade", "websocket"), ("keep-alive", "1"), ("proxy-connection", "x"),
                            ("te", "gzip")]:
            c = self.client()
            before = len(self.up.requests())
            sid = c.request("/conn-specific", headers=[(name, value)])
            self.assertEqual(c.reset_of(sid), PROTOCOL_ERROR, name)
            self.assertEqual(len(self.up.requests()), before)

    def test_uppercase_and_bad_values_refused(self):
        for hs in ([("X-Upper", "1")], [("x-bad", "a\r\nb: c")], [("x-nul", "a\x00b")],
                   [("x-lf", "a\nb")]):
            c = self.client()
            sid = c.request("/bad", headers=hs)
            self.assertEqual(c.reset_of(sid), PROTOCOL_ERROR, hs)
        # A path with a space or a control byte never reaches an upstream's request line.
        for path in ["/a b", "/a\tb", "/a#frag"]:
            c = self.client()
            sid = c.request(path)
            self.assertEqual(c.reset_of(sid), PROTOCOL_ERROR, path)

    def test_content_length_mismatch(self):
        c = self.client()
        sid = c.request("/cl", method="POST", headers=[("content-length", "10")], body=b"abc")
        self.assertEqual(c.reset_of(sid), PROTOCOL_ERROR)
        c = self.client()
        sid = c.request("/cl", method="POST", headers=[("content-length", "2")], body=b"abcdef")
        self.assertEqual(c.reset_of(sid), PROTOCOL_ERROR)

    def test_concurrent_stream_limit(self):
        before = counter(self.p, "portico_http2_refused_streams_total")
        # Streams beyond the limit sent before the client acknowledged it: REFUSED_STREAM (the
        # client may retry them); the others are served.
        c = self.client()
        sids = [c.request(f"/delay/300?i={i}") for i in range(12)]
        self.assertEqual(c.reset_of(sids[10]), REFUSED_STREAM)
        self.assertEqual(c.reset_of(sids[11]), REFUSED_STREAM)
        for sid in sids[:10]:
            self.assertEqual(c.response(sid)[0], 200)
        self.assertEqual(c.conn.remote_settings.max_concurrent_streams, 10)
        self.assertEqual(counter(self.p, "portico_http2_refused_streams_total"), before + 2)
        # Beyond the limit once acknowledged: nghttp2 makes it a connection error
        # (GOAWAY PROTOCOL_ERROR); the streams already open were taken (last_stream_id).
        c = self.client()
        c.pump(0.5)
        sids = [c.request(f"/delay/300?j={i}") for i in range(10)]
        # python3-h2 refuses to open more than the peer allows: lift its own check.
        c.conn.remote_settings._settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = [100]
        c.request("/delay/1?extra")
        ga = c.goaway()
        self.assertIsNotNone(ga)
        self.assertEqual(ga.error_code, PROTOCOL_ERROR)
        self.assertEqual(ga.last_stream_id, sids[-1])

    def test_header_list_too_large(self):
        before = counter(self.p, "portico_http2_header_list_too_large_total")
        c = self.client()
        sid = c.request("/big-headers", headers=[(f"x-h{i}", "v" * 500) for i in range(30)])
        status, _, _, _ = c.response(sid)
        self.assertEqual(status, 431)
        # An HPACK bomb: one indexed field repeated, small on the wire, large decoded.
        c = self.client()
        c.conn.max_outbound_frame_size = 16384
        sid = c.request("/bomb", headers=[("x-bomb", "b" * 4000)] * 20)
        status, _, _, _ = c.response(sid)
        self.assertEqual(status, 431)
        self.assertGreaterEqual(counter(self.p, "portico_http2_header_list_too_large_total"), before + 2)

    # ---- defences --------------------------------------------------------------------------

    def test_rapid_reset(self):
        before_up = len(self.up.requests())
        before = counter(self.p, "portico_http2_rapid_reset_total")
        c = self.client()
        for i in range(400):
            try:
                # HEADERS and RST_STREAM in one write, as an attacker sends them.
                sid = c.request(f"/rapid/{i}", flush=False)
                c.conn.reset_stream(sid, error_code=8)  # CANCEL
                c.flush()
            except OSError:
                break
        ga = c.goaway()
        self.assertIsNotNone(ga, "no GOAWAY")
        self.assertEqual(ga.error_code, ENHANCE_YOUR_CALM)
        self.assertEqual(counter(self.p, "portico_http2_rapid_reset_total"), before + 1)
        # Cancelled streams are not sent upstream: a stream reset in the same read as its HEADERS
        # never reaches a handler (a TCP segment boundary between the two may let a few start).
        self.assertLess(len(self.up.requests()) - before_up, 10)
        # Portico still serves others.
        c2 = self.client()
        self.assertEqual(c2.response(c2.request("/direct"))[0], 200)

    def test_ping_flood(self):
        before = counter(self.p, "portico_http2_floods_total", kind="ping")
        c = self.client()
        for i in range(1000):
            try:
                c.conn.ping(i.to_bytes(8, "big"))
                c.flush()
            except (OSError, h2.exceptions.ProtocolError):
                break
        ga = c.goaway()
        self.assertIsNotNone(ga)
        self.assertEqual(ga.error_code, ENHANCE_YOUR_CALM)
        self.assertEqual(counter(self.p, "portico_http2_floods_total", kind="ping"), before + 1)

    def test_settings_and_empty_data_floods(self):
        before = counter(self.p, "portico_http2_floods_total", kind="empty_data")
        c = self.client()
        sid = c.request("/empty", method="POST", end_stream=False)
        for _ in range(300):
            try:
                c.conn.send_data(sid, b"", end_stream=False)
                c.flush()
            except (OSError, h2.exceptions.ProtocolError):
                break
        ga = c.goaway()
        self.assertIsNotNone(ga)
        self.assertEqual(ga.error_code, ENHANCE_YOUR_CALM)
        self.assertEqual(counter(self.p, "portico_http2_floods_total", kind="empty_data"), before + 1)


    def test_garbage_and_abrupt_close(self):
        before = counter(self.p, "portico_http2_protocol_errors_total")
        c = self.client()
        c.sock.sendall(b"\x00\x00\x08\x07\x00\x00\x00\x00\x01" + b"\xff" * 200)  # GOAWAY on stream 1
        c.goaway()
        self.assertTrue(c.closed or c.error is not None or c.events)
        # Clients that vanish with streams in flight: their upstream requests are cancelled and
        # their connections end.
        for _ in range(5):
            d = H2Client(self.port)
            d.request("/delay/2000")
            d.request("/silent", method="POST", end_stream=False)
            d.close()
        t.wait_until(lambda: counter(self.p, "portico_downstream_connections_active") <= 2, 5.0,
                     message="connections of vanished clients closed")
        self.assertGreaterEqual(counter(self.p, "portico_http2_protocol_errors_total"), before)
        c2 = self.client()
        self.assertEqual(c2.response(c2.request("/direct"))[0], 200)

    def raw_flood(self, frames, kind):
        """Sends raw frames after a valid preface + SETTINGS; expects GOAWAY(ENHANCE_YOUR_CALM)
        and the flood counter of `kind` to grow by one."""
        before = counter(self.p, "portico_http2_floods_total", kind=kind)
        c = self.client()
        try:
            for f in frames:
                c.sock.sendall(f.serialize())
        except OSError:
            pass
        ga = c.goaway()
        self.assertIsNotNone(ga, kind)
        self.assertEqual(ga.error_code, ENHANCE_YOUR_CALM, kind)
        self.assertEqual(counter(self.p, "portico_http2_floods_total", kind=kind), before + 1, kind)

    def test_continuation_flood(self):
        enc = h2.connection.H2Connection().encoder
        block = enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/"),
                            (":authority", "h2.test")])
        headers = hf.HeadersFrame(1)
        headers.data = block[:2]
        frames = [headers]
        for i in range(40):
            cont = hf.ContinuationFrame(1)
            cont.data = b""
            frames.append(cont)
        self.raw_flood(frames, "continuation")

    def test_settings_flood(self):
        self.raw_flood([hf.SettingsFrame(0, settings={4: 65535}) for _ in range(300)], "settings")

    def test_priority_flood(self):
        frames = []
        for i in range(3000):
            f = hf.PriorityFrame(1 + 2 * (i % 50))
            f.depends_on = 0
            f.stream_weight = 16
            frames.append(f)
        self.raw_flood(frames, "priority")

    def test_window_update_flood(self):
        frames = []
        for i in range(3000):
            f = hf.WindowUpdateFrame(0)
            f.window_increment = 1
            frames.append(f)
        self.raw_flood(frames, "window_update")


class Http2DrainTest(t.IntegrationTest):
    def test_goaway_on_sigterm_lets_stream_finish(self):
        up = self.start_upstream()
        cfg = self.new_config()
        port = t.free_port()
        cfg.write_obj("upstream.yaml", t.upstream("up", [(t.LOCALHOST, up.port)]))
        cfg.write_obj("vs.yaml", t.virtual_service("vs", [t.route("all", to="up")]))
        gw = t.gateway("gw", port, ["vs"])
        gw["spec"]["httpOptions"] = {"http2": {"cleartextPriorKnowledge": True}}
        cfg.write_obj("gw.yaml", gw)
        p = self.start_portico(cfg, workers=1)
        t.wait_for_port(port)
        c = H2Client(port)
        self.addCleanup(c.close)
        sid = c.request("/delay/800")
        time.sleep(0.2)
        p.send_signal(signal.SIGTERM)
        ga = c.goaway(3.0)
        self.assertIsNotNone(ga, "no GOAWAY on SIGTERM")
        self.assertEqual(ga.error_code, 0)
        self.assertGreaterEqual(ga.last_stream_id, sid)
        status, _, body, _ = c.response(sid)
        self.assertEqual(status, 200)
        self.assertEqual(p.wait(10), 0)

    def test_goaway_when_listener_removed_by_reload(self):
        up = self.start_upstream()
        cfg = self.new_config()
        port, other = t.free_port(), t.free_port()
        cfg.write_obj("upstream.yaml", t.upstream("up", [(t.LOCALHOST, up.port)]))
        cfg.write_obj("vs.yaml", t.virtual_service("vs", [t.route("all", to="up")]))
        for name, p_ in (("gw", port), ("keep", other)):
            gw = t.gateway(name, p_, ["vs"])
            gw["spec"]["httpOptions"] = {"http2": {"cleartextPriorKnowledge": True}}
            cfg.write_obj(f"{name}.yaml", gw)
        p = self.start_portico(cfg, workers=1)
        t.wait_for_port(port)
        c = H2Client(port)
        self.addCleanup(c.close)
        sid = c.request("/delay/1000")
        time.sleep(0.2)
        cfg.remove("gw.yaml")
        ga = c.goaway(5.0)
        self.assertIsNotNone(ga, "no GOAWAY when the listener was removed")
        self.assertEqual(ga.error_code, 0)
        status, _, _, _ = c.response(sid)
        self.assertEqual(status, 200)
        self.assertTrue(p.alive())


if __name__ == "__main__":
    unittest.main()
