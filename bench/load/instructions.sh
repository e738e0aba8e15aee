#!/usr/bin/env bash
# Instructions per proxied request, Portico against nginx: a count that a busy machine does not move.
#
#   bench/load/instructions.sh [--portico BIN] [--requests N] [--connections C] [--rounds R]
#                              [--keep DIR]   (keep the callgrind dumps for callgrind_annotate)
#                              [--syscalls]   (instead: native run, system calls and CPU per request)
#                              [--h2c]        (HTTP/2 with prior knowledge, -m 10 streams per connection,
#                                              to each proxy's cleartext HTTP/2 listener)
#                              [--haproxy]    (HAProxy, nbthread 1, as a third proxy)
#                              [--no-grpc-web] (Portico's Gateway with grpcWeb.disable: what the
#                                              default-on gRPC-Web filter costs other requests)
#
# Starts an upstream nginx (`return 200 "ok"` on /small), nginx as a proxy and `portico run` (both one
# worker, pooled keep-alive upstream connections, configured as bench/load/run.sh configures them),
# each proxy under `valgrind --tool=callgrind` (nginx with master_process off: one process). Warms each
# proxy up, then for each round and proxy zeroes callgrind's counters, runs
# `h2load --h1 -n N -c C -m 1 .../small`, dumps the counters and divides the instructions (user space
# only: this kind of VM has no hardware counters for `perf stat -e instructions`) by the 2xx answers.
# Prints one line per run and a summary line:
#   INSTR portico_per_req=... nginx_per_req=... ratio=...
# With --syscalls the proxies run natively and `perf stat -e raw_syscalls:sys_enter -p PID` (a
# software tracepoint, available without hardware counters) counts their system calls per request,
# the kernel half of the cost that callgrind cannot see; CPU µs per request (utime+stime) is printed
# too but moves with the machine's load:
#   SYSCALLS portico_per_req=... nginx_per_req=... ratio=...
# Needs valgrind, h2load (nghttp2-client), nginx. Everything listens on 127.0.0.1; every process is
# started here and stopped by its PID.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LIB="$HERE/benchlib.py"
PORTICO_BIN="$REPO/build/portico"
REQUESTS=20000
CONNS=64
ROUNDS=2
KEEP=""
MODE=callgrind
H2C=0
WITH_HAPROXY=0
NO_GRPC_WEB=0

while [ $# -gt 0 ]; do
  case "$1" in
    --portico) PORTICO_BIN=$2; shift 2 ;;
    --requests) REQUESTS=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --keep) KEEP=$2; shift 2 ;;
    --syscalls) MODE=native; shift ;;
    --h2c) H2C=1; shift ;;
    --haproxy) WITH_HAPROXY=1; shift ;;
    --no-grpc-web) NO_GRPC_WEB=1; shift ;;
    -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "instructions.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
for tool in nginx h2load valgrind callgrind_control python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "instructions.sh: missing $tool" >&2; exit 2; }
done
[ -x "$PORTICO_BIN" ] || { echo "instructions.sh: no Portico binary at $PORTICO_BIN" >&2; exit 2; }

WORK=$(mktemp -d /tmp/portico-instr.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.3
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$KEEP" ]; then mkdir -p "$KEEP" && cp "$WORK"/cg/callgrind.out.* "$KEEP"/ 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$WITH_HAPROXY" = 1 ] && { command -v haproxy >/dev/null 2>&1 || { echo "instructions.sh: missing haproxy" >&2; exit 2; }; }
mapfile -t PORTS < <(python3 "$LIB" freeports 5)
UP_PORT=${PORTS[0]} NGINX_PORT=${PORTS[1]} PORTICO_PORT=${PORTS[2]} ADMIN_PORT=${PORTS[3]} HAPROXY_PORT=${PORTS[4]}
# The load: HTTP/1.1 one request at a time per connection, or HTTP/2 (prior knowledge) with 10 streams.
H2LOAD_MODE=(--h1 -m 1)
NGINX_LISTEN_OPT=""
HAPROXY_BIND_OPT=""
PORTICO_GW_OPT=""
if [ "$H2C" = 1 ]; then
  H2LOAD_MODE=(-m 10)
  NGINX_LISTEN_OPT=" http2"
  HAPROXY_BIND_OPT=" proto h2"
  PORTICO_GW_OPT=$'\n  httpOptions:\n    http2:\n      cleartextPriorKnowledge: true'
fi
if [ "$NO_GRPC_WEB" = 1 ]; then
  PORTICO_GW_OPT+=$'\n  httpGateway:\n    options:\n      grpcWeb: {disable: true}'
fi

mkdir -p "$WORK/upstream/logs" "$WORK/nginx/logs" "$WORK/portico/conf"
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
  }
}
EOF
cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
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
  upstream up {
    server 127.0.0.1:$UP_PORT;
    keepalive 4096;
    keepalive_requests 1000000;
  }
  proxy_buffer_size 64k;
  proxy_buffers 8 64k;
  proxy_busy_buffers_size 128k;
  server {
    listen 127.0.0.1:$NGINX_PORT$NGINX_LISTEN_OPT backlog=4096;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
cat >"$WORK/portico/conf/bench.yaml" <<EOF
apiVersion: gateway.portico.dev/v1
kind: Gateway
metadata:
  name: bench
spec:
  bindAddress: 127.0.0.1
  bindPort: $PORTICO_PORT$PORTICO_GW_OPT
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

nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" -e "$WORK/upstream/logs/error.log" \
  >"$WORK/upstream/logs/out" 2>&1 &
PIDS+=($!)
mkdir -p "$WORK/cg"
CG=(valgrind --tool=callgrind --instr-atstart=yes --callgrind-out-file="$WORK/cg/callgrind.out.%p")
[ "$MODE" = native ] && CG=()
"${CG[@]}" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/logs/error.log" \
  >"$WORK/nginx/logs/out" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
"${CG[@]}" "$PORTICO_BIN" run "$WORK/portico/conf" --workers 1 --admin "127.0.0.1:$ADMIN_PORT" --log-level warn \
  >"$WORK/portico/log" 2>&1 &
PORTICO_PID=$!
PIDS+=("$PORTICO_PID")
PROXIES=(nginx portico)
if [ "$WITH_HAPROXY" = 1 ]; then
  mkdir -p "$WORK/haproxy"
  cat >"$WORK/haproxy/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 8000

defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 60s
  timeout server 60s

frontend fe
  bind 127.0.0.1:$HAPROXY_PORT$HAPROXY_BIND_OPT
  default_backend be

backend be
  server up 127.0.0.1:$UP_PORT
EOF
  "${CG[@]}" haproxy -db -f "$WORK/haproxy/haproxy.cfg" >"$WORK/haproxy/log" 2>&1 &
  HAPROXY_PID=$!
  PIDS+=("$HAPROXY_PID")
  PROXIES+=(haproxy)
fi

python3 "$LIB" wait-http "http://127.0.0.1:$UP_PORT/small" --body ok
python3 "$LIB" wait-http "http://127.0.0.1:$ADMIN_PORT/ready" --body ready --timeout 60
declare -A URL=([nginx]="http://127.0.0.1:$NGINX_PORT/small" [portico]="http://127.0.0.1:$PORTICO_PORT/small"
  [haproxy]="http://127.0.0.1:$HAPROXY_PORT/small")
declare -A PID=([nginx]=$NGINX_PID [portico]=$PORTICO_PID [haproxy]=${HAPROXY_PID:-0})
wait_proxy() {  # wait_proxy URL: one request in the load's protocol answered 200 within 60 s
  local i
  for ((i = 0; i < 600; i++)); do
    if h2load "${H2LOAD_MODE[@]}" -n 1 -c 1 "$1" 2>/dev/null | grep -q ' 1 2xx'; then return 0; fi
    sleep 0.1
  done
  echo "instructions.sh: $1 did not answer" >&2
  exit 1
}
for p in "${PROXIES[@]}"; do wait_proxy "${URL[$p]}"; done

for p in "${PROXIES[@]}"; do  # warm-up: pools filled, buffers grown
  h2load "${H2LOAD_MODE[@]}" -n 2000 -c "$CONNS" "${URL[$p]}" >/dev/null
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
if [ "$MODE" = native ]; then
  command -v perf >/dev/null 2>&1 || { echo "instructions.sh: --syscalls needs perf" >&2; exit 2; }
  declare -A SUM=([nginx]=0 [portico]=0 [haproxy]=0) DONE=([nginx]=0 [portico]=0 [haproxy]=0)
  hz=$(getconf CLK_TCK)
  for ((r = 1; r <= ROUNDS; r++)); do
    for p in "${PROXIES[@]}"; do
      out="$WORK/perf-$p-$r.csv"
      perf stat -x, -e raw_syscalls:sys_enter -p "${PID[$p]}" -o "$out" &
      perf_pid=$!
      sleep 0.5
      t0=$(cpu_ticks "${PID[$p]}")
      h2out=$(h2load "${H2LOAD_MODE[@]}" -n "$REQUESTS" -c "$CONNS" "${URL[$p]}")
      t1=$(cpu_ticks "${PID[$p]}")
      kill -INT "$perf_pid"
      wait "$perf_pid" || true
      n=$(awk -F, '$3 ~ /sys_enter/ {print $1}' "$out")
      ok=$(sed -n 's/.*status codes: \([0-9]*\) 2xx.*/\1/p' <<<"$h2out")
      python3 -c "print(f'run round=$r proxy=$p requests_2xx=$ok syscalls_per_req={$n / $ok:.2f} cpu_us_per_req={($t1 - $t0) * 1e6 / $hz / $ok:.1f}')"
      SUM[$p]=$((SUM[$p] + n))
      DONE[$p]=$((DONE[$p] + ok))
    done
  done
  python3 -c "
p = ${SUM[portico]} / ${DONE[portico]}; n = ${SUM[nginx]} / ${DONE[nginx]}
h = f' haproxy_per_req={${SUM[haproxy]} / ${DONE[haproxy]}:.2f} ratio_haproxy={p / (${SUM[haproxy]} / ${DONE[haproxy]}):.2f}' if ${DONE[haproxy]} else ''
print(f'SYSCALLS portico_per_req={p:.2f} nginx_per_req={n:.2f} ratio={p / n:.2f}{h}')"
  exit 0
fi

# callgrind's counters: zeroed before a run, dumped after it; the dump's totals line is the count.
declare -A SUM=([nginx]=0 [portico]=0 [haproxy]=0) DONE=([nginx]=0 [portico]=0 [haproxy]=0)
for ((r = 1; r <= ROUNDS; r++)); do
  for p in "${PROXIES[@]}"; do
    (cd "$WORK/cg" && callgrind_control -z "${PID[$p]}" >/dev/null 2>&1)
    h2out=$(h2load "${H2LOAD_MODE[@]}" -n "$REQUESTS" -c "$CONNS" "${URL[$p]}")
    before=$(ls "$WORK/cg" | wc -l)
    (cd "$WORK/cg" && callgrind_control -d "${PID[$p]}" >/dev/null 2>&1)
    for _ in $(seq 50); do [ "$(ls "$WORK/cg" | wc -l)" -gt "$before" ] && break; sleep 0.1; done
    dump=$(ls -t "$WORK/cg"/callgrind.out."${PID[$p]}".* | head -n1)
    ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$dump")
    ok=$(sed -n 's/.*status codes: \([0-9]*\) 2xx.*/\1/p' <<<"$h2out")
    echo "run round=$r proxy=$p requests_2xx=$ok instr_per_req=$((ir / ok))"
    SUM[$p]=$((SUM[$p] + ir))
    DONE[$p]=$((DONE[$p] + ok))
  done
done
python3 -c "
p = ${SUM[portico]} / ${DONE[portico]}; n = ${SUM[nginx]} / ${DONE[nginx]}
h = f' haproxy_per_req={${SUM[haproxy]} / ${DONE[haproxy]}:.0f} ratio_haproxy={p / (${SUM[haproxy]} / ${DONE[haproxy]}):.2f}' if ${DONE[haproxy]} else ''
print(f'INSTR portico_per_req={p:.0f} nginx_per_req={n:.0f} ratio={p / n:.2f}{h}')"
