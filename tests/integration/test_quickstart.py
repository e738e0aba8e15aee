#!/usr/bin/env python3
"""The bundled example examples/quickstart: copied to a temporary directory with every Gateway's bindPort
rewritten to a free port, it validates, starts, reports every resource Accepted, and serves."""

import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402

EXAMPLE = os.path.join(t.SOURCE_DIR, "examples", "quickstart")
BIND_PORT = re.compile(r"^(\s*bindPort:\s*)(\d+)", re.MULTILINE)


def yaml_files(d):
    return sorted(f for f in os.listdir(d) if f.endswith((".yaml", ".yml")))


class QuickstartTest(t.IntegrationTest):
    def setUp(self):
        super().setUp()
        if not os.path.isdir(EXAMPLE) or not yaml_files(EXAMPLE):
            self.fail(f"no YAML files in {EXAMPLE}")
        self.dir = tempfile.mkdtemp(prefix="portico-quickstart-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.ports = {}  # original bindPort -> free port
        for name in os.listdir(EXAMPLE):
            src = os.path.join(EXAMPLE, name)
            if not os.path.isfile(src):
                continue
            if name.endswith((".yaml", ".yml")):
                with open(src, encoding="utf-8") as f:
                    text = f.read()
                text = BIND_PORT.sub(self._rewrite, text)
                with open(os.path.join(self.dir, name), "w", encoding="utf-8") as f:
                    f.write(text)
            else:
                shutil.copy(src, os.path.join(self.dir, name))
        self.assertTrue(self.ports, "the quickstart has no Gateway with a bindPort")

    def _rewrite(self, mt):
        orig = int(mt.group(2))
        if orig not in self.ports:
            self.ports[orig] = t.free_port()
        return f"{mt.group(1)}{self.ports[orig]}"

    def test_validates(self):
        proc = t.run_cli("validate", self.dir)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertNotIn(": error:", proc.stdout + proc.stderr)

    def test_runs_and_serves(self):
        portico = self.start_portico(self.dir)
        resources = portico.resources()
        self.assertTrue(resources)
        for res in resources:
            self.assertEqual(res["state"], "Accepted", res)
        for orig, port in self.ports.items():
            resp = t.request(port, "GET", "/")
            self.assertLess(resp.status, 500, f"gateway (bindPort {orig} in the example): {resp}")
        self.assertTrue(portico.alive())

    def test_example_files_untouched(self):
        # The test works on a copy: the example in the source tree keeps its own ports.
        for name in yaml_files(EXAMPLE):
            with open(os.path.join(EXAMPLE, name), encoding="utf-8") as f:
                for mt in BIND_PORT.finditer(f.read()):
                    self.assertNotIn(int(mt.group(2)), self.ports.values())


if __name__ == "__main__":
    t.main()
