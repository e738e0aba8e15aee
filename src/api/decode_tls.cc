// Decoding of TLS settings (sslConfig on VirtualServices, Gateways and Upstreams) and of Secrets.
// Key material is only carried here; the translator reads files and checks the PEM.

#include <algorithm>
#include <cctype>
#include <set>

#include "api/decode_internal.h"
#include "api/fields.h"

namespace portico::api::detail {

using yaml::DocReader;
using yaml::Field;
using yaml::MapReader;

namespace {

constexpr size_t kMaxInlineMaterialBytes = 1024 * 1024;

// Reads key as a string into value and records where it is in out. False (reported unless absent)
// when the field is absent, not a string or empty.
bool read_material_string(MapReader& m, std::string_view key, SecretMaterial* out,
                          std::string* value) {
  Location where;
  if (!m.string(key, value, false, &where)) return false;
  out->loc = where;
  out->path = m.child_path(key);
  if (value->empty()) {
    m.doc().error(where, out->path, "must not be empty");
    return false;
  }
  return true;
}

// A file path field (sslFiles.*, *File).
void read_file_field(MapReader& m, std::string_view key, SecretMaterial* out) {
  std::string value;
  if (!read_material_string(m, key, out, &value)) return;
  if (value.find('\0') != std::string::npos) {
    m.doc().error(out->loc, out->path, "must not contain NUL");
    return;
  }
  out->file = value;
}

// An inline PEM (or base64) field. The value is never echoed in messages.
void read_inline_field(MapReader& m, std::string_view key, SecretMaterial* out) {
  std::string value;
  if (!read_material_string(m, key, out, &value)) return;
  if (value.size() > kMaxInlineMaterialBytes) {
    m.doc().error(out->loc, out->path, "is larger than 1 MiB");
    return;
  }
  out->inline_value = std::move(value);
}

// `key` inline or `key` + "File"; both given is an error.
void read_material(MapReader& m, const std::string& key, SecretMaterial* out) {
  std::string file_key = key + "File";
  bool inline_given = m.has(key), file_given = m.has(file_key);
  read_inline_field(m, key, out);
  SecretMaterial from_file;
  read_file_field(m, file_key, &from_file);
  if (inline_given && file_given) {
    m.doc().error(from_file.loc, from_file.path,
                  "set either " + key + " or " + file_key + ", not both");
    return;
  }
  if (!from_file.file.empty()) *out = std::move(from_file);
}

std::optional<TlsVersion> read_version(DocReader& doc, MapReader& m, std::string_view key,
                                       bool* bad) {
  std::string value;
  Location where;
  if (!m.string(key, &value, false, &where)) return std::nullopt;
  if (value == "TLSv1_2") return TlsVersion::kTls12;
  if (value == "TLSv1_3") return TlsVersion::kTls13;
  if (value == "TLS_AUTO") return std::nullopt;
  *bad = true;
  if (value == "TLSv1_0" || value == "TLSv1_1") {
    doc.error(where, m.child_path(key),
              value + " is not supported: TLS 1.0 and 1.1 are insecure; use TLSv1_2 or TLSv1_3");
  } else {
    doc.error(where, m.child_path(key),
              "\"" + value + "\" is not a TLS version; use TLSv1_2, TLSv1_3 or TLS_AUTO");
  }
  return std::nullopt;
}

void read_parameters(DocReader& doc, const Field& f, bool upstream,
                     std::optional<TlsVersion>* min_version,
                     std::optional<TlsVersion>* max_version) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  bool bad = false;
  Location max_loc = m.loc();
  if (auto mx = m.take("maximumProtocolVersion"); mx) max_loc = mx->loc;
  *min_version = read_version(doc, m, "minimumProtocolVersion", &bad);
  auto max = read_version(doc, m, "maximumProtocolVersion", &bad);
  if (upstream) {
    if (max && *max == TlsVersion::kTls12) {
      doc.error(max_loc, m.child_path("maximumProtocolVersion"),
                "capping an upstream connection at TLSv1_2 is not supported yet");
    }
  } else {
    *max_version = max;
  }
  if (!bad && *min_version && max && *min_version == TlsVersion::kTls13 &&
      *max == TlsVersion::kTls12) {
    doc.error(m.loc(), f.path, "minimumProtocolVersion is above maximumProtocolVersion");
  }
  for (const char* key : {"cipherSuites", "ecdhCurves"}) {
    if (auto c = m.take(key); c && !c->is_null()) {
      doc.error(c->loc, c->path,
                std::string(key) +
                    " is not supported yet: Portico uses its own modern set (TLS 1.2: ECDHE with "
                    "AES-GCM or CHACHA20-POLY1305; TLS 1.3: OpenSSL's defaults)");
    }
  }
  m.finish();
}

// "h2" and "http/1.1" both ways (upstream: h2 must agree with spec.useHttp2, checked when the
// Upstream is translated).
void read_alpn(DocReader& doc, MapReader& m, std::vector<std::string>* out, bool downstream) {
  (void)downstream;
  auto f = m.list("alpnProtocols");
  if (!f) return;
  yaml::for_each_item(*f, [&](const YAML::Node& item, const std::string& path, Location loc) {
    std::string p;
    if (!yaml::read_string(doc, item, path, loc, &p)) return;
    if (p == "http/1.1" || p == "h2") {
      if (std::find(out->begin(), out->end(), p) == out->end()) out->push_back(p);
    } else {
      doc.error(loc, path, "\"" + p + "\" is not a supported ALPN protocol (h2, http/1.1)");
    }
  });
}

void read_sans(DocReader& doc, MapReader& m, std::vector<std::string>* out, Location* where) {
  auto f = m.list("verifySubjectAltName");
  if (!f) return;
  *where = f->loc;
  yaml::for_each_item(*f, [&](const YAML::Node& item, const std::string& path, Location loc) {
    std::string san;
    if (!yaml::read_string(doc, item, path, loc, &san)) return;
    if (san.empty() || !is_safe_header_value(san)) {
      doc.error(loc, path, "must be a non-empty DNS name or URI");
      return;
    }
    out->push_back(san);
  });
}

void read_ssl_files(DocReader& doc, const Field& f, SslFiles* out) {
  out->loc = f.loc;
  out->path = f.path;
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  read_file_field(m, "tlsCert", &out->tls_cert);
  read_file_field(m, "tlsKey", &out->tls_key);
  read_file_field(m, "rootCa", &out->root_ca);
  read_file_field(m, "ocspStaple", &out->ocsp_staple);
  if (out->tls_cert.given() != out->tls_key.given()) {
    doc.error(m.loc(), f.path, "tlsCert and tlsKey go together: set both or neither");
  }
  if (out->ocsp_staple.given() && !out->tls_cert.given()) {
    doc.error(out->ocsp_staple.loc, out->ocsp_staple.path, "needs tlsCert");
  }
  m.finish();
}

// secretRef / sslFiles, shared by both sides.
void read_source(DocReader& doc, MapReader& m, const std::string& ns,
                 std::optional<ResourceRef>* secret_ref, std::optional<SslFiles>* ssl_files) {
  if (auto r = m.map("secretRef")) {
    *secret_ref = decode_ref(doc, r->value, r->path, r->loc, ns);
  }
  if (auto s = m.map("sslFiles")) {
    SslFiles files;
    read_ssl_files(doc, *s, &files);
    *ssl_files = std::move(files);
  }
  if (*secret_ref && *ssl_files) {
    doc.error(m.loc(), m.path(), "has both secretRef and sslFiles; use one");
  }
}

bool valid_sni(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.')) return false;
  }
  return true;
}

}  // namespace

void decode_downstream_tls(DocReader& doc, const Field& f, const std::string& ns, bool on_gateway,
                           DownstreamTls* out) {
  out->loc = f.loc;
  out->path = f.path;
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  out->loc = m.loc();
  read_source(doc, m, ns, &out->secret_ref, &out->ssl_files);
  if (!out->secret_ref && !out->ssl_files) {
    doc.error(m.loc(), f.path, "needs a certificate: secretRef or sslFiles");
  } else if (out->ssl_files && !out->ssl_files->tls_cert.given() &&
             !out->ssl_files->tls_key.given()) {
    doc.error(out->ssl_files->loc, out->ssl_files->path, "needs tlsCert and tlsKey");
  }
  if (auto s = m.list("sniDomains")) {
    out->sni_loc = s->loc;
    if (on_gateway) {
      doc.error(s->loc, s->path,
                "has no meaning on a Gateway: its sslConfig is the certificate for clients whose "
                "SNI matches no virtual service; set sniDomains on the virtual service");
    } else {
      std::vector<std::string> domains;
      for (auto& d : decode_domains(doc, *s))
        domains.push_back(std::move(d.value));
      out->sni_domains = std::move(domains);
    }
  }
  read_sans(doc, m, &out->verify_subject_alt_names, &out->verify_loc);
  if (auto p = m.map("parameters")) {
    read_parameters(doc, *p, false, &out->min_version, &out->max_version);
  }
  read_alpn(doc, m, &out->alpn, true);
  m.boolean("oneWayTls", &out->one_way_tls);
  Location where;
  if (m.string("clientIdentityHeader", &out->client_identity_header, false, &where)) {
    out->client_identity_loc = where;
    std::string lower = to_lower(out->client_identity_header);
    if (!is_http_token(out->client_identity_header)) {
      doc.error(where, m.child_path("clientIdentityHeader"),
                "\"" + out->client_identity_header + "\" is not a valid header name");
    } else if (is_reserved_header(lower)) {
      doc.error(where, m.child_path("clientIdentityHeader"),
                "\"" + out->client_identity_header + "\" is managed by the proxy");
    }
  }
  std::string policy;
  if (m.string("ocspStaplePolicy", &policy, false, &where)) {
    if (policy != "LenientStapling") {
      doc.error(where, m.child_path("ocspStaplePolicy"),
                policy == "StrictStapling" || policy == "MustStaple"
                    ? policy +
                          " is not supported yet; only LenientStapling (a staple is sent "
                          "when the certificate has one)"
                    : "\"" + policy + "\" is not an OCSP staple policy (LenientStapling)");
    }
  }
  m.finish();
}

void decode_upstream_tls(DocReader& doc, const Field& f, const std::string& ns, UpstreamTls* out) {
  out->loc = f.loc;
  out->path = f.path;
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  out->loc = m.loc();
  read_source(doc, m, ns, &out->secret_ref, &out->ssl_files);
  Location where;
  if (m.string("sni", &out->sni, false, &where) && !valid_sni(out->sni)) {
    doc.error(where, m.child_path("sni"), "\"" + out->sni + "\" is not a valid server name");
    out->sni.clear();
  }
  Location sans_loc;
  read_sans(doc, m, &out->verify_subject_alt_names, &sans_loc);
  Location insecure_loc;
  m.boolean("insecureSkipVerify", &out->insecure_skip_verify, &insecure_loc);
  if (auto p = m.map("parameters")) {
    std::optional<TlsVersion> unused;
    read_parameters(doc, *p, true, &out->min_version, &unused);
  }
  read_alpn(doc, m, &out->alpn, false);
  if (out->insecure_skip_verify) {
    if (!out->verify_subject_alt_names.empty()) {
      doc.error(insecure_loc, m.child_path("insecureSkipVerify"),
                "contradicts verifySubjectAltName: names cannot be checked without verification");
    }
    if (out->ssl_files && out->ssl_files->root_ca.given()) {
      doc.error(insecure_loc, m.child_path("insecureSkipVerify"),
                "contradicts sslFiles.rootCa: nothing would be verified against it");
    }
  }
  m.finish();
}

void decode_secret(DocReader& doc, MapReader& spec, SecretSpec* out) {
  bool has_tls = spec.has("tls"), has_generic = spec.has("generic");
  if (has_tls && has_generic) {
    doc.error(spec.loc(), "spec", "has both tls and generic; a Secret holds one kind of secret");
  }
  if (auto t = spec.map("tls")) {
    out->tls_loc = t->loc;
    TlsSecretData data;
    MapReader m(doc, t->value, t->path, t->loc);
    read_material(m, "certChain", &data.cert_chain);
    read_material(m, "privateKey", &data.private_key);
    read_material(m, "rootCa", &data.root_ca);
    read_material(m, "ocspStaple", &data.ocsp_staple);
    if (data.cert_chain.given() != data.private_key.given()) {
      doc.error(m.loc(), t->path,
                "certChain and privateKey go together (inline or as files): set both or neither");
    }
    if (data.ocsp_staple.given() && !data.cert_chain.given()) {
      doc.error(data.ocsp_staple.loc, data.ocsp_staple.path, "needs certChain");
    }
    if (!data.cert_chain.given() && !data.private_key.given() && !data.root_ca.given()) {
      doc.error(m.loc(), t->path, "needs certChain and privateKey, or rootCa");
    }
    m.finish();
    out->tls = std::move(data);
  }
  // Keys are free-form; values are secrets (a wrong type is reported without the value).
  if (has_generic) spec.string_map("generic", &out->generic);
  bool other_given = false;
  for (const char* other : {"aws", "azure", "header", "oauth", "apiKey", "credentials", "extension",
                            "basicAuth", "encryption", "ldap", "oauth2"}) {
    if (auto f = spec.take(other)) {
      other_given = true;
      doc.error(f->loc, f->path,
                std::string(other) + " secrets are not supported yet; use tls or generic");
    }
  }
  if (!has_tls && !has_generic && !other_given && spec.ok()) {
    doc.error(spec.loc(), "spec", "needs tls or generic");
  }
  spec.finish();
}

void redact_secret_json(nlohmann::json& spec) {
  static const std::set<std::string> kShown = {"certChain",     "rootCa",     "ocspStaple",
                                               "certChainFile", "rootCaFile", "ocspStapleFile",
                                               "privateKeyFile"};
  if (!spec.is_object()) return;
  for (auto& [key, value] : spec.items()) {
    if (key == "tls" && value.is_object()) {
      for (auto& [k, v] : value.items()) {
        bool shown =
            kShown.count(k) != 0 &&
            !(v.is_string() && v.get<std::string>().find("PRIVATE KEY") != std::string::npos);
        if (!v.is_null() && !shown) v = "<redacted>";
      }
    } else if (key == "generic" && value.is_object()) {
      for (auto& [k, v] : value.items())
        v = "<redacted>";
    } else if (!value.is_null()) {
      value = "<redacted>";
    }
  }
}

}  // namespace portico::api::detail
