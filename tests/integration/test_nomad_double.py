#!/usr/bin/env python3
"""The Nomad double (tests/support/nomad_double.py) over plain HTTP: registrations and their fields,
per-namespace lists, blocking queries (return on change, after the wait, after a restore), paging,
ACL tokens, faults and the standalone mode. No Nomad client library is packaged by Debian, so the
wire format is checked against Nomad's documented API by hand."""

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support.nomad_double import NomadDouble, parse_duration  # noqa: E402


def get(double, path, headers=None, method="GET", body=b""):
    conn = http.client.HTTPConnection("127.0.0.1", double.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


class NomadDoubleTest(unittest.TestCase):
    def setUp(self):
        self.d = NomadDouble().start()
        self.addCleanup(self.d.stop)

    def test_registrations_and_lists(self):
        self.d.register("web", "127.0.0.2", 8080, tags=["v1"], alloc_id="a1")
        self.d.register("web", "127.0.0.3", 8081, tags=["v2"], alloc_id="a2")
        self.d.register("web", "127.0.0.4", 8082, namespace="prod")
        st, h, body = get(self.d, "/v1/service/web")
        self.assertEqual(st, 200)
        regs = json.loads(body)
        self.assertEqual(sorted((r["Address"], r["Port"]) for r in regs),
                         [("127.0.0.2", 8080), ("127.0.0.3", 8081)])
        for k in ("ID", "ServiceName", "Namespace", "NodeID", "Datacenter", "JobID", "AllocID", "Tags",
                  "CreateIndex", "ModifyIndex"):
            self.assertIn(k, regs[0])
        self.assertGreaterEqual(int(h["x-nomad-index"]), 1)
        st, _, body = get(self.d, "/v1/service/web?namespace=prod")
        self.assertEqual([r["Port"] for r in json.loads(body)], [8082])
        st, _, body = get(self.d, "/v1/service/nothing")
        self.assertEqual((st, json.loads(body)), (200, []))
        st, _, body = get(self.d, "/v1/services?namespace=*")
        self.assertEqual([n["Namespace"] for n in json.loads(body)], ["default", "prod"])
        st, _, body = get(self.d, "/v1/services")
        self.assertEqual(json.loads(body), [{"Namespace": "default",
                                             "Services": [{"ServiceName": "web", "Tags": ["v1", "v2"]}]}])
        self.assertEqual(self.d.deregister_alloc("a1"), 1)
        st, _, body = get(self.d, "/v1/service/web")
        self.assertEqual([r["Port"] for r in json.loads(body)], [8081])

    def test_blocking(self):
        self.d.register("web", "127.0.0.2", 8080)
        _, h, _ = get(self.d, "/v1/service/web")
        idx = int(h["x-nomad-index"])
        t0 = time.monotonic()
        st, h2, _ = get(self.d, f"/v1/service/web?index={idx}&wait=200ms")
        self.assertGreaterEqual(time.monotonic() - t0, 0.2)
        self.assertEqual(int(h2["x-nomad-index"]), idx)
        threading.Timer(0.2, lambda: self.d.register("web", "127.0.0.3", 8081)).start()
        t0 = time.monotonic()
        _, h3, body = get(self.d, f"/v1/service/web?index={idx}&wait=10s")
        self.assertLess(time.monotonic() - t0, 5)
        self.assertGreater(int(h3["x-nomad-index"]), idx)
        self.assertEqual(len(json.loads(body)), 2)
        # another service's change does not wake this one
        threading.Timer(0.1, lambda: self.d.register("other", "127.0.0.9", 1)).start()
        idx = int(h3["x-nomad-index"])
        _, h4, _ = get(self.d, f"/v1/service/web?index={idx}&wait=400ms")
        self.assertEqual(int(h4["x-nomad-index"]), idx)
        # restore: the index goes backwards and parked queries return at once
        threading.Timer(0.2, self.d.restore).start()
        t0 = time.monotonic()
        _, h5, _ = get(self.d, f"/v1/service/web?index={idx}&wait=10s")
        self.assertLess(time.monotonic() - t0, 5)
        self.assertLess(int(h5["x-nomad-index"]), idx)
        self.assertEqual(get(self.d, "/v1/service/web?index=x")[0], 400)
        self.assertEqual(get(self.d, "/v1/service/web?wait=5")[0], 400)
        self.assertEqual(get(self.d, "/v1/service/web?filter=x")[0], 400)

    def test_paging(self):
        for i in range(5):
            self.d.register("web", "127.0.0.2", 9000 + i, reg_id=f"id-{i}")
        seen, token = [], ""
        while True:
            _, h, body = get(self.d, f"/v1/service/web?per_page=2&next_token={token}")
            seen += [r["ID"] for r in json.loads(body)]
            token = h.get("x-nomad-nexttoken", "")
            if not token:
                break
        self.assertEqual(seen, [f"id-{i}" for i in range(5)])

    def test_acl_and_faults(self):
        d = NomadDouble(acl=True).start()
        self.addCleanup(d.stop)
        d.add_token("secret", ["default"])
        self.assertEqual(get(d, "/v1/service/web")[0], 403)
        self.assertEqual(get(d, "/v1/service/web", {"X-Nomad-Token": "bad"})[:1], (403,))
        self.assertEqual(get(d, "/v1/service/web", {"X-Nomad-Token": "secret"})[0], 200)
        self.assertEqual(get(d, "/v1/service/web?namespace=prod", {"X-Nomad-Token": "secret"})[0], 403)
        self.d.fault("500", 1)
        self.assertEqual(get(self.d, "/v1/service/web")[0], 500)
        self.assertEqual(get(self.d, "/v1/service/web")[0], 200)
        get(self.d, "/_double/fault?mode=garbage&count=1", method="PUT")
        self.assertEqual(get(self.d, "/v1/service/web")[2], b"{not json")
        st, _, body = get(self.d, "/_double/register", method="PUT",
                          body=json.dumps({"ServiceName": "api", "Address": "127.0.0.5", "Port": 7}).encode())
        rid = json.loads(body)["ID"]
        self.assertEqual(len(json.loads(get(self.d, "/v1/service/api")[2])), 1)
        get(self.d, f"/_double/deregister/{rid}", method="PUT")
        self.assertEqual(json.loads(get(self.d, "/v1/service/api")[2]), [])
        self.assertEqual(parse_duration("1m30s"), 90.0)

    def test_standalone(self):
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support", "nomad_double.py")
        p = subprocess.Popen([sys.executable, script, "--port", "0"], stdout=subprocess.PIPE, text=True)
        try:
            port = int(p.stdout.readline())
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/v1/services")
            self.assertEqual(conn.getresponse().status, 200)
            conn.close()
        finally:
            p.terminate()
            p.wait(10)


if __name__ == "__main__":
    unittest.main()
