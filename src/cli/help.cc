#include "cli/help.h"

#include <cstdio>

namespace portico::cli {

namespace {

struct Help {
  const char* command;
  const char* text;
};

constexpr Help kHelp[] = {
    {"get",
     R"(Usage: portico get KIND [NAME] [-n NAMESPACE] [-o table|wide|yaml|json] [--admin ADDR:PORT]

List resources of a running portico with their status (from its admin API, /resources).

  KIND     gateways (gw), virtualservices (vs, vservice), upstreams (us), routetables (rt),
           upstreamgroups (ug), secrets, authconfigs (ac), ratelimitconfigs (rlc), settings, all
  NAME     only this resource (exit 1 when there is none)
  -n, --namespace NS    only this namespace (default: all)
  -o, --output FORMAT   table (default), wide (file, generation, details), yaml, json
  --admin ADDR:PORT     the admin API (default 127.0.0.1:9901); a `portico server`'s --listen
                        as ADDR:PORT, or https://ADDR:PORT when it has --tls-cert
  --token-file F        the bearer token a server's REST API beyond loopback wants
  --ca F, --cert F, --key F, --server-name NAME
                        with https://: the CA the server's certificate is verified against
                        (default: the system's), the client certificate and key (a server with
                        --client-ca), the name the certificate must carry (default: the host)

Exit: 0 listed; 1 NAME not found; 2 bad arguments; 3 admin API unreachable.
)"},
    {"describe",
     R"(Usage: portico describe KIND NAME [-n NAMESPACE] [-o text|yaml|json] [--admin ADDR:PORT]

One resource of a running portico: its status and every reason (file:line:column, field path),
its spec as YAML, and what it produced in the running configuration (the listener of a Gateway,
the routes a VirtualService contributes and where, the endpoints of an Upstream and the routes
sending traffic to it).

Exit: 0 shown; 1 not found; 2 bad arguments; 3 admin API unreachable.
)"},
    {"validate", R"(Usage: portico validate DIR|FILE|- [-o text|json]

Check a configuration offline, exactly as `portico run` would read it: every problem with its
file, line, column and field path. `-` reads one file from standard input.

  -o json   machine-readable: {"valid": bool, "summary": {...}, "resources": [...],
            "diagnostics": [{"file","line","column","path","severity","message","kind","name"}]}

Exit: 0 valid (warnings allowed); 1 errors; 2 bad arguments; 3 cannot read the files.
)"},
    {"check", R"(Usage: portico check [--admin ADDR:PORT] [-o text|json]

Health of a running portico: is it ready, and is every resource Accepted? Prints each resource
that is Rejected, Warning or Pending, with every reason.

Exit: 0 everything Accepted; 1 a resource is Rejected, Warning or Pending, or the proxy is not
ready; 2 bad arguments; 3 admin API unreachable.
)"},
    {"proxy", R"(Usage: portico proxy dump [--admin ADDR:PORT | --dir DIR] [-o json|yaml]
       portico proxy --server http(s)://H:P --node NAME [--gateways a,b] [--token-file F]
                     [--ca F] [--cert F --key F] [--server-name NAME]
                     [--admin ADDR:PORT] [--bind-address IP] [--workers N] [--idle-timeout 15s]

dump: the configuration the data plane runs (the admin API's /config_dump), pretty-printed; with
--dir, the configuration `portico run DIR` would build from the files, without running anything.
Exit: 0 shown; 2 bad arguments; 3 admin API or files unreadable.

--server: the data plane of `portico run`, fed by a `portico server`. It serves the Gateways named
by --gateways (all when none), keeps serving its last good configuration when the server is down
(reconnecting with jittered back-off), and rejects (NACKs) a version it cannot apply whole (a
port that cannot be bound, a certificate that does not load), keeping the previous one.
With https://, the server's certificate is verified against --ca (default: the system's trust
store) and --server-name (default: the URL's host), and --cert/--key are presented to a server
that requires client certificates (mTLS, instead of or besides --token-file).
--bind-address overrides every listener's bind address (several proxies on one host: one
address each). --idle-timeout: no line from the server (heartbeats included) for this long
reconnects. Admin API: /ready (ready once a first configuration is applied), /stats
(portico_fleet_*), /config_dump, /fleet.
)"},
    {"route", R"(Usage: portico route explain|add|remove ...

  portico route explain METHOD URL [-H 'Name: value']... [--admin ADDR:PORT | --dir DIR]
  portico route add --dir DIR --vs NAME (--path-prefix P | --path-exact P | --path-regex R)
                    (--upstream NAME | --direct-response STATUS) [options]
  portico route remove --dir DIR --vs NAME (--name ROUTE | --index N) [--dry-run]

`portico route COMMAND --help` tells more.

Exit: see each subcommand (0 yes; 1 no; 2 bad arguments; 3 unreadable).
)"},
    {"route explain",
     R"(Usage: portico route explain METHOD URL [-H 'Name: value']... [--admin ADDR:PORT | --dir DIR] [-o text|json]

Which Gateway (the listener on the URL's port), VirtualService (by Host), route, upstream and
policies (timeout, rewrites, header changes) would serve this request, and for every earlier route
why it did not match (path, method, header, query parameter). The request is parsed by the
proxy's parser and matched by the proxy's router on the running configuration (/config_dump), or,
with --dir DIR, on the configuration built from the files in DIR.

  URL        http://HOST[:PORT]/path?query (https:// too; the port defaults to 80 / 443)
  -H, --header 'Name: value'   a request header (repeatable); Host replaces the URL's host

Exit: 0 the request would be forwarded, redirected or answered by a route; 1 it would get a
400/404 or no Gateway listens on the port; 2 bad arguments; 3 configuration unreadable.
)"},
    {"route add",
     R"(Usage: portico route add --dir DIR --vs NAME [-n NAMESPACE] MATCH ACTION [options]

Add a route to a VirtualService defined in the YAML files of DIR and write that file back, in the
spirit of `glooctl add route`. Only the lines of the new route are inserted: comments, other
documents and formatting of the file are kept. The whole configuration is validated with the
change first; nothing is written when the VirtualService would be Rejected or a new error appears.
The file is replaced atomically (written aside, then renamed), so a running portico sees one change.

  MATCH   --path-prefix P | --path-exact P | --path-regex R   [--method M]... [--header 'N: V']...
  ACTION  --upstream NAME [--upstream-namespace NS] | --direct-response STATUS [--body TEXT]
  --name ROUTE          the route's name (default: derived from the match)
  --index N             position among the routes (default 0: first, as glooctl; the first match
                        wins, so a new route goes before the catch-all)
  --prefix-rewrite P    options.prefixRewrite
  --timeout DURATION    options.timeout (e.g. 5s)
  --dry-run             print the change as a unified diff, write nothing

Limits: the routes list must be written in block style (`- name: ...`); a flow-style list
(`routes: [...]`) or a JSON file is refused rather than rewritten without its comments.

Exit: 0 written (or shown with --dry-run); 1 the result would be invalid (nothing written);
2 bad arguments; 3 files unreadable or unwritable.
)"},
    {"route remove",
     R"(Usage: portico route remove --dir DIR --vs NAME [-n NAMESPACE] (--name ROUTE | --index N) [--dry-run]

Remove one route from a VirtualService defined in DIR, keeping the rest of the file (comments,
other documents) as it is. Validated before writing, like `route add`.

Exit: 0 written (or shown); 1 the result would be invalid; 2 bad arguments; 3 files unreadable.
)"},
    {"diff", R"(Usage: portico diff DIR|FILE [--admin ADDR:PORT] [-o text|json]

What applying DIR (or FILE) to a running portico would change; nothing is applied. Lists the
resources that would be added, removed (DIR only: a FILE is laid over the running resources) or
changed (with a unified diff of their specs as YAML), the status changes ("would be Rejected",
with the reasons), and the change of the data plane's configuration (/config_dump) as a unified
diff.

Exit: 0 no differences; 1 differences; 2 bad arguments; 3 admin API or files unreadable.
)"},
    {"apply",
     R"(Usage: portico apply -f FILE|DIR|- [--admin ADDR:PORT | --server URL] [--token-file F]

Apply resources to a running portico through its API (POST /v1/apply), into whichever store it
uses: `portico run`'s directory (one file per resource, DIR/applied/<namespace>/<Kind>.<name>.yaml),
etcd or Consul KV (the resource's key in Gloo's layout) when its Settings select them.

  -f, --filename F    a YAML or JSON file (several documents, `---` separated), a directory (its
                      *.yaml, *.yml and *.json files, recursively) or - (standard input);
                      repeatable. Everything given goes in one request of at most 4 MiB.
  --admin ADDR:PORT   `portico run`'s admin API (default 127.0.0.1:9901; loopback only)
  --server URL        `portico server`'s REST API (http://H:P, its --listen or --admin)
  --token-file F      the bearer token (`portico server` with --token-file wants it for writes)
  --ca F, --cert F --key F, --server-name N
                      an https:// --server (TLS on its --listen): its CA, the client certificate

Every document is validated first: one error anywhere and nothing is written (each error is
printed with file:line:column and field path). Prints one line per resource, e.g.
"virtualservice default/shop configured" (created, configured or unchanged). A resource that an
operator's file defines is a conflict: apply never edits hand-written files.

Exit: 0 applied; 1 refused or a resource not written; 2 bad arguments; 3 API or files unreadable.
)"},
    {"delete",
     R"(Usage: portico delete KIND NAME [-n NAMESPACE] [--admin ADDR:PORT | --server URL] [--token-file F]
       portico delete -f FILE|DIR|- [...]

Delete resources from a running portico's store through its API
(DELETE /v1/resources/<Kind>/<namespace>/<name>): the applied file, a file that holds that
resource alone, or the store's key. A resource in a file with others is a conflict (edit that
file). With -f, every resource the documents name.

Exit: 0 deleted; 1 not found or refused; 2 bad arguments; 3 API or files unreadable.
)"},
    {"run",
     R"(Usage: portico run DIR [--admin ADDR:PORT] [--workers N] [--log-level debug|info|warn|error]
                       [--resync 30s] [--upgrade-socket PATH] [--upgrade]

Both planes in one process: configuration from the YAML files in DIR (watched for changes),
traffic served on the Gateways' ports, admin API on 127.0.0.1:9901 by default.

Binary upgrade: --upgrade takes the listening sockets over from the process serving
--upgrade-socket (default DIR.upgrade.sock), which then drains and exits; SIGUSR2 makes a
running process start its own binary with --upgrade.
)"},
    {"server",
     R"(Usage: portico server DIR [--listen ADDR:PORT] [--token-file F] [--admin ADDR:PORT]
                          [--tls-cert F --tls-key F [--client-ca F]]
                          [--heartbeat 5s] [--resync 30s] [--log-level LEVEL]

The control plane of `portico run` without a data plane: configuration from DIR (and the sources
its Settings name), translated and streamed to `portico proxy` processes (the fleet protocol).
Binds no Gateway.

  --listen ADDR:PORT   the fleet protocol and the REST API (default 127.0.0.1:9977):
                       GET /v1/fleet/stream, POST /v1/fleet/ack, /resources, /proxies, ...
  --token-file F       the bearer token proxies and remote CLIs must send (required when --listen
                       is beyond loopback, unless --client-ca; the REST API there requires it)
  --tls-cert F, --tls-key F
                       TLS on --listen (https://): the server's certificate chain and key (PEM)
  --client-ca F        client certificates are required on --listen and verified against this
                       CA bundle (mTLS): the fleet endpoints then need no token
  --admin ADDR:PORT    the REST API on loopback (default 127.0.0.1:9901); writes (POST /v1/apply,
                       DELETE /v1/resources/...) want the token here too when there is one
  --heartbeat D        a heartbeat line on idle streams this often (default 5s)

`portico get proxies` lists the proxies (NODE, GATEWAYS, CONNECTED, VERSION, LAST ERROR); a
proxy's NACK is a Warning on the resources whose items it rejected.
)"},
};

}  // namespace

int fail(std::string_view command, const std::string& message, int code) {
  std::fprintf(stderr, "portico %.*s: %s\n", static_cast<int>(command.size()), command.data(),
               message.c_str());
  return code;
}

int usage_error(std::string_view command, const std::string& message) {
  std::fprintf(stderr, "portico %.*s: %s (see `portico %.*s --help`)\n",
               static_cast<int>(command.size()), command.data(), message.c_str(),
               static_cast<int>(command.size()), command.data());
  return kExitUsage;
}

int parse_args(std::string_view command, const std::vector<std::string>& args,
               const std::vector<FlagSpec>& specs, Args* out) {
  std::string error = out->parse(args, specs);
  if (!error.empty()) return usage_error(command, error);
  if (out->help()) {
    const char* text = help_text(command);
    std::fputs(text ? text : overview_text(), stdout);
    return kExitOk;
  }
  return -1;
}

const char* help_text(std::string_view command) {
  if (command == "proxy dump") command = "proxy";
  for (const auto& h : kHelp) {
    if (command == h.command) return h.text;
  }
  return nullptr;
}

const char* overview_text() {
  return R"(portico - API gateway and control plane

Usage:
  portico run DIR [--admin ADDR:PORT] [--workers N] [--log-level LEVEL]
      Both planes in one process, configuration from the files in DIR (hot reloaded).
  portico validate DIR|FILE|- [-o json]
      Check a configuration offline: every problem with file:line:column and field path.
  portico get KIND [NAME] [-o table|wide|yaml|json]
      Resources of a running portico and their status (KIND: gw, vs, us, all, ...).
  portico describe KIND NAME
      One resource: status, reasons, spec, and what it produced in the running configuration.
  portico check
      Exit 1 when a resource is Rejected or Warning, printing what and why.
  portico proxy dump [--dir DIR]
      The configuration the data plane runs.
  portico server DIR [--listen ADDR:PORT] [--token-file F]
      The control plane alone: streams the configuration to `portico proxy` processes.
  portico proxy --server http(s)://H:P --node NAME [--gateways a,b] [--bind-address IP]
      The data plane alone, fed by a `portico server`.
  portico get proxies [--admin ADDR:PORT|https://ADDR:PORT] [--token-file F] [--ca F --cert F --key F]
      The proxies of a `portico server`: node, Gateways, connected, version, last error.
  portico route explain METHOD URL [-H 'Name: value']... [--dir DIR]
      Which gateway, virtual service, route, upstream and policies serve a request, and why the
      earlier routes did not match.
  portico route add|remove --dir DIR --vs NAME ...
      Edit a VirtualService's routes in its YAML file (validated first; comments kept).
  portico diff DIR|FILE
      What applying these files to the running portico would change.
  portico apply -f FILE|DIR|- [--server URL] [--token-file F]
      Apply resources through the API into the store in use (files, etcd, Consul KV).
  portico delete KIND NAME [-n NS] | -f FILE
      Delete resources through the API.
  portico version

Commands reading a running portico take --admin ADDR:PORT (default 127.0.0.1:9901). Every command
takes --help. Exit codes: 0 ok; 1 the answer is no (errors, problems, differences, not found);
2 bad arguments; 3 the admin API or the files could not be read.
)";
}

}  // namespace portico::cli
