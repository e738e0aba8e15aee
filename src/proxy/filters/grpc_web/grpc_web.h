// The "grpc_web" filter: lets a browser's gRPC-Web call reach a plain gRPC server (Gloo's
// grpcWeb HttpListenerOption, on by default on every Gateway; docs/configuration.md). Only
// requests whose content-type is application/grpc-web[-text][+suffix] take part (a conditional
// filter: every other request runs its route's chain without it, at the cost of one header
// lookup and no per-chunk call).
//
// Request: content-type becomes application/grpc[+suffix], `te: trailers` is set, `x-grpc-web`
// (a marker for proxies) is removed, `x-user-agent` passes untouched; a -text body is base64-
// decoded as it streams (a malformed one: 400, counted). Response, when the upstream answered
// gRPC (application/grpc*): content-type back to the web form (-text when the request was -text
// or accepts application/grpc-web-text), the trailers appended to the body as a trailer frame and
// never sent as HTTP trailers, a -text body base64-encoded as it streams (padded at message
// boundaries and at the end). A trailers-only response (grpc-status in the head, no body) keeps
// its status in the head, as the gRPC-Web protocol allows. Anything else (a local reply, an error
// page from a non-gRPC upstream) passes untouched. CORS is the cors filter's concern, not this
// one's. Config (JSON): {} (no fields). Compiled on the control thread; filters run on a worker.
#pragma once

#include <memory>
#include <string_view>

#include "proxy/filters/filter.h"

namespace portico::proxy::filters {

inline constexpr std::string_view kGrpcWebName = "grpc_web";

Result<std::shared_ptr<const FilterFactory>> compile_grpc_web(std::string_view json);

}  // namespace portico::proxy::filters
