#!/usr/bin/env python3
"""`portico diff DIR|FILE` against a running portico: nothing applied; added, removed and changed
resources (with a unified diff of their specs), status changes, and the data plane's change."""

import json
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402

OK, FINDINGS, USAGE, UNAVAILABLE = 0, 1, 2, 3


class DiffTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cfg = t.new_config(cls)
        cls.port = t.free_port()
        cls.cfg.write_obj("upstream-echo.yaml", t.upstream("echo", [(t.LOCALHOST, 9)]))
        cls.cfg.write_obj("upstream-old.yaml", t.upstream("old", [(t.LOCALHOST, 10)]))
        cls.cfg.write_obj("vs-web.yaml", t.virtual_service("web", [
            r("api", [m(prefix="/api")], to="echo")], domains=["web.example"]))
        cls.cfg.write_obj("gateway-gw.yaml", t.gateway("gw", cls.port, ["web"]))
        cls.portico = t.start_portico(cls, cls.cfg)

    def copy(self):
        other = self.new_config()
        shutil.rmtree(other.path)
        shutil.copytree(self.cfg.path, other.path)
        return other

    def diff(self, path, *args):
        return t.run_cli("diff", path, "--admin", self.portico.admin, *args)

    def test_same_files_no_difference(self):
        proc = self.diff(self.copy().path)
        self.assertEqual(proc.returncode, OK, proc.stdout + proc.stderr)
        self.assertIn("0 added, 0 removed, 0 changed, 4 unchanged: the running configuration already matches",
                      proc.stdout)

    def test_added_removed_changed(self):
        other = self.copy()
        other.write_obj("vs-web.yaml", t.virtual_service("web", [
            r("api", [m(prefix="/api")], to="echo"),
            r("new", [m(prefix="/new")], to="new")], domains=["web.example"]))
        other.write_obj("upstream-new.yaml", t.upstream("new", [(t.LOCALHOST, 11)]))
        other.remove("upstream-old.yaml")
        before = self.portico.config_version()
        proc = self.diff(other.path)
        self.assertEqual(proc.returncode, FINDINGS, proc.stdout + proc.stderr)
        out = proc.stdout
        self.assertIn("+ Upstream default/new (would be Accepted)\n", out)
        self.assertIn("- Upstream default/old\n", out)
        self.assertIn("~ VirtualService default/web (Accepted)\n", out)
        self.assertIn("    --- running/VirtualService default/web\n", out)
        self.assertIn('    +    - prefix: /new\n', out)
        self.assertIn("Data plane configuration (config_dump) would change:", out)
        self.assertIn("+    - name: default/web/new\n", out)
        self.assertIn("1 added, 1 removed, 1 changed, 2 unchanged", out)
        # Nothing was applied.
        self.assertEqual(self.portico.config_version(), before)
        self.assertIsNone(self.portico.resource("Upstream", "new"))
        data = json.loads(self.diff(other.path, "-o", "json").stdout)
        self.assertEqual(data["differs"], True)
        self.assertEqual([x["name"] for x in data["added"]], ["new"])
        self.assertEqual([x["name"] for x in data["removed"]], ["old"])
        self.assertEqual([x["name"] for x in data["changed"]], ["web"])

    def test_status_changes(self):
        other = self.copy()
        other.remove("upstream-echo.yaml")
        proc = self.diff(other.path)
        self.assertEqual(proc.returncode, FINDINGS, proc.stdout + proc.stderr)
        self.assertIn("~ VirtualService default/web: Accepted -> would be Warning\n", proc.stdout)
        self.assertIn("echo", proc.stdout.split("would be Warning")[1].splitlines()[1])
        self.assertIn("- Upstream default/echo\n", proc.stdout)
        broken = self.copy()
        vs = t.virtual_service("web", [r("api", [m(prefix="/api")], to="echo")], domains=["web.example"])
        vs["spec"]["virtualHost"]["routes"][0]["colour"] = "blue"
        broken.write_obj("vs-web.yaml", vs)
        proc = self.diff(broken.path)
        self.assertEqual(proc.returncode, FINDINGS, proc.stdout + proc.stderr)
        self.assertIn("~ VirtualService default/web: Accepted -> would be Rejected\n", proc.stdout)
        self.assertIn("colour", proc.stdout.split("would be Rejected")[1].splitlines()[1])

    def test_single_file_is_laid_over_the_running_resources(self):
        other = self.new_config()
        path = other.write_obj("vs-web.yaml", t.virtual_service("web", [
            r("api", [m(prefix="/api")], to="old")], domains=["web.example"]))
        proc = self.diff(path)
        self.assertEqual(proc.returncode, FINDINGS, proc.stdout + proc.stderr)
        self.assertIn("~ VirtualService default/web (Accepted)\n", proc.stdout)
        self.assertIn("-          name: echo\n", proc.stdout)
        self.assertIn("+          name: old\n", proc.stdout)
        self.assertNotRegex(proc.stdout, r"(?m)^- (Gateway|VirtualService|Upstream) ")  # removes nothing
        self.assertIn("-        - cluster: default/echo\n+        - cluster: default/old\n", proc.stdout)
        # The upstreams' statuses change with it: echo becomes unused (a warning), old used.
        self.assertIn("~ Upstream default/echo: Accepted -> would be Warning\n", proc.stdout)
        self.assertIn("~ Upstream default/old: Warning -> would be Accepted\n", proc.stdout)
        self.assertIn("0 added, 0 removed, 3 changed, 1 unchanged", proc.stdout)

    def test_errors(self):
        proc = t.run_cli("diff", self.cfg.path, "--admin", f"127.0.0.1:{t.free_port()}")
        self.assertEqual(proc.returncode, UNAVAILABLE)
        self.assertIn("cannot reach the admin API", proc.stderr)
        proc = self.diff("/nonexistent/dir")
        self.assertEqual(proc.returncode, UNAVAILABLE)
        self.assertEqual(t.run_cli("diff").returncode, USAGE)


if __name__ == "__main__":
    t.main()
