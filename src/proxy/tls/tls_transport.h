// TLS handshakes that turn an accepted or connected TCP socket into a transport::Transport
// (downstream: accept(); upstream: connect()). Call on the worker thread that owns the socket; the
// returned Transport belongs to that thread. OpenSSL and asio::ssl stay out of this header.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"
#include "proxy/tls/context.h"
#include "proxy/transport/transport.h"

struct ssl_st;  // SSL

namespace portico::proxy::tls {

// Server handshake. SNI picks the virtual host's context (see ServerContext), mTLS and
// allowed_client_sans are enforced, and the ConnectionInfo of the result is filled (secure, sni,
// alpn, version, cipher, verified peer identity). `timeout` 0: none. On failure the socket is
// closed, downstream_stats() counts the reason, `failure` (if given) receives it, and the Error
// message reads "TLS handshake failed (<failure_name>): <detail>". The ServerContext is only
// needed during the handshake; the connection keeps its SSL_CTX alive by itself.
asio::awaitable<Result<std::unique_ptr<transport::Transport>>> accept(
    std::shared_ptr<const ServerContext> context, asio::ip::tcp::socket socket,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(0),
    HandshakeFailure* failure = nullptr);

// Client handshake on a connected socket. `sni`: the server name to send and verify (empty: the
// ClientContext's configured sni); IP literals are verified but never sent as SNI. The peer's
// chain is verified (unless insecure_skip_verify) and its name checked against verify_names, else
// the server name. Sessions are resumed per server name. Counted in upstream_stats().
asio::awaitable<Result<std::unique_ptr<transport::Transport>>> connect(
    std::shared_ptr<const ClientContext> context, asio::ip::tcp::socket socket,
    std::string sni = {}, std::chrono::milliseconds timeout = std::chrono::milliseconds(0),
    HandshakeFailure* failure = nullptr);

// The SSL* under a Transport made by accept() or connect(); null for any other Transport. For
// tests and diagnostics (resumption, OCSP, peer certificate): never read or write through it.
ssl_st* native_ssl(transport::Transport& transport);

// The verified client identity for the identity header: URI SAN, else DNS SAN, else subject;
// empty when the peer was not verified.
std::string client_identity(const transport::ConnectionInfo& info);

// The identity header name of the TLS settings that served a downstream connection (the
// virtual host's chosen by SNI, else the listener's); empty: none configured, or not TLS.
std::string_view client_identity_header(transport::Transport& transport);

}  // namespace portico::proxy::tls
