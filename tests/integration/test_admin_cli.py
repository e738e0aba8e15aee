#!/usr/bin/env python3
"""Admin endpoints (/ready, /stats, /config_dump, /resources) and the CLI (validate, get, describe) of the
real binary."""

import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402

# file:line:col: error|warning: path: message (the path is left out for file-level problems such as
# YAML syntax errors).
DIAGNOSTIC = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning): "
                        r"(?:(?P<path>\S*): )?(?P<msg>.+)$")

BROKEN_VS = """apiVersion: gateway.portico.dev/v1
kind: VirtualService
metadata:
  name: broken
  namespace: default
spec:
  virtualHost:
    domains: ["broken.example"]
    routes:
      - name: bad-regex
        matchers:
          - regex: "/(unclosed"
        directResponseAction:
          status: 200
      - name: bad-timeout
        matchers:
          - prefix: /t
        routeAction:
          single:
            upstream: {name: echo, namespace: default}
        options:
          timeout: "soon"
"""
BROKEN_US = """apiVersion: gateway.portico.dev/v1
kind: Upstream
metadata:
  name: badport
  namespace: default
spec:
  static:
    hosts:
      - addr: 127.0.0.1
        port: 70000
"""


def diagnostics(proc):
    out = []
    for line in (proc.stdout + "\n" + proc.stderr).splitlines():
        mt = DIAGNOSTIC.match(line.strip())
        if mt:
            d = mt.groupdict()
            d["line"], d["col"] = int(d["line"]), int(d["col"])
            d["path"] = d["path"] or ""
            out.append(d)
    return out


def find_key(obj, key, value):
    """True when some dict nested in obj has obj[key] == value."""
    if isinstance(obj, dict):
        if obj.get(key) == value:
            return True
        return any(find_key(v, key, value) for v in obj.values())
    if isinstance(obj, list):
        return any(find_key(v, key, value) for v in obj)
    return False


class AdminTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.echo = t.start_upstream(cls, "echo")
        cls.cfg = t.new_config(cls)
        cls.port = t.free_port()
        cls.cfg.write_obj("upstream-echo.yaml", t.upstream("echo", [(t.LOCALHOST, cls.echo.port)]))
        cls.cfg.write_obj("vs-web.yaml", t.virtual_service("web", [
            r("health", [m(exact="/health")], direct=(200, "ok")),
            r("to-echo", [m(prefix="/")], to="echo"),
        ], domains=["web.example", "*"]))
        cls.cfg.write_obj("vs-api.yaml", t.virtual_service("api", [
            r("api", [m(prefix="/")], direct=(200, "api"))], domains=["api.example"], namespace="team-b"))
        # A route shadowed by an earlier one: Warning, but served.
        cls.cfg.write_obj("vs-shadow.yaml", t.virtual_service("shadow", [
            r("wide", [m(prefix="/a")], direct=(200, "wide")),
            r("narrow", [m(prefix="/a/b")], direct=(200, "narrow")),
        ], domains=["shadow.example"]))
        cls.cfg.write_obj("gateway-gw.yaml", t.resource("Gateway", "gw", {
            "bindAddress": t.LOCALHOST, "bindPort": cls.port,
            "virtualServices": [t.ref("web"), t.ref("api", "team-b"), t.ref("shadow")]}))
        cls.portico = t.start_portico(cls, cls.cfg)

    def cli(self, *args):
        return t.run_cli(*args, "--admin", self.portico.admin)

    # --- admin endpoints -------------------------------------------------------------------------

    def test_ready(self):
        resp = self.portico.admin_get("/ready")
        self.assertEqual((resp.status, resp.text().strip()), (200, "ready"))

    def test_unknown_admin_path_is_404(self):
        self.assertEqual(self.portico.admin_get("/no-such-endpoint").status, 404)

    def test_stats_names(self):
        t.request(self.port, "GET", "/anything")
        resp = self.portico.admin_get("/stats")
        self.assertEqual(resp.status, 200)
        self.assertIn("text/plain", resp.header("Content-Type") or "")
        names = {n for n, _, _ in t.parse_prometheus(resp.text())}
        for name in ("portico_requests_total", "portico_downstream_connections_active",
                     "portico_downstream_connections_total", "portico_upstream_connections_active",
                     "portico_upstream_connections_total", "portico_upstream_requests_total",
                     "portico_upstream_errors_total", "portico_config_version",
                     "portico_config_last_change_timestamp_seconds", "portico_config_reload_errors_total"):
            if name == "portico_upstream_errors_total" and name not in names:
                continue  # a counter with labels may be absent until the first error
            self.assertIn(name, names)

    def test_request_duration_histogram(self):
        def buckets():
            out = {}
            for n, labels, v in self.portico.stats():
                if n == "portico_request_duration_seconds_bucket" and labels.get("route", "").endswith("to-echo"):
                    out[labels["le"]] = v
            return out
        before = buckets()
        self.assertEqual(t.request(self.port, "GET", "/delay/300").status, 200)
        def grew():
            now = buckets()
            return now.get("+Inf", 0) == before.get("+Inf", 0) + 1 and now
        now = t.wait_until(grew, 2, message="one more request in the duration histogram")
        # 300 ms upstream delay: above the 0.25 s bound, within the 0.5 s one.
        self.assertEqual(now["0.25"], before.get("0.25", 0))
        self.assertEqual(now["0.5"], before.get("0.5", 0) + 1)

    def test_requests_total_counts_exactly(self):
        def count():
            return sum(v for n, labels, v in self.portico.stats()
                       if n == "portico_requests_total" and labels.get("route", "").endswith("to-echo")
                       and labels.get("status_class") == "2xx")
        before = count()
        for i in range(7):
            self.assertEqual(t.request(self.port, "GET", f"/count/{i}").status, 200)
        t.wait_until(lambda: count() == before + 7, 2, message="portico_requests_total +7")
        time.sleep(0.2)
        self.assertEqual(count(), before + 7)

    def test_requests_total_labels(self):
        t.request(self.port, "GET", "/labels")
        t.request(self.port, "GET", "/health")
        samples = [(labels, v) for n, labels, v in self.portico.stats() if n == "portico_requests_total"]
        self.assertTrue(samples)
        for labels, _ in samples:
            self.assertTrue({"listener", "virtual_host", "route", "upstream", "status_class"} <= set(labels),
                            labels)
        echo = [labels for labels, v in samples if labels["route"].endswith("to-echo") and v > 0]
        self.assertTrue(echo and "echo" in echo[0]["upstream"] and "web" in echo[0]["virtual_host"], samples)

    def test_connection_counters(self):
        samples = self.portico.stats()
        before = t.metric_sum(samples, "portico_downstream_connections_total")
        for _ in range(3):
            t.request(self.port, "GET", "/conn")
        after = t.metric_sum(self.portico.stats(), "portico_downstream_connections_total")
        self.assertGreaterEqual(after - before, 3)
        self.assertGreaterEqual(t.metric_sum(self.portico.stats(), "portico_upstream_connections_total"), 1)

    def test_concurrent_clients_and_active_gauges_return_to_zero(self):
        import http.client
        import threading
        failures = []

        def client(n):
            try:
                conn = http.client.HTTPConnection(t.LOCALHOST, self.port, timeout=10)
                for i in range(10):
                    conn.request("GET", f"/concurrent/{n}/{i}")
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status != 200:
                        failures.append(resp.status)
                conn.close()
            except (OSError, http.client.HTTPException) as e:
                failures.append(repr(e))

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(64)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
        self.assertEqual(failures, [])
        # Every client connection was closed: the active gauge goes back to zero (no leak).
        t.wait_until(lambda: t.metric_sum(self.portico.stats(), "portico_downstream_connections_active") == 0,
                     3, message="portico_downstream_connections_active back to 0")

    def test_config_timestamp(self):
        samples = self.portico.stats()
        ts = t.metric_sum(samples, "portico_config_last_change_timestamp_seconds")
        self.assertLess(abs(ts - time.time()), 600, ts)
        self.assertGreaterEqual(t.metric_sum(samples, "portico_config_version"), 1)

    def test_config_dump(self):
        resp = self.portico.admin_get("/config_dump")
        self.assertEqual(resp.status, 200)
        dump = resp.json()
        self.assertTrue(find_key(dump, "port", self.port), "listener port not in config_dump")
        self.assertTrue(find_key(dump, "port", self.echo.port), "endpoint port not in config_dump")
        self.assertTrue(find_key(dump, "name", "default/echo"), "cluster default/echo not in config_dump")
        self.assertIn("web.example", json.dumps(dump))

    def test_resources(self):
        res = self.portico.resources()
        self.assertIsInstance(res, list)
        by_key = {(x["kind"], x["namespace"], x["name"]): x for x in res}
        expected = {("Gateway", "default", "gw"): "gateway-gw.yaml",
                    ("VirtualService", "default", "web"): "vs-web.yaml",
                    ("VirtualService", "team-b", "api"): "vs-api.yaml",
                    ("Upstream", "default", "echo"): "upstream-echo.yaml"}
        for key, fname in expected.items():
            self.assertIn(key, by_key)
            x = by_key[key]
            self.assertEqual(x["state"], "Accepted", x)
            self.assertEqual(os.path.basename(x["file"]), fname)
            self.assertGreaterEqual(x["line"], 1)
            self.assertIn("generation", x)
            self.assertIsInstance(x["reasons"], list)
        self.assertEqual(by_key[("Gateway", "default", "gw")]["spec"]["bindPort"], self.port)

    def test_warning_state(self):
        x = self.portico.resource("VirtualService", "shadow")
        self.assertEqual(x["state"], "Warning", x)
        warnings = [reason for reason in x["reasons"] if reason["severity"] == "warning"]
        self.assertTrue(warnings, x)
        w = warnings[0]
        self.assertEqual(os.path.basename(w["file"]), "vs-shadow.yaml")
        self.assertIn("routes[1]", w["path"])
        self.assertGreaterEqual(w["line"], 1)
        self.assertTrue(w["message"])
        # A warning does not stop the resource from serving.
        self.assertEqual(t.request(self.port, "GET", "/a/b", host="shadow.example").text(), "wide")

    def test_other_namespace_served(self):
        self.assertEqual(t.request(self.port, "GET", "/", host="api.example").text(), "api")

    # --- CLI get / describe ----------------------------------------------------------------------

    def table(self, out):
        """Rows of a `portico get` table as [namespace, name, status]. Columns are found by their
        headers (NAMESPACE, NAME, STATUS; a combined NAMESPACE/NAME is read too, so that the other
        tests still check the content; test_get_table_columns checks the contract's columns)."""
        lines = [ln for ln in out.splitlines() if ln.strip()]
        self.assertTrue(lines, out)
        header = lines[0].split()
        self.assertIn("STATUS", header, out)
        rows = []
        for ln in lines[1:]:
            cells = ln.split(None, len(header) - 1)  # only the last column may contain spaces
            cell = dict(zip(header, cells))
            if "NAMESPACE/NAME" in cell:
                ns, _, name = cell["NAMESPACE/NAME"].partition("/")
            else:
                ns, name = cell.get("NAMESPACE"), cell.get("NAME")
            rows.append([ns, name, cell.get("STATUS")])
        return rows

    def test_get_table_columns(self):
        proc = self.cli("get", "vs")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        header = proc.stdout.splitlines()[0].split()
        for column in ("NAMESPACE", "NAME", "STATUS"):
            self.assertIn(column, header, f"contract: `get` prints NAMESPACE NAME STATUS columns\n{proc.stdout}")

    def test_get_virtualservices_all_forms(self):
        for kind in ("virtualservices", "virtualservice", "vs"):
            with self.subTest(kind=kind):
                proc = self.cli("get", kind)
                self.assertEqual(proc.returncode, 0, proc.stderr)
                rows = {(ns, name): status for ns, name, status in self.table(proc.stdout)}
                self.assertEqual(rows, {("default", "web"): "Accepted", ("team-b", "api"): "Accepted",
                                        ("default", "shadow"): "Warning"})

    def test_get_gateways_and_upstreams(self):
        for kind in ("gateways", "gateway", "gw"):
            proc = self.cli("get", kind)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertEqual(self.table(proc.stdout), [["default", "gw", "Accepted"]])
        for kind in ("upstreams", "upstream", "us"):
            proc = self.cli("get", kind)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertEqual([row[:3] for row in self.table(proc.stdout)], [["default", "echo", "Accepted"]])

    def test_get_by_name(self):
        proc = self.cli("get", "vs", "web")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual([row[:3] for row in self.table(proc.stdout)], [["default", "web", "Accepted"]])

    def test_get_unknown_name_fails(self):
        proc = self.cli("get", "vs", "no-such-vs")
        self.assertNotEqual(proc.returncode, 0)
        self.assertTrue(proc.stderr.strip())

    def test_get_unknown_kind_fails(self):
        proc = self.cli("get", "pods")
        self.assertNotEqual(proc.returncode, 0)

    def test_get_without_server_fails(self):
        proc = t.run_cli("get", "vs", "--admin", f"127.0.0.1:{t.free_port()}")
        self.assertNotEqual(proc.returncode, 0)
        self.assertTrue(proc.stderr.strip())

    def test_describe(self):
        proc = self.cli("describe", "vs", "web", "--namespace", "default")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        for needle in ("web", "Accepted", "web.example", "/health"):
            self.assertIn(needle, proc.stdout)

    def test_describe_other_namespace(self):
        proc = self.cli("describe", "virtualservice", "api", "--namespace", "team-b")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("api.example", proc.stdout)

    def test_describe_shows_reasons(self):
        proc = self.cli("describe", "vs", "shadow")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("Warning", proc.stdout)
        x = self.portico.resource("VirtualService", "shadow")
        self.assertIn(x["reasons"][0]["message"], proc.stdout)


class StatusTest(t.IntegrationTest):
    """States reported for problems found while running: a port that cannot be bound, unknown fields."""

    def test_unbindable_port_rejects_the_gateway_only(self):
        import socket
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(blocker.close)
        blocker.bind((t.LOCALHOST, 0))
        blocker.listen(1)
        taken = blocker.getsockname()[1]
        cfg = self.new_config()
        port = t.free_port()
        cfg.write_obj("vs-vs.yaml", t.virtual_service("vs", [r("a", direct=(200, "ok"))]))
        cfg.write_obj("gateway-good.yaml", t.gateway("good", port, ["vs"]))
        cfg.write_obj("gateway-taken.yaml", t.gateway("taken", taken, ["vs"]))
        portico = self.start_portico(cfg)
        res = t.wait_until(lambda: (portico.resource("Gateway", "taken") or {}).get("state") == "Rejected"
                           and portico.resource("Gateway", "taken"), 3, message="Gateway taken Rejected")
        self.assertTrue(any(reason["severity"] == "error" and "bindPort" in reason["path"]
                            for reason in res["reasons"]), res)
        self.assertEqual(portico.resource("Gateway", "good")["state"], "Accepted")
        self.assertEqual(t.request(port, "GET", "/").text(), "ok")

    def test_port_of_another_portico_is_not_shared(self):
        # Portico listens with SO_REUSEPORT; a second process must still be told the port is taken
        # rather than silently receive part of the first one's traffic.
        port = t.free_port()
        first_cfg = self.new_config()
        first_cfg.write_obj("vs-vs.yaml", t.virtual_service("vs", [r("a", direct=(200, "first"))]))
        first_cfg.write_obj("gateway-gw.yaml", t.gateway("gw", port, ["vs"]))
        self.start_portico(first_cfg)
        second_cfg = self.new_config()
        second_cfg.write_obj("vs-vs.yaml", t.virtual_service("vs", [r("a", direct=(200, "second"))]))
        second_cfg.write_obj("gateway-gw.yaml", t.gateway("gw", port, ["vs"]))
        second = self.start_portico(second_cfg)
        res = t.wait_until(lambda: (second.resource("Gateway", "gw") or {}).get("state") == "Rejected"
                           and second.resource("Gateway", "gw"), 3, message="second Gateway Rejected")
        self.assertTrue(any("in use" in reason["message"] for reason in res["reasons"]), res)
        bodies = {t.request(port, "GET", "/").text() for _ in range(40)}
        self.assertEqual(bodies, {"first"})

    def test_unknown_field_rejects_the_resource(self):
        # Fail closed: a field Portico does not implement is never silently ignored.
        cfg = self.new_config()
        port = t.free_port()
        vs = t.virtual_service("vs", [r("a", direct=(200, "ok"))])
        vs["spec"]["virtualHost"]["routes"][0]["colour"] = "blue"
        cfg.write_obj("vs-vs.yaml", vs)
        cfg.write_obj("gateway-gw.yaml", t.gateway("gw", port, ["vs"]))
        portico = self.start_portico(cfg)
        res = portico.resource("VirtualService", "vs")
        self.assertEqual(res["state"], "Rejected", res)
        self.assertTrue(any("colour" in reason["path"] + reason["message"] for reason in res["reasons"]), res)
        self.assertEqual(t.request(port, "GET", "/").status, 404)

    def test_get_all(self):
        cfg = self.new_config()
        port = t.free_port()
        cfg.write_stack(port, [t.virtual_service("vs", [r("a", [m(prefix="/")], to="us")])],
                        [t.upstream("us", [(t.LOCALHOST, 1)])])
        portico = self.start_portico(cfg)
        proc = t.run_cli("get", "all", "--admin", portico.admin)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        for name in ("gw", "vs", "us"):
            self.assertRegex(proc.stdout, rf"\b{name}\b")
        self.assertIn("Accepted", proc.stdout)


class ValidateTest(t.IntegrationTest):
    def good_dir(self):
        cfg = self.new_config()
        cfg.write_stack(t.free_port(), [t.virtual_service("vs", [r("a", [m(prefix="/")], to="echo")])],
                        [t.upstream("echo", [(t.LOCALHOST, 1)])])
        return cfg

    def test_valid_config(self):
        proc = t.run_cli("validate", self.good_dir().path)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertEqual([d for d in diagnostics(proc) if d["sev"] == "error"], [])

    def test_warnings_do_not_fail(self):
        cfg = self.good_dir()
        cfg.write_obj("vs-shadow.yaml", t.virtual_service("shadow", [
            r("wide", [m(prefix="/a")], direct=(200, "wide")),
            r("narrow", [m(prefix="/a/b")], direct=(200, "narrow"))], domains=["shadow.example"]))
        proc = t.run_cli("validate", cfg.path)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        ds = diagnostics(proc)
        self.assertTrue(any(d["sev"] == "warning" and d["file"].endswith("vs-shadow.yaml") for d in ds),
                        proc.stdout + proc.stderr)

    def test_every_error_with_location(self):
        cfg = self.good_dir()
        cfg.write("vs-broken.yaml", BROKEN_VS)
        cfg.write("upstream-badport.yaml", BROKEN_US)
        proc = t.run_cli("validate", cfg.path)
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        errors = [d for d in diagnostics(proc) if d["sev"] == "error"]
        got = {(os.path.basename(d["file"]), d["line"], d["path"].rsplit(".", 1)[-1]) for d in errors}
        for want in (("vs-broken.yaml", 12, "regex"), ("vs-broken.yaml", 22, "timeout"),
                     ("upstream-badport.yaml", 10, "port")):
            self.assertIn(want, got, proc.stdout + proc.stderr)
        for d in errors:
            self.assertGreaterEqual(d["col"], 1)
        regex_err = [d for d in errors if d["line"] == 12][0]
        self.assertIn("routes[0]", regex_err["path"])
        timeout_err = [d for d in errors if d["line"] == 22][0]
        self.assertIn("routes[1]", timeout_err["path"])

    def test_yaml_syntax_error(self):
        cfg = self.good_dir()
        cfg.write("broken.yaml", "apiVersion: gateway.portico.dev/v1\nkind: Upstream\nmetadata:\n  name: x\n"
                                 "spec: [unclosed\n")
        proc = t.run_cli("validate", cfg.path)
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        errors = [d for d in diagnostics(proc) if d["sev"] == "error"]
        self.assertTrue(any(os.path.basename(d["file"]) == "broken.yaml" and d["line"] >= 5 for d in errors),
                        proc.stdout + proc.stderr)

    def test_unresolved_reference(self):
        cfg = self.new_config()
        cfg.write_stack(t.free_port(), [t.virtual_service("vs", [r("a", [m(prefix="/")], to="missing")])])
        proc = t.run_cli("validate", cfg.path)
        ds = diagnostics(proc)
        self.assertTrue(any("missing" in d["msg"] and d["file"].endswith("vs-vs.yaml") for d in ds),
                        proc.stdout + proc.stderr)

    def test_missing_directory(self):
        proc = t.run_cli("validate", "/nonexistent/portico-config")
        self.assertNotEqual(proc.returncode, 0)
        self.assertTrue(proc.stderr.strip())


if __name__ == "__main__":
    t.main()
