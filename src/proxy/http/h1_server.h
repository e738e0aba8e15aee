// The HTTP/1.1 server codec: one client connection over a Transport. Reads request heads (strict
// parser, linear in the bytes received), turns each into a ServerStream handled by a
// StreamHandler, frames the response (Content-Length, chunked, or until close for HTTP/1.0),
// and decides what happens to the connection afterwards: keep-alive, pipelining, or a lingering
// close. Runs as one coroutine on the worker that accepted the connection, for its whole life.
#pragma once

#include <asio.hpp>

#include <memory>
#include <string>

#include "proxy/transport/transport.h"

namespace portico::proxy {
class Worker;
}

namespace portico::proxy::http {

asio::awaitable<void> serve_h1(Worker& worker, std::unique_ptr<transport::Transport> transport,
                               std::string listener_key);

}  // namespace portico::proxy::http
