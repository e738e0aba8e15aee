// Forwarding headers (X-Forwarded-For/-Proto/-Host, Forwarded, Via) and the client address, from
// one documented policy with trusted hops: a pure function, any thread, no exceptions, no I/O.
//
// The full policy, with examples for 0, 1 and 2 trusted hops, is docs/forwarding.md. In short, with
// N = xff_num_trusted_hops and F = the received X-Forwarded-For entries followed by the peer:
// - client address: N == 0, the peer; N >= 1, F's Nth entry from the right (the peer is the 0th);
//   missing or not an IP address: the peer.
// - X-Forwarded-For: the received entries, re-serialised, plus the peer when use_remote_address.
// - X-Forwarded-Proto: the listener's scheme, unless N >= 1 and the peer sent exactly one "http" or
//   "https".
// - X-Forwarded-Host: the received Host, unless N >= 1 and the peer sent one.
// - Forwarded: the received elements only from a trusted peer (N >= 1), then one element for this
//   hop (for, proto, host); from an untrusted peer only this hop's element.
// - Via: the received values, then "<protocol> <pseudonym>".
// Every value produced is free of CR, LF, NUL and other control characters.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "proxy/http/h1_parser.h"

namespace portico::proxy::http {

struct ForwardingPolicy {
  uint32_t xff_num_trusted_hops = 0;  // HttpOptions::xff_num_trusted_hops
  bool use_remote_address = true;     // HttpOptions::use_remote_address: append the peer to XFF
  // The name this proxy gives itself in Via; must be an RFC 9110 token, else "portico" is used.
  std::string_view via_pseudonym = "portico";
};

struct ForwardingInput {
  // The connection's peer address as text without a port ("192.0.2.1", "2001:db8::1"); empty when
  // unknown (then nothing is appended to X-Forwarded-For and the client address is empty).
  std::string_view peer;
  bool tls = false;  // the request arrived over TLS on this listener
  // The protocol version of the received request, as Via writes it: "1.0", "1.1" or "2".
  std::string_view protocol = "1.1";
  std::string_view host;  // Host header or :authority as received (port included); may be empty
  // Every header of the received request; the forwarding ones are picked out by name
  // (case-insensitive), several lines of one name in order.
  std::span<const Header> headers;
};

// What to send upstream. The caller drops every received X-Forwarded-For, X-Forwarded-Proto,
// X-Forwarded-Host, Forwarded and Via line (is_forwarding_header) and writes these instead; an
// empty string means "send no such header". Reuse one object per stream: clear() keeps capacity.
struct ForwardingHeaders {
  std::string client_address;  // canonical IP text (no port, no brackets); empty if peer is empty
  std::string x_forwarded_for;
  std::string_view x_forwarded_proto;  // "http" or "https" (static storage)
  std::string x_forwarded_host;
  std::string forwarded;
  std::string via;

  void clear();
};

// compute_forwarding for the requests of one connection that carry no forwarding field of their
// own (ForwardingInput::headers empty, the usual case: a client talking to Portico directly). The
// answer then depends only on the peer, TLS, the Host, the protocol and the policy, which stay the
// same from one keep-alive request (or HTTP/2 stream) of a connection to the next: the last answer
// is kept and handed out again while they match. One per connection; the codecs drop it when the
// connection parks.
class ForwardingCache {
 public:
  // `in.headers` must be empty. The reference stays valid until the next call.
  const ForwardingHeaders& get(const ForwardingInput& in, const ForwardingPolicy& policy);
  uint64_t computed() const { return computed_; }  // how many calls had to compute

 private:
  std::string peer_, host_, protocol_, pseudonym_;
  uint32_t hops_ = 0;
  bool tls_ = false;
  bool use_remote_address_ = false;
  bool valid_ = false;
  uint64_t computed_ = 0;
  ForwardingHeaders headers_;
};

// True for the names compute_forwarding owns (case-insensitive): x-forwarded-for,
// x-forwarded-proto, x-forwarded-host, forwarded, via.
bool is_forwarding_header(std::string_view name);

// Applies the policy. Cannot fail: anything a client sent that does not parse is data (kept in
// X-Forwarded-For, see docs/forwarding.md) or ignored, never an error.
void compute_forwarding(const ForwardingInput& in, const ForwardingPolicy& policy,
                        ForwardingHeaders& out);

// Parses an X-Forwarded-For entry as an IP address: "192.0.2.1", "192.0.2.1:8080", "2001:db8::1",
// "[2001:db8::1]" or "[2001:db8::1]:8080". On success writes its canonical text (inet_ntop) to
// `out` and returns true. Exposed for tests.
bool parse_forwarded_address(std::string_view entry, std::string& out);

}  // namespace portico::proxy::http
