// Decoding of the operations fields: a Gateway's access logs (spec.options, Gloo's

#include "common/strings.h"
// ListenerOptions.accessLoggingService), the per-route access log switch (options.accessLog),
// the process-wide limits of Settings (spec.overload), and the resilience fields: a route's
// retries and an Upstream's circuitBreakers and retryBudget.
#include "api/decode_internal.h"
#include "common/access_log_format.h"

namespace portico::api::detail {

using yaml::DocReader;
using yaml::Field;
using yaml::MapReader;

namespace {

// A format string: parsed, so that an unknown operator is an error naming it.
bool check_format(DocReader& doc, const std::string& format, const std::string& path,
                  Location loc) {
  auto parsed = access_log::parse_format(format);
  if (!parsed.ok()) {
    doc.error(loc, path, parsed.error().message);
    return false;
  }
  return true;
}

void decode_file_sink(DocReader& doc, const Field& f, AccessLogSpec* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  Location where = m.loc();
  if (m.string("path", &out->path, true, &where)) {
    if (out->path.empty() || out->path[0] != '/' || out->path.find('\0') != std::string::npos) {
      doc.error(where, m.child_path("path"),
                "must be an absolute file path (or /dev/stdout, /dev/stderr)");
    } else if (out->path.back() == '/') {
      doc.error(where, m.child_path("path"), "names a directory, not a file");
    }
  }
  const bool has_string = m.has("stringFormat");
  const bool has_json = m.has("jsonFormat");
  if (has_string && has_json) {
    doc.error(m.loc(), f.path, "set stringFormat or jsonFormat, not both");
  }
  std::string format;
  if (m.string("stringFormat", &format, false, &where)) {
    if (format.empty()) {
      doc.error(where, m.child_path("stringFormat"),
                "is empty (leave it out for the default format)");
    } else if (check_format(doc, format, m.child_path("stringFormat"), where)) {
      if (format.back() != '\n') format.push_back('\n');  // one line per request
      out->format = std::move(format);
    }
  } else if (!has_json) {
    out->format = access_log::kDefaultTextFormat;
  }
  if (auto j = m.map("jsonFormat")) {
    out->json = true;
    MapReader jm(doc, j->value, j->path, j->loc);
    for (auto it = j->value.begin(); it != j->value.end(); ++it) {
      if (!it->first.IsScalar()) continue;  // MapReader reported it
      const std::string key = it->first.Scalar();
      auto field = jm.take(key);
      if (!field) continue;
      if (!field->value.IsScalar()) {
        doc.error(field->loc, field->path,
                  "must be a format string (nested objects are not supported)");
        continue;
      }
      std::string value;
      if (!yaml::read_string(doc, field->value, field->path, field->loc, &value)) continue;
      if (check_format(doc, value, field->path, field->loc)) {
        out->json_fields.emplace_back(key, std::move(value));
      }
    }
    jm.finish();
    if (j->value.size() == 0) doc.error(j->loc, j->path, "has no fields");
  }
  m.finish();
}

}  // namespace

void decode_gateway_options(DocReader& doc, const Field& f, GatewaySpec* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  if (auto als = m.map("accessLoggingService")) {
    MapReader a(doc, als->value, als->path, als->loc);
    if (auto list = a.list("accessLog", true)) {
      yaml::for_each_item(
          *list, [&](const YAML::Node& item, const std::string& path, Location loc) {
            MapReader e(doc, item, path, loc);
            if (!e.ok()) return;
            AccessLogSpec spec;
            spec.loc = loc;
            spec.field_path = path;
            for (const char* other : {"grpcService", "openTelemetryService"}) {
              if (auto o = e.take(other)) {
                doc.error(o->loc, o->path,
                          std::string(other) +
                              " is not supported: Portico writes access logs to "
                              "files and stdout (fileSink)");
              }
            }
            if (auto o = e.take("filter")) {
              doc.error(o->loc, o->path,
                        "access log filters are not supported: every request is logged (turn a "
                        "route's logging off with its options.accessLog.disabled)");
            }
            bool ok = false;
            if (auto sink = e.map("fileSink", true)) {
              decode_file_sink(doc, *sink, &spec);
              ok = true;
            }
            e.finish();
            if (ok) out->access_logs.push_back(std::move(spec));
          });
    }
    a.finish();
  }
  m.finish();
}

void decode_route_access_log(DocReader& doc, const Field& f, std::optional<bool>* disabled) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  bool b = false;
  if (m.boolean("disabled", &b)) *disabled = b;
  m.finish();
}

void decode_overload(DocReader& doc, const Field& f, SettingsSpec* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  uint64_t n = 0;
  if (m.uint("maxConnections", 1, 100000000, &n)) {
    out->overload_max_connections = static_cast<uint32_t>(n);
  }
  // From 1 byte (a test that wants the gateway overloaded) to 1 PiB.
  if (m.uint("maxHeapBytes", 1, uint64_t{1} << 50, &n)) out->overload_max_heap_bytes = n;
  m.finish();
}

namespace {

struct RetryCondition {
  std::string_view name;
  uint32_t bit;
};
constexpr RetryCondition kRetryConditions[] = {
    {"5xx", RetryOptions::kOn5xx},
    {"gateway-error", RetryOptions::kOnGatewayError},
    {"reset", RetryOptions::kOnReset},
    {"connect-failure", RetryOptions::kOnConnectFailure},
    {"retriable-4xx", RetryOptions::kOnRetriable4xx},
    {"refused-stream", RetryOptions::kOnRefusedStream},
    {"retriable-status-codes", RetryOptions::kOnStatusCodes},
};

using common::trim_ows;

}  // namespace

void decode_retries(DocReader& doc, const Field& f, RetryOptions* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  std::string on;
  Location where = m.loc();
  if (m.string("retryOn", &on, true, &where)) {
    std::string_view rest = on;
    while (true) {
      const size_t comma = rest.find(',');
      const std::string_view item = trim_ows(rest.substr(0, comma));
      if (item.empty()) {
        doc.error(
            where, m.child_path("retryOn"),
            "has an empty condition (a comma-separated list such as \"5xx,connect-failure\")");
      } else {
        bool known = false;
        for (const auto& c : kRetryConditions) {
          if (c.name == item) {
            out->retry_on |= c.bit;
            known = true;
          }
        }
        if (!known) {
          doc.error(where, m.child_path("retryOn"),
                    "retry condition \"" + std::string(item) +
                        "\" is not supported (supported: 5xx, gateway-error, reset, "
                        "connect-failure, retriable-4xx, refused-stream, retriable-status-codes)");
        }
      }
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  if (auto codes = m.list("retriableStatusCodes")) {
    yaml::for_each_item(*codes, [&](const YAML::Node& item, const std::string& path, Location loc) {
      uint64_t code = 0;
      if (yaml::read_uint(doc, item, path, loc, 100, 599, &code)) {
        out->retriable_status_codes.push_back(static_cast<uint16_t>(code));
      }
    });
    if ((out->retry_on & RetryOptions::kOnStatusCodes) == 0) {
      doc.error(codes->loc, codes->path,
                "applies only with \"retriable-status-codes\" in retryOn (add it there)");
    }
  } else if ((out->retry_on & RetryOptions::kOnStatusCodes) != 0) {
    doc.error(where, m.child_path("retryOn"),
              "names retriable-status-codes but retriableStatusCodes lists none");
  }
  uint64_t n = 0;
  if (m.uint("numRetries", 0, 100, &n)) out->num_retries = static_cast<uint32_t>(n);
  Millis d{0};
  if (m.duration("perTryTimeout", &d, false, &where)) {
    if (d.count() <= 0) {
      doc.error(where, m.child_path("perTryTimeout"), "must be greater than 0");
    } else {
      out->per_try_timeout = d;
    }
  }
  if (auto b = m.map("retryBackOff")) {
    MapReader bm(doc, b->value, b->path, b->loc);
    if (bm.duration("baseInterval", &d, false, &where)) {
      if (d.count() <= 0) {
        doc.error(where, bm.child_path("baseInterval"), "must be greater than 0");
      } else {
        out->base_interval = d;
      }
    }
    if (bm.duration("maxInterval", &d, false, &where)) {
      if (d < out->base_interval) {
        doc.error(
            where, bm.child_path("maxInterval"),
            "must be at least baseInterval (" + std::to_string(out->base_interval.count()) + "ms)");
      } else {
        out->max_interval = d;
      }
    }
    bm.finish();
  }
  bool b = false;
  if (m.boolean("retryNonIdempotent", &b)) out->retry_non_idempotent = b;
  if (m.uint("maxReplayBytes", 0, 16 * 1024 * 1024, &n))
    out->max_replay_bytes = static_cast<uint32_t>(n);
  m.finish();
}

void decode_circuit_breakers(DocReader& doc, const Field& f, UpstreamSpec* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  uint64_t n = 0;
  if (m.uint("maxConnections", 1, 100'000'000, &n))
    out->cb_max_connections = static_cast<uint32_t>(n);
  if (m.uint("maxPendingRequests", 1, 100'000'000, &n)) {
    out->cb_max_pending_requests = static_cast<uint32_t>(n);
  }
  if (m.uint("maxRequests", 1, 100'000'000, &n)) out->cb_max_requests = static_cast<uint32_t>(n);
  if (m.uint("maxRetries", 0, 100'000'000, &n)) out->cb_max_retries = static_cast<uint32_t>(n);
  m.finish();
}

void decode_retry_budget(DocReader& doc, const Field& f, UpstreamSpec* out) {
  MapReader m(doc, f.value, f.path, f.loc);
  if (!m.ok()) return;
  uint64_t n = 0;
  if (m.uint("budgetPercent", 0, 100, &n)) out->retry_budget_percent = static_cast<uint32_t>(n);
  if (m.uint("minRetryConcurrency", 0, 100'000'000, &n)) {
    out->retry_budget_min_concurrency = static_cast<uint32_t>(n);
  }
  m.finish();
}

}  // namespace portico::api::detail
