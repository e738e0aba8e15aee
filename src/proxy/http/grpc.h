// gRPC facts the stream handler needs (gRPC over HTTP/2, PROTOCOL-HTTP2.md): whether a request is
// a gRPC call, its grpc-timeout as a duration, and the grpc-message encoding of a local answer.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace portico::proxy::http {

// content-type application/grpc, alone or with a "+proto" / ";..." suffix.
bool is_grpc_content_type(std::string_view content_type);

// grpc-timeout: 1 to 8 ASCII digits and a unit (H, M, S, m, u, n). nullopt when malformed.
// Sub-millisecond values round up to 1 ms (0 stays 0: already expired).
std::optional<std::chrono::milliseconds> parse_grpc_timeout(std::string_view value);

// grpc-message is percent-encoded: bytes outside 0x20..0x7E and '%' become %XX.
std::string grpc_percent_encode(std::string_view message);

// gRPC status codes Portico answers with itself.
inline constexpr int kGrpcDeadlineExceeded = 4;
inline constexpr int kGrpcUnimplemented = 12;
inline constexpr int kGrpcUnavailable = 14;

}  // namespace portico::proxy::http
