#!/usr/bin/env python3
"""The bundled example examples/delegation (RouteTables by reference and by selector, an UpstreamGroup,
Settings): it validates as shipped, and, copied with its Gateway's port rewritten to a free one, it runs
with every resource Accepted and answers what its comments promise."""

import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402

EXAMPLE = os.path.join(t.SOURCE_DIR, "examples", "delegation")
BIND_PORT = re.compile(r"^(\s*bindPort:\s*)(\d+)", re.MULTILINE)
BIND_ADDRESS = re.compile(r"^(\s*bindAddress:\s*)(\S+)", re.MULTILINE)


class DelegationExampleTest(t.IntegrationTest):
    def copy_example(self):
        self.port = t.free_port()
        d = tempfile.mkdtemp(prefix="portico-delegation-")
        self.addCleanup(shutil.rmtree, d, True)
        for name in sorted(os.listdir(EXAMPLE)):
            with open(os.path.join(EXAMPLE, name), encoding="utf-8") as f:
                text = f.read()
            text = BIND_PORT.sub(lambda mt: f"{mt.group(1)}{self.port}", text)
            text = BIND_ADDRESS.sub(lambda mt: mt.group(1) + t.LOCALHOST, text)
            with open(os.path.join(d, name), "w", encoding="utf-8") as f:
                f.write(text)
        return d

    def test_validates_as_shipped(self):
        proc = t.run_cli("validate", EXAMPLE)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertNotIn(": error:", proc.stdout + proc.stderr)
        self.assertNotIn(": warning:", proc.stdout + proc.stderr)

    def test_runs_and_routes_through_the_tables(self):
        portico = self.start_portico(self.copy_example())
        for res in portico.resources():
            self.assertEqual(res["state"], "Accepted", res)
        cart = t.request(self.port, "GET", "/shop/cart")
        self.assertEqual((cart.status, cart.text()), (200, "shop: cart\n"))
        self.assertEqual(cart.header("X-Served-By"), "shop-team")  # the parent route's option
        catalog = t.request(self.port, "GET", "/shop/shoes")
        self.assertEqual((catalog.status, catalog.text()), (200, "shop: catalog\n"))
        billing = t.request(self.port, "GET", "/teams/billing")
        self.assertEqual((billing.status, billing.text()), (200, "billing\n"))
        other = t.request(self.port, "GET", "/teams/anything")
        self.assertEqual((other.status, other.text()), (404, "no such team\n"))
        home = t.request(self.port, "GET", "/")
        self.assertEqual((home.status, home.text()), (200, "delegation example\n"))


if __name__ == "__main__":
    t.main()
