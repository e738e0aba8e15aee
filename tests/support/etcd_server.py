#!/usr/bin/env python3
"""A real etcd (Debian's etcd-server) for Portico's tests, and a TCP relay that a test can cut.

  Etcd(data_dir=None)    etcd on 127.0.0.1 with client and peer ports picked at run time and a temporary data
                         directory (kept across stop()/start(), so a restart keeps the data); stopped by PID.
                         put/get/delete/compact/revision through etcdctl (API v3).
  Relay(target_port)     a threaded TCP relay on 127.0.0.1:<free port> to target_port; cut() closes every
                         relayed connection and closes new ones at once (the peer looks gone while etcd
                         stays up for etcdctl); heal() relays again.

Standalone: `python3 tests/support/etcd_server.py --port 0` starts etcd, prints its client port and runs until
interrupted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

LOCALHOST = "127.0.0.1"
ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def available() -> bool:
    return os.access(ETCD, os.X_OK) and os.access(ETCDCTL, os.X_OK)


class Etcd:
    def __init__(self, client_port: int = 0):
        self.dir = tempfile.mkdtemp(prefix="portico-etcd-")
        self.data_dir = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "etcd.log")
        self.port = client_port or _free_port()
        self.peer_port = _free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def start(self, timeout: float = 10.0) -> "Etcd":
        peer = f"http://{LOCALHOST}:{self.peer_port}"
        cmd = [ETCD, "--name", "n", "--data-dir", self.data_dir,
               "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
               "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
               "--initial-cluster", f"n={peer}"]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.ctl("endpoint", "health", timeout=2.0)
                return self
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"etcd not healthy after {timeout}s:\n{self.log()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: etcd vanishes without a goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-4000:].decode("utf-8", "replace")
        except OSError:
            return ""

    # etcdctl (API v3)

    def ctl(self, *args: str, input: str | None = None, timeout: float = 10.0) -> str:
        env = dict(os.environ, ETCDCTL_API="3")
        r = subprocess.run([ETCDCTL, "--endpoints", self.endpoint, "--dial-timeout", "2s", *args],
                           input=input, capture_output=True, text=True, timeout=timeout, env=env)
        if r.returncode != 0:
            raise subprocess.CalledProcessError(r.returncode, r.args, r.stdout, r.stderr)
        return r.stdout

    def put(self, key: str, value: str) -> None:
        # The value on stdin: YAML starts with "kind:" or "-", which etcdctl would read as flags.
        self.ctl("put", key, input=value)

    def delete(self, key: str) -> int:
        return int(self.ctl("del", key).strip() or 0)

    def revision(self) -> int:
        out = self.ctl("endpoint", "status", "-w", "fields")
        for line in out.splitlines():
            if line.startswith('"Revision"'):
                return int(line.split(":", 1)[1].strip())
        raise RuntimeError("no revision in: " + out)

    def compact(self, revision: int | None = None) -> None:
        self.ctl("compact", str(revision if revision is not None else self.revision()))


class Relay:
    """TCP relay 127.0.0.1:<port> -> 127.0.0.1:target_port that can be cut and healed."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._cut = False
        self._closed = False
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((LOCALHOST, 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True, name="etcd-relay")

    def start(self) -> "Relay":
        self._thread.start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._closed or self._cut:
                    conn.close()
                    continue
            try:
                upstream = socket.create_connection((LOCALHOST, self.target_port), timeout=5)
            except OSError:
                conn.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._socks += [conn, upstream]
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _close_all(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def cut(self) -> None:
        with self._lock:
            self._cut = True
        self._close_all()

    def heal(self) -> None:
        with self._lock:
            self._cut = False

    def stop(self) -> None:
        with self._lock:
            self._closed = True
        self._listener.close()
        self._close_all()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0, help="client port (0: pick a free one)")
    args = ap.parse_args()
    e = Etcd(args.port).start()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # after etcd started
    print(e.port, flush=True)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        e.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
