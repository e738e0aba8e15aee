#!/usr/bin/env python3
"""HTTPS to the Kubernetes API server (Settings spec.kubernetesConfigSource with caFile, certFile/keyFile,
tokenFile, or the in-cluster defaults), through the real binary and the Kubernetes double served over TLS
with a test CA (tests/support/pki.py): a VirtualService in the double is served; a rotated token file is
picked up by the next request (the double is told to accept only the new token); mTLS with a client
certificate; a CA that did not sign the server's certificate is a problem in /ready; with no address,
KUBERNETES_SERVICE_HOST/PORT give https://host:port."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.kube_double import KubeDouble  # noqa: E402
from support.pki import Pki  # noqa: E402


def vs_doc(name, body, domain="shop.example"):
    return {"apiVersion": "gateway.solo.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"virtualHost": {"domains": [domain], "routes": [
                {"matchers": [{"prefix": "/"}], "directResponseAction": {"status": 200, "body": body}}]}}}


class KubeTlsTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki = Pki()
        cls.server_cert = cls.pki.issue("kube-apiserver", dns=["kubernetes.default.svc"], ips=["127.0.0.1"])
        cls.client_cert = cls.pki.issue("portico", client=True)
        cls.other = Pki(name="Some Other CA")

    @classmethod
    def tearDownClass(cls):
        cls.pki.cleanup()
        cls.other.cleanup()

    def start_double(self, token=None, client_ca=None):
        d = KubeDouble(token=token, tls=self.server_cert, client_ca=client_ca, bookmark_interval=0.5).start()
        self.addCleanup(d.stop)
        return d

    def start_stack(self, kube_settings, env=None):
        self.port = t.free_port()
        cfg = self.new_config()
        cfg.write_obj("settings.yaml", t.resource("Settings", "default", {"kubernetesConfigSource": kube_settings}))
        cfg.write_obj("gateway.yaml", t.resource("Gateway", "gw", {"bindAddress": "127.0.0.1",
                                                                     "bindPort": self.port}))
        saved = {k: os.environ.get(k) for k in (env or {})}
        os.environ.update(env or {})
        try:
            return self.start_portico(cfg)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def body(self):
        r = t.request(self.port, "GET", "/", host="shop.example", timeout=3.0)
        return r.body.decode() if r.status == 200 else r.status

    def wait_body(self, want, timeout=5.0):
        return t.wait_until(lambda: self.body() == want, timeout, 0.02, f"served {want!r}")

    def source_up(self, p):
        return t.metric_sum(p.stats(), "portico_config_source_up", source="kubernetes")

    def token_file(self, text):
        path = os.path.join(self.pki.dir, f"token-{time.monotonic_ns()}")
        with open(path, "w") as f:
            f.write(text + "\n")
        return path

    def test_https_with_ca_and_rotated_token(self):
        d = self.start_double(token="first")
        d.put(vs_doc("shop", "over https"))
        token = self.token_file("first")
        p = self.start_stack({"address": d.address, "caFile": self.pki.ca, "tokenFile": token})
        self.wait_body("over https")
        self.assertEqual(self.source_up(p), 1)
        # The projected token rotates: the file changes, the API server accepts only the new one.
        with open(token + ".new", "w") as f:
            f.write("second\n")
        os.replace(token + ".new", token)
        d.token = "second"
        d.drop_watches()  # the next watch (and every later request) carries the new token
        time.sleep(0.3)
        d.put(vs_doc("shop", "after rotation"))
        self.wait_body("after rotation")
        self.assertEqual(self.source_up(p), 1)

    def test_mtls_and_server_name(self):
        d = self.start_double(client_ca=self.pki.ca)
        d.put(vs_doc("shop", "mutual"))
        cert, key = self.client_cert
        # Reached by IP, verified against the name the certificate carries.
        p = self.start_stack({"address": d.address, "caFile": self.pki.ca, "certFile": cert, "keyFile": key,
                              "serverName": "kubernetes.default.svc"})
        self.wait_body("mutual")
        self.assertEqual(self.source_up(p), 1)

    def test_wrong_ca_is_a_problem(self):
        d = self.start_double()
        d.put(vs_doc("shop", "never"))
        p = self.start_stack({"address": d.address, "caFile": self.other.ca}, )
        t.wait_until(lambda: self.source_up(p) == 0, 5.0, message="kubernetes source down")
        ready = p.admin_get("/ready").text()
        self.assertIn("kubernetes: https://127.0.0.1", ready)
        self.assertIn("certificate", ready.lower())
        self.assertEqual(self.body(), 404)

    def test_in_cluster_address_from_the_environment(self):
        d = self.start_double(token="sa-token")
        d.put(vs_doc("shop", "in cluster"))
        token = self.token_file("sa-token")
        # No address: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT (the CA and token files
        # given here stand in for the service account's, which a test cannot write).
        p = self.start_stack({"caFile": self.pki.ca, "tokenFile": token},
                             env={"KUBERNETES_SERVICE_HOST": "127.0.0.1",
                                  "KUBERNETES_SERVICE_PORT": str(d.port)})
        self.wait_body("in cluster")
        self.assertEqual(self.source_up(p), 1)


if __name__ == "__main__":
    unittest.main()
