// The access log format language (Envoy's command operators, the subset Portico implements):
// parsed into tokens by the control plane (to reject an unknown operator with a message naming
// it) and by the data plane (to compile the renderer in src/proxy/access_log). Pure functions; any
// thread.
//
// Syntax: text with %OPERATOR%, %OPERATOR(ARG)% and %OPERATOR(ARG):N% (N: the most characters
// the value may take). "%%" is a literal '%'. Anything else after a '%' is an error.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace portico::access_log {

enum class Op : uint8_t {
  kLiteral,                             // text
  kStartTime,                           // %START_TIME% / %START_TIME(strftime format)%
  kRequestHeader,                       // %REQ(X)% / %REQ(X?Y)%
  kResponseHeader,                      // %RESP(X)% / %RESP(X?Y)%
  kResponseCode,                        // %RESPONSE_CODE%
  kProtocol,                            // %PROTOCOL%
  kBytesReceived,                       // %BYTES_RECEIVED% (request body bytes)
  kBytesSent,                           // %BYTES_SENT% (response body bytes)
  kDuration,                            // %DURATION% (ms, request head received to last byte sent)
  kUpstreamHost,                        // %UPSTREAM_HOST% (ip:port)
  kUpstreamCluster,                     // %UPSTREAM_CLUSTER%
  kDownstreamRemoteAddress,             // %DOWNSTREAM_REMOTE_ADDRESS% (ip:port)
  kDownstreamRemoteAddressWithoutPort,  // %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%
  kRouteName,                           // %ROUTE_NAME%
  kRequestId,                           // %REQUEST_ID% (x-request-id)
  kResponseFlags,                       // %RESPONSE_FLAGS%
};

// Whether the operator's value is a number (typed as a number in JSON lines).
bool is_numeric(Op op);

struct Token {
  Op op = Op::kLiteral;
  std::string text;         // kLiteral: the text; kStartTime: the format ("" = the default);
                            // headers: the first header name (lower-case; ":path" etc. for pseudo)
  std::string fallback;     // headers: the name after '?' (lower-case), "" when none
  uint32_t max_length = 0;  // 0: no limit
};

// Parses a format. The error names the offending operator and its position.
Result<std::vector<Token>> parse_format(std::string_view format);

// The pseudo-headers %REQ(...)% accepts (lower-case): ":method", ":path" (with the query),
// ":authority", ":scheme". %RESP(...)% accepts none.
bool is_request_pseudo_header(std::string_view lower_name);

// The default text format (Envoy's, without its Envoy-only headers), newline included.
extern const char* const kDefaultTextFormat;

}  // namespace portico::access_log
