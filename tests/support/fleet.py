"""A `portico server` and `portico proxy` processes for the fleet tests and benchmarks
(tests/integration/test_fleet.py, bench/fleet/propagation.py). Ports are picked at run time; every
process is stopped by its PID (through the cleanups of portico_testlib)."""

import http.client
import os

from support import portico_testlib as t


class Server(t.Portico):
    """`portico server DIR --listen 127.0.0.1:PORT --admin 127.0.0.1:PORT [--token-file F]`."""

    def __init__(self, config_dir: str, token_file: str | None = None, listen_port: int | None = None,
                 extra_args: list[str] | None = None, listen_host: str = t.LOCALHOST, scheme: str = "http"):
        super().__init__(config_dir, extra_args=extra_args)
        self.scheme = scheme
        self.listen_port = listen_port or t.free_port()
        self.listen_host = listen_host
        self.token_file = token_file

    @property
    def url(self) -> str:
        return f"{self.scheme}://{t.LOCALHOST}:{self.listen_port}"

    def command(self) -> list[str]:
        cmd = [self.binary, "server", self.config_dir, "--admin", self.admin,
               "--listen", f"{self.listen_host}:{self.listen_port}", "--heartbeat", "1s"]
        if self.token_file:
            cmd += ["--token-file", self.token_file]
        return cmd + self.extra_args


class Proxy(t.Portico):
    """`portico proxy --server URL --node NAME --bind-address IP --admin 127.0.0.1:PORT`."""

    def __init__(self, server_url: str, node: str, bind_address: str, token_file: str | None = None,
                 gateways: str | None = None, workers: int = 1, extra: list[str] | None = None):
        super().__init__("-", workers=workers)
        self.server_url = server_url
        self.node = node
        self.bind_address = bind_address
        self.token_file = token_file
        self.gateways = gateways
        self.extra = extra or []

    def command(self) -> list[str]:
        cmd = [self.binary, "proxy", "--server", self.server_url, "--node", self.node,
               "--bind-address", self.bind_address, "--admin", self.admin,
               "--workers", str(self.workers), "--idle-timeout", "4s"]
        if self.token_file:
            cmd += ["--token-file", self.token_file]
        if self.gateways:
            cmd += ["--gateways", self.gateways]
        return cmd + self.extra

    def fleet(self) -> dict:
        return self.admin_get("/fleet").json()

    def counter(self, name: str) -> float:
        return t.metric_sum(self.stats(), name)


def register(owner, p: t.Portico, wait_ready: bool = True) -> t.Portico:
    t._register_cleanup(owner, p.stop)
    if isinstance(owner, type) or isinstance(owner, t.IntegrationTest):
        t.IntegrationTest._owner_list(owner).append(p)
    p.start(wait_ready=wait_ready)
    return p


def get(address: str, port: int, path: str, timeout: float = 2.0, host: str | None = None) -> tuple[int, bytes]:
    """GET http://address:port/path on a new connection (Host: `host` when given): (status, body)."""
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host} if host else {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def serves(address: str, port: int, path: str, body: bytes | None = None, host: str | None = None) -> bool:
    try:
        status, got = get(address, port, path, timeout=1.0, host=host)
    except OSError:
        return False
    return status == 200 and (body is None or got == body)


def write_token(directory: str, name: str, token: str) -> str:
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(token + "\n")
    return path
