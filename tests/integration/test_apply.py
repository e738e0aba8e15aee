#!/usr/bin/env python3
"""`portico apply` and `portico delete` through the API, with the real binary: applied to `portico run`
(files: one file per resource under DIR/applied/) a VirtualService is served within 1 s and listed by
`portico get`; an invalid one is refused (422, every diagnostic, nothing written, the old one still
served); delete -> 404 through the gateway; apply from stdin and from a directory; a resource in an
operator's file is a conflict; `portico server` with a token: writes without it -> 401, with it -> written.
The etcd and Consul KV stores are tested in test_apply_stores.py."""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support import fleet as f  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402

WITHIN = 1.0


def shop(upstream, prefix="/"):
    return t.to_yaml(t.virtual_service("shop", [r("main", [m(prefix=prefix)], to=upstream)],
                                       domains=["shop.example"]))


INVALID_SHOP = """apiVersion: gateway.portico.dev/v1
kind: VirtualService
metadata:
  name: shop
  namespace: default
spec:
  virtualHost:
    domains: ["shop.example"]
    routes:
      - matchers:
          - regex: "/(unclosed"
        directResponseAction:
          status: 200
"""


def cli(*args, stdin=None):
    return subprocess.run([t.PORTICO_BIN, *args], capture_output=True, text=True, timeout=60,
                          input=stdin if stdin is not None else "")


def read(path):
    with open(path) as fh:
        return fh.read()


def http(port, method, path, body=b"", headers=None):
    return t.request(port, method, path, headers=headers, body=body, timeout=10.0)


class ApplyRunTest(t.IntegrationTest):
    def setUp(self):
        super().setUp()
        self.a = self.start_upstream("a")
        self.b = self.start_upstream("b")
        self.port = t.free_port()
        self.cfg = self.new_config()
        self.cfg.write_obj("upstreams.yaml", t.upstream("a", [(t.LOCALHOST, self.a.port)]),
                           t.upstream("b", [(t.LOCALHOST, self.b.port)]))
        # No virtualServices: the Gateway serves every VirtualService.
        self.cfg.write_obj("gateway.yaml", t.resource("Gateway", "gw", {"bindAddress": t.LOCALHOST,
                                                                         "bindPort": self.port}))
        self.portico = self.start_portico(self.cfg)
        self.admin_port = int(self.portico.admin.rsplit(":", 1)[1])

    def served_by(self, path="/x"):
        resp = t.request(self.port, "GET", path, host="shop.example", timeout=3.0)
        return resp.header("X-Upstream") if resp.status == 200 else resp.status

    def wait_served_by(self, want, timeout=5.0):
        return t.wait_until(lambda: self.served_by() == want, timeout, 0.01, f"served by {want}")

    def apply(self, *args, stdin=None):
        return cli("apply", *args, "--admin", self.portico.admin, stdin=stdin)

    def applied_file(self, name="shop", kind="VirtualService"):
        return os.path.join(self.cfg.path, "applied", "default", f"{kind}.{name}.yaml")

    def test_apply_served_listed_refused_and_deleted(self):
        self.assertEqual(self.served_by(), 404)
        path = os.path.join(self.cfg._root, "shop.yaml")
        with open(path, "w") as fh:
            fh.write(shop("a"))
        start = time.monotonic()
        out = self.apply("-f", path)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "virtualservice default/shop created")
        self.wait_served_by("a", timeout=WITHIN)
        print(f"\nportico apply -> served in {(time.monotonic() - start) * 1000:.0f} ms", file=sys.stderr)
        self.assertTrue(os.path.exists(self.applied_file()))
        got = t.run_cli("get", "vs", "shop", "--admin", self.portico.admin)
        self.assertEqual(got.returncode, 0, got.stderr)
        self.assertIn("shop", got.stdout)
        self.assertIn("Accepted", got.stdout)

        # Again, the same: unchanged. Edited: configured, served by b.
        out = self.apply("-f", path)
        self.assertEqual(out.stdout.strip(), "virtualservice default/shop unchanged", out.stderr)
        with open(path, "w") as fh:
            fh.write(shop("b"))
        out = self.apply("-f", path)
        self.assertEqual(out.stdout.strip(), "virtualservice default/shop configured", out.stderr)
        self.wait_served_by("b", timeout=WITHIN)

        # Invalid: 422 with the diagnostic's path, nothing written, b still serves.
        before = read(self.applied_file())
        resp = http(self.admin_port, "POST", "/v1/apply", (shop("a") + "---\n" + INVALID_SHOP.replace(
            "name: shop", "name: other")).encode())
        self.assertEqual(resp.status, 422, resp.text())
        diags = resp.json()["diagnostics"]
        self.assertTrue(any(d["path"].endswith("matchers[0].regex") and d.get("name") == "other"
                            for d in diags), diags)
        self.assertEqual(read(self.applied_file()), before)  # the valid document too: unwritten
        self.assertFalse(os.path.exists(self.applied_file("other")))
        bad = os.path.join(self.cfg._root, "bad.yaml")
        with open(bad, "w") as fh:
            fh.write(INVALID_SHOP)
        out = self.apply("-f", bad)
        self.assertEqual(out.returncode, 1)
        self.assertIn("bad.yaml:11:", out.stderr)
        self.assertIn("spec.virtualHost.routes[0].matchers[0].regex", out.stderr)
        self.assertIn("nothing was applied", out.stderr)
        self.assertEqual(read(self.applied_file()), before)
        time.sleep(0.3)
        self.assertEqual(self.served_by(), "b")

        # Deleted: 404 through the gateway; deleting again: not found, exit 1.
        out = cli("delete", "vs", "shop", "--admin", self.portico.admin)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "virtualservice default/shop deleted")
        self.wait_served_by(404, timeout=WITHIN)
        self.assertFalse(os.path.exists(self.applied_file()))
        self.assertIsNone(self.portico.resource("VirtualService", "shop"))
        out = cli("delete", "virtualservice", "shop", "-n", "default", "--admin", self.portico.admin)
        self.assertEqual(out.returncode, 1)
        self.assertIn("virtualservice default/shop error", out.stderr)
        resp = http(self.admin_port, "DELETE", "/v1/resources/VirtualService/default/shop")
        self.assertEqual(resp.status, 404)
        stats = self.portico.stats()
        for result, n in (("created", 1), ("unchanged", 1), ("configured", 1), ("deleted", 1),
                          ("not_found", 2), ("conflict", 0)):
            self.assertEqual(t.metric_sum(stats, "portico_api_writes_total", result=result), n, result)
        self.assertEqual(t.metric_sum(stats, "portico_api_write_requests_total", result="refused"), 2)

    def test_apply_from_stdin_and_a_directory_and_delete_by_file(self):
        out = self.apply("-f", "-", stdin=shop("a"))
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "virtualservice default/shop created")
        self.wait_served_by("a", timeout=WITHIN)

        d = os.path.join(self.cfg._root, "more")
        os.makedirs(os.path.join(d, "sub"))
        with open(os.path.join(d, "one.yaml"), "w") as fh:
            fh.write(shop("b"))
        with open(os.path.join(d, "sub", "two.yaml"), "w") as fh:
            fh.write(t.to_yaml(t.upstream("c", [(t.LOCALHOST, self.a.port)])) + "---\n" +
                     t.to_yaml(t.virtual_service("other", [r("o", [m(prefix="/")], to="c")],
                                                 domains=["other.example"])))
        out = self.apply("-f", d)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.splitlines(), ["virtualservice default/shop configured",
                                                   "upstream default/c created",
                                                   "virtualservice default/other created"])
        self.wait_served_by("b", timeout=WITHIN)
        t.wait_until(lambda: t.request(self.port, "GET", "/", host="other.example").header("X-Upstream") == "a",
                     WITHIN, 0.01, "other served")

        out = cli("delete", "-f", os.path.join(d, "sub", "two.yaml"), "--admin", self.portico.admin)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.splitlines(), ["upstream default/c deleted",
                                                   "virtualservice default/other deleted"])
        t.wait_until(lambda: t.request(self.port, "GET", "/", host="other.example").status == 404,
                     WITHIN, 0.01, "other gone")

    def test_an_operators_file_is_never_edited(self):
        self.cfg.write_obj("shop.yaml", t.virtual_service("shop", [r("main", [m(prefix="/")], to="a")],
                                                          domains=["shop.example"]),
                           t.upstream("c", [(t.LOCALHOST, self.a.port)]))
        self.wait_served_by("a")
        before = read(self.cfg.file("shop.yaml"))
        out = self.apply("-f", "-", stdin=shop("b"))
        self.assertEqual(out.returncode, 1)
        self.assertIn("virtualservice default/shop error", out.stderr)
        self.assertIn("shop.yaml", out.stderr)
        resp = http(self.admin_port, "POST", "/v1/apply", shop("b").encode())
        self.assertEqual(resp.status, 409)
        self.assertEqual(resp.json()["results"][0]["reason"], "conflict")
        out = cli("delete", "vs", "shop", "--admin", self.portico.admin)
        self.assertEqual(out.returncode, 1)
        self.assertEqual(read(self.cfg.file("shop.yaml")), before)
        self.assertFalse(os.path.exists(os.path.join(self.cfg.path, "applied")))
        time.sleep(0.2)
        self.assertEqual(self.served_by(), "a")

    def test_limits_and_methods(self):
        head = (b"POST /v1/apply HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                % (4 * 1024 * 1024 + 1))
        self.assertEqual(t.status_of(t.raw_exchange(self.admin_port, head)), 413)
        for port in (self.admin_port,):
            chunked = b"POST /v1/apply HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            self.assertEqual(t.status_of(t.raw_exchange(port, chunked)), 411)
        self.assertEqual(http(self.admin_port, "GET", "/v1/apply").status, 405)
        self.assertEqual(http(self.admin_port, "POST", "/v1/apply", b"").status, 422)
        self.assertEqual(http(self.admin_port, "DELETE", "/v1/resources/Nope/default/x").status, 400)
        self.assertEqual(http(self.admin_port, "DELETE", "/v1/resources/VirtualService/x").status, 400)
        # The read-only API is unchanged.
        self.assertEqual(http(self.admin_port, "GET", "/ready").status, 200)


class ApplyServerTest(t.IntegrationTest):
    TOKEN = "apply-token"

    def setUp(self):
        super().setUp()
        self.cfg = self.new_config()
        self.cfg.write_obj("upstream.yaml", t.upstream("a", [(t.LOCALHOST, 1)]))
        self.token_file = f.write_token(self.cfg._root, "token", self.TOKEN)
        self.server = f.register(self, f.Server(self.cfg.path, token_file=self.token_file))

    def test_writes_want_the_token(self):
        doc = shop("a")
        for port in (self.server.listen_port, int(self.server.admin.rsplit(":", 1)[1])):
            resp = http(port, "POST", "/v1/apply", doc.encode())
            self.assertEqual(resp.status, 401, resp.text())
            resp = http(port, "DELETE", "/v1/resources/Upstream/default/a")
            self.assertEqual(resp.status, 401, resp.text())
        self.assertFalse(os.path.exists(os.path.join(self.cfg.path, "applied")))
        self.assertEqual(t.metric_sum(self.server.stats(), "portico_api_write_requests_total",
                                      result="unauthorized"), 4)
        out = cli("apply", "-f", "-", "--server", self.server.url, stdin=doc)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("401", out.stderr)

        out = cli("apply", "-f", "-", "--server", self.server.url, "--token-file", self.token_file,
                  stdin=doc)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "virtualservice default/shop created")
        t.wait_until(lambda: self.server.resource("VirtualService", "shop"), 3.0, message="listed")
        out = cli("delete", "vs", "shop", "--server", self.server.url, "--token-file", self.token_file)
        self.assertEqual(out.returncode, 0, out.stderr)
        t.wait_until(lambda: self.server.resource("VirtualService", "shop") is None, 3.0, message="gone")


if __name__ == "__main__":
    t.main()
