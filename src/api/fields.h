// Validators and parsers for single field values (durations, names, domains, addresses, HTTP
// tokens). Pure functions; any thread. Each returns an empty error string on success, else a
// message that reads well after "field: ".
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace portico::api {

// Go-style durations: a sequence of <number><unit> with units ms, s, m, h ("500ms", "1m30s",
// "1.5s"); "0" alone is accepted. Millisecond resolution, at most 720h.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text, std::string* error);

// metadata.name / metadata.namespace: [a-z0-9]([-a-z0-9.]*[a-z0-9])?, at most 253 characters.
std::string check_name(std::string_view name);

// 4 for a numeric IPv4 address, 6 for a numeric IPv6 address (no brackets, no zone), 0 otherwise.
int ip_family(std::string_view address);
// Canonical text of a numeric address ("::0001" -> "::1"); the input when it is not an address.
std::string canonical_ip(std::string_view address);

// An upstream host's address: a numeric IP (canonicalised into *out) or a DNS name (lower-cased
// into *out, *is_name set; resolved by the control plane). Returns the error message, or "".
std::string check_host_address(std::string_view address, std::string* out, bool* is_name);

// RFC 9110 token (header field names, methods).
bool is_http_token(std::string_view text);
// A header value that can be sent as is: no CR, LF or NUL.
bool is_safe_header_value(std::string_view text);
// Hop-by-hop and framing headers a route may not add (lower-case name): connection, keep-alive,
// proxy-connection, te, trailer, transfer-encoding, upgrade, content-length, host.
bool is_reserved_header(std::string_view lower_name);

// A virtual-host domain: exact "api.example.com", suffix wildcard "*.example.com", prefix wildcard
// "example.*", or "*"; optionally followed by ":port". On success returns the lower-cased domain.
std::optional<std::string> normalize_domain(std::string_view domain, std::string* error);

std::string to_lower(std::string_view text);
std::string to_upper(std::string_view text);

}  // namespace portico::api
