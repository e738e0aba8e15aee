// The gRPC health checking protocol (grpc.health.v1.Health/Check) as the health thread speaks it:
// the hand-encoded HealthCheckRequest and HealthCheckResponse, gRPC's length-prefixed framing, and
// GrpcHealthSession, an HTTP/2 client session (nghttp2) without I/O: the caller writes what
// take_output() gives to the connection and feeds what it reads to receive(). One check at a time
// per session; the session (and its connection) carries the next check when reusable().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct nghttp2_session;

namespace portico::proxy::upstream::grpc_health {

// HealthCheckResponse.ServingStatus.
enum class ServingStatus : uint64_t {
  kUnknown = 0,
  kServing = 1,
  kNotServing = 2,
  kServiceUnknown = 3
};
// "SERVING", "NOT_SERVING"...; "status N" for values the protocol does not define.
std::string serving_status_name(uint64_t status);

// Bounds on what a check reads: a health answer is a few bytes.
inline constexpr size_t kMaxMessageBytes = 4096;      // the HealthCheckResponse
inline constexpr size_t kMaxBodyBytes = 16384;        // the response's DATA
inline constexpr size_t kMaxHeaderListBytes = 16384;  // headers + trailers (HPACK sizes)
inline constexpr size_t kMaxGrpcMessageBytes = 256;   // grpc-message kept for the reason

// The request body: one uncompressed gRPC message (5-byte prefix) holding
// HealthCheckRequest{service = `service`} (field 1, length-delimited; omitted when empty).
std::string encode_request(std::string_view service);

// The HealthCheckResponse in `message` (protobuf): its status (field 1, varint; 0 when absent).
// Unknown fields are skipped; groups, bad wire types and truncated fields are errors.
bool decode_response(std::string_view message, uint64_t* status, std::string* error);

// The response body of a unary call: exactly one uncompressed message. Sets `message` to it.
bool unframe(std::string_view body, std::string_view* message, std::string* error);

// grpc-status: a decimal number.
bool parse_grpc_status(std::string_view value, uint32_t* code);

// Why a check failed (the health thread logs the detail; stats count the result).
enum class Failure : uint8_t {
  kNone,
  kConnection,   // connect, TLS or ALPN failed; the connection closed before the answer
  kRefused,      // the stream was refused (GOAWAY before it, REFUSED_STREAM): not processed
  kReset,        // RST_STREAM
  kProtocol,     // an HTTP/2 protocol error; GOAWAY with an error
  kHttpStatus,   // :status is not 200
  kGrpcStatus,   // grpc-status is not 0
  kBadResponse,  // no grpc-status, bad content-type, framing or protobuf; over the size bounds
  kNotServing,   // the answer is not SERVING
};
const char* failure_name(Failure f);

struct Verdict {
  Failure failure = Failure::kNone;
  std::string detail;  // empty on success
  bool ok() const { return failure == Failure::kNone; }
};

// What start() sends; the strings must outlive the check (the body is sent from them).
struct CheckRequest {
  std::string_view authority;  // :authority
  std::string_view body;       // encode_request(serviceName)
  bool tls = false;            // :scheme https
  const std::vector<std::pair<std::string, std::string>>* metadata = nullptr;  // lower-case keys
};

class GrpcHealthSession {
 public:
  GrpcHealthSession();
  ~GrpcHealthSession();
  GrpcHealthSession(const GrpcHealthSession&) = delete;
  GrpcHealthSession& operator=(const GrpcHealthSession&) = delete;

  // False when nghttp2 could not allocate the session.
  bool ok() const { return session_ != nullptr; }

  // Starts one check (POST /grpc.health.v1.Health/Check). False when this connection cannot
  // carry a new stream (GOAWAY received, stream ids exhausted, broken): use a new one.
  bool start(const CheckRequest& request);
  // Bytes read from the connection. A protocol error ends the check (and the session).
  void receive(const char* data, size_t n);
  // Appends what must be written to the connection now.
  void take_output(std::string* out);
  // The connection ended (end of stream, error, timeout) with a check in flight.
  void connection_closed(std::string detail);

  bool done() const { return done_; }
  const Verdict& verdict() const { return verdict_; }
  // After done(): whether the connection may carry the next check.
  bool reusable() const;

 private:
  friend struct SessionCallbacks;  // the nghttp2 callbacks (grpc_health.cc)
  void finish(Failure f, std::string detail);
  void evaluate();

  nghttp2_session* session_ = nullptr;
  bool broken_ = false;  // protocol error: the session is over
  bool goaway_ = false;  // the server said GOAWAY: no new streams
  uint32_t goaway_error_ = 0;
  bool terminated_ = false;    // we sent GOAWAY (a connection error): the session is over
  std::string error_message_;  // nghttp2's last error message, for the detail
  // The check in flight.
  int32_t stream_ = 0;
  bool done_ = true;
  Verdict verdict_;
  int status_ = 0;         // :status
  bool trailers_ = false;  // a second HEADERS block arrived
  std::string content_type_;
  std::string grpc_status_;  // from the trailers, or the headers of a trailers-only answer
  std::string grpc_message_;
  size_t header_bytes_ = 0;
  std::string body_;
  Failure local_ = Failure::kNone;  // what we reset the stream for
  std::string local_detail_;
  std::string_view request_body_;
  size_t request_off_ = 0;
};

}  // namespace portico::proxy::upstream::grpc_health
