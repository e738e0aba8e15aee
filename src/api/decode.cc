#include "api/decode.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <exception>
#include <nlohmann/json.hpp>
#include <sstream>

#include "api/decode_internal.h"
#include "api/fields.h"
#include "api/validate.h"
#include "api/yaml_reader.h"
#include "common/regex_cache.h"

namespace portico::api {

const char* to_string(Kind kind) {
  switch (kind) {
    case Kind::kGateway:
      return "Gateway";
    case Kind::kVirtualService:
      return "VirtualService";
    case Kind::kUpstream:
      return "Upstream";
    case Kind::kSecret:
      return "Secret";
    case Kind::kRouteTable:
      return "RouteTable";
    case Kind::kUpstreamGroup:
      return "UpstreamGroup";
    case Kind::kSettings:
      return "Settings";
  }
  return "?";
}

namespace detail {

using yaml::DocReader;
using yaml::MapReader;

bool check_name_field(DocReader& doc, const std::string& value, const std::string& path,
                      Location loc) {
  std::string err = check_name(value);
  if (err.empty()) return true;
  doc.error(loc, path, err);
  return false;
}

ResourceRef decode_ref(DocReader& doc, const YAML::Node& node, const std::string& path,
                       Location loc, const std::string& default_ns) {
  ResourceRef ref;
  ref.path = path;
  ref.loc = loc;
  ref.ns = default_ns;
  MapReader m(doc, node, path, loc);
  if (!m.ok()) return ref;
  ref.loc = m.loc();
  Location where;
  if (m.string("name", &ref.name, true, &where)) {
    check_name_field(doc, ref.name, m.child_path("name"), where);
  }
  std::string ns;
  if (m.string("namespace", &ns, false, &where)) {
    if (check_name_field(doc, ns, m.child_path("namespace"), where)) ref.ns = ns;
  }
  m.finish();
  return ref;
}

std::vector<Domain> decode_domains(DocReader& doc, const yaml::Field& list) {
  std::vector<Domain> out;
  yaml::for_each_item(list, [&](const YAML::Node& item, const std::string& path, Location loc) {
    std::string value;
    if (!yaml::read_string(doc, item, path, loc, &value)) return;
    std::string error;
    auto d = normalize_domain(value, &error);
    if (!d) {
      doc.error(loc, path, error);
      return;
    }
    out.push_back(Domain{*d, loc, path});
  });
  return out;
}

}  // namespace detail

std::string Resource::key() const {
  return std::string(to_string(kind)) + "/" + meta.ns + "/" + meta.name;
}

namespace {

using detail::check_name_field;
using detail::decode_ref;
using yaml::DocReader;
using yaml::Field;
using yaml::MapReader;

constexpr size_t kMaxBodyBytes = 64 * 1024;
constexpr size_t kMaxRegexBytes = 4096;

// ---- spec as JSON ----

nlohmann::json scalar_to_json(const YAML::Node& node) {
  const std::string& s = node.Scalar();
  if (!yaml::is_plain(node)) return s;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (yaml::looks_like_int(s) && s.size() < 19) return std::stoll(s);
  if (!s.empty() && s.size() < 64 &&
      (std::isdigit(static_cast<unsigned char>(s[0])) ||
       ((s[0] == '-' || s[0] == '.') && s.size() > 1))) {
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (end != nullptr && *end == '\0' && std::isfinite(d)) return d;
  }
  return s;
}

nlohmann::json to_json(const YAML::Node& node, int depth) {
  if (depth > kMaxDepth + 1 || !node.IsDefined() || node.IsNull()) return nullptr;
  if (node.IsScalar()) return scalar_to_json(node);
  if (node.IsSequence()) {
    nlohmann::json arr = nlohmann::json::array();
    for (auto it = node.begin(); it != node.end(); ++it)
      arr.push_back(to_json(*it, depth + 1));
    return arr;
  }
  nlohmann::json obj = nlohmann::json::object();
  for (auto it = node.begin(); it != node.end(); ++it) {
    std::string key = it->first.IsScalar()
                          ? it->first.Scalar()
                          : to_json(it->first, depth + 1)
                                .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (obj.contains(key)) continue;  // duplicate keys are reported by the decoder; first wins
    obj[key] = to_json(it->second, depth + 1);
  }
  return obj;
}

std::optional<Pattern> compile(DocReader& doc, const std::string& source, bool case_sensitive,
                               const std::string& path, Location loc) {
  if (source.size() > kMaxRegexBytes) {
    doc.error(loc, path, "regex is longer than 4096 characters");
    return std::nullopt;
  }
  // Shared with the data plane's compiled routes (one RE2 per pattern in the process).
  auto re = common::shared_regex(source, case_sensitive);
  if (!re->ok()) {
    doc.error(loc, path, "invalid regex \"" + source + "\": " + re->error());
    return std::nullopt;
  }
  return Pattern{source, std::move(re)};
}

// ---- Gateway ----

// Fields that Portico's httpOptions and Gloo's httpConnectionManagerSettings both set: decoded by
// one function per field so that both places mean the same thing. `other` names the other place,
// for the message when a field is set in both.
class HttpOptionsReader {
 public:
  HttpOptionsReader(DocReader& doc, MapReader& m, GatewayHttpOptions* out, std::string other)
      : doc_(doc), m_(m), out_(out), other_(std::move(other)) {}

  template <typename T>
  void set(const char* key, std::optional<T>* slot, T value, Location where) {
    if (slot->has_value() && !other_.empty()) {
      doc_.error(where, m_.child_path(key), "is also set in " + other_ + "; set it in one place");
      return;
    }
    *slot = std::move(value);
  }
  void uint32(const char* key, uint64_t min, uint64_t max, std::optional<uint32_t>* slot,
              uint64_t scale = 1) {
    uint64_t n = 0;
    Location where;
    if (m_.uint(key, min, max, &n, false, &where)) {
      set(key, slot, static_cast<uint32_t>(n * scale), where);
    }
  }
  void uint64(const char* key, uint64_t min, uint64_t max, std::optional<uint64_t>* slot) {
    uint64_t n = 0;
    Location where;
    if (m_.uint(key, min, max, &n, false, &where)) set(key, slot, n, where);
  }
  void boolean(const char* key, std::optional<bool>* slot) {
    bool b = false;
    Location where;
    if (m_.boolean(key, &b, &where)) set(key, slot, b, where);
  }
  // positive: 0 is refused ("must be greater than 0").
  void duration(const char* key, std::optional<Millis>* slot, bool positive) {
    Millis d{0};
    Location where;
    if (!m_.duration(key, &d, false, &where)) return;
    if (positive && d.count() == 0) {
      doc_.error(where, m_.child_path(key), "must be greater than 0");
      return;
    }
    set(key, slot, d, where);
  }
  void server_name(const char* key) {
    std::string s;
    Location where;
    if (!m_.string(key, &s, false, &where)) return;
    if (!is_safe_header_value(s)) {
      doc_.error(where, m_.child_path(key), "must not contain CR, LF or NUL");
      return;
    }
    set(key, &out_->server_name, s, where);
  }

 private:
  DocReader& doc_;
  MapReader& m_;
  GatewayHttpOptions* out_;
  std::string other_;
};

constexpr uint64_t kMaxBodyLimit = uint64_t{1} << 40;  // 1 TiB: "no limit" is 0

void decode_http_options(DocReader& doc, const Field& f, GatewayHttpOptions* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  HttpOptionsReader r(doc, m, out, "");
  r.uint32("maxRequestHeadersBytes", 1024, 1024 * 1024, &out->max_request_headers_bytes);
  r.uint32("maxHeaders", 1, 10000, &out->max_headers);
  r.uint32("maxConnections", 1, 10000000, &out->max_connections);
  r.duration("requestHeaderTimeout", &out->request_header_timeout, true);
  r.duration("idleTimeout", &out->idle_timeout, true);
  r.duration("drainTimeout", &out->drain_timeout, false);
  r.boolean("generateRequestId", &out->generate_request_id);
  r.server_name("serverName");
  r.boolean("useRemoteAddress", &out->use_remote_address);
  r.uint32("xffNumTrustedHops", 0, 64, &out->xff_num_trusted_hops);
  r.boolean("normalizePath", &out->normalize_path);
  r.boolean("mergeSlashes", &out->merge_slashes);
  r.uint64("maxRequestBodyBytes", 0, kMaxBodyLimit, &out->max_request_body_bytes);
  r.duration("requestTimeout", &out->request_timeout, false);
  r.duration("streamIdleTimeout", &out->stream_idle_timeout, true);
  if (auto h = m.map("http2")) {
    // Downstream HTTP/2: TLS listeners offer it by ALPN; cleartext only with prior knowledge.
    MapReader h2(doc, h->value, h->path, h->loc);
    if (h2.ok()) {
      HttpOptionsReader r2(doc, h2, out, "");
      r2.boolean("cleartextPriorKnowledge", &out->http2_cleartext_prior_knowledge);
      r2.uint32("maxConcurrentStreams", 1, 65536, &out->http2_max_concurrent_streams);
      r2.uint32("initialStreamWindowSize", 65535, 2147483647, &out->http2_initial_stream_window);
      r2.uint32("initialConnectionWindowSize", 65535, 2147483647,
                &out->http2_initial_connection_window);
      h2.finish();
    }
  }
  m.finish();
}

// Gloo's httpGateway.options.httpConnectionManagerSettings.
void decode_hcm_settings(DocReader& doc, const Field& f, GatewayHttpOptions* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  HttpOptionsReader r(doc, m, out, "spec.httpOptions");
  r.uint32("xffNumTrustedHops", 0, 64, &out->xff_num_trusted_hops);
  r.boolean("useRemoteAddress", &out->use_remote_address);
  r.boolean("mergeSlashes", &out->merge_slashes);
  r.boolean("normalizePath", &out->normalize_path);
  r.duration("requestTimeout", &out->request_timeout, false);
  r.duration("streamIdleTimeout", &out->stream_idle_timeout, true);
  r.duration("idleTimeout", &out->idle_timeout, true);
  r.duration("requestHeadersTimeout", &out->request_header_timeout, true);
  r.duration("drainTimeout", &out->drain_timeout, false);
  r.uint32("maxRequestHeadersKb", 1, 1024, &out->max_request_headers_bytes, 1024);
  r.uint32("maxHeadersCount", 1, 10000, &out->max_headers);
  r.server_name("serverName");
  r.boolean("generateRequestId", &out->generate_request_id);
  // Harmless to ignore: observability and the letter case of header names on the wire.
  for (const char* harmless :
       {"tracing", "properCaseHeaderKeyFormat", "preserveCaseHeaderKeyFormat"}) {
    if (auto h = m.take(harmless)) {
      doc.warning(h->loc, h->path,
                  "is not implemented (ignored: it changes no routing or security)");
    }
  }
  m.finish();
}

// Gloo's label expressions: [{key, operator, values}].
void decode_expressions(DocReader& doc, const Field& list, std::vector<LabelExpression>* out) {
  yaml::for_each_item(list, [&](const YAML::Node& item, const std::string& path, Location loc) {
    MapReader m(doc, item, path, loc);
    if (!m.ok()) return;
    LabelExpression e;
    Location where;
    m.string("key", &e.key, true);
    std::string op;
    Location op_loc = m.loc();
    bool has_op = m.string("operator", &op, true, &op_loc);
    std::vector<std::string> values;
    if (auto v = m.list("values")) {
      yaml::for_each_item(*v, [&](const YAML::Node& vi, const std::string& vp, Location vl) {
        std::string value;
        if (yaml::read_string(doc, vi, vp, vl, &value)) values.push_back(value);
      });
    }
    m.finish();
    if (!has_op) return;
    std::string op_path = m.child_path("operator");
    size_t want = 0;  // 0: any number >= 1; 1: exactly one; SIZE_MAX: none
    if (op == "Equals" || op == "DoubleEquals" || op == "=" || op == "==") {
      e.op = LabelOp::kIn;
      want = 1;
    } else if (op == "NotEquals" || op == "!=") {
      e.op = LabelOp::kNotIn;
      want = 1;
    } else if (op == "In" || op == "in") {
      e.op = LabelOp::kIn;
    } else if (op == "NotIn" || op == "notin") {
      e.op = LabelOp::kNotIn;
    } else if (op == "Exists" || op == "exists") {
      e.op = LabelOp::kExists;
      want = SIZE_MAX;
    } else if (op == "DoesNotExist" || op == "!") {
      e.op = LabelOp::kDoesNotExist;
      want = SIZE_MAX;
    } else if (op == "GreaterThan" || op == "gt") {
      e.op = LabelOp::kGreaterThan;
      want = 1;
    } else if (op == "LessThan" || op == "lt") {
      e.op = LabelOp::kLessThan;
      want = 1;
    } else {
      doc.error(op_loc, op_path,
                "\"" + op +
                    "\" is not an operator (Equals, DoubleEquals, NotEquals, In, NotIn, Exists, "
                    "DoesNotExist, GreaterThan, LessThan)");
      return;
    }
    if (want == SIZE_MAX && !values.empty()) {
      doc.error(op_loc, m.child_path("values"), op + " takes no values");
      return;
    }
    if (want == 1 && values.size() != 1) {
      doc.error(op_loc, m.child_path("values"), op + " takes exactly one value");
      return;
    }
    if (want == 0 && values.empty()) {
      doc.error(op_loc, m.child_path("values"), op + " needs at least one value");
      return;
    }
    if ((e.op == LabelOp::kGreaterThan || e.op == LabelOp::kLessThan) &&
        !yaml::looks_like_int(values[0])) {
      doc.error(op_loc, m.child_path("values"), op + " needs an integer value");
      return;
    }
    e.values = std::move(values);
    out->push_back(std::move(e));
  });
}

void decode_namespaces(DocReader& doc, const Field& list, std::vector<std::string>* out) {
  yaml::for_each_item(list, [&](const YAML::Node& item, const std::string& path, Location loc) {
    std::string ns;
    if (!yaml::read_string(doc, item, path, loc, &ns)) return;
    if (ns != "*" && !check_name_field(doc, ns, path, loc)) return;
    out->push_back(ns);
  });
}

// The selection fields of a Gateway, from Portico's places (spec.virtualServices,
// spec.virtualServiceSelector{labels, namespaces, expressions}) or Gloo's (spec.httpGateway.*).
struct SelectionFields {
  std::optional<Field> refs, selector, expressions, namespaces;
};

void apply_selection(DocReader& doc, const SelectionFields& f, bool gloo_selector_shape,
                     const ObjectMeta& meta, GatewaySpec* out) {
  if (f.refs) {
    yaml::for_each_item(
        *f.refs, [&](const YAML::Node& item, const std::string& path, Location loc) {
          out->virtual_services.push_back(decode_ref(doc, item, path, loc, meta.ns));
        });
  }
  if (f.selector) {
    std::map<std::string, std::string> labels;
    if (gloo_selector_shape) {
      // Gloo: virtualServiceSelector is the label map itself.
      MapReader m(doc, f.selector->value, f.selector->path, f.selector->loc);
      for (auto it = f.selector->value.begin(); it != f.selector->value.end(); ++it) {
        if (!it->first.IsScalar()) continue;
        std::string key = it->first.Scalar();
        auto field = m.take(key);
        std::string value;
        if (field->is_null()) {
          labels[key] = "";
        } else if (yaml::read_string(doc, field->value, field->path, field->loc, &value)) {
          labels[key] = value;
        }
      }
      m.finish();
    } else {
      MapReader m(doc, f.selector->value, f.selector->path, f.selector->loc);
      m.string_map("labels", &labels);
      if (auto e = m.list("expressions")) {
        std::vector<LabelExpression> exprs;
        decode_expressions(doc, *e, &exprs);
        out->expressions = std::move(exprs);
      }
      if (auto n = m.list("namespaces")) {
        std::vector<std::string> ns;
        decode_namespaces(doc, *n, &ns);
        out->namespaces = std::move(ns);
      }
      m.finish();
    }
    if (!labels.empty() || !out->expressions) out->selector = std::move(labels);
  }
  if (f.expressions) {
    MapReader m(doc, f.expressions->value, f.expressions->path, f.expressions->loc);
    if (auto e = m.list("expressions", true)) {
      std::vector<LabelExpression> exprs;
      decode_expressions(doc, *e, &exprs);
      out->expressions = std::move(exprs);
    }
    m.finish();
  }
  if (f.namespaces) {
    std::vector<std::string> ns;
    decode_namespaces(doc, *f.namespaces, &ns);
    out->namespaces = std::move(ns);
  }
  if (f.selector && f.expressions) {
    doc.error(f.expressions->loc, f.expressions->path,
              "use virtualServiceSelector or virtualServiceExpressions, not both");
  }
  if (f.refs && f.refs->value.size() > 0) {
    for (const auto* other : {&f.selector, &f.expressions, &f.namespaces}) {
      if (*other) {
        doc.warning((*other)->loc, (*other)->path, "is ignored because virtualServices is set");
      }
    }
  }
}

void decode_vs_selection(DocReader& doc, MapReader& spec, const ObjectMeta& meta,
                         GatewaySpec* out) {
  SelectionFields top;
  top.refs = spec.list("virtualServices");
  top.selector = spec.map("virtualServiceSelector");
  apply_selection(doc, top, false, meta, out);
}

// Gloo's httpGateway: which VirtualServices, and its options (HttpListenerOptions).
void decode_http_gateway(DocReader& doc, const Field& f, const ObjectMeta& meta, GatewaySpec* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  SelectionFields gloo;
  gloo.refs = m.list("virtualServices");
  gloo.selector = m.map("virtualServiceSelector");
  gloo.expressions = m.map("virtualServiceExpressions");
  gloo.namespaces = m.list("virtualServiceNamespaces");
  bool any = gloo.refs || gloo.selector || gloo.expressions || gloo.namespaces;
  bool top = !out->virtual_services.empty() || out->selector || out->expressions || out->namespaces;
  if (any && top) {
    doc.error(m.loc(), f.path,
              "selects virtual services, and so does spec.virtualServices or "
              "spec.virtualServiceSelector; use one place");
  } else if (any) {
    apply_selection(doc, gloo, true, meta, out);
  }
  if (auto o = m.map("options")) {
    MapReader om(doc, o->value, o->path, o->loc);
    if (auto h = om.map("httpConnectionManagerSettings")) decode_hcm_settings(doc, *h, &out->http);
    if (auto g = om.map("grpcWeb")) {
      // Gloo's GrpcWeb: gRPC-Web translation is on by default; `disable: true` turns it off.
      MapReader gm(doc, g->value, g->path, g->loc);
      if (gm.ok()) {
        bool disable = false;
        if (gm.boolean("disable", &disable)) out->http.grpc_web_disable = disable;
        gm.finish();
      }
    }
    om.finish();
  }
  m.finish();
}

void decode_gateway(DocReader& doc, MapReader& spec, const ObjectMeta& meta, GatewaySpec* out) {
  Location where;
  std::string address;
  if (spec.string("bindAddress", &address, false, &where)) {
    if (ip_family(address) == 0) {
      doc.error(where, spec.child_path("bindAddress"),
                "\"" + address + "\" is not a numeric IPv4 or IPv6 address");
    } else {
      out->bind_address = canonical_ip(address);
    }
  }
  uint64_t port = 0;
  out->bind_loc = spec.loc();
  if (spec.uint("bindPort", 1, 65535, &port, true, &where)) {
    out->bind_port = static_cast<uint16_t>(port);
    out->bind_loc = where;
  } else if (where.line > 0) {
    out->bind_loc = where;
  }
  // Which VirtualServices: Portico's top-level fields, or Gloo's under httpGateway (not both).
  decode_vs_selection(doc, spec, meta, out);
  if (auto f = spec.map("httpOptions")) decode_http_options(doc, *f, &out->http);
  if (auto f = spec.map("httpGateway")) decode_http_gateway(doc, *f, meta, out);
  if (auto f = spec.list("proxyNames")) {
    bool default_only =
        f->value.size() == 1 && f->value[0].IsScalar() && f->value[0].Scalar() == "gateway-proxy";
    if (!default_only) {
      doc.error(f->loc, f->path,
                "only [gateway-proxy] (Gloo's default) is supported: every Portico proxy serves "
                "every Gateway");
    }
  }
  bool proxy_protocol = false;
  Location pp_loc;
  if (spec.boolean("useProxyProto", &proxy_protocol, &pp_loc) && proxy_protocol) {
    doc.error(pp_loc, "spec.useProxyProto", "the PROXY protocol is not supported yet");
  }
  for (const char* other : {"tcpGateway", "hybridGateway"}) {
    if (auto f = spec.take(other)) {
      doc.error(f->loc, f->path,
                std::string(other) + " is not supported yet; Portico serves HTTP gateways");
    }
  }
  if (auto f = spec.map("options")) detail::decode_gateway_options(doc, *f, out);
  spec.boolean("ssl", &out->ssl, &out->ssl_loc);
  if (auto f = spec.map("sslConfig")) {
    DownstreamTls tls;
    detail::decode_downstream_tls(doc, *f, meta.ns, true, &tls);
    if (!out->ssl) {
      doc.error(f->loc, f->path, "needs ssl: true (a plain gateway serves no certificate)");
    }
    out->tls = std::move(tls);
  }
}

// ---- VirtualService ----

void decode_matcher(DocReader& doc, const YAML::Node& node, const std::string& path, Location loc,
                    Matcher* out) {
  out->field_path = path;
  out->loc = loc;
  MapReader m(doc, node, path, loc);
  if (!m.ok()) return;
  out->loc = m.loc();
  m.boolean("caseSensitive", &out->case_sensitive);
  int kinds = 0;
  for (const char* key : {"prefix", "exact", "regex"}) {
    if (m.has(key)) ++kinds;
  }
  if (kinds > 1) {
    doc.error(m.loc(), path, "has more than one of prefix, exact and regex; use one per matcher");
  }
  Location where;
  std::string value;
  if (m.string("prefix", &value, false, &where)) {
    out->kind = PathKind::kPrefix;
    out->path = value;
    if (value.empty() || value[0] != '/') {
      doc.error(where, m.child_path("prefix"), "must start with '/'");
    } else if (value.find_first_of("?#") != std::string::npos) {
      doc.error(where, m.child_path("prefix"),
                "must not contain '?' or '#': paths are matched without the query string "
                "(use queryParameters)");
    }
  }
  if (m.string("exact", &value, false, &where)) {
    out->kind = PathKind::kExact;
    out->path = value;
    if (value.empty() || value[0] != '/') {
      doc.error(where, m.child_path("exact"), "must start with '/'");
    } else if (value.find_first_of("?#") != std::string::npos) {
      doc.error(where, m.child_path("exact"),
                "must not contain '?' or '#': paths are matched without the query string "
                "(use queryParameters)");
    }
  }
  if (m.string("regex", &value, false, &where)) {
    out->kind = PathKind::kRegex;
    out->path = value;
    if (auto p = compile(doc, value, out->case_sensitive, m.child_path("regex"), where)) {
      out->regex = std::move(*p);
    }
  }
  if (auto f = m.list("headers")) {
    yaml::for_each_item(*f, [&](const YAML::Node& item, const std::string& ipath, Location iloc) {
      MapReader h(doc, item, ipath, iloc);
      if (!h.ok()) return;
      HeaderMatch hm;
      Location name_loc;
      if (h.string("name", &hm.name, true, &name_loc)) {
        if (!is_http_token(hm.name)) {
          doc.error(name_loc, h.child_path("name"),
                    "\"" + hm.name + "\" is not a valid header name");
        }
        hm.name = to_lower(hm.name);
      }
      h.boolean("regex", &hm.regex);
      h.boolean("invertMatch", &hm.invert);
      std::string v;
      Location vloc;
      if (h.string("value", &v, false, &vloc)) {
        hm.value = v;
        if (hm.regex) {
          if (auto p = compile(doc, v, true, h.child_path("value"), vloc)) hm.pattern = *p;
        }
      } else if (hm.regex) {
        doc.error(h.loc(), h.child_path("value"), "is required when regex is true");
      }
      h.finish();
      out->headers.push_back(std::move(hm));
    });
  }
  if (auto f = m.list("queryParameters")) {
    yaml::for_each_item(*f, [&](const YAML::Node& item, const std::string& ipath, Location iloc) {
      MapReader q(doc, item, ipath, iloc);
      if (!q.ok()) return;
      QueryMatch qm;
      Location name_loc;
      if (q.string("name", &qm.name, true, &name_loc) && qm.name.empty()) {
        doc.error(name_loc, q.child_path("name"), "must not be empty");
      }
      q.boolean("regex", &qm.regex);
      std::string v;
      Location vloc;
      if (q.string("value", &v, false, &vloc)) {
        qm.value = v;
        if (qm.regex) {
          if (auto p = compile(doc, v, true, q.child_path("value"), vloc)) qm.pattern = *p;
        }
      } else if (qm.regex) {
        doc.error(q.loc(), q.child_path("value"), "is required when regex is true");
      }
      q.finish();
      out->query.push_back(std::move(qm));
    });
  }
  if (auto f = m.list("methods")) {
    yaml::for_each_item(*f, [&](const YAML::Node& item, const std::string& ipath, Location iloc) {
      std::string method;
      if (!yaml::read_string(doc, item, ipath, iloc, &method)) return;
      if (!is_http_token(method)) {
        doc.error(iloc, ipath, "\"" + method + "\" is not a valid HTTP method");
        return;
      }
      std::string upper = to_upper(method);
      if (upper != method) {
        doc.warning(
            iloc, ipath,
            "methods are case-sensitive; \"" + method + "\" is matched as \"" + upper + "\"");
      }
      out->methods.push_back(upper);
    });
  }
  m.finish();
}

void decode_destination_upstream(DocReader& doc, const YAML::Node& node, const std::string& path,
                                 Location loc, const std::string& ns, Destination* out) {
  MapReader d(doc, node, path, loc);
  if (!d.ok()) return;
  if (auto u = d.take("upstream"); u && !u->is_null()) {
    out->upstream = decode_ref(doc, u->value, u->path, u->loc, ns);
  } else {
    d.require_error("upstream");
  }
  // subset: {values: {key: value}} (Gloo's Subset): only the endpoints carrying these labels.
  if (auto sf = d.map("subset")) {
    MapReader sm(doc, sf->value, sf->path, sf->loc);
    std::map<std::string, std::string> values;
    if (sm.has("values")) {
      sm.string_map("values", &values);
      if (values.empty()) {
        doc.error(sf->loc, sm.child_path("values"),
                  "must name at least one label (key: value); omit subset to use every endpoint");
      }
    } else if (sm.ok()) {
      sm.require_error("values");
    }
    sm.finish();
    for (const auto& [k, v] : values) {
      if (k.empty()) doc.error(sf->loc, sm.child_path("values"), "a label key must not be empty");
    }
    out->subset.assign(values.begin(), values.end());
    out->subset_loc = sf->loc;
    out->subset_path = sf->path;
  }
  d.finish();
}

// Upstream spec.subsetSpec (Gloo's SubsetSpec): selectors: [{keys: [...]}], the label key sets
// routes may select on.
void decode_subset_spec(DocReader& doc, const Field& f,
                        std::vector<std::vector<std::string>>* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  if (auto list = m.list("selectors", true)) {
    yaml::for_each_item(*list, [&](const YAML::Node& item, const std::string& p, Location l) {
      MapReader sel(doc, item, p, l);
      if (!sel.ok()) return;
      std::vector<std::string> keys;
      if (auto kf = sel.list("keys", true)) {
        yaml::for_each_item(*kf, [&](const YAML::Node& k, const std::string& kp, Location kl) {
          std::string key;
          if (!yaml::read_string(doc, k, kp, kl, &key)) return;
          if (key.empty()) {
            doc.error(kl, kp, "must not be empty");
          } else if (std::find(keys.begin(), keys.end(), key) != keys.end()) {
            doc.error(kl, kp, "\"" + key + "\" is listed twice");
          } else {
            keys.push_back(std::move(key));
          }
        });
        if (kf->value.size() == 0) doc.error(kf->loc, kf->path, "must list at least one key");
      }
      // singleHostPerSubset and anything else: not implemented, rejected by name.
      sel.finish();
      std::sort(keys.begin(), keys.end());
      if (!keys.empty()) out->push_back(std::move(keys));
    });
    if (list->value.size() == 0)
      doc.error(list->loc, list->path, "must have at least one selector");
  }
  m.finish();
}

// A list of {weight, destination} (a route's multi, an UpstreamGroup): at least one, weights
// 1-1000000 (default 1) whose sum fits in 32 bits.
void decode_weighted_destinations(DocReader& doc, const Field& list, const std::string& ns,
                                  std::vector<Destination>* out) {
  uint64_t total = 0;
  yaml::for_each_item(list, [&](const YAML::Node& item, const std::string& p, Location l) {
    MapReader dm(doc, item, p, l);
    if (!dm.ok()) return;
    Destination d;
    uint64_t w = 1;
    if (dm.uint("weight", 1, 1'000'000, &w)) d.weight = static_cast<uint32_t>(w);
    total += d.weight;
    if (auto dest = dm.take("destination"); dest && !dest->is_null()) {
      decode_destination_upstream(doc, dest->value, dest->path, dest->loc, ns, &d);
    } else {
      dm.require_error("destination");
    }
    dm.finish();
    out->push_back(std::move(d));
  });
  if (list.value.size() == 0) {
    doc.error(list.loc, list.path, "must have at least one destination");
  } else if (total > UINT32_MAX) {
    doc.error(list.loc, list.path, "the sum of the weights is too large");
  }
}

void decode_route_action(DocReader& doc, const Field& f, const std::string& ns,
                         ForwardAction* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  bool single = m.has("single"), multi = m.has("multi"), group = m.has("upstreamGroup");
  if (auto g = m.map("upstreamGroup")) {
    out->upstream_group = decode_ref(doc, g->value, g->path, g->loc, ns);
  }
  if (int(single) + int(multi) + int(group) > 1) {
    doc.error(m.loc(), f.path, "has more than one of single, multi and upstreamGroup; use one");
  } else if (!single && !multi && !group && m.ok()) {
    doc.error(m.loc(), f.path, "needs single, multi or upstreamGroup");
  }
  if (auto s = m.take("single"); s && !s->is_null()) {
    Destination d;
    decode_destination_upstream(doc, s->value, s->path, s->loc, ns, &d);
    out->destinations.push_back(std::move(d));
  }
  if (auto mf = m.map("multi")) {
    out->multi = true;
    MapReader mm(doc, mf->value, mf->path, mf->loc);
    if (auto list = mm.list("destinations", true)) {
      decode_weighted_destinations(doc, *list, ns, &out->destinations);
    }
    mm.finish();
  }
  m.finish();
}

uint16_t redirect_code_from_name(const std::string& name) {
  if (name == "MOVED_PERMANENTLY") return 301;
  if (name == "FOUND") return 302;
  if (name == "SEE_OTHER") return 303;
  if (name == "TEMPORARY_REDIRECT") return 307;
  if (name == "PERMANENT_REDIRECT") return 308;
  return 0;
}

void decode_redirect(DocReader& doc, const Field& f, RedirectAction* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  Location where;
  if (m.string("hostRedirect", &out->host, false, &where)) {
    if (out->host.empty() || out->host.find_first_of("/ \t\r\n") != std::string::npos ||
        !is_safe_header_value(out->host)) {
      doc.error(where, m.child_path("hostRedirect"),
                "\"" + out->host + "\" is not a valid host (no scheme, path or spaces)");
    }
  }
  if (m.string("pathRedirect", &out->path, false, &where)) {
    if (out->path.empty() || out->path[0] != '/' || !is_safe_header_value(out->path)) {
      doc.error(where, m.child_path("pathRedirect"), "must start with '/' and have no CR or LF");
    }
  }
  if (m.string("prefixRewrite", &out->prefix_rewrite, false, &where)) {
    if (out->prefix_rewrite.empty() || out->prefix_rewrite[0] != '/' ||
        !is_safe_header_value(out->prefix_rewrite)) {
      doc.error(where, m.child_path("prefixRewrite"), "must start with '/' and have no CR or LF");
    }
  }
  if (!out->path.empty() && !out->prefix_rewrite.empty()) {
    doc.error(m.loc(), f.path, "pathRedirect and prefixRewrite are mutually exclusive");
  }
  m.boolean("httpsRedirect", &out->https);
  uint64_t port = 0;
  if (m.uint("portRedirect", 1, 65535, &port)) out->port = static_cast<uint16_t>(port);
  m.boolean("stripQuery", &out->strip_query);
  if (auto c = m.take("responseCode"); c && !c->is_null()) {
    bool ok = false;
    if (c->value.IsScalar()) {
      const std::string& s = c->value.Scalar();
      if (uint16_t code = redirect_code_from_name(s)) {
        out->code = code;
        ok = true;
      } else if (yaml::looks_like_int(s) && s.size() == 3) {
        int code = std::stoi(s);
        if (code == 301 || code == 302 || code == 303 || code == 307 || code == 308) {
          out->code = static_cast<uint16_t>(code);
          ok = true;
        }
      }
    }
    if (!ok) {
      doc.error(c->loc, c->path,
                "must be 301, 302, 303, 307 or 308 (or MOVED_PERMANENTLY, FOUND, SEE_OTHER, "
                "TEMPORARY_REDIRECT, PERMANENT_REDIRECT)");
    }
  }
  if (out->host.empty() && out->path.empty() && out->prefix_rewrite.empty() && !out->https &&
      out->port == 0 && !out->strip_query) {
    doc.warning(m.loc(), f.path, "changes nothing: clients would be redirected to the same URL");
  }
  m.finish();
}

void decode_direct_response(DocReader& doc, const Field& f, DirectResponseAction* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  uint64_t status = 0;
  if (m.uint("status", 100, 599, &status, true)) out->status = static_cast<uint16_t>(status);
  Location where;
  if (m.string("body", &out->body, false, &where) && out->body.size() > kMaxBodyBytes) {
    doc.error(where, m.child_path("body"), "is larger than 64 KiB");
    out->body.clear();
  }
  m.finish();
}

void decode_headers_to_add(DocReader& doc, const Field& f, bool request,
                           std::vector<HeaderToAdd>* out) {
  yaml::for_each_item(f, [&](const YAML::Node& item, const std::string& path, Location loc) {
    MapReader m(doc, item, path, loc);
    if (!m.ok()) return;
    HeaderToAdd h;
    if (auto hf = m.map("header", true)) {
      MapReader hv(doc, hf->value, hf->path, hf->loc);
      Location where;
      if (hv.string("key", &h.name, true, &where)) {
        std::string lower = to_lower(h.name);
        if (!is_http_token(h.name)) {
          doc.error(where, hv.child_path("key"), "\"" + h.name + "\" is not a valid header name");
        } else if (is_reserved_header(lower) && (request || lower != "host")) {
          doc.error(where, hv.child_path("key"),
                    "\"" + h.name +
                        "\" cannot be added: hop-by-hop, framing and Host headers are "
                        "managed by the proxy" +
                        (request && lower == "host" ? " (use options.hostRewrite)" : ""));
        }
      }
      if (hv.string("value", &h.value, false, &where) && !is_safe_header_value(h.value)) {
        doc.error(where, hv.child_path("value"), "must not contain CR, LF or NUL");
      }
      hv.finish();
    }
    m.boolean("append", &h.append);
    m.finish();
    out->push_back(std::move(h));
  });
}

// healthChecks[].grpcHealthCheck: serviceName, authority, initialMetadata (Envoy's
// GrpcHealthCheck); anything else is rejected by name.
void decode_grpc_health_check(DocReader& doc, const Field& f, UpstreamHealthCheck* hc) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  Location where;
  if (m.string("serviceName", &hc->service_name, false, &where) && hc->service_name.size() > 1024) {
    doc.error(where, m.child_path("serviceName"), "is longer than 1024 bytes");
  }
  if (m.string("authority", &hc->host, false, &where) &&
      (hc->host.empty() || hc->host.find_first_of(" \t\r\n") != std::string::npos ||
       !is_safe_header_value(hc->host))) {
    doc.error(where, m.child_path("authority"),
              "must be a non-empty host[:port] without spaces or line breaks");
  }
  if (auto md = m.list("initialMetadata")) {
    yaml::for_each_item(*md, [&](const YAML::Node& item, const std::string& path, Location loc) {
      MapReader im(doc, item, path, loc);
      if (!im.ok()) return;
      std::string name, value;
      if (auto hf = im.map("header", true)) {
        MapReader hv(doc, hf->value, hf->path, hf->loc);
        Location kw;
        if (hv.string("key", &name, true, &kw)) {
          const std::string lower = to_lower(name);
          if (!is_http_token(name)) {
            doc.error(kw, hv.child_path("key"), "\"" + name + "\" is not a valid header name");
          } else if (is_reserved_header(lower) || lower == "content-type" ||
                     lower == "user-agent" || lower.rfind("grpc-", 0) == 0) {
            doc.error(kw, hv.child_path("key"),
                      "\"" + name +
                          "\" cannot be set: hop-by-hop, framing, Host, content-type, "
                          "user-agent and grpc-* headers are set by the health check");
          } else {
            for (const auto& [other, v] : hc->initial_metadata) {
              if (other == lower) {
                doc.error(kw, hv.child_path("key"), "\"" + name + "\" is listed twice");
                break;
              }
            }
            name = lower;
          }
        }
        Location vw;
        if (hv.string("value", &value, false, &vw) && !is_safe_header_value(value)) {
          doc.error(vw, hv.child_path("value"), "must not contain CR, LF or NUL");
        }
        hv.finish();
      }
      // Each name is sent once: appending or replacing makes no difference.
      bool append = true;
      im.boolean("append", &append);
      im.finish();
      if (!name.empty()) hc->initial_metadata.emplace_back(std::move(name), std::move(value));
    });
  }
  m.finish();
}

void decode_headers_to_remove(DocReader& doc, const Field& f, bool request,
                              std::vector<std::string>* out) {
  yaml::for_each_item(f, [&](const YAML::Node& item, const std::string& path, Location loc) {
    std::string name;
    if (!yaml::read_string(doc, item, path, loc, &name)) return;
    if (!is_http_token(name)) {
      doc.error(loc, path, "\"" + name + "\" is not a valid header name");
      return;
    }
    std::string lower = to_lower(name);
    if (request && lower == "host") {
      doc.error(loc, path, "the Host header cannot be removed");
      return;
    }
    out->push_back(lower);
  });
}

// upgrades: [{websocket: {enabled: true}}, {connect: {enabled: true}}]. Each item names one kind;
// `enabled` defaults to true (Gloo's and Envoy's default). An unknown kind is an error (fail
// closed).
void decode_upgrades(DocReader& doc, const Field& f, Upgrades* out) {
  bool seen_ws = false, seen_connect = false;
  yaml::for_each_item(f, [&](const YAML::Node& item, const std::string& path, Location loc) {
    MapReader m(doc, item, path, loc);
    if (!m.ok()) return;
    auto ws = m.take("websocket");
    auto connect = m.take("connect");
    if (ws && connect) {
      doc.error(m.loc(), path, "one upgrade per item: websocket or connect, not both");
    } else if (!ws && !connect && item.size() == 0) {
      doc.error(m.loc(), path, "needs one of websocket and connect");
    }
    for (auto* spec : {&ws, &connect}) {
      if (!*spec) continue;
      const bool is_ws = spec == &ws;
      bool& seen = is_ws ? seen_ws : seen_connect;
      if (seen) doc.error((*spec)->loc, (*spec)->path, "is listed twice");
      seen = true;
      if (!(*spec)->value.IsMap()) {
        doc.error((*spec)->loc, (*spec)->path, "expected a map such as {enabled: true}");
        continue;
      }
      MapReader sm(doc, (*spec)->value, (*spec)->path, (*spec)->loc);
      bool on = true;  // `enabled` defaults to true
      sm.boolean("enabled", &on);
      sm.finish();
      (is_ws ? out->websocket : out->connect) = on;
    }
    m.finish();  // any other kind is an error: fail closed
  });
}

void decode_route_options(DocReader& doc, const Field& f, RouteOptions* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  Millis d{0};
  if (m.duration("timeout", &d)) out->timeout = d;
  Location where;
  std::string s;
  if (m.string("prefixRewrite", &s, false, &where)) {
    if (s.empty() || s[0] != '/' || !is_safe_header_value(s)) {
      doc.error(where, m.child_path("prefixRewrite"), "must start with '/' and have no CR or LF");
    } else {
      out->prefix_rewrite = s;
    }
  }
  if (m.string("hostRewrite", &s, false, &where)) {
    if (s.empty() || s.find_first_of("/ \t") != std::string::npos || !is_safe_header_value(s)) {
      doc.error(where, m.child_path("hostRewrite"), "\"" + s + "\" is not a valid host");
    } else {
      out->host_rewrite = s;
    }
  }
  if (auto a = m.map("accessLog"))
    detail::decode_route_access_log(doc, *a, &out->access_log_disabled);
  if (auto r = m.map("retries")) detail::decode_retries(doc, *r, &out->retries.emplace());
  uint64_t limit = 0;
  if (m.uint("maxRequestBodyBytes", 0, kMaxBodyLimit, &limit)) out->max_request_body_bytes = limit;
  if (auto l = m.list("upgrades")) decode_upgrades(doc, *l, &out->upgrades.emplace());
  if (auto h = m.map("lbHash")) detail::decode_lb_hash(doc, *h, out);
  if (m.duration("idleTimeout", &d, false, &where)) {
    if (d.count() <= 0) {
      doc.error(where, m.child_path("idleTimeout"), "must be greater than 0");
    } else {
      out->idle_timeout = d;
    }
  }
  if (auto hm = m.map("headerManipulation")) {
    MapReader h(doc, hm->value, hm->path, hm->loc);
    if (auto l = h.list("requestHeadersToAdd")) {
      decode_headers_to_add(doc, *l, true, &out->headers.request_add);
    }
    if (auto l = h.list("requestHeadersToRemove")) {
      decode_headers_to_remove(doc, *l, true, &out->headers.request_remove);
    }
    if (auto l = h.list("responseHeadersToAdd")) {
      decode_headers_to_add(doc, *l, false, &out->headers.response_add);
    }
    if (auto l = h.list("responseHeadersToRemove")) {
      decode_headers_to_remove(doc, *l, false, &out->headers.response_remove);
    }
    h.finish();
  }
  m.finish();
}

// delegateAction: {ref: {name, namespace}}, {name, namespace} (Gloo's older shape), or
// {selector: {labels, expressions, namespaces}}.
void decode_delegate(DocReader& doc, const Field& f, const std::string& ns, DelegateAction* out) {
  out->loc = f.loc;
  out->path = f.path;
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  out->loc = m.loc();
  bool ref = m.has("ref"), named = m.has("name"), selector = m.has("selector");
  if (int(ref) + int(named) + int(selector) != 1) {
    doc.error(m.loc(), f.path, "needs exactly one of ref, name (with namespace) and selector");
  }
  if (auto r = m.map("ref")) out->ref = decode_ref(doc, r->value, r->path, r->loc, ns);
  if (named) {
    ResourceRef r;
    r.loc = m.loc();
    r.path = f.path;
    r.ns = ns;
    Location where;
    if (m.string("name", &r.name, true, &where)) {
      check_name_field(doc, r.name, m.child_path("name"), where);
    }
    std::string rns;
    if (m.string("namespace", &rns, false, &where) &&
        check_name_field(doc, rns, m.child_path("namespace"), where)) {
      r.ns = rns;
    }
    out->ref = std::move(r);
  }
  if (auto sel = m.map("selector")) {
    MapReader sm(doc, sel->value, sel->path, sel->loc);
    sm.string_map("labels", &out->labels);
    if (auto e = sm.list("expressions")) decode_expressions(doc, *e, &out->expressions);
    if (auto n = sm.list("namespaces")) decode_namespaces(doc, *n, &out->namespaces);
    sm.finish();
  }
  m.finish();
}

void decode_route(DocReader& doc, const YAML::Node& node, const std::string& path, Location loc,
                  const std::string& ns, Route* out) {
  out->field_path = path;
  out->loc = loc;
  MapReader m(doc, node, path, loc);
  if (!m.ok()) return;
  out->loc = m.loc();
  m.string("name", &out->name);
  if (auto f = m.list("matchers")) {
    yaml::for_each_item(*f, [&](const YAML::Node& item, const std::string& p, Location l) {
      Matcher matcher;
      decode_matcher(doc, item, p, l, &matcher);
      out->matchers.push_back(std::move(matcher));
    });
  }
  if (out->matchers.empty()) {
    Matcher matcher;
    matcher.loc = out->loc;
    matcher.field_path = path;
    out->matchers.push_back(std::move(matcher));
  }
  std::vector<std::string> actions;
  for (const char* key :
       {"routeAction", "redirectAction", "directResponseAction", "delegateAction"}) {
    if (m.has(key)) actions.emplace_back(key);
  }
  if (actions.empty()) {
    doc.error(out->loc, path,
              "needs an action: routeAction, redirectAction, directResponseAction or "
              "delegateAction");
  } else if (actions.size() > 1) {
    std::string list;
    for (const auto& a : actions)
      list += (list.empty() ? "" : ", ") + a;
    doc.error(out->loc, path, "has more than one action (" + list + "); use exactly one");
  }
  if (auto f = m.map("routeAction")) {
    ForwardAction a;
    decode_route_action(doc, *f, ns, &a);
    if (std::holds_alternative<std::monostate>(out->action)) out->action = std::move(a);
  }
  if (auto f = m.map("redirectAction")) {
    RedirectAction a;
    decode_redirect(doc, *f, &a);
    if (std::holds_alternative<std::monostate>(out->action)) out->action = std::move(a);
  }
  if (auto f = m.map("directResponseAction")) {
    DirectResponseAction a;
    decode_direct_response(doc, *f, &a);
    if (std::holds_alternative<std::monostate>(out->action)) out->action = std::move(a);
  }
  if (auto f = m.map("delegateAction")) {
    DelegateAction a;
    decode_delegate(doc, *f, ns, &a);
    // Gloo's rule: a delegating route has one matcher, and it is a prefix (or none: prefix "/").
    if (out->matchers.size() > 1) {
      doc.error(out->matchers[1].loc, out->matchers[1].field_path,
                "a delegating route has at most one matcher (a prefix)");
    } else if (out->matchers[0].kind != PathKind::kPrefix) {
      doc.error(out->matchers[0].loc, out->matchers[0].field_path,
                "a delegating route's matcher must be a prefix");
    }
    if (std::holds_alternative<std::monostate>(out->action)) out->action = std::move(a);
  }
  if (auto f = m.map("options")) decode_route_options(doc, *f, &out->options);
  m.finish();
}

void decode_virtual_service(DocReader& doc, MapReader& spec, const ObjectMeta& meta,
                            VirtualServiceSpec* out) {
  spec.ignore_harmless("displayName", "a label for user interfaces");
  if (auto f = spec.map("sslConfig")) {
    DownstreamTls tls;
    detail::decode_downstream_tls(doc, *f, meta.ns, false, &tls);
    out->tls = std::move(tls);
  }
  auto vh = spec.map("virtualHost", true);
  if (!vh) return;
  MapReader m(doc, vh->value, vh->path, vh->loc);
  bool domains_given = false;
  if (auto f = m.list("domains")) {
    domains_given = f->value.size() > 0;
    out->domains = detail::decode_domains(doc, *f);
  }
  if (!domains_given) {
    out->domains.push_back(Domain{"*", m.loc(), m.child_path("domains")});
  }
  if (auto f = m.list("routes")) {
    yaml::for_each_item(*f, [&](const YAML::Node& item, const std::string& path, Location loc) {
      Route route;
      decode_route(doc, item, path, loc, meta.ns, &route);
      out->routes.push_back(std::move(route));
    });
  }
  if (out->routes.empty()) {
    doc.warning(m.loc(), m.child_path("routes"), "no routes: every request gets a 404");
  }
  if (auto o = m.map("options")) {
    // None is implemented yet: every key is an error (fail closed), e.g. extauth or cors.
    MapReader om(doc, o->value, o->path, o->loc);
    om.finish();
  }
  m.finish();
}

// ---- Upstream ----

void decode_upstream(DocReader& doc, MapReader& spec, const ObjectMeta& meta, UpstreamSpec* out) {
  spec.ignore_harmless("discoveryMetadata", "labels written by Gloo's discovery");
  if (auto f = spec.map("sslConfig")) {
    UpstreamTls tls;
    detail::decode_upstream_tls(doc, *f, meta.ns, &tls);
    out->tls = std::move(tls);
  }
  spec.boolean("useHttp2", &out->use_http2);
  if (auto h = spec.map("http2ProtocolOptions")) {
    // Gloo's Http2ProtocolOptions: the limits of HTTP/2 connections to this upstream.
    MapReader h2(doc, h->value, h->path, h->loc);
    if (h2.ok()) {
      uint64_t v = 0;
      if (h2.uint("maxConcurrentStreams", 1, 2147483647, &v)) {
        out->http2_max_concurrent_streams = static_cast<uint32_t>(v);
      }
      if (h2.uint("initialStreamWindowSize", 65535, 2147483647, &v)) {
        out->http2_initial_stream_window = static_cast<uint32_t>(v);
      }
      if (h2.uint("initialConnectionWindowSize", 65535, 2147483647, &v)) {
        out->http2_initial_connection_window = static_cast<uint32_t>(v);
      }
      h2.finish();  // overrideStreamErrorOnInvalidHttpMessage and others: rejected
    }
    if (!out->use_http2) {
      doc.error(h->loc, h->path, "applies to HTTP/2 upstreams only: set spec.useHttp2: true");
    }
  }
  if (auto ss = spec.map("subsetSpec")) {
    std::vector<std::vector<std::string>> selectors;
    decode_subset_spec(doc, *ss, &selectors);
    out->subset_selectors = std::move(selectors);
  }
  for (const char* other : {"aws", "awsEc2", "azure", "pipe", "dns"}) {
    if (auto f = spec.take(other)) {
      doc.error(f->loc, f->path,
                std::string(other) + " upstreams are not supported yet; use static hosts");
    }
  }
  if (auto cf = spec.map("consul")) {
    MapReader c(doc, cf->value, cf->path, cf->loc);
    ConsulUpstream consul;
    Location where;
    if (c.string("serviceName", &consul.service_name, true, &where) &&
        consul.service_name.empty()) {
      doc.error(where, c.child_path("serviceName"), "must not be empty");
    }
    auto strings = [&](const char* key, std::vector<std::string>* out) {
      auto f = c.list(key);
      if (!f) return;
      yaml::for_each_item(*f, [&](const YAML::Node& item, const std::string& path, Location loc) {
        std::string v;
        if (!yaml::read_string(doc, item, path, loc, &v)) return;
        if (v.empty()) {
          doc.error(loc, path, "must not be empty");
          return;
        }
        if (std::find(out->begin(), out->end(), v) == out->end()) out->push_back(std::move(v));
      });
    };
    strings("serviceTags", &consul.tags);
    strings("instanceTags", &consul.tags);
    strings("dataCenters", &consul.datacenters);
    strings("subsetTags", &consul.subset_tags);
    for (const char* key : {"instanceBlacklistTags", "connectEnabled", "serviceSpec",
                            "consistencyMode", "queryOptions"}) {
      if (auto f = c.take(key)) {
        doc.error(f->loc, f->path,
                  std::string("consul.") + key +
                      " is not supported (Consul discovery reads "
                      "serviceName, serviceTags, instanceTags, dataCenters and subsetTags" +
                      (std::string_view(key) == "consistencyMode"
                           ? "; the consistency mode is Settings spec.consulDiscovery."
                             "consistencyMode)"
                           : ")"));
      }
    }
    c.finish();
    if (spec.has("static")) {
      doc.error(cf->loc, cf->path, "an Upstream is either static or consul, not both");
    }
    out->consul = std::move(consul);
  }
  if (auto nf = spec.map("nomad")) {
    NomadUpstream nomad;
    detail::decode_nomad_upstream(doc, *nf, &nomad);
    if (spec.has("static")) {
      doc.error(nf->loc, nf->path, "an Upstream is either static or nomad, not both");
    }
    if (out->consul)
      doc.error(nf->loc, nf->path, "an Upstream is either consul or nomad, not both");
    out->nomad = std::move(nomad);
  }
  if (auto kf = spec.map("kube")) {
    KubeUpstream kube;
    detail::decode_kube_upstream(doc, *kf, meta.ns, &kube);
    if (spec.has("static")) {
      doc.error(kf->loc, kf->path, "an Upstream is either static or kube, not both");
    }
    if (out->consul || out->nomad) {
      doc.error(kf->loc, kf->path, "an Upstream is one of consul, nomad or kube, not several");
    }
    out->kube = std::move(kube);
  }
  if (auto st = spec.map("static", !out->consul && !out->nomad && !out->kube)) {
    MapReader s(doc, st->value, st->path, st->loc);
    if (auto hosts = s.list("hosts", true)) {
      yaml::for_each_item(
          *hosts, [&](const YAML::Node& item, const std::string& path, Location loc) {
            MapReader h(doc, item, path, loc);
            if (!h.ok()) return;
            StaticHost host;
            Location where;
            if (h.string("addr", &host.address, true, &where)) {
              std::string error = check_host_address(host.address, &host.address, &host.is_name);
              if (!error.empty()) doc.error(where, h.child_path("addr"), error);
            }
            uint64_t n = 0;
            if (h.uint("port", 1, 65535, &n, true)) host.port = static_cast<uint16_t>(n);
            if (h.uint("weight", 1, 1'000'000, &n)) host.weight = static_cast<uint32_t>(n);
            // metadata: {"envoy.lb": {key: value}} (Gloo's Host.metadata): the host's labels
            // for subset routing. Other filter namespaces are rejected by name.
            if (auto md = h.map("metadata")) {
              MapReader mr(doc, md->value, md->path, md->loc);
              std::map<std::string, std::string> labels;
              mr.string_map("envoy.lb", &labels);
              mr.finish();
              host.labels.assign(labels.begin(), labels.end());
              if (host.is_name && !host.labels.empty()) {
                doc.error(md->loc, md->path,
                          "labels on a host written as a DNS name are not supported: write its "
                          "address");
              }
            }
            h.finish();
            out->hosts.push_back(std::move(host));
          });
      if (hosts->value.size() == 0)
        doc.error(hosts->loc, hosts->path, "must have at least one host");
    }
    s.finish();
  }
  if (auto lb = spec.map("loadBalancerConfig")) detail::decode_load_balancer_config(doc, *lb, out);
  if (auto fo = spec.map("failover")) detail::decode_failover(doc, *fo, out);
  if (auto hcs = spec.list("healthChecks")) {
    size_t index = 0;
    yaml::for_each_item(*hcs, [&](const YAML::Node& item, const std::string& path, Location loc) {
      if (index++ > 0) {
        doc.error(loc, path, "only one health check per upstream is supported");
        return;
      }
      MapReader h(doc, item, path, loc);
      if (!h.ok()) return;
      UpstreamHealthCheck hc;
      Millis d{0};
      Location where;
      auto positive = [&](const char* key, Millis* out) {
        if (h.duration(key, &d, false, &where)) {
          if (d.count() <= 0) {
            doc.error(where, h.child_path(key), "must be greater than 0");
          } else {
            *out = d;
          }
        }
      };
      positive("timeout", &hc.timeout);
      positive("interval", &hc.interval);
      if (h.duration("intervalJitter", &d, false, &where)) hc.interval_jitter = d;
      uint64_t n = 0;
      if (h.uint("intervalJitterPercent", 0, 100, &n))
        hc.interval_jitter_percent = static_cast<uint32_t>(n);
      if (h.uint("unhealthyThreshold", 1, 1000, &n))
        hc.unhealthy_threshold = static_cast<uint32_t>(n);
      if (h.uint("healthyThreshold", 1, 1000, &n)) hc.healthy_threshold = static_cast<uint32_t>(n);
      int kinds = 0;
      if (auto f = h.take("httpHealthCheck")) {
        ++kinds;
        if (!f->is_null()) {
          MapReader m(doc, f->value, f->path, f->loc);
          Location pw;
          if (m.string("path", &hc.path, true, &pw) &&
              (hc.path.empty() || hc.path.front() != '/' ||
               hc.path.find_first_of(" \r\n") != std::string::npos)) {
            doc.error(pw, m.child_path("path"), "must be an absolute path such as /healthz");
          }
          Location hw;
          if (m.string("host", &hc.host, false, &hw) &&
              hc.host.find_first_of(" \r\n") != std::string::npos) {
            doc.error(hw, m.child_path("host"), "must not contain spaces or line breaks");
          }
          if (auto es = m.list("expectedStatuses")) {
            yaml::for_each_item(
                *es, [&](const YAML::Node& r, const std::string& rpath, Location rloc) {
                  MapReader range(doc, r, rpath, rloc);
                  if (!range.ok()) return;
                  uint64_t start = 0, end = 0;
                  const bool has_start = range.uint("start", 100, 599, &start, true);
                  const bool has_end = range.uint("end", 101, 600, &end, true);
                  range.finish();
                  if (!has_start || !has_end) return;
                  if (start >= end) {
                    doc.error(rloc, rpath, "start must be less than end (end is exclusive)");
                    return;
                  }
                  hc.expected_statuses.emplace_back(static_cast<uint16_t>(start),
                                                    static_cast<uint16_t>(end));
                });
          }
          m.finish();  // send, receive, serviceName, useHttp2, requestHeadersToAdd...: rejected
        }
      }
      if (auto f = h.take("tcpHealthCheck")) {
        ++kinds;
        hc.tcp = true;
        if (!f->is_null()) {
          MapReader m(doc, f->value, f->path, f->loc);
          m.finish();  // send and receive payloads are not supported: rejected
        }
      }
      if (auto f = h.take("grpcHealthCheck")) {
        ++kinds;
        hc.grpc = true;
        if (!f->is_null()) decode_grpc_health_check(doc, *f, &hc);
      }
      if (auto f = h.take("customHealthCheck")) {
        ++kinds;
        doc.error(f->loc, f->path, "custom health checks are not supported");
      }
      if (kinds == 0) {
        doc.error(loc, path, "needs one of httpHealthCheck, tcpHealthCheck, grpcHealthCheck");
      } else if (kinds > 1) {
        doc.error(loc, path,
                  "has more than one of httpHealthCheck, tcpHealthCheck, grpcHealthCheck");
      }
      h.finish();  // altPort, reuseConnection, noTrafficInterval, unhealthyInterval...: rejected
      out->health_check = std::move(hc);
    });
  }
  if (auto od = spec.map("outlierDetection")) {
    MapReader m(doc, od->value, od->path, od->loc);
    UpstreamOutlierDetection o;
    uint64_t n = 0;
    if (m.uint("consecutive5xx", 0, 1'000'000, &n)) o.consecutive_5xx = static_cast<uint32_t>(n);
    if (m.uint("consecutiveGatewayFailure", 0, 1'000'000, &n))
      o.consecutive_gateway_failure = static_cast<uint32_t>(n);
    if (m.uint("consecutiveLocalOriginFailure", 0, 1'000'000, &n))
      o.consecutive_local_origin_failure = static_cast<uint32_t>(n);
    m.boolean("splitExternalLocalOriginErrors", &o.split_external_local_origin_errors);
    if (m.uint("enforcingConsecutive5xx", 0, 100, &n))
      o.enforcing_consecutive_5xx = static_cast<uint32_t>(n);
    if (m.uint("enforcingConsecutiveGatewayFailure", 0, 100, &n))
      o.enforcing_consecutive_gateway_failure = static_cast<uint32_t>(n);
    if (m.uint("enforcingConsecutiveLocalOriginFailure", 0, 100, &n))
      o.enforcing_consecutive_local_origin_failure = static_cast<uint32_t>(n);
    if (m.uint("maxEjectionPercent", 0, 100, &n)) o.max_ejection_percent = static_cast<uint32_t>(n);
    Millis d{0};
    Location where;
    auto positive = [&](const char* key, Millis* out) {
      if (m.duration(key, &d, false, &where)) {
        if (d.count() <= 0) {
          doc.error(where, m.child_path(key), "must be greater than 0");
        } else {
          *out = d;
        }
      }
    };
    positive("interval", &o.interval);
    positive("baseEjectionTime", &o.base_ejection_time);
    const bool max_set = m.has("maxEjectionTime");
    positive("maxEjectionTime", &o.max_ejection_time);
    if (o.max_ejection_time < o.base_ejection_time) {
      // Unset: 300s or baseEjectionTime, whichever is larger (as Envoy).
      if (max_set) {
        doc.error(m.loc(), m.child_path("maxEjectionTime"),
                  "must not be less than baseEjectionTime");
      } else {
        o.max_ejection_time = o.base_ejection_time;
      }
    }
    // successRate*, failurePercentage*, maxEjectionTimeJitter...: not implemented, rejected.
    m.finish();
    out->outlier_detection = o;
  }
  if (auto cc = spec.map("connectionConfig")) {
    MapReader m(doc, cc->value, cc->path, cc->loc);
    Millis d{0};
    Location where;
    if (m.duration("connectTimeout", &d, false, &where)) {
      if (d.count() == 0) {
        doc.error(where, m.child_path("connectTimeout"), "must be greater than 0");
      } else {
        out->connect_timeout = d;
      }
    }
    uint64_t n = 0;
    if (m.uint("maxRequestsPerConnection", 0, UINT32_MAX, &n)) {
      out->max_requests_per_connection = static_cast<uint32_t>(n);
    }
    if (m.duration("idleTimeout", &d, false, &where)) {
      if (d.count() == 0) {
        doc.error(where, m.child_path("idleTimeout"), "must be greater than 0");
      } else {
        out->idle_timeout = d;
      }
    }
    if (m.uint("maxConnections", 1, 10'000'000, &n)) {
      out->max_connections = static_cast<uint32_t>(n);
    }
    if (m.uint("maxIdleConnections", 0, 1'000'000, &n)) {
      out->max_idle_connections = static_cast<uint32_t>(n);
    }
    m.finish();
  }
  if (auto cb = spec.map("circuitBreakers")) detail::decode_circuit_breakers(doc, *cb, out);
  if (auto rb = spec.map("retryBudget")) detail::decode_retry_budget(doc, *rb, out);
}

// ---- RouteTable, UpstreamGroup, Settings ----

void decode_route_table(DocReader& doc, MapReader& spec, const ObjectMeta& meta,
                        RouteTableSpec* out) {
  if (auto f = spec.list("routes")) {
    yaml::for_each_item(*f, [&](const YAML::Node& item, const std::string& path, Location loc) {
      Route route;
      decode_route(doc, item, path, loc, meta.ns, &route);
      out->routes.push_back(std::move(route));
    });
  }
  if (out->routes.empty()) doc.warning(spec.loc(), "spec.routes", "no routes");
  if (auto w = spec.take("weight"); w && !w->is_null()) {
    const std::string s = w->value.IsScalar() ? w->value.Scalar() : "";
    long long v = 0;
    bool ok =
        w->value.IsScalar() && yaml::is_plain(w->value) && yaml::looks_like_int(s) && s.size() < 12;
    if (ok) {
      v = std::stoll(s);
      ok = v >= INT32_MIN && v <= INT32_MAX;
    }
    if (!ok) {
      doc.error(w->loc, w->path, "expected an integer (-2147483648-2147483647)");
    } else {
      out->weight = static_cast<int32_t>(v);
    }
  }
}

void decode_upstream_group(DocReader& doc, MapReader& spec, const ObjectMeta& meta,
                           UpstreamGroupSpec* out) {
  auto list = spec.list("destinations", true);
  if (!list) return;
  decode_weighted_destinations(doc, *list, meta.ns, &out->destinations);
}

namespace {

// "ip", "ip:port", "[ipv6]" or "[ipv6]:port" (c-ares' server list syntax).
bool valid_dns_server(std::string_view text) {
  if (ip_family(text) != 0) return true;
  std::string_view host = text;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return false;
    host = text.substr(1, close - 1);
    if (ip_family(host) != 6) return false;
    if (close + 1 == text.size()) return true;
    if (text[close + 1] != ':') return false;
    port = text.substr(close + 2);
  } else {
    size_t colon = text.find(':');
    if (colon == std::string_view::npos) return false;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (ip_family(host) != 4) return false;
  }
  if (port.empty() || port.size() > 5) return false;
  uint32_t p = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
    p = p * 10 + static_cast<uint32_t>(c - '0');
  }
  return p >= 1 && p <= 65535;
}

}  // namespace

void decode_settings(DocReader& doc, MapReader& spec, SettingsSpec* out) {
  if (auto p = spec.map("invalidConfigPolicy")) {
    MapReader m(doc, p->value, p->path, p->loc);
    m.boolean("replaceInvalidRoutes", &out->replace_invalid_routes);
    uint64_t code = 0;
    if (m.uint("invalidRouteResponseCode", 200, 599, &code)) {
      out->invalid_route_status = static_cast<uint16_t>(code);
    }
    std::string body;
    Location where;
    if (m.string("invalidRouteResponseBody", &body, false, &where)) {
      if (body.size() > kMaxBodyBytes) {
        doc.error(where, m.child_path("invalidRouteResponseBody"), "is larger than 64 KiB");
      } else {
        out->invalid_route_body = body;
      }
    }
    m.finish();
  }
  if (auto f = spec.map("overload")) detail::decode_overload(doc, *f, out);
  if (auto f = spec.map("dns")) {
    MapReader m(doc, f->value, f->path, f->loc);
    if (auto servers = m.list("servers")) {
      yaml::for_each_item(*servers, [&](const YAML::Node& item, const std::string& path,
                                        Location loc) {
        std::string text;
        if (!yaml::read_string(doc, item, path, loc, &text)) return;
        if (!valid_dns_server(text)) {
          doc.error(loc, path,
                    "\"" + text + "\" is not a DNS server address (ip, ip:port or [ipv6]:port)");
          return;
        }
        out->dns_servers.push_back(text);
      });
    }
    Location where;
    for (auto [key, field] : {std::pair{"minRefresh", &out->dns_min_refresh},
                              std::pair{"maxRefresh", &out->dns_max_refresh},
                              std::pair{"timeout", &out->dns_timeout}}) {
      if (m.duration(key, field, false, &where) && field->count() <= 0)
        doc.error(where, m.child_path(key), "must be greater than 0");
    }
    if (out->dns_max_refresh < out->dns_min_refresh)
      doc.error(f->loc, f->path, "maxRefresh is shorter than minRefresh");
    m.finish();
  }
  if (auto f = spec.map("vaultSecretSource")) detail::decode_vault_secret_source(doc, *f, out);
  if (auto f = spec.map("consul")) detail::decode_consul(doc, *f, &out->consul);
  if (auto f = spec.map("nomad")) detail::decode_nomad_settings(doc, *f, &out->nomad);
  if (auto f = spec.map("consulKvSource")) {
    detail::decode_consul_kv_source(doc, *f, &out->consul_kv_source.emplace());
  }
  if (auto f = spec.map("consulDiscovery")) {
    detail::decode_consul_discovery(doc, *f, &out->consul_discovery_consistency);
  }
  // Sources: only what exists today (configuration and secrets from a directory).
  for (const char* directory :
       {"directoryConfigSource", "directorySecretSource", "directoryArtifactSource"}) {
    if (auto f = spec.map(directory)) {
      MapReader m(doc, f->value, f->path, f->loc);
      std::string dir;
      m.string("directory", &dir);
      m.finish();
    }
  }
  if (auto f = spec.map("etcdConfigSource")) {
    detail::decode_etcd_config_source(doc, *f, &out->etcd_config_source.emplace());
  }
  if (auto f = spec.map("kubernetesConfigSource")) {
    detail::decode_kubernetes_config_source(doc, *f, &out->kubernetes_config_source.emplace());
  }
  if (auto f = spec.map("kubernetesSecretSource")) {
    detail::decode_kubernetes_secret_source(doc, *f, &out->kubernetes_secret_source.emplace());
  }
  if (auto f = spec.map("kubernetes"))
    detail::decode_kubernetes_settings(doc, *f, &out->kubernetes);
  for (const char* other : {"kubernetesArtifactSource", "consulKvArtifactSource", "discovery",
                            "watchNamespaces", "discoveryNamespace"}) {
    if (auto f = spec.take(other)) {
      doc.error(f->loc, f->path,
                std::string(other) +
                    " is not supported yet (configuration and secrets are read from the "
                    "directory given to portico run)");
    }
  }
}

// ---- documents ----

bool kind_from_string(const std::string& s, Kind* out) {
  if (s == "Gateway") {
    *out = Kind::kGateway;
  } else if (s == "VirtualService") {
    *out = Kind::kVirtualService;
  } else if (s == "Upstream") {
    *out = Kind::kUpstream;
  } else if (s == "Secret") {
    *out = Kind::kSecret;
  } else if (s == "RouteTable") {
    *out = Kind::kRouteTable;
  } else if (s == "UpstreamGroup") {
    *out = Kind::kUpstreamGroup;
  } else if (s == "Settings") {
    *out = Kind::kSettings;
  } else {
    return false;
  }
  return true;
}

bool is_known_unsupported_kind(const std::string& s) {
  for (const char* k : {"RouteTable", "UpstreamGroup", "AuthConfig", "RateLimitConfig", "Settings",
                        "Proxy", "MatchableHttpGateway", "VirtualHostOption", "RouteOption"}) {
    if (s == k) return true;
  }
  return false;
}

void decode_document(const std::string& file, const YAML::Node& root, DecodedFile* out) {
  if (!root.IsDefined() || root.IsNull()) return;  // empty document (e.g. a trailing "---")
  Location root_loc = yaml::location_of(root);
  auto file_error = [&](Location loc, std::string path, std::string message) {
    Diagnostic d;
    d.file = file;
    d.line = loc.line;
    d.column = loc.column;
    d.path = std::move(path);
    d.message = std::move(message);
    out->errors.push_back(std::move(d));
  };
  if (!root.IsMap()) {
    file_error(
        root_loc, "",
        "a document must be a map with kind, metadata and spec, got " + yaml::describe_type(root));
    return;
  }
  Resource r;
  r.file = file;
  r.loc = root_loc;
  DocReader doc(file, &r.diagnostics);
  MapReader top(doc, root, "", root_loc);
  // Identity first: without kind and metadata.name the document cannot be reported as a resource.
  auto move_errors = [&] {
    for (auto& d : r.diagnostics) {
      if (d.is_error()) out->errors.push_back(std::move(d));
    }
  };
  auto kind_field = top.take("kind");
  if (!kind_field || kind_field->is_null()) {
    move_errors();
    file_error(
        root_loc, "kind",
        "is required (Gateway, VirtualService, RouteTable, Upstream, UpstreamGroup, Secret or "
        "Settings)");
    return;
  }
  if (!kind_field->value.IsScalar()) {
    move_errors();
    file_error(kind_field->loc, "kind",
               "expected a string, got " + yaml::describe_type(kind_field->value));
    return;
  }
  const std::string& kind = kind_field->value.Scalar();
  if (!kind_from_string(kind, &r.kind)) {
    move_errors();
    file_error(
        kind_field->loc, "kind",
        is_known_unsupported_kind(kind)
            ? "kind \"" + kind + "\" is not supported yet"
            : "unknown kind \"" + kind +
                  "\"; expected Gateway, VirtualService, RouteTable, Upstream, UpstreamGroup, "
                  "Secret or Settings");
    return;
  }
  auto meta_field = top.take("metadata");
  if (!meta_field || meta_field->is_null()) {
    move_errors();
    file_error(root_loc, "metadata", "is required (with at least a name)");
    return;
  }
  MapReader meta(doc, meta_field->value, "metadata", meta_field->loc);
  Location name_loc;
  if (!meta.ok() || !meta.string("name", &r.meta.name, false, &name_loc)) {
    move_errors();
    file_error(meta.ok() ? meta.loc() : meta_field->loc, "metadata.name", "is required");
    return;
  }
  check_name_field(doc, r.meta.name, "metadata.name", name_loc);
  std::string ns;
  Location ns_loc;
  if (meta.string("namespace", &ns, false, &ns_loc) &&
      check_name_field(doc, ns, "metadata.namespace", ns_loc)) {
    r.meta.ns = ns;
  }
  meta.string_map("labels", &r.meta.labels);
  std::map<std::string, std::string> ignored;
  meta.string_map("annotations", &ignored);
  uint64_t generation = 0;
  if (meta.uint("generation", 0, INT64_MAX, &generation)) {
    r.meta.generation = static_cast<int64_t>(generation);
  }
  for (const char* bookkeeping :
       {"resourceVersion", "uid", "creationTimestamp", "managedFields", "selfLink",
        "ownerReferences", "finalizers", "clusterName", "generateName", "deletionTimestamp",
        "deletionGracePeriodSeconds"}) {
    meta.ignore_harmless(bookkeeping, "bookkeeping written by Kubernetes or Gloo");
  }
  meta.finish();

  Location where;
  if (top.string("apiVersion", &r.api_version, false, &where) && r.api_version != kApiVersion) {
    doc.warning(where, "apiVersion",
                "\"" + r.api_version + "\" is not " + kApiVersion + "; read as " + kApiVersion);
  }
  top.ignore("status");  // written by controllers; input files may carry it
  auto spec_field = top.map("spec", true);
  switch (r.kind) {
    case Kind::kGateway:
      r.spec = GatewaySpec{};
      break;
    case Kind::kVirtualService:
      r.spec = VirtualServiceSpec{};
      break;
    case Kind::kUpstream:
      r.spec = UpstreamSpec{};
      break;
    case Kind::kSecret:
      r.spec = SecretSpec{};
      break;
    case Kind::kRouteTable:
      r.spec = RouteTableSpec{};
      break;
    case Kind::kUpstreamGroup:
      r.spec = UpstreamGroupSpec{};
      break;
    case Kind::kSettings:
      r.spec = SettingsSpec{};
      break;
  }
  if (spec_field) {
    nlohmann::json spec_json = to_json(spec_field->value, 1);
    if (r.kind == Kind::kSecret) detail::redact_secret_json(spec_json);
    if (r.kind == Kind::kSettings) detail::redact_settings_json(spec_json);
    r.spec_json = spec_json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    MapReader spec(doc, spec_field->value, "spec", spec_field->loc);
    switch (r.kind) {
      case Kind::kGateway:
        decode_gateway(doc, spec, r.meta, &std::get<GatewaySpec>(r.spec));
        break;
      case Kind::kVirtualService:
        decode_virtual_service(doc, spec, r.meta, &std::get<VirtualServiceSpec>(r.spec));
        break;
      case Kind::kUpstream:
        decode_upstream(doc, spec, r.meta, &std::get<UpstreamSpec>(r.spec));
        break;
      case Kind::kSecret:
        detail::decode_secret(doc, spec, &std::get<SecretSpec>(r.spec));
        break;
      case Kind::kRouteTable:
        decode_route_table(doc, spec, r.meta, &std::get<RouteTableSpec>(r.spec));
        break;
      case Kind::kUpstreamGroup:
        decode_upstream_group(doc, spec, r.meta, &std::get<UpstreamGroupSpec>(r.spec));
        break;
      case Kind::kSettings:
        decode_settings(doc, spec, &std::get<SettingsSpec>(r.spec));
        break;
    }
    spec.finish();
  } else {
    r.spec_json = "null";
  }
  top.finish();
  validate_resource(r);
  sort_by_position(r.diagnostics);
  out->resources.push_back(std::move(r));
}

// A first pass over the YAML events, building nothing. yaml-cpp 0.7 loops forever on some inputs (a
// flow-entry ',' at the top level of a document makes it emit empty documents without end,
// allocating until memory runs out), so the events are counted and the file refused past sane
// limits before YAML::LoadAll is trusted with it.
struct EventLimit {
  YAML::Mark mark;
  std::string message;
};

class EventCounter : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents_ > kMaxDocuments) {
      throw EventLimit{mark, "more than " + std::to_string(kMaxDocuments) + " documents"};
    }
    count(mark);
  }
  void OnDocumentEnd() override { count(last_); }
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { count(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { count(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    count(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    count(mark);
  }
  void OnSequenceEnd() override { count(last_); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    count(mark);
  }
  void OnMapEnd() override { count(last_); }

 private:
  void count(const YAML::Mark& mark) {
    last_ = mark;
    if (++events_ > kMaxEvents) {
      throw EventLimit{mark, "more than " + std::to_string(kMaxEvents) + " YAML nodes"};
    }
  }
  size_t documents_ = 0;
  size_t events_ = 0;
  YAML::Mark last_;
};

void count_events(const std::string& content) {
  std::istringstream in(content);
  YAML::Parser parser(in);
  EventCounter counter;
  while (parser.HandleNextDocument(counter)) {
  }
}

Location exception_location(const YAML::Exception& e) {
  if (e.mark.is_null() || e.mark.line < 0 || e.mark.column < 0) return {};
  return {e.mark.line + 1, e.mark.column + 1};
}

}  // namespace

DecodedFile decode_file(const std::string& file, std::string_view content) {
  DecodedFile out;
  auto file_error = [&](Location loc, std::string message) {
    Diagnostic d;
    d.file = file;
    d.line = loc.line;
    d.column = loc.column;
    d.message = std::move(message);
    out.errors.push_back(std::move(d));
  };
  if (content.size() > kMaxFileBytes) {
    file_error({}, "file is larger than 4 MiB (" + std::to_string(content.size()) + " bytes)");
    return out;
  }
  std::vector<YAML::Node> docs;
  try {
    std::string text(content);
    count_events(text);
    docs = YAML::LoadAll(text);
  } catch (const EventLimit& e) {
    Location loc;
    if (!e.mark.is_null() && e.mark.line >= 0 && e.mark.column >= 0) {
      loc = {e.mark.line + 1, e.mark.column + 1};
    }
    file_error(loc, "cannot read this file: " + e.message +
                        " (a stray ',' outside of [...] or {...} also causes this)");
    return out;
  } catch (const YAML::Exception& e) {
    file_error(exception_location(e), "invalid YAML: " + e.msg);
    return out;
  } catch (const std::exception& e) {
    file_error({}, std::string("invalid YAML: ") + e.what());
    return out;
  } catch (...) {
    file_error({}, "invalid YAML");
    return out;
  }
  try {
    for (const auto& doc : docs) {
      int reached = 0;
      if (!yaml::within_bounds(doc, kMaxDepth, kMaxNodes, &reached)) {
        file_error(yaml::location_of(doc),
                   reached > kMaxDepth
                       ? "document is nested deeper than " + std::to_string(kMaxDepth) + " levels"
                       : "document has more than " + std::to_string(kMaxNodes) +
                             " nodes once its aliases are expanded");
        return out;
      }
    }
  } catch (const std::exception& e) {
    file_error({}, std::string("invalid YAML: ") + e.what());
    return out;
  }
  out.parsed = true;
  for (const auto& doc : docs) {
    try {
      decode_document(file, doc, &out);
    } catch (const YAML::Exception& e) {
      file_error(exception_location(e), "cannot decode document: " + e.msg);
    } catch (const std::exception& e) {
      file_error(yaml::location_of(doc), std::string("cannot decode document: ") + e.what());
    }
  }
  return out;
}

std::string document_to_json(std::string_view text, std::string* error) {
  try {
    const YAML::Node node = YAML::Load(std::string(text));
    if (!node.IsMap()) {
      if (error) *error = "the document is not a map";
      return {};
    }
    return to_json(node, 0).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (const std::exception& e) {
    if (error) *error = e.what();
    return {};
  }
}

}  // namespace portico::api
