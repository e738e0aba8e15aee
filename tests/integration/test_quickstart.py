#!/usr/bin/env python3
"""The bundled example examples/quickstart: copied to a temporary directory with every Gateway's bindPort
rewritten to a free port (and bindAddress to 127.0.0.1, static upstream hosts to a test upstream or a free
port), it validates, starts, reports every resource Accepted, and answers what its comments promise."""

import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402

EXAMPLE = os.path.join(t.SOURCE_DIR, "examples", "quickstart")
BIND_PORT = re.compile(r"^(\s*bindPort:\s*)(\d+)", re.MULTILINE)
BIND_ADDRESS = re.compile(r"^(\s*bindAddress:\s*)(\S+)", re.MULTILINE)
HOST_PORT = re.compile(r"^(\s*-?\s*port:\s*)(\d+)", re.MULTILINE)  # static hosts of an Upstream


def yaml_files(d):
    return sorted(f for f in os.listdir(d) if f.endswith((".yaml", ".yml")))


class QuickstartTest(t.IntegrationTest):
    def setUp(self):
        super().setUp()
        if not os.path.isdir(EXAMPLE) or not yaml_files(EXAMPLE):
            self.fail(f"no YAML files in {EXAMPLE}")
        self.ports = {}  # original bindPort -> free port

    def copy_example(self, upstream_port=None):
        """Copies the example to a temporary directory; returns its path. Static upstream host ports
        become upstream_port (default: a free port where nothing listens)."""
        upstream_port = upstream_port or t.free_port()
        d = tempfile.mkdtemp(prefix="portico-quickstart-")
        self.addCleanup(shutil.rmtree, d, True)
        for name in os.listdir(EXAMPLE):
            src = os.path.join(EXAMPLE, name)
            if not os.path.isfile(src):
                continue
            if name.endswith((".yaml", ".yml")):
                with open(src, encoding="utf-8") as f:
                    text = f.read()
                text = BIND_PORT.sub(self._rewrite_bind_port, text)
                text = BIND_ADDRESS.sub(lambda mt: mt.group(1) + t.LOCALHOST, text)
                if re.search(r"^kind:\s*Upstream\s*$", text, re.MULTILINE):
                    text = HOST_PORT.sub(lambda mt: f"{mt.group(1)}{upstream_port}", text)
                with open(os.path.join(d, name), "w", encoding="utf-8") as f:
                    f.write(text)
            else:
                shutil.copy(src, os.path.join(d, name))
        self.assertTrue(self.ports, "the quickstart has no Gateway with a bindPort")
        return d

    def _rewrite_bind_port(self, mt):
        orig = int(mt.group(2))
        if orig not in self.ports:
            self.ports[orig] = t.free_port()
        return f"{mt.group(1)}{self.ports[orig]}"

    @property
    def port(self):
        return self.ports[8080] if 8080 in self.ports else next(iter(self.ports.values()))

    def test_validates_as_shipped(self):
        proc = t.run_cli("validate", EXAMPLE)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertNotIn(": error:", proc.stdout + proc.stderr)

    def test_validates(self):
        proc = t.run_cli("validate", self.copy_example())
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertNotIn(": error:", proc.stdout + proc.stderr)

    def test_runs_and_every_resource_accepted(self):
        portico = self.start_portico(self.copy_example())
        resources = portico.resources()
        self.assertTrue(resources)
        for res in resources:
            self.assertEqual(res["state"], "Accepted", res)
        for orig, port in self.ports.items():
            resp = t.request(port, "GET", "/")
            self.assertEqual(resp.status, 200, f"gateway (bindPort {orig} in the example): {resp}")

    def test_documented_requests(self):
        # The requests the example's comments tell the reader to try.
        self.start_portico(self.copy_example())
        root = t.request(self.port, "GET", "/")
        self.assertEqual(root.status, 200)
        self.assertIn("Portico is running", root.text())
        hello = t.request(self.port, "GET", "/hello")
        self.assertEqual((hello.status, hello.text()), (200, "Hello from Portico!\n"))
        self.assertEqual(hello.header("Server"), "portico")  # httpOptions.serverName
        redirect = t.request(self.port, "GET", "/redirect", host="localhost")
        self.assertEqual(redirect.status, 302)
        self.assertEqual(redirect.header("Location"), "http://localhost/hello")
        down = t.request(self.port, "GET", "/upstream/")
        self.assertEqual(down.status, 503, "nothing listens behind the example's upstream")

    def test_upstream_route_forwards(self):
        echo = self.start_upstream("quickstart-upstream")
        self.start_portico(self.copy_example(upstream_port=echo.port))
        resp = t.request(self.port, "GET", "/upstream/items?x=1")
        self.assertEqual(resp.status, 200, resp)
        got = resp.json()
        self.assertEqual(got["target"], "/items?x=1")
        self.assertEqual(t.echo_header(got, "X-Via-Portico"), ["quickstart"])

    def test_example_files_untouched(self):
        # The tests work on copies: the example in the source tree keeps its own ports.
        self.copy_example()
        for name in yaml_files(EXAMPLE):
            with open(os.path.join(EXAMPLE, name), encoding="utf-8") as f:
                for mt in BIND_PORT.finditer(f.read()):
                    self.assertNotIn(int(mt.group(2)), self.ports.values())


if __name__ == "__main__":
    t.main()
