#!/usr/bin/env python3
"""Access logs through the real binary: a Gateway's options.accessLoggingService (Gloo's shape) writes text
and JSON lines to files and to stdout; a route can turn logging off; SIGUSR1 after a rename (logrotate) makes
new lines go to a new file; a format change on reload applies without losing lines; an unknown command
operator rejects the Gateway with a message naming it; /stats counts the lines."""

import json
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402

TEXT_FORMAT = ('%START_TIME% "%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% '
               '%BYTES_RECEIVED% %BYTES_SENT% %DURATION% "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" '
               '%UPSTREAM_HOST% %UPSTREAM_CLUSTER% %ROUTE_NAME% %DOWNSTREAM_REMOTE_ADDRESS%\n')
TEXT_RE = re.compile(
    r'^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) "(?P<method>\S+) (?P<path>\S+) (?P<proto>\S+)" '
    r'(?P<code>\d+) (?P<flags>\S+) (?P<rx>\d+) (?P<tx>\d+) (?P<dur>\d+) "(?P<ua>[^"]*)" "(?P<rid>[^"]*)" '
    r'(?P<uhost>\S+) (?P<cluster>\S+) (?P<route>\S+) (?P<peer>\S+)$')

JSON_FORMAT = {
    "start": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(:PATH)%",
    "code": "%RESPONSE_CODE%",
    "flags": "%RESPONSE_FLAGS%",
    "bytes_sent": "%BYTES_SENT%",
    "upstream": "%UPSTREAM_HOST%",
    "request_id": "%REQUEST_ID%",
    "custom": "%REQ(X-CUSTOM?X-OTHER)%",
}


def gateway_with_logs(name, port, vss, logs):
    g = t.gateway(name, port, vss)
    g["spec"]["options"] = {"accessLoggingService": {"accessLog": [{"fileSink": s} for s in logs]}}
    return g


def read_lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f if line.strip()]
    except FileNotFoundError:
        return []


def wait_lines(path, n, timeout=5.0):
    return t.wait_until(lambda: (lambda ls: ls if len(ls) >= n else None)(read_lines(path)), timeout,
                        message=f"{n} lines in {path}")


class AccessLogTest(t.IntegrationTest):
    def setUp(self):
        super().setUp()
        self.up = self.start_upstream("api")
        self.cfg = self.new_config()
        self.logdir = t._scratch_dir("portico-access-")
        self.port = t.free_port()
        self.cfg.write_obj("upstream.yaml", t.upstream("api", [(t.LOCALHOST, self.up.port)]))
        self.cfg.write_obj("vs.yaml", t.virtual_service("shop", [
            r("health", [m(exact="/health")], direct=(200, "ok\n"), options={"accessLog": {"disabled": True}}),
            r("api", [m(prefix="/api")], to="api"),
            r("down", [m(prefix="/down")], to="missing"),
        ]))

    def write_gateway(self, logs):
        self.cfg.write_obj("gateway.yaml", gateway_with_logs("gw", self.port, ["shop"], logs))

    def test_http2_requests_log_their_protocol(self):
        # Cleartext with prior knowledge: no ALPN says HTTP/2, the connection does.
        text_log = os.path.join(self.logdir, "h2.log")
        g = gateway_with_logs("gw", self.port, ["shop"], [{"path": text_log, "stringFormat": TEXT_FORMAT}])
        g["spec"]["httpOptions"] = {"http2": {"cleartextPriorKnowledge": True}}
        self.cfg.write_obj("gateway.yaml", g)
        self.start_portico(self.cfg)
        t.wait_for_port(self.port)
        out = t.curl("-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                     f"http://{t.LOCALHOST}:{self.port}/api/h2")
        self.assertEqual(out.stdout.strip(), "2 200", out.stderr)
        self.assertEqual(t.request(self.port, "GET", "/api/h1").status, 200)
        lines = wait_lines(text_log, 2)
        protos = {x.group("path"): x.group("proto") for x in (TEXT_RE.match(line) for line in lines) if x}
        self.assertEqual(protos, {"/api/h2": "HTTP/2", "/api/h1": "HTTP/1.1"}, lines)

    def test_text_and_json_lines_and_route_switch(self):
        text_log = os.path.join(self.logdir, "access.log")
        json_log = os.path.join(self.logdir, "access.json")
        self.write_gateway([{"path": text_log, "stringFormat": TEXT_FORMAT},
                            {"path": json_log, "jsonFormat": JSON_FORMAT}])
        p = self.start_portico(self.cfg)
        t.wait_for_port(self.port)

        ok = t.request(self.port, "GET", "/api/items?x=1", headers={"User-Agent": "it-agent/1",
                                                                    "X-Request-Id": "rid-1",
                                                                    "X-Other": "fallback"})
        self.assertEqual(ok.status, 200)
        post = t.request(self.port, "POST", "/api/upload", body=b"x" * 1000)
        self.assertEqual(post.status, 200)
        self.assertEqual(t.request(self.port, "GET", "/health").status, 200)  # not logged
        self.assertEqual(t.request(self.port, "GET", "/nowhere").status, 404)
        self.assertEqual(t.request(self.port, "GET", "/down").status, 503)

        # Lines from different workers may interleave out of order (each worker has its buffer):
        # find them by path.
        lines = wait_lines(text_log, 4)
        self.assertEqual(len(lines), 4, lines)
        parsed = [TEXT_RE.match(line) for line in lines]
        self.assertTrue(all(parsed), lines)
        by_path = {x.group("path"): x.groupdict() for x in parsed}
        self.assertNotIn("/health", by_path)
        get, upload, nowhere, down = (by_path[k] for k in ("/api/items?x=1", "/api/upload", "/nowhere", "/down"))
        self.assertEqual((get["method"], get["path"], get["proto"], get["code"]),
                         ("GET", "/api/items?x=1", "HTTP/1.1", "200"))
        self.assertEqual(get["flags"], "-")
        self.assertEqual(get["ua"], "it-agent/1")
        self.assertEqual(get["rid"], "rid-1")
        self.assertEqual(get["uhost"], f"127.0.0.1:{self.up.port}")
        self.assertEqual(get["cluster"], "default/api")
        self.assertEqual(get["route"], "default/shop/api")
        self.assertTrue(get["peer"].startswith("127.0.0.1:"), get)
        self.assertGreater(int(get["tx"]), 0)
        self.assertEqual((upload["method"], upload["rx"]), ("POST", "1000"))
        # A generated request id is logged (x-request-id is added before forwarding).
        self.assertRegex(upload["rid"], r"^[0-9a-f-]{36}$")
        self.assertEqual((nowhere["code"], nowhere["flags"], nowhere["route"], nowhere["uhost"]),
                         ("404", "NR", "-", "-"))
        self.assertEqual((down["code"], down["flags"]), ("503", "NC"))

        records = {rec["path"]: rec for rec in (json.loads(line) for line in wait_lines(json_log, 4))}
        self.assertEqual(len(records), 4)
        j = records["/api/items?x=1"]
        self.assertEqual(j["method"], "GET")
        self.assertEqual(j["code"], 200)  # typed: a number
        self.assertIsInstance(j["bytes_sent"], int)
        self.assertEqual(j["request_id"], "rid-1")
        self.assertEqual(j["custom"], "fallback")
        self.assertEqual(j["flags"], "-")
        self.assertRegex(j["start"], r"^\d{4}-\d\d-\d\dT")
        self.assertIsNone(records["/nowhere"]["upstream"])  # 404: no upstream -> null
        self.assertIsNone(records["/nowhere"]["custom"])
        self.assertEqual(list(j.keys()), list(JSON_FORMAT.keys()))  # in the order written

        stats = p.stats()
        self.assertGreaterEqual(t.metric_sum(stats, "portico_access_log_lines_written_total"), 8)
        self.assertEqual(t.metric_sum(stats, "portico_access_log_dropped_total"), 0)
        self.assertEqual(t.metric_sum(stats, "portico_access_log_write_errors_total"), 0)

    def test_upstream_connect_failure_flag(self):
        log = os.path.join(self.logdir, "a.log")
        dead = t.free_port()  # nothing listens there
        self.cfg.write_obj("upstream-dead.yaml", t.upstream("dead", [(t.LOCALHOST, dead)]))
        self.cfg.write_obj("vs.yaml", t.virtual_service("shop", [r("dead", [m(prefix="/")], to="dead")]))
        self.write_gateway([{"path": log, "stringFormat": "%RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_HOST%"}])
        self.start_portico(self.cfg)
        t.wait_for_port(self.port)
        self.assertEqual(t.request(self.port, "GET", "/").status, 503)
        self.assertEqual(wait_lines(log, 1), [f"503 UF 127.0.0.1:{dead}"])

    def test_sigusr1_reopens_after_rename(self):
        log = os.path.join(self.logdir, "access.log")
        self.write_gateway([{"path": log, "stringFormat": "%REQ(:PATH)%"}])
        p = self.start_portico(self.cfg)
        t.wait_for_port(self.port)
        for i in range(3):
            self.assertEqual(t.request(self.port, "GET", f"/api/before{i}").status, 200)
        wait_lines(log, 3)
        os.rename(log, log + ".1")  # logrotate's rename
        # Until the signal the renamed file keeps getting lines (the open file is the same).
        self.assertEqual(t.request(self.port, "GET", "/api/renamed").status, 200)
        wait_lines(log + ".1", 4)
        p.send_signal(signal.SIGUSR1)
        t.wait_until(lambda: os.path.exists(log), 5.0, message="access.log created again")
        for i in range(3):
            self.assertEqual(t.request(self.port, "GET", f"/api/after{i}").status, 200)
        self.assertEqual(sorted(wait_lines(log, 3)), ["/api/after0", "/api/after1", "/api/after2"])
        self.assertEqual(sorted(read_lines(log + ".1")),
                         ["/api/before0", "/api/before1", "/api/before2", "/api/renamed"])
        self.assertGreaterEqual(t.metric_sum(p.stats(), "portico_access_log_reopens_total"), 1)

    def test_stdout(self):
        self.write_gateway([{"path": "/dev/stdout", "stringFormat": "ACCESS %REQ(:PATH)% %RESPONSE_CODE%"}])
        p = self.start_portico(self.cfg)
        t.wait_for_port(self.port)
        self.assertEqual(t.request(self.port, "GET", "/api/on-stdout").status, 200)
        t.wait_until(lambda: "ACCESS /api/on-stdout 200\n" in p.log(), 5.0, message="line on stdout")

    def test_reload_changes_format_without_losing_lines(self):
        log = os.path.join(self.logdir, "access.log")
        self.write_gateway([{"path": log, "stringFormat": "v1 %REQ(:PATH)%"}])
        p = self.start_portico(self.cfg)
        t.wait_for_port(self.port)
        sent = 0
        version = p.config_version()
        for i in range(20):
            self.assertEqual(t.request(self.port, "GET", f"/api/{sent}").status, 200)
            sent += 1
        self.write_gateway([{"path": log, "jsonFormat": {"v": "2", "path": "%REQ(:PATH)%"}}])
        # Requests keep flowing while the new configuration is applied.
        deadline = time.monotonic() + 5
        while p.config_version() <= version and time.monotonic() < deadline:
            self.assertEqual(t.request(self.port, "GET", f"/api/{sent}").status, 200)
            sent += 1
        self.assertGreater(p.config_version(), version)
        first_new = sent  # sent after the new version was published: logged in the new format
        for i in range(20):
            self.assertEqual(t.request(self.port, "GET", f"/api/{sent}").status, 200)
            sent += 1
        lines = wait_lines(log, sent)
        self.assertEqual(len(lines), sent)
        formats = {}
        for line in lines:
            if line.startswith("v1 "):
                formats[int(line[len("v1 /api/"):])] = "text"
            else:
                rec = json.loads(line)
                self.assertEqual(rec["v"], "2")
                formats[int(rec["path"][len("/api/"):])] = "json"
        self.assertEqual(sorted(formats), list(range(sent)))  # every request, once
        self.assertTrue(all(formats[i] == "text" for i in range(20)), formats)
        self.assertTrue(all(formats[i] == "json" for i in range(first_new, sent)), formats)

    def test_unknown_operator_is_rejected_with_its_name(self):
        log = os.path.join(self.logdir, "access.log")
        self.write_gateway([{"path": log, "stringFormat": "%REQ(:PATH)% %UPSTREAM_WHATEVER%"}])
        p = self.start_portico(self.cfg)
        gw = t.wait_until(lambda: p.resource("Gateway", "gw"), 5.0, message="gateway reported")
        self.assertEqual(gw["state"], "Rejected", gw)
        self.assertTrue(any("%UPSTREAM_WHATEVER%" in x["message"] and x["path"].endswith("stringFormat")
                            for x in gw["reasons"]), gw)
        self.assertTrue(t.port_refuses(self.port))

    def test_unwritable_file_is_reported_on_the_gateway(self):
        self.write_gateway([{"path": "/nonexistent-portico-dir/access.log"}])
        p = self.start_portico(self.cfg)

        def reported():
            gw = p.resource("Gateway", "gw")
            return gw if gw and any("/nonexistent-portico-dir" in x["message"] for x in gw["reasons"]) else None
        gw = t.wait_until(reported, 5.0, message="gateway reports the log file")
        self.assertIn("cannot open access log", json.dumps(gw))
        # Traffic is still served (a log that cannot be written does not stop the gateway).
        t.wait_for_port(self.port)
        self.assertEqual(t.request(self.port, "GET", "/api/x").status, 200)


if __name__ == "__main__":
    t.main()
