"""A test double of Consul's HTTP API (KV, catalog, health, agent registration, ACL tokens), with Consul's
semantics rather than canned answers, for Portico's Consul KV storage and Consul catalog discovery tests.

What it does as Consul does (see /work/shared/reference/hashicorp-apis.md and Consul's API documentation):
  - One raft-like index per datacenter that every write request increments (KV put/delete, also a failed
    CAS or a delete of nothing; registration, deregistration, check updates). Tables keep the index of
    their last real change; every read answers X-Consul-Index with the index of what it read (a key's
    ModifyIndex, a prefix's highest ModifyIndex or tombstone, a service's last change), at least 1, and
    X-Consul-KnownLeader / X-Consul-LastContact / X-Consul-Effective-Consistency.
  - Blocking queries: `?index=N` (N > 0) blocks until the index of what the query reads moves past N or
    `?wait=` passes (Go durations: "5s", "100ms", "1m30s"; default 5m, capped at 10m) plus a random jitter
    of up to wait/16; then the current result is returned (a return does not promise a change). A snapshot
    restore ends every blocking query at once (Consul abandons them), with the new, possibly lower, index.
  - KV: GET one key / ?recurse / ?keys (&separator=) / ?raw; 404 (with X-Consul-Index) when absent;
    PUT (value = body bytes, ?flags=, ?cas=: 0 creates only when absent, N updates only when ModifyIndex is
    N) -> true|false; DELETE (?recurse, ?cas= -> true|false); values base64 in JSON; Flags, CreateIndex,
    ModifyIndex, LockIndex; deletes leave tombstones so a prefix's index never goes back.
  - Catalog: /v1/catalog/datacenters, /v1/catalog/nodes, /v1/catalog/services, /v1/catalog/service/<name>
    (?tag=, repeatable), /v1/catalog/node/<node>, PUT /v1/catalog/register and /v1/catalog/deregister.
    The agent's node carries the "consul" service, as a server's does.
  - Health: /v1/health/service/<name> (?passing, ?tag=), /v1/health/checks/<service>,
    /v1/health/state/<state>, /v1/health/node/<node>; each node has its serfHealth check; ?passing keeps
    instances whose every check (node and service) passes (warning is not passing).
  - Agent: PUT /v1/agent/service/register (field names in any case, as Consul accepts; Check/Checks with
    TTL, HTTP, TCP... definitions; a check starts critical unless it names its Status; a TTL check goes
    critical when its TTL runs out), /v1/agent/service/deregister/<id>, /v1/agent/service/maintenance/<id>,
    /v1/agent/check/register, /deregister/<id>, /pass|warn|fail/<id> (?note=) and /update/<id> (TTL checks
    only, as Consul; deregister and pass|warn|fail also by GET, as Consul before 1.0 took them and
    python3-consul 0.7 sends them), GET /v1/agent/services, /v1/agent/checks, /v1/agent/self; /v1/status/leader.
  - ?dc=: an unknown datacenter answers 500 "No path to datacenter"; each datacenter has its own data and
    index. ?stale / ?consistent (both: 400). Malformed ?index / ?wait: 400. ?filter, ?near, ?node-meta,
    ?cached and ?peer are refused with 400 (not implemented here: never silently ignored); ?ns and
    ?partition other than "default" answer 400 as Consul's open-source edition does.
  - ACLs (optional, `acl=True`): the token comes from X-Consul-Token, `Authorization: Bearer`, or ?token=
    (older clients such as python3-consul send that). An unknown token answers 403 "ACL not found"; a known
    one without the right answers 403 "Permission denied" for single reads and writes, while lists
    (?recurse, ?keys, catalog and health lists) are filtered, as Consul does, with
    X-Consul-Results-Filtered-By-ACLs: true. No token means the anonymous token (default policy deny).
    Rules per token: {"key_prefix": {"gloo/": "write"}, "service_prefix": {"": "read"},
    "node_prefix": {"": "read"}} (longest prefix wins; exact "key"/"service"/"node" maps too), or
    management=True.

Test hooks (Python methods, and the same over HTTP under /_double/ for a double in another process):
  restore(reindex=True)             the index goes backwards, as after a snapshot restore: the same data
                                    re-imported from index 1 (or restore(snapshot=s) with s = snapshot():
                                    that older data); every blocking query parked returns at once (one
                                    that arrives later with an older, higher index blocks for its wait,
                                    as with Consul)
  wait_blocked(count)               waits until `count` blocking queries are parked (a client watching)
  fault(mode, count, path_prefix)   the next `count` requests (-1: all until fault("none")) whose path starts
                                    with path_prefix answer mode "500" (500 with a body), "garbage" (200 with
                                    an X-Consul-Index and a body that is not JSON) or "close" (the connection
                                    is closed without an answer)
  delay(seconds, path_prefix)       every answer waits that long first (0: none)
  set_check(check_id, status, ...)  any check's status (Consul lets only TTL checks be updated over HTTP)
  HTTP: PUT /_double/restore[?snapshot=0], PUT /_double/fault?mode=&count=&path=, PUT /_double/delay?seconds=,
        PUT /_double/check/<id>?status=&output=&node=&dc=, GET /_double/state (indices, request counts).

Standalone: `python3 tests/support/consul_double.py --port 0 [--dc dc1 --dc dc2] [--acl-master-token T]`
prints the port it listens on (one line), then serves until SIGINT/SIGTERM. Importable: ConsulDouble(...).
Python 3 standard library only; binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import argparse
import base64
import copy
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

MAX_WAIT = 600.0          # Consul caps ?wait at 10 minutes
DEFAULT_WAIT = 300.0      # and waits 5 minutes when none is given
MAX_VALUE_BYTES = 512 * 1024
STATUSES = ("passing", "warning", "critical")

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0,
                   "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in a Go duration ("5s", "100ms", "1m30s", "1.5h", "0"); ValueError otherwise."""
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    sign = 1.0
    if s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m:
            raise ValueError(f"time: invalid duration {text!r}")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return sign * total


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _ci(d: dict, name: str, default=None):
    """A field of a registration body, its name in any case (Consul decodes them case-insensitively)."""
    if not isinstance(d, dict):
        return default
    if name in d:
        return d[name]
    low = name.lower()
    for k, v in d.items():
        if isinstance(k, str) and k.lower() == low:
            return v
    # Consul also accepts snake_case for some (enable_tag_override, deregister_critical_service_after)
    snake = re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()
    return d.get(snake, default)


# ---------------------------------------------------------------------------------------------- state

# The fields by which Consul tells a check written again from a changed one (HealthCheck.IsSame).
_CHECK_SAME = ("Node", "CheckID", "Name", "Status", "Notes", "Output", "ServiceID", "ServiceName",
               "ServiceTags", "Type")


class Datacenter:
    """The data of one datacenter: its raft index, KV (with tombstones) and catalog (nodes, services,
    checks). Guarded by ConsulDouble's lock."""

    def __init__(self, name: str):
        self.name = name
        self.index = 0            # raft index: every write increments it
        self.kv: dict[str, dict] = {}
        self.tombstones: dict[str, int] = {}   # key -> index of its deletion
        self.kvs_index = 0        # the KV table's last change
        self.nodes: dict[str, dict] = {}
        self.services: dict[tuple[str, str], dict] = {}   # (node, service id) -> service
        self.checks: dict[tuple[str, str], dict] = {}     # (node, check id) -> check
        self.nodes_index = 0
        self.services_index = 0
        self.checks_index = 0
        self.service_index: dict[str, int] = {}  # service name -> its last change (instances, checks)

    def next_index(self) -> int:
        self.index += 1
        return self.index

    def catalog_index(self) -> int:
        return max(self.nodes_index, self.services_index, self.checks_index)

    def touch_service(self, name: str, idx: int) -> None:
        self.service_index[name] = idx

    def touch_node_services(self, node: str, idx: int) -> None:
        for (n, _), s in self.services.items():
            if n == node:
                self.service_index[s["Service"]] = idx


class Token:
    def __init__(self, secret: str, rules: dict | None = None, management: bool = False):
        self.secret = secret
        self.rules = rules or {}
        self.management = management

    def allows(self, resource: str, name: str, access: str) -> bool:
        """resource: "key", "service", "node"; access: "read" or "write"."""
        if self.management:
            return True
        exact = self.rules.get(resource, {})
        if name in exact:
            policy = exact[name]
        else:
            policy, best = None, -1
            for prefix, p in self.rules.get(resource + "_prefix", {}).items():
                if name.startswith(prefix) and len(prefix) > best:
                    policy, best = p, len(prefix)
        if policy is None or policy == "deny":
            return False
        if access == "read":
            return policy in ("read", "write", "list")
        return policy == "write"


class Query:
    """The parsed request: path, query parameters, token, blocking parameters."""

    def __init__(self, method: str, target: str, headers, body: bytes):
        self.method = method
        parts = urllib.parse.urlsplit(target)
        self.path = urllib.parse.unquote(parts.path)
        self.params: dict[str, list[str]] = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        self.headers = headers
        self.body = body

    def has(self, name: str) -> bool:
        return name in self.params

    def get(self, name: str, default: str | None = None) -> str | None:
        v = self.params.get(name)
        return v[0] if v else default

    def all(self, name: str) -> list[str]:
        return self.params.get(name, [])

    def token(self) -> str:
        t = self.headers.get("X-Consul-Token")
        if t:
            return t.strip()
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return self.get("token", "") or ""

    def uint(self, name: str, message: str) -> int | None:
        v = self.get(name)
        if v is None:
            return None
        if not re.fullmatch(r"\d+", v or ""):
            raise ApiError(400, message)
        return int(v)


class Result:
    def __init__(self, status: int = 200, body=None, index: int | None = None, raw: bytes | None = None,
                 headers: dict | None = None):
        self.status = status
        self.body = body
        self.index = index
        self.raw = raw
        self.headers = headers or {}


# ----------------------------------------------------------------------------------------------- double

class ConsulDouble:
    def __init__(self, datacenters=("dc1",), node_name: str = "node1", acl: bool = False,
                 master_token: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 consul_service: bool = True, ttl_expiry: bool = True):
        if not datacenters:
            raise ValueError("at least one datacenter")
        self.local_dc = datacenters[0]
        self.node_name = node_name
        self.node_id = str(uuid.uuid4())
        self.acl = acl or master_token is not None
        self.tokens: dict[str, Token] = {}
        self.anonymous = Token("anonymous")
        if master_token:
            self.tokens[master_token] = Token(master_token, management=True)
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.dcs: dict[str, Datacenter] = {name: Datacenter(name) for name in datacenters}
        self.generation = 0       # bumped by restore(): ends blocking queries
        self.stopping = False
        self.requests: list[tuple[str, str]] = []   # (method, path with query) of every request
        self.blocking_started = 0
        self.blocked_now = 0      # blocking queries parked at this moment
        self._faults: list[dict] = []
        self._delay = (0.0, "")
        self._ttl_expiry = ttl_expiry
        self._ttl_deadline: dict[tuple[str, str, str], float] = {}  # (dc, node, check) -> monotonic
        for name in datacenters:
            self._add_node(self.dcs[name], node_name if name == self.local_dc else f"{node_name}-{name}",
                           "127.0.0.1", node_id=self.node_id if name == self.local_dc else None)
            if consul_service:
                node = node_name if name == self.local_dc else f"{node_name}-{name}"
                self._register_instance(self.dcs[name], node, {"ID": "consul", "Service": "consul",
                                                               "Port": 8300, "Tags": []}, [])
        self._server = _Server((host, port), _Handler)
        self._server.double = self
        self.host = host
        self.port = self._server.server_address[1]
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ life

    @property
    def address(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "ConsulDouble":
        t = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                             daemon=True)
        t.start()
        self._threads.append(t)
        if self._ttl_expiry:
            r = threading.Thread(target=self._ttl_reaper, daemon=True)
            r.start()
            self._threads.append(r)
        return self

    def stop(self) -> None:
        """Stops listening, ends blocking queries and closes every connection (as a killed agent)."""
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------ hooks

    def add_token(self, secret: str, rules: dict | None = None, management: bool = False) -> None:
        with self.lock:
            self.tokens[secret] = Token(secret, rules, management)

    def remove_token(self, secret: str) -> None:
        with self.lock:
            self.tokens.pop(secret, None)

    def set_anonymous_rules(self, rules: dict) -> None:
        with self.lock:
            self.anonymous = Token("anonymous", rules)

    def fault(self, mode: str, count: int = 1, path_prefix: str = "/v1/") -> None:
        """mode "500", "garbage", "close" or "none" (clears every fault)."""
        if mode not in ("500", "garbage", "close", "none"):
            raise ValueError(f"unknown fault mode {mode!r}")
        with self.lock:
            if mode == "none":
                self._faults.clear()
            else:
                self._faults.append({"mode": mode, "count": count, "path": path_prefix})

    def delay(self, seconds: float, path_prefix: str = "/v1/") -> None:
        with self.lock:
            self._delay = (max(0.0, seconds), path_prefix)

    def snapshot(self, dc: str | None = None) -> Datacenter:
        with self.lock:
            return copy.deepcopy(self.dcs[dc or self.local_dc])

    def restore(self, snapshot: Datacenter | None = None, dc: str | None = None) -> int:
        """The index goes backwards, as after `consul snapshot restore`: with `snapshot`, that older state
        comes back; without, the current data is re-imported with every index renumbered from 1 (same
        keys, values and services, lower indices). Blocking queries return at once. Returns the new index."""
        with self.cond:
            name = dc or self.local_dc
            if snapshot is not None:
                new = copy.deepcopy(snapshot)
                new.name = name
            else:
                new = self._reindexed(self.dcs[name])
            self.dcs[name] = new
            self.generation += 1
            self.cond.notify_all()
            return new.index

    def set_check(self, check_id: str, status: str, output: str = "", node: str | None = None,
                  dc: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        with self.cond:
            d = self.dcs[dc or self.local_dc]
            key = (node or self._node_of(d), check_id)
            if key not in d.checks:
                raise KeyError(f"no check {check_id!r} on node {key[0]!r}")
            self._update_check(d, key, status, output)
            self.cond.notify_all()

    def wait_blocked(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Waits until `count` blocking queries are parked (a client is watching); False on timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.blocked_now < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True

    def index(self, dc: str | None = None) -> int:
        with self.lock:
            return self.dcs[dc or self.local_dc].index

    # Conveniences for tests (the same writes as the HTTP API's, without the ACL checks).

    def kv_put(self, key: str, value: bytes | str, flags: int = 0, dc: str | None = None) -> int:
        if isinstance(value, str):
            value = value.encode()
        with self.cond:
            d = self.dcs[dc or self.local_dc]
            self._kv_set(d, key, value, flags, None)
            self.cond.notify_all()
            return d.index

    def kv_delete(self, key: str, recurse: bool = False, dc: str | None = None) -> int:
        with self.cond:
            d = self.dcs[dc or self.local_dc]
            self._kv_delete(d, key, recurse, None)
            self.cond.notify_all()
            return d.index

    def kv_get(self, key: str, dc: str | None = None) -> bytes | None:
        with self.lock:
            e = self.dcs[dc or self.local_dc].kv.get(key)
            return e["Value"] if e else None

    def register(self, service: str, port: int, address: str = "", service_id: str | None = None,
                 tags=(), meta: dict | None = None, node: str | None = None, node_address: str = "127.0.0.1",
                 status: str | None = "passing", dc: str | None = None) -> str:
        """Registers an instance through the catalog (on `node`, created if new; the agent's node by
        default), with one check of `status` (None: no check). Returns the service ID."""
        with self.cond:
            d = self.dcs[dc or self.local_dc]
            node = node or self._node_of(d)
            if node not in d.nodes:
                self._add_node(d, node, node_address)
            sid = service_id or service
            checks = []
            if status is not None:
                checks.append({"CheckID": f"service:{sid}", "Name": f"Service '{service}' check",
                               "Status": status, "Type": "ttl"})
            self._register_instance(d, node, {"ID": sid, "Service": service, "Port": port,
                                              "Address": address, "Tags": list(tags), "Meta": meta or {}},
                                    checks)
            self.cond.notify_all()
            return sid

    def register_many(self, instances: list[dict], status: str = "passing", dc: str | None = None) -> int:
        """Registers many instances on the agent's node in one write (a benchmark's preload: register()
        scans the checks for each). Each instance: {"Service", "ID", "Address", "Port", "Tags"?}; each
        gets one check "service:<ID>" of `status`. Returns the index of the write."""
        with self.cond:
            d = self.dcs[dc or self.local_dc]
            node = self._node_of(d)
            idx = d.next_index()
            for inst in instances:
                record = {"ID": inst["ID"], "Service": inst["Service"], "Tags": list(inst.get("Tags") or []),
                          "Address": inst.get("Address") or "", "Meta": {}, "Port": int(inst["Port"]),
                          "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": False,
                          "CreateIndex": idx, "ModifyIndex": idx}
                d.services[(node, inst["ID"])] = record
                rec = self._check_record(d, node, {"CheckID": f"service:{inst['ID']}", "Status": status,
                                                   "Name": f"Service '{inst['Service']}' check", "Type": "ttl"},
                                         record, idx)
                d.checks[(node, rec["CheckID"])] = rec
                d.touch_service(inst["Service"], idx)
            d.services_index = d.checks_index = idx
            self.cond.notify_all()
            return idx

    def deregister(self, service_id: str, node: str | None = None, dc: str | None = None) -> None:
        with self.cond:
            d = self.dcs[dc or self.local_dc]
            self._deregister_instance(d, node or self._node_of(d), service_id)
            self.cond.notify_all()

    # ------------------------------------------------------------------ internals (lock held)

    def _node_of(self, d: Datacenter) -> str:
        return self.node_name if d.name == self.local_dc else f"{self.node_name}-{d.name}"

    def _add_node(self, d: Datacenter, node: str, address: str, node_id: str | None = None,
                  meta: dict | None = None, tagged: dict | None = None) -> None:
        idx = d.next_index()
        prior = d.nodes.get(node)
        d.nodes[node] = {
            "ID": node_id or (prior["ID"] if prior else str(uuid.uuid4())),
            "Node": node, "Address": address, "Datacenter": d.name,
            "TaggedAddresses": tagged or {"lan": address, "wan": address},
            "Meta": meta or {"consul-network-segment": ""},
            "CreateIndex": prior["CreateIndex"] if prior else idx, "ModifyIndex": idx,
        }
        d.nodes_index = idx
        d.touch_node_services(node, idx)
        if (node, "serfHealth") not in d.checks:
            d.checks[(node, "serfHealth")] = self._check_record(
                d, node, {"CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing",
                          "Output": "Agent alive and reachable", "Type": ""}, None, idx)
            d.checks_index = idx

    def _check_record(self, d: Datacenter, node: str, c: dict, service: dict | None, idx: int) -> dict:
        ttl = _ci(c, "TTL")
        ctype = _ci(c, "Type") or ""
        if not ctype:
            for kind in ("TTL", "HTTP", "TCP", "GRPC", "Args", "Script", "DockerContainerID", "AliasService"):
                if _ci(c, kind):
                    ctype = {"Args": "script", "DockerContainerID": "docker", "AliasService": "alias"}.get(
                        kind, kind.lower())
                    break
        status = _ci(c, "Status") or "critical"
        if status not in STATUSES:
            raise ApiError(400, f"Invalid check status: \"{status}\"")
        rec = {
            "Node": node, "CheckID": _ci(c, "CheckID") or _ci(c, "ID"), "Name": _ci(c, "Name") or "",
            "Status": status, "Notes": _ci(c, "Notes") or "", "Output": _ci(c, "Output") or "",
            "ServiceID": service["ID"] if service else "", "ServiceName": service["Service"] if service else "",
            "ServiceTags": list(service["Tags"]) if service else [], "Type": ctype, "Definition": {},
            "CreateIndex": idx, "ModifyIndex": idx,
        }
        if ttl:
            try:
                seconds = parse_duration(str(ttl))
            except ValueError:
                raise ApiError(400, f"Invalid check: TTL {ttl!r}")
            rec["_ttl"] = seconds
            self._ttl_deadline[(d.name, node, rec["CheckID"])] = time.monotonic() + seconds
        return rec

    def _register_instance(self, d: Datacenter, node: str, svc: dict, checks: list[dict],
                           replace_checks: bool = True) -> None:
        idx = d.next_index()
        key = (node, svc["ID"])
        prior = d.services.get(key)
        record = {
            "ID": svc["ID"], "Service": svc["Service"], "Tags": list(svc.get("Tags") or []),
            "Address": svc.get("Address") or "", "Meta": dict(svc.get("Meta") or {}),
            "Port": int(svc.get("Port") or 0),
            "Weights": svc.get("Weights") or {"Passing": 1, "Warning": 1},
            "EnableTagOverride": bool(svc.get("EnableTagOverride", False)),
            "CreateIndex": prior["CreateIndex"] if prior else idx, "ModifyIndex": idx,
        }
        if prior and prior["Service"] != record["Service"]:
            d.touch_service(prior["Service"], idx)
        d.services[key] = record
        d.services_index = idx
        d.touch_service(record["Service"], idx)
        # As Consul's state store: a check written again unchanged keeps its ModifyIndex and does not
        # move the checks table's index (re-registering an instance at a new address changes no check).
        checks_changed = False
        before = {}
        if replace_checks:
            for ck in [k for k, c in d.checks.items() if k[0] == node and c["ServiceID"] == svc["ID"]]:
                before[ck] = d.checks.pop(ck)
        for c in checks:
            rec = self._check_record(d, node, c, record, idx)
            ck = (node, rec["CheckID"])
            old = d.checks.get(ck) or before.pop(ck, None)
            if old:
                rec["CreateIndex"] = old["CreateIndex"]
                if all(old.get(f) == rec.get(f) for f in _CHECK_SAME):
                    rec["ModifyIndex"] = old["ModifyIndex"]
                else:
                    checks_changed = True
            else:
                checks_changed = True
            d.checks[ck] = rec
        if before:
            checks_changed = True
        if checks_changed:
            d.checks_index = idx

    def _deregister_instance(self, d: Datacenter, node: str, service_id: str) -> bool:
        idx = d.next_index()
        svc = d.services.pop((node, service_id), None)
        if svc is None:
            return False
        for ck in [k for k, c in d.checks.items() if k[0] == node and c["ServiceID"] == service_id]:
            del d.checks[ck]
            self._ttl_deadline.pop((d.name, ck[0], ck[1]), None)
        d.services_index = idx
        d.checks_index = idx
        d.touch_service(svc["Service"], idx)
        return True

    def _update_check(self, d: Datacenter, key: tuple[str, str], status: str, output: str) -> None:
        idx = d.next_index()
        c = d.checks[key]
        if "_ttl" in c:
            self._ttl_deadline[(d.name, key[0], key[1])] = time.monotonic() + c["_ttl"]
        if c["Status"] == status and c["Output"] == output:
            return  # Consul skips the write when nothing changed
        c["Status"] = status
        c["Output"] = output
        c["ModifyIndex"] = idx
        d.checks_index = idx
        if c["ServiceName"]:
            d.touch_service(c["ServiceName"], idx)
        else:
            d.touch_node_services(key[0], idx)

    def _ttl_reaper(self) -> None:
        while True:
            time.sleep(0.1)
            with self.cond:
                if self.stopping:
                    return
                now = time.monotonic()
                changed = False
                for (dc, node, cid), deadline in list(self._ttl_deadline.items()):
                    if deadline > now:
                        continue
                    del self._ttl_deadline[(dc, node, cid)]
                    d = self.dcs.get(dc)
                    if d is None or (node, cid) not in d.checks:
                        continue
                    c = d.checks[(node, cid)]
                    if c["Status"] != "critical":
                        ttl = c.get("_ttl", 0)
                        self._update_check(d, (node, cid), "critical", f"TTL expired (last {ttl:g}s)")
                        self._ttl_deadline.pop((dc, node, cid), None)
                        changed = True
                if changed:
                    self.cond.notify_all()

    def _kv_set(self, d: Datacenter, key: str, value: bytes, flags: int, cas: int | None) -> bool:
        idx = d.next_index()   # a CAS that fails went through raft too
        prior = d.kv.get(key)
        if cas is not None:
            if cas == 0 and prior is not None:
                return False
            if cas > 0 and (prior is None or prior["ModifyIndex"] != cas):
                return False
        d.kv[key] = {"Key": key, "Value": value, "Flags": flags, "LockIndex": prior["LockIndex"] if prior else 0,
                     "CreateIndex": prior["CreateIndex"] if prior else idx, "ModifyIndex": idx}
        d.tombstones.pop(key, None)
        d.kvs_index = idx
        return True

    def _kv_delete(self, d: Datacenter, key: str, recurse: bool, cas: int | None) -> bool:
        idx = d.next_index()
        if recurse:
            doomed = [k for k in d.kv if k.startswith(key)]
        else:
            prior = d.kv.get(key)
            if cas is not None and (prior is None or prior["ModifyIndex"] != cas):
                return prior is None   # Consul: a CAS delete of an absent key succeeds
            doomed = [key] if prior is not None else []
        for k in doomed:
            del d.kv[k]
            d.tombstones[k] = idx
        if doomed:
            d.kvs_index = idx
        return True

    def _reindexed(self, old: Datacenter) -> Datacenter:
        """The same data in a fresh datacenter, imported in two transactions: the catalog at index 1, the
        KV at index 2 (tombstones are not kept). Lower than before whenever anything was written after
        start (which took indices 1 and 2)."""
        new = Datacenter(old.name)
        idx = new.next_index()
        new.nodes = {k: dict(n, CreateIndex=idx, ModifyIndex=idx) for k, n in old.nodes.items()}
        new.services = {k: dict(s, CreateIndex=idx, ModifyIndex=idx) for k, s in old.services.items()}
        new.checks = {k: dict(c, CreateIndex=idx, ModifyIndex=idx) for k, c in old.checks.items()}
        new.nodes_index = new.services_index = new.checks_index = idx
        for s in old.services.values():
            new.touch_service(s["Service"], idx)
        idx = new.next_index()
        new.kv = {k: dict(e, CreateIndex=idx, ModifyIndex=idx) for k, e in old.kv.items()}
        new.kvs_index = idx
        return new

    # ------------------------------------------------------------------ request handling

    def _dc(self, q: Query) -> Datacenter:
        name = q.get("dc") or self.local_dc
        d = self.dcs.get(name)
        if d is None:
            raise ApiError(500, "No path to datacenter")
        return d

    def _token(self, q: Query) -> Token:
        if not self.acl:
            return Token("", management=True)
        secret = q.token()
        if not secret:
            return self.anonymous
        t = self.tokens.get(secret)
        if t is None:
            raise ApiError(403, "ACL not found")
        return t

    def _take_fault(self, path: str) -> str | None:
        with self.lock:
            for f in self._faults:
                if path.startswith(f["path"]) and f["count"] != 0:
                    if f["count"] > 0:
                        f["count"] -= 1
                    mode = f["mode"]
                    self._faults = [x for x in self._faults if x["count"] != 0]
                    return mode
            return None

    def handle(self, method: str, target: str, headers, body: bytes) -> Result | str:
        """The answer to one request (a Result), or "close" to drop the connection."""
        q = Query(method, target, headers, body)
        with self.lock:
            self.requests.append((method, target))
            delay, delay_prefix = self._delay
        if q.path.startswith("/_double/"):
            return self._hook(q)
        if delay > 0 and q.path.startswith(delay_prefix):
            time.sleep(delay)
        fault = self._take_fault(q.path)
        if fault == "close":
            return "close"
        if fault == "500":
            return Result(500, raw=b"rpc error making call: injected failure (the double's fault hook)",
                          headers={"Content-Type": "text/plain; charset=utf-8"})
        try:
            res = self._route(q)
        except ApiError as e:
            res = Result(e.status, raw=e.message.encode(), headers={"Content-Type": "text/plain; charset=utf-8"})
        if fault == "garbage":
            res = Result(200, raw=b"{\"Key\": [garbage, not json <html>", index=res.index or 1)
        return res

    def _route(self, q: Query) -> Result:
        p, m = q.path, q.method
        if q.has("stale") and q.has("consistent"):
            raise ApiError(400, "Cannot specify ?stale with ?consistent, conflicting semantics.")
        # Parameters that change what Consul answers and that this double does not implement: refused
        # rather than silently ignored (a test would pass on answers Consul would not give).
        for unsupported in ("filter", "near", "node-meta", "cached", "peer"):
            if q.has(unsupported):
                raise ApiError(400, f"?{unsupported} is not implemented by the Consul double")
        if q.get("ns") not in (None, "", "default") or q.get("partition") not in (None, "", "default"):
            raise ApiError(400, "Namespaces and admin partitions are Consul Enterprise features")
        if p.startswith("/v1/kv"):
            key = p[len("/v1/kv"):]
            if key and not key.startswith("/"):
                raise ApiError(404, "404 page not found")
            key = key[1:]
            if m == "GET":
                return self._blocking(q, lambda d, t: self._kv_read(q, d, t, key))
            if m == "PUT":
                return self._kv_write(q, key)
            if m == "DELETE":
                return self._kv_remove(q, key)
            raise ApiError(405, f"method {m} not allowed")
        if p == "/v1/catalog/datacenters" and m == "GET":
            return Result(200, sorted(self.dcs))
        if p == "/v1/catalog/nodes" and m == "GET":
            return self._blocking(q, self._catalog_nodes)
        if p == "/v1/catalog/services" and m == "GET":
            return self._blocking(q, self._catalog_services)
        if p.startswith("/v1/catalog/service/") and m == "GET":
            name = p[len("/v1/catalog/service/"):]
            return self._blocking(q, lambda d, t: self._catalog_service(q, d, t, name))
        if p.startswith("/v1/catalog/node/") and m == "GET":
            node = p[len("/v1/catalog/node/"):]
            return self._blocking(q, lambda d, t: self._catalog_node(d, t, node))
        if p == "/v1/catalog/register" and m == "PUT":
            return self._catalog_register(q)
        if p == "/v1/catalog/deregister" and m == "PUT":
            return self._catalog_deregister(q)
        if p.startswith("/v1/health/service/") and m == "GET":
            name = p[len("/v1/health/service/"):]
            return self._blocking(q, lambda d, t: self._health_service(q, d, t, name))
        if p.startswith("/v1/health/checks/") and m == "GET":
            name = p[len("/v1/health/checks/"):]
            return self._blocking(q, lambda d, t: self._health_checks(d, t, lambda c: c["ServiceName"] == name,
                                                                     d.service_index.get(name)))
        if p.startswith("/v1/health/node/") and m == "GET":
            node = p[len("/v1/health/node/"):]
            return self._blocking(q, lambda d, t: self._health_checks(d, t, lambda c: c["Node"] == node, None))
        if p.startswith("/v1/health/state/") and m == "GET":
            state = p[len("/v1/health/state/"):]
            if state not in STATUSES + ("any",):
                raise ApiError(400, "Invalid check state")
            return self._blocking(q, lambda d, t: self._health_checks(
                d, t, lambda c: state == "any" or c["Status"] == state, None))
        if p.startswith("/v1/agent/"):
            return self._agent(q)
        if p == "/v1/status/leader" and m == "GET":
            return Result(200, "127.0.0.1:8300")
        if p == "/v1/status/peers" and m == "GET":
            return Result(200, ["127.0.0.1:8300"])
        raise ApiError(404, "404 page not found")

    def _blocking(self, q: Query, run) -> Result:
        """Runs `run(dc, token) -> Result` and, for ?index=N (N > 0), again after every write until the
        result's index passes N, the wait (plus jitter) runs out, or a restore abandons the query."""
        min_index = q.uint("index", "Invalid index")
        wait = DEFAULT_WAIT
        if q.get("wait") is not None:
            try:
                wait = parse_duration(q.get("wait"))
            except ValueError:
                raise ApiError(400, "Invalid wait time")
            if wait < 0:
                raise ApiError(400, "Invalid wait time")
        wait = min(wait, MAX_WAIT)
        with self.cond:
            d = self._dc(q)
            token = self._token(q)
            res = run(d, token)
            if min_index:
                self.blocking_started += 1
                deadline = time.monotonic() + wait + random.uniform(0, wait / 16)
                generation = self.generation
                self.blocked_now += 1
                self.cond.notify_all()   # for wait_blocked()
                try:
                    while (res.status == 200 or res.status == 404) and (res.index or 0) <= min_index:
                        left = deadline - time.monotonic()
                        if left <= 0 or self.stopping:
                            break
                        self.cond.wait(left)
                        if self.generation != generation or self.stopping:
                            d = self._dc(q)
                            res = run(d, self._token(q))
                            break
                        d = self._dc(q)
                        res = run(d, self._token(q))
                finally:
                    self.blocked_now -= 1
        if res.index is not None and res.index < 1:
            res.index = 1
        res.headers.setdefault("X-Consul-KnownLeader", "true")
        res.headers.setdefault("X-Consul-LastContact", "0")
        res.headers.setdefault("X-Consul-Effective-Consistency",
                               "stale" if q.has("stale") else "consistent" if q.has("consistent") else "leader")
        return res

    # ------------------------------------------------------------------ KV

    @staticmethod
    def _kv_json(e: dict) -> dict:
        out = {"LockIndex": e["LockIndex"], "Key": e["Key"], "Flags": e["Flags"],
               "Value": base64.b64encode(e["Value"]).decode() if e["Value"] is not None else None,
               "CreateIndex": e["CreateIndex"], "ModifyIndex": e["ModifyIndex"]}
        return out

    def _kv_read(self, q: Query, d: Datacenter, token: Token, key: str) -> Result:
        if q.has("recurse") or q.has("keys"):
            entries = sorted((e for k, e in d.kv.items() if k.startswith(key)), key=lambda e: e["Key"])
            lindex = max((e["ModifyIndex"] for e in entries), default=0)
            if key:
                lindex = max([lindex] + [i for k, i in d.tombstones.items() if k.startswith(key)])
            else:
                lindex = d.kvs_index
            index = lindex or d.kvs_index
            visible = [e for e in entries if token.allows("key", e["Key"], "read")]
            headers = {"X-Consul-Results-Filtered-By-ACLs": "true"} if len(visible) != len(entries) else {}
            if q.has("keys"):
                sep = q.get("separator", "")
                keys: list[str] = []
                for e in visible:
                    k = e["Key"]
                    if sep:
                        cut = k.find(sep, len(key))
                        if cut >= 0:
                            k = k[:cut + len(sep)]
                    if not keys or keys[-1] != k:
                        keys.append(k)
                if not keys:
                    return Result(404, index=index, raw=b"", headers=headers)
                return Result(200, keys, index=index, headers=headers)
            if not visible:
                return Result(404, index=index, raw=b"", headers=headers)
            return Result(200, [self._kv_json(e) for e in visible], index=index, headers=headers)
        if not token.allows("key", key, "read"):
            raise ApiError(403, "Permission denied")
        e = d.kv.get(key)
        if e is None:
            return Result(404, index=d.kvs_index, raw=b"")
        if q.has("raw"):
            return Result(200, index=e["ModifyIndex"], raw=e["Value"],
                          headers={"Content-Type": "text/plain; charset=utf-8",
                                   "X-Content-Type-Options": "nosniff"})
        return Result(200, [self._kv_json(e)], index=e["ModifyIndex"])

    def _kv_write(self, q: Query, key: str) -> Result:
        if not key:
            raise ApiError(400, "Missing key name")
        for unsupported in ("acquire", "release"):
            if q.has(unsupported):
                raise ApiError(400, f"?{unsupported} (sessions) is not implemented by this double")
        flags = q.uint("flags", "Invalid flags") or 0
        cas = q.uint("cas", "Invalid cas index")
        if len(q.body) > MAX_VALUE_BYTES:
            raise ApiError(413, f"Request body({len(q.body)} bytes) too large, max size: {MAX_VALUE_BYTES} bytes.")
        with self.cond:
            d = self._dc(q)
            token = self._token(q)
            if not token.allows("key", key, "write"):
                raise ApiError(403, "Permission denied")
            ok = self._kv_set(d, key, bytes(q.body), flags, cas)
            self.cond.notify_all()
        return Result(200, ok)

    def _kv_remove(self, q: Query, key: str) -> Result:
        recurse = q.has("recurse")
        cas = q.uint("cas", "Invalid cas index")
        if not key and not recurse:
            raise ApiError(400, "Missing key name")
        if cas is not None and cas == 0:
            cas = None   # Consul ignores ?cas=0 on a delete (a 0 index never matches)
        with self.cond:
            d = self._dc(q)
            token = self._token(q)
            if recurse:
                if not token.allows("key", key, "write") or any(
                        not token.allows("key", k, "write") for k in d.kv if k.startswith(key)):
                    raise ApiError(403, "Permission denied")
            elif not token.allows("key", key, "write"):
                raise ApiError(403, "Permission denied")
            ok = self._kv_delete(d, key, recurse, cas)
            self.cond.notify_all()
        return Result(200, ok)

    # ------------------------------------------------------------------ catalog and health

    def _node_json(self, d: Datacenter, n: dict) -> dict:
        return {k: v for k, v in n.items()}

    def _lookup(self, d: Datacenter):
        """(instances by service name, checks by (node, service ID)), sorted; rebuilt after any write (every write
        moves d.index), so that reading one service out of thousands does not scan them all."""
        key = (d.index, len(d.services), len(d.checks))
        cache = getattr(d, "_lookup_cache", None)
        if cache is None or cache[0] != key:
            by_name: dict[str, list] = {}
            for k in sorted(d.services):
                by_name.setdefault(d.services[k]["Service"], []).append(k)
            by_node: dict[tuple[str, str], list] = {}   # (node, ServiceID or "") -> check keys
            for k in sorted(d.checks):
                by_node.setdefault((k[0], d.checks[k]["ServiceID"]), []).append(k)
            cache = (key, by_name, by_node)
            d._lookup_cache = cache
        return cache[1], cache[2]

    def _visible_instances(self, d: Datacenter, token: Token, name: str, tags: list[str]):
        out, filtered = [], False
        for (node, sid) in self._lookup(d)[0].get(name, []):
            s = d.services[(node, sid)]
            if s["Service"] != name or any(t not in s["Tags"] for t in tags):
                continue
            if not token.allows("service", name, "read") or not token.allows("node", node, "read"):
                filtered = True
                continue
            out.append((node, s))
        return out, filtered

    def _catalog_nodes(self, d: Datacenter, token: Token) -> Result:
        nodes = [self._node_json(d, d.nodes[n]) for n in sorted(d.nodes) if token.allows("node", n, "read")]
        headers = {"X-Consul-Results-Filtered-By-ACLs": "true"} if len(nodes) != len(d.nodes) else {}
        return Result(200, nodes, index=d.nodes_index, headers=headers)

    def _catalog_services(self, d: Datacenter, token: Token) -> Result:
        out: dict[str, list[str]] = {}
        filtered = False
        for (node, _), s in sorted(d.services.items()):
            if not token.allows("service", s["Service"], "read"):
                filtered = True
                continue
            tags = out.setdefault(s["Service"], [])
            for t in s["Tags"]:
                if t not in tags:
                    tags.append(t)
        headers = {"X-Consul-Results-Filtered-By-ACLs": "true"} if filtered else {}
        return Result(200, out, index=d.services_index, headers=headers)

    def _service_index(self, d: Datacenter, name: str) -> int:
        return d.service_index.get(name) or d.catalog_index()

    def _catalog_service(self, q: Query, d: Datacenter, token: Token, name: str) -> Result:
        instances, filtered = self._visible_instances(d, token, name, q.all("tag"))
        out = []
        for node, s in instances:
            n = d.nodes[node]
            out.append({
                "ID": n["ID"], "Node": node, "Address": n["Address"], "Datacenter": d.name,
                "TaggedAddresses": n["TaggedAddresses"], "NodeMeta": n["Meta"], "ServiceKind": "",
                "ServiceID": s["ID"], "ServiceName": s["Service"], "ServiceTags": list(s["Tags"]),
                "ServiceAddress": s["Address"], "ServiceWeights": s["Weights"], "ServiceMeta": s["Meta"],
                "ServicePort": s["Port"], "ServiceEnableTagOverride": s["EnableTagOverride"],
                "ServiceProxy": {"MeshGateway": {}, "Expose": {}}, "ServiceConnect": {},
                "CreateIndex": s["CreateIndex"], "ModifyIndex": s["ModifyIndex"],
            })
        headers = {"X-Consul-Results-Filtered-By-ACLs": "true"} if filtered else {}
        return Result(200, out, index=self._service_index(d, name), headers=headers)

    def _catalog_node(self, d: Datacenter, token: Token, node: str) -> Result:
        n = d.nodes.get(node)
        if n is None or not token.allows("node", node, "read"):
            return Result(200, None, index=d.catalog_index())
        services = {sid: self._service_json(s) for (nn, sid), s in sorted(d.services.items())
                    if nn == node and token.allows("service", s["Service"], "read")}
        return Result(200, {"Node": self._node_json(d, n), "Services": services}, index=d.catalog_index())

    @staticmethod
    def _service_json(s: dict) -> dict:
        return {"ID": s["ID"], "Service": s["Service"], "Tags": list(s["Tags"]), "Address": s["Address"],
                "Meta": s["Meta"], "Port": s["Port"], "Weights": s["Weights"],
                "EnableTagOverride": s["EnableTagOverride"], "CreateIndex": s["CreateIndex"],
                "ModifyIndex": s["ModifyIndex"]}

    @staticmethod
    def _check_json(c: dict) -> dict:
        return {k: (list(v) if isinstance(v, list) else v) for k, v in c.items() if not k.startswith("_")}

    def _health_service(self, q: Query, d: Datacenter, token: Token, name: str) -> Result:
        instances, filtered = self._visible_instances(d, token, name, q.all("tag"))
        passing = q.has("passing") and q.get("passing") not in ("0", "false")
        out = []
        for node, s in instances:
            by_node = self._lookup(d)[1]
            keys = sorted(by_node.get((node, ""), []) + by_node.get((node, s["ID"]), []))
            checks = [self._check_json(d.checks[k]) for k in keys]
            if passing and any(c["Status"] != "passing" for c in checks):
                continue
            out.append({"Node": self._node_json(d, d.nodes[node]), "Service": self._service_json(s),
                        "Checks": checks})
        headers = {"X-Consul-Results-Filtered-By-ACLs": "true"} if filtered else {}
        return Result(200, out, index=self._service_index(d, name), headers=headers)

    def _health_checks(self, d: Datacenter, token: Token, keep, index: int | None) -> Result:
        out = []
        for (node, _), c in sorted(d.checks.items()):
            if not keep(c):
                continue
            if c["ServiceName"] and not token.allows("service", c["ServiceName"], "read"):
                continue
            if not c["ServiceName"] and not token.allows("node", node, "read"):
                continue
            out.append(self._check_json(c))
        return Result(200, out, index=index or d.checks_index)

    def _catalog_register(self, q: Query) -> Result:
        body = self._json_body(q)
        node = _ci(body, "Node")
        address = _ci(body, "Address")
        if not node:
            raise ApiError(400, "Must provide node")
        if not address:
            raise ApiError(400, "Must provide address")
        with self.cond:
            dc_name = _ci(body, "Datacenter") or q.get("dc") or self.local_dc
            d = self.dcs.get(dc_name)
            if d is None:
                raise ApiError(500, "No path to datacenter")
            token = self._token(q)
            if not token.allows("node", node, "write"):
                raise ApiError(403, "Permission denied")
            prior = d.nodes.get(node)
            if prior is None or prior["Address"] != address or _ci(body, "NodeMeta") is not None:
                self._add_node(d, node, address, node_id=_ci(body, "ID"), meta=_ci(body, "NodeMeta"),
                               tagged=_ci(body, "TaggedAddresses"))
            svc = _ci(body, "Service")
            checks = list(_ci(body, "Checks") or [])
            if _ci(body, "Check"):
                checks.append(_ci(body, "Check"))
            if svc:
                s = self._service_from(svc)
                if not token.allows("service", s["Service"], "write"):
                    raise ApiError(403, "Permission denied")
                for c in checks:
                    if not _ci(c, "ServiceID") and not (_ci(c, "CheckID") or _ci(c, "ID")):
                        raise ApiError(400, "Must provide CheckID")
                self._register_instance(d, node, s, [c for c in checks if _ci(c, "ServiceID") == s["ID"]],
                                        replace_checks=False)
                checks = [c for c in checks if _ci(c, "ServiceID") != s["ID"]]
            for c in checks:
                sid = _ci(c, "ServiceID") or ""
                svc_rec = d.services.get((node, sid)) if sid else None
                if sid and svc_rec is None:
                    raise ApiError(500, f"Unknown service ID \"{sid}\" for check \"{_ci(c, 'CheckID')}\"")
                idx = d.next_index()
                rec = self._check_record(d, node, c, svc_rec, idx)
                d.checks[(node, rec["CheckID"])] = rec
                d.checks_index = idx
                if svc_rec:
                    d.touch_service(svc_rec["Service"], idx)
                else:
                    d.touch_node_services(node, idx)
            self.cond.notify_all()
        return Result(200, True)

    def _catalog_deregister(self, q: Query) -> Result:
        body = self._json_body(q)
        node = _ci(body, "Node")
        if not node:
            raise ApiError(400, "Must provide node")
        with self.cond:
            d = self.dcs.get(_ci(body, "Datacenter") or q.get("dc") or self.local_dc)
            if d is None:
                raise ApiError(500, "No path to datacenter")
            token = self._token(q)
            if not token.allows("node", node, "write"):
                raise ApiError(403, "Permission denied")
            sid, cid = _ci(body, "ServiceID"), _ci(body, "CheckID")
            if sid:
                self._deregister_instance(d, node, sid)
            elif cid:
                idx = d.next_index()
                c = d.checks.pop((node, cid), None)
                if c:
                    d.checks_index = idx
                    if c["ServiceName"]:
                        d.touch_service(c["ServiceName"], idx)
                    else:
                        d.touch_node_services(node, idx)
            else:
                idx = d.next_index()
                for (n, s) in [k for k in d.services if k[0] == node]:
                    d.touch_service(d.services.pop((n, s))["Service"], idx)
                for k in [k for k in d.checks if k[0] == node]:
                    del d.checks[k]
                if d.nodes.pop(node, None) is not None:
                    d.nodes_index = d.services_index = d.checks_index = idx
            self.cond.notify_all()
        return Result(200, True)

    @staticmethod
    def _json_body(q: Query):
        try:
            return json.loads(q.body or b"{}")
        except ValueError as e:
            raise ApiError(400, f"Request decode failed: {e}")

    def _service_from(self, body: dict) -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, "Request decode failed: service must be an object")
        name = _ci(body, "Service") or _ci(body, "Name")
        if not name:
            raise ApiError(400, "Missing service name")
        port = _ci(body, "Port") or 0
        if not isinstance(port, int) or port < 0 or port > 65535:
            raise ApiError(400, f"Invalid service port {port!r}")
        tags = _ci(body, "Tags") or []
        meta = _ci(body, "Meta") or {}
        if not isinstance(tags, list) or not isinstance(meta, dict):
            raise ApiError(400, "Request decode failed: Tags must be a list, Meta an object")
        weights = _ci(body, "Weights")
        return {"ID": _ci(body, "ID") or name, "Service": name, "Tags": tags, "Meta": meta, "Port": port,
                "Address": _ci(body, "Address") or "",
                "Weights": {"Passing": _ci(weights, "Passing", 1), "Warning": _ci(weights, "Warning", 1)}
                if weights else None,
                "EnableTagOverride": bool(_ci(body, "EnableTagOverride", False))}

    # ------------------------------------------------------------------ agent

    def _agent(self, q: Query) -> Result:
        p, m = q.path, q.method
        with self.cond:
            d = self.dcs[self.local_dc]
            node = self.node_name
            token = self._token(q)
            if p == "/v1/agent/self" and m == "GET":
                return Result(200, {"Config": {"Datacenter": self.local_dc, "NodeName": node,
                                               "NodeID": self.node_id, "Server": True, "Version": "1.15.0"},
                                    "Member": {"Name": node, "Addr": "127.0.0.1", "Port": 8301}})
            if p == "/v1/agent/services" and m == "GET":
                return Result(200, {sid: dict(self._service_json(s), Datacenter=d.name)
                                    for (n, sid), s in sorted(d.services.items())
                                    if n == node and token.allows("service", s["Service"], "read")})
            if p == "/v1/agent/checks" and m == "GET":
                return Result(200, {cid: self._check_json(c) for (n, cid), c in sorted(d.checks.items())
                                    if n == node and cid != "serfHealth"})
            if p == "/v1/agent/service/register" and m == "PUT":
                body = self._json_body(q)
                s = self._service_from(body)
                if not token.allows("service", s["Service"], "write"):
                    raise ApiError(403, "Permission denied")
                defs = list(_ci(body, "Checks") or [])
                if _ci(body, "Check"):
                    defs.insert(0, _ci(body, "Check"))
                checks = []
                for i, c in enumerate(defs, start=1):
                    if not isinstance(c, dict):
                        raise ApiError(400, "Request decode failed: a check must be an object")
                    c = dict(c)
                    if not (_ci(c, "CheckID") or _ci(c, "ID")):
                        c["CheckID"] = f"service:{s['ID']}" if len(defs) == 1 else f"service:{s['ID']}:{i}"
                    if not _ci(c, "Name"):
                        c["Name"] = f"Service '{s['Service']}' check"
                    if not any(_ci(c, k) for k in ("TTL", "HTTP", "TCP", "GRPC", "Args", "Script",
                                                   "DockerContainerID", "AliasService", "H2PING")):
                        raise ApiError(400, "Invalid check: TTL must be > 0 for TTL checks")
                    checks.append(c)
                self._register_instance(d, node, s, checks)
                self.cond.notify_all()
                return Result(200, raw=b"")
            # GET too on the agent's old verbs, as Consul before 1.0 took them (python3-consul 0.7 sends GET)
            legacy = m in ("PUT", "GET")
            if p.startswith("/v1/agent/service/deregister/") and legacy:
                sid = p[len("/v1/agent/service/deregister/"):]
                svc = d.services.get((node, sid))
                if svc is None:
                    raise ApiError(404, f"Unknown service ID \"{sid}\". Ensure that the service ID is "
                                        "passed, not the service name.")
                if not token.allows("service", svc["Service"], "write"):
                    raise ApiError(403, "Permission denied")
                self._deregister_instance(d, node, sid)
                self.cond.notify_all()
                return Result(200, raw=b"")
            if p.startswith("/v1/agent/service/maintenance/") and m == "PUT":
                sid = p[len("/v1/agent/service/maintenance/"):]
                svc = d.services.get((node, sid))
                if svc is None:
                    raise ApiError(404, f"Unknown service ID \"{sid}\"")
                enable = q.get("enable")
                if enable not in ("true", "false"):
                    raise ApiError(400, "Missing value for enable")
                cid = f"_service_maintenance:{sid}"
                idx = d.next_index()
                if enable == "true":
                    d.checks[(node, cid)] = self._check_record(
                        d, node, {"CheckID": cid, "Name": "Service Maintenance Mode", "Status": "critical",
                                  "Notes": q.get("reason") or "Maintenance mode is enabled for this service",
                                  "Type": "maintenance"}, svc, idx)
                else:
                    d.checks.pop((node, cid), None)
                d.checks_index = idx
                d.touch_service(svc["Service"], idx)
                self.cond.notify_all()
                return Result(200, raw=b"")
            if p == "/v1/agent/check/register" and m == "PUT":
                c = self._json_body(q)
                cid = _ci(c, "CheckID") or _ci(c, "ID") or _ci(c, "Name")
                if not _ci(c, "Name"):
                    raise ApiError(400, "Missing check name")
                sid = _ci(c, "ServiceID") or ""
                svc = d.services.get((node, sid)) if sid else None
                if sid and svc is None:
                    raise ApiError(400, f"ServiceID \"{sid}\" does not exist")
                c = dict(c, CheckID=cid)
                idx = d.next_index()
                d.checks[(node, cid)] = self._check_record(d, node, c, svc, idx)
                d.checks_index = idx
                if svc:
                    d.touch_service(svc["Service"], idx)
                else:
                    d.touch_node_services(node, idx)
                self.cond.notify_all()
                return Result(200, raw=b"")
            if p.startswith("/v1/agent/check/deregister/") and legacy:
                cid = p[len("/v1/agent/check/deregister/"):]
                c = d.checks.pop((node, cid), None)
                if c is None:
                    raise ApiError(404, f"Unknown check ID \"{cid}\"")
                idx = d.next_index()
                d.checks_index = idx
                if c["ServiceName"]:
                    d.touch_service(c["ServiceName"], idx)
                else:
                    d.touch_node_services(node, idx)
                self.cond.notify_all()
                return Result(200, raw=b"")
            for verb, status in (("pass", "passing"), ("warn", "warning"), ("fail", "critical"),
                                 ("update", None)):
                prefix = f"/v1/agent/check/{verb}/"
                if p.startswith(prefix) and (legacy if status else m == "PUT"):
                    cid = p[len(prefix):]
                    c = d.checks.get((node, cid))
                    if c is None:
                        raise ApiError(404, f"Unknown check ID \"{cid}\"")
                    if "_ttl" not in c:
                        raise ApiError(500, f"CheckID \"{cid}\" does not have associated TTL")
                    output = q.get("note") or ""
                    if status is None:
                        body = self._json_body(q)
                        status = _ci(body, "Status") or ""
                        output = _ci(body, "Output") or ""
                        if status not in STATUSES:
                            raise ApiError(400, f"Invalid check status: \"{status}\"")
                    self._update_check(d, (node, cid), status, output)
                    self.cond.notify_all()
                    return Result(200, raw=b"")
        raise ApiError(404, "404 page not found")

    # ------------------------------------------------------------------ HTTP hooks

    def _hook(self, q: Query) -> Result:
        p = q.path
        try:
            if p == "/_double/state":
                with self.lock:
                    return Result(200, {"datacenters": {n: {"index": d.index, "kvs_index": d.kvs_index,
                                                            "keys": sorted(d.kv)} for n, d in self.dcs.items()},
                                        "requests": len(self.requests), "blocking": self.blocking_started})
            if p == "/_double/restore":
                return Result(200, {"index": self.restore(dc=q.get("dc"))})
            if p == "/_double/fault":
                self.fault(q.get("mode", "none"), int(q.get("count", "1")), q.get("path", "/v1/"))
                return Result(200, True)
            if p == "/_double/delay":
                self.delay(float(q.get("seconds", "0")), q.get("path", "/v1/"))
                return Result(200, True)
            if p.startswith("/_double/check/"):
                self.set_check(p[len("/_double/check/"):], q.get("status", ""), q.get("output", ""),
                               q.get("node"), q.get("dc"))
                return Result(200, True)
        except (ValueError, KeyError) as e:
            return Result(400, raw=str(e).encode())
        return Result(404, raw=b"no such hook")


# ----------------------------------------------------------------------------------------------- HTTP

class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Go's listen backlog (the kernel's somaxconn), not socketserver's 5: a client opening several
    # connections at once (a list watcher and its readers) would see SYNs dropped and retried 1 s later.
    request_queue_size = 128
    double: ConsulDouble

    def __init__(self, *args, **kw):
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(*args, **kw)

    def process_request(self, request, client_address):
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "consul-double"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet
        pass

    def setup(self):
        super().setup()
        # As Go's net package (Consul) does for every TCP connection: without it, the body written
        # after the headers waits for the client's delayed ACK (~40 ms per answer on keep-alive).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        double: ConsulDouble = self.server.double
        res = double.handle(self.command, self.path, self.headers, body)
        if res == "close":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if res.raw is not None:
            payload = res.raw
            ctype = res.headers.pop("Content-Type", "application/json")
        else:
            payload = json.dumps(res.body).encode()
            ctype = res.headers.pop("Content-Type", "application/json")
        self.send_response(res.status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        if res.index is not None:
            self.send_header("X-Consul-Index", str(res.index))
        for k, v in res.headers.items():
            self.send_header(k, v)
        if double.acl:
            self.send_header("X-Consul-Default-Acl-Policy", "deny")
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    do_GET = do_PUT = do_DELETE = do_POST = do_HEAD = _serve


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=8500)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--dc", action="append", help="datacenter (repeatable; the first is the agent's)")
    ap.add_argument("--node", default="node1")
    ap.add_argument("--acl-master-token", help="enables ACLs; this token may do anything")
    ap.add_argument("--token", action="append", default=[],
                    help="SECRET=RULES_JSON: another ACL token and its rules")
    ap.add_argument("--preload", metavar="N:K",
                    help="registers N services svc-00000... with K passing instances each, at distinct "
                         "addresses 10.x.y.(j+1) and ports 20000+j (benchmarks)")
    args = ap.parse_args(argv)
    double = ConsulDouble(datacenters=tuple(args.dc or ["dc1"]), node_name=args.node,
                          master_token=args.acl_master_token, host=args.host, port=args.port)
    if args.preload:
        n, _, k = args.preload.partition(":")
        double.register_many([{"Service": f"svc-{i:05d}", "ID": f"svc-{i:05d}-{j}",
                               "Address": f"10.{(i >> 8) & 255}.{i & 255}.{j + 1}", "Port": 20000 + j}
                              for i in range(int(n)) for j in range(int(k or 1))])
    for spec in args.token:
        secret, _, rules = spec.partition("=")
        double.add_token(secret, json.loads(rules or "{}"))
    # The handlers before the port is printed: a caller may stop the double as soon as it reads it.
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    double.start()
    print(double.port, flush=True)
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
