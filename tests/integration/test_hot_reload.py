#!/usr/bin/env python3
"""Hot reload of the file configuration under load, through the real binary: 20 rewrites while requests
flow on keep-alive and new connections (zero failures, each change served within 2 s), in-flight requests
finish on their configuration, removed routes go, upstream endpoints move, bad files and invalid new versions
never replace the configuration in force."""

import http.client
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402

APPLY_WITHIN = 2.0  # seconds from a file write to the new configuration serving


class Load:
    """Background traffic: one thread on a keep-alive connection, one opening a connection per request.
    Every request must answer with the expected status; anything else is a failure. Bounded in time."""

    def __init__(self, port, paths, max_seconds=90.0):
        self.port = port
        self.paths = paths
        self.max_seconds = max_seconds
        self.failures = []
        self.count = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(ka,), daemon=True) for ka in (True, False)]

    def _run(self, keep_alive):
        deadline = time.monotonic() + self.max_seconds
        conn = None
        i = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            path = self.paths[i % len(self.paths)]
            i += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(t.LOCALHOST, self.port, timeout=5)
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
                if not ok:
                    self._fail(f"{'keep-alive' if keep_alive else 'new-conn'} {path}: {resp.status}")
            except (OSError, http.client.HTTPException) as e:
                self._fail(f"{'keep-alive' if keep_alive else 'new-conn'} {path}: {e!r}")
                if conn is not None:
                    conn.close()
                conn = None
            with self._lock:
                self.count += 1
            if not keep_alive and conn is not None:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def _fail(self, msg):
        with self._lock:
            self.failures.append(msg)

    def __enter__(self):
        for th in self._threads:
            th.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for th in self._threads:
            th.join(10)


class HotReloadTest(t.IntegrationTest):
    def setUp(self):
        super().setUp()
        self.echo = self.start_upstream("echo")
        self.cfg = self.new_config()
        self.port = t.free_port()
        self.write_vs(0)
        self.cfg.write_obj("upstream-echo.yaml", t.upstream("echo", [(t.LOCALHOST, self.echo.port)]))
        self.cfg.write_obj("gateway-gw.yaml", t.gateway("gw", self.port, ["vs"]))
        self.portico = self.start_portico(self.cfg)

    def write_vs(self, generation, extra_routes=(), with_stable=True):
        routes = [r(f"new-{i}", [m(exact=f"/new/{i}")], direct=(200, f"new-{i}")) for i in range(1, generation + 1)]
        routes.append(r("dr", [m(exact="/dr")], direct=(200, f"v{generation}")))
        routes.extend(extra_routes)
        if with_stable:
            routes.append(r("stable", [m(prefix="/stable")], to="echo"))
        self.cfg.write_obj("vs-vs.yaml", t.virtual_service("vs", routes))

    def body(self, path):
        resp = t.request(self.port, "GET", path, timeout=5)
        return resp.status, resp.text()

    def wait_serving(self, path, expected, within=APPLY_WITHIN):
        start = time.monotonic()
        t.wait_until(lambda: self.body(path) == expected, within, message=f"{path} answering {expected}")
        return time.monotonic() - start

    def test_reload_under_load(self):
        version_before = self.portico.config_version()
        with Load(self.port, ["/stable/a", "/dr", "/stable/b"]) as load:
            time.sleep(0.2)
            delays = []
            for i in range(1, 21):
                self.write_vs(i)
                written = time.monotonic()
                self.wait_serving(f"/new/{i}", (200, f"new-{i}"))
                # Each worker swaps its configuration on its own loop: the other worker may lag a moment.
                self.wait_serving("/dr", (200, f"v{i}"), within=APPLY_WITHIN - (time.monotonic() - written))
                delays.append(time.monotonic() - written)
            time.sleep(0.2)
        self.assertEqual(load.failures, [], f"{len(load.failures)} failed of {load.count} requests")
        self.assertGreater(load.count, 100, "the load generator hardly ran")
        self.assertLess(max(delays), APPLY_WITHIN)
        self.assertGreaterEqual(self.portico.config_version(), version_before + 20)

    def test_in_flight_request_finishes_on_its_configuration(self):
        self.write_vs(0, extra_routes=[r("slow", [m(prefix="/delay")], to="echo")])
        t.wait_until(lambda: self.body("/delay/0")[0] == 200, APPLY_WITHIN, message="/delay route serving")
        result = {}

        def slow():
            try:
                result["resp"] = t.request(self.port, "GET", "/delay/1500", timeout=10)
            except OSError as e:
                result["error"] = e

        th = threading.Thread(target=slow, daemon=True)
        th.start()
        t.wait_until(lambda: [q for q in self.echo.requests() if q["path"] == "/delay/1500"], 2)
        self.write_vs(1)  # the /delay route is gone from the new configuration
        self.wait_serving("/new/1", (200, "new-1"))
        th.join(10)
        self.assertNotIn("error", result)
        self.assertEqual(result["resp"].status, 200)
        self.assertEqual(self.body("/delay/0")[0], 404)

    def test_removed_route_goes(self):
        self.write_vs(3)
        self.wait_serving("/new/3", (200, "new-3"))
        self.write_vs(1)
        t.wait_until(lambda: self.body("/new/3")[0] == 404, APPLY_WITHIN, message="/new/3 gone")
        self.assertEqual(self.body("/new/1"), (200, "new-1"))

    def test_upstream_endpoint_moves(self):
        other = self.start_upstream("other")
        with Load(self.port, ["/stable/x"]) as load:
            time.sleep(0.2)
            self.cfg.write_obj("upstream-echo.yaml", t.upstream("echo", [(t.LOCALHOST, other.port)]))
            t.wait_until(lambda: t.request(self.port, "GET", "/stable/y").header("X-Upstream") == "other",
                         APPLY_WITHIN, message="traffic moved to the new endpoint")
            time.sleep(0.3)
        self.assertEqual(load.failures, [])

    def test_new_virtual_service_and_gateway(self):
        port2 = t.free_port()
        self.cfg.write_obj("vs-second.yaml", t.virtual_service("second", [r("s", direct=(200, "second"))]))
        self.cfg.write_obj("gateway-gw2.yaml", t.gateway("gw2", port2, ["second"]))
        t.wait_until(lambda: t.request(port2, "GET", "/", timeout=2).text() == "second", APPLY_WITHIN + 1,
                     message="the new gateway serving")
        self.assertEqual(self.body("/dr"), (200, "v0"))
        # Removing the gateway closes its listener.
        self.cfg.remove("gateway-gw2.yaml")
        t.wait_until(lambda: t.port_refuses(port2), APPLY_WITHIN + 1, message="listener of a removed gateway closed")
        self.assertEqual(self.body("/dr"), (200, "v0"))

    def test_removed_gateway_closes_its_idle_keep_alive_connections(self):
        port3 = t.free_port()
        self.cfg.write_obj("vs-third.yaml", t.virtual_service("third", [r("s", direct=(200, "third"))]))
        self.cfg.write_obj("gateway-gw3.yaml", t.gateway("gw3", port3, ["third"]))
        t.wait_until(lambda: t.request(port3, "GET", "/", timeout=2).text() == "third", APPLY_WITHIN + 1,
                     message="the new gateway serving")
        s = socket.create_connection((t.LOCALHOST, port3), timeout=5)
        self.addCleanup(s.close)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(t.read_response(s).status, 200)
        self.cfg.remove("gateway-gw3.yaml")
        # The idle connection is closed by Portico (EOF) when the listener goes, instead of failing the
        # client's next request on it.
        s.settimeout(APPLY_WITHIN + 2)
        self.assertEqual(s.recv(1), b"")
        self.assertEqual(self.body("/dr"), (200, "v0"))

    def test_gateway_address_widened_on_the_same_port(self):
        port4 = t.free_port()
        self.cfg.write_obj("vs-fourth.yaml", t.virtual_service("fourth", [r("s", direct=(200, "fourth"))]))
        self.cfg.write_obj("gateway-gw4.yaml", t.gateway("gw4", port4, ["fourth"]))
        t.wait_until(lambda: t.request(port4, "GET", "/", timeout=2).text() == "fourth", APPLY_WITHIN + 1,
                     message="the gateway on 127.0.0.1 serving")
        # 127.0.0.1:P -> 0.0.0.0:P: our own sockets still hold the port while the new ones open.
        self.cfg.write_obj("gateway-gw4.yaml", t.gateway("gw4", port4, ["fourth"], bind_address="0.0.0.0"))
        def widened():
            res = self.portico.resource("Gateway", "gw4") or {}
            return res.get("state") == "Accepted" and res.get("spec", {}).get("bindAddress") == "0.0.0.0"
        t.wait_until(widened, APPLY_WITHIN + 1, message="the widened gateway accepted (bound)")
        self.assertEqual(t.request(port4, "GET", "/", timeout=2).text(), "fourth")

    def test_unchanged_translation_keeps_version(self):
        version = self.portico.config_version()
        self.write_vs(0)  # same content, new file (rename): nothing to publish
        with open(self.cfg.file("vs-vs.yaml")) as f:
            self.cfg.write("vs-vs.yaml", f.read() + "\n# a comment\n")
        time.sleep(0.5)
        self.assertEqual(self.portico.config_version(), version)
        self.write_vs(1)
        self.wait_serving("/new/1", (200, "new-1"))
        self.assertEqual(self.portico.config_version(), version + 1)

    def test_hidden_and_backup_files_ignored(self):
        errors = t.metric_sum(self.portico.stats(), "portico_config_reload_errors_total")
        version = self.portico.config_version()
        self.cfg.write(".vs-vs.yaml.swp", "\x00\x01 not yaml: [")
        self.cfg.write("vs-vs.yaml~", "kind: VirtualService\nmetadata: {name: [\n")
        self.cfg.write("notes.txt", "not configuration")
        time.sleep(0.5)
        self.assertEqual(t.metric_sum(self.portico.stats(), "portico_config_reload_errors_total"), errors)
        self.assertEqual(self.portico.config_version(), version)
        self.assertEqual(self.body("/dr"), (200, "v0"))

    def test_subdirectories_are_read(self):
        self.cfg.write_obj("team-a/vs-sub.yaml", t.virtual_service("sub", [r("s", direct=(200, "from-sub"))],
                                                                   domains=["sub.example"]))
        self.cfg.write_obj("gateway-gw.yaml", t.gateway("gw", self.port, ["vs", "sub"]))
        t.wait_until(lambda: t.request(self.port, "GET", "/", host="sub.example").text() == "from-sub",
                     APPLY_WITHIN, message="VirtualService from a subdirectory serving")

    def test_plain_overwrite_in_place(self):
        # Not every editor renames: a file rewritten in place (truncate + write) is picked up too.
        path = self.cfg.file("vs-vs.yaml")
        self.write_vs(2)
        self.wait_serving("/new/2", (200, "new-2"))
        with open(path) as f:
            text = f.read().replace('"v2"', '"in-place"')
        with open(path, "w") as f:
            f.write(text)
        self.wait_serving("/dr", (200, "in-place"))

    def test_yaml_syntax_error_keeps_configuration(self):
        errors_before = t.metric_sum(self.portico.stats(), "portico_config_reload_errors_total")
        with Load(self.port, ["/stable/a", "/dr"]) as load:
            self.cfg.write("broken.yaml", "kind: VirtualService\nmetadata: {name: broken\nspec: [\n")
            t.wait_until(lambda: t.metric_sum(self.portico.stats(), "portico_config_reload_errors_total")
                         > errors_before, APPLY_WITHIN + 1, message="portico_config_reload_errors_total increased")
            # Also a broken edit of a file in use: the previous content stays in force.
            self.cfg.write("vs-vs.yaml", "apiVersion: gateway.solo.io/v1\nkind: VirtualService\n  bad: [indent\n")
            time.sleep(1.0)
            self.assertEqual(self.body("/dr"), (200, "v0"))
        self.assertEqual(load.failures, [])
        self.assertTrue(self.portico.alive())
        # Fixing the files applies again.
        self.cfg.remove("broken.yaml")
        self.write_vs(1)
        self.wait_serving("/new/1", (200, "new-1"))

    def test_invalid_update_under_load_keeps_the_last_good_version(self):
        with Load(self.port, ["/stable/a", "/dr"]) as load:
            time.sleep(0.2)
            # The new version of a VirtualService in use is invalid: its previous version keeps serving.
            self.write_vs(1, extra_routes=[r("bad", [m(regex="/(unclosed")], direct=(200, "never"))])
            res = t.wait_until(lambda: (self.portico.resource("VirtualService", "vs") or {}).get("state")
                               == "Rejected" and self.portico.resource("VirtualService", "vs"),
                               APPLY_WITHIN + 1, message="VirtualService vs Rejected")
            self.assertIn("servingGeneration", res)
            time.sleep(0.3)
            self.assertEqual(self.body("/dr"), (200, "v0"))
            self.assertEqual(self.body("/new/1")[0], 404)
        self.assertEqual(load.failures, [])
        self.write_vs(2)
        self.wait_serving("/new/2", (200, "new-2"))

    def test_invalid_resource_is_rejected_and_others_keep_serving(self):
        self.cfg.write_obj("vs-bad.yaml", t.virtual_service("bad", [
            r("bad-regex", [m(regex="/(unclosed")], direct=(200, "never"))], domains=["bad.example"]))
        self.cfg.write_obj("gateway-gw.yaml", t.gateway("gw", self.port, ["vs", "bad"]))

        def rejected():
            res = self.portico.resource("VirtualService", "bad")
            return res is not None and res.get("state") == "Rejected" and res
        res = t.wait_until(rejected, APPLY_WITHIN + 1, message="VirtualService bad Rejected")
        self.assertTrue(any(reason.get("severity") == "error" for reason in res.get("reasons", [])), res)
        self.assertEqual(self.body("/dr"), (200, "v0"))
        self.assertEqual(self.body("/stable/ok")[0], 200)
        self.assertEqual(self.portico.resource("VirtualService", "vs").get("state"), "Accepted")
        self.assertTrue(self.portico.alive())


if __name__ == "__main__":
    t.main()
