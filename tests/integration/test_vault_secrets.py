#!/usr/bin/env python3
"""TLS Secrets from Vault KV v2 (Settings spec.vaultSecretSource) end to end, against the Vault double
(tests/support/vault_double.py): a Gateway whose certificate lives in Vault serves it; a new version
written to Vault reaches new handshakes within the poll interval while a connection opened before keeps
working; only referenced secrets are read, and an unchanged one only by its metadata; Vault sealed or
answering garbage keeps the certificate in force with the problem in /ready and /stats, and recovers by
itself; a token that cannot be renewed or that expired is reported; AppRole logins again when its token
reaches its max TTL. Certificates are made at test time with `openssl`."""

import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support import vault_double  # noqa: E402

HOST = "vault.example.test"
SECRET_PATH = "gloo/gloo.solo.io/v1/Secret/default/edge"  # Gloo's layout under the mount "secret"
UNUSED_PATH = "gloo/gloo.solo.io/v1/Secret/default/unused"


def run(*args):
    return subprocess.run(list(args), check=True, capture_output=True, text=True, timeout=60)


class Pki:
    """A test CA and leaf certificates for HOST with distinct common names, as PEM text."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="portico-vault-pki-")
        self.ca_key, self.ca = self._p("ca.key"), self._p("ca.crt")
        run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", self.ca_key)
        run("openssl", "req", "-x509", "-new", "-key", self.ca_key, "-out", self.ca, "-days", "2", "-subj",
            "/CN=Vault Test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.serial = 1

    def _p(self, name):
        return os.path.join(self.dir, name)

    def leaf(self, cn):
        """(certificate PEM, key PEM) for HOST with common name `cn`."""
        key, csr, crt, ext = self._p(cn + ".key"), self._p(cn + ".csr"), self._p(cn + ".crt"), self._p(cn + ".ext")
        run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
        run("openssl", "req", "-new", "-key", key, "-out", csr, "-subj", f"/CN={cn}")
        with open(ext, "w") as f:
            f.write(f"subjectAltName=DNS:{HOST}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
        self.serial += 1
        run("openssl", "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key, "-set_serial",
            str(self.serial), "-days", "2", "-out", crt, "-extfile", ext)
        with open(crt) as c, open(key) as k:
            return c.read(), k.read()

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def gloo_secret(cert, key):
    """The KV data of a Secret as Gloo writes it (the resource's fields)."""
    return {"metadata": {"name": "edge", "namespace": "default"}, "tls": {"certChain": cert, "privateKey": key}}


def connect(port, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    raw = socket.create_connection((t.LOCALHOST, port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname=HOST)


def served_cn(port, cafile):
    """The common name of the certificate a new handshake gets (None when the handshake fails)."""
    try:
        with connect(port, cafile) as s:
            for rdn in s.getpeercert().get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        return v
    except (OSError, ssl.SSLError):
        return None
    return None


def get_over(sock):
    """One keep-alive request over an open TLS socket; returns the status."""
    sock.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    return t.read_response(sock).status


def raw_vault(v, method, path, body=None):
    import json
    import urllib.error
    import urllib.request
    req = urllib.request.Request(v.address + path, method=method, headers={"X-Vault-Token": "root"},
                                 data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def vault_up(portico):
    for name, labels, value in portico.stats():
        if name == "portico_config_source_up" and labels.get("source") == "vault":
            return value
    return None


class VaultSecretsBase(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki = Pki()
        cls.certs = {cn: cls.pki.leaf(cn) for cn in ("edge-v1", "edge-v2", "edge-v3")}

    @classmethod
    def tearDownClass(cls):
        cls.pki.cleanup()

    def start_vault(self):
        v = vault_double.VaultDouble().start()
        self.addCleanup(v.stop)
        return v

    def start_stack(self, vault, auth, poll="500ms"):
        """A TLS Gateway whose secret `edge` lives in Vault; returns (portico, gateway port)."""
        echo = self.start_upstream("echo")
        cfg = self.new_config()
        port = t.free_port()
        settings = t.resource("Settings", "default", {
            "vaultSecretSource": dict({"address": vault.address, "pollInterval": poll, "requestTimeout": "1s"},
                                      **auth)})
        vs = t.virtual_service("vs", [t.route("all", to="echo")], [HOST])
        vs["spec"]["sslConfig"] = {"secretRef": t.ref("edge")}  # both name it: one read
        gw = t.gateway("tls", port, ["vs"])
        gw["spec"]["ssl"] = True
        gw["spec"]["sslConfig"] = {"secretRef": t.ref("edge")}
        cfg.write_obj("settings.yaml", settings)
        cfg.write_obj("stack.yaml", t.upstream("echo", [(t.LOCALHOST, echo.port)]), vs, gw)
        p = self.start_portico(cfg)
        return p, port

    def wait_cn(self, port, cn, timeout=10.0):
        return t.wait_until(lambda: served_cn(port, self.pki.ca) == cn, timeout,
                            message=f"new handshakes see {cn}")

    def ready_text(self, p):
        return p.admin_get("/ready").text()


class VaultSecretsTest(VaultSecretsBase):
    def test_certificate_from_vault_rotation_and_open_connections(self):
        v = self.start_vault()
        v.put(SECRET_PATH, gloo_secret(*self.certs["edge-v1"]))
        v.put(UNUSED_PATH, gloo_secret(*self.certs["edge-v3"]))
        p, port = self.start_stack(v, {"accessToken": "root"})
        # The first read of the referenced secret is waited for at start: the TLS listener is up
        # before portico is ready (a binary upgrade would otherwise give up for a missing secret).
        log = p.log()
        self.assertIn("(1 listeners", log)
        self.assertLess(log.index("(1 listeners"), log.index("admin API on"))
        self.wait_cn(port, "edge-v1")
        old = connect(port, self.pki.ca)
        self.addCleanup(old.close)
        self.assertEqual(get_over(old), 200)

        # An unchanged secret is checked by its metadata only: no data read after the first.
        time.sleep(1.5)
        self.assertEqual(v.read_count(SECRET_PATH, kind="data"), 1)
        self.assertGreaterEqual(v.read_count(SECRET_PATH, kind="metadata"), 2)

        # Rotation: a new version reaches new handshakes within the poll interval (500 ms +-20%).
        v.put(SECRET_PATH, gloo_secret(*self.certs["edge-v2"]))
        started = time.monotonic()
        self.wait_cn(port, "edge-v2", timeout=5)
        self.assertLess(time.monotonic() - started, 2.5)
        self.assertEqual(v.read_count(SECRET_PATH, kind="data"), 2)
        # The connection opened before keeps working, on the certificate it was made with.
        self.assertEqual(get_over(old), 200)
        cn = dict(x[0] for x in old.getpeercert()["subject"])["commonName"]
        self.assertEqual(cn, "edge-v1")
        # The Secret resource came from Vault (its origin names the KV path).
        res = p.resource("Secret", "edge")
        self.assertEqual(res["origin"]["source"], "vault")
        self.assertEqual(res["file"], "vault:secret/data/" + SECRET_PATH)
        self.assertEqual(res["state"], "Accepted")
        self.assertNotIn("BEGIN PRIVATE KEY", str(res))
        # Referenced secrets only: the unused one was never read, data nor metadata.
        self.assertEqual(v.read_count(UNUSED_PATH), 0)
        self.assertEqual(vault_up(p), 1)
        stats = {(n, tuple(sorted(lab.items()))): val for n, lab, val in p.stats()}
        self.assertEqual(stats[("portico_vault_secrets", ())], 1)
        self.assertGreaterEqual(stats[("portico_vault_requests_total", (("kind", "data"),))], 2)

    def test_kubernetes_key_names(self):
        v = self.start_vault()
        cert, key = self.certs["edge-v1"]
        v.put(SECRET_PATH, {"tls.crt": cert, "tls.key": key})
        p, port = self.start_stack(v, {"accessToken": "root"})
        self.wait_cn(port, "edge-v1")
        v.put(SECRET_PATH, {"tls.crt": self.certs["edge-v2"][0], "tls.key": self.certs["edge-v2"][1]})
        self.wait_cn(port, "edge-v2")

    def test_deleted_in_vault_is_gone_and_undelete_brings_it_back(self):
        # Vault is the truth: a deleted secret is removed (not an outage), as a deleted Secret file is.
        v = self.start_vault()
        v.put(SECRET_PATH, gloo_secret(*self.certs["edge-v1"]))
        p, port = self.start_stack(v, {"accessToken": "root"})
        self.wait_cn(port, "edge-v1")
        status, _ = raw_vault(v, "DELETE", "/v1/secret/data/" + SECRET_PATH)
        self.assertEqual(status, 204)
        t.wait_until(lambda: p.resource("Secret", "edge") is None, 5, message="Secret removed")
        gw = p.resource("Gateway", "tls")
        self.assertEqual(gw["state"], "Rejected")
        self.assertIn("secret default/edge not found", str(gw["reasons"]))
        self.assertNotIn("vault", self.ready_text(p))  # Vault answered: nothing failing
        status, _ = raw_vault(v, "POST", "/v1/secret/undelete/" + SECRET_PATH, {"versions": [1]})
        self.assertEqual(status, 204)
        self.wait_cn(port, "edge-v1", timeout=5)
        self.assertEqual(p.resource("Gateway", "tls")["state"], "Accepted")

    def test_sealed_vault_keeps_serving_and_recovers(self):
        v = self.start_vault()
        v.put(SECRET_PATH, gloo_secret(*self.certs["edge-v1"]))
        p, port = self.start_stack(v, {"accessToken": "root"})
        self.wait_cn(port, "edge-v1")
        v.seal()
        t.wait_until(lambda: "sealed" in self.ready_text(p), 5, message="/ready names the sealed Vault")
        ready = p.admin_get("/ready")
        self.assertEqual(ready.status, 200)  # still ready: the last good secrets serve
        self.assertIn("source: vault: " + v.address, ready.text())
        self.assertIn("serving the 1 secret(s) read before", ready.text())
        self.assertEqual(vault_up(p), 0)
        self.assertEqual(served_cn(port, self.pki.ca), "edge-v1")
        v.put(SECRET_PATH, gloo_secret(*self.certs["edge-v2"]))  # written while sealed (test hook)
        time.sleep(1.0)
        self.assertEqual(served_cn(port, self.pki.ca), "edge-v1")
        v.unseal()
        self.wait_cn(port, "edge-v2", timeout=10)
        t.wait_until(lambda: "vault" not in self.ready_text(p), 10, message="/ready clear again")
        self.assertEqual(vault_up(p), 1)

    def test_garbage_and_errors_keep_the_secret(self):
        v = self.start_vault()
        v.put(SECRET_PATH, gloo_secret(*self.certs["edge-v1"]))
        p, port = self.start_stack(v, {"accessToken": "root"})
        self.wait_cn(port, "edge-v1")
        v.inject("garbage", 3, "/secret/metadata/")
        t.wait_until(lambda: "not JSON" in self.ready_text(p), 5, message="/ready names the garbage")
        self.assertEqual(served_cn(port, self.pki.ca), "edge-v1")
        t.wait_until(lambda: "vault" not in self.ready_text(p), 10, message="recovered")
        v.inject("500", 2, "/secret/")
        t.wait_until(lambda: "answered 500" in self.ready_text(p), 5, message="/ready names the 500")
        t.wait_until(lambda: "vault" not in self.ready_text(p), 10, message="recovered")
        self.assertEqual(served_cn(port, self.pki.ca), "edge-v1")
        self.assertEqual(p.resource("Secret", "edge")["state"], "Accepted")

    def test_unreachable_vault_at_start_then_up(self):
        # Vault comes up after portico: the Gateway waits for its secret, then serves it.
        port_holder = socket.socket()
        port_holder.bind((t.LOCALHOST, 0))
        vport = port_holder.getsockname()[1]
        port_holder.close()

        class Down:
            address = f"http://{t.LOCALHOST}:{vport}"
        p, port = self.start_stack(Down, {"accessToken": "root"})
        t.wait_until(lambda: "unreachable" in self.ready_text(p), 5, message="/ready says unreachable")
        self.assertIsNone(served_cn(port, self.pki.ca))
        v = vault_double.VaultDouble(port=vport)
        v.put(SECRET_PATH, gloo_secret(*self.certs["edge-v1"]))
        v.start()
        self.addCleanup(v.stop)
        self.wait_cn(port, "edge-v1", timeout=10)
        t.wait_until(lambda: "vault" not in self.ready_text(p), 5, message="recovered")


class VaultTokenTest(VaultSecretsBase):
    def test_non_renewable_token_then_expiry(self):
        v = self.start_vault()
        v.put(SECRET_PATH, gloo_secret(*self.certs["edge-v1"]))
        token = v.create_token(ttl=4, renewable=False)
        p, port = self.start_stack(v, {"accessToken": token}, poll="300ms")
        self.wait_cn(port, "edge-v1")
        text = self.ready_text(p)
        self.assertIn("the token is not renewable", text)
        self.assertEqual(vault_up(p), 0)
        t.wait_until(lambda: "permission denied" in self.ready_text(p), 10, message="expiry reported")
        self.assertIn("expired", self.ready_text(p))
        self.assertEqual(served_cn(port, self.pki.ca), "edge-v1")  # the last good secret stays

    def test_renewal_up_to_the_max_ttl(self):
        v = self.start_vault()
        v.put(SECRET_PATH, gloo_secret(*self.certs["edge-v1"]))
        token = v.create_token(ttl=3, renewable=True, explicit_max_ttl=6)
        p, port = self.start_stack(v, {"accessToken": token}, poll="300ms")
        self.wait_cn(port, "edge-v1")
        # Renewed before 2/3 of its TTL: after 3 s it is still good and nothing is reported.
        time.sleep(3.2)
        self.assertNotIn("vault", self.ready_text(p))
        renewals = [n for n, lab, val in p.stats()
                    if n == "portico_vault_requests_total" and lab.get("kind") == "renew" and val >= 1]
        self.assertTrue(renewals)
        # Then the max TTL ends it: reported before it expires, and after.
        t.wait_until(lambda: "cannot be renewed" in self.ready_text(p) or "permission denied" in
                     self.ready_text(p), 6, message="max TTL reported")
        t.wait_until(lambda: "permission denied" in self.ready_text(p), 6, message="expiry reported")

    def test_bad_token(self):
        v = self.start_vault()
        v.put(SECRET_PATH, gloo_secret(*self.certs["edge-v1"]))
        p, port = self.start_stack(v, {"accessToken": "not-a-token"})
        t.wait_until(lambda: "permission denied" in self.ready_text(p), 5, message="403 reported")
        self.assertEqual(v.read_count(SECRET_PATH), 0)

    def test_token_file_and_approle_relogin(self):
        v = self.start_vault()
        v.put(SECRET_PATH, gloo_secret(*self.certs["edge-v1"]))
        role_id, secret_id = v.approle("portico", token_ttl=2, token_max_ttl=3)
        d = tempfile.mkdtemp(prefix="portico-vault-")
        self.addCleanup(shutil.rmtree, d, True)
        sid = os.path.join(d, "secret-id")
        with open(sid, "w") as f:
            f.write(secret_id + "\n")
        p, port = self.start_stack(v, {"appRole": {"roleId": role_id, "secretIdFile": sid}}, poll="300ms")
        self.wait_cn(port, "edge-v1")
        logins = lambda: sum(1 for m, path in list(v.requests) if path == "/v1/auth/approle/login")  # noqa: E731
        t.wait_until(lambda: logins() >= 3, 10, message="AppRole logins again as tokens reach their max TTL")
        self.assertNotIn("vault", self.ready_text(p))
        v.put(SECRET_PATH, gloo_secret(*self.certs["edge-v2"]))
        self.wait_cn(port, "edge-v2", timeout=5)

    def test_token_file(self):
        v = self.start_vault()
        v.put(SECRET_PATH, gloo_secret(*self.certs["edge-v1"]))
        d = tempfile.mkdtemp(prefix="portico-vault-")
        self.addCleanup(shutil.rmtree, d, True)
        tf = os.path.join(d, "token")
        with open(tf, "w") as f:
            f.write(v.create_token(ttl=3600) + "\n")
        p, port = self.start_stack(v, {"tokenFile": tf})
        self.wait_cn(port, "edge-v1")
        self.assertNotIn("vault", self.ready_text(p))


if __name__ == "__main__":
    unittest.main(verbosity=2)
