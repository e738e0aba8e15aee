"""A raw HTTP/1.1 upstream whose answer to each request is decided by a function, for the retry and
circuit-breaker tests and the retry-budget benchmark (tests/integration/test_retries.py,
bench/resilience/retry_budget.py).

decide(n, method, path) is called for every request (n: how many requests this path had before,
from 0) and returns one of:
  ("respond", status)                 keep-alive answer with a small body
  ("respond", status, {"delay": s, "close": True})   after s seconds; Connection: close
  ("reset",)                          closes with RST without answering
  ("partial",)                        a head announcing 100 bytes, 10 of them, then RST
  ("hang", s)                         no answer; the connection is closed after s seconds
Every request is recorded (method, path, body) in .hits; stop() closes everything it opened."""

from __future__ import annotations

import socket
import struct
import threading
import time

LOCALHOST = "127.0.0.1"


class ProgrammableUpstream:
    def __init__(self, decide, backlog: int = 128):
        self.decide = decide
        self.hits: list[tuple[str, str, bytes]] = []
        self._per_path: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((LOCALHOST, 0))
        self._sock.listen(backlog)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> "ProgrammableUpstream":
        self._thread.start()
        return self

    def count(self, path: str | None = None, method: str | None = None) -> int:
        with self._lock:
            return sum(1 for m, p, _ in self.hits
                       if (path is None or p == path) and (method is None or m == method))

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    @staticmethod
    def _rst(conn: socket.socket):
        try:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
        except OSError:
            pass

    def _conn(self, conn: socket.socket):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        try:
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buf:
                    c = conn.recv(65536)
                    if not c:
                        return
                    buf += c
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                length = 0
                chunked = False
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    if k.strip().lower() == "content-length":
                        length = int(v.strip())
                    if k.strip().lower() == "transfer-encoding" and "chunked" in v.lower():
                        chunked = True
                if chunked:
                    while not buf.endswith(b"0\r\n\r\n"):
                        c = conn.recv(65536)
                        if not c:
                            return
                        buf += c
                    body, buf = buf, b""
                else:
                    while len(buf) < length:
                        c = conn.recv(65536)
                        if not c:
                            return
                        buf += c
                    body, buf = buf[:length], buf[length:]
                with self._lock:
                    n = self._per_path.get(path, 0)
                    self._per_path[path] = n + 1
                    self.hits.append((method, path, body))
                action = self.decide(n, method, path)
                kind = action[0]
                if kind == "reset":
                    self._rst(conn)
                    return
                if kind == "partial":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
                    time.sleep(0.05)
                    self._rst(conn)
                    return
                if kind == "hang":
                    self._stop.wait(action[1])
                    conn.close()
                    return
                status = action[1]
                opts = action[2] if len(action) > 2 else {}
                if opts.get("delay"):
                    self._stop.wait(opts["delay"])
                text = f"{status} from {self.port} for {path}\n".encode()
                close = opts.get("close", False)
                conn.sendall(f"HTTP/1.1 {status} X\r\nContent-Length: {len(text)}\r\nX-Upstream-Port: {self.port}\r\n"
                             f"{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n".encode() + text)
                if close:
                    conn.close()
                    return
        except OSError:
            pass

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()
        with self._lock:
            for c in self._conns:
                try:
                    c.close()
                except OSError:
                    pass
