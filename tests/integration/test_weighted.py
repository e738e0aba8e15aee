#!/usr/bin/env python3
"""Traffic split and load balancing through the real binary: weighted destinations (2000 requests 80/20,
within ±5 points), round robin over the hosts of an upstream, host weights, least request."""

import collections
import http.client
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402


class WeightedTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.servers = {n: t.start_upstream(cls, n) for n in ("blue", "green", "h1", "h2", "w3", "w1", "l1", "l2")}
        p = {n: s.port for n, s in cls.servers.items()}
        cls.cfg = t.new_config(cls)
        cls.port = t.free_port()
        ups = [
            t.upstream("blue", [(t.LOCALHOST, p["blue"])]),
            t.upstream("green", [(t.LOCALHOST, p["green"])]),
            t.upstream("rr", [(t.LOCALHOST, p["h1"]), (t.LOCALHOST, p["h2"])], lb="roundRobin"),
            t.upstream("hostweights", [(t.LOCALHOST, p["w3"], 3), (t.LOCALHOST, p["w1"], 1)], lb="roundRobin"),
            t.upstream("lr", [(t.LOCALHOST, p["l1"]), (t.LOCALHOST, p["l2"])], lb="leastRequest"),
        ]
        routes = [
            r("split", [m(prefix="/split")], weighted=[("blue", 80), ("green", 20)]),
            r("rr", [m(prefix="/rr")], to="rr"),
            r("hostweights", [m(prefix="/hw")], to="hostweights"),
            r("lr", [m(prefix="/lr")], to="lr"),
        ]
        cls.cfg.write_stack(cls.port, [t.virtual_service("vs", routes)], ups)
        cls.portico = t.start_portico(cls, cls.cfg)

    def distribute(self, path, total, threads=4, new_connections=False, deadline=60.0):
        """Sends `total` GETs from `threads` threads; returns Counter of X-Upstream and the failures."""
        counts = collections.Counter()
        failures = []
        lock = threading.Lock()
        stop_at = time.monotonic() + deadline

        def worker(n):
            conn = None
            for i in range(n):
                if time.monotonic() > stop_at:
                    with lock:
                        failures.append("deadline")
                    return
                try:
                    if conn is None or new_connections:
                        if conn is not None:
                            conn.close()
                        conn = http.client.HTTPConnection(t.LOCALHOST, self.port, timeout=10)
                    conn.request("GET", f"{path}/{i}")
                    resp = conn.getresponse()
                    resp.read()
                    with lock:
                        if resp.status == 200:
                            counts[resp.getheader("X-Upstream")] += 1
                        else:
                            failures.append(resp.status)
                except OSError as e:
                    with lock:
                        failures.append(repr(e))
                    conn = None
            if conn is not None:
                conn.close()

        per = [total // threads + (1 if i < total % threads else 0) for i in range(threads)]
        ths = [threading.Thread(target=worker, args=(n,), daemon=True) for n in per]
        for th in ths:
            th.start()
        for th in ths:
            th.join(deadline + 15)
        return counts, failures

    def test_weighted_split_80_20(self):
        counts, failures = self.distribute("/split", 2000)
        self.assertEqual(failures, [])
        self.assertEqual(sum(counts.values()), 2000)
        blue = 100.0 * counts["blue"] / 2000
        self.assertLessEqual(abs(blue - 80.0), 5.0, f"blue got {blue:.1f}% ({dict(counts)})")
        self.assertEqual(set(counts), {"blue", "green"})

    def test_weighted_split_new_connections(self):
        counts, failures = self.distribute("/split", 400, new_connections=True)
        self.assertEqual(failures, [])
        blue = 100.0 * counts["blue"] / 400
        # 400 samples: ±10 points is > 4 standard deviations.
        self.assertLessEqual(abs(blue - 80.0), 10.0, f"blue got {blue:.1f}% ({dict(counts)})")

    def test_round_robin_hosts(self):
        counts, failures = self.distribute("/rr", 200, threads=2)
        self.assertEqual(failures, [])
        share = 100.0 * counts["h1"] / 200
        self.assertTrue(35 <= share <= 65, dict(counts))

    def test_host_weights(self):
        counts, failures = self.distribute("/hw", 800)
        self.assertEqual(failures, [])
        share = 100.0 * counts["w3"] / 800
        self.assertLessEqual(abs(share - 75.0), 7.0, f"weight-3 host got {share:.1f}% ({dict(counts)})")

    def test_least_request_uses_all_hosts(self):
        counts, failures = self.distribute("/lr", 200)
        self.assertEqual(failures, [])
        self.assertEqual(set(counts), {"l1", "l2"}, dict(counts))

    def test_stats_count_per_upstream(self):
        self.distribute("/split", 100)
        samples = self.portico.stats()
        per = collections.Counter()
        for n, labels, v in samples:
            if n == "portico_upstream_requests_total":
                per[labels.get("upstream", "")] += v
        self.assertTrue(any("blue" in k and v >= 1 for k, v in per.items()), dict(per))
        self.assertTrue(any("green" in k and v >= 1 for k, v in per.items()), dict(per))


if __name__ == "__main__":
    t.main()
