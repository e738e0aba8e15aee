#!/usr/bin/env python3
"""Retries, the retry budget and the circuit breakers through the real binary: retriable statuses
go to another host; resets, per-try timeouts and connect failures are retried; the route timeout
bounds all tries; a response that dies mid-body is never retried; a POST is never sent twice unless
the route allows it; the budget caps upstream load with an upstream answering 503 to everything;
each breaker answers 503 with x-portico-overflow, is counted, and recovers."""

import http.client
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402
from support.programmable_upstream import ProgrammableUpstream  # noqa: E402


def upstream_spec(name, hosts, **extra):
    u = t.upstream(name, hosts)
    u["spec"].update(extra)
    return u


def programmable(owner, decide, **kw):
    u = ProgrammableUpstream(decide, **kw).start()
    t._register_cleanup(owner, u.stop)
    return u


def fixed_concurrency(port, path, concurrency, seconds):
    """Clients at a fixed concurrency on keep-alive connections for `seconds`: statuses seen."""
    statuses = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client():
        conn = None
        while time.monotonic() < stop:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(t.LOCALHOST, port, timeout=10)
                resp = t.request(port, "GET", path, conn=conn)
                with lock:
                    statuses.append(resp.status)
            except OSError:
                conn = None
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return statuses


class RetriesTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        always = lambda status: (lambda n, method, path: ("respond", status))  # noqa: E731
        cls.bad = programmable(cls, always(503))
        cls.good = programmable(cls, always(200))
        cls.bad2 = programmable(cls, always(503))
        cls.bad3 = programmable(cls, always(503))
        cls.first_reset = programmable(cls, lambda n, meth, p: ("reset",) if n == 0 else ("respond", 200))
        cls.first_hangs = programmable(cls, lambda n, meth, p: ("hang", 3) if n == 0 else ("respond", 200))
        cls.hangs = programmable(cls, lambda n, meth, p: ("hang", 3))
        cls.partial = programmable(cls, lambda n, meth, p: ("partial",))
        cls.budget = programmable(cls, always(503))
        slow = lambda n, meth, p: ("respond", 200, {"delay": 1.5, "close": True})  # noqa: E731
        cls.cb_requests = programmable(cls, slow)
        cls.cb_conns = programmable(cls, slow)
        cls.cb_retries = programmable(
            cls, lambda n, meth, p: ("respond", 200, {"delay": 1.5}) if p.endswith("/slow") and n > 0
            else ("respond", 503))
        # Accepts nothing: once its queue is full (see test_max_pending_requests) connects hang.
        cls.stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        cls.stuck.bind((t.LOCALHOST, 0))
        cls.stuck.listen(0)
        t._register_cleanup(cls, cls.stuck.close)
        cls.down_port = t.free_port()

        cls.cfg = t.new_config(cls)
        cls.port = t.free_port()
        ups = [
            upstream_spec("pair", [(t.LOCALHOST, cls.bad.port), (t.LOCALHOST, cls.good.port)]),
            upstream_spec("bad", [(t.LOCALHOST, cls.bad.port)]),
            upstream_spec("trio", [(t.LOCALHOST, cls.bad.port), (t.LOCALHOST, cls.bad2.port),
                                   (t.LOCALHOST, cls.bad3.port)],
                          loadBalancerConfig={"random": {}}),
            upstream_spec("first-reset", [(t.LOCALHOST, cls.first_reset.port)]),
            upstream_spec("first-hangs", [(t.LOCALHOST, cls.first_hangs.port)]),
            upstream_spec("hangs", [(t.LOCALHOST, cls.hangs.port)]),
            upstream_spec("partial", [(t.LOCALHOST, cls.partial.port)]),
            upstream_spec("down-then-good", [(t.LOCALHOST, cls.down_port), (t.LOCALHOST, cls.good.port)]),
            upstream_spec("budget", [(t.LOCALHOST, cls.budget.port)]),
            upstream_spec("cb-requests", [(t.LOCALHOST, cls.cb_requests.port)],
                          circuitBreakers={"maxRequests": 1}),
            upstream_spec("cb-conns", [(t.LOCALHOST, cls.cb_conns.port)],
                          circuitBreakers={"maxConnections": 1}),
            upstream_spec("cb-retries", [(t.LOCALHOST, cls.cb_retries.port)],
                          circuitBreakers={"maxRetries": 1}),
            upstream_spec("cb-pending", [(t.LOCALHOST, cls.stuck.getsockname()[1])],
                          circuitBreakers={"maxPendingRequests": 1},
                          connectionConfig={"connectTimeout": "1500ms"}),
        ]
        five = {"retryOn": "5xx", "numRetries": 1}
        routes = [
            r("failover", [m(prefix="/failover")], to="pair", options={"retries": five}),
            r("post", [m(prefix="/post")], to="bad", options={"retries": {"retryOn": "5xx", "numRetries": 2}}),
            r("post-allowed", [m(prefix="/repeatable-post")], to="bad",
              options={"retries": {"retryOn": "5xx", "numRetries": 2, "retryNonIdempotent": True,
                                   "retryBackOff": {"baseInterval": "1ms"}}}),
            r("no-policy", [m(prefix="/no-policy")], to="bad"),
            r("big-replay", [m(prefix="/big-replay")], to="bad",
              options={"retries": {"retryOn": "5xx", "numRetries": 1, "maxReplayBytes": 300000,
                                   "retryBackOff": {"baseInterval": "1ms"}}}),
            r("trio", [m(prefix="/trio")], to="trio",
              options={"retries": {"retryOn": "5xx", "numRetries": 2,
                                   "retryBackOff": {"baseInterval": "1ms"}}}),
            r("reset", [m(prefix="/reset")], to="first-reset", options={"retries": {"retryOn": "reset"}}),
            r("reset-post", [m(prefix="/rst-post")], to="first-reset",
              options={"retries": {"retryOn": "reset"}}),
            r("per-try", [m(prefix="/per-try")], to="first-hangs",
              options={"timeout": "5s", "retries": {"retryOn": "5xx", "perTryTimeout": "300ms"}}),
            r("whole", [m(prefix="/whole")], to="hangs",
              options={"timeout": "1s", "retries": {"retryOn": "5xx", "numRetries": 10,
                                                     "perTryTimeout": "200ms"}}),
            r("partial", [m(prefix="/partial")], to="partial",
              options={"retries": {"retryOn": "5xx,reset", "numRetries": 3}}),
            r("connect", [m(prefix="/connect")], to="down-then-good",
              options={"retries": {"retryOn": "connect-failure", "numRetries": 2}}),
            r("budget", [m(prefix="/budget")], to="budget",
              options={"retries": {"retryOn": "5xx", "numRetries": 3}}),
            r("cb-requests", [m(prefix="/cb-requests")], to="cb-requests"),
            r("cb-conns", [m(prefix="/cb-conns")], to="cb-conns"),
            r("cb-retries", [m(prefix="/cb-retries")], to="cb-retries",
              options={"retries": {"retryOn": "5xx", "numRetries": 2}}),
            r("cb-pending", [m(prefix="/cb-pending")], to="cb-pending"),
        ]
        cls.cfg.write_stack(cls.port, [t.virtual_service("vs", routes)], ups)
        cls.portico = t.start_portico(cls, cls.cfg)

    def get(self, path, **kw):
        return t.request(self.port, kw.pop("method", "GET"), path, **kw)

    def stat(self, name, **labels):
        return t.metric_sum(self.portico.stats(), name, **labels)

    # ---- Retries -------------------------------------------------------------------------------

    def test_retriable_status_goes_to_the_other_host(self):
        before_bad, before_good = self.bad.count(), self.good.count()
        retries = self.stat("portico_upstream_retries_total", upstream="default/pair")
        for i in range(10):
            resp = self.get(f"/failover/{i}")
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.header("X-Upstream-Port"), str(self.good.port))
        bad_hits = self.bad.count() - before_bad
        # Every request that met the 503 host went on to the other one (never to the same host).
        self.assertEqual(self.good.count() - before_good, 10)
        self.assertGreater(bad_hits, 0)
        self.assertEqual(self.stat("portico_upstream_retries_total", upstream="default/pair") - retries,
                         bad_hits)

    def test_each_retry_goes_to_a_host_not_tried_yet(self):
        # Three hosts answering 503, two retries, random picks: every request meets each host exactly
        # once (the third try avoids both hosts tried before it, not only the last).
        for i in range(6):
            path = f"/trio/{i}"
            self.assertEqual(self.get(path).status, 503)
            self.assertEqual([s.count(path) for s in (self.bad, self.bad2, self.bad3)], [1, 1, 1],
                             path)

    def test_without_a_policy_a_503_is_passed_through_once(self):
        self.assertEqual(self.get("/no-policy/x").status, 503)
        self.assertEqual(self.bad.count("/no-policy/x"), 1)

    def test_get_exhausts_num_retries_then_sees_the_upstream_answer(self):
        resp = self.get("/post/get")
        self.assertEqual(resp.status, 503)
        self.assertIsNone(resp.header("x-portico-overflow"))
        self.assertEqual(self.bad.count("/post/get"), 3)  # 1 + numRetries 2

    def test_post_is_never_replayed_unless_allowed(self):
        skipped = self.stat("portico_upstream_retries_skipped_total", upstream="default/bad",
                            reason="not_idempotent")
        resp = self.get("/post/once", method="POST", body=b"payload")
        self.assertEqual(resp.status, 503)
        self.assertEqual(self.bad.count("/post/once", "POST"), 1)
        self.assertEqual(self.stat("portico_upstream_retries_skipped_total", upstream="default/bad",
                                   reason="not_idempotent"), skipped + 1)
        # A reset after the POST was sent: not retried either.
        self.assertEqual(self.get("/rst-post/p", method="POST", body=b"x").status, 502)
        self.assertEqual(self.first_reset.count("/rst-post/p"), 1)
        # The route says POST may repeat: sent three times, with its body each time.
        resp = self.get("/repeatable-post/x", method="POST", body=b"again")
        self.assertEqual(resp.status, 503)
        hits = [h for h in self.bad.hits if h[1] == "/repeatable-post/x"]
        self.assertEqual(len(hits), 3)
        self.assertEqual({h[2] for h in hits}, {b"again"})

    def test_streamed_body_is_replayed_whole(self):
        body = b"0123456789" * 3000  # 30 KB, sent in pieces: streamed and kept for replay
        conn = http.client.HTTPConnection(t.LOCALHOST, self.port, timeout=10)
        try:
            conn.putrequest("PUT", "/post/streamed")
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders()
            for i in range(0, len(body), 10000):
                conn.send(body[i:i + 10000])
                time.sleep(0.05)
            resp = conn.getresponse()
            resp.read()
        finally:
            conn.close()
        self.assertEqual(resp.status, 503)
        hits = [h for h in self.bad.hits if h[1] == "/post/streamed"]
        self.assertEqual(len(hits), 3)
        self.assertTrue(all(h[2] == body for h in hits))

    def test_body_over_the_replay_buffer_is_not_retried(self):
        skipped = self.stat("portico_upstream_retries_skipped_total", upstream="default/bad",
                            reason="body_too_large")
        resp = self.get("/post/large", method="PUT", body=b"x" * 200000)
        self.assertEqual(resp.status, 503)
        self.assertEqual(self.bad.count("/post/large"), 1)
        self.assertEqual(self.stat("portico_upstream_retries_skipped_total", upstream="default/bad",
                                   reason="body_too_large"), skipped + 1)

    def test_max_replay_bytes_raises_the_replay_buffer(self):
        # retries.maxReplayBytes 300000: the 200 KB body that the default 64 KiB buffer cannot replay
        # is sent again whole.
        body = bytes(range(256)) * 800
        resp = self.get("/big-replay/x", method="PUT", body=body)
        self.assertEqual(resp.status, 503)
        hits = [h for h in self.bad.hits if h[1] == "/big-replay/x"]
        self.assertEqual(len(hits), 2)
        self.assertTrue(all(h[2] == body for h in hits))

    def test_reset_is_retried(self):
        resp = self.get("/reset/a")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(self.first_reset.count("/reset/a"), 2)

    def test_per_try_timeout_abandons_a_hanging_try(self):
        start = time.monotonic()
        resp = self.get("/per-try/a")
        took = time.monotonic() - start
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(self.first_hangs.count("/per-try/a"), 2)
        self.assertLess(took, 2.5)

    def test_route_timeout_bounds_all_tries(self):
        start = time.monotonic()
        resp = self.get("/whole/a")
        took = time.monotonic() - start
        self.assertEqual(resp.status, 504, resp)
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 2.5)
        self.assertGreaterEqual(self.hangs.count("/whole/a"), 2)
        self.assertLessEqual(self.hangs.count("/whole/a"), 6)

    def test_death_mid_response_is_seen_by_the_client_and_not_retried(self):
        conn = http.client.HTTPConnection(t.LOCALHOST, self.port, timeout=10)
        try:
            conn.request("GET", "/partial/a")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            with self.assertRaises((http.client.IncompleteRead, ConnectionError)):
                resp.read()
        finally:
            conn.close()
        time.sleep(0.3)
        self.assertEqual(self.partial.count("/partial/a"), 1)

    def test_connect_failure_is_retried_elsewhere(self):
        for i in range(6):
            resp = self.get(f"/connect/{i}")
            self.assertEqual(resp.status, 200, resp)

    # ---- Retry budget ----------------------------------------------------------------------------

    def test_budget_caps_upstream_load(self):
        before = self.budget.count()
        skipped = self.stat("portico_upstream_retries_skipped_total", upstream="default/budget",
                            reason="budget")
        statuses = fixed_concurrency(self.port, "/budget/x", concurrency=16, seconds=2.0)
        upstream_hits = self.budget.count() - before
        self.assertGreater(len(statuses), 50)
        self.assertEqual(set(statuses), {503})
        ratio = upstream_hits / len(statuses)
        # 20 % budget: upstream requests <= (1 + 0.2) x client requests.
        self.assertLessEqual(ratio, 1.2, f"{upstream_hits} upstream for {len(statuses)} client requests")
        self.assertGreater(ratio, 1.0)  # some retries did happen
        self.assertGreater(self.stat("portico_upstream_retries_skipped_total", upstream="default/budget",
                                     reason="budget"), skipped)

    # ---- Circuit breakers ------------------------------------------------------------------------

    def _in_background(self, path):
        out = {}

        def run():
            out["resp"] = self.get(path, timeout=15)

        th = threading.Thread(target=run)
        th.start()
        return th, out

    def _overflows(self, upstream, breaker):
        return self.stat("portico_upstream_overflow_total", upstream=upstream, breaker=breaker)

    def _assert_trips_and_recovers(self, path, upstream, breaker, server):
        before = self._overflows(upstream, breaker)
        th, out = self._in_background(f"{path}/first")
        t.wait_until(lambda: server.count(f"{path}/first") == 1, 5, message="first request upstream")
        resp = self.get(f"{path}/second")
        self.assertEqual(resp.status, 503, resp)
        self.assertEqual(resp.header("x-portico-overflow"), breaker)
        self.assertEqual(self._overflows(upstream, breaker), before + 1)
        self.assertEqual(server.count(f"{path}/second"), 0)
        th.join()
        self.assertEqual(out["resp"].status, 200)
        # Load gone: served again.
        resp = t.wait_until(lambda: (lambda x: x if x.status == 200 else None)(self.get(f"{path}/third")),
                            5, message="recovery")
        self.assertIsNone(resp.header("x-portico-overflow"))

    def test_max_requests_breaker(self):
        self._assert_trips_and_recovers("/cb-requests", "default/cb-requests", "max-requests",
                                        self.cb_requests)

    def test_max_connections_breaker(self):
        self._assert_trips_and_recovers("/cb-conns", "default/cb-conns", "max-connections",
                                        self.cb_conns)

    def test_max_retries_breaker(self):
        before = self._overflows("default/cb-retries", "max-retries")
        th, out = self._in_background("/cb-retries/slow")
        t.wait_until(lambda: self.cb_retries.count("/cb-retries/slow") == 2, 5,
                     message="first request retrying")
        resp = self.get("/cb-retries/fail")
        self.assertEqual(resp.status, 503)
        self.assertEqual(resp.header("x-portico-overflow"), "max-retries")
        self.assertEqual(self.cb_retries.count("/cb-retries/fail"), 1)  # tried once, no retry
        self.assertEqual(self._overflows("default/cb-retries", "max-retries"), before + 1)
        th.join()
        self.assertEqual(out["resp"].status, 200)
        # Recovered: the next one is retried (and ends with the upstream's own 503).
        resp = self.get("/cb-retries/again")
        self.assertEqual(resp.status, 503)
        self.assertIsNone(resp.header("x-portico-overflow"))
        self.assertEqual(self.cb_retries.count("/cb-retries/again"), 3)

    def test_max_pending_requests_breaker(self):
        # Fill the accept queue of a socket that never accepts: further connects hang in SYN-SENT.
        fillers = []
        for _ in range(3):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(self.stuck.getsockname())
            fillers.append(s)
        try:
            time.sleep(0.2)
            before = self._overflows("default/cb-pending", "max-pending-requests")
            th, out = self._in_background("/cb-pending/first")
            t.wait_until(lambda: self.stat("portico_upstream_in_flight", upstream="default/cb-pending",
                                           kind="pending") == 1, 5, message="a connect pending")
            resp = self.get("/cb-pending/second")
            self.assertEqual(resp.status, 503)
            self.assertEqual(resp.header("x-portico-overflow"), "max-pending-requests")
            self.assertEqual(self._overflows("default/cb-pending", "max-pending-requests"), before + 1)
            th.join()
            self.assertEqual(out["resp"].status, 503)  # its connect timed out
            self.assertIsNone(out["resp"].header("x-portico-overflow"))
            self.assertEqual(self.stat("portico_upstream_in_flight", upstream="default/cb-pending",
                                       kind="pending"), 0)
        finally:
            for s in fillers:
                s.close()

    def test_stats_expose_breakers_and_in_flight(self):
        text = self.portico.admin_get("/stats").text()
        for breaker in ("max-connections", "max-pending-requests", "max-requests", "max-retries"):
            self.assertIn(f'portico_upstream_overflow_total{{upstream="default/bad",breaker="{breaker}"}}', text)
        self.assertIn('portico_upstream_retries_skipped_total{upstream="default/bad",reason="budget"}', text)
        self.assertIn('portico_upstream_in_flight{upstream="default/bad",kind="requests"} 0', text)


if __name__ == "__main__":
    t.main()
