#!/usr/bin/env python3
"""Route options and non-forwarding actions through the real binary: prefix and host rewrites, request and
response header manipulation, redirects (host, path, prefix, https, codes) and direct responses."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402

BIG_BODY = "0123456789abcdef" * 640  # 10 KiB


def routes():
    return [
        r("prefix-rewrite", [m(prefix="/rw/")], to="echo", options={"prefixRewrite": "/v1/"}),
        r("strip", [m(prefix="/strip/")], to="echo", options={"prefixRewrite": "/"}),
        r("host-rewrite", [m(prefix="/host-rw")], to="echo", options={"hostRewrite": "internal.example"}),
        r("headers", [m(prefix="/hm")], to="echo", options={"headerManipulation": {
            "requestHeadersToAdd": [
                {"header": {"key": "X-Added", "value": "1"}, "append": True},
                {"header": {"key": "X-Replaced", "value": "new"}, "append": False},
            ],
            "requestHeadersToRemove": ["X-Secret"],
            "responseHeadersToAdd": [{"header": {"key": "X-Resp-Added", "value": "r"}, "append": True},
                                     {"header": {"key": "X-Resp-Replaced", "value": "new"}, "append": False}],
            "responseHeadersToRemove": ["X-Upstream"],
        }}),
        r("redir-host", [m(prefix="/redir-host")], redirect={"hostRedirect": "new.example"}),
        r("redir-path", [m(prefix="/redir-path")], redirect={"pathRedirect": "/landing"}),
        r("redir-prefix", [m(prefix="/redir-prefix/")], redirect={"prefixRewrite": "/new/"}),
        r("redir-https", [m(prefix="/redir-https")], redirect={"httpsRedirect": True}),
        r("redir-302", [m(prefix="/redir-302")], redirect={"hostRedirect": "x.example", "responseCode": "FOUND"}),
        r("redir-303", [m(prefix="/redir-303")], redirect={"hostRedirect": "x.example", "responseCode": "SEE_OTHER"}),
        r("redir-307", [m(prefix="/redir-307")],
          redirect={"hostRedirect": "x.example", "responseCode": "TEMPORARY_REDIRECT"}),
        r("redir-308", [m(prefix="/redir-308")],
          redirect={"hostRedirect": "x.example", "responseCode": "PERMANENT_REDIRECT"}),
        r("dr-404", [m(exact="/dr-404")], direct=(404, "gone")),
        r("dr-204", [m(exact="/dr-204")], direct=(204, "")),
        r("dr-503", [m(exact="/dr-503")], direct=(503, "maintenance")),
        r("dr-big", [m(exact="/dr-big")], direct=(200, BIG_BODY)),
        r("dr-lines", [m(exact="/dr-lines")], direct=(200, "line1\nline2 \"quoted\" ünïcödé\n")),
        r("dr-headers", [m(exact="/dr-headers")], direct=(200, "with header"), options={"headerManipulation": {
            "responseHeadersToAdd": [{"header": {"key": "X-Direct", "value": "yes"}}]}}),
    ]


class RewritesRedirectsTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.echo = t.start_upstream(cls, "echo")
        cls.cfg = t.new_config(cls)
        cls.port = t.free_port()
        cls.cfg.write_stack(cls.port, [t.virtual_service("vs", routes())],
                            [t.upstream("echo", [(t.LOCALHOST, cls.echo.port)])])
        cls.portico = t.start_portico(cls, cls.cfg)

    def get(self, path, **kw):
        kw.setdefault("host", "site.example")
        return t.request(self.port, kw.pop("method", "GET"), path, **kw)

    def upstream_saw(self, prefix):
        return [q["target"] for q in self.echo.requests() if q["target"].startswith(prefix)]

    # --- rewrites --------------------------------------------------------------------------------

    def test_prefix_rewrite(self):
        echo = self.get("/rw/users/7?x=1&y=%2F").json()
        self.assertEqual(echo["target"], "/v1/users/7?x=1&y=%2F")

    def test_prefix_rewrite_to_root(self):
        self.assertEqual(self.get("/strip/a/b").json()["target"], "/a/b")
        self.assertEqual(self.get("/strip/").json()["target"], "/")

    def test_host_rewrite(self):
        echo = self.get("/host-rw/x").json()
        self.assertEqual(t.echo_header(echo, "Host"), ["internal.example"])
        self.assertEqual(echo["target"], "/host-rw/x")

    def test_request_header_manipulation(self):
        echo = self.get("/hm", headers={"X-Added": "0", "X-Replaced": "old", "X-Secret": "s3cr3t",
                                        "X-Kept": "k"}).json()
        added = t.echo_header(echo, "X-Added")
        self.assertIn(added, (["0", "1"], ["0,1"], ["0, 1"]), echo["headers"])
        self.assertEqual(t.echo_header(echo, "X-Replaced"), ["new"])
        self.assertEqual(t.echo_header(echo, "X-Secret"), [])
        self.assertEqual(t.echo_header(echo, "X-Kept"), ["k"])
        echo = self.get("/hm").json()
        self.assertEqual(t.echo_header(echo, "X-Added"), ["1"])
        self.assertEqual(t.echo_header(echo, "X-Replaced"), ["new"])

    def test_response_header_manipulation(self):
        resp = self.get("/hm")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.header_all("X-Resp-Added"), ["r"])
        self.assertEqual(resp.header_all("X-Upstream"), [])
        self.assertEqual(resp.header_all("X-Resp-Replaced"), ["new"])

    def test_response_header_replaced_when_not_appending(self):
        resp = self.get("/hm/response-headers?X-Resp-Replaced=old&X-Resp-Added=u")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.header_all("X-Resp-Replaced"), ["new"])
        self.assertIn(resp.header_all("X-Resp-Added"), (["u", "r"], ["u,r"], ["u, r"]))

    # --- redirects -------------------------------------------------------------------------------

    def assertRedirect(self, path, code, location):
        resp = self.get(path)
        self.assertEqual(resp.status, code, resp)
        self.assertEqual(resp.header("Location"), location)
        return resp

    def test_host_redirect_keeps_path_and_query(self):
        self.assertRedirect("/redir-host/x?q=1", 301, "http://new.example/redir-host/x?q=1")

    def test_path_redirect(self):
        self.assertRedirect("/redir-path/anything", 301, "http://site.example/landing")

    def test_prefix_rewrite_redirect(self):
        self.assertRedirect("/redir-prefix/a/b", 301, "http://site.example/new/a/b")

    def test_https_redirect(self):
        self.assertRedirect("/redir-https/x", 301, "https://site.example/redir-https/x")

    def test_redirect_codes(self):
        for code in (302, 303, 307, 308):
            with self.subTest(code=code):
                self.assertRedirect(f"/redir-{code}/p", code, f"http://x.example/redir-{code}/p")

    def test_redirects_never_reach_upstream(self):
        self.get("/redir-host/never")
        self.get("/redir-path/never")
        self.assertEqual(self.upstream_saw("/redir-"), [])

    def test_redirect_with_curl(self):
        out = t.curl("--http1.1", "-sS", "-o", "/dev/null", "-H", "Host: site.example",
                     "-w", "%{http_code} %{redirect_url}", f"http://127.0.0.1:{self.port}/redir-https/c")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, "301 https://site.example/redir-https/c")

    # --- direct responses ------------------------------------------------------------------------

    def assertDirect(self, path, status, body):
        resp = self.get(path)
        self.assertEqual((resp.status, resp.body.decode()), (status, body), resp)
        if status not in (204, 304):
            self.assertEqual(resp.header("Content-Length"), str(len(body.encode())))
        return resp

    def test_direct_responses(self):
        self.assertDirect("/dr-404", 404, "gone")
        self.assertDirect("/dr-503", 503, "maintenance")
        self.assertDirect("/dr-big", 200, BIG_BODY)
        self.assertDirect("/dr-lines", 200, "line1\nline2 \"quoted\" ünïcödé\n")
        self.assertEqual(self.upstream_saw("/dr-"), [])

    def test_direct_response_204_has_no_body(self):
        raw = t.raw_exchange(self.port, b"GET /dr-204 HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n")
        self.assertEqual(t.status_of(raw), 204, raw)
        head, _, body = raw.partition(b"\r\n\r\n")
        self.assertEqual(body, b"")
        self.assertNotIn(b"transfer-encoding", head.lower())

    def test_direct_response_head(self):
        resp = self.get("/dr-big", method="HEAD")
        self.assertEqual((resp.status, resp.body), (200, b""))

    def test_direct_response_with_header_option(self):
        resp = self.assertDirect("/dr-headers", 200, "with header")
        self.assertEqual(resp.header("X-Direct"), "yes")

    def test_direct_response_keep_alive(self):
        # Local replies must not break the connection: several on one keep-alive connection.
        import http.client
        conn = http.client.HTTPConnection(t.LOCALHOST, self.port, timeout=10)
        self.addCleanup(conn.close)
        for path, status in (("/dr-404", 404), ("/dr-big", 200), ("/redir-host/a", 301), ("/dr-204", 204),
                             ("/rw/x", 200)):
            resp = t.request(self.port, "GET", path, host="site.example", conn=conn)
            self.assertEqual(resp.status, status, path)
        self.assertIsNotNone(conn.sock)


if __name__ == "__main__":
    t.main()
