#!/usr/bin/env python3
"""Kubernetes discovery through the real binary: an Upstream `kube: {serviceName, servicePort}` gets the ready
endpoints of the Service's EndpointSlices (discovery.k8s.io/v1), from the Kubernetes double
(tests/support/kube_double.py) written with a real kubectl: a slice created -> routable within 1 s (the time
is printed) at the slice's port for the Service port's name (targetPort); a second endpoint joins; an endpoint
made not ready leaves; the slice deleted -> 503 and a Warning on the Upstream. Only the endpoints version
moves (no route translated again)."""

import json
import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.kube_double import KubeDouble, Kubectl  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402


def service(port_name="http", port=80, target=8080):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"},
                     "ports": [{"name": "metrics", "port": 9090, "targetPort": 9090},
                               {"name": port_name, "port": port, "targetPort": target}]}}


def slice_doc(endpoints, port, name="web-abc12"):
    """endpoints: [(address, ready)] (ready None: the condition left out)."""
    eps = []
    for address, ready in endpoints:
        e = {"addresses": [address]}
        if ready is not None:
            e["conditions"] = {"ready": ready}
        eps.append(e)
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": port, "protocol": "TCP"},
                      {"name": "metrics", "port": 1, "protocol": "TCP"}],
            "endpoints": eps}


@unittest.skipIf(not Kubectl.binary(), "no kubectl (install kubernetes-client, or set PORTICO_KUBECTL)")
class KubeDiscoveryTest(t.IntegrationTest):
    def setUp(self):
        super().setUp()
        self.double = KubeDouble(bookmark_interval=0.5).start()
        self.addCleanup(self.double.stop)
        self.kubectl = Kubectl(self.double.address)
        self.addCleanup(self.kubectl.cleanup)
        self.files = tempfile.mkdtemp(prefix="kube-disc-")
        self.addCleanup(shutil.rmtree, self.files, True)
        self.upstream_port = t.free_port()
        self.a = t.UpstreamServer("a", host="127.0.0.2", port=self.upstream_port).start()
        self.addCleanup(self.a.stop)
        self.b = t.UpstreamServer("b", host="127.0.0.3", port=self.upstream_port).start()
        self.addCleanup(self.b.stop)
        self.apply(service())
        self.port = t.free_port()
        cfg = self.new_config()
        ups = t.resource("Upstream", "web", {"kube": {"serviceName": "web", "servicePort": 80}})
        cfg.write_stack(self.port, [t.virtual_service("vs", [r("all", [m(prefix="/")], to="web")])], [ups])
        cfg.write_obj("settings.yaml", t.resource("Settings", "default", {
            "kubernetes": {"address": self.double.address}}))
        self.portico = self.start_portico(cfg)

    def apply(self, *docs):
        path = os.path.join(self.files, "apply.json")
        with open(path, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "List", "items": list(docs)}, f)
        return self.kubectl.run("apply", "-f", path).stdout

    def served(self, n=12):
        out = set()
        for _ in range(n):
            resp = t.request(self.port, "GET", "/", timeout=3.0)
            out.add(resp.header("X-Upstream") if resp.status == 200 else resp.status)
        return out

    def reasons(self):
        res = self.portico.resource("Upstream", "web")
        return res["state"], " ".join(d.get("message", "") for d in res.get("reasons", []))

    def stat(self, name, **labels):
        return t.metric_sum(self.portico.stats(), name, **labels)

    def test_slice_created_made_not_ready_and_deleted(self):
        # The Service exists but has no slice yet: no endpoints, a Warning naming it.
        t.wait_until(lambda: self.reasons()[0] == "Warning", 5.0, message="a warning before any slice")
        self.assertIn("no ready endpoints", self.reasons()[1])
        self.assertEqual(self.served(2), {503})
        routes_version = self.stat("portico_config_type_version", type="routes")

        self.apply(slice_doc([("127.0.0.2", True)], self.upstream_port))
        t.wait_until(lambda: self.served(1) == {"a"}, 2.0, 0.005, message="a routable")
        elapsed = time.monotonic() - self.double.last_write
        print(f"\nkubectl apply EndpointSlice -> routable {elapsed * 1000:.0f} ms after the write",
              file=sys.stderr)
        self.assertLess(elapsed, 1.0)
        t.wait_until(lambda: self.reasons()[0] == "Accepted", 3.0, message="Accepted with endpoints")

        # A second endpoint (ready condition absent: counted as ready) joins.
        self.apply(slice_doc([("127.0.0.2", True), ("127.0.0.3", None)], self.upstream_port))
        t.wait_until(lambda: self.served() == {"a", "b"}, 3.0, message="a and b")
        # a made not ready: out.
        self.apply(slice_doc([("127.0.0.2", False), ("127.0.0.3", True)], self.upstream_port))
        t.wait_until(lambda: self.served() == {"b"}, 3.0, message="only b")
        # Endpoints moved; no route was translated again.
        self.assertEqual(self.stat("portico_config_type_version", type="routes"), routes_version)

        self.kubectl.run("delete", "endpointslice", "web-abc12")
        t.wait_until(lambda: self.served(2) == {503}, 3.0, message="503 without endpoints")
        t.wait_until(lambda: self.reasons()[0] == "Warning", 3.0, message="a warning without endpoints")
        self.assertIn("Service default/web port 80: no ready endpoints", self.reasons()[1])
        self.assertEqual(self.stat("portico_kube_discovery_services"), 1)
        self.assertGreaterEqual(self.stat("portico_kube_discovery_watches_total"), 2)

    def test_service_port_name_maps_to_the_slice_port(self):
        # The Service's port 80 is named "web" now; the slice names its ports "http": no endpoints.
        self.apply(slice_doc([("127.0.0.2", True)], self.upstream_port))
        t.wait_until(lambda: self.served(1) == {"a"}, 3.0, message="a routable")
        self.apply(service(port_name="web"))
        t.wait_until(lambda: self.served(2) == {503}, 3.0, message="no slice port named web")
        # The Service loses port 80: a Warning naming the ports it has.
        self.double.put({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
                         "spec": {"ports": [{"name": "http", "port": 81}]}})
        t.wait_until(lambda: "has no port 80 (ports: 81)" in self.reasons()[1], 3.0, message="missing port")
        self.double.delete("services", "web")
        t.wait_until(lambda: "Service default/web not found" in self.reasons()[1], 3.0, message="no service")


if __name__ == "__main__":
    t.main()
