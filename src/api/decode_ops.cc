// Decoding of the operations fields: a Gateway's access logs (spec.options, Gloo's
// ListenerOptions.accessLoggingService), the per-route access log switch (options.accessLog) and
// the process-wide limits of Settings (spec.overload).
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

}  // namespace portico::api::detail
