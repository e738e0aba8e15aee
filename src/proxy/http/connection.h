// The HTTP/1.1 server side of a client connection: read a request, route it, answer locally or
// forward it upstream and stream the response back; repeat while keep-alive allows. Runs as one
// coroutine on the worker that accepted the connection, for the connection's whole life.
#pragma once

#include <asio.hpp>

#include <string>

namespace portico::proxy {
class Worker;
}

namespace portico::proxy::http {

asio::awaitable<void> serve_connection(Worker& worker, asio::ip::tcp::socket socket,
                                       std::string listener_key);

}  // namespace portico::proxy::http
