#!/usr/bin/env python3
"""Routing through the real binary: path matchers (prefix, exact, regex, case), header, query and method
matchers, first-match order, 404, Host-based virtual host selection, and the forwarding headers
(X-Forwarded-For/Proto, X-Request-Id, Host, path and query unchanged)."""

import http.client
import os
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402


def default_routes():
    return [
        r("exact", [m(exact="/exact")], direct=(200, "exact")),
        r("regex", [m(regex="/re/[0-9]+")], direct=(200, "regex")),
        r("ci", [m(prefix="/ci/", case_sensitive=False)], direct=(200, "ci")),
        r("hdr-value", [m(prefix="/hdr", headers=[{"name": "x-match", "value": "yes"}])],
          direct=(200, "hdr-value")),
        r("hdr-regex", [m(prefix="/hdr", headers=[{"name": "x-version", "value": "v[0-9]+", "regex": True}])],
          direct=(200, "hdr-regex")),
        r("hdr-invert", [m(prefix="/hdr", headers=[{"name": "x-env", "value": "prod", "invertMatch": True}])],
          direct=(200, "hdr-not-prod")),
        r("hdr-fallback", [m(prefix="/hdr")], direct=(200, "hdr-fallback")),
        r("q-value", [m(prefix="/q", query=[{"name": "flag", "value": "on"}])], direct=(200, "q-value")),
        r("q-regex", [m(prefix="/q", query=[{"name": "id", "value": "[0-9]+", "regex": True}])],
          direct=(200, "q-regex")),
        r("q-fallback", [m(prefix="/q")], direct=(200, "q-fallback")),
        r("m-write", [m(prefix="/m", methods=["POST", "PUT"])], direct=(200, "m-write")),
        r("m-other", [m(prefix="/m")], direct=(200, "m-other")),
        # Two matchers on one route: either matches.
        r("either", [m(exact="/either/one"), m(exact="/either/two")], direct=(200, "either")),
        r("order-specific", [m(prefix="/order/specific")], direct=(200, "specific")),
        r("order-general", [m(prefix="/order")], direct=(200, "general")),
        r("first", [m(prefix="/first")], direct=(200, "first-a")),
        r("first-shadowed", [m(prefix="/first/deeper")], direct=(200, "first-b")),
        r("api", [m(prefix="/api")], to="echo"),
    ]


class RoutingTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.echo = t.start_upstream(cls, "echo")
        cls.cfg = t.new_config(cls)
        cls.port = t.free_port()
        cls.port2 = t.free_port()
        vss = [
            t.virtual_service("vs-a", [r("a", direct=(200, "vs-a"))], domains=["a.example"]),
            t.virtual_service("vs-b", [r("b", direct=(200, "vs-b"))], domains=["b.example", "*.wild.example"]),
            t.virtual_service("vs-default", default_routes(), domains=["*"]),
        ]
        cls.cfg.write_stack(cls.port, vss, [t.upstream("echo", [(t.LOCALHOST, cls.echo.port)])])
        # A second gateway that serves only vs-a: no catch-all virtual host.
        cls.cfg.write_obj("gateway-only-a.yaml", t.gateway("only-a", cls.port2, ["vs-a"]))
        cls.portico = t.start_portico(cls, cls.cfg)
        t.wait_for_port(cls.port2, 5)

    def get(self, path, method="GET", headers=None, host=None, port=None, body=None):
        return t.request(port or self.port, method, path, headers=headers, host=host, body=body)

    def assertBody(self, resp, status, body):
        self.assertEqual((resp.status, resp.body.decode("utf-8", "replace")), (status, body), resp)

    # --- path matchers ---------------------------------------------------------------------------

    def test_exact(self):
        self.assertBody(self.get("/exact"), 200, "exact")
        self.assertBody(self.get("/exact?x=1"), 200, "exact")  # the query is not part of the path
        self.assertEqual(self.get("/exact/").status, 404)
        self.assertEqual(self.get("/exactly").status, 404)
        self.assertEqual(self.get("/EXACT").status, 404)  # case-sensitive by default

    def test_regex_is_a_full_match(self):
        self.assertBody(self.get("/re/123"), 200, "regex")
        self.assertBody(self.get("/re/123?q=abc"), 200, "regex")
        self.assertEqual(self.get("/re/123abc").status, 404)
        self.assertEqual(self.get("/re/abc").status, 404)
        self.assertEqual(self.get("/x/re/123").status, 404)

    def test_case_insensitive_prefix(self):
        self.assertBody(self.get("/ci/x"), 200, "ci")
        self.assertBody(self.get("/CI/x"), 200, "ci")
        self.assertBody(self.get("/Ci/"), 200, "ci")
        self.assertEqual(self.get("/API/x").status, 404)  # the api route is case-sensitive

    def test_header_matchers(self):
        prod = {"X-Env": "prod"}  # skips the inverted matcher
        self.assertBody(self.get("/hdr", headers={"X-Match": "yes"}), 200, "hdr-value")
        self.assertBody(self.get("/hdr", headers={"x-match": "no", **prod}), 200, "hdr-fallback")
        self.assertBody(self.get("/hdr", headers={"X-Version": "v12"}), 200, "hdr-regex")
        self.assertBody(self.get("/hdr", headers={"X-Version": "v12x", **prod}), 200, "hdr-fallback")  # full match
        self.assertBody(self.get("/hdr", headers={"X-Env": "dev"}), 200, "hdr-not-prod")
        self.assertBody(self.get("/hdr", headers=prod), 200, "hdr-fallback")
        # Envoy's semantics: an absent header does not match "x-env: prod", so the inverted matcher matches.
        self.assertBody(self.get("/hdr"), 200, "hdr-not-prod")

    def test_query_matchers(self):
        self.assertBody(self.get("/q?flag=on"), 200, "q-value")
        self.assertBody(self.get("/q?a=1&flag=on&b=2"), 200, "q-value")
        self.assertBody(self.get("/q?flag=off"), 200, "q-fallback")
        self.assertBody(self.get("/q?id=42"), 200, "q-regex")
        self.assertBody(self.get("/q?id=42a"), 200, "q-fallback")
        self.assertBody(self.get("/q"), 200, "q-fallback")

    def test_method_matchers(self):
        self.assertBody(self.get("/m", method="POST", body=b"x"), 200, "m-write")
        self.assertBody(self.get("/m", method="PUT", body=b"x"), 200, "m-write")
        self.assertBody(self.get("/m"), 200, "m-other")
        self.assertBody(self.get("/m", method="DELETE"), 200, "m-other")

    def test_any_matcher_of_a_route(self):
        self.assertBody(self.get("/either/one"), 200, "either")
        self.assertBody(self.get("/either/two"), 200, "either")
        self.assertEqual(self.get("/either/three").status, 404)

    def test_first_match_wins(self):
        self.assertBody(self.get("/order/specific/x"), 200, "specific")
        self.assertBody(self.get("/order/other"), 200, "general")
        self.assertBody(self.get("/first/deeper"), 200, "first-a")

    def test_no_route_is_404(self):
        resp = self.get("/nothing/here")
        self.assertEqual(resp.status, 404)
        self.assertIn("no route matched", resp.text())
        self.assertEqual([q for q in self.echo.requests() if q["path"] == "/nothing/here"], [])

    # --- forwarding ------------------------------------------------------------------------------

    def test_path_and_query_forwarded_unchanged(self):
        target = "/api/users/7?id=7&x=a%20b&empty=&dup=1&dup=2"
        echo = self.get(target).json()
        self.assertEqual(echo["target"], target)
        self.assertEqual(echo["method"], "GET")

    def test_methods_and_bodies_forwarded(self):
        for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
            resp = self.get("/api/body", method=method, body=b"0123456789")
            self.assertEqual(resp.status, 200, (method, resp))
            echo = resp.json()
            self.assertEqual((echo["method"], echo["body_length"]), (method, 10))

    def test_head_has_no_body(self):
        get = self.get("/api/bytes/1234")
        head = self.get("/api/bytes/1234", method="HEAD")
        self.assertEqual((get.status, len(get.body)), (200, 1234))
        self.assertEqual((head.status, head.body), (200, b""))
        self.assertEqual(head.header("Content-Length"), "1234")

    def test_host_preserved(self):
        echo = self.get("/api/host", host="service.example:8080").json()
        self.assertEqual(t.echo_header(echo, "Host"), ["service.example:8080"])

    def test_x_forwarded_for_and_proto(self):
        echo = self.get("/api/xff").json()
        self.assertEqual(t.echo_header(echo, "X-Forwarded-For"), ["127.0.0.1"])
        self.assertEqual(t.echo_header(echo, "X-Forwarded-Proto"), ["http"])
        echo = self.get("/api/xff", headers={"X-Forwarded-For": "10.1.2.3"}).json()
        self.assertEqual(t.echo_header(echo, "X-Forwarded-For"), ["10.1.2.3, 127.0.0.1"])

    def test_x_forwarded_proto_is_not_spoofable(self):
        echo = self.get("/api/xfp", headers={"X-Forwarded-Proto": "https"}).json()
        self.assertEqual(t.echo_header(echo, "X-Forwarded-Proto"), ["http"])

    def test_x_request_id_generated_when_absent(self):
        ids = []
        for _ in range(3):
            echo = self.get("/api/rid").json()
            values = t.echo_header(echo, "X-Request-Id")
            self.assertEqual(len(values), 1, echo["headers"])
            self.assertGreaterEqual(len(values[0]), 16, values)
            ids.append(values[0])
        self.assertEqual(len(set(ids)), 3, f"request ids not unique: {ids}")

    def test_x_request_id_kept_when_present(self):
        rid = str(uuid.uuid4())
        echo = self.get("/api/rid", headers={"X-Request-Id": rid}).json()
        self.assertEqual(t.echo_header(echo, "X-Request-Id"), [rid])

    def test_keep_alive_many_requests_one_connection(self):
        conn = http.client.HTTPConnection(t.LOCALHOST, self.port, timeout=10)
        self.addCleanup(conn.close)
        before = self.echo.connections
        for i in range(30):
            path = f"/api/ka/{i}" if i % 2 else "/exact"
            resp = t.request(self.port, "GET", path, conn=conn)
            self.assertEqual(resp.status, 200, (i, resp))
            if i % 2:
                self.assertEqual(resp.json()["path"], path)
        self.assertIsNotNone(conn.sock, "the proxy closed a keep-alive connection")
        # The proxy pools upstream connections: 15 forwarded requests need far fewer than 15 connections.
        self.assertLessEqual(self.echo.connections - before, 4)

    # --- virtual hosts ---------------------------------------------------------------------------

    def test_host_selects_virtual_host(self):
        self.assertBody(self.get("/", host="a.example"), 200, "vs-a")
        self.assertBody(self.get("/", host="b.example"), 200, "vs-b")
        self.assertBody(self.get("/exact", host="c.example"), 200, "exact")

    def test_host_port_and_case_ignored(self):
        self.assertBody(self.get("/", host="a.example:8080"), 200, "vs-a")
        self.assertBody(self.get("/", host="A.Example"), 200, "vs-a")

    def test_suffix_wildcard_domain(self):
        self.assertBody(self.get("/", host="x.wild.example"), 200, "vs-b")
        self.assertBody(self.get("/", host="y.x.wild.example"), 200, "vs-b")
        self.assertBody(self.get("/exact", host="wild.example"), 200, "exact")  # not covered by *.wild

    def test_absolute_form_uses_its_authority(self):
        raw = t.raw_exchange(self.port, b"GET http://b.example/ HTTP/1.1\r\nHost: b.example\r\n"
                                        b"Connection: close\r\n\r\n")
        self.assertEqual(t.status_of(raw), 200, raw)
        self.assertTrue(raw.endswith(b"vs-b"), raw)

    def test_host_selection_with_curl(self):
        out = t.curl("--http1.1", "-sS", "-H", "Host: b.example", "-w", "\n%{http_code}",
                     f"http://127.0.0.1:{self.port}/anything")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, "vs-b\n200")

    def test_unknown_host_without_catch_all_is_404(self):
        self.assertBody(self.get("/", host="a.example", port=self.port2), 200, "vs-a")
        resp = self.get("/", host="zzz.example", port=self.port2)
        self.assertEqual(resp.status, 404, resp)


if __name__ == "__main__":
    t.main()
