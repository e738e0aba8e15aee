#!/usr/bin/env python3
"""`portico route explain` (against a running portico and --dir) and `portico route add|remove`
(file edits that keep comments, refuse invalid results, and are picked up by a running portico)."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402

OK, FINDINGS, USAGE, UNAVAILABLE = 0, 1, 2, 3

VS_TEMPLATE = """# The web VirtualService. This comment must survive every edit.
apiVersion: gateway.portico.dev/v1
kind: VirtualService
metadata:
  name: web
  namespace: default
spec:
  virtualHost:
    domains: ["web.example"]   # only this host
    routes:
      # Health checks answer locally.
      - name: health
        matchers:
          - exact: /health
        directResponseAction:
          status: 200
          body: "ok"

      - name: users-post
        matchers:
          - prefix: /users
            methods: ["POST"]
        routeAction:
          single:
            upstream: {name: echo}

      - name: users
        matchers:
          - prefix: /users
            headers:
              - name: x-team
                value: core
        routeAction:
          single:
            upstream: {name: echo}
        options:
          prefixRewrite: /v2/users
          timeout: 3s
          headerManipulation:
            requestHeadersToAdd:
              - header: {key: X-Via, value: portico}
# end of file comment
"""


class RouteTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.echo = t.start_upstream(cls, "echo")

    def setUp(self):
        super().setUp()
        self.cfg = self.new_config()
        self.port = t.free_port()
        self.cfg.write_obj("upstream-echo.yaml", t.upstream("echo", [(t.LOCALHOST, self.echo.port)]))
        self.cfg.write("vs-web.yaml", VS_TEMPLATE)
        self.cfg.write_obj("gateway-gw.yaml", t.gateway("gw", self.port, ["web"]))

    def explain(self, *args, portico=None):
        where = ("--admin", portico.admin) if portico else ("--dir", self.cfg.path)
        return t.run_cli("route", "explain", *args, *where)

    # --- explain ---------------------------------------------------------------------------------

    def test_explain_agrees_with_the_proxy(self):
        portico = self.start_portico(self.cfg)
        url = f"http://web.example:{self.port}/users/42?x=1"
        proc = self.explain("GET", url, "-H", "X-Team: core", "-o", "json", portico=portico)
        self.assertEqual(proc.returncode, OK, proc.stdout + proc.stderr)
        x = json.loads(proc.stdout)
        self.assertEqual(x["outcome"], "forward")
        self.assertEqual(x["gateway"]["name"], "default/gw")
        self.assertEqual(x["virtual_service"]["name"], "default/web")
        self.assertEqual(x["route"]["name"], "default/web/users")
        self.assertEqual([r["reasons"] for r in x["routes"]],
                         [['path "/users/42" is not "/health"'], ["method GET is not one of POST"], []])
        self.assertEqual(x["upstreams"][0]["endpoints"], [f"{t.LOCALHOST}:{self.echo.port}"])
        self.assertEqual(x["policies"]["timeout_ms"], 3000)
        # The proxy does what the explanation says.
        self.echo.clear()
        resp = t.request(self.port, "GET", "/users/42?x=1", host="web.example",
                         headers={"X-Team": "core"})
        self.assertEqual(resp.status, 200)
        got = self.echo.wait_for_requests(1)[-1]
        self.assertEqual(got["target"], x["upstream_request"]["target"])
        self.assertEqual(x["upstream_request"]["target"], "/v2/users/42?x=1")

        text = self.explain("GET", url, portico=portico)
        self.assertEqual(text.returncode, FINDINGS, text.stdout + text.stderr)  # no x-team: 404
        for needle in ("Gateway:          default/gw", "VirtualService:   default/web",
                       "header x-team is absent", "no route of default/web matches"):
            self.assertIn(needle, text.stdout)
        self.assertEqual(t.request(self.port, "GET", "/users/42", host="web.example").status, 404)

    def test_explain_from_files(self):
        proc = self.explain("POST", f"http://web.example:{self.port}/users")
        self.assertEqual(proc.returncode, OK, proc.stdout + proc.stderr)
        self.assertIn("Route:            default/web/users-post", proc.stdout)
        self.assertIn(f"Upstream:         default/echo: {t.LOCALHOST}:{self.echo.port}", proc.stdout)
        self.assertIn("Sent upstream:    POST /users (Host: web.example:", proc.stdout)
        health = self.explain("GET", f"http://web.example:{self.port}/health")
        self.assertIn('Direct response:  200 "ok"', health.stdout)
        other_port = self.explain("GET", "http://web.example:1/")
        self.assertEqual(other_port.returncode, FINDINGS)
        self.assertIn(f"no Gateway listens on port 1 (ports in use: {self.port})", other_port.stdout)
        host = self.explain("GET", f"http://nope.example:{self.port}/")
        self.assertIn("serves the host 'nope.example", host.stdout)

    def test_explain_errors(self):
        self.assertEqual(self.explain("GET").returncode, USAGE)
        proc = self.explain("get", "http://a/")
        self.assertEqual(proc.returncode, USAGE)
        self.assertIn("not a method", proc.stderr)
        proc = self.explain("GET", "http://web.example/", "-H", "nocolon")
        self.assertEqual(proc.returncode, USAGE)
        self.assertIn("-H wants 'Name: value'", proc.stderr)
        proc = t.run_cli("route", "explain", "GET", "http://a/", "--admin", f"127.0.0.1:{t.free_port()}")
        self.assertEqual(proc.returncode, UNAVAILABLE)

    # --- add / remove ----------------------------------------------------------------------------

    def read_vs(self):
        with open(self.cfg.file("vs-web.yaml")) as f:
            return f.read()

    def test_add_dry_run_writes_nothing(self):
        proc = t.run_cli("route", "add", "--dir", self.cfg.path, "--vs", "web", "--path-prefix", "/api",
                         "--upstream", "echo", "--prefix-rewrite", "/", "--dry-run")
        self.assertEqual(proc.returncode, OK, proc.stdout + proc.stderr)
        self.assertEqual(self.read_vs(), VS_TEMPLATE)
        self.assertIn("--- a/vs-web.yaml\n+++ b/vs-web.yaml\n", proc.stdout)
        self.assertIn("+      - name: api\n", proc.stdout)
        self.assertIn("+          prefixRewrite: /\n", proc.stdout)
        # The router replaces exactly the matched prefix; the footgun is pointed out.
        self.assertIn("/api/x is sent upstream as //x", proc.stderr)

    def test_add_keeps_comments_and_is_served(self):
        portico = self.start_portico(self.cfg)
        self.assertEqual(t.request(self.port, "GET", "/api/items", host="web.example").status, 404)
        proc = t.run_cli("route", "add", "--dir", self.cfg.path, "--vs", "web", "--path-prefix", "/api/",
                         "--upstream", "echo", "--prefix-rewrite", "/", "--index", "1")
        self.assertEqual(proc.returncode, OK, proc.stdout + proc.stderr)
        self.assertIn("route api added to VirtualService default/web at index 1", proc.stdout)
        text = self.read_vs()
        for comment in ("# The web VirtualService.", "# only this host", "# Health checks answer locally.",
                        "# end of file comment"):
            self.assertIn(comment, text)
        # Only the route's lines were added (and a blank line, as between the other routes).
        block = ("      - name: api\n        matchers:\n        - prefix: /api/\n        routeAction:\n"
                 "          single:\n            upstream:\n              name: echo\n        options:\n"
                 "          prefixRewrite: /\n\n")
        self.assertEqual(text, VS_TEMPLATE.replace("      - name: users-post", block + "      - name: users-post"))
        self.assertEqual(t.run_cli("validate", self.cfg.path).returncode, OK)
        self.echo.clear()
        resp = t.wait_until(lambda: (lambda r: r.status == 200 and r)(
            t.request(self.port, "GET", "/api/items", host="web.example")), 5, message="new route served")
        self.assertEqual(self.echo.requests()[-1]["path"], "/items")
        explained = t.run_cli("route", "explain", "GET", f"http://web.example:{self.port}/api/items",
                              "--admin", portico.admin, "-o", "json")
        self.assertEqual(json.loads(explained.stdout)["route"], {"name": "default/web/api", "index": 1})
        del resp

    def test_add_refuses_an_invalid_result(self):
        proc = t.run_cli("route", "add", "--dir", self.cfg.path, "--vs", "web", "--path-regex", "/(unclosed",
                         "--upstream", "echo")
        self.assertEqual(proc.returncode, FINDINGS, proc.stdout + proc.stderr)
        self.assertIn("refusing to write vs-web.yaml", proc.stderr)
        self.assertIn("routes[0].matchers[0].regex", proc.stderr)
        self.assertIn("+      - name: unclosed\n", proc.stdout)  # what would have been written
        self.assertEqual(self.read_vs(), VS_TEMPLATE)
        proc = t.run_cli("route", "add", "--dir", self.cfg.path, "--vs", "web", "--path-prefix", "api",
                         "--direct-response", "200")
        self.assertEqual(proc.returncode, FINDINGS, proc.stderr)  # a prefix must start with '/'
        self.assertEqual(self.read_vs(), VS_TEMPLATE)

    def test_add_with_warnings_writes_and_says_so(self):
        # A missing upstream is a Warning (the route answers 503), not an error: written, and noted.
        proc = t.run_cli("route", "add", "--dir", self.cfg.path, "--vs", "web", "--path-prefix", "/x",
                         "--upstream", "missing")
        self.assertEqual(proc.returncode, OK, proc.stdout + proc.stderr)
        self.assertRegex(proc.stderr, r"note: vs-web.yaml:\d+:\d+: warning: .*missing")
        self.assertIn("- name: x\n", self.read_vs())

    def test_add_argument_errors(self):
        base = ("route", "add", "--dir", self.cfg.path)
        cases = [
            ((*base, "--path-prefix", "/a", "--upstream", "echo"), USAGE, "--vs NAME is required"),
            ((*base, "--vs", "web", "--upstream", "echo"), USAGE, "exactly one of --path-prefix"),
            ((*base, "--vs", "web", "--path-prefix", "/a"), USAGE, "exactly one of --upstream"),
            ((*base, "--vs", "web", "--path-prefix", "/a", "--upstream", "echo", "--index", "9"), USAGE,
             "past the end"),
            ((*base, "--vs", "nope", "--path-prefix", "/a", "--upstream", "echo"), FINDINGS,
             "VirtualService default/nope is not defined"),
            ((*base, "--vs", "web", "--path-prefix", "/a", "--upstream", "echo", "--name", "health"),
             FINDINGS, "already has a route named 'health'"),
        ]
        for args, code, needle in cases:
            proc = t.run_cli(*args)
            self.assertEqual(proc.returncode, code, f"{args}: {proc.stderr}")
            self.assertIn(needle, proc.stderr, args)
            self.assertEqual(len(proc.stderr.strip().splitlines()), 1, proc.stderr)
        self.assertEqual(self.read_vs(), VS_TEMPLATE)

    def test_flow_style_routes_are_refused(self):
        self.cfg.write_obj("vs-flow.yaml", t.virtual_service("flow", []))
        proc = t.run_cli("route", "add", "--dir", self.cfg.path, "--vs", "flow", "--path-prefix", "/",
                         "--direct-response", "200")
        self.assertEqual(proc.returncode, FINDINGS)
        self.assertIn("flow-style", proc.stderr)

    def test_remove(self):
        portico = self.start_portico(self.cfg)
        self.assertEqual(t.request(self.port, "GET", "/health", host="web.example").status, 200)
        dry = t.run_cli("route", "remove", "--dir", self.cfg.path, "--vs", "web", "--name", "health",
                        "--dry-run")
        self.assertEqual(dry.returncode, OK, dry.stderr)
        self.assertIn("-      # Health checks answer locally.\n-      - name: health\n", dry.stdout)
        self.assertEqual(self.read_vs(), VS_TEMPLATE)
        proc = t.run_cli("route", "remove", "--dir", self.cfg.path, "--vs", "web", "--name", "health")
        self.assertEqual(proc.returncode, OK, proc.stdout + proc.stderr)
        text = self.read_vs()
        self.assertNotIn("name: health", text)
        self.assertIn("# The web VirtualService.", text)
        self.assertIn("# end of file comment", text)
        t.wait_until(lambda: t.request(self.port, "GET", "/health", host="web.example").status == 404, 5,
                     message="removed route no longer served")
        self.assertEqual(portico.resource("VirtualService", "web")["state"], "Accepted")
        missing = t.run_cli("route", "remove", "--dir", self.cfg.path, "--vs", "web", "--name", "health")
        self.assertEqual(missing.returncode, FINDINGS)
        self.assertIn("has no route named 'health'", missing.stderr)
        by_index = t.run_cli("route", "remove", "--dir", self.cfg.path, "--vs", "web", "--index", "0")
        self.assertEqual(by_index.returncode, OK, by_index.stderr)
        self.assertIn("route users-post removed", by_index.stdout)


if __name__ == "__main__":
    t.main()
