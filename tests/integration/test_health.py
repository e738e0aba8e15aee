#!/usr/bin/env python3
"""Active health checks and passive outlier detection through the real binary: an HTTP check takes a
host out (503 on the health path) and back (200 again) honouring its thresholds, a TCP check marks a
closed port down, requests never go to a host marked down while others are up, outlier detection
ejects a host after N consecutive 5xx and returns it after the ejection time, and maxEjectionPercent
bounds how many hosts are ejected at once."""

import http.server
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402


class ToggleUpstream:
    """HTTP/1.1 keep-alive server on 127.0.0.1:<port>. /healthz answers `health`; every other path
    answers `status`; both are changed by the test. Counts health checks and other requests."""

    def __init__(self, name: str):
        self.name = name
        self.health = 200
        self.status = 200
        self.health_hits = 0
        self.hits = 0
        self.lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                with owner.lock:
                    if self.path == "/healthz":
                        owner.health_hits += 1
                        code = owner.health
                    else:
                        owner.hits += 1
                        code = owner.status
                body = owner.name.encode()
                self.send_response(code)
                self.send_header("X-Upstream", owner.name)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                pass

        self.server = Server((t.LOCALHOST, 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def use_tls(self, cert: str, key: str) -> "ToggleUpstream":
        """Serves TLS (before start()); the handshake runs in the handler thread."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True,
                                             do_handshake_on_connect=False)
        return self

    def start(self) -> "ToggleUpstream":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def counts(self) -> tuple[int, int]:
        with self.lock:
            return self.health_hits, self.hits


def upstream_with(name: str, ports: list[int], **extra) -> dict:
    u = t.upstream(name, [(t.LOCALHOST, p) for p in ports], lb="roundRobin")
    u["spec"].update(extra)
    return u


def http_check(interval: str = "200ms", unhealthy: int = 2, healthy: int = 2) -> list[dict]:
    return [{"timeout": "1s", "interval": interval, "unhealthyThreshold": unhealthy,
             "healthyThreshold": healthy, "httpHealthCheck": {"path": "/healthz"}}]


class HealthTest(t.IntegrationTest):
    def start_toggle(self, name: str, tls: tuple[str, str] | None = None) -> ToggleUpstream:
        u = ToggleUpstream(name)
        if tls:
            u.use_tls(*tls)
        u.start()
        self.addCleanup(u.stop)
        return u

    def gauge(self, p: t.Portico, name: str, upstream: str) -> float:
        return t.metric_sum(p.stats(), name, upstream=f"default/{upstream}")

    def serve(self, upstreams: list[dict], routes: list[dict]) -> tuple[t.Portico, int]:
        self.cfg = self.new_config()
        port = t.free_port()
        self.cfg.write_stack(port, [t.virtual_service("vs", routes)], upstreams)
        return self.start_portico(self.cfg), port

    def who(self, port: int, path: str = "/", n: int = 30) -> list[tuple[int, str]]:
        out = []
        for _ in range(n):
            resp = t.request(port, "GET", path)
            out.append((resp.status, resp.headers.get("X-Upstream") or ""))
        return out

    def test_http_check_takes_host_out_and_back_with_thresholds(self):
        a, b = self.start_toggle("a"), self.start_toggle("b")
        p, port = self.serve([upstream_with("hc", [a.port, b.port], healthChecks=http_check(unhealthy=3))],
                             [r("all", [m(prefix="/")], to="hc")])
        t.wait_until(lambda: self.gauge(p, "portico_upstream_hosts_healthy", "hc") == 2, 10,
                     message="both hosts healthy")
        self.assertEqual(sorted({w for _, w in self.who(port, n=10)}), ["a", "b"])

        # 503 on the health path: out after three failed checks (unhealthyThreshold 3), not before.
        failures_before = t.metric_sum(p.stats(), "portico_upstream_health_checks_total",
                                       upstream="default/hc", result="failure")
        a.health = 503
        t.wait_until(lambda: self.gauge(p, "portico_upstream_hosts_healthy", "hc") == 1, 10,
                     message="host a marked down")
        failures = t.metric_sum(p.stats(), "portico_upstream_health_checks_total",
                                upstream="default/hc", result="failure") - failures_before
        self.assertGreaterEqual(failures, 3)
        # Never to the host marked down while the other is up.
        _, hits_before = a.counts()
        answers = self.who(port, n=60)
        self.assertEqual({w for _, w in answers}, {"b"})
        self.assertTrue(all(s == 200 for s, _ in answers))
        self.assertEqual(a.counts()[1], hits_before)

        # Healthy again: back after two good checks.
        successes_before = t.metric_sum(p.stats(), "portico_upstream_health_checks_total",
                                        upstream="default/hc", result="success")
        a.health = 200
        t.wait_until(lambda: self.gauge(p, "portico_upstream_hosts_healthy", "hc") == 2, 10,
                     message="host a back")
        successes = t.metric_sum(p.stats(), "portico_upstream_health_checks_total",
                                 upstream="default/hc", result="success") - successes_before
        self.assertGreaterEqual(successes, 2)
        self.assertIn("a", {w for _, w in self.who(port, n=10)})
        # One checker per host for the process (two workers): about one check per interval, not two.
        h0, _ = a.counts()
        time.sleep(1.0)
        h1, _ = a.counts()
        self.assertLessEqual(h1 - h0, 7)  # 200 ms interval: ~5 per second

    def test_http_check_over_tls_for_tls_upstreams(self):
        d = tempfile.mkdtemp(prefix="portico-health-tls-")
        self.addCleanup(shutil.rmtree, d, True)
        cert, key = os.path.join(d, "up.crt"), os.path.join(d, "up.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-days", "1", "-subj", "/CN=upstream.example.test",
                        "-addext", "subjectAltName=DNS:upstream.example.test",
                        "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=30)
        a, b = self.start_toggle("ta", (cert, key)), self.start_toggle("tb", (cert, key))
        p, port = self.serve([upstream_with("tlshc", [a.port, b.port], healthChecks=http_check(unhealthy=1),
                                            sslConfig={"sni": "upstream.example.test",
                                                       "insecureSkipVerify": True})],
                             [r("all", [m(prefix="/")], to="tlshc")])
        t.wait_until(lambda: self.gauge(p, "portico_upstream_hosts_healthy", "tlshc") == 2, 10,
                     message="both TLS hosts healthy")
        self.assertGreater(a.counts()[0], 0)  # the checks reached the host over TLS
        b.health = 503
        t.wait_until(lambda: self.gauge(p, "portico_upstream_hosts_healthy", "tlshc") == 1, 10,
                     message="TLS host b marked down")
        self.assertEqual({w for _, w in self.who(port, n=20)}, {"ta"})

    def test_failover_tier_serves_while_the_primary_is_down_and_hands_back(self):
        # Gloo's failover.prioritizedLocalities: the second tier gets traffic only once the health
        # check has taken the primary host out, and none once it is back.
        a, b = self.start_toggle("primary"), self.start_toggle("backup")
        up = upstream_with("tiers", [a.port], healthChecks=http_check(unhealthy=1, healthy=1))
        up["spec"]["failover"] = {"prioritizedLocalities": [{"localityEndpoints": [{
            "locality": {"region": "r2", "zone": "z1"},
            "lbEndpoints": [{"address": t.LOCALHOST, "port": b.port}]}]}]}
        p, port = self.serve([up], [r("all", [m(prefix="/")], to="tiers")])
        t.wait_until(lambda: self.gauge(p, "portico_upstream_hosts_healthy", "tiers") == 2, 10,
                     message="both tiers healthy")
        self.assertEqual({w for _, w in self.who(port, n=20)}, {"primary"})
        failover = t.metric_sum(p.stats(), "portico_upstream_lb_failover_total", upstream="default/tiers")
        a.health = 503
        t.wait_until(lambda: self.gauge(p, "portico_upstream_hosts_healthy", "tiers") == 1, 10,
                     message="primary marked down")
        answers = self.who(port, n=20)
        self.assertEqual({s for s, _ in answers}, {200})
        self.assertEqual({w for _, w in answers}, {"backup"})
        self.assertGreaterEqual(
            t.metric_sum(p.stats(), "portico_upstream_lb_failover_total", upstream="default/tiers") - failover,
            20)
        a.health = 200
        t.wait_until(lambda: self.gauge(p, "portico_upstream_hosts_healthy", "tiers") == 2, 10,
                     message="primary back")
        self.assertEqual({w for _, w in self.who(port, n=20)}, {"primary"})

    def test_host_state_survives_configuration_changes(self):
        a, b, c = self.start_toggle("a"), self.start_toggle("b"), self.start_toggle("c")
        check = http_check(unhealthy=1)
        # No panic mode: with c new (unchecked) and a down, only one host of three is available,
        # under the default 50 % panic threshold that would send traffic to all of them.
        no_panic = {"healthyPanicThreshold": 0}
        p, port = self.serve([upstream_with("keep", [a.port, b.port], healthChecks=check,
                                            loadBalancerConfig=no_panic)],
                             [r("all", [m(prefix="/")], to="keep")])
        t.wait_until(lambda: self.gauge(p, "portico_upstream_hosts_healthy", "keep") == 2, 10,
                     message="both hosts healthy")
        a.health = 503
        t.wait_until(lambda: self.gauge(p, "portico_upstream_hosts_healthy", "keep") == 1, 10,
                     message="host a marked down")
        # A route added, then a host added to the Upstream: host a stays down through both (its state
        # is kept; it would be healthy again only after a passing check).
        for step, write in enumerate([
                lambda: self.cfg.write_obj("vs-vs.yaml", t.virtual_service("vs", [
                    r("other", [m(prefix="/other")], to="keep"), r("all", [m(prefix="/")], to="keep")])),
                lambda: self.cfg.write_obj("upstream-keep.yaml", upstream_with(
                    "keep", [a.port, b.port, c.port], healthChecks=check,
                    loadBalancerConfig=no_panic))]):
            version = p.config_version()
            write()
            t.wait_until(lambda: p.config_version() > version, 10, message=f"change {step} applied")
            _, hits = a.counts()
            answers = self.who(port, n=20)
            self.assertNotIn("a", {w for _, w in answers}, step)
            self.assertEqual(a.counts()[1], hits)
        t.wait_until(lambda: self.gauge(p, "portico_upstream_hosts_healthy", "keep") == 2
                     and self.gauge(p, "portico_upstream_hosts", "keep") == 3, 10, message="c healthy, a down")
        self.assertEqual({w for _, w in self.who(port, n=30)}, {"b", "c"})

    def test_tcp_check_marks_closed_port_down(self):
        live = self.start_toggle("live")
        closed = t.free_port()  # nothing listens there
        check = [{"timeout": "500ms", "interval": "200ms", "unhealthyThreshold": 1, "healthyThreshold": 1,
                  "tcpHealthCheck": {}}]
        p, port = self.serve([upstream_with("tcp", [live.port, closed], healthChecks=check)],
                             [r("all", [m(prefix="/")], to="tcp")])
        t.wait_until(lambda: self.gauge(p, "portico_upstream_hosts_healthy", "tcp") == 1, 10,
                     message="one healthy host")
        time.sleep(0.5)
        self.assertEqual(self.gauge(p, "portico_upstream_hosts_healthy", "tcp"), 1)
        self.assertEqual(self.gauge(p, "portico_upstream_hosts", "tcp"), 2)
        answers = self.who(port, n=40)
        self.assertEqual(answers, [(200, "live")] * 40)
        errors = t.metric_sum(p.stats(), "portico_upstream_errors_total", upstream="default/tcp",
                              reason="connect_failed")
        self.assertEqual(errors, 0)

    def test_outlier_ejection_after_consecutive_5xx_and_return(self):
        good1, bad, good2 = self.start_toggle("g1"), self.start_toggle("bad"), self.start_toggle("g2")
        bad.status = 500
        od = {"consecutive5xx": 3, "interval": "1s", "baseEjectionTime": "2s", "maxEjectionPercent": 50}
        p, port = self.serve([upstream_with("od", [good1.port, bad.port, good2.port], outlierDetection=od)],
                             [r("all", [m(prefix="/")], to="od")])
        answers = self.who(port, n=30)
        fives = [w for s, w in answers if s == 500]
        self.assertEqual(set(fives), {"bad"})
        self.assertLessEqual(len(fives), 4)  # ejected after the third (a race across workers: one more)
        self.assertEqual(t.metric_sum(p.stats(), "portico_upstream_ejections_total", upstream="default/od"), 1)
        t.wait_until(lambda: self.gauge(p, "portico_upstream_hosts_ejected", "od") == 1, 2,
                     message="ejected gauge")
        _, hits = bad.counts()
        self.assertEqual({w for _, w in self.who(port, n=30)}, {"g1", "g2"})
        self.assertEqual(bad.counts()[1], hits)
        # Back after the ejection time (2 s, returned by the next sweep).
        bad.status = 200
        t.wait_until(lambda: self.gauge(p, "portico_upstream_hosts_ejected", "od") == 0, 5,
                     message="host returned")
        self.assertIn("bad", {w for _, w in self.who(port, n=12)})

    def test_max_ejection_percent_is_respected(self):
        ups = [self.start_toggle(f"h{i}") for i in range(4)]
        for u in ups:
            u.status = 503
        od = {"consecutive5xx": 2, "baseEjectionTime": "30s", "maxEjectionPercent": 50}
        p, port = self.serve([upstream_with("all5xx", [u.port for u in ups], outlierDetection=od)],
                             [r("all", [m(prefix="/")], to="all5xx")])
        answers = self.who(port, n=60)
        self.assertTrue(all(s == 503 for s, _ in answers))
        self.assertEqual(t.metric_sum(p.stats(), "portico_upstream_ejections_total",
                                      upstream="default/all5xx"), 2)
        t.wait_until(lambda: self.gauge(p, "portico_upstream_hosts_ejected", "all5xx") == 2, 2,
                     message="two ejected")
        # The two left keep serving (every request still reaches one of them).
        last = {w for _, w in self.who(port, n=20)}
        self.assertEqual(len(last), 2)


if __name__ == "__main__":
    t.main()
