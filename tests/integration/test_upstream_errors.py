#!/usr/bin/env python3
"""Upstream failures through the real binary: refused → 503, reset / garbage / no answer / ambiguous framing
→ 502, route timeout → 504, upstream statuses passed through, keep-alive survives local replies, and the
upstream error counters."""

import http.client
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402


class UpstreamErrorsTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.echo = t.start_upstream(cls, "echo")
        cls.garbage = t.start_scripted(cls, "garbage")
        cls.reset = t.start_scripted(cls, "reset")
        cls.closer = t.start_scripted(cls, "close")
        cls.badcl = t.start_scripted(cls, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
        # One response per connection, then the upstream closes it: pooled connections go stale.
        cls.one_shot = t.start_scripted(cls, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        cls.until_close = t.start_scripted(cls, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody-until-close")
        cls.http10 = t.start_scripted(cls, b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nold-ok")
        cls.down_port = t.free_port()  # nothing listens here
        cls.cfg = t.new_config(cls)
        cls.port = t.free_port()
        ups = [
            t.upstream("echo", [(t.LOCALHOST, cls.echo.port)]),
            t.upstream("down", [(t.LOCALHOST, cls.down_port)]),
            t.upstream("garbage", [(t.LOCALHOST, cls.garbage.port)]),
            t.upstream("reset", [(t.LOCALHOST, cls.reset.port)]),
            t.upstream("closer", [(t.LOCALHOST, cls.closer.port)]),
            t.upstream("badcl", [(t.LOCALHOST, cls.badcl.port)]),
            t.upstream("one-shot", [(t.LOCALHOST, cls.one_shot.port)]),
            t.upstream("until-close", [(t.LOCALHOST, cls.until_close.port)]),
            t.upstream("http10", [(t.LOCALHOST, cls.http10.port)]),
        ]
        routes = [
            r("down", [m(prefix="/down")], to="down"),
            r("garbage", [m(prefix="/garbage")], to="garbage"),
            r("reset", [m(prefix="/reset")], to="reset"),
            r("closer", [m(prefix="/closer")], to="closer"),
            r("badcl", [m(prefix="/badcl")], to="badcl"),
            r("one-shot", [m(prefix="/one-shot")], to="one-shot"),
            r("until-close", [m(prefix="/until-close")], to="until-close"),
            r("http10", [m(prefix="/http10")], to="http10"),
            r("timeout", [m(prefix="/slow")], to="echo", options={"timeout": "1s", "prefixRewrite": "/delay"}),
            r("echo", [m(prefix="/")], to="echo"),
        ]
        cls.cfg.write_stack(cls.port, [t.virtual_service("vs", routes)], ups)
        cls.portico = t.start_portico(cls, cls.cfg)

    def get(self, path, **kw):
        return t.request(self.port, kw.pop("method", "GET"), path, **kw)

    def test_refused_is_503(self):
        resp = self.get("/down/x")
        self.assertEqual(resp.status, 503, resp)
        self.assertIsNone(resp.header("X-Upstream"))

    def test_refused_with_body_is_503(self):
        resp = self.get("/down/x", method="POST", body=b"x" * 100000)
        self.assertEqual(resp.status, 503, resp)

    def test_garbage_is_502(self):
        self.assertEqual(self.get("/garbage").status, 502)

    def test_reset_is_502(self):
        self.assertEqual(self.get("/reset").status, 502)

    def test_close_without_answer_is_502(self):
        self.assertEqual(self.get("/closer").status, 502)

    def test_ambiguous_upstream_framing_is_502(self):
        # Two differing Content-Length values from the upstream: response smuggling; never forwarded.
        resp = self.get("/badcl")
        self.assertEqual(resp.status, 502, resp)
        self.assertNotEqual(resp.body, b"hello")

    def test_stale_pooled_connection_is_retried(self):
        # The upstream closes each connection after one response; the proxy's pooled connection is
        # stale by the next request, which must still succeed (retried on a fresh connection).
        for i in range(5):
            resp = self.get(f"/one-shot/{i}")
            self.assertEqual((resp.status, resp.body), (200, b"ok"), i)
            time.sleep(0.1)

    def test_response_delimited_by_close(self):
        for _ in range(2):
            resp = self.get("/until-close")
            self.assertEqual((resp.status, resp.body), (200, b"body-until-close"))

    def test_http10_upstream(self):
        resp = self.get("/http10")
        self.assertEqual((resp.status, resp.body), (200, b"old-ok"))

    def test_timeout_is_504(self):
        resp = self.get("/slow/3000")
        self.assertEqual(resp.status, 504, resp)
        self.assertGreaterEqual(resp.elapsed, 0.9)
        self.assertLess(resp.elapsed, 2.5)

    def test_within_timeout_is_200(self):
        resp = self.get("/slow/200")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["path"], "/delay/200")

    def test_upstream_statuses_pass_through(self):
        for code in (201, 204, 302, 400, 404, 500, 502, 503, 504):
            with self.subTest(code=code):
                resp = self.get(f"/status/{code}")
                self.assertEqual(resp.status, code)
                self.assertEqual(resp.header("X-Upstream"), "echo")

    def test_keep_alive_survives_local_errors(self):
        conn = http.client.HTTPConnection(t.LOCALHOST, self.port, timeout=10)
        self.addCleanup(conn.close)
        for path, status in (("/down", 503), ("/x", 200), ("/garbage", 502), ("/x", 200), ("/reset", 502),
                             ("/y", 200)):
            resp = t.request(self.port, "GET", path, conn=conn)
            self.assertEqual(resp.status, status, path)

    def test_error_counters(self):
        self.get("/down/count")
        self.get("/garbage/count")
        time.sleep(0.1)
        samples = self.portico.stats()
        errors = [(labels, v) for n, labels, v in samples if n == "portico_upstream_errors_total"]
        self.assertTrue(any("down" in labels.get("upstream", "") and v > 0 for labels, v in errors), errors)
        self.assertTrue(any("garbage" in labels.get("upstream", "") and v > 0 for labels, v in errors), errors)
        classes = {labels.get("status_class") for n, labels, v in samples
                   if n == "portico_requests_total" and v > 0}
        self.assertIn("5xx", classes)


if __name__ == "__main__":
    t.main()
