#!/usr/bin/env python3
"""The overload manager through the real binary (Settings spec.overload): a global connection limit across
listeners refuses the connection beyond it; a heap threshold set very low answers new requests 503 with
x-portico-overload and Connection: close, and raising it (a reload) brings keep-alive service back; /stats
shows the heap, the connections and the refusals."""

import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402


def settings(overload):
    return t.resource("Settings", "default", {"overload": overload})


def refused(port, timeout=2.0):
    """True when a new connection is closed by the server without an answer to a request."""
    with socket.create_connection((t.LOCALHOST, port), timeout=timeout) as s:
        try:
            s.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
            data = s.recv(4096)
        except (ConnectionResetError, BrokenPipeError):
            return True
        return data == b""


class OverloadTest(t.IntegrationTest):
    def setUp(self):
        super().setUp()
        self.cfg = self.new_config()
        self.port_a = t.free_port()
        self.port_b = t.free_port()
        self.cfg.write_obj("vs.yaml", t.virtual_service("vs", [r("ok", [m(prefix="/")], direct=(200, "ok\n"))]))
        self.cfg.write_obj("gw-a.yaml", t.gateway("a", self.port_a, ["vs"]))
        self.cfg.write_obj("gw-b.yaml", t.gateway("b", self.port_b, ["vs"]))

    def keep_alive(self, port):
        c = http.client.HTTPConnection(t.LOCALHOST, port, timeout=5)
        c.request("GET", "/ok")
        resp = c.getresponse()
        resp.read()
        self.assertEqual(resp.status, 200)
        self.addCleanup(c.close)
        return c

    def test_global_connection_limit_across_listeners(self):
        self.cfg.write_obj("settings.yaml", settings({"maxConnections": 3}))
        p = self.start_portico(self.cfg)
        t.wait_for_port(self.port_a)
        t.wait_for_port(self.port_b)
        # wait_for_port's probes are closed at once; wait until they are no longer counted.
        t.wait_until(lambda: t.metric_sum(p.stats(), "portico_overload_connections") == 0, 5.0,
                     message="probe connections gone")
        c1 = self.keep_alive(self.port_a)
        self.keep_alive(self.port_a)
        self.keep_alive(self.port_b)
        stats = p.stats()
        self.assertEqual(t.metric_sum(stats, "portico_overload_connections"), 3)
        self.assertEqual(t.metric_sum(stats, "portico_overload_max_connections"), 3)
        # The fourth connection is refused, on either listener.
        self.assertTrue(refused(self.port_b))
        self.assertTrue(refused(self.port_a))
        self.assertGreaterEqual(t.metric_sum(p.stats(), "portico_overload_connections_refused_total"), 2)
        # One connection goes: a new one is served again.
        c1.close()
        t.wait_until(lambda: t.metric_sum(p.stats(), "portico_overload_connections") == 2, 5.0,
                     message="closed connection released")
        self.assertEqual(t.request(self.port_b, "GET", "/ok").status, 200)

    def test_heap_threshold_sheds_load_until_raised(self):
        self.cfg.write_obj("settings.yaml", settings({"maxHeapBytes": 1}))
        p = self.start_portico(self.cfg)
        t.wait_for_port(self.port_a)
        stats = p.stats()
        self.assertEqual(t.metric_sum(stats, "portico_overload_active"), 1)
        self.assertEqual(t.metric_sum(stats, "portico_overload_heap_limit_bytes"), 1)
        heap = [(labels, v) for name, labels, v in stats if name == "portico_heap_allocated_bytes"]
        self.assertEqual(len(heap), 1, heap)
        self.assertGreater(heap[0][1], 0)
        self.assertEqual(heap[0][0].get("source"), "tcmalloc")  # the binary links tcmalloc

        resp = t.request(self.port_a, "GET", "/ok")
        self.assertEqual(resp.status, 503)
        self.assertEqual(resp.header("x-portico-overload"), "heap")
        self.assertEqual((resp.header("connection") or "").lower(), "close")
        # A keep-alive client is told to go: the connection is closed after the answer.
        raw = t.raw_exchange(self.port_a, b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(t.count_responses(raw), 1, raw)
        self.assertEqual(t.status_of(raw), 503)
        self.assertIn(b"Connection: close", raw)
        self.assertGreaterEqual(t.metric_sum(p.stats(), "portico_overload_requests_refused_total"), 2)

        # Raised (a reload): service and keep-alive are back at once.
        version = p.config_version()
        self.cfg.write_obj("settings.yaml", settings({"maxHeapBytes": 1 << 40}))
        t.wait_until(lambda: p.config_version() > version, 5.0, message="settings applied")
        resp = t.wait_until(lambda: (lambda x: x if x.status == 200 else None)(t.request(self.port_a, "GET", "/ok")),
                            5.0, message="served again")
        self.assertNotEqual((resp.header("connection") or "").lower(), "close")
        raw = t.raw_exchange(self.port_a, b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(t.count_responses(raw), 2, raw)
        self.assertEqual(t.metric_sum(p.stats(), "portico_overload_active"), 0)

    def test_heap_threshold_sends_http2_clients_a_goaway(self):
        # HTTP/2 has no Connection: close: an overloaded Portico answers the stream 503 and sends a
        # graceful GOAWAY, so that the client opens no further stream on this connection.
        if not shutil.which("nghttp"):
            self.skipTest("nghttp (nghttp2-client) is not installed")
        gw = t.gateway("a", self.port_a, ["vs"])
        gw["spec"]["httpOptions"] = {"http2": {"cleartextPriorKnowledge": True}}
        self.cfg.write_obj("gw-a.yaml", gw)
        self.cfg.write_obj("settings.yaml", settings({"maxHeapBytes": 1}))
        self.start_portico(self.cfg)
        t.wait_for_port(self.port_a)
        out = subprocess.run(["nghttp", "-nv", f"http://{t.LOCALHOST}:{self.port_a}/ok"],
                             capture_output=True, text=True, timeout=20).stdout
        status = re.search(r"recv \(stream_id=(\d+)\) :status: (\d+)", out)
        self.assertIsNotNone(status, out)
        self.assertEqual(status.group(2), "503")
        # Graceful: the stream it answered is the last one it processes.
        self.assertRegex(out, r"recv GOAWAY frame <[^>]*>\n\s*\(last_stream_id=" + status.group(1)
                         + r", error_code=NO_ERROR")
        # Below the threshold again: no GOAWAY.
        self.cfg.write_obj("settings.yaml", settings({"maxHeapBytes": 1 << 40}))
        t.wait_until(lambda: ":status: 200" in subprocess.run(
            ["nghttp", "-nv", f"http://{t.LOCALHOST}:{self.port_a}/ok"], capture_output=True, text=True,
            timeout=20).stdout, 5.0, message="served again")
        out = subprocess.run(["nghttp", "-nv", f"http://{t.LOCALHOST}:{self.port_a}/ok"],
                             capture_output=True, text=True, timeout=20).stdout
        self.assertNotIn("recv GOAWAY", out)

    def test_refusals_are_logged_with_the_overload_flag(self):
        log = os.path.join(t._scratch_dir("portico-overload-"), "access.log")
        gw = t.gateway("a", self.port_a, ["vs"])
        gw["spec"]["options"] = {"accessLoggingService": {"accessLog": [
            {"fileSink": {"path": log, "stringFormat": "%RESPONSE_CODE% %RESPONSE_FLAGS%"}}]}}
        self.cfg.write_obj("gw-a.yaml", gw)
        self.cfg.write_obj("settings.yaml", settings({"maxHeapBytes": 1}))
        self.start_portico(self.cfg)
        t.wait_for_port(self.port_a)
        self.assertEqual(t.request(self.port_a, "GET", "/ok").status, 503)

        def logged():
            try:
                with open(log) as f:
                    return f.read()
            except FileNotFoundError:
                return ""
        self.assertEqual(t.wait_until(logged, 5.0, message="line logged"), "503 OM\n")

    def test_invalid_settings_are_rejected(self):
        self.cfg.write_obj("settings.yaml", settings({"maxHeapBytes": 0, "maxCpuPercent": 90}))
        p = self.start_portico(self.cfg)
        s = t.wait_until(lambda: p.resource("Settings", "default"), 5.0, message="settings reported")
        self.assertEqual(s["state"], "Rejected", s)
        paths = [x["path"] for x in s["reasons"]]
        self.assertIn("spec.overload.maxHeapBytes", paths)
        self.assertIn("spec.overload.maxCpuPercent", paths)
        # Traffic is served without limits.
        t.wait_for_port(self.port_a)
        self.assertEqual(t.request(self.port_a, "GET", "/ok").status, 200)


if __name__ == "__main__":
    t.main()
