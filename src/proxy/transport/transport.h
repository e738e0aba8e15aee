// Transport: the byte stream under an HTTP codec — plain TCP or TLS — plus the facts about the
// connection that filters may use (peer, ALPN, SNI, verified client identity). Codecs never see a
// socket. A Transport belongs to one worker thread; one read and one write may be outstanding at
// the same time (request and response bodies are pumped concurrently), never two of either.
#pragma once

#include <asio.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <tuple>
#include <vector>

namespace portico::proxy::transport {

struct ConnectionInfo {
  std::string peer_address;  // numeric, no brackets
  uint16_t peer_port = 0;
  std::string local_address;
  uint16_t local_port = 0;
  bool secure = false;      // TLS
  std::string alpn;         // negotiated ALPN protocol ("h2", "http/1.1"); empty: none
  bool http2 = false;       // served as HTTP/2 (ALPN h2, or cleartext with prior knowledge)
  std::string sni;          // server name the client asked for (downstream TLS); empty: none
  std::string tls_version;  // "TLSv1.3"
  std::string cipher;
  bool peer_verified = false;  // the peer presented a certificate that was verified
  std::string peer_subject;    // of the verified certificate (RFC 2253)
  std::vector<std::string> peer_uri_sans;
  std::vector<std::string> peer_dns_sans;
};

// What asio's as_tuple(use_awaitable) gives for a read or write: a plain TCP transport returns
// asio's own awaitable, with no coroutine frame of its own per operation.
using IoResult = std::tuple<asio::error_code, size_t>;

class Transport {
 public:
  virtual ~Transport() = default;

  // Reads at least one byte into `buf`. {error, 0} or {ok, 0} at end of stream.
  virtual asio::awaitable<IoResult> read_some(asio::mutable_buffer buf) = 0;
  // Completes when bytes can be read, at an error or end of stream, or at cancel(), without
  // holding a read buffer: an idle connection waits here and takes its buffer when bytes arrive.
  // The default completes at once (a transport that cannot wait without reading).
  virtual asio::awaitable<asio::error_code> wait_readable() { co_return asio::error_code{}; }
  // Writes every byte of `bufs` (gathered), or fails.
  virtual asio::awaitable<IoResult> write(std::span<const asio::const_buffer> bufs) = 0;
  // The same, for a writer that batches what others queue while its write is under way (the
  // HTTP/2 codecs): a transport that can complete a write at once (TcpTransport::write) completes
  // this one through the worker's queue instead, so that the streams ready to run add their frames
  // to the next write (h2c: 2.5 system calls a request instead of 3.6).
  virtual asio::awaitable<IoResult> write_batched(std::span<const asio::const_buffer> bufs) {
    return write(bufs);
  }
  // Ends our direction (TCP: shutdown(SHUT_WR); TLS: close_notify) and keeps reading possible, for
  // lingering close.
  virtual asio::awaitable<asio::error_code> shutdown_write() = 0;
  // Cancels the pending read and write (they complete with operation_aborted); the transport stays
  // usable. Deadlines use this.
  virtual void cancel() = 0;
  // Closes at once; pending operations complete with an error.
  virtual void close() = 0;
  virtual bool is_open() const = 0;
  virtual const ConnectionInfo& info() const = 0;
  // The TCP socket underneath (socket options, fd for stats). Never read or written through.
  virtual asio::ip::tcp::socket& lowest_layer() = 0;
};

}  // namespace portico::proxy::transport
