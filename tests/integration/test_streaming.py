#!/usr/bin/env python3
"""Large bodies stream through the real binary in both directions: 20 MB uploads (Content-Length, chunked,
curl with Expect: 100-continue) and downloads (test upstream, nginx, chunked), compared by sha256, with the
proxy's RSS staying below +64 MB; and proof of streaming: bytes pass the proxy before the other side has
sent everything."""

import hashlib
import http.client
import json
import os
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402

SIZE = 20 * 1024 * 1024
RSS_LIMIT_KB = 64 * 1024


class StreamingTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.files = tempfile.mkdtemp(prefix="portico-stream-")
        cls.addClassCleanup(shutil.rmtree, cls.files, True)
        cls.big_file = os.path.join(cls.files, "big.bin")
        with open(cls.big_file, "wb") as f:
            for c in t.pattern_chunks(SIZE):
                f.write(c)
        cls.big_sha = t.pattern_sha256(SIZE)
        cls.echo = t.start_upstream(cls, "echo")
        cls.nginx = t.start_nginx(cls, cls.files)
        cls.cfg = t.new_config(cls)
        cls.port = t.free_port()
        cls.cfg.write_stack(cls.port, [t.virtual_service("vs", [
            r("nginx", [m(prefix="/static/")], to="nginx", options={"prefixRewrite": "/"}),
            r("echo", [m(prefix="/")], to="echo"),
        ])], [t.upstream("echo", [(t.LOCALHOST, cls.echo.port)]),
              t.upstream("nginx", [(t.LOCALHOST, cls.nginx.port)])])
        cls.portico = t.start_portico(cls, cls.cfg)

    def connection(self, timeout=30):
        conn = http.client.HTTPConnection(t.LOCALHOST, self.port, timeout=timeout)
        self.addCleanup(conn.close)
        return conn

    def assertRssBounded(self, sampler, baseline_kb):
        growth = sampler.max_kb - baseline_kb
        if os.environ.get("PORTICO_TEST_VERBOSE"):
            print(f"\n  {self.id()}: RSS {baseline_kb // 1024} MB -> peak {sampler.max_kb // 1024} MB",
                  file=sys.stderr)
        self.assertLess(growth, RSS_LIMIT_KB,
                        f"proxy RSS grew by {growth // 1024} MB during a {SIZE // (1024 * 1024)} MB transfer "
                        f"(baseline {baseline_kb // 1024} MB, peak {sampler.max_kb // 1024} MB)")

    def read_hashed(self, resp, pause_after=None, pause=0.0):
        h = hashlib.sha256()
        n = 0
        paused = False
        while True:
            chunk = resp.read(65536)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
            if pause_after is not None and not paused and n >= pause_after:
                time.sleep(pause)
                paused = True
        return n, h.hexdigest()

    # --- uploads ---------------------------------------------------------------------------------

    def test_upload_content_length(self):
        baseline = self.portico.rss_kb()
        conn = self.connection()
        with t.RssSampler(self.portico.pid) as rss:
            conn.request("POST", "/upload/cl", body=t.pattern_chunks(SIZE),
                         headers={"Content-Length": str(SIZE), "Content-Type": "application/octet-stream"})
            resp = conn.getresponse()
            body = resp.read()
        self.assertEqual(resp.status, 200, body[:300])
        echo = json.loads(body)
        self.assertEqual((echo["body_length"], echo["body_sha256"]), (SIZE, self.big_sha))
        self.assertEqual(t.echo_header(echo, "Content-Length"), [str(SIZE)])
        self.assertRssBounded(rss, baseline)

    def test_upload_chunked(self):
        baseline = self.portico.rss_kb()
        conn = self.connection()
        with t.RssSampler(self.portico.pid) as rss:
            conn.request("PUT", "/upload/te", body=t.pattern_chunks(SIZE, 40000), encode_chunked=True)
            resp = conn.getresponse()
            body = resp.read()
        self.assertEqual(resp.status, 200, body[:300])
        echo = json.loads(body)
        self.assertEqual((echo["body_length"], echo["body_sha256"]), (SIZE, self.big_sha))
        self.assertRssBounded(rss, baseline)

    def test_upload_with_curl_expect_continue(self):
        out = t.curl("--http1.1", "-sS", "-T", self.big_file, "-H", "Expect: 100-continue",
                     f"http://127.0.0.1:{self.port}/upload/curl", timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        echo = json.loads(out.stdout)
        self.assertEqual((echo["method"], echo["body_length"], echo["body_sha256"]), ("PUT", SIZE, self.big_sha))

    # --- downloads -------------------------------------------------------------------------------

    def test_download_from_test_upstream_with_slow_reader(self):
        baseline = self.portico.rss_kb()
        conn = self.connection()
        with t.RssSampler(self.portico.pid) as rss:
            conn.request("GET", f"/bytes/{SIZE}")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.getheader("Content-Length"), str(SIZE))
            # Stop reading for a second after 1 MB: the proxy must apply back-pressure, not buffer the rest.
            n, digest = self.read_hashed(resp, pause_after=1024 * 1024, pause=1.0)
        self.assertEqual((n, digest), (SIZE, self.big_sha))
        self.assertRssBounded(rss, baseline)

    def test_back_pressure_holds_a_large_response(self):
        # 200 MB offered by the upstream, a client that reads 1 MB and stops: the proxy must stop reading
        # from the upstream (bounded buffers), not take the whole body into memory.
        big = 200 * 1024 * 1024
        baseline = self.portico.rss_kb()
        conn = self.connection()
        with t.RssSampler(self.portico.pid) as rss:
            conn.request("GET", f"/bytes/{big}")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            got = 0
            while got < 1024 * 1024:
                got += len(resp.read1(65536))
            time.sleep(1.5)
        conn.close()
        self.assertRssBounded(rss, baseline)
        self.assertEqual(t.request(self.port, "GET", "/after-abort").status, 200)

    def test_download_from_nginx(self):
        baseline = self.portico.rss_kb()
        conn = self.connection()
        with t.RssSampler(self.portico.pid) as rss:
            conn.request("GET", "/static/big.bin")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            n, digest = self.read_hashed(resp)
        self.assertEqual((n, digest), (SIZE, self.big_sha))
        self.assertRssBounded(rss, baseline)

    def test_download_from_nginx_with_curl(self):
        dst = os.path.join(self.files, "curl-download.bin")
        self.addCleanup(lambda: os.path.exists(dst) and os.unlink(dst))
        out = t.curl("--http1.1", "-sS", "-o", dst, "-w", "%{http_code} %{size_download}",
                     f"http://127.0.0.1:{self.port}/static/big.bin", timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, f"200 {SIZE}")
        h = hashlib.sha256()
        with open(dst, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        self.assertEqual(h.hexdigest(), self.big_sha)

    def test_download_chunked(self):
        n_bytes = 5 * 1024 * 1024 + 17
        conn = self.connection()
        conn.request("GET", f"/chunked/{n_bytes}")
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        self.assertEqual(self.read_hashed(resp), (n_bytes, t.pattern_sha256(n_bytes)))
        # The connection stays usable after a chunked response.
        conn.request("GET", "/after-chunked")
        after = conn.getresponse()
        self.assertEqual((after.status, json.loads(after.read())["path"]), (200, "/after-chunked"))

    def test_range_from_nginx(self):
        resp = t.request(self.port, "GET", "/static/big.bin", headers={"Range": "bytes=1000-1999"})
        self.assertEqual(resp.status, 206)
        self.assertEqual(resp.body, t.pattern_bytes(2000)[1000:])

    # --- proof of streaming ----------------------------------------------------------------------

    def test_response_streams_before_upstream_finishes(self):
        # The upstream sends 1 MB, pauses 2 s, sends the rest. The first 512 KB must reach the client
        # well before the pause ends.
        conn = self.connection()
        start = time.monotonic()
        conn.request("GET", "/bytes/4194304?pause_after=1048576&pause_ms=2000")
        resp = conn.getresponse()
        got = 0
        while got < 512 * 1024:
            chunk = resp.read1(65536)
            self.assertTrue(chunk, "response ended early")
            got += len(chunk)
        first = time.monotonic() - start
        self.assertLess(first, 1.5, f"first 512 KB took {first:.2f}s: the proxy buffered the response")
        rest, _ = self.read_hashed(resp)
        self.assertEqual(got + rest, 4194304)

    def test_request_streams_before_client_finishes(self):
        # The client sends half of a chunked body and waits: the upstream must see bytes of it before the
        # client sends the rest.
        half = 2 * 1024 * 1024
        with socket.create_connection((t.LOCALHOST, self.port), timeout=10) as s:
            s.sendall(b"POST /stream-up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            for c in t.pattern_chunks(half):
                s.sendall(b"%x\r\n" % len(c) + c + b"\r\n")

            def upstream_got_bytes():
                return [q for q in self.echo.requests() if q["path"] == "/stream-up" and q["body_length"] > 0]

            t.wait_until(upstream_got_bytes, 5, message="upstream received body bytes before the body ended")
            for c in t.pattern_chunks(half):
                s.sendall(b"%x\r\n" % len(c) + c + b"\r\n")
            s.sendall(b"0\r\n\r\n")
            resp = t.read_response(s, "POST")
        self.assertEqual(resp.status, 200, resp)
        echo = resp.json()
        self.assertEqual((echo["body_length"], echo["body_sha256"]),
                         (2 * half, t.pattern_sha256(half * 2)))

    def test_content_length_upload_streams(self):
        total = 4 * 1024 * 1024
        with socket.create_connection((t.LOCALHOST, self.port), timeout=10) as s:
            s.sendall(b"POST /stream-cl HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % total)
            s.sendall(t.pattern_bytes(total // 2))
            t.wait_until(lambda: [q for q in self.echo.requests() if q["path"] == "/stream-cl"
                                  and q["body_length"] > 0], 5,
                         message="upstream received body bytes before the body ended")
            s.sendall(t.pattern_bytes(total)[total // 2:])
            resp = t.read_response(s, "POST")
        self.assertEqual(resp.status, 200, resp)
        echo = resp.json()
        self.assertEqual((echo["body_length"], echo["body_sha256"]), (total, t.pattern_sha256(total)))


if __name__ == "__main__":
    t.main()
