"""A small authoritative DNS server over UDP for tests: A and AAAA records with TTLs, NXDOMAIN for
unknown names, NOERROR with no answer for a known name without records of the type asked, and a
failure mode (SERVFAIL, or silence to make clients time out). Importable (DnsServer, one thread) or
standalone: `python3 dns_server.py --port 0 --records FILE` prints the port, and re-reads FILE
({"name": {"a": [...], "aaaa": [...], "ttl": N}}) whenever it changes.
"""

import argparse
import ipaddress
import json
import os
import socket
import struct
import sys
import threading
import time

TYPE_A = 1
TYPE_AAAA = 28


def _read_name(packet, offset):
    labels = []
    while True:
        if offset >= len(packet):
            raise ValueError("truncated name")
        length = packet[offset]
        if length == 0:
            return ".".join(labels), offset + 1
        if length & 0xC0:
            raise ValueError("compression in a question")
        offset += 1
        labels.append(packet[offset:offset + length].decode("ascii", "replace"))
        offset += length


class DnsServer:
    def __init__(self, host="127.0.0.1", port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.records = {}  # name -> {"a": [...], "aaaa": [...], "ttl": n}
        self.mode = "ok"  # "ok", "servfail", "silent"
        self.queries = []  # (name, type) in order
        self.lock = threading.Lock()
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def set(self, name, a=(), aaaa=(), ttl=30):
        with self.lock:
            self.records[name.lower().rstrip(".")] = {"a": list(a), "aaaa": list(aaaa), "ttl": ttl}

    def remove(self, name):
        with self.lock:
            self.records.pop(name.lower().rstrip("."), None)

    def count(self, name):
        with self.lock:
            return sum(1 for n, _ in self.queries if n == name)

    def close(self):
        self._stop = True
        self.thread.join(timeout=2)
        self.sock.close()

    def _answer(self, packet):
        ident, flags, qd, _an, _ns, _ar = struct.unpack("!HHHHHH", packet[:12])
        if qd != 1:
            return None
        name, end = _read_name(packet, 12)
        qtype, qclass = struct.unpack("!HH", packet[end:end + 4])
        question = packet[12:end + 4]
        name = name.lower().rstrip(".")
        with self.lock:
            self.queries.append((name, qtype))
            mode = self.mode
            record = self.records.get(name)
            record = dict(record) if record else None
        if mode == "silent":
            return None
        rd = flags & 0x0100
        rcode = 0
        answers = []
        if mode == "servfail":
            rcode = 2
        elif record is None:
            rcode = 3
        else:
            ttl = int(record["ttl"])
            if qtype == TYPE_A and qclass == 1:
                for a in record["a"]:
                    answers.append((TYPE_A, ttl, ipaddress.IPv4Address(a).packed))
            elif qtype == TYPE_AAAA and qclass == 1:
                for a in record["aaaa"]:
                    answers.append((TYPE_AAAA, ttl, ipaddress.IPv6Address(a).packed))
        out_flags = 0x8000 | 0x0400 | rd | 0x0080 | rcode
        out = struct.pack("!HHHHHH", ident, out_flags, 1, len(answers), 0, 0) + question
        for rtype, ttl, rdata in answers:
            out += struct.pack("!HHHIH", 0xC00C, rtype, 1, ttl, len(rdata)) + rdata
        return out

    def _serve(self):
        while not self._stop:
            try:
                packet, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                reply = self._answer(packet)
            except (ValueError, struct.error):
                continue
            if reply is not None:
                self.sock.sendto(reply, peer)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--records", required=True)
    args = parser.parse_args()
    server = DnsServer(port=args.port)
    print(server.port, flush=True)
    mtime = None
    while True:
        try:
            m = os.stat(args.records).st_mtime_ns
            if m != mtime:
                mtime = m
                with open(args.records) as f:
                    data = json.load(f)
                with server.lock:
                    server.records = {k.lower().rstrip("."): v for k, v in data.items()}
        except (OSError, ValueError) as e:
            print(f"records: {e}", file=sys.stderr, flush=True)
        time.sleep(0.1)


if __name__ == "__main__":
    main()
