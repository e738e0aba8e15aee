"""Helpers for Portico's integration tests: they start the real binary and real peers and talk to them.

Python 3 standard library only. Everything here binds 127.0.0.1 only, every socket has a timeout, and every
process a test starts is stopped by its PID (SIGTERM, then SIGKILL after a deadline) through the test's
cleanups, also when the test fails.

Main pieces:
  free_port()                      a free TCP port on 127.0.0.1 (bind port 0)
  ConfigDir                        a temporary configuration directory; files are written atomically (rename)
  to_yaml(), gateway(), virtual_service(), upstream(), route(), ...   resource builders (Gloo-like shapes)
  UpstreamServer                   threaded HTTP/1.1 echo server that records every request it receives
  ScriptedUpstream                 raw TCP server with a scripted (mis)behaviour (garbage, reset, close)
  Nginx                            nginx serving a directory (daemon off, master_process off)
  Portico                          `portico run DIR --admin 127.0.0.1:PORT --workers 2` process wrapper
  IntegrationTest                  unittest.TestCase base: start_*() helpers with cleanups, prints the
                                   portico log of a failed test, fails a test whose portico died
  request(), raw_exchange(), status_of(), parse_prometheus(), pattern_chunks(), ...

Environment: PORTICO_BIN (default /work/main/build/portico), PORTICO_SOURCE_DIR (default /work/main).
"""

from __future__ import annotations

import atexit
import hashlib
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

PORTICO_BIN = os.environ.get("PORTICO_BIN", "/work/main/build/portico")
SOURCE_DIR = os.environ.get("PORTICO_SOURCE_DIR", "/work/main")
LOCALHOST = "127.0.0.1"

# apiVersion written in generated resources (src/api/resources.h kApiVersion; others only warn).
GATEWAY_API_VERSION = "gateway.portico.dev/v1"
UPSTREAM_API_VERSION = "gateway.portico.dev/v1"
NAMESPACE = "default"

DEFAULT_READY_TIMEOUT = 15.0
DEFAULT_STOP_TIMEOUT = 10.0

_scratch_dirs: list[str] = []


def _scratch_dir(prefix: str) -> str:
    """A temporary directory removed when the interpreter exits (logs must outlive the test's cleanups)."""
    path = tempfile.mkdtemp(prefix=prefix)
    _scratch_dirs.append(path)
    return path


@atexit.register
def _remove_scratch_dirs() -> None:
    for path in _scratch_dirs:
        shutil.rmtree(path, ignore_errors=True)


def _register_cleanup(owner, fn, *args) -> None:
    """owner is a TestCase instance (addCleanup) or a TestCase class (addClassCleanup, from setUpClass)."""
    if isinstance(owner, type):
        owner.addClassCleanup(fn, *args)
    else:
        owner.addCleanup(fn, *args)


# --------------------------------------------------------------------------------------------- sockets

def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it back, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0, proc: subprocess.Popen | None = None) -> None:
    """Waits until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((LOCALHOST, port), timeout=0.5):
                return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")
        time.sleep(0.05)


def port_refuses(port: int, timeout: float = 1.0) -> bool:
    """True when a connection to 127.0.0.1:port is refused (nothing listening)."""
    try:
        with socket.create_connection((LOCALHOST, port), timeout=timeout):
            return False
    except ConnectionRefusedError:
        return True


# ------------------------------------------------------------------------------------------- payloads

_PATTERN = bytes(range(256)) * 257  # 64 KiB + 256, so any offset has a 64 KiB slice


def pattern_chunks(n: int, chunk: int = 65536):
    """The deterministic test payload (byte i == i % 256), n bytes, in chunks of at most `chunk` bytes."""
    chunk = max(1, min(chunk, 65536))
    pos = 0
    while pos < n:
        k = min(chunk, n - pos)
        off = pos % 256
        yield _PATTERN[off:off + k]
        pos += k


def pattern_bytes(n: int) -> bytes:
    return b"".join(pattern_chunks(n))


def pattern_sha256(n: int) -> str:
    h = hashlib.sha256()
    for c in pattern_chunks(n):
        h.update(c)
    return h.hexdigest()


# ------------------------------------------------------------------------------------- configuration

def _yaml_scalar(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML double-quoted scalar


def _yaml_lines(obj, indent: int, out: list[str]) -> None:
    pad = " " * indent
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{k}:")
                _yaml_lines(v, indent + 2, out)
            elif isinstance(v, dict):
                out.append(f"{pad}{k}: {{}}")
            elif isinstance(v, list):
                out.append(f"{pad}{k}: []")
            else:
                out.append(f"{pad}{k}: {_yaml_scalar(v)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict) and item:
                sub: list[str] = []
                _yaml_lines(item, indent + 2, sub)
                sub[0] = pad + "- " + sub[0][indent + 2:]
                out.extend(sub)
            elif isinstance(item, list) and item:
                out.append(f"{pad}-")
                _yaml_lines(item, indent + 2, out)
            elif isinstance(item, dict):
                out.append(f"{pad}- {{}}")
            elif isinstance(item, list):
                out.append(f"{pad}- []")
            else:
                out.append(f"{pad}- {_yaml_scalar(item)}")
    else:
        out.append(pad + _yaml_scalar(obj))


def to_yaml(obj) -> str:
    """Block-style YAML for dicts/lists/scalars; every string is quoted (no YAML type surprises)."""
    out: list[str] = []
    _yaml_lines(obj, 0, out)
    return "\n".join(out) + "\n"


def resource(kind: str, name: str, spec: dict, namespace: str = NAMESPACE, labels: dict | None = None) -> dict:
    api = UPSTREAM_API_VERSION if kind == "Upstream" else GATEWAY_API_VERSION
    meta: dict = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec}


def ref(name: str, namespace: str = NAMESPACE) -> dict:
    return {"name": name, "namespace": namespace}


def gateway(name: str, port: int, virtual_services: list[str], namespace: str = NAMESPACE,
            bind_address: str = LOCALHOST) -> dict:
    return resource("Gateway", name, {
        "bindAddress": bind_address,
        "bindPort": port,
        "virtualServices": [ref(v, namespace) for v in virtual_services],
    }, namespace)


def virtual_service(name: str, routes: list[dict], domains: list[str] | None = None,
                    namespace: str = NAMESPACE) -> dict:
    return resource("VirtualService", name, {
        "virtualHost": {"domains": domains if domains is not None else ["*"], "routes": routes},
    }, namespace)


def upstream(name: str, hosts: list, lb: str | None = None, namespace: str = NAMESPACE) -> dict:
    """hosts: [(addr, port)] or [(addr, port, weight)]; lb: None, "roundRobin" or "leastRequest"."""
    hs = []
    for h in hosts:
        entry = {"addr": h[0], "port": h[1]}
        if len(h) > 2:
            entry["weight"] = h[2]
        hs.append(entry)
    spec: dict = {"static": {"hosts": hs}}
    if lb:
        spec["loadBalancerConfig"] = {lb: {}}
    return resource("Upstream", name, spec, namespace)


def matcher(prefix: str | None = None, exact: str | None = None, regex: str | None = None,
            case_sensitive: bool | None = None, headers: list[dict] | None = None,
            query: list[dict] | None = None, methods: list[str] | None = None) -> dict:
    m: dict = {}
    if prefix is not None:
        m["prefix"] = prefix
    if exact is not None:
        m["exact"] = exact
    if regex is not None:
        m["regex"] = regex
    if case_sensitive is not None:
        m["caseSensitive"] = case_sensitive
    if headers:
        m["headers"] = headers
    if query:
        m["queryParameters"] = query
    if methods:
        m["methods"] = methods
    return m


def route(name: str, matchers: list[dict] | None = None, *, to: str | None = None,
          weighted: list[tuple[str, int]] | None = None, redirect: dict | None = None,
          direct: tuple[int, str] | None = None, options: dict | None = None,
          namespace: str = NAMESPACE) -> dict:
    """One route. Exactly one of: to (upstream name), weighted [(upstream, weight)], redirect (the
    redirectAction dict), direct ((status, body))."""
    r: dict = {"name": name, "matchers": matchers if matchers is not None else [matcher(prefix="/")]}
    if to is not None:
        r["routeAction"] = {"single": {"upstream": ref(to, namespace)}}
    elif weighted is not None:
        r["routeAction"] = {"multi": {"destinations": [
            {"weight": w, "destination": {"upstream": ref(u, namespace)}} for u, w in weighted]}}
    elif redirect is not None:
        r["redirectAction"] = redirect
    elif direct is not None:
        r["directResponseAction"] = {"status": direct[0], "body": direct[1]}
    if options:
        r["options"] = options
    return r


class ConfigDir:
    """A temporary directory of YAML resources, watched by `portico run`. Writes are atomic: the file is
    written in a sibling staging directory, fsynced, then renamed into place (the watcher never sees a
    partial file). Call cleanup() (or let IntegrationTest.new_config() register it)."""

    def __init__(self):
        self._root = tempfile.mkdtemp(prefix="portico-it-")
        self.path = os.path.join(self._root, "config")
        self._staging = os.path.join(self._root, "staging")
        os.mkdir(self.path)
        os.mkdir(self._staging)
        self._seq = 0

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def write(self, name: str, text: str) -> str:
        self._seq += 1
        tmp = os.path.join(self._staging, f"{self._seq}-{os.path.basename(name)}")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        dst = os.path.join(self.path, name)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.rename(tmp, dst)
        return dst

    def write_obj(self, name: str, *objs: dict) -> str:
        """Writes one or more resources (several become a multi-document YAML file)."""
        return self.write(name, "---\n".join(to_yaml(o) for o in objs))

    def remove(self, name: str) -> None:
        os.unlink(os.path.join(self.path, name))

    def write_stack(self, gateway_port: int, virtual_services: list[dict], upstreams: list[dict] = (),
                    gateway_name: str = "gw") -> None:
        """Writes one Gateway serving the given VirtualServices, plus the upstreams, one file each."""
        for us in upstreams:
            self.write_obj(f"upstream-{us['metadata']['name']}.yaml", us)
        for vs in virtual_services:
            self.write_obj(f"vs-{vs['metadata']['name']}.yaml", vs)
        self.write_obj(f"gateway-{gateway_name}.yaml",
                       gateway(gateway_name, gateway_port, [v["metadata"]["name"] for v in virtual_services]))

    def cleanup(self) -> None:
        shutil.rmtree(self._root, ignore_errors=True)


# ------------------------------------------------------------------------------------ HTTP utilities

class Response:
    def __init__(self, status: int, reason: str, headers: http.client.HTTPMessage, body: bytes,
                 elapsed: float):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.elapsed = elapsed

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def header_all(self, name: str) -> list[str]:
        return self.headers.get_all(name) or []

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:200]!r}>"


def request(port: int, method: str = "GET", path: str = "/", headers: dict | list | None = None,
            body=None, host: str | None = None, timeout: float = 10.0,
            conn: http.client.HTTPConnection | None = None) -> Response:
    """One request with http.client (a new connection unless `conn` is given). `host` sets Host."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection(LOCALHOST, port, timeout=timeout)
    try:
        hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        skip_host = any(k.lower() == "host" for k, _ in hdrs)
        if host is not None and not skip_host:
            hdrs.append(("Host", host))
            skip_host = True
        start = time.monotonic()
        conn.putrequest(method, path, skip_host=skip_host, skip_accept_encoding=True)
        for k, v in hdrs:
            conn.putheader(k, v)
        if body is not None and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in hdrs):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, resp.reason, resp.headers, data, time.monotonic() - start)
    finally:
        if own:
            conn.close()


def read_response(sock: socket.socket, method: str = "GET") -> Response:
    """Reads one HTTP response from a connected socket (whatever its framing)."""
    start = time.monotonic()
    resp = http.client.HTTPResponse(sock, method=method)
    resp.begin()
    body = resp.read()
    return Response(resp.status, resp.reason, resp.headers, body, time.monotonic() - start)


def echo_header(echo: dict, name: str) -> list[str]:
    """Values of a request header as the upstream received it (from an UpstreamServer echo)."""
    return [v for k, v in echo["headers"] if k.lower() == name.lower()]


def raw_exchange(port: int, data: bytes | list[bytes], timeout: float = 5.0, pause: float = 0.0) -> bytes:
    """Sends raw bytes (a list is sent piece by piece, `pause` seconds apart) on a new connection and
    reads until the peer closes or `timeout` passes with nothing to read. Returns what was read."""
    pieces = data if isinstance(data, list) else [data]
    out = bytearray()
    with socket.create_connection((LOCALHOST, port), timeout=timeout) as s:
        s.settimeout(timeout)
        try:
            for i, p in enumerate(pieces):
                if i and pause:
                    time.sleep(pause)
                s.sendall(p)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before everything was sent
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
    return bytes(out)


_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3})")


def status_of(raw: bytes) -> int | None:
    """Status code of the first response in raw bytes (None if there is no status line)."""
    m = _STATUS_LINE.match(raw)
    return int(m.group(1)) if m else None


def split_responses(raw: bytes) -> list[tuple[int, bytes, bytes]]:
    """Splits raw bytes holding consecutive responses (Content-Length, chunked or no body) into
    [(status, head, body)]. A trailing response without a complete frame is included as read."""
    out = []
    rest = raw
    while rest:
        m = _STATUS_LINE.match(rest)
        head, sep, after = rest.partition(b"\r\n\r\n")
        if not m or not sep:
            break
        status = int(m.group(1))
        length = None
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    length = 0
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if status in (204, 304) or 100 <= status < 200:
            length = 0
        if chunked:
            body = bytearray()
            pos = 0
            while True:
                eol = after.find(b"\r\n", pos)
                if eol < 0:
                    pos = len(after)
                    break
                size = int(after[pos:eol].split(b";")[0] or b"0", 16)
                pos = eol + 2
                if size == 0:
                    end = after.find(b"\r\n\r\n", pos - 2)
                    pos = len(after) if end < 0 else end + 4
                    break
                body += after[pos:pos + size]
                pos += size + 2
            out.append((status, head, bytes(body)))
            rest = after[pos:]
        elif length is None:
            out.append((status, head, after))  # until close
            rest = b""
        else:
            out.append((status, head, after[:length]))
            rest = after[length:]
    return out


def count_responses(raw: bytes) -> int:
    return len(split_responses(raw))


def curl(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Runs curl with a bounded time; returns the CompletedProcess (text mode)."""
    return subprocess.run(["curl", "--max-time", str(int(timeout)), *args], capture_output=True,
                          text=True, timeout=timeout + 5)


_METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> list[tuple[str, dict, float]]:
    """Samples of a Prometheus text exposition: [(name, labels, value)]."""
    samples = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _METRIC_LINE.match(line)
        if not m:
            continue
        labels = {k: v for k, v in _LABEL.findall(m.group(2) or "")}
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        samples.append((m.group(1), labels, value))
    return samples


def metric_sum(samples, name: str, **labels) -> float:
    """Sum of the samples named `name` whose labels include `labels`."""
    return sum(v for n, l, v in samples
               if n == name and all(l.get(k) == str(val) for k, val in labels.items()))


def rss_kb(pid: int) -> int:
    """VmRSS of a process in KiB (from /proc/<pid>/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssSampler:
    """Samples VmRSS of a PID every `interval` seconds in a thread; max_kb is the peak seen."""

    def __init__(self, pid: int, interval: float = 0.02):
        self.pid = pid
        self.interval = interval
        self.max_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.max_kb = max(self.max_kb, rss_kb(self.pid))
            except OSError:
                return
            self._stop.wait(self.interval)

    def __enter__(self):
        self.max_kb = rss_kb(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=2)
        try:
            self.max_kb = max(self.max_kb, rss_kb(self.pid))
        except OSError:
            pass


# ------------------------------------------------------------------------------------ upstream server

_SPECIAL_PATHS = [re.compile(r"/(status|delay|bytes)/(\d+)$"), re.compile(r"/(chunked)(?:/(\d+))?$"),
                  re.compile(r"/(response-headers)()$")]


def _special_path(path: str):
    for pattern in _SPECIAL_PATHS:
        found = pattern.search(path)
        if found:
            return found
    return None


class _EchoHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "portico-test-upstream"
    timeout = 60  # idle keep-alive connections from the proxy's pool end after this
    disable_nagle_algorithm = True  # small head + body writes must not wait for delayed ACKs

    def log_message(self, fmt, *args):  # quiet
        pass

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        self.conn_id = self.server.owner._new_connection(self.client_address)

    # --- body reading -------------------------------------------------------------------------

    def _read_body(self, rec: dict) -> bool:
        """Reads the request body into a hash; False when it is malformed or cut short."""
        h = hashlib.sha256()
        te = self.headers.get("Transfer-Encoding")
        cl = self.headers.get("Content-Length")
        try:
            if te is not None:
                if te.strip().lower() != "chunked":
                    return False
                while True:
                    line = self.rfile.readline(65537)
                    if not line.endswith(b"\n"):
                        return False
                    size = int(line.split(b";")[0].strip(), 16)
                    if size == 0:
                        while True:  # trailers
                            t = self.rfile.readline(65537)
                            if not t.endswith(b"\n"):
                                return False
                            if t in (b"\r\n", b"\n"):
                                break
                        break
                    remaining = size
                    while remaining:
                        data = self.rfile.read(min(remaining, 65536))
                        if not data:
                            return False
                        remaining -= len(data)
                        h.update(data)
                        rec["body_length"] += len(data)
                    if self.rfile.read(2) != b"\r\n":
                        return False
            elif cl is not None:
                remaining = int(cl)
                while remaining:
                    data = self.rfile.read(min(remaining, 65536))
                    if not data:
                        return False
                    remaining -= len(data)
                    h.update(data)
                    rec["body_length"] += len(data)
        except (ValueError, OSError):
            return False
        rec["body_sha256"] = h.hexdigest()
        return True

    # --- responses ------------------------------------------------------------------------------

    def _echo(self, rec: dict) -> dict:
        return {
            "server": self.server.owner.name,
            "method": rec["method"],
            "target": rec["target"],
            "path": rec["path"],
            "query": rec["query"],
            "headers": rec["headers"],
            "body_length": rec["body_length"],
            "body_sha256": rec["body_sha256"],
            "connection": self.conn_id,
        }

    def _send(self, status: int, body: bytes, ctype: str = "application/json", extra: list | None = None):
        self.send_response(status)
        self.send_header("X-Upstream", self.server.owner.name)
        for k, v in extra or []:
            self.send_header(k, v)
        no_body = status in (204, 304) or 100 <= status < 200
        if not no_body:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
        self._headers_buffer.append(b"\r\n")
        if not no_body and self.command != "HEAD":
            self._headers_buffer.append(body)  # head and body in one write
        self.flush_headers()

    def _handle(self):
        owner = self.server.owner
        parsed = urllib.parse.urlsplit(self.path)
        rec = {
            "method": self.command,
            "target": self.path,
            "path": parsed.path,
            "query": parsed.query,
            "request_version": self.request_version,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_length": 0,
            "body_sha256": None,
            "complete": False,
            "connection": self.conn_id,
            "received_at": time.monotonic(),
        }
        owner._record(rec)
        if not self._read_body(rec):
            self.close_connection = True
            return
        rec["complete"] = True
        rec["completed_at"] = time.monotonic()
        q = urllib.parse.parse_qs(parsed.query)
        # Special paths are recognised at the end of the path, so that they work behind prefixes.
        special = _special_path(parsed.path)
        kind = special.group(1) if special else ""
        number = int(special.group(2)) if special and special.group(2) else None
        try:
            if kind == "status":
                self._send(number, json.dumps(self._echo(rec)).encode())
            elif kind == "delay":
                time.sleep(number / 1000.0)
                self._send(200, json.dumps(self._echo(rec)).encode())
            elif kind == "bytes":
                self._send_bytes(number, q)
            elif kind == "chunked":
                self._send_chunked(100000 if number is None else number, q)
            elif kind == "response-headers":
                extra = [(k, v) for k, vs in q.items() for v in vs]
                self._send(200, json.dumps(self._echo(rec)).encode(), extra=extra)
            else:
                self._send(200, json.dumps(self._echo(rec)).encode())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send_bytes(self, n: int, q: dict):
        chunk = int(q.get("chunk", ["65536"])[0])
        pause_after = int(q.get("pause_after", ["-1"])[0])
        pause_ms = int(q.get("pause_ms", ["0"])[0])
        self.send_response(200)
        self.send_header("X-Upstream", self.server.owner.name)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(n))
        self.end_headers()
        if self.command == "HEAD":
            return
        sent = 0
        paused = False
        for c in pattern_chunks(n, chunk):
            self.wfile.write(c)
            sent += len(c)
            if not paused and pause_after >= 0 and sent >= pause_after:
                self.wfile.flush()
                time.sleep(pause_ms / 1000.0)
                paused = True

    def _send_chunked(self, n: int, q: dict):
        chunk = int(q.get("chunk", ["16384"])[0])
        self.send_response(200)
        self.send_header("X-Upstream", self.server.owner.name)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            return
        for c in pattern_chunks(n, chunk):
            self.wfile.write(b"%x\r\n" % len(c) + c + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _handle


class _ThreadingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def handle_error(self, request, client_address):  # the proxy may abort connections; stay quiet
        pass


class UpstreamServer:
    """A threaded HTTP/1.1 echo server on 127.0.0.1:<free port>, in this process.

    Answers with a JSON echo {server, method, target, path, query, headers, body_length, body_sha256,
    connection} and the response header X-Upstream: <name>. Special paths:
      /status/NNN           answer with status NNN (echo body)
      /delay/MS             sleep MS milliseconds, then echo
      /bytes/N              N bytes of the test pattern with Content-Length, in chunks of ?chunk= bytes;
                            ?pause_after=K&pause_ms=M pauses M ms after the first K bytes
      /chunked[/N]          N bytes (default 100000) of the pattern with Transfer-Encoding: chunked
      /response-headers?K=V adds each query parameter as a response header
    Every request is recorded (self.requests()), with complete=False until its body was read whole."""

    def __init__(self, name: str = "upstream", host: str = LOCALHOST, port: int = 0):
        self.name = name
        self._lock = threading.Lock()
        self._requests: list[dict] = []
        self._connections = 0
        self._server = _ThreadingServer((host, port), _EchoHandler)
        self._server.owner = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True, name=f"upstream-{name}")

    def start(self) -> "UpstreamServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _new_connection(self, addr) -> int:
        with self._lock:
            self._connections += 1
            return self._connections

    def _record(self, rec: dict) -> None:
        with self._lock:
            self._requests.append(rec)

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    def requests(self) -> list[dict]:
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reqs = self.requests()
            if len(reqs) >= n:
                return reqs
            time.sleep(0.01)
        return self.requests()


class ScriptedUpstream:
    """A raw TCP server on 127.0.0.1:<free port> whose answer to each connection is scripted:
      "garbage"  reads the request head, answers bytes that are not HTTP, closes
      "reset"    reads the request head, closes with RST (SO_LINGER 0) without answering
      "close"    reads the request head, closes cleanly without answering
      "silent"   reads the request head and never answers (closed when stopped)
      b"..."     reads the request head, sends these bytes, closes
    Records the raw bytes received per connection (self.received)."""

    def __init__(self, behaviour: str | bytes):
        self.behaviour = behaviour
        self.received: list[bytes] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((LOCALHOST, 0))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> "ScriptedUpstream":
        self._thread.start()
        return self

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, conn: socket.socket):
        conn.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data and len(data) < 65536:
                c = conn.recv(65536)
                if not c:
                    break
                data += c
        except OSError:
            pass
        with self._lock:
            self.received.append(data)
        try:
            if isinstance(self.behaviour, bytes):
                conn.sendall(self.behaviour)
                conn.close()
            elif self.behaviour == "garbage":
                conn.sendall(b"this is not http at all\r\n\r\n")
                conn.close()
            elif self.behaviour == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                conn.close()
            elif self.behaviour == "close":
                conn.close()
            else:  # silent
                with self._lock:
                    self._open.append(conn)
        except OSError:
            pass

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()
        with self._lock:
            for c in self._open:
                try:
                    c.close()
                except OSError:
                    pass


# --------------------------------------------------------------------------------------- processes

def _stop_pid(proc: subprocess.Popen, timeout: float) -> int:
    """SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit status (negative: killed by signal)."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
    return proc.returncode


def _tail(path: str, limit: int = 8000) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    return text if len(text) <= limit else "...\n" + text[-limit:]


class Nginx:
    """nginx serving `root` on 127.0.0.1:<free port> (daemon off, master_process off: one process, whose PID
    is the one we started and the one in the pid file)."""

    def __init__(self, root: str):
        self.root = root
        self.port = free_port()
        self.dir = _scratch_dir("portico-nginx-")
        self.error_log = os.path.join(self.dir, "err.log")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Nginx":
        d = self.dir
        conf = f"""
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/err.log warn;
events {{ worker_connections 512; }}
http {{
  access_log off;
  client_body_temp_path {d}/client_body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  default_type application/octet-stream;
  sendfile on;
  keepalive_requests 100000;
  server {{
    listen 127.0.0.1:{self.port};
    root {self.root};
    location / {{ }}
  }}
}}
"""
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        with open(os.path.join(d, "stderr.log"), "wb") as stderr:
            self.proc = subprocess.Popen(["nginx", "-p", d, "-e", self.error_log, "-c", path],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            wait_for_port(self.port, 10, self.proc)
        except Exception:
            self.stop()
            raise RuntimeError("nginx did not start:\n" + _tail(self.error_log) +
                               _tail(os.path.join(d, "stderr.log")))
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _stop_pid(self.proc, 5)


class Portico:
    """`portico run DIR --admin 127.0.0.1:PORT --workers N` with stderr/stdout captured to a log file."""

    def __init__(self, config_dir: str, workers: int = 2, admin_port: int | None = None,
                 extra_args: list[str] | None = None, binary: str = PORTICO_BIN):
        self.config_dir = config_dir
        self.workers = workers
        self.admin_port = admin_port or free_port()
        self.extra_args = list(extra_args or [])
        self.binary = binary
        self.log_path = os.path.join(_scratch_dir("portico-log-"), "portico.log")
        self.proc: subprocess.Popen | None = None
        self.expect_running = False

    @property
    def admin(self) -> str:
        return f"{LOCALHOST}:{self.admin_port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def command(self) -> list[str]:
        return [self.binary, "run", self.config_dir, "--admin", self.admin, "--workers", str(self.workers),
                *self.extra_args]

    def start(self, wait_ready: bool = True, ready_timeout: float = DEFAULT_READY_TIMEOUT) -> "Portico":
        if not os.access(self.binary, os.X_OK):
            raise unittest.SkipTest(f"portico binary not found at {self.binary} (set PORTICO_BIN)")
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        self.expect_running = True
        if wait_ready:
            self.wait_ready(ready_timeout)
        return self

    def wait_ready(self, timeout: float = DEFAULT_READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.expect_running = False
                raise AssertionError(f"portico exited with {self.proc.returncode} before /ready\n"
                                     f"command: {' '.join(self.command())}\n--- log ---\n{self.log()}")
            try:
                r = self.admin_get("/ready", timeout=1.0)
                if r.status == 200:
                    return
                last = f"{r.status} {r.body[:100]!r}"
            except OSError as e:
                last = repr(e)
            time.sleep(0.05)
        raise AssertionError(f"portico not ready after {timeout}s (last /ready: {last})\n"
                             f"command: {' '.join(self.command())}\n--- log ---\n{self.log()}")

    def admin_get(self, path: str, timeout: float = 5.0) -> Response:
        return request(self.admin_port, "GET", path, timeout=timeout)

    def stats(self) -> list[tuple[str, dict, float]]:
        r = self.admin_get("/stats")
        if r.status != 200:
            raise AssertionError(f"/stats answered {r.status}")
        return parse_prometheus(r.text())

    def resources(self) -> list[dict]:
        r = self.admin_get("/resources")
        if r.status != 200:
            raise AssertionError(f"/resources answered {r.status}")
        return r.json()

    def resource(self, kind: str, name: str, namespace: str = NAMESPACE) -> dict | None:
        for res in self.resources():
            if res.get("kind") == kind and res.get("name") == name and res.get("namespace") == namespace:
                return res
        return None

    def config_version(self) -> float:
        return metric_sum(self.stats(), "portico_config_version")

    def send_signal(self, sig: int) -> None:
        """Signals the process; after SIGTERM/SIGINT/SIGKILL its exit is expected, not a crash."""
        if sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
            self.expect_running = False
        os.kill(self.proc.pid, sig)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self) -> int:
        return rss_kb(self.proc.pid)

    def wait(self, timeout: float) -> int:
        """Waits for the process to exit (it was told to); returns its exit status."""
        self.expect_running = False
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> int | None:
        """Stops the process by PID. Raises if it had died while it was expected to be running."""
        if self.proc is None:
            return None
        died = self.expect_running and self.proc.poll() is not None
        self.expect_running = False
        rc = _stop_pid(self.proc, timeout)
        if died:
            raise AssertionError(f"portico died during the test with status {rc}\n--- log ---\n{self.log()}")
        return rc

    def log(self) -> str:
        return _tail(self.log_path)


def run_cli(*args: str, timeout: float = 30.0, binary: str = PORTICO_BIN) -> subprocess.CompletedProcess:
    """Runs `portico ARGS...` and returns the CompletedProcess (text)."""
    if not os.access(binary, os.X_OK):
        raise unittest.SkipTest(f"portico binary not found at {binary} (set PORTICO_BIN)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


# ------------------------------------------------------------------------------------- test base

class IntegrationTest(unittest.TestCase):
    """Base class: start_*() helpers register their cleanups on the test (or, from setUpClass, on the
    class); the log of every portico started for a failed test is printed to stderr; a test during
    which a portico process died fails."""

    _class_porticos: list = []

    @classmethod
    def setUpClass(cls):
        cls._class_porticos = []

    def setUp(self):
        self._porticos = []
        self.addCleanup(self._check_class_porticos_alive)

    def _check_class_porticos_alive(self):
        for p in type(self)._class_porticos:
            if p.expect_running and not p.alive():
                p.expect_running = False
                self.fail(f"portico died during this test with status {p.proc.returncode}\n"
                          f"--- log ---\n{p.log()}")

    def run(self, result=None):
        if result is None:
            result = self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            for p in getattr(self, "_porticos", []) + list(type(self)._class_porticos):
                sys.stderr.write(f"\n--- portico log ({' '.join(p.command())}) ---\n{p.log()}\n--- end ---\n")
        return out

    # Helpers usable as self.start_x(...) in a test, or as cls.start_x(...) from setUpClass.

    @staticmethod
    def _owner_list(owner):
        return owner._class_porticos if isinstance(owner, type) else owner._porticos

    def new_config(self) -> ConfigDir:
        return new_config(self)

    def start_upstream(self, name: str = "upstream") -> UpstreamServer:
        return start_upstream(self, name)

    def start_portico(self, config: ConfigDir, **kw) -> Portico:
        return start_portico(self, config, **kw)


def new_config(owner) -> ConfigDir:
    cfg = ConfigDir()
    _register_cleanup(owner, cfg.cleanup)
    return cfg


def start_upstream(owner, name: str = "upstream") -> UpstreamServer:
    us = UpstreamServer(name).start()
    _register_cleanup(owner, us.stop)
    return us


def start_scripted(owner, behaviour: str | bytes) -> ScriptedUpstream:
    s = ScriptedUpstream(behaviour).start()
    _register_cleanup(owner, s.stop)
    return s


def start_nginx(owner, root: str) -> Nginx:
    n = Nginx(root)
    _register_cleanup(owner, n.stop)
    return n.start()


def start_portico(owner, config: ConfigDir | str, wait_ready: bool = True, **kw) -> Portico:
    path = config.path if isinstance(config, ConfigDir) else config
    p = Portico(path, **kw)
    _register_cleanup(owner, p.stop)
    if isinstance(owner, type) or isinstance(owner, IntegrationTest):
        IntegrationTest._owner_list(owner).append(p)
    p.start(wait_ready=wait_ready)
    return p


def wait_until(fn, timeout: float, interval: float = 0.02, message: str = "condition"):
    """Calls fn() until it returns a truthy value (returned) or `timeout` passes (AssertionError with the
    last value or exception)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
            last = v
        except Exception as e:  # noqa: BLE001 - reported below
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not met within {timeout}s (last: {last!r})")
        time.sleep(interval)


def main():
    unittest.main(verbosity=2)
