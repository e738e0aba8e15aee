// Fuzz target: compute_forwarding. Input: one byte of settings (trusted hops 0-3, TLS,
// use_remote_address), then records separated by 0xFF: the peer, the Host, and headers as
// "name:value" (any bytes, CR, LF and NUL included). Checks that no produced value holds a control
// character, that the client address is the peer or an IP address from X-Forwarded-For (the peer
// with 0 trusted hops), that X-Forwarded-Proto is http or https (the listener's with 0 trusted
// hops), that X-Forwarded-For keeps every entry and that the function is deterministic.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.h"
#include "proxy/http/forwarded.h"

namespace {

using namespace portico::proxy::http;

using portico::fuzz::check;

bool clean(std::string_view s) {
  for (const char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if ((b < 0x20 && b != '\t') || b == 0x7f) return false;
  }
  return true;
}

size_t count_entries(std::string_view list) {
  if (list.empty()) return 0;
  size_t n = 1;
  for (const char c : list)
    n += c == ',';
  return n;
}

// Non-empty comma-separated entries (after trimming SP and HTAB) in all X-Forwarded-For lines.
size_t received_entries(const std::vector<Header>& headers) {
  size_t n = 0;
  for (const Header& h : headers) {
    if (!iequals(h.name, "x-forwarded-for")) continue;
    size_t start = 0;
    for (;;) {
      const size_t comma = h.value.find(',', start);
      std::string_view e = h.value.substr(
          start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
      while (!e.empty() && (e.front() == ' ' || e.front() == '\t'))
        e.remove_prefix(1);
      while (!e.empty() && (e.back() == ' ' || e.back() == '\t'))
        e.remove_suffix(1);
      n += !e.empty();
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
  }
  return n;
}

bool same(const ForwardingHeaders& a, const ForwardingHeaders& b) {
  return a.client_address == b.client_address && a.x_forwarded_for == b.x_forwarded_for &&
         a.x_forwarded_proto == b.x_forwarded_proto && a.x_forwarded_host == b.x_forwarded_host &&
         a.forwarded == b.forwarded && a.via == b.via;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t settings = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::vector<std::string_view> records;
  for (;;) {
    const size_t sep = rest.find('\xff');
    records.push_back(rest.substr(0, sep));
    if (sep == std::string_view::npos) break;
    rest.remove_prefix(sep + 1);
  }
  ForwardingInput in;
  in.peer = records[0];
  in.host = records.size() > 1 ? records[1] : std::string_view();
  in.tls = (settings & 4) != 0;
  in.protocol = (settings & 16) != 0 ? "1.0" : "1.1";
  std::vector<Header> headers;
  for (size_t i = 2; i < records.size(); ++i) {
    const size_t colon = records[i].find(':');
    if (colon == std::string_view::npos) continue;
    headers.push_back(Header{records[i].substr(0, colon), records[i].substr(colon + 1)});
  }
  in.headers = headers;
  ForwardingPolicy policy;
  policy.xff_num_trusted_hops = settings & 3;
  policy.use_remote_address = (settings & 8) != 0;

  ForwardingHeaders out;
  compute_forwarding(in, policy, out);

  for (const std::string_view v :
       {std::string_view(out.client_address), std::string_view(out.x_forwarded_for),
        out.x_forwarded_proto, std::string_view(out.x_forwarded_host),
        std::string_view(out.forwarded), std::string_view(out.via)}) {
    check(clean(v));
  }
  check(out.x_forwarded_proto == "http" || out.x_forwarded_proto == "https");
  check(out.via.ends_with(" portico"));
  check(!out.forwarded.empty());

  const bool peer_clean = clean(in.peer);
  std::string_view peer = peer_clean ? in.peer : std::string_view();
  while (!peer.empty() && (peer.front() == ' ' || peer.front() == '\t'))
    peer.remove_prefix(1);
  while (!peer.empty() && (peer.back() == ' ' || peer.back() == '\t'))
    peer.remove_suffix(1);
  std::string peer_ip;
  const bool peer_is_ip = parse_forwarded_address(peer, peer_ip);
  const std::string fallback = peer_is_ip ? peer_ip : std::string(peer);
  if (policy.xff_num_trusted_hops == 0) {
    check(out.x_forwarded_proto == (in.tls ? "https" : "http"));
    check(out.client_address == fallback);
  } else if (out.client_address != fallback) {
    // Taken from X-Forwarded-For: an IP address in canonical form.
    std::string canonical;
    check(parse_forwarded_address(out.client_address, canonical) &&
          canonical == out.client_address);
  }

  // Every received entry is kept, plus the peer when appended.
  const size_t appended = policy.use_remote_address && !peer.empty() ? 1 : 0;
  check(count_entries(out.x_forwarded_for) == received_entries(headers) + appended);

  ForwardingHeaders again;
  compute_forwarding(in, policy, again);
  check(same(out, again));
  return 0;
}
