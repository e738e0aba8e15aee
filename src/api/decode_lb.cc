// Decoding of load balancing fields: an Upstream's loadBalancerConfig and failover, and a route's
// options.lbHash. Every sub-field is either decoded or rejected with its path (fail closed).
#include <cmath>
#include <cstdlib>

#include "api/decode_internal.h"
#include "api/fields.h"

namespace portico::api::detail {

using yaml::DocReader;
using yaml::Field;
using yaml::MapReader;

namespace {

// A number from 0 to 100 (Gloo's DoubleValue percent), whole.
bool read_percent(DocReader& doc, const Field& f, uint32_t* out) {
  const std::string text = f.value.IsScalar() ? f.value.Scalar() : std::string();
  char* end = nullptr;
  const double v = text.empty() ? NAN : std::strtod(text.c_str(), &end);
  if (text.empty() || end == nullptr || *end != '\0' || !(v >= 0 && v <= 100) ||
      v != std::floor(v)) {
    doc.error(f.loc, f.path, "must be a whole percentage from 0 to 100");
    return false;
  }
  *out = static_cast<uint32_t>(v);
  return true;
}

// {address, port, loadBalancingWeight} of a failover locality.
void decode_lb_endpoint(DocReader& doc, MapReader& h, StaticHost* host) {
  Location where;
  if (h.string("address", &host->address, true, &where)) {
    std::string error = check_host_address(host->address, &host->address, &host->is_name);
    if (!error.empty()) doc.error(where, h.child_path("address"), error);
  }
  uint64_t n = 0;
  if (h.uint("port", 1, 65535, &n, true)) host->port = static_cast<uint16_t>(n);
  if (h.uint("loadBalancingWeight", 1, 1'000'000, &n)) host->weight = static_cast<uint32_t>(n);
  h.finish();  // healthCheckConfig, upstreamSslConfig, metadata: not implemented, errors
}

}  // namespace

void decode_load_balancer_config(DocReader& doc, const Field& f, UpstreamSpec* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  if (auto t = m.take("healthyPanicThreshold"))
    read_percent(doc, *t, &out->healthy_panic_threshold);
  struct Policy {
    const char* key;
    LbPolicy lb;
  };
  static constexpr Policy kPolicies[] = {{"roundRobin", LbPolicy::kRoundRobin},
                                         {"leastRequest", LbPolicy::kLeastRequest},
                                         {"random", LbPolicy::kRandom},
                                         {"ringHash", LbPolicy::kRingHash},
                                         {"maglev", LbPolicy::kMaglev}};
  std::string chosen;
  for (const auto& p : kPolicies) {
    auto pf = m.take(p.key);
    if (!pf) continue;
    if (!chosen.empty()) {
      doc.error(pf->loc, pf->path, "has both " + chosen + " and " + p.key + "; use one");
      continue;
    }
    chosen = p.key;
    out->lb = p.lb;
    if (pf->is_null()) continue;
    MapReader pm(doc, pf->value, pf->path, pf->loc);
    if (!pm.ok()) continue;
    uint64_t n = 0;
    if (p.lb == LbPolicy::kLeastRequest && pm.uint("choiceCount", 2, 100, &n)) {
      out->choice_count = static_cast<uint32_t>(n);
    }
    if (p.lb == LbPolicy::kRingHash) {
      if (auto rc = pm.map("ringHashConfig")) {
        MapReader r(doc, rc->value, rc->path, rc->loc);
        Location min_at;
        constexpr uint64_t kMax = 8 * 1024 * 1024;  // as Envoy: at most 8M entries
        if (r.uint("minimumRingSize", 1, kMax, &n, false, &min_at)) out->ring_min_size = n;
        if (r.uint("maximumRingSize", 1, kMax, &n)) out->ring_max_size = n;
        if (out->ring_min_size > out->ring_max_size) {
          doc.error(min_at.line != 0 ? min_at : rc->loc, r.child_path("minimumRingSize"),
                    "is larger than maximumRingSize (" + std::to_string(out->ring_max_size) + ")");
        }
        r.finish();
      }
    }
    // slowStartConfig, useHostnameForHashing and anything else: not implemented, errors.
    pm.finish();
  }
  // updateMergeWindow, localityWeightedLbConfig and anything else: errors.
  m.finish();
}

void decode_failover(DocReader& doc, const Field& f, UpstreamSpec* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  if (auto list = m.list("prioritizedLocalities", true)) {
    yaml::for_each_item(*list, [&](const YAML::Node& item, const std::string& path, Location loc) {
      FailoverTier tier;
      MapReader p(doc, item, path, loc);
      if (!p.ok()) return;
      if (auto les = p.list("localityEndpoints", true)) {
        yaml::for_each_item(
            *les, [&](const YAML::Node& le, const std::string& lpath, Location lloc) {
              MapReader l(doc, le, lpath, lloc);
              if (!l.ok()) return;
              std::string region, zone, sub_zone;
              if (auto loc_f = l.map("locality")) {
                MapReader lm(doc, loc_f->value, loc_f->path, loc_f->loc);
                lm.string("region", &region);
                lm.string("zone", &zone);
                lm.string("subZone", &sub_zone);
                lm.finish();
              }
              tier.localities.push_back(region + "/" + zone + "/" + sub_zone);
              if (auto w = l.take("loadBalancingWeight")) {
                doc.error(w->loc, w->path,
                          "locality weights (locality-weighted load balancing) are not supported");
              }
              if (auto eps = l.list("lbEndpoints", true)) {
                yaml::for_each_item(
                    *eps, [&](const YAML::Node& ep, const std::string& epath, Location eloc) {
                      MapReader h(doc, ep, epath, eloc);
                      if (!h.ok()) return;
                      StaticHost host;
                      decode_lb_endpoint(doc, h, &host);
                      tier.hosts.push_back(std::move(host));
                    });
                if (eps->value.size() == 0)
                  doc.error(eps->loc, eps->path, "must have at least one endpoint");
              }
              l.finish();
            });
      }
      p.finish();
      out->failover.push_back(std::move(tier));
    });
  }
  m.finish();  // policy (overprovisioning factor, ...): not implemented, an error
}

void decode_lb_hash(DocReader& doc, const Field& f, RouteOptions* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  out->lb_hash_path = f.path;
  out->lb_hash_loc = f.loc;
  if (auto list = m.list("hashPolicies", true)) {
    yaml::for_each_item(*list, [&](const YAML::Node& item, const std::string& path, Location loc) {
      MapReader p(doc, item, path, loc);
      if (!p.ok()) return;
      HashPolicy hp;
      int kinds = 0;
      std::string s;
      Location where;
      if (p.string("header", &s, false, &where)) {
        ++kinds;
        if (!is_http_token(s)) {
          doc.error(where, p.child_path("header"), "\"" + s + "\" is not a valid header name");
        }
        hp.kind = HashPolicy::Kind::kHeader;
        hp.name = to_lower(s);
      }
      if (auto c = p.map("cookie")) {
        ++kinds;
        hp.kind = HashPolicy::Kind::kCookie;
        MapReader cm(doc, c->value, c->path, c->loc);
        if (cm.string("name", &hp.name, true, &where) && !is_http_token(hp.name)) {
          doc.error(where, cm.child_path("name"), "\"" + hp.name + "\" is not a valid cookie name");
        }
        if (auto ttl = cm.take("ttl")) {
          doc.error(ttl->loc, ttl->path,
                    "generating the cookie (ttl) is not supported: hash on a cookie the "
                    "client or the application sets (remove ttl)");
        }
        // Path only applies to a generated cookie: accepted, without effect.
        cm.string("path", &s);
        cm.finish();
      }
      bool b = false;
      if (p.boolean("sourceIp", &b, &where)) {
        ++kinds;
        hp.kind = HashPolicy::Kind::kSourceIp;
        if (!b) {
          doc.error(where, p.child_path("sourceIp"),
                    "must be true (remove the policy to hash on something else)");
        }
      }
      p.boolean("terminal", &hp.terminal);
      if (kinds == 0) {
        doc.error(loc, path, "needs one of header, cookie or sourceIp");
      } else if (kinds > 1) {
        doc.error(loc, path,
                  "has more than one of header, cookie and sourceIp; use one per policy");
      }
      p.finish();
      if (kinds == 1) out->hash_policies.push_back(std::move(hp));
    });
    if (list->value.size() == 0) doc.error(list->loc, list->path, "must have at least one policy");
  }
  m.finish();
}

}  // namespace portico::api::detail
