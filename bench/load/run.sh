#!/usr/bin/env bash
# Side-by-side load benchmark: Portico against nginx and HAProxy, method of shared/reference/benchmarking.md.
#
#   bench/load/run.sh [--rounds N] [--duration S]
#                     [--scenarios c64,c1000,big,tls-c64,hs-ecdsa,hs-rsa,h2-tls,h2c]
#                     [--only-peers]
#                     [--portico BIN] [--warmup S] [--busy-threshold CORES] [--wait-quiet S] [--nice N]
#                     [--out FILE]
#
# Layout: upstream nginx (1 worker) and wrk -t1 on CPU 0; each proxy on CPU 1, one worker, pooled
# keep-alive to the upstream, no access log. Every proxy is started once; the load runs are interleaved
# A B C, C B A, A B C ... per scenario. For every run: req/s, p50, p99, non-2xx and socket errors, and the
# proxy's CPU seconds per request (utime+stime from /proc/<pid>/stat). A run during which the rest of the
# machine used more than --busy-threshold cores is marked busy and left out of the medians; before each run
# the script waits up to --wait-quiet seconds (default 15, 0: never) for a quiet second. --nice N (e.g. -10)
# runs the upstream, the proxies and wrk at that nice level and, when the kernel groups tasks by session
# (sched_autogroup), sets this session's autogroup nice to N until exit: that shields the measured
# processes from other users' jobs (at those jobs' expense).
# TLS scenarios (every proxy terminates TLS with the same self-signed certificates, made at run time):
#   tls-c64   64 keep-alive HTTPS connections, small body;
#   hs-ecdsa  a new TLS connection (full handshake, no resumption: wrk offers no session) for every
#             request, ECDSA P-256 certificate, 64 connections: req/s is handshakes/s;
#   hs-rsa    the same with an RSA-2048 certificate.
# HTTP/2 scenarios (load from h2load -t1 instead of wrk: 64 connections x 10 concurrent streams each
# (-m10), small body; p50/p99 computed from h2load's per-request --log-file, since h2load itself prints
# only min/max/mean):
#   h2-tls    HTTP/2 over TLS (ALPN h2) on the ECDSA listeners: nginx `listen ... ssl http2`, HAProxy
#             `alpn h2,http/1.1`, Portico's default alpnProtocols [h2, http/1.1] (wrk offers no ALPN, so
#             tls-c64 stays HTTP/1.1 on the same listeners);
#   h2c       cleartext HTTP/2 with prior knowledge on a listener of its own: nginx `listen ... http2`,
#             HAProxy `bind ... proto h2`, Portico `http2.cleartextPriorKnowledge: true`.
# Upstream legs stay HTTP/1.1 keep-alive for every proxy (the same pools as the other scenarios).
# Everything listens on 127.0.0.1; every process is started here, recorded by PID and killed by PID on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LIB="$HERE/benchlib.py"

ROUNDS=3
DURATION=10
SCENARIOS=c64,c1000,big
ONLY_PEERS=0
PORTICO_BIN="$REPO/build/portico"
WARMUP=2
BUSY_THRESHOLD=0.25
WAIT_QUIET=15
NICE=""
OUT=""
PROXY_CPU=1
LOAD_CPU=0

usage() { sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --scenarios) SCENARIOS=$2; shift 2 ;;
    --only-peers) ONLY_PEERS=1; shift ;;
    --portico) PORTICO_BIN=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --busy-threshold) BUSY_THRESHOLD=$2; shift 2 ;;
    --wait-quiet) WAIT_QUIET=$2; shift 2 ;;
    --nice) NICE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --rounds must be a positive integer" >&2; exit 2; }
[[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --duration must be a positive integer (seconds)" >&2; exit 2; }
[[ "$WAIT_QUIET" =~ ^[0-9]+$ ]] || { echo "run.sh: --wait-quiet must be an integer (seconds)" >&2; exit 2; }
[ -z "$NICE" ] || [[ "$NICE" =~ ^-?[0-9]+$ ]] || { echo "run.sh: --nice must be an integer" >&2; exit 2; }
[[ "$WARMUP" =~ ^[0-9]+$ ]] || { echo "run.sh: --warmup must be an integer (seconds)" >&2; exit 2; }

# ------------------------------------------------------------------------------------------------ tools
missing=()
for tool in nginx haproxy wrk taskset python3 curl openssl; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "run.sh: missing tools: ${missing[*]}" >&2
  echo "run.sh: install them with scripts/install-deps.sh (from the repository root; it uses sudo when not root)" >&2
  exit 2
fi
if [ "$ONLY_PEERS" = 0 ] && [ ! -x "$PORTICO_BIN" ]; then
  echo "run.sh: no Portico binary at $PORTICO_BIN (build it, pass --portico BIN, or use --only-peers)" >&2
  exit 2
fi
if [[ ",$SCENARIOS," == *,h2-tls,* || ",$SCENARIOS," == *,h2c,* ]] && ! command -v h2load >/dev/null 2>&1; then
  echo "run.sh: the h2-tls and h2c scenarios need h2load (Debian package nghttp2-client)" >&2
  exit 2
fi
ncpu=$(nproc --all)
if [ "$ncpu" -lt 2 ]; then
  echo "run.sh: needs 2 CPUs (proxy on CPU 1, upstream and wrk on CPU 0); this machine has $ncpu" >&2
  exit 2
fi

# Scenarios: name -> connections and path.
scenario_conns() {
  case "$1" in c64|tls-c64|hs-ecdsa|hs-rsa|h2-tls|h2c) echo 64 ;; c1000) echo 1000 ;; big) echo 16 ;; *) return 1 ;; esac
}
scenario_path() { case "$1" in c64|c1000|tls-c64|hs-ecdsa|hs-rsa|h2-tls|h2c) echo /small ;; big) echo /big ;; *) return 1 ;; esac; }
# Which of a proxy's listeners a scenario uses: plain, ecdsa (TLS, ECDSA certificate), rsa or h2c.
scenario_listener() { case "$1" in tls-c64|hs-ecdsa|h2-tls) echo ecdsa ;; hs-rsa) echo rsa ;; h2c) echo h2c ;; *) echo plain ;; esac; }
# The load generator: wrk (HTTP/1.1) or h2load (HTTP/2).
scenario_tool() { case "$1" in h2-tls|h2c) echo h2load ;; *) echo wrk ;; esac; }
scenario_header() { case "$1" in hs-*) echo "Connection: close" ;; *) echo "" ;; esac; }
IFS=, read -r -a SCEN_LIST <<<"$SCENARIOS"
need_fds=256
for s in "${SCEN_LIST[@]}"; do
  c=$(scenario_conns "$s") || {
    echo "run.sh: unknown scenario '$s' (c64, c1000, big, tls-c64, hs-ecdsa, hs-rsa, h2-tls, h2c)" >&2
    exit 2
  }
  [ $((c * 3 + 256)) -gt "$need_fds" ] && need_fds=$((c * 3 + 256))
done

# c1000: the proxy holds 1000 client plus up to 1000 upstream sockets, wrk 1000.
soft=$(ulimit -Sn)
if [ "$soft" != unlimited ] && [ "$soft" -lt "$need_fds" ]; then
  hard=$(ulimit -Hn)
  if [ "$hard" = unlimited ] || [ "$hard" -ge 65536 ]; then ulimit -n 65536; else ulimit -n "$hard"; fi
  soft=$(ulimit -Sn)
  if [ "$soft" != unlimited ] && [ "$soft" -lt "$need_fds" ]; then
    echo "run.sh: open-file limit $soft is below the $need_fds these scenarios need; raise 'ulimit -Hn'" >&2
    exit 2
  fi
fi

# ------------------------------------------------------------------------------------------------ cleanup
WORK=$(mktemp -d /tmp/portico-bench.XXXXXX)
chmod 755 "$WORK"   # nginx workers run as nobody when started by root; they read files below here
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    local alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.2
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${AUTOGROUP_OLD:-}" ]; then echo "$AUTOGROUP_OLD" >"/proc/$$/autogroup" 2>/dev/null || true; fi
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "run.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mapfile -t PORTS < <(python3 "$LIB" freeports 14)
UP_PORT=${PORTS[0]} NGINX_PORT=${PORTS[1]} HAPROXY_PORT=${PORTS[2]} PORTICO_PORT=${PORTS[3]} ADMIN_PORT=${PORTS[4]}
declare -A TLS_PORT=([nginx-ecdsa]=${PORTS[5]} [nginx-rsa]=${PORTS[6]} [haproxy-ecdsa]=${PORTS[7]}
  [haproxy-rsa]=${PORTS[8]} [portico-ecdsa]=${PORTS[9]} [portico-rsa]=${PORTS[10]})
# Cleartext HTTP/2 (prior knowledge): a listener of its own per proxy.
declare -A H2C_PORT=([nginx]=${PORTS[11]} [haproxy]=${PORTS[12]} [portico]=${PORTS[13]})

# One self-signed certificate of each kind, shared by every proxy.
mkdir -p "$WORK/pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench.example.test \
  -keyout "$WORK/pki/ecdsa.key" -out "$WORK/pki/ecdsa.crt" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench.example.test \
  -keyout "$WORK/pki/rsa.key" -out "$WORK/pki/rsa.crt" 2>/dev/null
for k in ecdsa rsa; do cat "$WORK/pki/$k.crt" "$WORK/pki/$k.key" >"$WORK/pki/$k.pem"; done
chmod -R a+rX "$WORK/pki"

if [ -z "$OUT" ]; then
  mkdir -p "$REPO/bench/results"
  OUT="$REPO/bench/results/run-$(date +%Y%m%d-%H%M%S).jsonl"
fi
: >"$OUT"

# ------------------------------------------------------------------------------------------------ upstream
mkdir -p "$WORK/upstream/www" "$WORK/upstream/logs"
head -c 102400 /dev/urandom >"$WORK/upstream/www/big"
chmod -R a+rX "$WORK/upstream"
cat >"$WORK/upstream/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $WORK/upstream/nginx.pid;
error_log $WORK/upstream/logs/error.log warn;
events { worker_connections 10000; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  client_body_temp_path $WORK/upstream/client_body;
  proxy_temp_path $WORK/upstream/proxy;
  server {
    listen 127.0.0.1:$UP_PORT reuseport backlog=4096;
    location = /small { default_type text/plain; return 200 "ok"; }
    location = /big { root $WORK/upstream/www; default_type application/octet-stream; }
  }
}
EOF

NICE_CMD=()
AUTOGROUP_OLD=""
if [ -n "$NICE" ]; then
  NICE_CMD=(nice -n "$NICE")
  # With autogroup scheduling, nice only ranks tasks inside one session; the session's own nice ranks it
  # against the others. Saved here and restored by cleanup.
  if [ "$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null || echo 0)" = 1 ] && [ -w "/proc/$$/autogroup" ]; then
    old=$(sed -n 's/.* nice \(-\{0,1\}[0-9]*\)$/\1/p' "/proc/$$/autogroup")
    if echo "$NICE" >"/proc/$$/autogroup" 2>/dev/null; then
      AUTOGROUP_OLD=${old:-0}
    else
      echo "run.sh: could not set this session's autogroup nice; other sessions still compete at par" >&2
    fi
  fi
fi

start_bg() {  # start_bg LOGFILE CMD... ; sets STARTED_PID
  "${NICE_CMD[@]}" "${@:2}" >"$1" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
}

start_bg "$WORK/upstream/logs/stdout.log" taskset -c "$LOAD_CPU" nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" -e "$WORK/upstream/logs/error.log"
UP_PID=$STARTED_PID

# ------------------------------------------------------------------------------------------------ proxies
mkdir -p "$WORK/nginx/logs"
cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 10000; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  client_body_temp_path $WORK/nginx/client_body;
  proxy_temp_path $WORK/nginx/proxy;
  # The same idle pool as Portico's (4096 per endpoint and worker) and buffers of Portico's read size.
  upstream up {
    server 127.0.0.1:$UP_PORT;
    keepalive 4096;
    keepalive_requests 1000000;
  }
  proxy_buffer_size 64k;
  proxy_buffers 8 64k;
  proxy_busy_buffers_size 128k;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_tickets on;
  server {
    listen 127.0.0.1:$NGINX_PORT backlog=4096;
    listen 127.0.0.1:${H2C_PORT[nginx]} http2 backlog=4096;
    listen 127.0.0.1:${TLS_PORT[nginx-ecdsa]} ssl http2 backlog=4096;
    ssl_certificate $WORK/pki/ecdsa.crt;
    ssl_certificate_key $WORK/pki/ecdsa.key;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
  server {
    listen 127.0.0.1:${TLS_PORT[nginx-rsa]} ssl backlog=4096;
    ssl_certificate $WORK/pki/rsa.crt;
    ssl_certificate_key $WORK/pki/rsa.key;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF

mkdir -p "$WORK/haproxy"
cat >"$WORK/haproxy/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 8000
  ssl-default-bind-options ssl-min-ver TLSv1.2

defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 60s
  timeout server 60s

frontend fe
  bind 127.0.0.1:$HAPROXY_PORT
  bind 127.0.0.1:${H2C_PORT[haproxy]} proto h2
  bind 127.0.0.1:${TLS_PORT[haproxy-ecdsa]} ssl crt $WORK/pki/ecdsa.pem alpn h2,http/1.1
  bind 127.0.0.1:${TLS_PORT[haproxy-rsa]} ssl crt $WORK/pki/rsa.pem alpn http/1.1
  default_backend be

backend be
  server up 127.0.0.1:$UP_PORT
EOF

mkdir -p "$WORK/portico/conf"
cat >"$WORK/portico/conf/bench.yaml" <<EOF
apiVersion: gateway.portico.dev/v1
kind: Gateway
metadata:
  name: bench
spec:
  bindAddress: 127.0.0.1
  bindPort: $PORTICO_PORT
---
apiVersion: gateway.portico.dev/v1
kind: VirtualService
metadata:
  name: bench
spec:
  virtualHost:
    domains: ["*"]
    routes:
      - matchers:
          - prefix: /
        routeAction:
          single:
            upstream:
              name: up
---
apiVersion: gateway.portico.dev/v1
kind: Upstream
metadata:
  name: up
spec:
  static:
    hosts:
      - addr: 127.0.0.1
        port: $UP_PORT
EOF
# Cleartext HTTP/2 listener: written only when the h2c scenario runs.
if [[ ",$SCENARIOS," == *,h2c,* ]]; then
  cat >>"$WORK/portico/conf/bench.yaml" <<EOF
---
apiVersion: gateway.portico.dev/v1
kind: Gateway
metadata:
  name: bench-h2c
spec:
  bindAddress: 127.0.0.1
  bindPort: ${H2C_PORT[portico]}
  httpOptions:
    http2:
      cleartextPriorKnowledge: true
  virtualServices:
    - name: bench
EOF
fi
# TLS listeners: written only when a TLS scenario runs.
if [[ ",$SCENARIOS," == *,tls-c64,* || ",$SCENARIOS," == *,hs-* || ",$SCENARIOS," == *,h2-tls,* ]]; then
  for k in ecdsa rsa; do
    cat >>"$WORK/portico/conf/bench.yaml" <<EOF
---
apiVersion: gateway.portico.dev/v1
kind: Secret
metadata:
  name: bench-$k
spec:
  tls:
    certChainFile: $WORK/pki/$k.crt
    privateKeyFile: $WORK/pki/$k.key
---
apiVersion: gateway.portico.dev/v1
kind: Gateway
metadata:
  name: bench-$k
spec:
  bindAddress: 127.0.0.1
  bindPort: ${TLS_PORT[portico-$k]}
  ssl: true
  virtualServices:
    - name: bench-$k
---
apiVersion: gateway.portico.dev/v1
kind: VirtualService
metadata:
  name: bench-$k
spec:
  sslConfig:
    secretRef:
      name: bench-$k
  virtualHost:
    domains: ["*"]
    routes:
      - matchers:
          - prefix: /
        routeAction:
          single:
            upstream:
              name: up
EOF
  done
fi

declare -A PROXY_PID PROXY_URL
PROXIES=(nginx haproxy)

start_bg "$WORK/nginx/logs/stdout.log" taskset -c "$PROXY_CPU" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/logs/error.log"
PROXY_PID[nginx]=$STARTED_PID
PROXY_URL[nginx]="http://127.0.0.1:$NGINX_PORT"

start_bg "$WORK/haproxy/haproxy.log" taskset -c "$PROXY_CPU" haproxy -db -f "$WORK/haproxy/haproxy.cfg"
PROXY_PID[haproxy]=$STARTED_PID
PROXY_URL[haproxy]="http://127.0.0.1:$HAPROXY_PORT"

if [ "$ONLY_PEERS" = 0 ]; then
  start_bg "$WORK/portico/portico.log" taskset -c "$PROXY_CPU" "$PORTICO_BIN" run "$WORK/portico/conf" \
    --workers 1 --admin "127.0.0.1:$ADMIN_PORT" --log-level warn
  PROXY_PID[portico]=$STARTED_PID
  PROXY_URL[portico]="http://127.0.0.1:$PORTICO_PORT"
  PROXIES+=(portico)
fi

dump_logs() {
  local f
  for f in "$WORK"/upstream/logs/*.log "$WORK"/nginx/logs/*.log "$WORK"/haproxy/*.log "$WORK"/portico/*.log; do
    [ -s "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
  done
  return 0
}

proxy_url() {  # proxy_url PROXY SCENARIO
  local l
  l=$(scenario_listener "$2")
  case "$l" in
    plain) echo "${PROXY_URL[$1]}" ;;
    h2c) echo "http://127.0.0.1:${H2C_PORT[$1]}" ;;
    *) echo "https://127.0.0.1:${TLS_PORT[$1-$l]}" ;;
  esac
}

wait_h2() {  # wait_h2 URL: the URL answers 200 over HTTP/2 (h2c prior knowledge or ALPN h2) within 10 s
  local flag=--http2 got=""
  [[ "$1" == http://* ]] && flag=--http2-prior-knowledge
  for _ in $(seq 1 100); do
    got=$(curl -sk "$flag" -o /dev/null -w '%{http_version} %{http_code}' --max-time 2 "$1" || true)
    [ "$got" = "2 200" ] && return 0
    sleep 0.1
  done
  echo "run.sh: $1 does not answer 200 over HTTP/2 (last: '$got')" >&2
  return 1
}

python3 "$LIB" wait-http "http://127.0.0.1:$UP_PORT/small" --body ok || { dump_logs; exit 1; }
if [ "$ONLY_PEERS" = 0 ]; then
  python3 "$LIB" wait-http "http://127.0.0.1:$ADMIN_PORT/ready" --body ready --timeout 20 || { dump_logs; exit 1; }
fi
for p in "${PROXIES[@]}"; do
  if ! python3 "$LIB" wait-http "${PROXY_URL[$p]}/small" --body ok ||
     ! python3 "$LIB" wait-http "${PROXY_URL[$p]}/big" --size 102400; then
    echo "run.sh: $p does not proxy /small and /big correctly" >&2
    dump_logs
    exit 1
  fi
  for s in "${SCEN_LIST[@]}"; do
    if [ "$(scenario_tool "$s")" = h2load ] && ! wait_h2 "$(proxy_url "$p" "$s")/small"; then
      dump_logs
      exit 1
    fi
    case "$(scenario_listener "$s")" in plain|h2c) continue ;; esac
    if ! python3 "$LIB" wait-http "$(proxy_url "$p" "$s")/small" --body ok --insecure; then
      echo "run.sh: $p does not proxy /small over TLS ($s)" >&2
      dump_logs
      exit 1
    fi
  done
done

# ------------------------------------------------------------------------------------------------ runs
echo "# portico load benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n), $(nproc --all) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(nginx -v 2>&1 | tr -d '\n'); $(haproxy -v | head -n1 | cut -d' ' -f1-3); $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)$(command -v h2load >/dev/null && echo "; $(h2load --version 2>&1 | head -n1)")"
if [ "$ONLY_PEERS" = 0 ]; then
  echo "# portico: $PORTICO_BIN, $("$PORTICO_BIN" version 2>/dev/null | head -n1), built $(date -u -r "$PORTICO_BIN" +%Y-%m-%dT%H:%M:%SZ); repository HEAD $(git -C "$REPO" log -1 --format=%h 2>/dev/null || echo '?')"
fi
echo "# proxies on CPU $PROXY_CPU; upstream nginx and wrk -t1 on CPU $LOAD_CPU; rounds=$ROUNDS duration=${DURATION}s scenarios=$SCENARIOS busy>${BUSY_THRESHOLD} cores nice=${NICE:-0}${AUTOGROUP_OLD:+ (session autogroup too)}"
echo "# raw results: $OUT"

if [ "$WARMUP" -gt 0 ]; then
  for p in "${PROXIES[@]}"; do
    "${NICE_CMD[@]}" taskset -c "$LOAD_CPU" wrk -t1 -c64 -d"${WARMUP}s" "${PROXY_URL[$p]}/small" >/dev/null
  done
fi

for s in "${SCEN_LIST[@]}"; do
  conns=$(scenario_conns "$s")
  path=$(scenario_path "$s")
  for ((r = 1; r <= ROUNDS; r++)); do
    order=("${PROXIES[@]}")
    if ((r % 2 == 0)); then
      order=()
      for ((i = ${#PROXIES[@]} - 1; i >= 0; i--)); do order+=("${PROXIES[$i]}"); done
    fi
    for p in "${order[@]}"; do
      quiet=""
      if [ "$WAIT_QUIET" -gt 0 ]; then
        quiet=$(python3 "$LIB" wait-quiet --max "$WAIT_QUIET" --threshold "$BUSY_THRESHOLD")
      fi
      hdr=()
      [ -n "$(scenario_header "$s")" ] && hdr=(--header "$(scenario_header "$s")")
      line=$(python3 "$LIB" measure --proxy-pid "${PROXY_PID[$p]}" --ours "$UP_PID" --label "$p" \
        --scenario "$s" --round "$r" --url "$(proxy_url "$p" "$s")$path" --connections "$conns" \
        --duration "$DURATION" --wrk-cpu "$LOAD_CPU" --busy-threshold "$BUSY_THRESHOLD" --nice "$NICE" \
        --tool "$(scenario_tool "$s")" --streams 10 "${hdr[@]}")
      echo "$line" >>"$OUT"
      python3 - "$line" "$quiet" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
quiet = sys.argv[2]
f = lambda x, d=2: "NA" if x is None else f"{x:.{d}f}"
sock = r["sock_connect"] + r["sock_read"] + r["sock_write"] + r["sock_timeout"]
print(f"run scenario={r['scenario']} round={r['round']} proxy={r['proxy']} rps={f(r['rps'], 0)} "
      f"p50_ms={f(r['p50_ms'], 3)} p99_ms={f(r['p99_ms'], 3)} cpu_us_per_req={f(r['cpu_us_per_req'])} "
      f"proxy_core_util={f(r['proxy_cpu_util'])} other_cores={f(r['other_cores'])} non2xx={r['non2xx']} "
      f"socket_errors={sock}" + (" BUSY" if r["busy"] else "") + (" ERROR" if "error" in r else "")
      + (f" ({quiet})" if quiet else ""))
PY
      # the proxy must still be alive
      if ! kill -0 "${PROXY_PID[$p]}" 2>/dev/null; then
        echo "run.sh: $p (pid ${PROXY_PID[$p]}) died during scenario $s" >&2
        dump_logs
        exit 1
      fi
      [ "$WAIT_QUIET" -gt 0 ] || sleep 1
    done
  done
done

echo "# summary (medians of runs not marked busy)"
python3 "$LIB" summarize "$OUT" --subject portico
