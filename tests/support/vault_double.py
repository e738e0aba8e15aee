#!/usr/bin/env python3
"""A faithful double of HashiCorp Vault's HTTP API, for what Portico uses (its secret source) and what
the real client python3-hvac drives in tests/integration/test_vault_double.py. Python 3 standard library
only; threaded; HTTP/1.1 keep-alive; binds 127.0.0.1.

What it implements, with Vault's semantics (wire facts: /work/shared/reference/hashicorp-apis.md):
  - tokens in X-Vault-Token: unknown or expired -> 403 {"errors":["permission denied"]}; each token has
    a TTL (0: never expires, like a root token), a renewable flag and an explicit max TTL;
    GET  /v1/auth/token/lookup-self   (ttl = seconds left, renewable, expire_time, policies...)
    POST /v1/auth/token/renew-self    {"increment"}: extends to increment (else the creation TTL), never
                                      past creation + explicit max TTL (then with a warning); a token
                                      that is not renewable -> 400 "lease is not renewable"
    POST /v1/auth/token/create        {"ttl","renewable","explicit_max_ttl","policies","period"}
  - AppRole: POST /v1/auth/approle/login {role_id, secret_id} -> auth.client_token, lease_duration;
    role management (role/<name>, role/<name>/role-id, role/<name>/secret-id) so hvac can set it up.
  - KV version 2 at mounts (default "secret"):
    GET    <m>/data/<p>[?version=N]   404 {"errors":[]} when absent; a deleted or destroyed version
                                      answers 404 with {"data":{"data":null,"metadata":{...}}}
    POST|PUT <m>/data/<p>             {"data":{...},"options":{"cas":N}} -> new version (cas mismatch: 400)
    DELETE <m>/data/<p>               soft delete of the latest version
    POST   <m>/delete|undelete|destroy/<p> {"versions":[...]}
    GET    <m>/metadata/<p>           current_version, oldest_version, max_versions, versions{...}
    POST   <m>/metadata/<p>           max_versions, cas_required, custom_metadata
    DELETE <m>/metadata/<p>           every version and the metadata
    LIST   <m>/metadata/<p> (or GET ?list=true) -> {"data":{"keys":[...]}} (folders end with "/")
    GET|POST <m>/config               max_versions, cas_required
  - GET /v1/sys/health, /v1/sys/seal-status.

Test hooks (methods of VaultDouble, and over HTTP for the standalone double: POST /_double/<hook> with a
JSON body): seal() / unseal() (every /v1 call but sys answers 503 {"errors":["Vault is sealed"]}),
inject(kind, count, match) ("500", "garbage": 200 with a body that is not JSON, "close": the connection
closed without an answer) for the next `count` requests whose path contains `match`, advance(seconds)
(the double's clock: token TTLs), create_token(), put() / read_count() (requests per KV path, to check
what a client read), requests (every request: method, path).

Standalone: `python3 tests/support/vault_double.py --port 0 [--root-token T]` prints the port.
"""

from __future__ import annotations

import argparse
import datetime
import http.server
import json
import secrets as _secrets
import socketserver
import sys
import threading
import time
import urllib.parse
import uuid

LOCALHOST = "127.0.0.1"
DEFAULT_MAX_VERSIONS = 10


def _rfc3339(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class VaultError(Exception):
    def __init__(self, status: int, errors: list[str] | None = None, body: dict | None = None):
        super().__init__(status)
        self.status = status
        self.errors = errors if errors is not None else []
        self.body = body


class _Token:
    def __init__(self, tid, ttl, renewable, explicit_max_ttl, policies, period, now, meta=None,
                 path="auth/token/create"):
        self.id = tid
        self.accessor = str(uuid.uuid4())
        self.creation_ttl = ttl
        self.renewable = renewable
        self.explicit_max_ttl = explicit_max_ttl
        self.policies = policies
        self.period = period
        self.issue_time = now
        self.expire_at = now + ttl if ttl > 0 else None
        self.meta = meta
        self.path = path

    def alive(self, now) -> bool:
        return self.expire_at is None or now < self.expire_at

    def ttl_left(self, now) -> int:
        return 0 if self.expire_at is None else max(0, int(round(self.expire_at - now)))


class VaultDouble:
    def __init__(self, port: int = 0, root_token: str = "root", mounts=("secret",)):
        self.root_token = root_token
        self._lock = threading.RLock()
        self._offset = 0.0
        self.sealed = False
        self.tokens: dict[str, _Token] = {}
        self.tokens[root_token] = _Token(root_token, 0, False, 0, ["root"], 0, self.now(),
                                         path="auth/token/root")
        self.mounts: dict[str, dict] = {m: {"config": {"max_versions": 0, "cas_required": False},
                                            "keys": {}} for m in mounts}
        self.roles: dict[str, dict] = {}
        self._injections: list[dict] = []
        self.requests: list[tuple[str, str]] = []
        self._kv_reads: dict[tuple[str, str], int] = {}
        double = self

        class Handler(_Handler):
            vault = double

        self._server = _Server((LOCALHOST, port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    # ------------------------------------------------------------------------------- lifecycle
    @property
    def address(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def start(self) -> "VaultDouble":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._server.close_all()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------------------- test hooks
    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds

    def seal(self) -> None:
        with self._lock:
            self.sealed = True

    def unseal(self) -> None:
        with self._lock:
            self.sealed = False

    def inject(self, kind: str, count: int = 1, match: str = "") -> None:
        if kind not in ("500", "garbage", "close"):
            raise ValueError("kind is one of 500, garbage, close")
        with self._lock:
            self._injections.append({"kind": kind, "count": count, "match": match})

    def create_token(self, ttl: int = 0, renewable: bool = True, explicit_max_ttl: int = 0,
                     policies=("default",), token_id: str | None = None, period: int = 0) -> str:
        with self._lock:
            tid = token_id or "hvs." + _secrets.token_urlsafe(18)
            self.tokens[tid] = _Token(tid, ttl, renewable, explicit_max_ttl, list(policies), period, self.now())
            return tid

    def revoke_token(self, token: str) -> None:
        with self._lock:
            self.tokens.pop(token, None)

    def put(self, path: str, data: dict, mount: str = "secret") -> int:
        """Writes a new version of `path` (as a client would, without CAS); returns its number."""
        with self._lock:
            return self._kv_write(mount, path, {"data": data})["version"]

    def read_count(self, path: str | None = None, mount: str = "secret", kind: str | None = None) -> int:
        """Requests on a KV path (data reads and metadata reads; `kind` "data" or "metadata" for one)."""
        with self._lock:
            return sum(n for (k, p), n in self._kv_reads.items()
                       if (path is None or p == f"{mount}/{path}") and (kind is None or k == kind))

    def reset_counts(self) -> None:
        with self._lock:
            self._kv_reads.clear()
            self.requests.clear()

    def approle(self, role: str, token_ttl: int = 0, token_max_ttl: int = 0, policies=("default",)):
        """Creates an AppRole role; returns (role_id, secret_id)."""
        with self._lock:
            r = self.roles.setdefault(role, {"role_id": str(uuid.uuid4()), "secret_ids": {}})
            r.update({"token_ttl": token_ttl, "token_max_ttl": token_max_ttl, "policies": list(policies)})
            sid = str(uuid.uuid4())
            r["secret_ids"][sid] = str(uuid.uuid4())
            return r["role_id"], sid

    # ------------------------------------------------------------------------------- dispatch
    def _take_injection(self, path: str) -> str | None:
        with self._lock:
            for inj in self._injections:
                if inj["count"] > 0 and inj["match"] in path:
                    inj["count"] -= 1
                    kind = inj["kind"]
                    self._injections = [i for i in self._injections if i["count"] > 0]
                    return kind
        return None

    def handle(self, method: str, raw_path: str, headers, body: bytes):
        """Returns (status, json-or-None, extra headers)."""
        parsed = urllib.parse.urlsplit(raw_path)
        path = urllib.parse.unquote(parsed.path)
        query = urllib.parse.parse_qs(parsed.query)
        with self._lock:
            self.requests.append((method, path))
        if not path.startswith("/v1/"):
            raise VaultError(404, [])
        rest = path[len("/v1/"):]
        if method == "GET" and query.get("list", [""])[0] == "true":
            method = "LIST"
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            raise VaultError(400, ["error parsing JSON"])
        if payload is None:
            payload = {}
        with self._lock:
            if rest == "sys/health":
                code = 503 if self.sealed else 200
                return code, {"initialized": True, "sealed": self.sealed, "standby": False,
                              "version": "1.15.0-double", "server_time_utc": int(self.now())}
            if rest == "sys/seal-status":
                return 200, {"type": "shamir", "initialized": True, "sealed": self.sealed, "t": 1, "n": 1,
                             "progress": 0, "version": "1.15.0-double"}
            if self.sealed:
                raise VaultError(503, ["Vault is sealed"])
            if rest == "auth/approle/login" and method in ("POST", "PUT"):
                return 200, self._approle_login(payload)
            token = self._authorize(headers.get("X-Vault-Token", ""))
            if rest.startswith("auth/token/"):
                return 200, self._token_api(method, rest[len("auth/token/"):], token, payload)
            if rest.startswith("auth/approle/role/"):
                return self._approle_api(method, rest[len("auth/approle/role/"):], payload)
            mount, _, sub = rest.partition("/")
            if mount not in self.mounts:
                raise VaultError(404, [f'no handler for route "{rest}". route entry not found.'])
            return self._kv(method, mount, sub, query, payload)

    def _authorize(self, token_id: str) -> _Token:
        tok = self.tokens.get(token_id)
        if tok is None or not tok.alive(self.now()):
            raise VaultError(403, ["permission denied"])
        return tok

    # ------------------------------------------------------------------------------- tokens
    def _token_data(self, tok: _Token) -> dict:
        now = self.now()
        return {
            "accessor": tok.accessor, "creation_time": int(tok.issue_time), "creation_ttl": tok.creation_ttl,
            "display_name": "token", "entity_id": "", "expire_time": _rfc3339(tok.expire_at) if tok.expire_at
            else None, "explicit_max_ttl": tok.explicit_max_ttl, "id": tok.id, "issue_time": _rfc3339(tok.issue_time),
            "meta": tok.meta, "num_uses": 0, "orphan": True, "path": tok.path, "period": tok.period or None,
            "policies": tok.policies, "renewable": tok.renewable, "ttl": tok.ttl_left(now), "type": "service",
        }

    def _auth_block(self, tok: _Token, warnings=None) -> dict:
        return {"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False, "lease_duration": 0,
                "data": None, "wrap_info": None, "warnings": warnings,
                "auth": {"client_token": tok.id, "accessor": tok.accessor, "policies": tok.policies,
                         "token_policies": tok.policies, "metadata": tok.meta,
                         "lease_duration": tok.ttl_left(self.now()), "renewable": tok.renewable,
                         "entity_id": "", "token_type": "service", "orphan": True}}

    def _token_api(self, method, op, tok: _Token, payload):
        if op == "lookup-self" and method == "GET":
            return {"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False, "lease_duration": 0,
                    "data": self._token_data(tok), "wrap_info": None, "warnings": None, "auth": None}
        if op == "renew-self" and method in ("POST", "PUT"):
            if not tok.renewable or tok.expire_at is None:
                raise VaultError(400, ["lease is not renewable"])
            now = self.now()
            increment = _duration(payload.get("increment")) or tok.period or tok.creation_ttl
            new_expiry = now + increment
            warnings = None
            if tok.explicit_max_ttl and not tok.period:
                limit = tok.issue_time + tok.explicit_max_ttl
                if new_expiry > limit:
                    new_expiry = limit
                    warnings = [f"TTL of \"{increment}s\" exceeded the effective max_ttl of "
                                f"\"{int(max(0, limit - now))}s\"; TTL value is capped accordingly"]
            tok.expire_at = max(tok.expire_at, new_expiry)
            return self._auth_block(tok, warnings)
        if op == "create" and method in ("POST", "PUT"):
            tid = self.create_token(ttl=_duration(payload.get("ttl")) or 0,
                                    renewable=payload.get("renewable", True) is not False,
                                    explicit_max_ttl=_duration(payload.get("explicit_max_ttl")) or 0,
                                    policies=payload.get("policies") or tok.policies,
                                    token_id=payload.get("id"), period=_duration(payload.get("period")) or 0)
            return self._auth_block(self.tokens[tid])
        if op == "revoke-self" and method in ("POST", "PUT"):
            self.tokens.pop(tok.id, None)
            return None
        raise VaultError(405 if op in ("lookup-self", "renew-self", "create") else 404,
                         [f"unsupported operation {method} auth/token/{op}"])

    # ------------------------------------------------------------------------------- approle
    def _approle_login(self, payload):
        role_id, secret_id = payload.get("role_id", ""), payload.get("secret_id", "")
        for name, r in self.roles.items():
            if r["role_id"] != role_id:
                continue
            if secret_id not in r["secret_ids"]:
                raise VaultError(400, ["invalid role or secret ID"])
            tid = self.create_token(ttl=r["token_ttl"], renewable=True, explicit_max_ttl=r["token_max_ttl"],
                                    policies=r["policies"])
            tok = self.tokens[tid]
            tok.meta = {"role_name": name}
            tok.path = "auth/approle/login"
            return self._auth_block(tok)
        raise VaultError(400, ["invalid role or secret ID"])

    def _approle_api(self, method, rest, payload):
        name, _, op = rest.partition("/")
        if op == "" and method in ("POST", "PUT"):
            r = self.roles.setdefault(name, {"role_id": str(uuid.uuid4()), "secret_ids": {}})
            r["token_ttl"] = _duration(payload.get("token_ttl")) or 0
            r["token_max_ttl"] = _duration(payload.get("token_max_ttl")) or 0
            r["policies"] = _list(payload.get("token_policies") or payload.get("policies")) or ["default"]
            return 204, None
        r = self.roles.get(name)
        if r is None:
            raise VaultError(404, [])
        if op == "" and method == "GET":
            return 200, {"data": {"token_ttl": r["token_ttl"], "token_max_ttl": r["token_max_ttl"],
                                  "token_policies": r["policies"], "bind_secret_id": True}}
        if op == "role-id" and method == "GET":
            return 200, {"data": {"role_id": r["role_id"]}}
        if op == "secret-id" and method in ("POST", "PUT"):
            sid, accessor = str(uuid.uuid4()), str(uuid.uuid4())
            r["secret_ids"][sid] = accessor
            return 200, {"data": {"secret_id": sid, "secret_id_accessor": accessor, "secret_id_ttl": 0}}
        raise VaultError(405, [])

    # ------------------------------------------------------------------------------- KV v2
    def _max_versions(self, mount, entry):
        return entry["max_versions"] or self.mounts[mount]["config"]["max_versions"] or DEFAULT_MAX_VERSIONS

    def _version_meta(self, v):
        return {"created_time": _rfc3339(v["created"]), "custom_metadata": None,
                "deletion_time": _rfc3339(v["deleted"]) if v["deleted"] else "", "destroyed": v["destroyed"]}

    def _kv_write(self, mount, path, payload):
        keys = self.mounts[mount]["keys"]
        entry = keys.get(path)
        data = payload.get("data")
        if not isinstance(data, dict):
            raise VaultError(400, ["no data provided"])
        options = payload.get("options") or {}
        cas = options.get("cas")
        cas_required = self.mounts[mount]["config"]["cas_required"] or (entry and entry["cas_required"])
        if cas is None and cas_required:
            raise VaultError(400, ["check-and-set parameter required for this call"])
        current = entry["current_version"] if entry else 0
        if cas is not None and int(cas) != current:
            raise VaultError(400, ["check-and-set parameter did not match the current version"])
        now = self.now()
        if entry is None:
            entry = {"versions": {}, "current_version": 0, "oldest_version": 0, "max_versions": 0,
                     "cas_required": False, "custom_metadata": None, "created": now, "updated": now}
            keys[path] = entry
        n = entry["current_version"] + 1
        entry["versions"][n] = {"data": json.loads(json.dumps(data)), "created": now, "deleted": None,
                                "destroyed": False}
        entry["current_version"] = n
        entry["updated"] = now
        self._prune(mount, entry)
        if entry["oldest_version"] == 0:
            entry["oldest_version"] = min(entry["versions"])
        out = self._version_meta(entry["versions"][n])
        out["version"] = n
        return out

    def _prune(self, mount, entry):
        limit = self._max_versions(mount, entry)
        while len(entry["versions"]) > limit:
            del entry["versions"][min(entry["versions"])]
        entry["oldest_version"] = min(entry["versions"]) if entry["versions"] else 0

    def _count(self, kind, mount, path):
        k = (kind, f"{mount}/{path}")
        self._kv_reads[k] = self._kv_reads.get(k, 0) + 1

    def _kv(self, method, mount, sub, query, payload):
        op, _, path = sub.partition("/")
        keys = self.mounts[mount]["keys"]
        if op == "config":
            if method == "GET":
                return 200, {"data": dict(self.mounts[mount]["config"], delete_version_after="0s")}
            if method in ("POST", "PUT"):
                cfg = self.mounts[mount]["config"]
                if "max_versions" in payload:
                    cfg["max_versions"] = int(payload["max_versions"])
                if "cas_required" in payload:
                    cfg["cas_required"] = bool(payload["cas_required"])
                return 204, None
        if op == "data":
            if method == "GET":
                self._count("data", mount, path)
                entry = keys.get(path)
                if entry is None:
                    raise VaultError(404, [])
                try:
                    n = int(query.get("version", ["0"])[0]) or entry["current_version"]
                except ValueError:
                    raise VaultError(400, ["invalid version"])
                v = entry["versions"].get(n)
                if v is None:
                    raise VaultError(404, [])
                meta = self._version_meta(v)
                meta["version"] = n
                meta["custom_metadata"] = entry["custom_metadata"]
                if v["deleted"] or v["destroyed"]:
                    raise VaultError(404, body={"request_id": str(uuid.uuid4()), "lease_id": "",
                                                "renewable": False, "lease_duration": 0,
                                                "data": {"data": None, "metadata": meta},
                                                "wrap_info": None, "warnings": None, "auth": None})
                return 200, _wrap({"data": v["data"], "metadata": meta})
            if method in ("POST", "PUT"):
                return 200, _wrap(self._kv_write(mount, path, payload))
            if method == "DELETE":
                entry = keys.get(path)
                if entry and entry["current_version"] in entry["versions"]:
                    v = entry["versions"][entry["current_version"]]
                    v["deleted"] = v["deleted"] or self.now()
                return 204, None
        if op in ("delete", "undelete", "destroy") and method in ("POST", "PUT"):
            versions = payload.get("versions")
            if not isinstance(versions, list) or not versions:
                raise VaultError(400, ["no version number provided"])
            entry = keys.get(path)
            for n in versions:
                v = entry["versions"].get(int(n)) if entry else None
                if v is None:
                    continue
                if op == "delete":
                    v["deleted"] = v["deleted"] or self.now()
                elif op == "undelete":
                    if not v["destroyed"]:
                        v["deleted"] = None
                else:
                    v["destroyed"] = True
                    v["data"] = None
            return 204, None
        if op == "metadata":
            if method == "LIST":
                self._count("list", mount, path)
                prefix = path if path == "" or path.endswith("/") else path + "/"
                found = set()
                for k in keys:
                    if k.startswith(prefix):
                        head, slash, _ = k[len(prefix):].partition("/")
                        found.add(head + slash)
                if not found:
                    raise VaultError(404, [])
                return 200, _wrap({"keys": sorted(found)})
            entry = keys.get(path)
            if method == "GET":
                self._count("metadata", mount, path)
                if entry is None:
                    raise VaultError(404, [])
                return 200, _wrap({
                    "cas_required": entry["cas_required"], "created_time": _rfc3339(entry["created"]),
                    "current_version": entry["current_version"], "custom_metadata": entry["custom_metadata"],
                    "delete_version_after": "0s", "max_versions": entry["max_versions"],
                    "oldest_version": entry["oldest_version"], "updated_time": _rfc3339(entry["updated"]),
                    "versions": {str(n): self._version_meta(v) for n, v in sorted(entry["versions"].items())}})
            if method in ("POST", "PUT"):
                if entry is None:
                    now = self.now()
                    entry = {"versions": {}, "current_version": 0, "oldest_version": 0, "max_versions": 0,
                             "cas_required": False, "custom_metadata": None, "created": now, "updated": now}
                    keys[path] = entry
                if "max_versions" in payload:
                    entry["max_versions"] = int(payload["max_versions"])
                    self._prune(mount, entry)
                if "cas_required" in payload:
                    entry["cas_required"] = bool(payload["cas_required"])
                if "custom_metadata" in payload:
                    entry["custom_metadata"] = payload["custom_metadata"]
                return 204, None
            if method == "DELETE":
                keys.pop(path, None)
                return 204, None
        raise VaultError(405, [f"unsupported operation {method} on {mount}/{sub}"])


def _wrap(data):
    return {"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False, "lease_duration": 0,
            "data": data, "wrap_info": None, "warnings": None, "auth": None}


def _duration(v) -> int | None:
    """Vault durations: an integer (seconds) or a string "90", "90s", "5m", "1h"."""
    if v is None or v == "":
        return None
    if isinstance(v, (int, float)):
        return int(v)
    s = str(v).strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if s and s[-1] in units:
        return int(float(s[:-1]) * units[s[-1]])
    return int(float(s))


def _list(v):
    if v is None:
        return []
    if isinstance(v, str):
        return [x.strip() for x in v.split(",") if x.strip()]
    return list(v)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._conns = set()
        self._conns_lock = threading.Lock()

    def process_request(self, request, client_address):
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_all(self):
        import socket
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    vault: VaultDouble = None  # set by the subclass VaultDouble makes

    def log_message(self, fmt, *args):  # quiet
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json"):
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if status != 204:
            self.wfile.write(body)

    def _dispatch(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path
        if path.startswith("/_double/"):
            return self._hook(path[len("/_double/"):], body)
        injected = self.vault._take_injection(urllib.parse.urlsplit(path).path)
        if injected == "close":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if injected == "500":
            return self._send(500, json.dumps({"errors": ["internal error (injected)"]}).encode())
        if injected == "garbage":
            return self._send(200, b"<html>this is not JSON", "text/html")
        try:
            result = self.vault.handle(self.command, path, self.headers, body)
            status, obj = result if isinstance(result, tuple) else (200, result)
            if obj is None:
                status = 204
            self._send(status, json.dumps(obj).encode() if obj is not None else b"")
        except VaultError as e:
            self._send(e.status, json.dumps(e.body if e.body is not None else {"errors": e.errors}).encode())

    def _hook(self, name, body):
        args = json.loads(body) if body else {}
        v = self.vault
        hooks = {"seal": v.seal, "unseal": v.unseal, "advance": v.advance, "inject": v.inject,
                 "create_token": v.create_token, "put": v.put, "approle": v.approle,
                 "read_count": v.read_count, "revoke_token": v.revoke_token}
        fn = hooks.get(name)
        if fn is None:
            return self._send(404, b'{"errors":["unknown hook"]}')
        out = fn(**args)
        self._send(200, json.dumps({"result": out}).encode())

    do_GET = do_POST = do_PUT = do_DELETE = do_LIST = do_PATCH = _dispatch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--root-token", default="root")
    ap.add_argument("--mount", action="append", help="KV v2 mounts (default: secret)")
    args = ap.parse_args(argv)
    v = VaultDouble(args.port, args.root_token, tuple(args.mount or ["secret"])).start()
    print(v.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        v.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
