#!/usr/bin/env python3
"""Fleet propagation time: from a file written in the directory of `portico server` to all three
`portico proxy` processes serving the change (python3 standard library only).

  bench/fleet/propagation.py [--portico BIN] [--changes 50] [--poll-ms 2] [--timeout 10]

Starts `portico server DIR` and three `portico proxy --workers 1` bound to 127.0.0.2, .3 and .4
(--bind-address), with a Gateway and one VirtualService of directResponseAction routes. Then,
--changes times, rewrites the VirtualService file atomically (temporary file + rename) so that the
route /bench answers 200 "v<i>", and polls GET /bench on each proxy every --poll-ms until all three
answer "v<i>". The delay from the start of the write to the last proxy's first good answer is
recorded; p50, p99 and max are printed (target: p50 <= 50 ms, p99 <= 250 ms). Every process is
stopped by its PID.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests"))

from support import portico_testlib as t  # noqa: E402
from support import fleet as f  # noqa: E402

ADDRESSES = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]


def vs_yaml(i: int) -> str:
    return t.to_yaml(t.virtual_service("bench", [
        t.route("bench", [t.matcher(exact="/bench")], direct=(200, f"v{i}")),
    ]))


def write_atomic(directory: str, name: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(directory), prefix=".bench-")
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.rename(tmp, os.path.join(directory, name))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--portico", default=os.environ.get("PORTICO_BIN", os.path.join(REPO, "build", "portico")))
    ap.add_argument("--changes", type=int, default=50)
    ap.add_argument("--poll-ms", type=float, default=2.0)
    ap.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args()

    cfg = t.ConfigDir()
    procs = []
    try:
        port = t.free_port()
        cfg.write("vs.yaml", vs_yaml(0))
        cfg.write_obj("gateway.yaml", t.gateway("gw", port, ["bench"]))
        server = f.Server(cfg.path)
        server.binary = args.portico
        procs.append(server)
        server.start()
        for i, addr in enumerate(ADDRESSES):
            p = f.Proxy(server.url, f"p{i + 1}", addr)
            p.binary = args.portico
            procs.append(p)
            p.start()
        for addr in ADDRESSES:
            t.wait_until(lambda: f.serves(addr, port, "/bench", b"v0"), 10, message=f"{addr} serves v0")
        delays = []
        for i in range(1, args.changes + 1):
            want = f"v{i}".encode()
            start = time.monotonic()
            write_atomic(cfg.path, "vs.yaml", vs_yaml(i))
            pending = set(ADDRESSES)
            while pending:
                for addr in list(pending):
                    if f.serves(addr, port, "/bench", want):
                        pending.discard(addr)
                if time.monotonic() - start > args.timeout:
                    print(f"change {i}: not served by {sorted(pending)} within {args.timeout} s")
                    return 1
                if pending:
                    time.sleep(args.poll_ms / 1000)
            delays.append((time.monotonic() - start) * 1000)
            time.sleep(0.05)
        delays.sort()
        p99 = delays[min(len(delays) - 1, int(round(0.99 * (len(delays) - 1))))]
        print(f"fleet propagation (change stored -> all 3 proxies serve it), {len(delays)} changes: "
              f"p50 {statistics.median(delays):.1f} ms, p99 {p99:.1f} ms, max {delays[-1]:.1f} ms "
              f"(target p50 <= 50 ms, p99 <= 250 ms)")
        return 0
    finally:
        for p in reversed(procs):
            p.stop()
        cfg.cleanup()


if __name__ == "__main__":
    sys.exit(main())
