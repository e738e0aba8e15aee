#!/usr/bin/env python3
"""The read-only CLI commands against the real binary: get (-o table|wide|yaml|json), describe,
check, proxy dump, validate (DIR, FILE, stdin, -o json), --help, flag forms and exit codes."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402

# Exit codes (docs/operations.md).
OK, FINDINGS, USAGE, UNAVAILABLE = 0, 1, 2, 3


def web_vs():
    return t.virtual_service("web", [
        r("health", [m(exact="/health")], direct=(200, "ok")),
        r("api", [m(prefix="/api/")], to="echo", options={"prefixRewrite": "/", "timeout": "5s"}),
    ], domains=["web.example"])


class InspectTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.echo = t.start_upstream(cls, "echo")
        cls.cfg = t.new_config(cls)
        cls.port = t.free_port()
        cls.cfg.write_obj("upstream-echo.yaml", t.upstream("echo", [(t.LOCALHOST, cls.echo.port)]))
        cls.cfg.write_obj("vs-web.yaml", web_vs())
        # Rejected: a field Portico does not implement (fail closed).
        broken = t.virtual_service("broken", [r("a", [m(prefix="/")], direct=(200, "broken"))],
                                   domains=["broken.example"])
        broken["spec"]["virtualHost"]["routes"][0]["colour"] = "blue"
        cls.cfg.write_obj("vs-broken.yaml", broken)
        # Warning: the second route can never match.
        cls.cfg.write_obj("vs-shadow.yaml", t.virtual_service("shadow", [
            r("wide", [m(prefix="/a")], direct=(200, "wide")),
            r("narrow", [m(prefix="/a/b")], direct=(200, "narrow"))], domains=["shadow.example"]))
        cls.cfg.write_obj("gateway-gw.yaml", t.gateway("gw", cls.port, ["web", "broken", "shadow"]))
        cls.portico = t.start_portico(cls, cls.cfg)

    def cli(self, *args, admin=True, **kw):
        extra = ("--admin", self.portico.admin) if admin else ()
        return t.run_cli(*args, *extra, **kw)

    def assert_one_line_error(self, proc, code, *needles):
        self.assertEqual(proc.returncode, code, proc.stdout + proc.stderr)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        self.assertEqual(len(lines), 1, proc.stderr)
        for n in needles:
            self.assertIn(n, lines[0])

    # --- get -------------------------------------------------------------------------------------

    def test_get_table_and_wide(self):
        proc = self.cli("get", "vs")
        self.assertEqual(proc.returncode, OK, proc.stderr)
        header = proc.stdout.splitlines()[0].split()
        self.assertEqual(header, ["NAMESPACE", "NAME", "STATUS", "REASON"])
        rows = {ln.split()[1]: ln.split()[2] for ln in proc.stdout.splitlines()[1:]}
        self.assertEqual(rows, {"web": "Accepted", "broken": "Rejected", "shadow": "Warning"})
        wide = self.cli("get", "vs", "-o", "wide")
        self.assertEqual(wide.returncode, OK, wide.stderr)
        self.assertEqual(wide.stdout.splitlines()[0].split(),
                         ["NAMESPACE", "NAME", "STATUS", "GENERATION", "FILE", "DETAILS", "REASON"])
        web = [ln.split() for ln in wide.stdout.splitlines() if ln.split()[1] == "web"][0]
        self.assertRegex(web[3], r"^[0-9]+$")
        self.assertTrue(web[4].startswith("vs-web.yaml"), web)
        self.assertEqual(web[5], "domains=web.example;routes=2")
        gw = self.cli("get", "gw", "-o", "wide")
        self.assertIn(f"{t.LOCALHOST}:{self.port}", gw.stdout)

    def test_get_json_and_yaml_in_both_flag_forms(self):
        for args in (("-o", "json"), ("--output", "json"), ("--output=json",), ("-ojson",)):
            proc = self.cli("get", "upstreams", *args)
            self.assertEqual(proc.returncode, OK, proc.stderr)
            items = json.loads(proc.stdout)
            self.assertEqual([(x["kind"], x["name"], x["state"]) for x in items],
                             [("Upstream", "echo", "Accepted")])
        one = json.loads(self.cli("get", "vs", "web", "-o", "json").stdout)
        self.assertEqual(one["spec"]["virtualHost"]["domains"], ["web.example"])
        yaml = self.cli("get", "vs", "web", "-o", "yaml")
        self.assertEqual(yaml.returncode, OK, yaml.stderr)
        self.assertIn("name: web\n", yaml.stdout)
        self.assertIn("state: Accepted\n", yaml.stdout)
        self.assertIn("- web.example\n", yaml.stdout)

    def test_get_kind_aliases(self):
        for kind in ("vs", "vservice", "virtualservice", "VirtualServices", "virtual-service"):
            proc = self.cli("get", kind, "web")
            self.assertEqual(proc.returncode, OK, f"{kind}: {proc.stderr}")
        for kind in ("us", "upstreams"):
            self.assertEqual(self.cli("get", kind, "echo").returncode, OK, kind)
        proc = self.cli("get", "all")
        kinds = {ln.split()[0] for ln in proc.stdout.splitlines()[1:]}
        self.assertEqual(kinds, {"Gateway", "Upstream", "VirtualService"})

    def test_get_errors(self):
        self.assert_one_line_error(self.cli("get", "vs", "-o", "xml"), USAGE,
                                   "unknown output format 'xml'", "table, wide, yaml, json")
        self.assert_one_line_error(self.cli("get", "pods"), USAGE, "unknown kind 'pods'", "gateways")
        self.assert_one_line_error(self.cli("get", "vs", "--colour"), USAGE, "unknown flag '--colour'")
        self.assert_one_line_error(self.cli("get", "vs", "nope"), FINDINGS, "not found")
        proc = t.run_cli("get", "vs", "--admin", f"127.0.0.1:{t.free_port()}")
        self.assert_one_line_error(proc, UNAVAILABLE, "cannot reach the admin API")

    # --- describe --------------------------------------------------------------------------------

    def test_describe_virtual_service_shows_what_it_produced(self):
        proc = self.cli("describe", "vs", "web")
        self.assertEqual(proc.returncode, OK, proc.stderr)
        out = proc.stdout
        for needle in ("Status:      Accepted", "Spec:\n  virtualHost:", "prefixRewrite: /",
                       "In the running configuration (version",
                       f"virtual host default/web (web.example) on listener default/gw on {t.LOCALHOST}:{self.port}",
                       '1. default/web/health: exact "/health" -> direct response 200',
                       '2. default/web/api: prefix "/api/" -> default/echo'):
            self.assertIn(needle, out)

    def test_describe_upstream_and_gateway(self):
        us = self.cli("describe", "us", "echo")
        self.assertIn(f"cluster default/echo: {t.LOCALHOST}:{self.echo.port}", us.stdout)
        self.assertIn("used by route default/web/api on listener default/gw", us.stdout)
        gw = self.cli("describe", "gateway", "gw")
        self.assertIn(f"listener default/gw on {t.LOCALHOST}:{self.port}", gw.stdout)
        self.assertIn("virtual host default/shadow (shadow.example), 2 routes", gw.stdout)
        self.assertNotIn("default/broken", gw.stdout.split("In the running configuration")[1])

    def test_describe_rejected(self):
        proc = self.cli("describe", "vs", "broken")
        self.assertEqual(proc.returncode, OK, proc.stderr)
        self.assertIn("Status:      Rejected", proc.stdout)
        self.assertIn("colour", proc.stdout)
        self.assertIn("nothing (Rejected resources are left out)", proc.stdout)
        data = json.loads(self.cli("describe", "vs", "broken", "-o", "json").stdout)
        self.assertEqual((data["state"], data["produced"]), ("Rejected", []))

    def test_describe_errors(self):
        self.assert_one_line_error(self.cli("describe", "vs"), USAGE, "wants KIND NAME")
        self.assert_one_line_error(self.cli("describe", "vs", "web", "-n", "team-x"), FINDINGS,
                                   "not found", "exists in namespace default")

    # --- check -----------------------------------------------------------------------------------

    def test_check_reports_rejected_and_warning(self):
        proc = self.cli("check")
        self.assertEqual(proc.returncode, FINDINGS, proc.stdout + proc.stderr)
        self.assertIn("Rejected VirtualService default/broken (vs-broken.yaml)", proc.stdout)
        self.assertIn("Warning VirtualService default/shadow (vs-shadow.yaml)", proc.stdout)
        self.assertIn("colour", proc.stdout)
        # The Gateway serves a rejected VirtualService: a Warning too.
        self.assertIn("Warning Gateway default/gw (gateway-gw.yaml)", proc.stdout)
        self.assertNotIn("default/web", proc.stdout)
        self.assertIn("5 resources: 2 accepted, 2 with warnings, 1 rejected, 0 pending\n", proc.stdout)
        data = json.loads(self.cli("check", "-o", "json").stdout)
        self.assertEqual((data["ok"], data["ready"]), (False, True))
        self.assertEqual(sorted(p["name"] for p in data["problems"]), ["broken", "gw", "shadow"])

    def test_admin_flag_takes_a_url(self):
        for admin in (self.portico.admin, f"http://{self.portico.admin}", f"http://{self.portico.admin}/"):
            proc = t.run_cli("get", "vs", "web", "--admin", admin)
            self.assertEqual(proc.returncode, OK, f"{admin}: {proc.stderr}")
        proc = t.run_cli("get", "vs", "--admin", "ftp://x")
        self.assert_one_line_error(proc, UNAVAILABLE, "--admin wants ADDR:PORT or http://ADDR:PORT")
        # https:// is a `portico server` with TLS on --listen (test_fleet's FleetMtlsTest).
        proc = t.run_cli("get", "vs", "--admin", "https://x")
        self.assert_one_line_error(proc, UNAVAILABLE, "cannot reach the REST API at https://x")

    def test_check_unreachable(self):
        proc = t.run_cli("check", "--admin", f"127.0.0.1:{t.free_port()}")
        self.assert_one_line_error(proc, UNAVAILABLE, "cannot reach the admin API")

    # --- proxy dump ------------------------------------------------------------------------------

    def test_proxy_dump_is_the_config_dump(self):
        proc = self.cli("proxy", "dump")
        self.assertEqual(proc.returncode, OK, proc.stderr)
        self.assertEqual(json.loads(proc.stdout), self.portico.admin_get("/config_dump").json())
        self.assertIn('\n  "listeners": [', proc.stdout)  # pretty
        yaml = self.cli("proxy", "dump", "-o", "yaml")
        self.assertIn("listeners:\n", yaml.stdout)
        self.assertIn(f"port: {self.port}\n", yaml.stdout)
        self.assert_one_line_error(self.cli("proxy", "dump", "-o", "wide"), USAGE, "valid: json, yaml")
        self.assert_one_line_error(self.cli("proxy", "show"), USAGE, "unknown subcommand 'show'")

    def test_proxy_dump_from_files(self):
        proc = self.cli("proxy", "dump", "--dir", self.cfg.path, admin=False)
        self.assertEqual(proc.returncode, OK, proc.stderr)
        local = json.loads(proc.stdout)
        running = self.portico.admin_get("/config_dump").json()
        for d in (local, running):
            d.pop("version")
            d.pop("versions")
            d.pop("created_unix_ms")
        self.assertEqual(local, running)

    # --- help ------------------------------------------------------------------------------------

    def test_every_command_has_help(self):
        for cmd in (["get"], ["describe"], ["validate"], ["check"], ["proxy"], ["proxy", "dump"],
                    ["route"], ["route", "explain"], ["route", "add"], ["route", "remove"], ["diff"],
                    ["run"]):
            proc = t.run_cli(*cmd, "--help")
            self.assertEqual(proc.returncode, OK, f"{cmd}: {proc.stderr}")
            self.assertTrue(proc.stdout.startswith("Usage: portico " + cmd[0]), f"{cmd}: {proc.stdout}")
            if cmd != ["run"]:
                self.assertIn("Exit", proc.stdout, cmd)
        top = t.run_cli("--help")
        for cmd in ("validate", "get", "describe", "check", "proxy dump", "route explain", "route add",
                    "diff"):
            self.assertIn("portico " + cmd, top.stdout)


class ValidateCliTest(t.IntegrationTest):
    def setUp(self):
        super().setUp()
        self.cfg = self.new_config()
        self.cfg.write_stack(t.free_port(), [web_vs()], [t.upstream("echo", [(t.LOCALHOST, 1)])])

    def test_json_diagnostics(self):
        self.cfg.write("vs-bad.yaml", "apiVersion: gateway.portico.dev/v1\nkind: VirtualService\n"
                                      "metadata:\n  name: bad\nspec:\n  virtualHost:\n    domains: [bad.example]\n"
                                      "    routes:\n      - matchers: [{regex: '/(unclosed'}]\n"
                                      "        directResponseAction: {status: 200}\n")
        proc = t.run_cli("validate", self.cfg.path, "-o", "json")
        self.assertEqual(proc.returncode, FINDINGS, proc.stderr)
        data = json.loads(proc.stdout)
        self.assertFalse(data["valid"])
        self.assertEqual(data["summary"]["rejected"], 1)
        errors = [d for d in data["diagnostics"] if d["severity"] == "error"]
        self.assertTrue(errors, data)
        d = errors[0]
        self.assertEqual(set(d) >= {"file", "line", "column", "path", "severity", "message"}, True, d)
        self.assertEqual((d["file"], d["line"], d["kind"], d["name"]), ("vs-bad.yaml", 9, "VirtualService", "bad"))
        self.assertGreaterEqual(d["column"], 1)
        self.assertIn("routes[0]", d["path"])

    def test_valid_dir_file_and_stdin(self):
        proc = t.run_cli("validate", self.cfg.path, "-o", "json")
        self.assertEqual(proc.returncode, OK, proc.stdout + proc.stderr)
        self.assertTrue(json.loads(proc.stdout)["valid"])
        one = t.run_cli("validate", self.cfg.file("upstream-echo.yaml"))
        self.assertEqual(one.returncode, OK, one.stdout + one.stderr)
        # Alone, the Upstream is used by no route: accepted with a warning.
        self.assertIn("1 resources: 0 accepted, 1 with warnings, 0 rejected", one.stdout)
        self.assertIn("unused", one.stdout)
        with open(self.cfg.file("vs-web.yaml")) as f:
            text = f.read()
        # Alone, the VirtualService refers to an Upstream it does not see: a warning.
        stdin = subprocess.run([t.PORTICO_BIN, "validate", "-", "-o", "json"], input=text,
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(stdin.returncode, OK, stdin.stderr)
        data = json.loads(stdin.stdout)
        self.assertTrue(any(d["file"] == "<stdin>" and d["severity"] == "warning" and "echo" in d["message"]
                            for d in data["diagnostics"]), data)
        broken = subprocess.run([t.PORTICO_BIN, "validate", "-"], input="kind: Nope\n",
                                capture_output=True, text=True, timeout=30)
        self.assertEqual(broken.returncode, FINDINGS, broken.stdout + broken.stderr)
        self.assertIn("<stdin>", broken.stdout)

    def test_errors(self):
        proc = t.run_cli("validate", "/nonexistent/portico")
        self.assertEqual(proc.returncode, UNAVAILABLE)
        self.assertIn("no such file or directory", proc.stderr)
        proc = t.run_cli("validate", self.cfg.path, "-o", "yaml")
        self.assertEqual(proc.returncode, USAGE)
        self.assertIn("valid: text, json", proc.stderr)
        self.assertEqual(t.run_cli("validate").returncode, USAGE)


if __name__ == "__main__":
    t.main()
