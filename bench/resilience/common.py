"""Shared helpers of the resilience benchmarks (python3 standard library, nginx, wrk, portico).
Every process started here is stopped by its PID."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PORTICO = os.environ.get("PORTICO_BIN", os.path.join(ROOT, "build", "portico"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(addr: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((addr, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{addr}:{port} not listening after {timeout}s")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_cpu_seconds(pid: int, name: str) -> float:
    """utime + stime of the threads of `pid` called `name` (0 when there is none)."""
    total = 0.0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() != name:
                    continue
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        except OSError:
            pass
    return total


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Nginx:
    """One nginx process (master_process off) listening on every (addr, port) given; /healthz and / answer
    200 with a short body."""

    def __init__(self, listens: list[tuple[str, int]]):
        self.listens = listens
        self.dir = tempfile.mkdtemp(prefix="portico-bench-nginx-")
        self.proc = None

    def start(self) -> "Nginx":
        d = self.dir
        listen = "\n".join(f"    listen {a}:{p};" for a, p in self.listens)
        conf = f"""
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 8192;
pid {d}/nginx.pid;
error_log {d}/err.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/cb; proxy_temp_path {d}/px; fastcgi_temp_path {d}/fc;
  uwsgi_temp_path {d}/uw; scgi_temp_path {d}/sc;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  server {{
{listen}
    location / {{ return 200 "ok\\n"; }}
  }}
}}
"""
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen(["nginx", "-p", d, "-e", f"{d}/err.log", "-c", path],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        a, p = self.listens[0]
        wait_port(a, p)
        return self

    def kill(self) -> None:
        """SIGKILL: the host dies without closing its connections gracefully."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc:
            stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def yaml_doc(obj) -> str:
    return json.dumps(obj)  # JSON is YAML


class Portico:
    def __init__(self, resources: list[dict], workers: int = 2):
        self.dir = tempfile.mkdtemp(prefix="portico-bench-")
        self.cfg = os.path.join(self.dir, "config")
        os.mkdir(self.cfg)
        for i, r in enumerate(resources):
            with open(os.path.join(self.cfg, f"{i:02d}.yaml"), "w") as f:
                f.write(yaml_doc(r))
        self.admin_port = free_port()
        self.workers = workers
        self.log = open(os.path.join(self.dir, "portico.log"), "wb")
        self.proc = None

    def start(self) -> "Portico":
        self.proc = subprocess.Popen([PORTICO, "run", self.cfg, "--admin", f"127.0.0.1:{self.admin_port}",
                                      "--workers", str(self.workers)],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("portico not ready")

    def stats(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/stats", timeout=5) as r:
            return r.read().decode()

    def metric(self, name: str, **labels) -> float:
        total = 0.0
        for line in self.stats().splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self) -> None:
        if self.proc:
            stop(self.proc)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def resource(kind: str, name: str, spec: dict) -> dict:
    return {"apiVersion": "gateway.portico.dev/v1", "kind": kind,
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def stack(listen_port: int, hosts: list[tuple[str, int]], upstream_extra: dict,
          route_options: dict | None = None) -> list[dict]:
    spec = {"static": {"hosts": [{"addr": a, "port": p} for a, p in hosts]}}
    spec.update(upstream_extra)
    route = {"name": "all", "matchers": [{"prefix": "/"}],
             "routeAction": {"single": {"upstream": {"name": "up", "namespace": "default"}}}}
    if route_options:
        route["options"] = route_options
    return [
        resource("Upstream", "up", spec),
        resource("VirtualService", "vs", {"virtualHost": {"domains": ["*"], "routes": [route]}}),
        resource("Gateway", "gw", {"bindAddress": "127.0.0.1", "bindPort": listen_port,
                                   "virtualServices": [{"name": "vs", "namespace": "default"}]}),
    ]
