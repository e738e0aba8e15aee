// Bearer tokens of the fleet protocol and the server's REST API (portico server / proxy, and the
// CLI's --token-file). Any thread.
#pragma once

#include <string>
#include <string_view>

#include "control/http/client.h"

namespace portico::cli {

// Reads a token file (surrounding whitespace trimmed). False with a reason when it cannot be read
// or is empty.
bool read_token_file(const std::string& path, std::string* token, std::string* error);

// True when `authorization` is "Bearer <token>" (constant-time comparison).
bool bearer_matches(std::string_view authorization, const std::string& token);

// True for 127.0.0.0/8 and ::1 (a listener there is reachable from this host only).
bool is_loopback(const std::string& address);

// The token the CLI's admin requests send (empty: none); set from --token-file.
void set_admin_token(std::string token);
const std::string& admin_token();

// How the CLI's admin requests to an https:// --admin verify the server and which client
// certificate they present (--ca, --cert, --key, --server-name: a `portico server` with
// --tls-cert and --client-ca).
void set_admin_tls(control::http::TlsOptions options);
const control::http::TlsOptions& admin_tls();

}  // namespace portico::cli
