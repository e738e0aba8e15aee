#!/usr/bin/env python3
"""The Vault double (tests/support/vault_double.py) driven by the real client python3-hvac, so that the
double cannot drift from Vault's wire format: KV v2 create, read, versions, check-and-set, soft delete,
undelete, destroy, list and metadata; token lookup and renewal up to the explicit max TTL, then expiry;
AppRole login; sealed mode and injected failures. Also the raw wire facts hvac hides (a deleted version
answers 404 with its metadata; LIST and ?list=true agree; 403 body)."""

import json
import os
import subprocess
import sys
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import vault_double  # noqa: E402

try:
    import hvac  # python3-hvac (Debian)
    import hvac.exceptions
except ImportError:  # pragma: no cover - the test needs the real client
    hvac = None


def raw(v, method, path, token="root", body=None):
    req = urllib.request.Request(v.address + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    if token:
        req.add_header("X-Vault-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            data = r.read()
            return r.status, json.loads(data) if data else None
    except urllib.error.HTTPError as e:
        data = e.read()
        return e.code, json.loads(data) if data else None


@unittest.skipIf(hvac is None, "python3-hvac is not installed")
class VaultDoubleWithHvac(unittest.TestCase):
    def setUp(self):
        self.v = vault_double.VaultDouble().start()
        self.addCleanup(self.v.stop)
        self.client = hvac.Client(url=self.v.address, token="root", timeout=5)

    def test_kv2_create_read_versions_cas(self):
        kv = self.client.secrets.kv.v2
        w = kv.create_or_update_secret(path="app/db", secret={"user": "a"}, cas=0)
        self.assertEqual(w["data"]["version"], 1)
        with self.assertRaises(hvac.exceptions.InvalidRequest):  # cas=0: only when absent
            kv.create_or_update_secret(path="app/db", secret={"user": "x"}, cas=0)
        kv.create_or_update_secret(path="app/db", secret={"user": "b"}, cas=1)
        with self.assertRaises(hvac.exceptions.InvalidRequest):  # stale cas
            kv.create_or_update_secret(path="app/db", secret={"user": "c"}, cas=1)
        kv.create_or_update_secret(path="app/db", secret={"user": "c"})
        r = kv.read_secret_version(path="app/db")
        self.assertEqual(r["data"]["data"], {"user": "c"})
        self.assertEqual(r["data"]["metadata"]["version"], 3)
        self.assertEqual(kv.read_secret_version(path="app/db", version=1)["data"]["data"], {"user": "a"})
        meta = kv.read_secret_metadata(path="app/db")["data"]
        self.assertEqual(meta["current_version"], 3)
        self.assertEqual(sorted(meta["versions"]), ["1", "2", "3"])
        with self.assertRaises(hvac.exceptions.InvalidPath):
            kv.read_secret_version(path="app/missing")

    def test_max_versions_prunes_oldest(self):
        kv = self.client.secrets.kv.v2
        kv.update_metadata(path="p", max_versions=2)
        for i in range(4):
            kv.create_or_update_secret(path="p", secret={"i": i})
        meta = kv.read_secret_metadata(path="p")["data"]
        self.assertEqual((meta["current_version"], meta["oldest_version"]), (4, 3))
        self.assertEqual(sorted(meta["versions"]), ["3", "4"])
        with self.assertRaises(hvac.exceptions.InvalidPath):
            kv.read_secret_version(path="p", version=1)

    def test_delete_undelete_destroy_metadata_delete(self):
        kv = self.client.secrets.kv.v2
        kv.create_or_update_secret(path="s", secret={"k": "1"})
        kv.create_or_update_secret(path="s", secret={"k": "2"})
        kv.delete_latest_version_of_secret(path="s")
        with self.assertRaises(hvac.exceptions.InvalidPath):
            kv.read_secret_version(path="s")
        # The raw answer: 404 with the version's metadata (deletion_time set), as Vault does.
        status, body = raw(self.v, "GET", "/v1/secret/data/s")
        self.assertEqual(status, 404)
        self.assertIsNone(body["data"]["data"])
        self.assertEqual(body["data"]["metadata"]["version"], 2)
        self.assertNotEqual(body["data"]["metadata"]["deletion_time"], "")
        meta = kv.read_secret_metadata(path="s")["data"]
        self.assertEqual(meta["current_version"], 2)
        self.assertNotEqual(meta["versions"]["2"]["deletion_time"], "")
        kv.undelete_secret_versions(path="s", versions=[2])
        self.assertEqual(kv.read_secret_version(path="s")["data"]["data"], {"k": "2"})
        kv.destroy_secret_versions(path="s", versions=[2])
        self.assertTrue(kv.read_secret_metadata(path="s")["data"]["versions"]["2"]["destroyed"])
        kv.undelete_secret_versions(path="s", versions=[2])  # a destroyed version stays destroyed
        with self.assertRaises(hvac.exceptions.InvalidPath):
            kv.read_secret_version(path="s")
        kv.delete_secret_versions(path="s", versions=[1])
        with self.assertRaises(hvac.exceptions.InvalidPath):
            kv.read_secret_version(path="s", version=1)
        kv.delete_metadata_and_all_versions(path="s")
        with self.assertRaises(hvac.exceptions.InvalidPath):
            kv.read_secret_metadata(path="s")

    def test_list(self):
        kv = self.client.secrets.kv.v2
        for p in ("gloo/a", "gloo/b/c", "gloo/b/d", "other"):
            kv.create_or_update_secret(path=p, secret={"x": "y"})
        self.assertEqual(kv.list_secrets(path="gloo")["data"]["keys"], ["a", "b/"])
        self.assertEqual(kv.list_secrets(path="gloo/b")["data"]["keys"], ["c", "d"])
        status, body = raw(self.v, "GET", "/v1/secret/metadata/gloo?list=true")
        self.assertEqual((status, body["data"]["keys"]), (200, ["a", "b/"]))
        with self.assertRaises(hvac.exceptions.InvalidPath):
            kv.list_secrets(path="nothing")

    def test_token_lookup_renew_until_max_ttl_then_expiry(self):
        tok = self.client.auth.token.create(ttl="60s", explicit_max_ttl="150s", renewable=True)
        token = tok["auth"]["client_token"]
        self.assertEqual(tok["auth"]["lease_duration"], 60)
        c = hvac.Client(url=self.v.address, token=token, timeout=5)
        look = c.auth.token.lookup_self()["data"]
        self.assertEqual((look["ttl"], look["renewable"], look["explicit_max_ttl"]), (60, True, 150))
        self.v.advance(50)
        self.assertLessEqual(c.auth.token.lookup_self()["data"]["ttl"], 10)
        r = c.auth.token.renew_self()
        self.assertEqual(r["auth"]["lease_duration"], 60)  # renewed for the creation TTL
        self.v.advance(50)
        r = c.auth.token.renew_self(increment=100)
        self.assertLessEqual(r["auth"]["lease_duration"], 50)  # capped by the explicit max TTL
        self.assertTrue(r["warnings"])
        self.v.advance(51)
        self.assertFalse(c.is_authenticated())
        with self.assertRaises(hvac.exceptions.Forbidden):
            c.auth.token.lookup_self()
        status, body = raw(self.v, "GET", "/v1/auth/token/lookup-self", token=token)
        self.assertEqual((status, body), (403, {"errors": ["permission denied"]}))

    def test_non_renewable_and_bad_token(self):
        token = self.v.create_token(ttl=30, renewable=False)
        c = hvac.Client(url=self.v.address, token=token, timeout=5)
        self.assertFalse(c.auth.token.lookup_self()["data"]["renewable"])
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            c.auth.token.renew_self()
        bad = hvac.Client(url=self.v.address, token="nope", timeout=5)
        with self.assertRaises(hvac.exceptions.Forbidden):
            bad.secrets.kv.v2.read_secret_version(path="x")

    def test_approle_login(self):
        self.client.auth.approle.create_or_update_approle(role_name="portico", token_ttl="20m",
                                                          token_max_ttl="1h", token_policies=["read"])
        role_id = self.client.auth.approle.read_role_id(role_name="portico")["data"]["role_id"]
        secret_id = self.client.auth.approle.generate_secret_id(role_name="portico")["data"]["secret_id"]
        c = hvac.Client(url=self.v.address, timeout=5)
        login = c.auth.approle.login(role_id=role_id, secret_id=secret_id)
        self.assertEqual(login["auth"]["lease_duration"], 1200)
        self.assertTrue(login["auth"]["renewable"])
        self.assertTrue(c.is_authenticated())  # the token hvac keeps from the login works
        self.assertEqual(c.auth.token.lookup_self()["data"]["policies"], ["read"])
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            c.auth.approle.login(role_id=role_id, secret_id="wrong")

    def test_sealed_and_injected_failures(self):
        kv = self.client.secrets.kv.v2
        kv.create_or_update_secret(path="x", secret={"a": "b"})
        self.v.seal()
        self.assertTrue(self.client.sys.is_sealed())
        with self.assertRaises(hvac.exceptions.VaultDown):
            kv.read_secret_version(path="x")
        status, body = raw(self.v, "GET", "/v1/secret/data/x")
        self.assertEqual((status, body), (503, {"errors": ["Vault is sealed"]}))
        self.v.unseal()
        self.assertEqual(kv.read_secret_version(path="x")["data"]["data"], {"a": "b"})
        self.v.inject("500", 1, "/secret/")
        with self.assertRaises(hvac.exceptions.InternalServerError):
            kv.read_secret_version(path="x")
        self.v.inject("garbage", 1, "/secret/")
        r = kv.read_secret_version(path="x")  # hvac hands back the raw response it cannot decode
        self.assertNotIsInstance(r, dict)
        self.assertIn(b"not JSON", r.content)
        self.assertEqual(kv.read_secret_version(path="x")["data"]["data"], {"a": "b"})

    def test_read_counts(self):
        kv = self.client.secrets.kv.v2
        kv.create_or_update_secret(path="a", secret={"a": "b"})
        kv.read_secret_version(path="a")
        kv.read_secret_metadata(path="a")
        self.assertEqual(self.v.read_count("a"), 2)
        self.assertEqual(self.v.read_count("a", kind="data"), 1)
        self.assertEqual(self.v.read_count("b"), 0)


class StandaloneDouble(unittest.TestCase):
    def test_standalone_prints_port_and_serves(self):
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support", "vault_double.py")
        proc = subprocess.Popen([sys.executable, script, "--port", "0"], stdout=subprocess.PIPE, text=True)
        try:
            port = int(proc.stdout.readline())

            class V:
                address = f"http://127.0.0.1:{port}"
            status, _ = raw(V, "POST", "/v1/secret/data/k", body={"data": {"a": "1"}})
            self.assertEqual(status, 200)
            status, body = raw(V, "GET", "/v1/secret/data/k")
            self.assertEqual((status, body["data"]["data"]), (200, {"a": "1"}))
            status, _ = raw(V, "POST", "/_double/seal", body={})
            status, body = raw(V, "GET", "/v1/secret/data/k")
            self.assertEqual(status, 503)
        finally:
            proc.terminate()
            proc.wait(timeout=5)


if __name__ == "__main__":
    unittest.main(verbosity=2)
