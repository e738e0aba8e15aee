#!/usr/bin/env python3
"""TLS end to end with real clients (curl, openssl s_client, python's ssl): certificates from Secret
resources chosen by SNI with a Gateway default, TLS 1.0/1.1 refused, mTLS (no certificate and a foreign
certificate refused, the verified identity passed upstream and never trusted from the client), upstream
TLS with verification and client certificates, rotation of a certificate file under load, and private
keys never echoed by the admin API or the CLI. Certificates are made at test time with `openssl`."""

import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402


def run(*args, **kw):
    return subprocess.run(list(args), check=True, capture_output=True, text=True, timeout=60, **kw)


class Pki:
    """A test CA, a foreign CA, and leaf certificates signed by them, as PEM files in a temp dir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="portico-pki-")
        self.ca = self._ca("ca", "Portico Test CA")
        self.foreign = self._ca("foreign", "Foreign CA")
        self.serial = 1

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def _key(self, name, kind):
        key = self.path(name + ".key")
        if kind == "rsa":
            run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key)
        else:
            run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
        return key

    def _ca(self, name, cn):
        key = self._key(name, "ec")
        crt = self.path(name + ".crt")
        run("openssl", "req", "-x509", "-new", "-key", key, "-out", crt, "-days", "2", "-subj", f"/CN={cn}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return name

    def leaf(self, name, cn, sans, usage="serverAuth", kind="ec", ca=None):
        """Writes NAME.key and NAME.crt (chain: leaf only) signed by `ca` (default the test CA)."""
        ca = ca or self.ca
        key = self._key(name, kind)
        csr = self.path(name + ".csr")
        run("openssl", "req", "-new", "-key", key, "-out", csr, "-subj", f"/CN={cn}")
        ext = self.path(name + ".ext")
        with open(ext, "w") as f:
            f.write(f"subjectAltName={','.join(sans)}\nextendedKeyUsage={usage}\n"
                    "basicConstraints=CA:FALSE\n")
        self.serial += 1
        run("openssl", "x509", "-req", "-in", csr, "-CA", self.path(ca + ".crt"), "-CAkey",
            self.path(ca + ".key"), "-set_serial", str(self.serial), "-days", "2", "-out",
            self.path(name + ".crt"), "-extfile", ext)
        return name


def tls_secret(name, pki, leaf=None, ca=None):
    tls = {}
    if leaf:
        tls["certChainFile"] = pki.path(leaf + ".crt")
        tls["privateKeyFile"] = pki.path(leaf + ".key")
    if ca:
        tls["rootCaFile"] = pki.path(ca + ".crt")
    return t.resource("Secret", name, {"tls": tls})


def handshake(port, server_name, cafile, cert=None, key=None, check_hostname=True, version=None):
    """A python TLS handshake; returns (peer certificate dict, negotiated version, ssl socket)."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = check_hostname and server_name is not None
    if version:
        ctx.minimum_version = version
        ctx.maximum_version = version
    if cert:
        ctx.load_cert_chain(cert, key)
    raw = socket.create_connection((t.LOCALHOST, port), timeout=5)
    s = ctx.wrap_socket(raw, server_hostname=server_name)
    return s.getpeercert(), s.version(), s


def subject_cn(cert):
    for rdn in cert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return v
    return None


def https_get(port, host, path, cafile, cert=None, key=None, headers=None):
    """GET over TLS with http.client; returns a testlib-like (status, headers, body)."""
    import http.client
    ctx = ssl.create_default_context(cafile=cafile)
    if cert:
        ctx.load_cert_chain(cert, key)
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=10)
    # SNI and hostname check against `host`, while connecting to 127.0.0.1.
    conn.sock = ctx.wrap_socket(socket.create_connection((t.LOCALHOST, port), timeout=10), server_hostname=host)
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, r.headers, body


class TlsTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki = Pki()
        p = cls.pki
        p.leaf("a", "a.example.test", ["DNS:a.example.test"])
        p.leaf("b", "b.example.test", ["DNS:b.example.test"], kind="rsa")
        p.leaf("default", "default.example.test", ["DNS:default.example.test"])
        p.leaf("m", "m.example.test", ["DNS:m.example.test"])
        p.leaf("client", "client-1", ["URI:spiffe://test/client-1"], usage="clientAuth")
        p.leaf("client2", "client-2", ["URI:spiffe://test/client-2"], usage="clientAuth")
        p.leaf("intruder", "intruder", ["URI:spiffe://test/client-1"], usage="clientAuth", ca=p.foreign)
        p.leaf("upstream", "upstream.example.test", ["DNS:upstream.example.test"])
        p.leaf("portico-client", "portico", ["URI:spiffe://test/portico"], usage="clientAuth")

        cls.echo = t.start_upstream(cls, "echo")
        # Upstreams over TLS: one plain TLS, one requiring a client certificate.
        cls.tls_echo = cls._tls_upstream("tls-echo", client_ca=None)
        cls.mtls_echo = cls._tls_upstream("mtls-echo", client_ca=p.path(p.ca + ".crt"))

        cls.port = t.free_port()
        cls.plain_port = t.free_port()
        cfg = t.new_config(cls)
        cls.cfg = cfg
        cfg.write_obj("secrets.yaml",
                      tls_secret("tls-a", p, "a"), tls_secret("tls-b", p, "b"),
                      tls_secret("tls-default", p, "default"),
                      tls_secret("tls-m", p, "m", ca=p.ca),
                      tls_secret("upstream-ca", p, ca=p.ca),
                      tls_secret("upstream-client", p, "portico-client", ca=p.ca))
        cfg.write_obj("upstreams.yaml",
                      t.upstream("echo", [(t.LOCALHOST, cls.echo.port)]),
                      cls._upstream_tls("tls-echo", cls.tls_echo.port,
                                        {"secretRef": t.ref("upstream-ca"), "sni": "upstream.example.test"}),
                      cls._upstream_tls("tls-echo-wrong-name", cls.tls_echo.port,
                                        {"secretRef": t.ref("upstream-ca"), "sni": "other.example.test"}),
                      cls._upstream_tls("tls-echo-system-store", cls.tls_echo.port,
                                        {"sni": "upstream.example.test"}),
                      cls._upstream_tls("tls-echo-insecure", cls.tls_echo.port,
                                        {"sni": "upstream.example.test", "insecureSkipVerify": True}),
                      cls._upstream_tls("mtls-echo", cls.mtls_echo.port,
                                        {"secretRef": t.ref("upstream-client"),
                                         "sni": "upstream.example.test"}),
                      cls._upstream_tls("mtls-echo-no-cert", cls.mtls_echo.port,
                                        {"secretRef": t.ref("upstream-ca"), "sni": "upstream.example.test"}))

        def vs(name, domains, secret, extra=None, routes=None):
            obj = t.virtual_service(name, routes or [t.route("all", to="echo")], domains)
            ssl_config = {"secretRef": t.ref(secret)}
            ssl_config.update(extra or {})
            obj["spec"]["sslConfig"] = ssl_config
            return obj

        up_routes = [t.route(n, [t.matcher(prefix="/" + n + "/")], to=n,
                             options={"prefixRewrite": "/"})
                     for n in ("tls-echo", "tls-echo-wrong-name", "tls-echo-system-store", "tls-echo-insecure",
                               "mtls-echo", "mtls-echo-no-cert")]
        up_routes.append(t.route("all", to="echo"))
        cfg.write_obj("vs.yaml",
                      vs("a", ["a.example.test"], "tls-a", routes=up_routes),
                      vs("b", ["b.example.test"], "tls-b"),
                      vs("m", ["m.example.test"], "tls-m",
                         {"clientIdentityHeader": "x-client-identity",
                          "verifySubjectAltName": ["spiffe://test/client-1"]}),
                      t.virtual_service("plain", [t.route("all", to="echo")], ["plain.example.test"]))
        gw = t.gateway("tls", cls.port, ["a", "b", "m"])
        gw["spec"]["ssl"] = True
        gw["spec"]["sslConfig"] = {"secretRef": t.ref("tls-default")}
        cfg.write_obj("gateway.yaml", gw, t.gateway("plain", cls.plain_port, ["plain"]))
        cls.portico = t.start_portico(cls, cfg)
        cls.ca = p.path(p.ca + ".crt")

    @classmethod
    def tearDownClass(cls):
        cls.pki.cleanup()

    @classmethod
    def _tls_upstream(cls, name, client_ca):
        us = t.UpstreamServer(name)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cls.pki.path("upstream.crt"), cls.pki.path("upstream.key"))
        if client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(client_ca)
        # The handshake runs in the handler thread (not in accept), so a failed one stops nothing else.
        us._server.socket = ctx.wrap_socket(us._server.socket, server_side=True, do_handshake_on_connect=False)
        us.start()
        t._register_cleanup(cls, us.stop)
        return us

    @staticmethod
    def _upstream_tls(name, port, ssl_config):
        u = t.upstream(name, [(t.LOCALHOST, port)])
        u["spec"]["sslConfig"] = ssl_config
        return u

    # ------------------------------------------------------------------------------- certificates

    def test_sni_selects_the_virtual_service_certificate(self):
        cert, _, s = handshake(self.port, "a.example.test", self.ca)
        s.close()
        self.assertEqual(subject_cn(cert), "a.example.test")
        cert, _, s = handshake(self.port, "b.example.test", self.ca)
        s.close()
        self.assertEqual(subject_cn(cert), "b.example.test")

    def test_no_or_unknown_sni_gets_the_gateway_default(self):
        for name in (None, "unknown.example.test"):
            cert, _, s = handshake(self.port, name, self.ca, check_hostname=False)
            s.close()
            self.assertEqual(subject_cn(cert), "default.example.test", name)

    def test_rsa_and_ecdsa_certificates_are_served(self):
        out = subprocess.run(["openssl", "s_client", "-connect", f"{t.LOCALHOST}:{self.port}", "-servername",
                              "b.example.test", "-CAfile", self.ca], input="", capture_output=True, text=True,
                             timeout=20)
        self.assertIn("Verify return code: 0 (ok)", out.stdout)
        self.assertRegex(out.stdout, r"(?i)(RSA|rsaEncryption).*2048|Server public key is 2048 bit")

    def test_tls12_and_tls13_accepted(self):
        for v, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
            _, got, s = handshake(self.port, "a.example.test", self.ca, version=v)
            s.close()
            self.assertEqual(got, name)

    def test_old_versions_refused(self):
        for flag in ("-tls1", "-tls1_1"):
            out = subprocess.run(["openssl", "s_client", "-connect", f"{t.LOCALHOST}:{self.port}", "-servername",
                                  "a.example.test", flag, "-cipher", "DEFAULT:@SECLEVEL=0"],
                                 input="", capture_output=True, text=True, timeout=20)
            self.assertNotEqual(out.returncode, 0, flag)
            self.assertNotIn("BEGIN CERTIFICATE", out.stdout, flag)

    def test_request_over_tls_says_https_upstream(self):
        status, _, body = https_get(self.port, "a.example.test", "/hello", self.ca,
                                    headers={"X-Forwarded-Proto": "http"})
        self.assertEqual(status, 200)
        import json
        echo = json.loads(body)
        self.assertEqual(t.echo_header(echo, "X-Forwarded-Proto"), ["https"])
        self.assertEqual(echo["path"], "/hello")

    def test_keep_alive_tls_connection_idle_past_the_park_delay_serves_the_next_request(self):
        # An idle TLS connection waits without a read buffer after 100 ms; the next request on it
        # must be decrypted and answered as before.
        _, _, s = handshake(self.port, "a.example.test", self.ca)
        self.addCleanup(s.close)
        for path in ("/idle/1", "/idle/2"):
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: a.example.test\r\n\r\n".encode())
            resp = t.read_response(s)
            self.assertEqual(resp.status, 200)
            self.assertIn(path.encode(), resp.body)  # the echo upstream saw this request
            time.sleep(1.3)  # past the 1 s park delay

    def test_curl_over_tls(self):
        r = t.curl("-sS", "--cacert", self.ca, "--resolve", f"b.example.test:{self.port}:127.0.0.1",
                   f"https://b.example.test:{self.port}/x", "-o", "/dev/null", "-w", "%{http_code} %{ssl_verify_result}")
        self.assertEqual(r.stdout.strip(), "200 0", r.stderr)

    def test_plain_gateway_does_not_speak_tls_and_tls_gateway_refuses_plaintext(self):
        r = t.request(self.plain_port, "GET", "/", headers={"Host": "plain.example.test"})
        self.assertEqual(r.status, 200)
        raw = t.raw_exchange(self.port, b"GET / HTTP/1.1\r\nHost: a.example.test\r\n\r\n", timeout=3)
        self.assertNotIn(b"HTTP/1.1 200", raw)

    # ------------------------------------------------------------------------------------- mTLS

    def test_mtls_without_a_certificate_is_refused(self):
        r = t.curl("-sS", "--cacert", self.ca, "--resolve", f"m.example.test:{self.port}:127.0.0.1",
                   f"https://m.example.test:{self.port}/", "-o", "/dev/null", "-w", "%{http_code}")
        self.assertNotEqual(r.returncode, 0)
        self.assertNotEqual(r.stdout.strip(), "200")
        samples = self.portico.stats()
        self.assertGreater(t.metric_sum(samples, "portico_tls_handshake_failures_total", side="downstream"), 0)
        self.assertGreater(t.metric_sum(samples, "portico_tls_handshakes_total", side="downstream"), 0)

    def test_mtls_with_a_foreign_certificate_is_refused(self):
        p = self.pki
        r = t.curl("-sS", "--cacert", self.ca, "--cert", p.path("intruder.crt"), "--key", p.path("intruder.key"),
                    "--resolve", f"m.example.test:{self.port}:127.0.0.1",
                    f"https://m.example.test:{self.port}/", "-o", "/dev/null", "-w", "%{http_code}")
        self.assertNotEqual(r.returncode, 0)
        self.assertNotEqual(r.stdout.strip(), "200")

    def test_mtls_san_allow_list(self):
        p = self.pki
        r = t.curl("-sS", "--cacert", self.ca, "--cert", p.path("client2.crt"), "--key", p.path("client2.key"),
                    "--resolve", f"m.example.test:{self.port}:127.0.0.1",
                    f"https://m.example.test:{self.port}/", "-o", "/dev/null", "-w", "%{http_code}")
        self.assertNotEqual(r.stdout.strip(), "200", "a certificate outside the SAN allow-list was accepted")

    def test_mtls_identity_passed_upstream_never_from_the_client(self):
        p = self.pki
        status, _, body = https_get(self.port, "m.example.test", "/id", self.ca, cert=p.path("client.crt"),
                                    key=p.path("client.key"),
                                    headers={"X-Client-Identity": "spiffe://test/admin"})
        self.assertEqual(status, 200)
        import json
        echo = json.loads(body)
        self.assertEqual(t.echo_header(echo, "X-Client-Identity"), ["spiffe://test/client-1"])

    def test_identity_header_from_a_client_without_mtls_is_removed(self):
        status, _, body = https_get(self.port, "a.example.test", "/id", self.ca,
                                    headers={"X-Client-Identity": "spiffe://test/admin"})
        self.assertEqual(status, 200)
        import json
        # a.example.test has no mTLS, but the name is an identity header on this listener: a
        # client-sent value never reaches an upstream.
        self.assertEqual(t.echo_header(json.loads(body), "X-Client-Identity"), [])

    def test_mtls_host_cannot_be_reached_through_another_handshake(self):
        """SNI a.example.test (no client certificate needed), then Host: m.example.test (mTLS): the
        request must not reach m's routes (421), with or without a client certificate."""
        import http.client
        p = self.pki
        for cert in (None, (p.path("client.crt"), p.path("client.key"))):
            ctx = ssl.create_default_context(cafile=self.ca)
            if cert:
                ctx.load_cert_chain(*cert)
            conn = http.client.HTTPSConnection("a.example.test", self.port, context=ctx, timeout=10)
            conn.sock = ctx.wrap_socket(socket.create_connection((t.LOCALHOST, self.port), timeout=10),
                                        server_hostname="a.example.test")
            conn.request("GET", "/", headers={"Host": "m.example.test"})
            r = conn.getresponse()
            body = r.read()
            conn.close()
            self.assertEqual(r.status, 421, body)
        # Without SNI (the default certificate) it is refused too.
        cert, _, s = handshake(self.port, None, self.ca, check_hostname=False)
        s.sendall(b"GET / HTTP/1.1\r\nHost: m.example.test\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 421"), data[:100])

    # ------------------------------------------------------------------------------- upstream TLS

    def get_a(self, path):
        return https_get(self.port, "a.example.test", path, self.ca)

    def test_upstream_tls_verified(self):
        status, _, body = self.get_a("/tls-echo/x")
        self.assertEqual(status, 200, body)
        import json
        self.assertEqual(json.loads(body)["server"], "tls-echo")

    def test_upstream_tls_wrong_name_refused(self):
        status, _, _ = self.get_a("/tls-echo-wrong-name/x")
        self.assertIn(status, (502, 503))

    def test_upstream_tls_unknown_ca_refused_by_system_store(self):
        status, _, _ = self.get_a("/tls-echo-system-store/x")
        self.assertIn(status, (502, 503))

    def test_upstream_tls_insecure_skip_verify(self):
        status, _, _ = self.get_a("/tls-echo-insecure/x")
        self.assertEqual(status, 200)

    def test_upstream_mtls(self):
        status, _, body = self.get_a("/mtls-echo/x")
        self.assertEqual(status, 200, body)
        status, _, _ = self.get_a("/mtls-echo-no-cert/x")
        self.assertIn(status, (502, 503))

    # --------------------------------------------------------------------------------- secrecy

    def test_private_keys_never_echoed(self):
        for path in ("/resources", "/config_dump"):
            r = self.portico.admin_get(path)
            self.assertEqual(r.status, 200)
            self.assertNotIn(b"PRIVATE KEY", r.body, path)
        for args in (("get", "secrets", "-o", "yaml"), ("describe", "secret", "tls-a")):
            out = t.run_cli(*args, "--admin", self.portico.admin)
            self.assertNotIn("PRIVATE KEY", out.stdout + out.stderr, args)


class RotationTest(t.IntegrationTest):
    """A changed certificate file reaches new handshakes without a restart; connections already open
    stay up; no request fails while it happens."""

    def test_rotation_under_load(self):
        pki = Pki()
        self.addCleanup(pki.cleanup)
        pki.leaf("r1", "r1.example.test", ["DNS:r.example.test"])
        pki.leaf("r2", "r2.example.test", ["DNS:r.example.test"])
        live = os.path.join(pki.dir, "live")
        os.mkdir(live)
        for ext in ("crt", "key"):
            shutil.copy(pki.path(f"r1.{ext}"), os.path.join(live, f"r.{ext}"))
        ca = pki.path(pki.ca + ".crt")
        echo = self.start_upstream("echo")
        port = t.free_port()
        cfg = self.new_config()
        secret = t.resource("Secret", "r", {"tls": {"certChainFile": os.path.join(live, "r.crt"),
                                                      "privateKeyFile": os.path.join(live, "r.key")}})
        vs = t.virtual_service("r", [t.route("all", to="echo")], ["r.example.test"])
        vs["spec"]["sslConfig"] = {"secretRef": t.ref("r")}
        gw = t.gateway("gw", port, ["r"])
        gw["spec"]["ssl"] = True
        cfg.write_obj("all.yaml", secret, t.upstream("echo", [(t.LOCALHOST, echo.port)]), vs, gw)
        self.start_portico(cfg)

        cert, _, held = handshake(port, "r.example.test", ca)
        self.assertEqual(subject_cn(cert), "r1.example.test")

        failures, done = [], threading.Event()
        count = [0]

        def load():
            while not done.is_set():
                try:
                    status, _, _ = https_get(port, "r.example.test", "/", ca)
                    if status != 200:
                        failures.append(status)
                except Exception as e:  # noqa: BLE001
                    failures.append(repr(e))
                count[0] += 1

        threads = [threading.Thread(target=load) for _ in range(3)]
        for th in threads:
            th.start()
        time.sleep(0.5)
        # Rotate: the new pair is written beside and renamed into place (key first, then certificate).
        for ext in ("key", "crt"):
            tmp = os.path.join(live, f".r.{ext}.new")
            shutil.copy(pki.path(f"r2.{ext}"), tmp)
            os.rename(tmp, os.path.join(live, f"r.{ext}"))

        def rotated():
            c, _, s = handshake(port, "r.example.test", ca)
            s.close()
            return subject_cn(c) == "r2.example.test"

        t.wait_until(rotated, 20, 0.1, "new handshakes see the rotated certificate")
        time.sleep(0.5)
        done.set()
        for th in threads:
            th.join(30)
        self.assertEqual(failures, [], f"{len(failures)} of {count[0]} requests failed during rotation")
        self.assertGreater(count[0], 20)
        # The connection opened before the rotation still works.
        held.sendall(b"GET / HTTP/1.1\r\nHost: r.example.test\r\n\r\n")
        self.assertTrue(held.recv(100).startswith(b"HTTP/1.1 200"))
        held.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
