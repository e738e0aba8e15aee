#!/usr/bin/env python3
"""Control-plane safety through the real binary: the last good version of a resource stays in force when
its new version is invalid, a missing upstream answers 503 on its routes only, a resource defined twice
stays with the file already in force, Kubernetes ConfigMap mounts (the "..data" symlink swap) reload, the
periodic resync catches what inotify cannot see, bind errors show on the Gateway and its VirtualServices,
observedGeneration survives a restart, and propagation is measured."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402

WITHIN = 3.0  # seconds for a change to be served


def reasons_text(res):
    return " | ".join(reason.get("message", "") for reason in res.get("reasons", []))


class ConfigSafetyTest(t.IntegrationTest):
    def setUp(self):
        super().setUp()
        self.echo = self.start_upstream("echo")
        self.cfg = self.new_config()
        self.port = t.free_port()
        self.cfg.write_obj("upstream-echo.yaml", t.upstream("echo", [(t.LOCALHOST, self.echo.port)]))
        self.write_vs("v0")
        self.cfg.write_obj("gateway-gw.yaml", t.gateway("gw", self.port, ["vs", "other"]))
        self.cfg.write_obj("vs-other.yaml", t.virtual_service(
            "other", [r("o", direct=(200, "other"))], domains=["other.example"]))
        self.portico = self.start_portico(self.cfg)

    def write_vs(self, body, extra=(), name="vs-vs.yaml"):
        routes = [r("dr", [m(exact="/dr")], direct=(200, body)), *extra,
                  r("stable", [m(prefix="/stable")], to="echo")]
        self.cfg.write_obj(name, t.virtual_service("vs", routes))

    def get(self, path, host=None):
        resp = t.request(self.port, "GET", path, timeout=5, host=host) if host else \
            t.request(self.port, "GET", path, timeout=5)
        return resp.status, resp.text()

    def resource_where(self, kind, name, pred, message):
        def check():
            res = self.portico.resource(kind, name)
            return res if res is not None and pred(res) else None
        return t.wait_until(check, WITHIN, message=message)

    def test_invalid_new_version_keeps_the_last_good_one(self):
        before = self.portico.resource("VirtualService", "vs")
        self.assertEqual(before["state"], "Accepted")
        good_generation = before["observedGeneration"]
        self.write_vs("v1", extra=[r("bad", [m(regex="/(unclosed")], direct=(200, "never"))])
        res = self.resource_where("VirtualService", "vs", lambda x: x["state"] == "Rejected",
                                  "VirtualService vs Rejected")
        self.assertEqual(res.get("servingGeneration"), good_generation, res)
        self.assertNotEqual(res["observedGeneration"], good_generation)
        self.assertIn(f"serving generation {good_generation}", reasons_text(res))
        self.assertTrue(any(x["severity"] == "error" for x in res["reasons"]), res)
        # The previous version is what answers; nothing disappeared.
        self.assertEqual(self.get("/dr"), (200, "v0"))
        self.assertEqual(self.get("/stable/x")[0], 200)
        self.assertEqual(self.get("/", host="other.example"), (200, "other"))
        # Fixed: the new version serves.
        self.write_vs("v2")
        t.wait_until(lambda: self.get("/dr") == (200, "v2"), WITHIN, message="v2 serving")
        res = self.portico.resource("VirtualService", "vs")
        self.assertEqual(res["state"], "Accepted")
        self.assertNotIn("servingGeneration", res)

    def test_missing_upstream_is_a_warning_and_its_route_answers_503(self):
        self.write_vs("v1", extra=[r("gone", [m(prefix="/gone")], to="missing")])
        t.wait_until(lambda: self.get("/dr") == (200, "v1"), WITHIN, message="v1 serving")
        res = self.portico.resource("VirtualService", "vs")
        self.assertEqual(res["state"], "Warning", res)
        self.assertIn("upstream default/missing not found", reasons_text(res))
        self.assertEqual(self.get("/gone/x")[0], 503)
        self.assertEqual(self.get("/stable/x")[0], 200)
        self.assertEqual(self.get("/", host="other.example"), (200, "other"))
        # Removing an upstream in use: its routes answer 503, the rest keeps working.
        self.cfg.remove("upstream-echo.yaml")
        t.wait_until(lambda: self.get("/stable/x")[0] == 503, WITHIN, message="/stable answering 503")
        self.assertEqual(self.get("/dr"), (200, "v1"))

    def test_a_second_definition_is_rejected_naming_the_first(self):
        # "aaa" sorts before "vs-vs.yaml", but vs-vs.yaml's definition is already in force.
        self.write_vs("newcomer", name="aaa-vs.yaml")

        def file_rejected():
            for res in self.portico.resources():
                if res["kind"] == "File" and res["name"] == "aaa-vs.yaml" and res["state"] == "Rejected":
                    return res
            return None
        res = t.wait_until(file_rejected, WITHIN, message="aaa-vs.yaml Rejected")
        self.assertIn("already defined at vs-vs.yaml", reasons_text(res))
        self.assertEqual(self.get("/dr"), (200, "v0"))
        owner = self.portico.resource("VirtualService", "vs")
        self.assertEqual(owner["file"], "vs-vs.yaml")
        self.assertIn("defined again at aaa-vs.yaml", reasons_text(owner))
        # The definition in force goes: the other one takes over.
        self.cfg.remove("vs-vs.yaml")
        t.wait_until(lambda: self.get("/dr") == (200, "newcomer"), WITHIN, message="newcomer serving")

    def test_bind_error_shows_on_the_gateway_and_its_virtual_services(self):
        busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(busy.close)
        busy.bind((t.LOCALHOST, 0))
        busy.listen(1)
        busy_port = busy.getsockname()[1]
        self.cfg.write_obj("vs-third.yaml", t.virtual_service("third", [r("s", direct=(200, "third"))]))
        self.cfg.write_obj("gateway-busy.yaml", t.gateway("busy", busy_port, ["third"]))
        gw = self.resource_where("Gateway", "busy", lambda x: x["state"] == "Rejected", "Gateway busy Rejected")
        self.assertIn("cannot listen", reasons_text(gw))
        vs = self.resource_where("VirtualService", "third", lambda x: x["state"] == "Warning",
                                 "VirtualService third Warning")
        self.assertIn("not served on gateway default/busy", reasons_text(vs))
        self.assertEqual(self.get("/dr"), (200, "v0"))

    def test_observed_generation_survives_a_restart(self):
        # Changed once while running: a counter in memory would say 2 now and 1 after the restart.
        self.write_vs("v1")
        t.wait_until(lambda: self.get("/dr") == (200, "v1"), WITHIN, message="v1 serving")
        before = {(x["kind"], x["name"]): x["observedGeneration"] for x in self.portico.resources()
                  if x["kind"] != "File"}
        self.portico.stop()
        again = self.start_portico(self.cfg)
        after = {(x["kind"], x["name"]): x["observedGeneration"] for x in again.resources() if x["kind"] != "File"}
        self.assertEqual(before, after)
        self.assertEqual(len(before), 4)

    def test_propagation_is_measured_and_the_build_is_ok(self):
        self.write_vs("v1")
        t.wait_until(lambda: self.get("/dr") == (200, "v1"), WITHIN, message="v1 serving")

        def applied():
            res = self.portico.resource("VirtualService", "vs")
            change = res.get("lastChange") or {}
            return change if change.get("appliedMs") is not None else None
        change = t.wait_until(applied, WITHIN, message="lastChange.appliedMs set")
        self.assertGreaterEqual(change["appliedMs"], change["translatedMs"])
        self.assertLess(change["appliedMs"], 2000)
        self.assertGreater(change["seenUnixMs"], 0)
        stats = self.portico.stats()
        self.assertEqual(t.metric_sum(stats, "portico_config_last_build_ok"), 1)
        self.assertEqual(t.metric_sum(stats, "portico_config_build_failures_total"), 0)
        self.assertGreaterEqual(t.metric_sum(stats, "portico_config_propagation_seconds_count", stage="applied"), 2)
        self.assertGreaterEqual(t.metric_sum(stats, "portico_config_propagation_seconds_count", stage="translated"), 2)
        ready = self.portico.admin_get("/ready")
        self.assertEqual((ready.status, ready.text()), (200, "ready\n"))


class MountsAndResyncTest(t.IntegrationTest):
    def make_dir(self):
        d = tempfile.mkdtemp(prefix="portico-mount-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def test_configmap_symlink_swap_reloads(self):
        root = self.make_dir()
        mount = os.path.join(root, "mount")
        os.mkdir(mount)
        port = t.free_port()

        def version(stamp, body):
            # Like the kubelet: a new timestamped directory, a "..data_tmp" link to it renamed over
            # "..data" (atomic), the old directory removed.
            d = os.path.join(mount, f"..2026_12_02_{stamp}")
            os.mkdir(d)
            with open(os.path.join(d, "gateway.yaml"), "w") as f:
                f.write(t.to_yaml(t.gateway("gw", port, ["vs"])))
            with open(os.path.join(d, "vs.yaml"), "w") as f:
                f.write(t.to_yaml(t.virtual_service("vs", [r("dr", direct=(200, body))])))
            tmp = os.path.join(mount, "..data_tmp")
            os.symlink(os.path.basename(d), tmp)
            old = os.path.realpath(os.path.join(mount, "..data")) if os.path.lexists(
                os.path.join(mount, "..data")) else None
            os.rename(tmp, os.path.join(mount, "..data"))
            if old:
                shutil.rmtree(old)

        version("00_00_00.1", "first")
        for name in ("gateway.yaml", "vs.yaml"):
            os.symlink(os.path.join("..data", name), os.path.join(mount, name))
        portico = self.start_portico(mount, extra_args=["--resync", "0"])  # inotify alone
        t.wait_until(lambda: t.request(port, "GET", "/").text() == "first", WITHIN, message="first serving")
        version("00_01_00.2", "second")
        t.wait_until(lambda: t.request(port, "GET", "/").text() == "second", WITHIN, message="second serving")
        version("00_02_00.3", "third")
        t.wait_until(lambda: t.request(port, "GET", "/").text() == "third", WITHIN, message="third serving")
        res = portico.resource("VirtualService", "vs")
        self.assertEqual(res["state"], "Accepted")
        self.assertEqual(res["file"], "vs.yaml")

    def test_symlinked_directory_is_watched(self):
        root = self.make_dir()
        conf = os.path.join(root, "conf")
        team = os.path.join(root, "team-a")
        os.mkdir(conf)
        os.mkdir(team)
        port = t.free_port()
        with open(os.path.join(conf, "gateway.yaml"), "w") as f:
            f.write(t.to_yaml(t.gateway("gw", port, ["vs"])))
        os.symlink(team, os.path.join(conf, "team-a"))
        self.start_portico(conf, extra_args=["--resync=0"])
        with open(os.path.join(team, "vs.tmp"), "w") as f:
            f.write(t.to_yaml(t.virtual_service("vs", [r("dr", direct=(200, "team-a"))])))
        os.rename(os.path.join(team, "vs.tmp"), os.path.join(team, "vs.yaml"))
        t.wait_until(lambda: t.request(port, "GET", "/").text() == "team-a", WITHIN,
                     message="the symlinked directory's file serving")

    def test_periodic_resync_catches_what_inotify_cannot_see(self):
        root = self.make_dir()
        conf = os.path.join(root, "conf")
        outside = os.path.join(root, "outside")
        os.mkdir(conf)
        os.mkdir(outside)
        port = t.free_port()
        with open(os.path.join(conf, "gateway.yaml"), "w") as f:
            f.write(t.to_yaml(t.gateway("gw", port, ["vs"])))
        target = os.path.join(outside, "vs.yaml")

        def write(body):
            with open(target + ".tmp", "w") as f:
                f.write(t.to_yaml(t.virtual_service("vs", [r("dr", direct=(200, body))])))
            os.rename(target + ".tmp", target)

        write("before")
        # A file symlink to a directory that is not watched: changes there raise no event.
        os.symlink(target, os.path.join(conf, "vs.yaml"))
        portico = self.start_portico(conf, extra_args=["--resync=1s"])
        t.wait_until(lambda: t.request(port, "GET", "/").text() == "before", WITHIN, message="before serving")
        write("after")
        t.wait_until(lambda: t.request(port, "GET", "/").text() == "after", WITHIN, message="resync picked it up")
        self.assertGreaterEqual(t.metric_sum(portico.stats(), "portico_config_resyncs_total"), 1)

    def test_a_referenced_certificate_file_is_watched(self):
        if shutil.which("openssl") is None:
            self.skipTest("openssl not installed")
        root = self.make_dir()
        conf = os.path.join(root, "conf")
        tls = os.path.join(root, "tls")
        os.mkdir(conf)
        os.mkdir(tls)
        crt, key = os.path.join(tls, "s.crt"), os.path.join(tls, "s.key")
        for path in (crt, key):
            with open(path, "w") as f:
                f.write("not PEM yet\n")
        secret = t.resource("Secret", "s", {"tls": {"certChainFile": crt, "privateKeyFile": key}})
        with open(os.path.join(conf, "secret.yaml"), "w") as f:
            f.write(t.to_yaml(secret))
        portico = self.start_portico(conf, extra_args=["--resync=0"])  # inotify alone
        self.assertEqual(portico.resource("Secret", "s")["state"], "Rejected")
        # Written beside and renamed into place (as a rotation does); the YAML does not change.
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=s.test",
                        "-days", "2", "-keyout", key + ".new", "-out", crt + ".new"],
                       check=True, capture_output=True, timeout=60)
        os.rename(key + ".new", key)
        os.rename(crt + ".new", crt)
        t.wait_until(lambda: portico.resource("Secret", "s")["state"] == "Accepted", WITHIN,
                     message="the Secret accepted once its files are valid")

    def test_bad_resync_flag_is_refused(self):
        proc = t.run_cli("run", self.make_dir(), "--resync", "soon")
        self.assertEqual(proc.returncode, 2)
        self.assertIn("--resync", proc.stderr)


if __name__ == "__main__":
    t.main()
