#!/usr/bin/env python3
"""The Kubernetes API double (tests/support/kube_double.py) driven by a real kubectl, so that it cannot drift
from the protocol kubectl speaks: apply of Gloo's custom resources (create, then a merge patch), get -o yaml,
delete, get --watch-only seeing an event, create secret tls, the CRDs, RBAC and Deployment of deploy/kubernetes/
applied cleanly, and a bearer token required. The API semantics kubectl does not reach (status subresource,
409 Conflict on a stale resourceVersion, 410 after a compaction, bookmarks, a stream cut) are checked over
plain HTTP.

kubectl: $PORTICO_KUBECTL, else `kubectl` on PATH (Debian's kubernetes-client, or another one); the test is
skipped without one. Its discovery cache and kubeconfig live in a temporary directory."""

import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.kube_double import KubeDouble, Kubectl  # noqa: E402

KUBECTL = Kubectl.binary()
REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

VS = """apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata:
  name: shop
  namespace: default
spec:
  virtualHost:
    domains: [shop.example]
    routes:
      - matchers: [{prefix: /}]
        routeAction: {single: {upstream: {name: echo, namespace: default}}}
"""
UPSTREAM = """apiVersion: gloo.solo.io/v1
kind: Upstream
metadata:
  name: echo
  namespace: default
spec:
  static:
    hosts: [{addr: 127.0.0.1, port: %d}]
"""


def http_json(port, method, path, body=None, headers=None, timeout=10.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data) if data else None


def watch_lines(port, path, count, timeout=10.0):
    """The first `count` events of a watch (then the connection is closed)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("GET", path)
    r = c.getresponse()
    out = []
    while len(out) < count:
        line = r.readline()
        if not line:
            break
        out.append(json.loads(line))
    c.close()
    return r.status, out


@unittest.skipIf(not KUBECTL, "no kubectl (install kubernetes-client, or set PORTICO_KUBECTL)")
class KubectlAgainstTheDouble(unittest.TestCase):
    def setUp(self):
        self.double = KubeDouble(bookmark_interval=0).start()
        self.addCleanup(self.double.stop)
        self.kubectl = Kubectl(self.double.address)
        self.addCleanup(self.kubectl.cleanup)
        self.files = tempfile.mkdtemp(prefix="kube-files-")
        self.addCleanup(shutil.rmtree, self.files, True)

    def write(self, name, text):
        path = os.path.join(self.files, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_version_and_discovery(self):
        out = self.kubectl.run("api-resources", "--api-group=gateway.solo.io", "-o", "name").stdout
        self.assertEqual(sorted(out.split()), ["gateways.gateway.solo.io", "routetables.gateway.solo.io",
                                               "virtualservices.gateway.solo.io"])
        out = self.kubectl.run("api-versions").stdout.split()
        self.assertIn("gloo.solo.io/v1", out)
        self.assertIn("v1", out)

    def test_apply_get_edit_delete(self):
        files = [self.write("vs.yaml", VS), self.write("us.yaml", UPSTREAM % 8080)]
        out = self.kubectl.run("apply", "-f", files[0], "-f", files[1]).stdout
        self.assertIn("virtualservice.gateway.solo.io/shop created", out)
        self.assertIn("upstream.gloo.solo.io/echo created", out)
        vs = self.double.get("virtualservices", "shop")
        self.assertEqual(vs["spec"]["virtualHost"]["domains"], ["shop.example"])
        self.assertEqual(vs["metadata"]["generation"], 1)
        self.assertIn("kubectl.kubernetes.io/last-applied-configuration", vs["metadata"]["annotations"])

        text = self.kubectl.run("get", "virtualservices.gateway.solo.io", "shop", "-o", "json").stdout
        got = json.loads(text)
        self.assertEqual(got["metadata"]["resourceVersion"], vs["metadata"]["resourceVersion"])
        yaml_text = self.kubectl.run("get", "vs", "shop", "-o", "yaml").stdout
        self.assertIn("name: shop", yaml_text)
        self.assertIn("- shop.example", yaml_text)
        listed = self.kubectl.run("get", "upstreams.gloo.solo.io", "-A").stdout
        self.assertIn("echo", listed)

        # apply again with a change: a merge patch; the generation moves, the resourceVersion too.
        self.write("vs.yaml", VS.replace("shop.example", "shop2.example"))
        out = self.kubectl.run("apply", "-f", files[0]).stdout
        self.assertIn("virtualservice.gateway.solo.io/shop configured", out)
        vs2 = self.double.get("virtualservices", "shop")
        self.assertEqual(vs2["spec"]["virtualHost"]["domains"], ["shop2.example"])
        self.assertEqual(vs2["metadata"]["generation"], 2)
        self.assertGreater(int(vs2["metadata"]["resourceVersion"]), int(vs["metadata"]["resourceVersion"]))
        out = self.kubectl.run("apply", "-f", files[0]).stdout
        self.assertIn("unchanged", out)

        out = self.kubectl.run("delete", "-f", files[0]).stdout
        self.assertIn('virtualservice.gateway.solo.io "shop" deleted', out)
        self.assertIsNone(self.double.get("virtualservices", "shop"))
        p = self.kubectl.run("get", "vs", "shop", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("NotFound", p.stderr)

    def test_watch_sees_an_event(self):
        proc = subprocess.Popen(self.kubectl.argv("get", "virtualservices.gateway.solo.io", "--watch-only",
                                                  "-o", "name"),
                                env=self.kubectl.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def stop():
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            proc.stdout.close()
            proc.stderr.close()
        self.addCleanup(stop)
        self.assertTrue(self.double.wait_watches(1, timeout=20.0), "kubectl started a watch")
        self.double.put(json.loads(json.dumps({"apiVersion": "gateway.solo.io/v1", "kind": "VirtualService",
                                               "metadata": {"name": "watched", "namespace": "default"},
                                               "spec": {}})))
        line = proc.stdout.readline().strip()
        self.assertEqual(line, "virtualservice.gateway.solo.io/watched")

    def test_create_secret_tls(self):
        cert, key = os.path.join(self.files, "tls.crt"), os.path.join(self.files, "tls.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "1", "-subj", "/CN=shop.example"], check=True, capture_output=True, timeout=60)
        out = self.kubectl.run("create", "secret", "tls", "shop-tls", "--cert", cert, "--key", key).stdout
        self.assertIn("secret/shop-tls created", out)
        s = self.double.get("secrets", "shop-tls")
        self.assertEqual(s["type"], "kubernetes.io/tls")
        import base64
        with open(cert, "rb") as f:
            self.assertEqual(base64.b64decode(s["data"]["tls.crt"]), f.read())
        p = self.kubectl.run("create", "secret", "tls", "shop-tls", "--cert", cert, "--key", key, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("already exists", p.stderr)

    def test_deploy_manifests_apply_cleanly(self):
        d = os.path.join(REPO, "deploy", "kubernetes")
        out = self.kubectl.run("apply", "-f", os.path.join(d, "crds.yaml")).stdout
        self.assertEqual(out.count("customresourcedefinition.apiextensions.k8s.io/"), 5, out)
        out = self.kubectl.run("apply", "-f", os.path.join(d, "rbac.yaml"), "-f",
                               os.path.join(d, "deployment.yaml")).stdout
        for what in ("namespace/portico-system", "serviceaccount/portico",
                     "clusterrole.rbac.authorization.k8s.io/portico",
                     "clusterrolebinding.rbac.authorization.k8s.io/portico", "configmap/portico-settings",
                     "deployment.apps/portico", "service/portico"):
            self.assertIn(what + " created", out)
        crd = self.double.get("customresourcedefinitions", "virtualservices.gateway.solo.io", None)
        self.assertEqual(crd["spec"]["versions"][0]["subresources"], {"status": {}})
        self.assertIn("unchanged", self.kubectl.run("apply", "-f", os.path.join(d, "crds.yaml")).stdout)

    def test_bearer_token(self):
        self.double.stop()
        secured = KubeDouble(token="s3cret").start()
        self.addCleanup(secured.stop)
        path = "/apis/gateway.solo.io/v1/namespaces/default/virtualservices"
        status, body = http_json(secured.port, "GET", path, headers={"Authorization": "Bearer s3cret"})
        self.assertEqual((status, body["kind"]), (200, "VirtualServiceList"))
        status, body = http_json(secured.port, "GET", path, headers={"Authorization": "Bearer wrong"})
        self.assertEqual((status, body["reason"]), (401, "Unauthorized"))
        # kubectl (client-go) sends no credentials to a plain-HTTP server, even with a token in the
        # kubeconfig: it is told to log in.
        k = Kubectl(secured.address, token="s3cret")
        self.addCleanup(k.cleanup)
        p = k.run("get", "--raw", path, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("logged in", p.stderr)


    def test_chunked_list(self):
        for i in range(5):
            self.double.put({"apiVersion": "gateway.solo.io/v1", "kind": "VirtualService",
                             "metadata": {"name": f"vs{i}", "namespace": "default"}, "spec": {}})
        before = len(self.double.requests)
        out = self.kubectl.run("get", "virtualservices.gateway.solo.io", "--chunk-size=2", "-o", "name").stdout
        self.assertEqual(out.split(), [f"virtualservice.gateway.solo.io/vs{i}" for i in range(5)])
        lists = [target for _, target in self.double.requests[before:] if "/virtualservices" in target]
        self.assertEqual(len(lists), 3, lists)  # 2 + 2 + 1
        self.assertIn("limit=2", lists[0])
        self.assertTrue(all("continue=" in target for target in lists[1:]), lists)

    def test_services_and_endpointslices(self):
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
               "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
        eps = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": "web-abc", "namespace": "default",
                            "labels": {"kubernetes.io/service-name": "web"}},
               "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
               "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True}}]}
        out = self.kubectl.run("apply", "-f", self.write("svc.json", json.dumps(svc)),
                               "-f", self.write("eps.json", json.dumps(eps))).stdout
        self.assertIn("service/web created", out)
        self.assertIn("endpointslice.discovery.k8s.io/web-abc created", out)
        got = json.loads(self.kubectl.run("get", "endpointslices", "-l", "kubernetes.io/service-name=web",
                                          "-o", "json").stdout)
        self.assertEqual([i["endpoints"][0]["addresses"] for i in got["items"]], [["10.0.0.1"]])

    def test_over_tls(self):
        from support.pki import Pki
        pki = Pki()
        self.addCleanup(pki.cleanup)
        d = KubeDouble(bookmark_interval=0, tls=pki.issue("api", ips=["127.0.0.1"])).start()
        self.addCleanup(d.stop)
        self.assertTrue(d.address.startswith("https://"))
        k = Kubectl(d.address, token="t", ca=pki.ca)  # https without credentials: kubectl prompts
        self.addCleanup(k.cleanup)
        out = k.run("apply", "-f", self.write("vs.yaml", VS)).stdout
        self.assertIn("virtualservice.gateway.solo.io/shop created", out)
        self.assertIn("shop", k.run("get", "vs").stdout)
        # Without the CA kubectl refuses the server's certificate.
        k2 = Kubectl(d.address, token="t")
        self.addCleanup(k2.cleanup)
        p = k2.run("get", "vs", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("certificate", p.stderr)


class ApiSemantics(unittest.TestCase):
    """What kubectl does not exercise, over HTTP."""

    BASE = "/apis/gateway.solo.io/v1/namespaces/default/virtualservices"

    def setUp(self):
        self.double = KubeDouble(bookmark_interval=0).start()
        self.addCleanup(self.double.stop)
        self.port = self.double.port

    def create(self, name, spec=None):
        status, obj = http_json(self.port, "POST", self.BASE, {
            "apiVersion": "gateway.solo.io/v1", "kind": "VirtualService",
            "metadata": {"name": name}, "spec": spec or {"x": 1}, "status": {"state": "ignored"}})
        self.assertEqual(status, 201, obj)
        return obj

    def test_status_subresource_and_conflicts(self):
        obj = self.create("a")
        self.assertNotIn("status", obj)  # status is not taken on create
        rv = obj["metadata"]["resourceVersion"]
        # The status subresource changes only status: not the spec, not the generation.
        body = dict(obj, spec={"changed": True}, status={"state": "Accepted"})
        status, after = http_json(self.port, "PUT", f"{self.BASE}/a/status", body)
        self.assertEqual(status, 200, after)
        self.assertEqual(after["status"], {"state": "Accepted"})
        self.assertEqual(after["spec"], {"x": 1})
        self.assertEqual(after["metadata"]["generation"], 1)
        self.assertNotEqual(after["metadata"]["resourceVersion"], rv)
        # The stale resourceVersion: 409 Conflict, a Status.
        status, err = http_json(self.port, "PUT", f"{self.BASE}/a/status", body)
        self.assertEqual(status, 409)
        self.assertEqual((err["kind"], err["reason"], err["code"]), ("Status", "Conflict", 409))
        # An update of the main resource ignores status and moves the generation.
        body = dict(after, spec={"x": 2}, status={"state": "Rejected"})
        status, upd = http_json(self.port, "PUT", f"{self.BASE}/a", body)
        self.assertEqual(status, 200, upd)
        self.assertEqual(upd["status"], {"state": "Accepted"})
        self.assertEqual(upd["metadata"]["generation"], 2)
        # A custom resource is not updated without a resourceVersion.
        body = dict(upd)
        body["metadata"] = {"name": "a"}
        status, err = http_json(self.port, "PUT", f"{self.BASE}/a", body)
        self.assertEqual(status, 422, err)
        # Errors are Status objects.
        status, err = http_json(self.port, "GET", f"{self.BASE}/nope")
        self.assertEqual((status, err["reason"]), (404, "NotFound"))
        status, err = http_json(self.port, "POST", self.BASE, {"metadata": {"name": "a"}, "spec": {}})
        self.assertEqual((status, err["reason"]), (409, "AlreadyExists"))

    def test_list_then_watch_bookmarks_and_410(self):
        self.create("a")
        status, lst = http_json(self.port, "GET", self.BASE)
        self.assertEqual(status, 200)
        rv = lst["metadata"]["resourceVersion"]
        self.assertEqual([i["metadata"]["name"] for i in lst["items"]], ["a"])
        self.create("b")
        http_json(self.port, "DELETE", f"{self.BASE}/a")
        status, events = watch_lines(self.port, f"{self.BASE}?watch=1&resourceVersion={rv}", 2)
        self.assertEqual(status, 200)
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in events],
                         [("ADDED", "b"), ("DELETED", "a")])
        # A bookmark carries the newest resourceVersion.
        import threading
        threading.Timer(0.3, self.double.bookmark).start()
        status, events = watch_lines(self.port, f"{self.BASE}?watch=1&resourceVersion={self.double.rv}"
                                                "&allowWatchBookmarks=true", 1)
        self.assertEqual(events[0]["type"], "BOOKMARK")
        self.assertEqual(events[0]["object"]["metadata"]["resourceVersion"], str(self.double.rv))
        # After a compaction the old resourceVersion is gone: an ERROR event with a 410 Status.
        self.double.compact()
        status, events = watch_lines(self.port, f"{self.BASE}?watch=1&resourceVersion={rv}", 1)
        self.assertEqual(status, 200)
        self.assertEqual(events[0]["type"], "ERROR")
        self.assertEqual((events[0]["object"]["code"], events[0]["object"]["reason"]), (410, "Expired"))
        self.assertIn("too old resource version", events[0]["object"]["message"])
        # A watch without a resourceVersion starts with what exists.
        status, events = watch_lines(self.port, f"{self.BASE}?watch=1", 1)
        self.assertEqual((events[0]["type"], events[0]["object"]["metadata"]["name"]), ("ADDED", "b"))

    def test_pagination_and_expired_continue(self):
        for name in "abcde":
            self.create(name)
        status, page = http_json(self.port, "GET", f"{self.BASE}?limit=2")
        self.assertEqual(status, 200)
        rv = page["metadata"]["resourceVersion"]
        self.assertEqual([i["metadata"]["name"] for i in page["items"]], ["a", "b"])
        self.assertEqual(page["metadata"]["remainingItemCount"], 3)
        self.create("f")  # after the first page: not in this list (one snapshot)
        names = [i["metadata"]["name"] for i in page["items"]]
        while page["metadata"].get("continue"):
            status, page = http_json(self.port, "GET", f"{self.BASE}?limit=2&continue={page['metadata']['continue']}")
            self.assertEqual(status, 200)
            self.assertEqual(page["metadata"]["resourceVersion"], rv)
            names += [i["metadata"]["name"] for i in page["items"]]
        self.assertEqual(names, list("abcde"))
        # An expired continue token: 410 Expired (the hook, or a compaction past the list's version).
        status, page = http_json(self.port, "GET", f"{self.BASE}?limit=2")
        self.double.expire_continues()
        status, err = http_json(self.port, "GET", f"{self.BASE}?limit=2&continue={page['metadata']['continue']}")
        self.assertEqual((status, err["reason"]), (410, "Expired"))
        status, page = http_json(self.port, "GET", f"{self.BASE}?limit=2")
        self.create("g")
        self.double.compact()
        status, err = http_json(self.port, "GET", f"{self.BASE}?limit=2&continue={page['metadata']['continue']}")
        self.assertEqual((status, err["code"]), (410, 410))
        self.assertEqual(self.double.state()["continuesExpired"], 2)

    def test_secret_watch(self):
        base = "/api/v1/namespaces/default/secrets"
        status, lst = http_json(self.port, "GET", base)
        rv = lst["metadata"]["resourceVersion"]
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque",
                  "data": {"k": "djE="}}
        self.assertEqual(http_json(self.port, "POST", base, secret)[0], 201)
        secret["data"]["k"] = "djI="
        self.assertEqual(http_json(self.port, "PUT", f"{base}/s", secret)[0], 200)
        status, events = watch_lines(self.port, f"{base}?watch=1&resourceVersion={rv}", 2)
        self.assertEqual([(e["type"], e["object"]["data"]["k"]) for e in events],
                         [("ADDED", "djE="), ("MODIFIED", "djI=")])

    def test_restart_keeps_the_data(self):
        self.create("a")
        rv = self.double.rv
        self.double.stop()
        self.assertTrue(t.port_refuses(self.port))
        self.double.start()
        status, obj = http_json(self.port, "GET", f"{self.BASE}/a")
        self.assertEqual(status, 200)
        self.assertEqual(self.double.rv, rv)


if __name__ == "__main__":
    unittest.main(verbosity=2)
