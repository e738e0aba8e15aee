#!/usr/bin/env python3
"""Fail closed with Gloo's YAML: a VirtualService whose authentication Portico does not implement yet
(options.extauth, options.jwt) is Rejected and never served without it, while the rest of the
configuration keeps working; a Gloo Gateway selecting VirtualServices by label expressions."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402

GLOO = """apiVersion: gateway.solo.io/v1
kind: Gateway
metadata:
  name: gateway-proxy
  namespace: gloo-system
  resourceVersion: "1234"
spec:
  bindAddress: {address}
  bindPort: {port}
  proxyNames: [gateway-proxy]
  httpGateway:
    virtualServiceExpressions:
      expressions:
        - {{key: exposure, operator: In, values: [public]}}
    virtualServiceNamespaces: ["*"]
---
apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata:
  name: admin
  namespace: gloo-system
  labels: {{exposure: public}}
spec:
  virtualHost:
    domains: [admin.example.com]
    options:
      extauth:
        configRef: {{name: basic-auth, namespace: gloo-system}}
    routes:
      - matchers: [{{prefix: /}}]
        directResponseAction: {{status: 200, body: "admin console"}}
---
apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata:
  name: api
  namespace: gloo-system
  labels: {{exposure: public}}
spec:
  virtualHost:
    domains: [api.example.com]
    routes:
      - matchers: [{{prefix: /private}}]
        directResponseAction: {{status: 200, body: "private data"}}
        options:
          jwt: {{disable: false}}
      - matchers: [{{prefix: /}}]
        directResponseAction: {{status: 200, body: "public api"}}
---
apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata:
  name: www
  namespace: web
  labels: {{exposure: public}}
spec:
  displayName: Website
  virtualHost:
    domains: [www.example.com]
    routes:
      - matchers: [{{prefix: /}}]
        directResponseAction: {{status: 200, body: "website"}}
---
apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata:
  name: internal
  namespace: web
  labels: {{exposure: internal}}
spec:
  virtualHost:
    domains: [internal.example.com]
    routes:
      - matchers: [{{prefix: /}}]
        directResponseAction: {{status: 200, body: "internal"}}
"""


class FailClosedTest(t.IntegrationTest):
    def test_gloo_auth_is_never_silently_dropped(self):
        cfg = self.new_config()
        port = t.free_port()
        cfg.write("gloo.yaml", GLOO.format(address=t.LOCALHOST, port=port))
        portico = self.start_portico(cfg)

        admin = portico.resource("VirtualService", "admin", "gloo-system")
        self.assertEqual(admin["state"], "Rejected", admin)
        self.assertTrue(any("extauth" in r["path"] and r["severity"] == "error"
                            for r in admin["reasons"]), admin)
        api = portico.resource("VirtualService", "api", "gloo-system")
        self.assertEqual(api["state"], "Rejected", api)
        self.assertTrue(any(r["path"].endswith("options.jwt") for r in api["reasons"]), api)

        # Neither is served at all, not even the route without jwt: never half a VirtualService.
        self.assertEqual(t.request(port, "GET", "/", headers={"Host": "admin.example.com"}).status, 404)
        self.assertEqual(t.request(port, "GET", "/private", headers={"Host": "api.example.com"}).status,
                         404)
        self.assertEqual(t.request(port, "GET", "/", headers={"Host": "api.example.com"}).status, 404)

        # The rest works: selected by the Gateway's label expression, in any namespace.
        www = t.request(port, "GET", "/", headers={"Host": "www.example.com"})
        self.assertEqual((www.status, www.text()), (200, "website"))
        self.assertEqual(portico.resource("VirtualService", "www", "web")["state"], "Warning")
        # Not selected (exposure: internal).
        self.assertEqual(t.request(port, "GET", "/", headers={"Host": "internal.example.com"}).status,
                         404)

    def test_validate_names_the_field(self):
        cfg = self.new_config()
        cfg.write("gloo.yaml", GLOO.format(address=t.LOCALHOST, port=t.free_port()))
        proc = t.run_cli("validate", cfg.path)
        self.assertNotEqual(proc.returncode, 0)
        out = proc.stdout + proc.stderr
        self.assertIn("spec.virtualHost.options.extauth: extauth (authentication) is not implemented",
                      out)
        self.assertIn("options.jwt: jwt (JWT authentication) is not implemented", out)


if __name__ == "__main__":
    t.main()
