// Forwarding headers and the client address (see forwarded.h and docs/forwarding.md).

#include "proxy/http/forwarded.h"
#include "common/strings.h"

#include <arpa/inet.h>

#include <array>
#include <cstring>

namespace portico::proxy::http {
namespace {

constexpr std::string_view kUnknown = "unknown";

using common::trim_ows;

// True when `s` can be written in a header value: no control character but HTAB, no DEL.
bool is_clean(std::string_view s) {
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

// RFC 9110 tchar.
// RFC 9110 token characters, one table lookup per byte (Forwarded values are checked on every
// request).
constexpr std::array<bool, 256> make_tchar() {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) {
    t[c] = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  }
  for (char c : std::string_view("!#$%&'*+-.^_`|~"))
    t[static_cast<unsigned char>(c)] = true;
  return t;
}
constexpr std::array<bool, 256> kTchar = make_tchar();

bool is_tchar(unsigned char c) {
  return kTchar[c];
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (const char c : s) {
    if (!is_tchar(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool is_digits(std::string_view s) {
  if (s.empty()) return false;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool is_port(std::string_view s) {
  if (!is_digits(s) || s.size() > 5) return false;
  unsigned v = 0;
  for (const char c : s)
    v = v * 10 + static_cast<unsigned>(c - '0');
  return v <= 65535;
}

// inet_pton + inet_ntop on a string_view; false if `s` is not an address of `family`.
// True when `s` is an IPv4 address in the form inet_ntop writes (four decimal parts of 0..255, no
// leading zeros): then it is its own canonical form, and the peer address of every request, which
// comes in this form, needs no round trip through inet_pton and inet_ntop (sprintf).
bool canonical_ipv4(std::string_view s) {
  size_t i = 0;
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (i >= s.size() || s[i] != '.') return false;
      ++i;
    }
    const size_t start = i;
    unsigned v = 0;
    while (i < s.size() && i - start < 3 && s[i] >= '0' && s[i] <= '9') {
      v = v * 10 + static_cast<unsigned>(s[i] - '0');
      ++i;
    }
    const size_t len = i - start;
    if (len == 0 || v > 255 || (len > 1 && s[start] == '0')) return false;
  }
  return i == s.size();
}

bool canonical_ip(int family, std::string_view s, std::string& out) {
  if (family == AF_INET && canonical_ipv4(s)) {
    out.assign(s);
    return true;
  }
  char buf[INET6_ADDRSTRLEN + 1];
  // inet_pton reads up to a NUL: one inside `s` would hide the bytes after it.
  if (s.empty() || s.size() >= sizeof buf || s.find('\0') != std::string_view::npos) return false;
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  unsigned char bin[16];
  if (inet_pton(family, buf, bin) != 1) return false;
  char text[INET6_ADDRSTRLEN];
  if (inet_ntop(family, bin, text, sizeof text) == nullptr) return false;
  out.assign(text);
  return true;
}

// Calls f(value) for every header named `name`, in order.
template <typename F>
void for_each_value(std::span<const Header> headers, std::string_view name, F f) {
  for (const Header& h : headers) {
    if (h.name.size() == name.size() && iequals(h.name, name)) f(h.value);
  }
}

// The `pos`th entry from the right (0: the last) of a list whose entries are separated by ','
// (the entries themselves hold none); false if there are fewer entries.
bool nth_from_right(std::string_view list, uint32_t pos, std::string_view& entry) {
  if (list.empty()) return false;
  size_t end = list.size();
  for (uint32_t k = 0;; ++k) {
    const size_t comma = end == 0 ? std::string_view::npos : list.rfind(',', end - 1);
    const size_t start = comma == std::string_view::npos ? 0 : comma + 1;
    if (k == pos) {
      entry = trim_ows(list.substr(start, end - start));
      return true;
    }
    if (comma == std::string_view::npos) return false;
    end = comma;
  }
}

void append_list(std::string& out, std::string_view item) {
  if (!out.empty()) out.append(", ");
  out.append(item);
}

// Appends `v` as an RFC 7239 value: a token as is, anything else as a quoted-string.
void append_forwarded_value(std::string& out, std::string_view v) {
  if (is_token(v)) {
    out.append(v);
    return;
  }
  out.push_back('"');
  for (const char c : v) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

}  // namespace

void ForwardingHeaders::clear() {
  client_address.clear();
  x_forwarded_for.clear();
  x_forwarded_proto = {};
  x_forwarded_host.clear();
  forwarded.clear();
  via.clear();
}

bool is_forwarding_header(std::string_view name) {
  switch (name.size()) {
    case 3:
      return iequals(name, "via");
    case 9:
      return iequals(name, "forwarded");
    case 15:
      return iequals(name, "x-forwarded-for");
    case 16:
      return iequals(name, "x-forwarded-host");
    case 17:
      return iequals(name, "x-forwarded-proto");
    default:
      return false;
  }
}

bool parse_forwarded_address(std::string_view e, std::string& out) {
  if (e.empty()) return false;
  if (e.front() == '[') {
    const size_t close = e.find(']');
    if (close == std::string_view::npos) return false;
    const std::string_view rest = e.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || !is_port(rest.substr(1)))) return false;
    return canonical_ip(AF_INET6, e.substr(1, close - 1), out);
  }
  const size_t colon = e.find(':');
  if (colon == std::string_view::npos) return canonical_ip(AF_INET, e, out);
  if (e.find(':', colon + 1) != std::string_view::npos) return canonical_ip(AF_INET6, e, out);
  // One colon: IPv4 with a port.
  return is_port(e.substr(colon + 1)) && canonical_ip(AF_INET, e.substr(0, colon), out);
}

void compute_forwarding(const ForwardingInput& in, const ForwardingPolicy& policy,
                        ForwardingHeaders& out) {
  out.clear();
  const uint32_t hops = policy.xff_num_trusted_hops;
  const bool trusted_peer = hops >= 1;
  const std::string_view peer = is_clean(in.peer) ? trim_ows(in.peer) : std::string_view();
  const std::string_view scheme = in.tls ? "https" : "http";

  // X-Forwarded-For: every received entry, trimmed, joined with ", "; empty entries dropped; an
  // entry holding a control character becomes "unknown" (so that positions stay as sent).
  for_each_value(in.headers, "x-forwarded-for", [&](std::string_view v) {
    while (!v.empty()) {
      const size_t comma = v.find(',');
      const std::string_view entry = trim_ows(v.substr(0, comma));
      if (!entry.empty()) append_list(out.x_forwarded_for, is_clean(entry) ? entry : kUnknown);
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  });

  // Client address: the peer (0th from the right of received + peer), or with N trusted hops the
  // Nth, i.e. the (N-1)th from the right of the received list, if it is an IP address.
  std::string peer_ip;  // canonical; empty if the peer is not an IP address
  if (!parse_forwarded_address(peer, peer_ip)) peer_ip.clear();
  std::string_view chosen;
  if (!trusted_peer || !nth_from_right(out.x_forwarded_for, hops - 1, chosen) ||
      !parse_forwarded_address(chosen, out.client_address)) {
    out.client_address.assign(peer_ip.empty() ? peer : std::string_view(peer_ip));
  }

  // The peer, canonical; a peer that is not an IP address (never expected) counts as one hop.
  if (policy.use_remote_address && !peer.empty()) {
    append_list(out.x_forwarded_for, peer_ip.empty() ? kUnknown : std::string_view(peer_ip));
  }

  // X-Forwarded-Proto.
  out.x_forwarded_proto = scheme;
  if (trusted_peer) {
    size_t lines = 0;
    std::string_view sent;
    for_each_value(in.headers, "x-forwarded-proto", [&](std::string_view v) {
      ++lines;
      sent = trim_ows(v);
    });
    if (lines == 1 && iequals(sent, "https")) out.x_forwarded_proto = "https";
    if (lines == 1 && iequals(sent, "http")) out.x_forwarded_proto = "http";
  }

  // X-Forwarded-Host.
  const std::string_view host = is_clean(in.host) ? trim_ows(in.host) : std::string_view();
  out.x_forwarded_host.assign(host);
  if (trusted_peer) {
    size_t lines = 0;
    std::string_view sent;
    for_each_value(in.headers, "x-forwarded-host", [&](std::string_view v) {
      ++lines;
      sent = trim_ows(v);
    });
    if (lines == 1 && !sent.empty() && is_clean(sent)) out.x_forwarded_host.assign(sent);
  }

  // Forwarded: the received elements from a trusted peer only, then this hop's element.
  if (trusted_peer) {
    for_each_value(in.headers, "forwarded", [&](std::string_view v) {
      v = trim_ows(v);
      if (!v.empty() && is_clean(v)) append_list(out.forwarded, v);
    });
  }
  if (!out.forwarded.empty()) out.forwarded.append(", ");
  out.forwarded.append("for=");
  if (peer_ip.empty()) {
    out.forwarded.append(kUnknown);
  } else if (peer_ip.find(':') != std::string::npos) {
    out.forwarded.append("\"[");
    out.forwarded.append(peer_ip);
    out.forwarded.append("]\"");
  } else {
    out.forwarded.append(peer_ip);
  }
  out.forwarded.append(";proto=");
  out.forwarded.append(scheme);
  if (!host.empty()) {
    out.forwarded.append(";host=");
    append_forwarded_value(out.forwarded, host);
  }

  // Via: whatever came, then this hop.
  for_each_value(in.headers, "via", [&](std::string_view v) {
    v = trim_ows(v);
    if (!v.empty() && is_clean(v)) append_list(out.via, v);
  });
  std::string_view protocol = in.protocol;
  bool protocol_ok = !protocol.empty();
  for (const char c : protocol)
    protocol_ok = protocol_ok && ((c >= '0' && c <= '9') || c == '.');
  if (!protocol_ok) protocol = "1.1";
  append_list(out.via, protocol);
  out.via.push_back(' ');
  out.via.append(is_token(policy.via_pseudonym) ? policy.via_pseudonym : "portico");
}

const ForwardingHeaders& ForwardingCache::get(const ForwardingInput& in,
                                              const ForwardingPolicy& policy) {
  if (valid_ && host_ == in.host && protocol_ == in.protocol && peer_ == in.peer &&
      tls_ == in.tls && hops_ == policy.xff_num_trusted_hops &&
      use_remote_address_ == policy.use_remote_address && pseudonym_ == policy.via_pseudonym) {
    return headers_;
  }
  ++computed_;
  compute_forwarding(in, policy, headers_);
  peer_.assign(in.peer);
  host_.assign(in.host);
  protocol_.assign(in.protocol);
  pseudonym_.assign(policy.via_pseudonym);
  tls_ = in.tls;
  hops_ = policy.xff_num_trusted_hops;
  use_remote_address_ = policy.use_remote_address;
  valid_ = true;
  return headers_;
}

}  // namespace portico::proxy::http
