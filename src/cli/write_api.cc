#include "cli/write_api.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>

#include "api/decode.h"
#include "cli/fleet_auth.h"
#include "cli/format.h"

namespace portico::cli {

namespace {

using Json = nlohmann::ordered_json;
using Outcome = control::WriteResult::Outcome;

// The counts for /stats (control-plane thread only: the handlers run there).
struct Counts {
  std::map<std::string, uint64_t> writes;    // by outcome, '_' for ' '
  std::map<std::string, uint64_t> requests;  // refused, unauthorized
};
Counts& counts() {
  static Counts c;
  return c;
}

void count(const control::WriteResult& w) {
  std::string name = control::to_string(w.outcome);
  std::replace(name.begin(), name.end(), ' ', '_');
  ++counts().writes[name];
}

constexpr std::string_view kApplyPath = "/v1/apply";
constexpr std::string_view kResourcesPath = "/v1/resources/";

proxy::admin::Response json_response(int status, const Json& body) {
  return {status, "application/json",
          body.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n"};
}

proxy::admin::Response error_response(int status, const std::string& message) {
  return json_response(status, Json{{"error", message}});
}

int http_status(Outcome outcome) {
  switch (outcome) {
    case Outcome::kCreated:
    case Outcome::kConfigured:
    case Outcome::kUnchanged:
    case Outcome::kDeleted:
      return 200;
    case Outcome::kNotFound:
      return 404;
    case Outcome::kConflict:
      return 409;
    case Outcome::kUnsupported:
      return 501;
    case Outcome::kFailed:
      break;
  }
  return 503;
}

api::Diagnostic error_at(const api::Resource* r, std::string path, std::string message) {
  api::Diagnostic d;
  d.file = "request";
  if (r) {
    d.line = r->loc.line;
    d.column = r->loc.column;
  }
  d.path = std::move(path);
  d.message = std::move(message);
  return d;
}

// A line that ends a document's text rather than belonging to it: blank, a comment, or a
// document marker ("---", "...").
bool trailing_line(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
    line.remove_suffix(1);
  size_t i = 0;
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t'))
    ++i;
  line.remove_prefix(i);
  if (line.empty() || line[0] == '#') return true;
  for (std::string_view marker : {"---", "..."}) {
    if (line.substr(0, 3) == marker && (line.size() == 3 || line[3] == ' ' || line[3] == '\t'))
      return line.size() == 3 || line.find_first_not_of(" \t", 3) == std::string_view::npos ||
             line[line.find_first_not_of(" \t", 3)] == '#';
  }
  return false;
}

std::string trim_document(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t from = 0;
  while (from < text.size()) {
    size_t nl = text.find('\n', from);
    if (nl == std::string_view::npos) nl = text.size();
    lines.push_back(text.substr(from, nl - from));
    from = nl + 1;
  }
  while (!lines.empty() && trailing_line(lines.back()))
    lines.pop_back();
  std::string out;
  for (auto line : lines)
    out.append(line).push_back('\n');
  return out;
}

Json result_entry(const api::Resource& r, const control::WriteResult& w) {
  Json e{{"kind", api::to_string(r.kind)},
         {"namespace", r.meta.ns},
         {"name", r.meta.name},
         {"result", w.ok() ? control::to_string(w.outcome) : "error"},
         {"message", w.message}};
  if (!w.ok()) e["reason"] = control::to_string(w.outcome);
  return e;
}

proxy::admin::Response serve_apply(control::Pipeline& pipeline, std::string_view body) {
  if (body.size() > proxy::admin::kMaxBody) {
    return error_response(
        413, "request body larger than " + std::to_string(proxy::admin::kMaxBody >> 20) + " MiB");
  }
  ApplyDocuments docs = split_apply_body(body);
  if (!docs.errors.empty()) {
    Json diagnostics = Json::array();
    for (const auto& d : docs.errors) {
      Json j{{"line", d.line}, {"column", d.column}, {"path", d.path}, {"message", d.message}};
      // The resource it is about, when one is named at that line.
      for (const auto& r : docs.resources) {
        if (r.loc.line == d.line ||
            std::find_if(r.diagnostics.begin(), r.diagnostics.end(), [&](const api::Diagnostic& x) {
              return x.line == d.line && x.path == d.path && x.message == d.message;
            }) != r.diagnostics.end()) {
          j["kind"] = api::to_string(r.kind);
          j["namespace"] = r.meta.ns;
          j["name"] = r.meta.name;
          break;
        }
      }
      diagnostics.push_back(std::move(j));
    }
    ++counts().requests["refused"];
    return json_response(422, Json{{"error", "the request is refused: nothing was written"},
                                   {"diagnostics", std::move(diagnostics)}});
  }
  control::ConfigSource& target = pipeline.write_target();
  Json results = Json::array();
  int status = 200;
  for (size_t i = 0; i < docs.resources.size(); ++i) {
    const api::Resource& r = docs.resources[i];
    control::WriteOp op;
    op.action = control::WriteOp::Action::kApply;
    op.kind = api::to_string(r.kind);
    op.ns = r.meta.ns;
    op.name = r.meta.name;
    op.api_version = r.api_version;
    op.document = docs.texts[i];
    control::WriteResult w = target.write(op);
    count(w);
    if (!w.ok() && status == 200) status = http_status(w.outcome);
    results.push_back(result_entry(r, w));
  }
  return json_response(status, Json{{"store", std::string(target.name())}, {"results", results}});
}

proxy::admin::Response serve_delete(control::Pipeline& pipeline, std::string_view rest) {
  std::vector<std::string> parts;
  size_t from = 0;
  for (;;) {
    size_t slash = rest.find('/', from);
    parts.emplace_back(
        rest.substr(from, slash == std::string_view::npos ? rest.npos : slash - from));
    if (slash == std::string_view::npos) break;
    from = slash + 1;
  }
  if (parts.size() != 3) {
    return error_response(400, "DELETE /v1/resources/<Kind>/<namespace>/<name>");
  }
  const std::string kind = canonical_kind(parts[0]);
  bool known = false;
  for (auto k :
       {api::Kind::kGateway, api::Kind::kVirtualService, api::Kind::kUpstream, api::Kind::kSecret,
        api::Kind::kRouteTable, api::Kind::kUpstreamGroup, api::Kind::kSettings}) {
    known = known || kind == api::to_string(k);
  }
  if (!known) return error_response(400, "unknown kind \"" + parts[0] + "\"");
  control::WriteOp op;
  op.action = control::WriteOp::Action::kDelete;
  op.kind = kind;
  op.ns = parts[1];
  op.name = parts[2];
  control::ConfigSource& target = pipeline.write_target();
  control::WriteResult w = target.write(op);
  count(w);
  Json body{{"kind", kind},         {"namespace", op.ns},
            {"name", op.name},      {"result", w.ok() ? control::to_string(w.outcome) : "error"},
            {"message", w.message}, {"store", std::string(target.name())}};
  if (!w.ok()) body["reason"] = control::to_string(w.outcome);
  return json_response(http_status(w.outcome), body);
}

}  // namespace

ApplyDocuments split_apply_body(std::string_view body) {
  ApplyDocuments out;
  api::DecodedFile decoded = api::decode_file("request", body);
  for (const auto& d : decoded.errors) {
    if (d.is_error()) out.errors.push_back(d);
  }
  for (const auto& r : decoded.resources) {
    for (const auto& d : r.diagnostics) {
      if (d.is_error()) out.errors.push_back(d);
    }
  }
  if (!decoded.parsed && out.errors.empty()) {
    out.errors.push_back(error_at(nullptr, "", "the request body does not parse"));
  }
  if (decoded.parsed && decoded.resources.empty() && out.errors.empty()) {
    out.errors.push_back(error_at(nullptr, "", "the request holds no document"));
  }
  std::set<std::string> seen;
  for (const auto& r : decoded.resources) {
    if (!seen.insert(r.key()).second) {
      out.errors.push_back(error_at(&r, "metadata.name",
                                    std::string(api::to_string(r.kind)) + " " + r.meta.ns + "/" +
                                        r.meta.name + " is in the request twice"));
    }
  }
  out.resources = std::move(decoded.resources);
  if (!out.errors.empty()) return out;

  // Each document's text: from its first line to the next document's, without the separators and
  // comments in between. It must decode alone to the same resource.
  std::vector<size_t> line_starts = {0};
  for (size_t i = 0; i < body.size(); ++i)
    if (body[i] == '\n') line_starts.push_back(i + 1);
  auto line_offset = [&](int line) {
    return line >= 1 && static_cast<size_t>(line) <= line_starts.size() ? line_starts[line - 1]
                                                                        : body.size();
  };
  for (size_t n = 0; n < out.resources.size(); ++n) {
    const api::Resource& r = out.resources[n];
    const size_t from = line_offset(r.loc.line);
    const size_t to =
        n + 1 < out.resources.size() ? line_offset(out.resources[n + 1].loc.line) : body.size();
    std::string text = trim_document(body.substr(from, to > from ? to - from : 0));
    api::DecodedFile alone = api::decode_file("request", text);
    if (!alone.parsed || !alone.errors.empty() || alone.resources.size() != 1 ||
        alone.resources[0].key() != r.key() || alone.resources[0].spec_json != r.spec_json ||
        alone.resources[0].has_errors()) {
      out.errors.push_back(error_at(&r, "",
                                    "this document could not be told apart from the ones around "
                                    "it (start each document on a line of its own after ---)"));
      continue;
    }
    out.texts.push_back(std::move(text));
  }
  return out;
}

std::string write_stats() {
  std::string out = "# TYPE portico_api_writes_total counter\n";
  for (const char* result : {"created", "configured", "unchanged", "deleted", "not_found",
                             "conflict", "unsupported", "failed"}) {
    auto it = counts().writes.find(result);
    out += "portico_api_writes_total{result=\"" + std::string(result) + "\"} " +
           std::to_string(it == counts().writes.end() ? 0 : it->second) + "\n";
  }
  out += "# TYPE portico_api_write_requests_total counter\n";
  for (const char* result : {"refused", "unauthorized"}) {
    auto it = counts().requests.find(result);
    out += "portico_api_write_requests_total{result=\"" + std::string(result) + "\"} " +
           std::to_string(it == counts().requests.end() ? 0 : it->second) + "\n";
  }
  return out;
}

std::optional<proxy::admin::Response> serve_write(control::Pipeline& pipeline,
                                                  const proxy::admin::Request& request,
                                                  const WriteAccess& access) {
  const bool apply = request.path == kApplyPath;
  const bool resources = request.path.substr(0, kResourcesPath.size()) == kResourcesPath;
  if (!apply && !(resources && request.method == "DELETE")) return std::nullopt;
  if (apply && request.method != "POST") {
    return error_response(405, "POST the documents to apply to /v1/apply");
  }
  if (!access.refused.empty()) {
    ++counts().requests["unauthorized"];
    return error_response(403, access.refused);
  }
  if (!access.token.empty() && !bearer_matches(request.authorization, access.token)) {
    ++counts().requests["unauthorized"];
    return error_response(401, "unauthorized: writes want the bearer token (--token-file)");
  }
  if (apply) return serve_apply(pipeline, request.body);
  return serve_delete(pipeline, request.path.substr(kResourcesPath.size()));
}

}  // namespace portico::cli
