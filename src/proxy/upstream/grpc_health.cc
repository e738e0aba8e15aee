#include "proxy/upstream/grpc_health.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>

namespace portico::proxy::upstream::grpc_health {

namespace {

constexpr std::string_view kPath = "/grpc.health.v1.Health/Check";

void put_varint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool get_varint(std::string_view in, size_t* pos, uint64_t* v) {
  uint64_t r = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*pos >= in.size()) return false;
    const auto b = static_cast<uint8_t>(in[(*pos)++]);
    r |= static_cast<uint64_t>(b & 0x7F) << shift;
    if ((b & 0x80) == 0) {
      *v = r;
      return true;
    }
  }
  return false;  // more than ten bytes
}

const char* grpc_code_name(uint32_t code) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  return code < std::size(kNames) ? kNames[code] : "?";
}

// grpc-message for a log line: bounded, printable.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, kMaxGrpcMessageBytes))
    out.push_back(c >= 0x20 && c < 0x7F ? c : '?');
  return out;
}

nghttp2_nv make_nv(std::string_view name, std::string_view value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

std::string serving_status_name(uint64_t status) {
  switch (status) {
    case 0:
      return "UNKNOWN";
    case 1:
      return "SERVING";
    case 2:
      return "NOT_SERVING";
    case 3:
      return "SERVICE_UNKNOWN";
    default:
      return "status " + std::to_string(status);
  }
}

std::string encode_request(std::string_view service) {
  std::string msg;
  if (!service.empty()) {
    msg.push_back(0x0A);  // field 1, wire type 2 (length-delimited)
    put_varint(&msg, service.size());
    msg.append(service);
  }
  std::string out;
  out.reserve(5 + msg.size());
  out.push_back(0);  // not compressed
  const auto n = static_cast<uint32_t>(msg.size());
  out.push_back(static_cast<char>(n >> 24));
  out.push_back(static_cast<char>(n >> 16));
  out.push_back(static_cast<char>(n >> 8));
  out.push_back(static_cast<char>(n));
  out.append(msg);
  return out;
}

bool decode_response(std::string_view message, uint64_t* status, std::string* error) {
  *status = 0;
  size_t pos = 0;
  while (pos < message.size()) {
    uint64_t key = 0;
    if (!get_varint(message, &pos, &key)) {
      *error = "truncated field key";
      return false;
    }
    const uint64_t field = key >> 3;
    const auto wire = static_cast<unsigned>(key & 7);
    if (field == 0) {
      *error = "field number 0";
      return false;
    }
    if (field == 1 && wire != 0) {
      *error = "status (field 1) is not a varint";
      return false;
    }
    uint64_t v = 0;
    switch (wire) {
      case 0:
        if (!get_varint(message, &pos, &v)) {
          *error = "truncated varint";
          return false;
        }
        if (field == 1) *status = v;
        break;
      case 1:
      case 5: {
        const size_t n = wire == 1 ? 8 : 4;
        if (message.size() - pos < n) {
          *error = "truncated fixed-size field";
          return false;
        }
        pos += n;
        break;
      }
      case 2:
        if (!get_varint(message, &pos, &v) || v > message.size() - pos) {
          *error = "truncated length-delimited field";
          return false;
        }
        pos += static_cast<size_t>(v);
        break;
      default:
        *error = "unsupported wire type " + std::to_string(wire);
        return false;
    }
  }
  return true;
}

bool unframe(std::string_view body, std::string_view* message, std::string* error) {
  if (body.empty()) {
    *error = "no response message";
    return false;
  }
  if (body.size() < 5) {
    *error = "truncated message prefix";
    return false;
  }
  const auto flag = static_cast<uint8_t>(body[0]);
  if (flag != 0) {
    *error = flag == 1 ? "compressed message (none was offered)" : "bad message flag";
    return false;
  }
  const uint32_t n = (static_cast<uint32_t>(static_cast<uint8_t>(body[1])) << 24) |
                     (static_cast<uint32_t>(static_cast<uint8_t>(body[2])) << 16) |
                     (static_cast<uint32_t>(static_cast<uint8_t>(body[3])) << 8) |
                     static_cast<uint32_t>(static_cast<uint8_t>(body[4]));
  if (n > kMaxMessageBytes) {
    *error = "message of " + std::to_string(n) + " bytes (limit " +
             std::to_string(kMaxMessageBytes) + ")";
    return false;
  }
  if (body.size() - 5 < n) {
    *error = "truncated message";
    return false;
  }
  if (body.size() - 5 > n) {
    *error = "more than one message";
    return false;
  }
  *message = body.substr(5, n);
  return true;
}

bool parse_grpc_status(std::string_view value, uint32_t* code) {
  if (value.empty() || value.size() > 9) return false;
  uint32_t v = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  *code = v;
  return true;
}

const char* failure_name(Failure f) {
  switch (f) {
    case Failure::kNone:
      return "none";
    case Failure::kConnection:
      return "connection";
    case Failure::kRefused:
      return "refused";
    case Failure::kReset:
      return "reset";
    case Failure::kProtocol:
      return "protocol";
    case Failure::kHttpStatus:
      return "http_status";
    case Failure::kGrpcStatus:
      return "grpc_status";
    case Failure::kBadResponse:
      return "bad_response";
    case Failure::kNotServing:
      return "not_serving";
  }
  return "?";
}

// ---- GrpcHealthSession ---------------------------------------------------------------------

struct SessionCallbacks {
  static GrpcHealthSession& self(void* user) { return *static_cast<GrpcHealthSession*>(user); }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    auto& s = self(user);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->hd.stream_id != s.stream_ || s.done_) return 0;
    s.header_bytes_ += namelen + valuelen + 32;
    if (s.header_bytes_ > kMaxHeaderListBytes) {
      s.local_ = Failure::kBadResponse;
      s.local_detail_ = "response headers over " + std::to_string(kMaxHeaderListBytes) + " bytes";
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // resets the stream
    }
    const std::string_view n(reinterpret_cast<const char*>(name), namelen);
    const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":status") {
      int st = 0;
      for (char c : v)
        st = st * 10 + (c - '0');  // nghttp2 checked it is three digits
      if (s.status_ == 0 || s.status_ / 100 == 1) s.status_ = st;
    } else if (n == "content-type") {
      s.content_type_.assign(v);
    } else if (n == "grpc-status") {
      s.grpc_status_.assign(v);
    } else if (n == "grpc-message") {
      s.grpc_message_ = printable(v);
    }
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto& s = self(user);
    if (frame->hd.type == NGHTTP2_GOAWAY) {
      s.goaway_ = true;
      s.goaway_error_ = frame->goaway.error_code;
    }
    return 0;
  }

  // We send GOAWAY only when nghttp2 found a connection error in what the server sent.
  static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto& s = self(user);
    if (frame->hd.type != NGHTTP2_GOAWAY) return 0;
    s.terminated_ = true;
    if (!s.done_) {
      std::string d = std::string("HTTP/2 protocol error (GOAWAY ") +
                      nghttp2_http2_strerror(frame->goaway.error_code) + ")";
      if (!s.error_message_.empty()) d += ": " + s.error_message_;
      s.finish(Failure::kProtocol, std::move(d));
    }
    return 0;
  }

  static int on_error(nghttp2_session*, int, const char* msg, size_t len, void* user) {
    self(user).error_message_ = printable(std::string_view(msg, len));
    return 0;
  }

  static int on_data_chunk(nghttp2_session* session, uint8_t, int32_t stream_id,
                           const uint8_t* data, size_t len, void* user) {
    auto& s = self(user);
    if (stream_id != s.stream_ || s.done_ || s.local_ != Failure::kNone) return 0;
    if (s.body_.size() + len > kMaxBodyBytes) {
      s.local_ = Failure::kBadResponse;
      s.local_detail_ = "response body over " + std::to_string(kMaxBodyBytes) + " bytes";
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
      return 0;
    }
    s.body_.append(reinterpret_cast<const char*>(data), len);
    return 0;
  }

  static int on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user) {
    auto& s = self(user);
    if (stream_id != s.stream_ || s.done_) return 0;
    if (s.local_ != Failure::kNone) {
      s.finish(s.local_, s.local_detail_);
    } else if (error_code == NGHTTP2_REFUSED_STREAM) {
      s.finish(Failure::kRefused,
               s.goaway_ ? "stream refused (GOAWAY before it)" : "stream refused (REFUSED_STREAM)");
    } else if (error_code != NGHTTP2_NO_ERROR) {
      s.finish(Failure::kReset, std::string("RST_STREAM ") + nghttp2_http2_strerror(error_code));
    } else {
      s.evaluate();
    }
    return 0;
  }

  static ssize_t read_body(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                           nghttp2_data_source*, void* user) {
    auto& s = self(user);
    const size_t n = std::min(length, s.request_body_.size() - s.request_off_);
    std::memcpy(buf, s.request_body_.data() + s.request_off_, n);
    s.request_off_ += n;
    if (s.request_off_ == s.request_body_.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }
};

GrpcHealthSession::GrpcHealthSession() {
  nghttp2_session_callbacks* cb = nullptr;
  if (nghttp2_session_callbacks_new(&cb) != 0) return;
  nghttp2_session_callbacks_set_on_header_callback(cb, &SessionCallbacks::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &SessionCallbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &SessionCallbacks::on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, &SessionCallbacks::on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, &SessionCallbacks::on_frame_send);
  nghttp2_session_callbacks_set_error_callback2(cb, &SessionCallbacks::on_error);
  nghttp2_option* opt = nullptr;
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cb);
    return;
  }
  nghttp2_option_set_max_continuations(opt, 8);
  const int rv = nghttp2_session_client_new2(&session_, cb, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  if (rv != 0) {
    session_ = nullptr;
    return;
  }
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(kMaxHeaderListBytes)},
  };
  if (nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, 2) != 0) broken_ = true;
}

GrpcHealthSession::~GrpcHealthSession() {
  if (session_ != nullptr) nghttp2_session_del(session_);
}

bool GrpcHealthSession::start(const CheckRequest& request) {
  if (session_ == nullptr || broken_ || terminated_ || goaway_ || !done_) return false;
  stream_ = 0;
  verdict_ = Verdict{};
  status_ = 0;
  content_type_.clear();
  grpc_status_.clear();
  grpc_message_.clear();
  header_bytes_ = 0;
  body_.clear();
  local_ = Failure::kNone;
  local_detail_.clear();
  request_body_ = request.body;
  request_off_ = 0;
  std::vector<nghttp2_nv> nva;
  nva.reserve(8 + (request.metadata != nullptr ? request.metadata->size() : 0));
  nva.push_back(make_nv(":method", "POST"));
  nva.push_back(make_nv(":scheme", request.tls ? "https" : "http"));
  nva.push_back(make_nv(":path", kPath));
  nva.push_back(make_nv(":authority", request.authority));
  nva.push_back(make_nv("content-type", "application/grpc"));
  nva.push_back(make_nv("te", "trailers"));
  nva.push_back(make_nv("user-agent", "portico-health-check"));
  if (request.metadata != nullptr) {
    for (const auto& [k, v] : *request.metadata)
      nva.push_back(make_nv(k, v));
  }
  nghttp2_data_provider provider{};
  provider.read_callback = &SessionCallbacks::read_body;
  const int32_t id =
      nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), &provider, nullptr);
  if (id < 0) {
    broken_ = true;  // stream ids exhausted or no memory: a new connection
    return false;
  }
  stream_ = id;
  done_ = false;
  return true;
}

void GrpcHealthSession::receive(const char* data, size_t n) {
  if (session_ == nullptr || broken_) return;
  const ssize_t rv = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(data), n);
  if (rv < 0) {
    broken_ = true;
    if (!done_) finish(Failure::kProtocol, std::string("HTTP/2: ") + nghttp2_strerror(rv));
  }
}

void GrpcHealthSession::take_output(std::string* out) {
  if (session_ == nullptr || broken_) return;
  for (;;) {
    const uint8_t* d = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &d);
    if (n < 0) {
      broken_ = true;
      if (!done_) finish(Failure::kProtocol, std::string("HTTP/2: ") + nghttp2_strerror(n));
      return;
    }
    if (n == 0) return;
    out->append(reinterpret_cast<const char*>(d), static_cast<size_t>(n));
  }
}

void GrpcHealthSession::connection_closed(std::string detail) {
  broken_ = true;
  if (done_) return;
  if (goaway_ && goaway_error_ != NGHTTP2_NO_ERROR) {
    finish(Failure::kProtocol,
           std::string("GOAWAY ") + nghttp2_http2_strerror(goaway_error_) + ", then " + detail);
  } else {
    finish(Failure::kConnection, std::move(detail));
  }
}

bool GrpcHealthSession::reusable() const {
  return session_ != nullptr && !broken_ && !terminated_ && !goaway_ && done_ &&
         nghttp2_session_want_read(session_) != 0;
}

void GrpcHealthSession::finish(Failure f, std::string detail) {
  done_ = true;
  verdict_.failure = f;
  verdict_.detail = std::move(detail);
}

void GrpcHealthSession::evaluate() {
  if (status_ != 200) {
    finish(Failure::kHttpStatus,
           status_ == 0 ? "no :status" : "HTTP status " + std::to_string(status_));
    return;
  }
  // A non-zero grpc-status is the answer whatever came with it (a trailers-only error from a
  // proxy in front of the server may lack content-type).
  uint32_t code = 0;
  const bool parsed = !grpc_status_.empty() && parse_grpc_status(grpc_status_, &code);
  if (parsed && code != 0) {
    std::string d = "grpc-status " + std::to_string(code) + " (" + grpc_code_name(code) + ")";
    if (!grpc_message_.empty()) d += ": " + grpc_message_;
    finish(Failure::kGrpcStatus, std::move(d));
    return;
  }
  if (content_type_.rfind("application/grpc", 0) != 0) {
    finish(Failure::kBadResponse, "content-type \"" + printable(content_type_) + "\"");
    return;
  }
  if (grpc_status_.empty()) {
    finish(Failure::kBadResponse, "no grpc-status");
    return;
  }
  if (!parsed) {
    finish(Failure::kBadResponse, "bad grpc-status \"" + printable(grpc_status_) + "\"");
    return;
  }
  std::string_view message;
  std::string error;
  if (!unframe(body_, &message, &error)) {
    finish(Failure::kBadResponse, error);
    return;
  }
  uint64_t st = 0;
  if (!decode_response(message, &st, &error)) {
    finish(Failure::kBadResponse, "HealthCheckResponse: " + error);
    return;
  }
  if (st != static_cast<uint64_t>(ServingStatus::kServing)) {
    finish(Failure::kNotServing, serving_status_name(st));
    return;
  }
  finish(Failure::kNone, {});
}

}  // namespace portico::proxy::upstream::grpc_health
