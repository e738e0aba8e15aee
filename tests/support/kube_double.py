"""A test double of the Kubernetes API server (plain HTTP), with the API server's semantics rather than canned
answers, for Portico's Kubernetes configuration source and driven by a real kubectl in the tests.

What it does as the API server does (Kubernetes "API concepts"):
  - Discovery: /version, /api, /api/v1, /apis, /apis/<group>, /apis/<group>/<version> (APIVersions,
    APIGroupList, APIGroup, APIResourceList with verbs, short names and the status subresource) and
    /openapi/v2 (a minimal protobuf document: kubectl's client-side validation then finds no schema and lets
    the object through; a JSON Accept gets the same document in JSON).
  - Resources: core/v1 Namespace, Secret, ServiceAccount, ConfigMap, Service; apps/v1 Deployment;
    discovery.k8s.io/v1 EndpointSlice (stored as written: no controller makes them from Services);
    rbac.authorization.k8s.io/v1 ClusterRole, ClusterRoleBinding, Role, RoleBinding;
    apiextensions.k8s.io/v1 CustomResourceDefinition (stored, not interpreted); Gloo's custom resources
    gateway.solo.io/v1 Gateway, VirtualService, RouteTable and gloo.solo.io/v1 Upstream, UpstreamGroup,
    Settings (status subresource enabled). Namespaced resources under /namespaces/<ns>/, a list across all
    namespaces without it.
  - One cluster-wide resourceVersion counter: every create, update, patch, status write and delete takes the
    next one; objects carry it in metadata.resourceVersion, lists in metadata.resourceVersion (the counter
    when the list was made). uid, creationTimestamp and generation (1 on create, +1 when anything but
    metadata and status changes) are set by the server.
  - Create (POST; 409 AlreadyExists), get, list (labelSelector k=v, k!=v, k, !k; fieldSelector
    metadata.name / metadata.namespace; pagination: ?limit=N answers N items and metadata.continue +
    remainingItemCount, ?continue= the next page of the same snapshot at the first page's resourceVersion; a
    token older than a compaction is 410 Expired), update (PUT; a stale metadata.resourceVersion is 409 Conflict, an
    empty one an unconditional update except for custom resources, where it is 422 as in Kubernetes),
    patch (application/merge-patch+json, and application/strategic-merge-patch+json read as a merge patch),
    delete (the object is returned; 404 NotFound when absent), ?dryRun=All (validated, not stored).
  - The status subresource (custom resources): PUT/PATCH .../<name>/status changes only status (and
    resourceVersion, not generation); a create, update or patch of the main resource ignores status.
  - Watch (?watch=1|true, or the old /watch/ path prefix): a chunked stream of JSON lines {"type", "object"}:
    ADDED, MODIFIED, DELETED; BOOKMARK (only with allowWatchBookmarks=true) carrying the current
    resourceVersion every `bookmark_interval` seconds and on bookmark(); resourceVersion unset or "0" starts
    with synthetic ADDED events for what exists; a resourceVersion older than the retained history (after
    compact()) answers 200 and a single ERROR event with a Status code 410 reason "Expired"
    ("too old resource version: N (M)"), as the API server's watch cache does (or an HTTP 410 Gone Status
    when `gone_as_http` is set, as a watch served from etcd directly). timeoutSeconds ends the stream.
  - Errors are Status objects (kind Status, status Failure, message, reason NotFound / AlreadyExists /
    Conflict / Gone / Expired / BadRequest / Invalid / MethodNotAllowed / Unauthorized, details, code).
  - Bearer tokens (optional, `token=`): without "Authorization: Bearer <token>" every request is 401.
  - JSON only (what kubectl and Portico send); YAML bodies are refused with 415.

Test hooks (Python methods, and over HTTP under /_double/ for a double in another process):
  compact()            forgets the event history: a watch from an older resourceVersion gets 410
  bookmark()           every open watch that asked for bookmarks gets one now
  expire_watches()     every open watch gets an ERROR event 410 "too old resource version" and ends (a watcher
                       left behind by the watch cache); resuming from an older resourceVersion is refused too
  drop_watches()       closes every open watch stream (a broken connection: clients resume)
  expire_continues(n)  the next n list requests with a continue token are answered 410 Expired
  wait_watches(n)      waits until n watch streams are open
  stop() / start()     stop listening and close every connection, then serve again on the same port with the
                       same data (an API server restarted in front of the same etcd)
  HTTP: POST /_double/compact, /_double/bookmark, /_double/expire_watches, /_double/drop_watches,
        /_double/expire_continues;
        GET /_double/state.

TLS: tls=(certificate file, key file) serves https (client_ca= requires client certificates); standalone
`--tls DIR` makes a test CA in DIR (tests/support/pki.py) and serves with a certificate it signs.

Standalone: `python3 tests/support/kube_double.py --port 0 [--token T] [--tls DIR]` prints the port it listens on (one
line), then serves until SIGINT/SIGTERM. Importable: KubeDouble(...). Python 3 standard library only; binds
127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import http.server
import json
import signal
import socket
import socketserver
import sys
import threading
import time
import urllib.parse
import uuid

# (group, version, plural, kind, namespaced, status subresource, short names)
RESOURCES = [
    ("", "v1", "namespaces", "Namespace", False, True, ["ns"]),
    ("", "v1", "secrets", "Secret", True, False, []),
    ("", "v1", "serviceaccounts", "ServiceAccount", True, False, ["sa"]),
    ("", "v1", "configmaps", "ConfigMap", True, False, ["cm"]),
    ("", "v1", "services", "Service", True, True, ["svc"]),
    ("apps", "v1", "deployments", "Deployment", True, True, ["deploy"]),
    ("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True, False, []),
    ("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, False, []),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False, False, []),
    ("rbac.authorization.k8s.io", "v1", "roles", "Role", True, False, []),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True, False, []),
    ("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False, True,
     ["crd", "crds"]),
    ("gateway.solo.io", "v1", "gateways", "Gateway", True, True, ["gw"]),
    ("gateway.solo.io", "v1", "virtualservices", "VirtualService", True, True, ["vs"]),
    ("gateway.solo.io", "v1", "routetables", "RouteTable", True, True, ["rt"]),
    ("gloo.solo.io", "v1", "upstreams", "Upstream", True, True, ["us"]),
    ("gloo.solo.io", "v1", "upstreamgroups", "UpstreamGroup", True, True, ["ug"]),
    ("gloo.solo.io", "v1", "settings", "Settings", True, True, []),
]
CORE_GROUPS = {"", "apps", "discovery.k8s.io", "rbac.authorization.k8s.io", "apiextensions.k8s.io"}
SERVER_VERSION = {"major": "1", "minor": "27", "gitVersion": "v1.27.0-portico-double", "gitCommit": "",
                  "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.20",
                  "compiler": "gc", "platform": "linux/amd64"}
# An openapi_v2.Document in protobuf with only `swagger: "2.0"` (field 1).
OPENAPI_PB = b"\x0a\x032.0"
OPENAPI_JSON = {"swagger": "2.0", "info": {"title": "kube-double", "version": "v1"}, "paths": {},
                "definitions": {}}
ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


class Res:
    def __init__(self, group, version, plural, kind, namespaced, status, short):
        self.group, self.version, self.plural, self.kind = group, version, plural, kind
        self.namespaced, self.status, self.short = namespaced, status, short
        self.custom = group not in CORE_GROUPS

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def singular(self) -> str:
        return self.kind.lower()


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details


def status_object(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
         "reason": reason, "code": code}
    if details:
        s["details"] = details
    return s


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch ("$"-directives of strategic merge patches are dropped)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$"):
            continue
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec_part(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class Watch:
    def __init__(self, res: Res, ns: str | None, selector, bookmarks: bool):
        self.res, self.ns, self.selector, self.bookmarks = res, ns, selector, bookmarks
        self.queue: list[dict] = []
        self.closed = False
        self.dropped = False  # ended by drop_watches() or stop(): cut without the final chunk
        self.deadline: float | None = None


class Result:
    def __init__(self, status=200, body=None, raw: bytes | None = None, ctype="application/json", stream=None):
        self.status, self.body, self.raw, self.ctype, self.stream = status, body, raw, ctype, stream


class KubeDouble:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 bookmark_interval: float = 5.0, gone_as_http: bool = False,
                 tls: tuple[str, str] | None = None, client_ca: str | None = None):
        self.host = host
        self.tls = tls                   # (certificate file, key file): serve https
        self.client_ca = client_ca       # with tls: require a client certificate signed by it
        self.token = token
        self.bookmark_interval = bookmark_interval
        self.gone_as_http = gone_as_http
        self.resources = [Res(*r) for r in RESOURCES]
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.rv = 1                      # the cluster-wide resourceVersion counter (last one used)
        self.objects: dict[tuple, dict] = {}    # (group, plural, ns, name) -> object
        self.history: list[tuple] = []   # (rv, type, res, ns, object) retained events
        self.compacted = 0               # events at or below this resourceVersion are forgotten
        self.watches: list[Watch] = []
        self.requests: list[tuple[str, str]] = []
        self.watch_count = 0             # watches started
        self.continues: dict[str, dict] = {}   # continue token -> {"items", "rv", "start"} of a paginated list
        self.continue_seq = 0
        self.expire_continues_left = 0   # the next N continue requests are answered 410 Expired
        self.continues_expired = 0       # continue requests answered 410
        self.list_pages = 0              # list requests served (pages)
        self.last_write = 0.0            # time.monotonic() of the last create, update or delete (not status)
        self.stopping = False
        self._server = None
        self.port = port
        self._threads: list[threading.Thread] = []
        self._bind()

    # ------------------------------------------------------------------ life

    def _bind(self):
        self._server = _Server((self.host, self.port), _Handler)
        self._server.double = self
        self.port = self._server.server_address[1]
        if self.tls:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            if self.client_ca:
                ctx.load_verify_locations(self.client_ca)
                ctx.verify_mode = ssl.CERT_REQUIRED
            # The handshake happens in the connection's thread (on its first read), not in accept().
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True,
                                                  do_handshake_on_connect=False)

    @property
    def address(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def start(self) -> "KubeDouble":
        with self.cond:
            self.stopping = False
        if self._server is None:
            self._bind()
        t = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        t.start()
        b = threading.Thread(target=self._bookmarker, daemon=True)
        b.start()
        self._threads = [t, b]
        return self

    def stop(self) -> None:
        """Stops listening and closes every connection (watches end); the data stays for start()."""
        with self.cond:
            self.stopping = True
            for w in self.watches:
                w.closed = True
                w.dropped = True
            self.cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_connections()
            self._server = None
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------ hooks

    def compact(self) -> int:
        with self.cond:
            self.history.clear()
            self.compacted = self.rv
            return self.rv

    def bookmark(self) -> None:
        with self.cond:
            for w in self.watches:
                if w.bookmarks:
                    w.queue.append(self._bookmark_event(w.res))
            self.cond.notify_all()

    def expire_watches(self) -> None:
        """Every open watch gets an ERROR event with a 410 Status and ends, as a watcher the API server's
        watch cache left behind does; its next watch from that resourceVersion is refused too."""
        with self.cond:
            self.history.clear()
            self.compacted = self.rv
            for w in self.watches:
                w.queue.append({"type": "ERROR", "object": status_object(
                    410, "Expired", f"too old resource version: {self.rv - 1} ({self.rv})")})
                w.closed = True
            self.cond.notify_all()

    def expire_continues(self, count: int = 1) -> None:
        """The next `count` list requests carrying a continue token are answered 410 Expired, as the API server
        does when the list's resourceVersion was compacted away meanwhile (the client lists again)."""
        with self.cond:
            self.expire_continues_left = count

    def drop_watches(self) -> None:
        with self.cond:
            for w in self.watches:
                w.closed = True
                w.dropped = True
            self.cond.notify_all()

    def wait_watches(self, count: int = 1, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.watches) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def state(self) -> dict:
        with self.lock:
            return {"resourceVersion": self.rv, "compacted": self.compacted, "objects": len(self.objects),
                    "watches": len(self.watches), "watchesStarted": self.watch_count,
                    "listPages": self.list_pages, "continuesExpired": self.continues_expired,
                    "requests": len(self.requests)}

    # direct access for tests
    def get(self, plural: str, name: str, namespace: str | None = "default") -> dict | None:
        res = self._res_by_plural(plural)
        with self.lock:
            o = self.objects.get((res.group, res.plural, namespace if res.namespaced else "", name))
            return copy.deepcopy(o)

    def put(self, obj: dict) -> dict:
        """Creates or replaces an object as kubectl apply would (status ignored)."""
        res = self._res_by_kind(obj["apiVersion"], obj["kind"])
        ns = obj.get("metadata", {}).get("namespace", "default") if res.namespaced else ""
        name = obj["metadata"]["name"]
        with self.cond:
            if (res.group, res.plural, ns, name) in self.objects:
                body = copy.deepcopy(obj)
                body["metadata"].pop("resourceVersion", None)
                return self._update(res, ns, name, body, status_only=False, force=True)
            return self._create(res, ns, obj)

    def delete(self, plural: str, name: str, namespace: str = "default") -> dict:
        res = self._res_by_plural(plural)
        with self.cond:
            return self._delete(res, namespace if res.namespaced else "", name)

    # ------------------------------------------------------------------ internals

    def _res_by_plural(self, plural: str) -> Res:
        for r in self.resources:
            if r.plural == plural:
                return r
        raise KeyError(plural)

    def _res_by_kind(self, api_version: str, kind: str) -> Res:
        for r in self.resources:
            if r.api_version == api_version and r.kind == kind:
                return r
        raise KeyError(f"{api_version} {kind}")

    def _next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def _record(self, etype: str, res: Res, ns: str, obj: dict) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        self.history.append((rv, etype, res, ns, copy.deepcopy(obj)))
        if len(self.history) > 10000:
            drop = len(self.history) - 10000
            self.compacted = self.history[drop - 1][0]
            del self.history[:drop]
        for w in self.watches:
            if w.res is res and (w.ns is None or w.ns == ns) and w.selector(obj):
                w.queue.append({"type": etype, "object": copy.deepcopy(obj)})
        self.cond.notify_all()

    def _bookmark_event(self, res: Res) -> dict:
        return {"type": "BOOKMARK", "object": {"kind": res.kind, "apiVersion": res.api_version,
                                               "metadata": {"resourceVersion": str(self.rv)}}}

    def _bookmarker(self) -> None:
        last = time.monotonic()
        while True:
            with self.cond:
                if self.stopping:
                    return
                self.cond.wait(0.1)
                if self.stopping:
                    return
                if self.bookmark_interval > 0 and time.monotonic() - last >= self.bookmark_interval:
                    last = time.monotonic()
                    for w in self.watches:
                        if w.bookmarks:
                            w.queue.append(self._bookmark_event(w.res))
                    self.cond.notify_all()

    def _not_found(self, res: Res, name: str) -> ApiError:
        return ApiError(404, "NotFound", f'{res.plural}{"." + res.group if res.group else ""} "{name}" not found',
                        {"name": name, "group": res.group, "kind": res.plural})

    def _create(self, res: Res, ns: str, body: dict, dry_run: bool = False) -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body is not a JSON object")
        meta = body.get("metadata") or {}
        name = meta.get("name") or ""
        if not name and meta.get("generateName"):
            name = meta["generateName"] + uuid.uuid4().hex[:5]
        if not name:
            raise ApiError(422, "Invalid", f"{res.kind} is invalid: metadata.name: Required value: name or "
                                           "generateName is required",
                           {"kind": res.kind, "causes": [{"field": "metadata.name"}]})
        if res.namespaced and meta.get("namespace") and meta["namespace"] != ns:
            raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the "
                                              "namespace sent on the request")
        key = (res.group, res.plural, ns, name)
        if key in self.objects:
            raise ApiError(409, "AlreadyExists",
                           f'{res.plural}{"." + res.group if res.group else ""} "{name}" already exists',
                           {"name": name, "group": res.group, "kind": res.plural})
        obj = copy.deepcopy(body)
        obj["apiVersion"] = res.api_version
        obj["kind"] = res.kind
        m = obj.setdefault("metadata", {})
        m["name"] = name
        if res.namespaced:
            m["namespace"] = ns
        else:
            m.pop("namespace", None)
        if res.status:
            obj.pop("status", None)
        if dry_run:
            return obj
        m["uid"] = str(uuid.uuid4())
        m["creationTimestamp"] = _now()
        m["generation"] = 1
        m["resourceVersion"] = str(self._next_rv())
        self.objects[key] = obj
        self.last_write = time.monotonic()
        self._record("ADDED", res, ns, obj)
        return copy.deepcopy(obj)

    def _update(self, res: Res, ns: str, name: str, body: dict, status_only: bool, force: bool = False,
                dry_run: bool = False) -> dict:
        key = (res.group, res.plural, ns, name)
        old = self.objects.get(key)
        if old is None:
            raise self._not_found(res, name)
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body is not a JSON object")
        meta = body.get("metadata") or {}
        if meta.get("name") and meta["name"] != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
        want_rv = meta.get("resourceVersion") or ""
        if want_rv:
            if want_rv != old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict",
                               f'Operation cannot be fulfilled on {res.plural}'
                               f'{"." + res.group if res.group else ""} "{name}": the object has been '
                               "modified; please apply your changes to the latest version and try again",
                               {"name": name, "group": res.group, "kind": res.plural})
        elif res.custom and not force:
            raise ApiError(422, "Invalid",
                           f'{res.kind}.{res.group} "{name}" is invalid: metadata.resourceVersion: Invalid '
                           "value: 0x0: must be specified for an update",
                           {"name": name, "group": res.group, "kind": res.kind})
        if status_only:
            new = copy.deepcopy(old)
            if "status" in body:
                new["status"] = copy.deepcopy(body["status"])
            else:
                new.pop("status", None)
        else:
            new = copy.deepcopy(body)
            new["apiVersion"], new["kind"] = res.api_version, res.kind
            nm = new.setdefault("metadata", {})
            for k in ("name", "uid", "creationTimestamp", "generation"):
                if k in old["metadata"]:
                    nm[k] = old["metadata"][k]
            if res.namespaced:
                nm["namespace"] = ns
            if res.status:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            if _spec_part(new) != _spec_part(old):
                nm["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if new == old:
            return copy.deepcopy(old)  # no change: no new resourceVersion, no event (as the API server)
        if dry_run:
            return new
        new["metadata"]["resourceVersion"] = str(self._next_rv())
        self.objects[key] = new
        if not status_only:
            self.last_write = time.monotonic()
        self._record("MODIFIED", res, ns, new)
        return copy.deepcopy(new)

    def _delete(self, res: Res, ns: str, name: str, dry_run: bool = False) -> dict:
        key = (res.group, res.plural, ns, name)
        old = self.objects.get(key)
        if old is None:
            raise self._not_found(res, name)
        if dry_run:
            return copy.deepcopy(old)
        del self.objects[key]
        gone = copy.deepcopy(old)
        gone["metadata"]["resourceVersion"] = str(self._next_rv())
        self.last_write = time.monotonic()
        self._record("DELETED", res, ns, gone)
        return gone

    # ------------------------------------------------------------------ HTTP

    def handle(self, method: str, target: str, headers, body: bytes) -> Result:
        url = urllib.parse.urlsplit(target)
        path = url.path.rstrip("/") or "/"
        q = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        with self.lock:
            self.requests.append((method, target))
        try:
            if path.startswith("/_double/"):
                return self._hook(method, path)
            if self.token is not None:
                auth = headers.get("Authorization") or ""
                if auth != f"Bearer {self.token}":
                    raise ApiError(401, "Unauthorized", "Unauthorized")
            return self._route(method, path, q, headers, body)
        except ApiError as e:
            return Result(e.code, status_object(e.code, e.reason, e.message, e.details))

    def _hook(self, method: str, path: str) -> Result:
        if path == "/_double/state":
            return Result(200, self.state())
        if method not in ("POST", "PUT"):
            raise ApiError(405, "MethodNotAllowed", "hooks are POST")
        if path == "/_double/compact":
            return Result(200, {"compacted": self.compact()})
        if path == "/_double/bookmark":
            self.bookmark()
            return Result(200, {})
        if path == "/_double/expire_watches":
            self.expire_watches()
            return Result(200, {})
        if path == "/_double/expire_continues":
            self.expire_continues()
            return Result(200, {})
        if path == "/_double/drop_watches":
            self.drop_watches()
            return Result(200, {})
        raise ApiError(404, "NotFound", "no such hook")

    def _groups(self) -> dict[str, list[Res]]:
        out: dict[str, list[Res]] = {}
        for r in self.resources:
            out.setdefault(r.group, []).append(r)
        return out

    def _group_json(self, group: str) -> dict:
        gv = {"groupVersion": f"{group}/v1", "version": "v1"}
        return {"name": group, "versions": [gv], "preferredVersion": gv}

    def _resource_list(self, group: str, version: str) -> dict:
        rs = [r for r in self.resources if r.group == group and r.version == version]
        if not rs:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        items = []
        for r in rs:
            e = {"name": r.plural, "singularName": r.singular(), "namespaced": r.namespaced, "kind": r.kind,
                 "verbs": ALL_VERBS}
            if r.short:
                e["shortNames"] = r.short
            if r.custom:
                e["categories"] = ["all", "solo-io"]
            items.append(e)
            if r.status:
                items.append({"name": f"{r.plural}/status", "singularName": "", "namespaced": r.namespaced,
                              "kind": r.kind, "verbs": ["get", "patch", "update"]})
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version, "resources": items}

    def _route(self, method: str, path: str, q: dict, headers, body: bytes) -> Result:
        if method == "GET":
            if path == "/version":
                return Result(200, SERVER_VERSION)
            if path == "/api":
                return Result(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.port}"}]})
            if path == "/apis":
                return Result(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                    self._group_json(g) for g in self._groups() if g]})
            if path == "/openapi/v2":
                accept = headers.get("Accept") or ""
                if "protobuf" in accept:
                    return Result(200, raw=OPENAPI_PB,
                                  ctype="application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
                return Result(200, OPENAPI_JSON)
            if path in ("/healthz", "/readyz", "/livez"):
                return Result(200, raw=b"ok", ctype="text/plain")
        parts = path.strip("/").split("/")
        watch = q.get("watch") in ("1", "true", "True")
        if len(parts) >= 1 and parts[0] == "api":
            group, rest = "", parts[1:]
        elif len(parts) >= 2 and parts[0] == "apis":
            group, rest = parts[1], parts[2:]
            if not rest and method == "GET":
                if group not in self._groups() or not group:
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                return Result(200, dict(kind="APIGroup", apiVersion="v1", **self._group_json(group)))
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        version, rest = rest[0], rest[1:]
        if not rest:
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
            return Result(200, self._resource_list(group, version))
        if rest[0] == "watch":
            watch, rest = True, rest[1:]
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        plural, rest = rest[0], rest[1:]
        res = next((r for r in self.resources if r.group == group and r.version == version and
                    r.plural == plural), None)
        if res is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not res.namespaced and ns is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if res.namespaced and ns is None and rest:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[0] if rest else None
        sub = rest[1] if len(rest) > 1 else None
        if len(rest) > 2 or (sub is not None and (sub != "status" or not res.status)):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        ns_key = (ns or "") if res.namespaced else ""
        dry = "dryRun" in q
        if method in ("POST", "PUT", "PATCH"):
            ctype = (headers.get("Content-Type") or "application/json").split(";")[0].strip()
            if "yaml" in ctype:
                raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown "
                                                            f"format - accepted media types include: "
                                                            "application/json")
            try:
                doc = json.loads(body or b"null")
            except ValueError as e:
                raise ApiError(400, "BadRequest", f"the body is not JSON: {e}")
        if name is None:
            if method == "GET":
                selector = self._selector(q)
                if watch:
                    return self._watch(res, ns if res.namespaced else None, q, selector)
                return Result(200, self._list(res, ns if res.namespaced else None, selector, q))
            if method == "POST":
                if res.namespaced and ns is None:
                    raise ApiError(405, "MethodNotAllowed", "create needs a namespace")
                with self.cond:
                    return Result(201, self._create(res, ns_key, doc, dry))
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                                                    "resource")
        if watch:
            selector = self._selector({"fieldSelector": f"metadata.name={name}"})
            return self._watch(res, ns if res.namespaced else None, q, selector)
        with self.cond:
            if method == "GET":
                o = self.objects.get((res.group, res.plural, ns_key, name))
                if o is None:
                    raise self._not_found(res, name)
                return Result(200, copy.deepcopy(o))
            if method == "PUT":
                return Result(200, self._update(res, ns_key, name, doc, status_only=sub == "status",
                                                dry_run=dry))
            if method == "PATCH":
                old = self.objects.get((res.group, res.plural, ns_key, name))
                if old is None:
                    raise self._not_found(res, name)
                if not ctype.endswith("merge-patch+json") or not isinstance(doc, dict):
                    raise ApiError(415, "UnsupportedMediaType", f"patch type {ctype} is not supported "
                                                                "(merge patches only)")
                merged = merge_patch(old, doc)
                if sub != "status" and res.status:
                    merged.pop("status", None)
                    if "status" in old:
                        merged["status"] = old["status"]
                if "resourceVersion" not in (doc.get("metadata") or {}):
                    merged["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
                return Result(200, self._update(res, ns_key, name, merged, status_only=sub == "status",
                                                dry_run=dry))
            if method == "DELETE":
                if sub is not None:
                    raise ApiError(405, "MethodNotAllowed", "cannot delete a subresource")
                return Result(200, self._delete(res, ns_key, name, dry))
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")

    @staticmethod
    def _selector(q: dict):
        tests = []
        for part in filter(None, (q.get("labelSelector") or "").split(",")):
            part = part.strip()
            if "!=" in part:
                k, v = part.split("!=", 1)
                tests.append(lambda o, k=k.strip(), v=v.strip(): _labels(o).get(k) != v)
            elif "=" in part:
                k, v = part.split("=", 1)
                k, v = k.strip().rstrip("="), v.strip().lstrip("=")
                tests.append(lambda o, k=k, v=v: _labels(o).get(k) == v)
            elif part.startswith("!"):
                tests.append(lambda o, k=part[1:].strip(): k not in _labels(o))
            else:
                tests.append(lambda o, k=part: k in _labels(o))
        for part in filter(None, (q.get("fieldSelector") or "").split(",")):
            neg = "!=" in part
            k, v = part.split("!=" if neg else "=", 1)
            k, v = k.strip().rstrip("="), v.strip().lstrip("=")
            if k not in ("metadata.name", "metadata.namespace"):
                raise ApiError(400, "BadRequest", f'"{k}" is not a known field selector: only "metadata.name", '
                                                  '"metadata.namespace"')
            field = k.split(".")[1]
            tests.append(lambda o, f=field, v=v, neg=neg: (o["metadata"].get(f, "") == v) != neg)
        return lambda o: all(t(o) for t in tests)

    def _list(self, res: Res, ns: str | None, selector, q: dict | None = None) -> dict:
        q = q or {}
        try:
            limit = int(q.get("limit") or 0)
        except ValueError:
            raise ApiError(400, "BadRequest", f"invalid limit {q.get('limit')!r}")
        token = q.get("continue") or ""
        with self.lock:
            if token:
                # A later page of a paginated list: served from the snapshot of the first page (one
                # consistent list at one resourceVersion), unless the token expired.
                snap = self.continues.get(token)
                if snap is None:
                    raise ApiError(400, "BadRequest", "continue key is not valid")
                if self.expire_continues_left > 0 or snap["rv"] < self.compacted:
                    if self.expire_continues_left > 0:
                        self.expire_continues_left -= 1
                    self.continues_expired += 1
                    raise ApiError(410, "Expired", "The provided continue parameter is too old to display a "
                                                   "consistent list result. You can start a new list without "
                                                   "the continue parameter.")
                items, rv, start = snap["items"], snap["rv"], snap["start"]
            else:
                items = [copy.deepcopy(o) for (g, p, n, _), o in sorted(self.objects.items())
                         if g == res.group and p == res.plural and (ns is None or n == ns) and selector(o)]
                rv, start = self.rv, 0
            meta = {"resourceVersion": str(rv)}
            page = items[start:start + limit] if limit > 0 else items[start:]
            if limit > 0 and start + limit < len(items):
                self.continue_seq += 1
                nxt = f"c{self.continue_seq}"
                self.continues[nxt] = {"items": items, "rv": rv, "start": start + limit}
                meta["continue"] = nxt
                meta["remainingItemCount"] = len(items) - start - limit
            self.continues.pop(token, None)
            self.list_pages += 1
        return {"apiVersion": res.api_version, "kind": f"{res.kind}List", "metadata": meta, "items": page}

    def _watch(self, res: Res, ns: str | None, q: dict, selector) -> Result:
        rv_text = q.get("resourceVersion", "")
        try:
            since = int(rv_text) if rv_text not in ("", "0") else None
        except ValueError:
            raise ApiError(400, "BadRequest", f"invalid resourceVersion {rv_text!r}")
        timeout = None
        if q.get("timeoutSeconds"):
            try:
                timeout = float(q["timeoutSeconds"])
            except ValueError:
                raise ApiError(400, "BadRequest", "invalid timeoutSeconds")
        w = Watch(res, ns, selector, q.get("allowWatchBookmarks") in ("1", "true", "True"))
        with self.cond:
            if since is not None and since < self.compacted:
                message = f"too old resource version: {since} ({self.compacted + 1})"
                if self.gone_as_http:
                    raise ApiError(410, "Gone", message)
                w.queue.append({"type": "ERROR", "object": status_object(410, "Expired", message)})
                w.closed = True
                return Result(200, stream=w)
            if since is None:
                for (g, p, n, _), o in sorted(self.objects.items()):
                    if g == res.group and p == res.plural and (ns is None or n == ns) and selector(o):
                        w.queue.append({"type": "ADDED", "object": copy.deepcopy(o)})
            else:
                for (erv, etype, eres, ens, eobj) in self.history:
                    if erv > since and eres is res and (ns is None or ens == ns) and selector(eobj):
                        w.queue.append({"type": etype, "object": copy.deepcopy(eobj)})
            self.watches.append(w)
            self.watch_count += 1
            self.cond.notify_all()
        w.deadline = time.monotonic() + timeout if timeout else None
        return Result(200, stream=w)

    def next_events(self, w: Watch) -> list[dict] | None:
        """The watch's next events (waiting for some); None when the stream ends."""
        with self.cond:
            while not w.queue and not w.closed and not self.stopping:
                left = None if w.deadline is None else w.deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self.cond.wait(0.5 if left is None else min(left, 0.5))
            if w.queue:
                out, w.queue = w.queue, []
                return out
            return None

    def end_watch(self, w: Watch) -> None:
        with self.cond:
            if w in self.watches:
                self.watches.remove(w)
            self.cond.notify_all()


def _labels(o: dict) -> dict:
    return (o.get("metadata") or {}).get("labels") or {}


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    double: KubeDouble

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

    def handle_error(self, request, client_address):  # clients go away mid-stream; stay quiet
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-double"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet
        pass

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        double: KubeDouble = self.server.double
        res = double.handle(self.command, self.path, self.headers, body)
        if res.stream is not None:
            self._stream(double, res.stream)
            return
        payload = res.raw if res.raw is not None else json.dumps(res.body).encode()
        self.send_response(res.status)
        self.send_header("Content-Type", res.ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        try:
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _stream(self, double: KubeDouble, w: Watch):
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            while True:
                events = double.next_events(w)
                if events is None:
                    break
                data = b"".join(json.dumps(e).encode() + b"\n" for e in events)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            if not w.dropped:
                self.wfile.write(b"0\r\n\r\n")  # the stream ends cleanly (timeoutSeconds, 410)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        finally:
            double.end_watch(w)
            if w.dropped:
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    do_GET = do_PUT = do_DELETE = do_POST = do_PATCH = _serve


# ------------------------------------------------------------------------------------------- kubectl

class Kubectl:
    """A kubectl pointed at a double through a kubeconfig written at run time (HOME, the discovery cache and
    the kubeconfig in a temporary directory). Binary: $PORTICO_KUBECTL, else `kubectl` on PATH."""

    @staticmethod
    def binary() -> str | None:
        import os
        import shutil
        return os.environ.get("PORTICO_KUBECTL") or shutil.which("kubectl")

    def __init__(self, server: str, token: str | None = None, namespace: str = "default", ca: str | None = None):
        import os
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="kubectl-")
        self.config = os.path.join(self.dir, "config")
        user = f"    token: {token}\n" if token else "    {}\n"
        ca_line = f"    certificate-authority: {ca}\n" if ca else ""
        with open(self.config, "w") as f:
            f.write("apiVersion: v1\nkind: Config\nclusters:\n- name: double\n  cluster:\n"
                    f"    server: {server}\n{ca_line}users:\n- name: tester\n  user:\n{user}contexts:\n- name: double\n"
                    f"  context: {{cluster: double, user: tester, namespace: {namespace}}}\n"
                    "current-context: double\n")
        self.env = dict(os.environ, HOME=self.dir, KUBECONFIG=self.config)

    def argv(self, *args: str) -> list[str]:
        import os
        return [self.binary(), "--kubeconfig", self.config, "--cache-dir", os.path.join(self.dir, "cache"),
                "--request-timeout", "20s", *args]

    def run(self, *args: str, check: bool = True, stdin: str | None = None):
        import subprocess
        p = subprocess.run(self.argv(*args), env=self.env, input=stdin, capture_output=True, text=True,
                           timeout=60)
        if check and p.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        return p

    def cleanup(self) -> None:
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--token", help="require this bearer token")
    ap.add_argument("--bookmark-interval", type=float, default=5.0)
    ap.add_argument("--tls", metavar="DIR", help="serve https with a test CA kept in DIR (made when absent): "
                                                 "DIR/ca.crt verifies the server certificate (127.0.0.1, localhost)")
    args = ap.parse_args(argv)
    tls = None
    if args.tls:
        sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
        from pki import Pki
        tls = Pki(args.tls).issue("kube-double", dns=["localhost", "kubernetes.default.svc"],
                                  ips=["127.0.0.1"])
    double = KubeDouble(host=args.host, port=args.port, token=args.token,
                        bookmark_interval=args.bookmark_interval, tls=tls)
    double.start()
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
