"""A test double of Nomad's HTTP API for native service discovery (Nomad >= 1.3), for Portico's Nomad
discovery tests. See /work/shared/reference/hashicorp-apis.md.

What it does as Nomad does:
  - GET /v1/services (?namespace=, "*" for all): [{"Namespace", "Services": [{"ServiceName", "Tags"}]}]
  - GET /v1/service/<name> (?namespace=, default "default"): the registrations, each with ID, ServiceName,
    Namespace, NodeID, Datacenter, JobID, AllocID, Tags, Address, Port, CreateIndex, ModifyIndex. An
    unknown service answers 200 with an empty list (Nomad reads an empty iterator from its state store;
    not confirmed against a real server here: none can be installed).
  - One index that every write increments; a service keeps the index of its last change (deregistrations
    included), so X-Nomad-Index never goes back except through the restore() hook.
  - Blocking queries: ?index=N (N > 0) blocks until the index of what is read moves past N or ?wait=
    passes (Go durations; default 5m, capped at 10m, plus jitter up to wait/16).
  - Paging: ?per_page=N, ?next_token=<ID> (the first registration ID of the next page, IDs in order),
    X-Nomad-NextToken on a page that has more after it.
  - ACLs (optional, acl=True): token from X-Nomad-Token; a missing or unknown token answers
    403 "Permission denied"; tokens are granted per namespace (or "*").
  - Malformed ?index / ?wait / ?per_page: 400. ?filter is refused with 400 (not implemented here).

Test hooks (Python, and over HTTP under /_double/):
  register(service, address, port, ...)  PUT /_double/register (JSON body: ServiceName, Address, Port,
                                         Tags, Namespace, ID, AllocID, JobID, NodeID, Datacenter)
  deregister(id)                         PUT /_double/deregister/<id>
  deregister_alloc(alloc_id)             PUT /_double/deregister_alloc/<alloc id>
  promote(service, canary_tags, tags)    PUT /_double/promote (JSON: ServiceName, CanaryTags, Tags,
                                         Namespace): the canaries' registrations get the job's tags
                                         (same IDs), then the other allocations' are removed
  restore()                              PUT /_double/restore: the index goes backwards (the data re-imported
                                         in one write at index 2); parked blocking queries return at once
  fault(mode, count, path_prefix)        PUT /_double/fault?mode=500|garbage|close&count=&path=
  wait_blocked(count)                    waits until `count` blocking queries are parked
  GET /_double/state                     index, requests, blocked

Standalone: `python3 tests/support/nomad_double.py --port 0` prints the port, then serves until
SIGINT/SIGTERM. Importable: NomadDouble(...). Python 3 standard library only; binds 127.0.0.1.
"""

from __future__ import annotations

import argparse
import http.server
import json
import random
import re
import signal
import socket
import socketserver
import sys
import threading
import time
import urllib.parse
import uuid

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    if not text:
        raise ValueError("empty duration")
    if text.isdigit():  # Go durations need a unit, except "0"
        if text == "0":
            return 0.0
        raise ValueError(f"missing unit in duration {text!r}")
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            raise ValueError(f"invalid duration {text!r}")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text):
        raise ValueError(f"invalid duration {text!r}")
    return total


class NomadDouble:
    def __init__(self, acl: bool = False, datacenter: str = "dc1"):
        self.acl = acl
        self.datacenter = datacenter
        self.tokens: dict[str, set[str]] = {}  # secret -> namespaces ("*": all)
        self.cond = threading.Condition()
        self.index = 1
        self.regs: dict[str, dict] = {}  # ID -> registration
        self.service_index: dict[tuple[str, str], int] = {}  # (ns, name) -> last change
        self.requests = 0
        self.blocked = 0
        self.generation = 0  # moves on restore(): parked queries return
        self.faults: list[list] = []  # [mode, count, prefix]
        self.server = None
        self.thread = None
        self.stopped = False

    # ---- life
    def start(self, port: int = 0) -> "NomadDouble":
        double = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, payload = double.handle(self.command, self.path, self.headers, body)
                if status is None:
                    self.close_connection = True
                    return
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = _serve

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def __init__(self, *a, **kw):
                self.conns = set()
                self.conns_lock = threading.Lock()
                super().__init__(*a, **kw)

            def process_request(self, request, client_address):
                with self.conns_lock:
                    self.conns.add(request)
                super().process_request(request, client_address)

            def shutdown_request(self, request):
                with self.conns_lock:
                    self.conns.discard(request)
                super().shutdown_request(request)

            def handle_error(self, request, client_address):
                pass  # a client that hangs up (a cancelled blocking query) is no error

            def close_connections(self):
                with self.conns_lock:
                    conns, self.conns = list(self.conns), set()
                for c in conns:
                    try:
                        c.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        self.server = Server(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stops listening, ends blocking queries and closes every connection (as a killed agent)."""
        if self.server:
            with self.cond:
                self.stopped = True
                self.generation += 1
                self.cond.notify_all()
            self.server.shutdown()
            self.server.server_close()
            self.server.close_connections()
            self.server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- hooks
    def add_token(self, secret: str, namespaces=("*",)) -> None:
        with self.cond:
            self.tokens[secret] = set(namespaces)

    def register(self, service: str, address: str, port: int, tags=(), namespace: str = "default",
                 reg_id: str | None = None, alloc_id: str | None = None, job_id: str | None = None,
                 node_id: str | None = None, datacenter: str | None = None) -> str:
        alloc_id = alloc_id or str(uuid.uuid4())
        reg_id = reg_id or f"_nomad-task-{alloc_id}-group-{service}-{service}-{port}"
        with self.cond:
            self.index += 1
            old = self.regs.get(reg_id)
            if old:
                self.service_index[(old["Namespace"], old["ServiceName"])] = self.index
            self.regs[reg_id] = {
                "ID": reg_id, "ServiceName": service, "Namespace": namespace,
                "NodeID": node_id or "node-0001", "Datacenter": datacenter or self.datacenter,
                "JobID": job_id or service, "AllocID": alloc_id, "Tags": list(tags),
                "Address": address, "Port": int(port),
                "CreateIndex": old["CreateIndex"] if old else self.index, "ModifyIndex": self.index,
            }
            self.service_index[(namespace, service)] = self.index
            self.cond.notify_all()
        return reg_id

    def deregister(self, reg_id: str) -> bool:
        with self.cond:
            reg = self.regs.pop(reg_id, None)
            if reg is None:
                return False
            self.index += 1
            self.service_index[(reg["Namespace"], reg["ServiceName"])] = self.index
            self.cond.notify_all()
            return True

    def deregister_alloc(self, alloc_id: str) -> int:
        ids = [i for i, r in list(self.regs.items()) if r["AllocID"] == alloc_id]
        return sum(1 for i in ids if self.deregister(i))

    def promote(self, service: str, canary_tags, tags, namespace: str = "default") -> dict:
        """A deployment's promotion as Nomad carries it out: every registration of the service
        carrying all `canary_tags` is registered again (same ID) with the job's `tags`, one write
        each, then the registrations of the other (old) allocations are removed, one write each."""
        canary_tags = set(canary_tags)
        with self.cond:
            regs = [dict(r) for r in self.regs.values()
                    if r["ServiceName"] == service and r["Namespace"] == namespace]
        canaries = [r for r in regs if canary_tags <= set(r["Tags"])]
        old = [r for r in regs if not canary_tags <= set(r["Tags"])]
        for r in canaries:
            self.register(service, r["Address"], r["Port"], tags, namespace, r["ID"], r["AllocID"],
                          r["JobID"], r["NodeID"], r["Datacenter"])
        for r in old:
            self.deregister(r["ID"])
        return {"promoted": len(canaries), "removed": len(old)}

    def restore(self) -> int:
        with self.cond:
            self.index = 2  # the data re-imported in one write, at index 2
            self.service_index = {}
            for rid in sorted(self.regs):
                r = self.regs[rid]
                r["CreateIndex"] = r["ModifyIndex"] = self.index
                self.service_index[(r["Namespace"], r["ServiceName"])] = self.index
            self.generation += 1
            self.cond.notify_all()
            return self.index

    def fault(self, mode: str, count: int = 1, path_prefix: str = "/v1/") -> None:
        with self.cond:
            self.faults = [] if mode == "none" else [[mode, count, path_prefix]]

    def wait_blocked(self, count: int = 1, timeout: float = 5.0) -> bool:
        end = time.monotonic() + timeout
        with self.cond:
            while self.blocked < count:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True

    # ---- HTTP
    def handle(self, method: str, target: str, headers, body: bytes):
        url = urllib.parse.urlsplit(target)
        path = url.path
        params = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        q = {k: v[-1] for k, v in params.items()}
        with self.cond:
            if self.stopped:
                return None, {}, b""
            self.requests += 1
            for f in self.faults:
                if path.startswith(f[2]) and f[1] != 0:
                    if f[1] > 0:
                        f[1] -= 1
                    if f[0] == "close":
                        return None, {}, b""
                    if f[0] == "garbage":
                        return 200, {"X-Nomad-Index": str(self.index)}, b"{not json"
                    return 500, {"Content-Type": "text/plain"}, b"rpc error: injected fault"
        try:
            if path.startswith("/_double/"):
                return self._hook(method, path[len("/_double/"):], q, body)
            if method != "GET":
                return self._text(405, "Invalid method")
            if path == "/v1/services":
                return self._read(q, headers, self._list_services, None)
            m = re.fullmatch(r"/v1/service/([^/]+)", path)
            if m:
                name = urllib.parse.unquote(m.group(1))
                return self._read(q, headers, lambda ns: self._service(ns, name, q), name)
            return self._text(404, "Invalid URL")
        except ValueError as e:
            return self._text(400, str(e))

    @staticmethod
    def _text(status: int, message: str, extra=None):
        h = {"Content-Type": "text/plain"}
        h.update(extra or {})
        return status, h, message.encode()

    def _allowed(self, token: str, ns: str) -> bool:
        if not self.acl:
            return True
        granted = self.tokens.get(token)
        return granted is not None and ("*" in granted or ns in granted)

    def _read(self, q: dict, headers, run, name):
        if "filter" in q:
            return self._text(400, "filter expressions are not implemented by this double")
        ns = q.get("namespace") or "default"
        token = headers.get("X-Nomad-Token") or ""
        if self.acl and token not in self.tokens:
            return self._text(403, "Permission denied")
        if ns != "*" and not self._allowed(token, ns):
            return self._text(403, "Permission denied")
        index = 0
        if "index" in q:
            if not q["index"].isdigit():
                raise ValueError(f"Invalid index: {q['index']!r}")
            index = int(q["index"])
        wait = 300.0
        if "wait" in q:
            wait = min(parse_duration(q["wait"]), 600.0)
        wait += random.uniform(0, wait / 16) if wait > 0 else 0

        def current() -> int:
            if name is None:
                vals = [i for (n, _), i in self.service_index.items()
                        if (ns == "*" and self._allowed(token, n)) or n == ns]
            else:
                vals = [i for (n, s), i in self.service_index.items() if s == name and n == ns]
            return max(vals + [1])

        with self.cond:
            if index > 0:
                end = time.monotonic() + wait
                gen = self.generation
                self.blocked += 1
                self.cond.notify_all()
                try:
                    while current() <= index and gen == self.generation:
                        left = end - time.monotonic()
                        if left <= 0:
                            break
                        self.cond.wait(left)
                finally:
                    self.blocked -= 1
            if self.stopped:
                return None, {}, b""  # a killed agent answers nothing
            idx = current()
            status, extra, payload = run(ns if name is not None else (ns, token))
        h = {"Content-Type": "application/json", "X-Nomad-Index": str(idx),
             "X-Nomad-KnownLeader": "true", "X-Nomad-LastContact": "0"}
        h.update(extra)
        return status, h, json.dumps(payload).encode()

    def _list_services(self, arg):
        ns, token = arg
        out: dict[str, dict[str, set]] = {}
        for r in self.regs.values():
            if (ns == "*" and self._allowed(token, r["Namespace"])) or r["Namespace"] == ns:
                out.setdefault(r["Namespace"], {}).setdefault(r["ServiceName"], set()).update(r["Tags"])
        return 200, {}, [{"Namespace": n, "Services": [{"ServiceName": s, "Tags": sorted(t)}
                                                       for s, t in sorted(svcs.items())]}
                         for n, svcs in sorted(out.items())]

    def _service(self, ns: str, name: str, q: dict):
        regs = sorted((r for r in self.regs.values() if r["ServiceName"] == name
                       and (ns == "*" or r["Namespace"] == ns)), key=lambda r: r["ID"])
        per_page = 0
        if "per_page" in q:
            if not q["per_page"].isdigit():
                raise ValueError(f"Invalid per_page: {q['per_page']!r}")
            per_page = int(q["per_page"])
        nxt = q.get("next_token") or ""
        if nxt:
            regs = [r for r in regs if r["ID"] >= nxt]
        extra = {}
        if per_page and len(regs) > per_page:
            extra["X-Nomad-NextToken"] = regs[per_page]["ID"]
            regs = regs[:per_page]
        return 200, extra, [dict(r) for r in regs]

    def _hook(self, method: str, what: str, q: dict, body: bytes):
        if what == "register":
            d = json.loads(body or b"{}")
            rid = self.register(d["ServiceName"], d.get("Address", "127.0.0.1"), int(d["Port"]),
                                d.get("Tags") or (), d.get("Namespace") or "default", d.get("ID"),
                                d.get("AllocID"), d.get("JobID"), d.get("NodeID"), d.get("Datacenter"))
            return 200, {"Content-Type": "application/json"}, json.dumps({"ID": rid}).encode()
        if what.startswith("deregister/"):
            ok = self.deregister(urllib.parse.unquote(what[len("deregister/"):]))
            return 200, {}, json.dumps(ok).encode()
        if what.startswith("deregister_alloc/"):
            n = self.deregister_alloc(urllib.parse.unquote(what[len("deregister_alloc/"):]))
            return 200, {}, json.dumps(n).encode()
        if what == "promote":
            d = json.loads(body or b"{}")
            out = self.promote(d["ServiceName"], d.get("CanaryTags") or (), d.get("Tags") or (),
                               d.get("Namespace") or "default")
            return 200, {"Content-Type": "application/json"}, json.dumps(out).encode()
        if what == "restore":
            return 200, {}, json.dumps(self.restore()).encode()
        if what == "fault":
            self.fault(q.get("mode", "500"), int(q.get("count", "1")), q.get("path", "/v1/"))
            return 200, {}, b"true"
        if what == "state":
            with self.cond:
                s = {"index": self.index, "requests": self.requests, "blocked": self.blocked}
            return 200, {"Content-Type": "application/json"}, json.dumps(s).encode()
        return self._text(404, "unknown hook")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--acl-token", action="append", default=[],
                    help="enable ACLs; a token allowed in every namespace")
    args = ap.parse_args()
    double = NomadDouble(acl=bool(args.acl_token))
    for t in args.acl_token:
        double.add_token(t)
    double.start(args.port)
    print(double.port, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    # A wait with a timeout, not done.wait(): CPython runs a signal handler only when the main
    # thread runs bytecode, and a SIGTERM taken while it sleeps in an untimed wait could leave it
    # asleep for good (seen: the Kubernetes double hung at exit once in ~6 runs, and its test
    # waited for it forever).
    while not done.wait(0.2):
        pass
    double.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
