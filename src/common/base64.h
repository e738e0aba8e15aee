// Base64 (RFC 4648, standard alphabet, padded), as Consul KV values, etcd's JSON gateway and
// Kubernetes Secrets carry bytes. Any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace portico::common {

std::string base64_encode(std::string_view bytes);
// nullopt when `text` is not valid padded base64 (whitespace is not accepted).
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace portico::common
