#!/usr/bin/env python3
"""Zero-downtime binary upgrade (`portico run --upgrade`, SIGUSR2): the new process takes the listening
sockets over through the upgrade socket; under a continuous client loop no request fails and no
connection is refused; the old process finishes its in-flight request, drains and exits; a new process
with a broken configuration leaves the old one serving; protocol errors are refused clearly."""

import http.client
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402


class ClientLoop:
    """Threads sending GETs until stopped: some on keep-alive connections (reconnecting after a
    "Connection: close"), some on a new connection per request. Every exception or non-200 is an error."""

    def __init__(self, port: int, keep_alive: int = 4, fresh: int = 2):
        self.port = port
        self.ok = 0
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._keep_alive, args=(i,), daemon=True) for i in range(keep_alive)]
        self.threads += [threading.Thread(target=self._fresh, args=(i,), daemon=True) for i in range(fresh)]

    def _record(self, status: int | None, error: str | None = None):
        with self.lock:
            if status == 200:
                self.ok += 1
            else:
                self.errors.append(error or f"status {status}")

    def _keep_alive(self, i: int):
        conn = http.client.HTTPConnection(t.LOCALHOST, self.port, timeout=10)
        while not self.stop_event.is_set():
            try:
                conn.request("GET", f"/ka/{i}")
                resp = conn.getresponse()
                resp.read()
                self._record(resp.status)
            except (OSError, http.client.HTTPException) as e:
                self._record(None, f"keep-alive {i}: {e!r}")
                conn.close()
        conn.close()

    def _fresh(self, i: int):
        while not self.stop_event.is_set():
            conn = http.client.HTTPConnection(t.LOCALHOST, self.port, timeout=10)
            try:
                conn.request("GET", f"/new/{i}", headers={"Connection": "close"})
                resp = conn.getresponse()
                resp.read()
                self._record(resp.status)
            except (OSError, http.client.HTTPException) as e:
                self._record(None, f"new connection {i}: {e!r}")
            finally:
                conn.close()

    def start(self) -> "ClientLoop":
        for th in self.threads:
            th.start()
        return self

    def stop(self):
        self.stop_event.set()
        for th in self.threads:
            th.join(15)

    def count(self) -> int:
        with self.lock:
            return self.ok + len(self.errors)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


class UpgradeTest(t.IntegrationTest):
    def setUp(self):
        super().setUp()
        self.echo = self.start_upstream("echo")
        self.cfg = self.new_config()
        self.port = t.free_port()
        self.cfg.write_obj("upstream-echo.yaml", t.upstream("echo", [(t.LOCALHOST, self.echo.port)]))
        self.cfg.write_obj("vs-vs.yaml", t.virtual_service("vs", [r("all", [m(prefix="/")], to="echo")]))
        self.cfg.write_obj("gateway-gw.yaml", t.gateway("gw", self.port, ["vs"]))
        self.sock_path = self.cfg.path.rstrip("/") + ".upgrade.sock"

    def new_process(self, config_dir: str | None = None, extra: list[str] | None = None,
                    workers: int = 2) -> t.Portico:
        p = t.Portico(config_dir or self.cfg.path, workers=workers, admin_port=self.old.admin_port,
                      extra_args=["--upgrade", *(extra or [])])
        self.addCleanup(p.stop)
        self._porticos.append(p)
        p.start(wait_ready=False)
        return p

    def stat(self, p: t.Portico, name: str, **labels) -> float:
        return t.metric_sum(p.stats(), name, **labels)

    def slow_request(self, path: str):
        result = {}

        def run():
            conn = http.client.HTTPConnection(t.LOCALHOST, self.port, timeout=15)
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                result["status"] = resp.status
                result["body"] = resp.read()
            except (OSError, http.client.HTTPException) as e:
                result["error"] = e
            finally:
                conn.close()

        th = threading.Thread(target=run, daemon=True)
        th.start()
        t.wait_until(lambda: [q for q in self.echo.requests() if q["path"] == path], 5,
                     message="the slow request reached the upstream")
        return th, result

    def test_upgrade_under_load_loses_nothing(self):
        self.old = self.start_portico(self.cfg, workers=2)
        self.assertTrue(os.path.exists(self.sock_path))
        self.assertEqual(os.stat(self.sock_path).st_mode & 0o777, 0o600)
        self.assertEqual(self.stat(self.old, "portico_binary_upgrade_generation"), 0)
        th, slow = self.slow_request("/delay/2000")
        load = ClientLoop(self.port).start()
        self.addCleanup(load.stop)
        time.sleep(1.0)
        before = load.count()
        new = self.new_process()
        # The old process drains (the slow request holds it) and exits 0; the new one serves.
        rc = self.old.wait(20)
        self.assertEqual(rc, 0, self.old.log())
        self.assertTrue(new.alive(), new.log())
        time.sleep(1.0)
        load.stop()
        th.join(10)
        self.assertNotIn("error", slow, slow)
        self.assertEqual(slow["status"], 200)
        self.assertEqual(json.loads(slow["body"])["path"], "/delay/2000")
        self.assertEqual(load.errors, [], f"{len(load.errors)} failed of {load.count()}")
        self.assertGreater(load.ok, before + 50, "the loop ran across the upgrade")
        old_log = self.old.log()
        self.assertRegex(old_log, rf"asked for the listening sockets: sent 3 \(127\.0\.0\.1:{self.port} admin")
        self.assertIn("stop accepting, drain and exit", old_log)
        self.assertIn(f"handed over 2 listening sockets (127.0.0.1:{self.port} x2)", new.log())
        # The admin socket came over too: same port, the new process answers.
        self.assertEqual(new.admin_get("/ready").status, 200)
        self.assertEqual(self.stat(new, "portico_binary_upgrade_generation"), 1)
        self.assertEqual(t.request(self.port, "GET", "/after").status, 200)
        self.assertTrue(os.path.exists(self.sock_path), "the new process serves the upgrade socket")

        # And again, from the new process, with more workers than sockets handed over.
        newer = self.new_process(workers=3)
        self.assertEqual(new.wait(15), 0, new.log())
        t.wait_until(lambda: newer.admin_get("/ready", timeout=1).status == 200, 10)
        self.assertEqual(self.stat(newer, "portico_binary_upgrade_generation"), 2)
        self.assertEqual(t.request(self.port, "GET", "/third").status, 200)

    def test_fewer_workers_serve_every_socket(self):
        self.old = self.start_portico(self.cfg, workers=3)
        new = self.new_process(workers=1)
        self.assertEqual(self.old.wait(15), 0, self.old.log())
        self.assertIn("handed over 3 listening sockets", new.log())
        # Connections land on all three sockets of the group: every one must be accepted.
        for i in range(30):
            self.assertEqual(t.request(self.port, "GET", f"/n{i}", timeout=3).status, 200)

    def test_listeners_of_the_new_configuration(self):
        # Old: ports A and B. New: A (adopted) and C (bound); B's sockets are closed.
        port_b, port_c = t.free_port(), t.free_port()
        self.cfg.write_obj("gateway-b.yaml", t.gateway("b", port_b, ["vs"]))
        self.old = self.start_portico(self.cfg, workers=2)
        self.assertEqual(t.request(port_b, "GET", "/b").status, 200)
        other = self.new_config()
        other.write_obj("upstream-echo.yaml", t.upstream("echo", [(t.LOCALHOST, self.echo.port)]))
        other.write_obj("vs-vs.yaml", t.virtual_service("vs", [r("all", [m(prefix="/")], to="echo")]))
        other.write_obj("gateway-gw.yaml", t.gateway("gw", self.port, ["vs"]))
        other.write_obj("gateway-c.yaml", t.gateway("c", port_c, ["vs"]))
        new = self.new_process(config_dir=other.path, extra=["--upgrade-socket", self.sock_path])
        self.assertEqual(self.old.wait(15), 0, self.old.log())
        self.assertIn(f"listener 127.0.0.1:{port_b} is not in the configuration", new.log())
        self.assertEqual(t.request(self.port, "GET", "/a").status, 200)
        self.assertEqual(t.request(port_c, "GET", "/c").status, 200)
        self.assertTrue(t.port_refuses(port_b), "the dropped listener's sockets are closed")

    def test_broken_config_leaves_old_serving(self):
        self.old = self.start_portico(self.cfg, workers=2)
        broken = self.new_config()
        broken.write("upstream-echo.yaml", "kind: Upstream\nmetadata: {name: echo\n  spec: [\n")
        new = t.Portico(broken.path, workers=2, admin_port=self.old.admin_port,
                        extra_args=["--upgrade", "--upgrade-socket", self.sock_path])
        self.addCleanup(new.stop)
        new.start(wait_ready=False)
        rc = new.wait(15)
        self.assertNotEqual(rc, 0)
        self.assertIn("keeps serving", new.log())
        self.assertTrue(self.old.alive())
        self.assertEqual(t.request(self.port, "GET", "/still").status, 200)
        self.assertEqual(self.old.admin_get("/ready").status, 200)
        t.wait_until(lambda: self.stat(self.old, "portico_binary_upgrades_total", result="aborted") == 1, 5)
        # A good one afterwards still works.
        good = self.new_process()
        self.assertEqual(self.old.wait(15), 0, self.old.log())
        self.assertTrue(good.alive(), good.log())
        self.assertEqual(t.request(self.port, "GET", "/good").status, 200)

    def test_rejected_gateway_refuses_upgrade(self):
        self.old = self.start_portico(self.cfg, workers=1)
        blocker = socket.socket()
        self.addCleanup(blocker.close)
        blocker.bind((t.LOCALHOST, 0))
        blocker.listen()
        other = self.new_config()
        other.write_obj("upstream-echo.yaml", t.upstream("echo", [(t.LOCALHOST, self.echo.port)]))
        other.write_obj("vs-vs.yaml", t.virtual_service("vs", [r("all", [m(prefix="/")], to="echo")]))
        other.write_obj("gateway-gw.yaml", t.gateway("gw", blocker.getsockname()[1], ["vs"]))
        new = t.Portico(other.path, workers=1, admin_port=self.old.admin_port,
                        extra_args=["--upgrade", "--upgrade-socket", self.sock_path])
        self.addCleanup(new.stop)
        new.start(wait_ready=False)
        self.assertNotEqual(new.wait(15), 0)
        self.assertIn("rejected", new.log())
        self.assertTrue(self.old.alive())
        self.assertEqual(t.request(self.port, "GET", "/still").status, 200)

    def test_upgrade_without_old_process_errors(self):
        path = self.cfg.path.rstrip("/") + ".nobody.sock"
        p = t.Portico(self.cfg.path, extra_args=["--upgrade", "--upgrade-socket", path])
        self.addCleanup(p.stop)
        p.start(wait_ready=False)
        self.assertEqual(p.wait(10), 1)
        self.assertIn(f"no running portico process at upgrade socket {path}", p.log())
        self.assertTrue(t.port_refuses(self.port))

    def test_stale_socket_replaced_live_socket_refused(self):
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        stale.bind(self.sock_path)
        stale.close()  # the file stays: as after a crash
        self.old = self.start_portico(self.cfg, workers=1)
        self.assertEqual(self.old.admin_get("/ready").status, 200)
        second = t.Portico(self.cfg.path, workers=1)
        self.addCleanup(second.stop)
        second.start(wait_ready=False)
        self.assertEqual(second.wait(10), 1)
        self.assertIn("another portico process serves the upgrade socket", second.log())
        # Clean exit removes the socket file (still its own).
        self.assertEqual(self.old.stop(), 0)
        self.assertFalse(os.path.exists(self.sock_path))

    def test_protocol_checked(self):
        self.old = self.start_portico(self.cfg, workers=1)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.addCleanup(s.close)
        s.settimeout(5)
        s.connect(self.sock_path)
        s.send(b"portico-upgrade 2 hello 12345")
        reply = s.recv(4096).decode()
        self.assertIn("portico-upgrade 1 error", reply)
        self.assertIn("protocol version 2", reply)
        s.close()
        # A client that takes the sockets and goes away: nothing changes for the old process.
        c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        c.settimeout(5)
        c.connect(self.sock_path)
        c.send(f"portico-upgrade 1 hello {os.getpid()}".encode())
        msg, fds, flags, _ = socket.recv_fds(c, 65536, 16)
        for fd in fds:
            os.close(fd)
        self.assertTrue(msg.startswith(b"portico-upgrade 1 sockets 0 0\n"), msg)
        self.assertEqual(len(fds), 2)  # one worker, the admin socket
        c.close()
        t.wait_until(lambda: self.stat(self.old, "portico_binary_upgrades_total", result="aborted") == 2, 5)
        self.assertEqual(t.request(self.port, "GET", "/still").status, 200)
        self.assertTrue(self.old.alive())

    def test_sigusr2_reexecutes(self):
        self.old = self.start_portico(self.cfg, workers=1)
        self.old.send_signal(signal.SIGUSR2)
        self.assertEqual(self.old.wait(15), 0, self.old.log())
        found = re.search(r"process (\d+) asked for the listening sockets", self.old.log())
        self.assertIsNotNone(found, self.old.log())
        pid = int(found.group(1))

        def stop_new():
            if pid_alive(pid):
                os.kill(pid, signal.SIGTERM)
                t.wait_until(lambda: not pid_alive(pid), 10)
        self.addCleanup(stop_new)
        self.assertTrue(pid_alive(pid))
        t.wait_until(lambda: self.old.admin_get("/ready", timeout=1).status == 200, 10)
        self.assertEqual(self.stat(self.old, "portico_binary_upgrade_generation"), 1)
        self.assertEqual(t.request(self.port, "GET", "/usr2").status, 200)


if __name__ == "__main__":
    unittest.main()
