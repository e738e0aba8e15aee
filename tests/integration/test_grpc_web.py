#!/usr/bin/env python3
"""gRPC-Web through the real binary to a plain gRPC server (grpcio): a browser's request shape built by
hand with http.client (5-byte-prefixed messages, application/grpc-web+proto or -text), Portico's grpc_web
filter (on by default, as in Gloo) translating it to gRPC over an HTTP/2 upstream (`useHttp2: true`).

Covered: a unary call (the message echoed, grpc-status 0 and custom trailing metadata in the trailer
frame, no HTTP trailers), an error status (grpc-status 5 and its message, wherever the server put it:
trailers-only in the head, or the trailer frame), server streaming (every message, then the trailer
frame), -text mode (base64 request sent in odd pieces, base64 response), a malformed -text body (400),
the /stats counters, and `httpGateway.options.grpcWeb.disable: true` (the request then goes to the gRPC
server untranslated: no gRPC-Web answer comes back).

The messages are hand-encoded protobuf (one string field), and the gRPC server registers generic
handlers with identity serializers, so neither side needs generated code."""

import base64
import http.client
import os
import sys
import threading
from concurrent import futures

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from support import portico_testlib as t  # noqa: E402
from support.portico_testlib import matcher as m, route as r  # noqa: E402

SERVICE = "portico.test.Echo"


def string_field(text: str) -> bytes:
    """A protobuf message with field 1 (string) = text."""
    data = text.encode()
    assert len(data) < 128
    return bytes([0x0A, len(data)]) + data


def read_string_field(msg: bytes) -> str:
    assert msg[0] == 0x0A and msg[1] == len(msg) - 2, msg
    return msg[2:].decode()


def frame(msg: bytes, flag: int = 0) -> bytes:
    return bytes([flag]) + len(msg).to_bytes(4, "big") + msg


def parse_frames(body: bytes) -> tuple[list[bytes], dict | None]:
    """The messages of a gRPC-Web body and its trailer frame (as a dict), checking the framing."""
    messages, trailers, i = [], None, 0
    while i < len(body):
        assert i + 5 <= len(body), f"truncated frame header at {i}: {body!r}"
        flag, n = body[i], int.from_bytes(body[i + 1:i + 5], "big")
        payload = body[i + 5:i + 5 + n]
        assert len(payload) == n, f"truncated frame at {i}: {body!r}"
        i += 5 + n
        if flag & 0x80:
            assert trailers is None, "two trailer frames"
            assert i == len(body), "bytes after the trailer frame"
            trailers = {}
            for line in payload.decode().split("\r\n"):
                if line:
                    name, _, value = line.partition(":")
                    assert name == name.lower(), f"trailer name not lower-case: {name}"
                    trailers[name] = value.strip()
        else:
            assert trailers is None, "a message after the trailer frame"
            messages.append(payload)
    return messages, trailers


class EchoServer:
    """grpcio server: Say (unary: echoes the name as "hello <name>", trailing metadata x-echo: done),
    Fail (unary: NOT_FOUND "no such thing"), Count (server streaming: n messages "1".."n")."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.method_handlers_generic_handler(SERVICE, {
            "Say": grpc.unary_unary_rpc_method_handler(self._say),
            "Fail": grpc.unary_unary_rpc_method_handler(self._fail),
            "Count": grpc.unary_stream_rpc_method_handler(self._count),
        })
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port(f"{t.LOCALHOST}:0")

    def _record(self, method: str, context) -> None:
        with self.lock:
            self.calls.append((method, dict(context.invocation_metadata())))

    def _say(self, request: bytes, context) -> bytes:
        self._record("Say", context)
        context.set_trailing_metadata((("x-echo", "done"),))
        return string_field("hello " + read_string_field(request))

    def _fail(self, request: bytes, context) -> bytes:
        self._record("Fail", context)
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")

    def _count(self, request: bytes, context):
        self._record("Count", context)
        for i in range(1, int(read_string_field(request)) + 1):
            yield string_field(str(i))

    def start(self) -> "EchoServer":
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop(grace=None).wait(5)


class GrpcWebTest(t.IntegrationTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.grpc = EchoServer().start()
        cls.addClassCleanup(cls.grpc.stop)

    def serve(self, disable: bool = False) -> tuple[t.Portico, int]:
        cfg = self.new_config()
        port = t.free_port()
        u = t.upstream("echo", [(t.LOCALHOST, self.grpc.port)])
        u["spec"]["useHttp2"] = True
        plain = self.start_upstream("plain")  # HTTP/1.1 only: gRPC is never sent to it
        vs = t.virtual_service("vs", [r("grpc", [m(prefix=f"/{SERVICE}/")], to="echo"),
                                      r("h1", [m(prefix="/portico.test.Plain/")], to="plain")])
        cfg.write_obj("upstream-plain.yaml", t.upstream("plain", [(t.LOCALHOST, plain.port)]))
        cfg.write_obj("upstream.yaml", u)
        cfg.write_obj("vs.yaml", vs)
        gw = t.gateway("gw", port, ["vs"])
        if disable:
            gw["spec"]["httpGateway"] = {"options": {"grpcWeb": {"disable": True}}}
        cfg.write_obj("gateway.yaml", gw)
        p = self.start_portico(cfg)
        up = t.wait_until(lambda: p.resource("Upstream", "echo"), 5.0, message="upstream reported")
        if up.get("state") == "Rejected" and "useHttp2" in str(up.get("reasons")):
            self.skipTest("this build has no HTTP/2 upstreams (Upstream useHttp2): " + str(up["reasons"]))
        self.assertEqual(up.get("state"), "Accepted", up)
        gws = p.resource("Gateway", "gw")
        self.assertEqual(gws.get("state"), "Accepted", gws)
        return p, port

    def call(self, port: int, method: str, body: bytes | list[bytes], text: bool = False,
             headers: dict | None = None) -> tuple[http.client.HTTPResponse, bytes]:
        conn = http.client.HTTPConnection(t.LOCALHOST, port, timeout=10)
        self.addCleanup(conn.close)
        h = {"Content-Type": "application/grpc-web-text" if text else "application/grpc-web+proto",
             "X-Grpc-Web": "1", "X-User-Agent": "grpc-web-javascript/0.1",
             "Accept": "application/grpc-web-text" if text else "application/grpc-web"}
        h.update(headers or {})
        if isinstance(body, list):  # sent chunked, piece by piece
            conn.putrequest("POST", f"/{SERVICE}/{method}")
            for k, v in h.items():
                conn.putheader(k, v)
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            for piece in body:
                conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            conn.send(b"0\r\n\r\n")
        else:
            conn.request("POST", f"/{SERVICE}/{method}", body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read()
        return resp, data

    def status_of(self, resp, trailers: dict | None) -> tuple[str, str]:
        """grpc-status and grpc-message: from the trailer frame, or from the head (trailers-only)."""
        if trailers is not None and "grpc-status" in trailers:
            self.assertIsNone(resp.getheader("grpc-status"), "status in both the head and the body")
            return trailers["grpc-status"], trailers.get("grpc-message", "")
        self.assertIsNotNone(resp.getheader("grpc-status"), "no grpc-status anywhere")
        return resp.getheader("grpc-status"), resp.getheader("grpc-message", "")

    def test_unary_binary(self):
        p, port = self.serve()
        resp, data = self.call(port, "Say", frame(string_field("web")))
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.getheader("content-type"), "application/grpc-web")  # the server said application/grpc
        self.assertIsNone(resp.getheader("trailer"))
        messages, trailers = parse_frames(data)
        self.assertEqual([read_string_field(x) for x in messages], ["hello web"])
        self.assertIsNotNone(trailers, data)
        self.assertEqual(trailers["grpc-status"], "0")
        self.assertEqual(trailers["x-echo"], "done")
        # The gRPC server saw a gRPC request: no x-grpc-web marker, the browser library's agent kept.
        method, md = self.grpc.calls[-1]
        self.assertEqual(method, "Say")
        self.assertNotIn("x-grpc-web", md)
        self.assertEqual(md.get("x-user-agent"), "grpc-web-javascript/0.1")
        self.assertGreaterEqual(
            t.metric_sum(p.stats(), "portico_grpc_web_requests_total", mode="binary"), 1)

    def test_error_status(self):
        _, port = self.serve()
        resp, data = self.call(port, "Fail", frame(string_field("x")))
        self.assertEqual(resp.status, 200)
        self.assertTrue(resp.getheader("content-type").startswith("application/grpc-web"),
                        resp.getheader("content-type"))
        messages, trailers = parse_frames(data)
        self.assertEqual(messages, [])
        code, message = self.status_of(resp, trailers)
        self.assertEqual(code, "5")
        self.assertEqual(message, "no such thing")

    def test_server_streaming(self):
        _, port = self.serve()
        resp, data = self.call(port, "Count", frame(string_field("5")))
        self.assertEqual(resp.status, 200)
        messages, trailers = parse_frames(data)
        self.assertEqual([read_string_field(x) for x in messages], ["1", "2", "3", "4", "5"])
        self.assertEqual(self.status_of(resp, trailers)[0], "0")

    def test_text_mode(self):
        p, port = self.serve()
        encoded = base64.b64encode(frame(string_field("text client")))
        # Odd pieces: base64 quanta cut across chunk boundaries.
        pieces = [encoded[i:i + 3] for i in range(0, len(encoded), 3)]
        resp, data = self.call(port, "Say", pieces, text=True)
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.getheader("content-type"), "application/grpc-web-text")
        # Decoded quantum by quantum (padding may end any message's text).
        raw = b"".join(base64.b64decode(data[i:i + 4]) for i in range(0, len(data), 4))
        messages, trailers = parse_frames(raw)
        self.assertEqual([read_string_field(x) for x in messages], ["hello text client"])
        self.assertEqual(trailers["grpc-status"], "0")
        # Streaming in text mode too.
        resp, data = self.call(port, "Count", base64.b64encode(frame(string_field("3"))), text=True)
        raw = b"".join(base64.b64decode(data[i:i + 4]) for i in range(0, len(data), 4))
        messages, trailers = parse_frames(raw)
        self.assertEqual([read_string_field(x) for x in messages], ["1", "2", "3"])
        self.assertGreaterEqual(
            t.metric_sum(p.stats(), "portico_grpc_web_requests_total", mode="text"), 2)

    def test_http1_upstream_answers_unavailable_in_grpc_web(self):
        _, port = self.serve()
        conn = http.client.HTTPConnection(t.LOCALHOST, port, timeout=10)
        self.addCleanup(conn.close)
        conn.request("POST", "/portico.test.Plain/Say", body=frame(string_field("x")),
                     headers={"Content-Type": "application/grpc-web+proto"})
        resp = conn.getresponse()
        data = resp.read()
        # Portico's own gRPC answer (UNAVAILABLE, trailers-only), in the client's protocol.
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.getheader("content-type"), "application/grpc-web", resp.getheaders())
        self.assertEqual(resp.getheader("grpc-status"), "14")
        self.assertEqual(data, b"")

    def test_malformed_text_body_is_400(self):
        p, port = self.serve()
        before = len(self.grpc.calls)
        resp, data = self.call(port, "Say", b"AAAA*AAA", text=True)
        self.assertEqual(resp.status, 400)
        self.assertIn(b"not valid base64", data)
        self.assertEqual(t.metric_sum(p.stats(), "portico_grpc_web_malformed_total"), 1)
        self.assertEqual(len(self.grpc.calls), before)  # no call completed on the server

    def test_disabled(self):
        p, port = self.serve(disable=True)
        resp, data = self.call(port, "Say", frame(string_field("web")))
        # Untranslated: whatever the gRPC server makes of it, the client gets no gRPC-Web answer
        # (no web content-type, no trailer frame) and nothing was counted.
        self.assertFalse((resp.getheader("content-type") or "").startswith("application/grpc-web"),
                         (resp.status, resp.getheaders(), data))
        self.assertEqual(t.metric_sum(p.stats(), "portico_grpc_web_requests_total"), 0)
        self.assertNotIn("grpc_web", p.admin_get("/config_dump").text())

if __name__ == "__main__":
    import unittest
    unittest.main()
