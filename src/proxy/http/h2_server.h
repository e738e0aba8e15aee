// The HTTP/2 server codec (RFC 9113, on nghttp2): one client connection over a Transport (TLS with
// ALPN "h2", or cleartext with prior knowledge), carrying many ServerStreams at once, each run by
// its own StreamHandler coroutine with its own buffers and deadlines. Request bodies are pulled:
// the peer's flow-control window is opened only as the handler consumes (a slow upstream stalls
// its stream, never the connection, and nothing is buffered beyond the windows). Response bodies
// are pulled by nghttp2 within the send window. Limits and flood defences come from the listener's
// snapshot::HttpOptions::http2 and are counted in /stats (portico_http2_*).
//
// Runs as coroutines on the worker that accepted the connection: a reader (the connection's own),
// a writer, and one per stream; nghttp2 is only ever called from them, never re-entered.
#pragma once

#include <asio.hpp>

#include <memory>
#include <string>
#include <string_view>

#include "proxy/transport/transport.h"

namespace portico::proxy {
class Worker;
}

namespace portico::proxy::http {

// The client connection preface (RFC 9113 §3.4): what a cleartext prior-knowledge client sends
// first.
inline constexpr std::string_view kH2ClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// Serves an HTTP/2 connection. `initial`: bytes already read from the transport (the preface
// read by protocol detection), processed before anything else is read.
asio::awaitable<void> serve_h2(Worker& worker, std::unique_ptr<transport::Transport> transport,
                               std::string listener_key, std::string initial = {});

}  // namespace portico::proxy::http
