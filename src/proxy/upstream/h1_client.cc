#include "proxy/upstream/h1_client.h"

#include <asio/experimental/as_tuple.hpp>

#include <array>
#include <charconv>

namespace portico::proxy::upstream {

namespace {

constexpr size_t kReadChunk = 65536;

void append_header(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ", 2);
  out.append(value);
  out.append("\r\n", 2);
}

void append_uint(std::string& out, uint64_t v, int base = 10) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v, base);
  out.append(buf, static_cast<size_t>(r.ptr - buf));
}

// Scratch head for parsing: the parser's views live only until they are copied into the owned
// message, so one per worker thread is enough (its header array keeps its capacity).
http::ResponseHead& scratch_head() {
  thread_local http::ResponseHead head;
  return head;
}

}  // namespace

int UpstreamError::status() const {
  switch (kind) {
    case FailureKind::kNoHealthyHost:
    case FailureKind::kOverflow:
    case FailureKind::kUnsupported:
    case FailureKind::kConnectFailed:
    case FailureKind::kConnectTimeout:
      return 503;
    case FailureKind::kTimeout:
      return 504;
    case FailureKind::kReset:
    case FailureKind::kProtocol:
      return 502;
    case FailureKind::kDownstream:
      return 400;
  }
  return 502;
}

std::string UpstreamError::message() const {
  std::string m;
  switch (kind) {
    case FailureKind::kNoHealthyHost:
      m = "upstream unavailable: no endpoints";
      break;
    case FailureKind::kOverflow:
      m = "upstream unavailable: connection limit reached";
      break;
    case FailureKind::kUnsupported:
      m = "upstream unavailable: ";
      break;
    case FailureKind::kConnectFailed:
      m = "upstream unavailable: ";
      break;
    case FailureKind::kConnectTimeout:
      m = "upstream unavailable: connect timeout";
      break;
    case FailureKind::kTimeout:
      m = "upstream timeout";
      break;
    case FailureKind::kReset:
      m = "bad gateway: upstream closed the connection";
      break;
    case FailureKind::kProtocol:
      m = "bad gateway: upstream sent an invalid response";
      break;
    case FailureKind::kDownstream:
      m = "bad request";
      break;
  }
  if (kind == FailureKind::kUnsupported || kind == FailureKind::kConnectFailed) m += detail;
  m.push_back('\n');
  return m;
}

stats::UpstreamError UpstreamError::stat() const {
  switch (kind) {
    case FailureKind::kNoHealthyHost:
    case FailureKind::kOverflow:
    case FailureKind::kUnsupported:
      return stats::UpstreamError::kNoHealthyHost;
    case FailureKind::kConnectFailed:
    case FailureKind::kConnectTimeout:
      return stats::UpstreamError::kConnectFailed;
    case FailureKind::kTimeout:
      return stats::UpstreamError::kTimeout;
    case FailureKind::kProtocol:
      return stats::UpstreamError::kProtocol;
    case FailureKind::kReset:
    case FailureKind::kDownstream:
      return stats::UpstreamError::kReset;
  }
  return stats::UpstreamError::kReset;
}

void H1ClientStream::encode_head(const http::RequestHeaders& req, std::string_view target,
                                 bool chunked, std::string& out) {
  out.clear();
  out.append(req.method);
  out.push_back(' ');
  out.append(target);
  out.append(" HTTP/1.1\r\nHost: ");
  out.append(req.authority);
  out.append("\r\n");
  req.headers.for_each([&](std::string_view n, std::string_view v) { append_header(out, n, v); });
  if (!req.upgrade.empty()) {
    out.append("Connection: Upgrade\r\nUpgrade: ");
    out.append(req.upgrade);
    out.append("\r\n");
  }
  if (req.has_body) {
    if (!chunked && req.content_length) {
      out.append("Content-Length: ");
      append_uint(out, *req.content_length);
      out.append("\r\n");
    } else {
      out.append("Transfer-Encoding: chunked\r\n");
    }
  }
  out.append("\r\n");
}

asio::awaitable<bool> H1ClientStream::write(std::span<const asio::const_buffer> bufs) {
  if (cancelled_ || failed_) co_return false;
  auto [ec, n] = co_await c_.transport->write_batched(bufs);
  if (ec) failed_ = true;
  co_return !ec && !cancelled_;
}

asio::awaitable<bool> H1ClientStream::send_body(std::string_view data, bool end, bool chunked) {
  if (!chunked) {
    if (data.empty()) co_return true;
    std::array<asio::const_buffer, 1> b{asio::buffer(data)};
    co_return co_await write(b);
  }
  frame_.clear();
  if (!data.empty()) {
    append_uint(frame_, data.size(), 16);
    frame_.append("\r\n");
  }
  const size_t head_len = frame_.size();
  std::string_view tail =
      !data.empty() ? (end ? "\r\n0\r\n\r\n" : "\r\n") : (end ? "0\r\n\r\n" : "");
  if (head_len == 0 && tail.empty()) co_return true;
  std::array<asio::const_buffer, 3> b{asio::buffer(frame_), asio::buffer(data), asio::buffer(tail)};
  co_return co_await write(b);
}

asio::awaitable<bool> H1ClientStream::send_trailers(const http::HeaderMap& trailers) {
  frame_.assign("0\r\n");
  trailers.for_each([&](std::string_view n, std::string_view v) { append_header(frame_, n, v); });
  frame_.append("\r\n");
  std::array<asio::const_buffer, 1> b{asio::buffer(frame_)};
  co_return co_await write(b);
}

asio::awaitable<H1ClientStream::HeadStatus> H1ClientStream::read_head(http::ResponseHeaders& out,
                                                                      bool head_request,
                                                                      std::string_view upgrade) {
  http::ResponseHead& rh = scratch_head();
  bool got_bytes = false;
  size_t scanned = 0;  // how far the end-of-head search got: parsing stays linear
  for (;;) {
    if (cancelled_) co_return HeadStatus::kCancelled;
    if (!c_.buffer.empty()) {
      std::string_view v = c_.buffer.view();
      size_t from = scanned > 3 ? scanned - 3 : 0;
      size_t end = v.find("\r\n\r\n", from);
      bool bare_lf = v.find('\n', from) != std::string_view::npos && end == std::string_view::npos;
      scanned = v.size();
      if (end != std::string_view::npos || bare_lf || v.size() > 60 * 1024) {
        http::ParseResult pr = parse_response_head(v, head_request ? "HEAD" : "GET", rh);
        if (pr.status == http::ParseStatus::kError) co_return HeadStatus::kInvalid;
        if (pr.status == http::ParseStatus::kComplete) {
          // An upstream may switch only to the protocol the request asked for (RFC 9110
          // §15.2.2): a 101 to a request without Upgrade, or naming another protocol, is an
          // invalid response, never relayed.
          if (rh.status == 101) {
            const http::Header* u = rh.find("upgrade");
            if (upgrade.empty() || !rh.connection_upgrade || u == nullptr ||
                !http::iequals(u->value, upgrade)) {
              co_return HeadStatus::kInvalid;
            }
            break;
          }
          if (rh.status >= 100 && rh.status < 200) {
            c_.buffer.consume(rh.head_bytes);  // interim response: the proxy answers Expect itself
            scanned = 0;
            continue;
          }
          break;
        }
      }
    }
    auto [buf, cap] = c_.buffer.prepare(4096);
    if (cap == 0) co_return HeadStatus::kInvalid;
    auto [ec, n] = co_await c_.transport->read_some(asio::buffer(buf, cap));
    if (cancelled_) co_return HeadStatus::kCancelled;
    if (ec || n == 0) {
      co_return got_bytes || !c_.buffer.empty() ? HeadStatus::kReset
                                                : HeadStatus::kClosedBeforeResponse;
    }
    got_bytes = true;
    c_.buffer.commit(n);
  }
  // Copy what the stream needs out of the reused buffer.
  out.clear();
  out.status = rh.status;
  out.reason.assign(rh.reason);
  const bool pass_length = rh.body == http::BodyKind::kNone && (head_request || rh.status == 304);
  for (size_t i = 0; i < rh.header_count; ++i) {
    const http::Header& h = rh.headers[i];
    if (h.hop_by_hop) continue;
    if (h.name.size() == 14 && http::iequals(h.name, "content-length") && !pass_length) continue;
    out.headers.add(h.name, h.value);
  }
  body_ = rh.body;
  out.has_body = rh.body != http::BodyKind::kNone;
  if (rh.body == http::BodyKind::kContentLength) {
    out.content_length = rh.content_length;
    left_ = rh.content_length;
  }
  keep_alive_ = rh.keep_alive && rh.body != http::BodyKind::kUntilClose && upgrade.empty();
  c_.buffer.consume(rh.head_bytes);
  dec_.reset();
  if (body_ == http::BodyKind::kNone || (body_ == http::BodyKind::kContentLength && left_ == 0)) {
    complete_ = true;
  }
  co_return HeadStatus::kOk;
}

asio::awaitable<http::BodyPiece> H1ClientStream::read_body() {
  using http::BodyPiece;
  using http::BodyStatus;
  c_.buffer.consume(pending_consume_);
  pending_consume_ = 0;
  for (;;) {
    if (cancelled_ || failed_) co_return BodyPiece{BodyStatus::kAborted};
    if (complete_) co_return BodyPiece{BodyStatus::kEnd, {}, trailers()};
    if (!c_.buffer.empty()) {
      if (body_ == http::BodyKind::kContentLength) {
        size_t now = static_cast<size_t>(std::min<uint64_t>(left_, c_.buffer.size()));
        left_ -= now;
        pending_consume_ = now;
        if (left_ == 0) complete_ = true;
        co_return BodyPiece{BodyStatus::kData, std::string_view(c_.buffer.data(), now)};
      }
      if (body_ == http::BodyKind::kChunked) {
        http::ChunkedDecoder::Step s = dec_.feed(c_.buffer.view());
        if (s.error != http::ParseError::kNone) {
          failed_ = true;
          co_return BodyPiece{BodyStatus::kMalformed};
        }
        if (s.done) {
          complete_ = true;
          http::add_forwardable_trailers(dec_.trailers(), trailers_);
        }
        if (!s.data.empty()) {
          // The data view points into the buffer: consume it on the next call.
          pending_consume_ = s.consumed;
          co_return BodyPiece{BodyStatus::kData, s.data};
        }
        c_.buffer.consume(s.consumed);
        if (complete_) co_return BodyPiece{BodyStatus::kEnd, {}, trailers()};
        if (s.consumed != 0 && !c_.buffer.empty()) continue;
      } else {  // until close
        pending_consume_ = c_.buffer.size();
        co_return BodyPiece{BodyStatus::kData, c_.buffer.view()};
      }
    }
    auto [buf, cap] = c_.buffer.prepare(kReadChunk);
    auto [ec, n] = co_await c_.transport->read_some(asio::buffer(buf, cap));
    if (cancelled_) co_return BodyPiece{BodyStatus::kAborted};
    if (ec || n == 0) {
      if (body_ == http::BodyKind::kUntilClose && ec == asio::error::eof) {
        complete_ = true;  // a clean end of stream ends a close-delimited body
        co_return BodyPiece{BodyStatus::kEnd};
      }
      failed_ = true;  // a reset is not an end: the client must see a truncated body
      co_return BodyPiece{BodyStatus::kAborted};
    }
    c_.buffer.commit(n);
  }
}

asio::awaitable<http::BodyPiece> H1ClientStream::read_raw() {
  using http::BodyPiece;
  using http::BodyStatus;
  keep_alive_ = false;
  c_.buffer.consume(pending_consume_);
  pending_consume_ = 0;
  if (cancelled_ || failed_) co_return BodyPiece{BodyStatus::kAborted};
  if (c_.buffer.empty()) {
    auto [buf, cap] = c_.buffer.prepare(kReadChunk);
    auto [ec, n] = co_await c_.transport->read_some(asio::buffer(buf, cap));
    if (cancelled_) co_return BodyPiece{BodyStatus::kAborted};
    if (ec == asio::error::eof || (!ec && n == 0)) co_return BodyPiece{BodyStatus::kEnd};
    if (ec) {
      failed_ = true;
      co_return BodyPiece{BodyStatus::kAborted};
    }
    c_.buffer.commit(n);
  }
  pending_consume_ = c_.buffer.size();
  co_return BodyPiece{BodyStatus::kData, c_.buffer.view()};
}

asio::awaitable<bool> H1ClientStream::write_raw(std::string_view data) {
  keep_alive_ = false;
  if (data.empty()) co_return !cancelled_ && !failed_;
  std::array<asio::const_buffer, 1> b{asio::buffer(data)};
  co_return co_await write(b);
}

asio::awaitable<bool> H1ClientStream::shutdown_write() {
  keep_alive_ = false;
  if (cancelled_ || failed_) co_return false;
  co_return !co_await c_.transport->shutdown_write();
}

void H1ClientStream::cancel() {
  if (cancelled_) return;
  cancelled_ = true;
  c_.transport->cancel();
}

}  // namespace portico::proxy::upstream
