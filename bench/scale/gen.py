#!/usr/bin/env python3
"""Generates a large Portico configuration directory for control-plane scale benchmarks
(python3 standard library only).

  bench/scale/gen.py OUT [--virtual-services 10000] [--routes 10] [--upstreams 5000]
                         [--gateways 1] [--namespaces 50] [--port 18080] [--seed 1]
                         [--vs-per-file 1]

Layout of OUT (every file is valid input for `portico run OUT` / `portico validate OUT`):

  gateways.yaml                  --gateways Gateways on 127.0.0.1, ports --port, --port+1, ...; Gateway k
                                 serves the VirtualServices labelled `gateway: gw-k` (selector)
  upstreams/ns-XX.yaml           the Upstreams of namespace ns-XX, one multi-document file per namespace
  vs/ns-XX/vs-NNNNNN.yaml        the VirtualServices, --vs-per-file to a file (default: one per file, as
                                 a GitOps repository or `kubectl get -o yaml` per object would have them)

VirtualService i lives in namespace ns-(i mod namespaces), is served by gateway gw-(i mod gateways) and
has the domains vs<i>.example.com, sometimes *.vs<i>.example.com and vs<i>.internal:8080 (domains are
unique per VirtualService). Its routes (--routes on average, between routes/2 and 3*routes/2) are:
route 0 `healthz` (exact /healthz, direct response 200 "ok vs<i>"); then a mix of prefix (55 %), exact
(30 %) and regex (15 %) matchers on a path segment unique to the route (so no route shadows another),
some with header conditions, methods or a second matcher; actions single (70 %), weighted multi (20 %),
redirect (5 %) and direct response (5 %); some with options (timeout, prefixRewrite, header changes);
and last a catch-all `prefix: /` answering 404. Routes forward to Upstreams of their own namespace
(10 % to another namespace, named explicitly). Upstreams have 1-3 static hosts on 127.0.0.1 ports
20000+ (nothing listens there: forwarded requests get 503; the benchmarks use the direct responses).

Deterministic: the same flags give byte-identical files. Each VirtualService and Upstream has its own
random stream (seeded by --seed and its index), so vs_document() regenerates one file's text with a
change (bench/scale/propagation.py uses it) without generating the rest.

Importable: `import gen; p = gen.Params(virtual_services=1000); gen.generate(out_dir, p)`.
"""
import argparse
import dataclasses
import os
import random
import sys
import time

API = "apiVersion: gateway.portico.dev/v1"
WORDS = ["users", "orders", "items", "cart", "search", "auth", "billing", "media", "reports", "events",
         "catalog", "pricing", "inventory", "profile", "session", "feeds", "alerts", "tickets"]


@dataclasses.dataclass
class Params:
    virtual_services: int = 10000
    routes: int = 10  # average routes per VirtualService
    upstreams: int = 5000
    gateways: int = 1
    namespaces: int = 50
    port: int = 18080
    seed: int = 1
    vs_per_file: int = 1

    def ns_count(self):
        return max(1, min(self.namespaces, self.virtual_services, self.upstreams))


def namespace(i, p):
    return f"ns-{i % p.ns_count():02d}"


def vs_name(i):
    return f"vs-{i:06d}"


def up_name(u):
    return f"up-{u:06d}"


def vs_host(i):
    """A Host header value that selects VirtualService i."""
    return f"vs{i}.example.com"


def vs_file(i, p):
    """Path of VirtualService i's file, relative to the output directory."""
    first = i - i % p.vs_per_file
    return os.path.join("vs", namespace(first, p), f"{vs_name(first)}.yaml")


def upstreams_of(ns_index, p):
    """Upstream indexes in namespace ns-<ns_index>."""
    return range(ns_index, p.upstreams, p.ns_count())


def gateway_document(k, p):
    return (f"{API}\nkind: Gateway\nmetadata:\n  name: gw-{k}\nspec:\n  bindAddress: 127.0.0.1\n"
            f"  bindPort: {p.port + k}\n  virtualServiceSelector:\n    labels: {{gateway: gw-{k}}}\n"
            f"  httpOptions:\n    serverName: portico\n")


def upstream_document(u, p):
    rng = random.Random(f"{p.seed}/up/{u}")
    lines = [API, "kind: Upstream", "metadata:", f"  name: {up_name(u)}", f"  namespace: {namespace(u, p)}",
             "spec:", "  static:", "    hosts:"]
    base = 20000 + (u * 3) % 40000
    for h in range(rng.choice([1, 1, 2, 2, 3])):
        weight = f", weight: {rng.randint(1, 5)}" if rng.random() < 0.3 else ""
        lines.append(f"      - {{addr: 127.0.0.1, port: {base + h}{weight}}}")
    if rng.random() < 0.2:
        lines += ["  loadBalancerConfig:", "    leastRequest: {}"]
    if rng.random() < 0.5:
        lines += ["  connectionConfig:", f"    connectTimeout: {rng.choice([1, 2, 5])}s",
                  f"    idleTimeout: {rng.choice([30, 60, 120])}s"]
    return "\n".join(lines) + "\n"


def upstream_ref(rng, i, p):
    """`{name: ..}` (own namespace) or `{name: .., namespace: ..}` (another one)."""
    n = p.ns_count()
    own = (i % n) if p.upstreams > n else None
    if own is not None and rng.random() < 0.9:
        ups = upstreams_of(own, p)
        return f"{{name: {up_name(ups[rng.randrange(len(ups))])}}}"
    u = rng.randrange(p.upstreams)
    return f"{{name: {up_name(u)}, namespace: {namespace(u, p)}}}"


def route_lines(rng, i, j, p):
    """Route j (1-based among the generated middle routes) of VirtualService i."""
    seg = f"{WORDS[(i + j) % len(WORDS)]}{j}"
    kind = rng.choices(["prefix", "exact", "regex"], [55, 30, 15])[0]
    out = [f"      - name: r{j}", "        matchers:"]
    if kind == "prefix":
        out.append(f"          - prefix: /{seg}/")
    elif kind == "exact":
        out.append(f"          - exact: /{seg}")
    else:
        out.append(f'          - regex: "/{seg}/[0-9]+(/[a-z]+)?"')
    r = rng.random()
    if r < 0.08:
        out += ["            headers:", f"              - {{name: x-tenant, value: t{rng.randint(1, 50)}}}"]
    elif r < 0.14:
        out += ["            headers:", '              - {name: x-version, value: "v[0-9]+", regex: true}']
    elif r < 0.20:
        out += ["            headers:", "              - {name: x-canary}"]
    if rng.random() < 0.15:
        out.append(f"            methods: {rng.choice(['[GET, HEAD]', '[POST]', '[GET, POST, PUT, DELETE]'])}")
    if kind == "prefix" and rng.random() < 0.10:
        out.append(f"          - exact: /{seg}")
    action = rng.choices(["single", "multi", "redirect", "direct"], [70, 20, 5, 5])[0]
    if action == "single":
        out += ["        routeAction:", "          single:", f"            upstream: {upstream_ref(rng, i, p)}"]
    elif action == "multi":
        out += ["        routeAction:", "          multi:", "            destinations:"]
        for _ in range(rng.choice([2, 2, 3])):
            out += [f"              - weight: {rng.randint(1, 100)}",
                    f"                destination: {{upstream: {upstream_ref(rng, i, p)}}}"]
    elif action == "redirect":
        out += ["        redirectAction:", f"          hostRedirect: new-vs{i}.example.com",
                f"          responseCode: {rng.choice([301, 302, 308])}"]
    else:
        out += ["        directResponseAction:", "          status: 200", f'          body: "{seg} of vs{i}"']
    if action in ("single", "multi") and rng.random() < 0.3:
        out += ["        options:", f"          timeout: {rng.choice([1, 5, 15, 30])}s"]
        if kind != "regex" and rng.random() < 0.5:
            out.append(f"          prefixRewrite: /v{rng.randint(1, 3)}/")
        if rng.random() < 0.5:
            out += ["          headerManipulation:", "            requestHeadersToAdd:",
                    f"              - header: {{key: X-Route, value: r{j}}}",
                    "            responseHeadersToRemove: [x-internal]"]
    return out


def vs_route_count(rng, p):
    lo = max(2, p.routes // 2)
    hi = max(lo, 2 * p.routes - lo)
    return rng.randint(lo, hi)


def vs_document(i, p, healthz_body=None):
    """VirtualService i as YAML. healthz_body replaces the body of its first route (one route changed)."""
    rng = random.Random(f"{p.seed}/vs/{i}")
    n_routes = vs_route_count(rng, p)
    domains = [vs_host(i)]
    if rng.random() < 0.5:
        domains.append(f'"*.vs{i}.example.com"')
    if rng.random() < 0.25:
        domains.append(f'"vs{i}.internal:8080"')
    lines = [API, "kind: VirtualService", "metadata:", f"  name: {vs_name(i)}", f"  namespace: {namespace(i, p)}",
             "  labels:", f"    gateway: gw-{i % p.gateways}", f"    team: team-{i % 97}", "spec:",
             "  virtualHost:", f"    domains: [{', '.join(domains)}]", "    routes:"]
    body = healthz_body if healthz_body is not None else f"ok vs{i}"
    lines += ["      - name: healthz", "        matchers:", "          - exact: /healthz",
              "        directResponseAction:", "          status: 200", f'          body: "{body}"']
    for j in range(1, n_routes - 1):
        lines += route_lines(rng, i, j, p)
    lines += ["      - name: fallback", "        matchers:", "          - prefix: /", "        directResponseAction:",
              "          status: 404", '          body: "no such resource"']
    return "\n".join(lines) + "\n"


def vs_file_text(first, p, overrides=None):
    """The text of the file that starts with VirtualService `first` (overrides: {i: healthz_body})."""
    overrides = overrides or {}
    docs = [vs_document(i, p, overrides.get(i)) for i in range(first, min(first + p.vs_per_file, p.virtual_services))]
    return "---\n".join(docs)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def generate(out, p):
    """Writes the configuration; returns counts (files, bytes, virtual_services, routes, upstreams)."""
    stats = {"files": 0, "bytes": 0, "virtual_services": p.virtual_services, "upstreams": p.upstreams,
             "gateways": p.gateways, "routes": 0}

    def emit(rel, text):
        write(os.path.join(out, rel), text)
        stats["files"] += 1
        stats["bytes"] += len(text)

    emit("gateways.yaml", "---\n".join(gateway_document(k, p) for k in range(p.gateways)))
    for n in range(p.ns_count()):
        docs = [upstream_document(u, p) for u in upstreams_of(n, p)]
        if docs:
            emit(os.path.join("upstreams", f"ns-{n:02d}.yaml"), "---\n".join(docs))
    for first in range(0, p.virtual_services, p.vs_per_file):
        text = vs_file_text(first, p)
        stats["routes"] += text.count("\n      - name: ")
        emit(vs_file(first, p), text)
    return stats


def add_arguments(ap):
    d = Params()
    ap.add_argument("--virtual-services", "-n", type=int, default=d.virtual_services)
    ap.add_argument("--routes", "-r", type=int, default=d.routes, help="average routes per VirtualService")
    ap.add_argument("--upstreams", "-u", type=int, default=d.upstreams)
    ap.add_argument("--gateways", type=int, default=d.gateways)
    ap.add_argument("--namespaces", type=int, default=d.namespaces)
    ap.add_argument("--port", type=int, default=d.port, help="bind port of the first Gateway")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--vs-per-file", type=int, default=d.vs_per_file)


def params_from(a):
    p = Params(virtual_services=a.virtual_services, routes=a.routes, upstreams=a.upstreams, gateways=a.gateways,
               namespaces=a.namespaces, port=a.port, seed=a.seed, vs_per_file=a.vs_per_file)
    if p.virtual_services < 1 or p.upstreams < 1 or p.gateways < 1 or p.routes < 2 or p.vs_per_file < 1:
        raise SystemExit("gen: --virtual-services, --upstreams, --gateways, --vs-per-file >= 1 and --routes >= 2")
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="output directory (created; must be empty or absent)")
    add_arguments(ap)
    a = ap.parse_args()
    p = params_from(a)
    if os.path.exists(a.out) and os.listdir(a.out):
        print(f"gen: {a.out} is not empty", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    s = generate(a.out, p)
    print(f"GEN dir={a.out} virtual_services={s['virtual_services']} routes={s['routes']} "
          f"upstreams={s['upstreams']} gateways={s['gateways']} files={s['files']} bytes={s['bytes']} "
          f"seconds={time.monotonic() - t0:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
