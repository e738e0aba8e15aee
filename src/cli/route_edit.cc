#include "cli/route_edit.h"

#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>

#include "cli/args.h"
#include "cli/format.h"
#include "cli/help.h"
#include "control/pipeline.h"
#include "control/sources/config_dir.h"

namespace portico::cli {

using Json = nlohmann::ordered_json;

namespace {

size_t line_start(const std::string& text, size_t pos) {
  while (pos > 0 && text[pos - 1] != '\n')
    --pos;
  return pos;
}

// Offset just after the line containing `pos` (after its '\n', or the end of the text).
size_t line_end(const std::string& text, size_t pos) {
  size_t nl = text.find('\n', pos);
  return nl == std::string::npos ? text.size() : nl + 1;
}

// The line starting at `start`, without its newline.
std::string_view line_at(const std::string& text, size_t start) {
  size_t nl = text.find('\n', start);
  return std::string_view(text).substr(start,
                                       nl == std::string::npos ? std::string::npos : nl - start);
}

size_t indentation(std::string_view line) {
  size_t n = 0;
  while (n < line.size() && line[n] == ' ')
    ++n;
  return n;
}

bool blank_or_comment(std::string_view line) {
  size_t n = indentation(line);
  return n == line.size() || line[n] == '#' || (line.size() == n + 1 && line[n] == '\r');
}

YAML::Node field(const YAML::Node& node, const char* key) {
  if (!node.IsMap()) return YAML::Node();
  return node[key];
}

std::string scalar_or(const YAML::Node& node, const std::string& fallback) {
  return node.IsDefined() && node.IsScalar() ? node.Scalar() : fallback;
}

}  // namespace

RoutesLocation locate_routes(const std::string& text, const std::string& name,
                             const std::string& ns) {
  RoutesLocation loc;
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(text);
  } catch (const YAML::Exception&) {
    return loc;  // not parseable: it defines nothing (validate says why)
  }
  for (const auto& doc : docs) {
    if (!doc.IsMap() || scalar_or(field(doc, "kind"), "") != "VirtualService") continue;
    YAML::Node meta = field(doc, "metadata");
    if (scalar_or(field(meta, "name"), "") != name) continue;
    if (scalar_or(field(meta, "namespace"), "default") != ns) continue;
    loc.found = true;
    YAML::Node routes = field(field(field(doc, "spec"), "virtualHost"), "routes");
    if (!routes.IsDefined() || routes.IsNull()) {
      loc.error = "spec.virtualHost.routes is missing: write the first route by hand";
      return loc;
    }
    if (!routes.IsSequence()) {
      loc.error = "spec.virtualHost.routes is not a list";
      return loc;
    }
    if (routes.Style() == YAML::EmitterStyle::Flow || routes.size() == 0) {
      loc.error =
          "spec.virtualHost.routes is a flow-style list ([...]); only block-style lists "
          "(\"- name: ...\") are edited, so that the file's comments and layout are kept";
      return loc;
    }
    const auto seq_mark = routes.Mark();
    if (seq_mark.pos < 0 || static_cast<size_t>(seq_mark.pos) >= text.size() ||
        text[static_cast<size_t>(seq_mark.pos)] != '-') {
      loc.error = "cannot find the routes list in the file's text";
      return loc;
    }
    loc.dash_column = static_cast<size_t>(seq_mark.column);
    std::vector<size_t> dash_lines;
    for (const auto& item : routes) {
      size_t p = static_cast<size_t>(std::max(item.Mark().pos, 0));
      while (p > 0 && (text[p - 1] == ' ' || text[p - 1] == '\n' || text[p - 1] == '\r' ||
                       text[p - 1] == '\t')) {
        --p;
      }
      if (p == 0 || text[p - 1] != '-') {
        loc.error = "unusual layout of spec.virtualHost.routes (cannot find an item's '-')";
        return loc;
      }
      size_t dash = p - 1;
      size_t start = line_start(text, dash);
      if (dash - start != loc.dash_column || indentation(line_at(text, start)) != loc.dash_column) {
        loc.error = "unusual layout of spec.virtualHost.routes (items not one per line)";
        return loc;
      }
      dash_lines.push_back(start);
      // Comment lines right above the item, at its indentation, belong to it.
      size_t first = start;
      while (first > 0) {
        size_t prev = line_start(text, first - 1);
        std::string_view l = line_at(text, prev);
        size_t ind = indentation(l);
        if (ind < l.size() && l[ind] == '#' && ind == loc.dash_column) {
          first = prev;
        } else {
          break;
        }
      }
      loc.item_start.push_back(first);
      loc.names.push_back(scalar_or(field(item, "name"), ""));
    }
    for (size_t i = 0; i + 1 < loc.item_start.size(); ++i)
      loc.item_end.push_back(loc.item_start[i + 1]);
    // The last item runs until a line indented no deeper than its '-' (trailing comments and
    // blank lines are left to what follows).
    size_t end = line_end(text, dash_lines.back());
    for (size_t pos = end; pos < text.size(); pos = line_end(text, pos)) {
      std::string_view l = line_at(text, pos);
      if (blank_or_comment(l)) continue;
      if (indentation(l) <= loc.dash_column || l.substr(0, 3) == "---" || l.substr(0, 3) == "...") {
        break;
      }
      end = line_end(text, pos);
    }
    loc.item_end.push_back(end);
    return loc;
  }
  return loc;
}

bool insert_route(const std::string& text, const RoutesLocation& where, const Json& route,
                  size_t index, std::string* out, std::string* error) {
  const size_t n = where.item_start.size();
  if (index > n) {
    *error = "--index " + std::to_string(index) + " is past the end (the VirtualService has " +
             std::to_string(n) + " routes: 0.." + std::to_string(n) + ")";
    return false;
  }
  std::string block;
  const std::string indent(where.dash_column, ' ');
  std::string yaml = to_yaml(Json::array({route}));
  for (size_t pos = 0; pos < yaml.size(); pos = line_end(yaml, pos))
    block += indent + std::string(line_at(yaml, pos)) + "\n";
  // Items separated by blank lines get a blank line too.
  bool spaced = n >= 2 && where.item_start[1] >= 2 && text[where.item_start[1] - 1] == '\n' &&
                text[where.item_start[1] - 2] == '\n';
  *out = text;
  if (index < n) {
    out->insert(where.item_start[index], block + (spaced ? "\n" : ""));
  } else {
    size_t at = where.item_end[n - 1];
    std::string prefix = (at > 0 && text[at - 1] != '\n') ? "\n" : "";
    if (spaced) prefix += "\n";
    out->insert(at, prefix + block);
  }
  return true;
}

bool remove_route(const std::string& text, const RoutesLocation& where, size_t index,
                  std::string* out, std::string* error) {
  if (index >= where.item_start.size()) {
    *error = "--index " + std::to_string(index) + " is past the end (the VirtualService has " +
             std::to_string(where.item_start.size()) + " routes)";
    return false;
  }
  *out = text;
  out->erase(where.item_start[index], where.item_end[index] - where.item_start[index]);
  return true;
}

std::string route_name_for(const std::string& path, const std::vector<std::string>& taken) {
  std::string base;
  for (char c : path) {
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (alnum) {
      base.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
    } else if (!base.empty() && base.back() != '-') {
      base.push_back('-');
    }
  }
  while (!base.empty() && base.back() == '-')
    base.pop_back();
  if (base.size() > 40) base.resize(40);
  if (base.empty()) base = "root";
  std::string name = base;
  for (int i = 2; std::find(taken.begin(), taken.end(), name) != taken.end(); ++i)
    name = base + "-" + std::to_string(i);
  return name;
}

namespace {

struct Target {
  std::filesystem::path base;
  std::vector<control::SourceFile> files;  // every configuration file of DIR
  size_t index = 0;                        // the one defining the VirtualService
  RoutesLocation where;
};

// Reads DIR and finds the file of VirtualService ns/name. Returns an exit code, or -1 to go on.
int find_target(std::string_view command, const std::string& dir, const std::string& vs,
                const std::string& ns, Target* t) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    return fail(command, dir + ": no such file or directory", kExitUnavailable);
  }
  control::ConfigFileList list = control::list_config_files(dir);
  if (!list.error.empty()) return fail(command, list.error, kExitUnavailable);
  t->base = list.base;
  std::vector<size_t> found;
  for (const auto& name : list.files) {
    std::string error;
    auto content = control::read_config_file(list.base / name, api::kMaxFileBytes, &error);
    if (!content) return fail(command, name + ": " + error, kExitUnavailable);
    RoutesLocation where = locate_routes(*content, vs, ns);
    if (where.found) {
      found.push_back(t->files.size());
      t->where = std::move(where);
    }
    t->files.push_back({name, std::move(*content)});
  }
  if (found.empty()) {
    return fail(command, "VirtualService " + ns + "/" + vs + " is not defined in " + dir,
                kExitFindings);
  }
  if (found.size() > 1) {
    return fail(command,
                "VirtualService " + ns + "/" + vs + " is defined in several files (" +
                    t->files[found[0]].name + ", " + t->files[found[1]].name + ")",
                kExitFindings);
  }
  t->index = found[0];
  if (!t->where.error.empty()) {
    return fail(command,
                t->files[t->index].name + ": cannot edit VirtualService " + ns + "/" + vs + ": " +
                    t->where.error,
                kExitFindings);
  }
  return -1;
}

std::set<std::string> rejected(const control::BuildResult& r) {
  std::set<std::string> out;
  for (const auto& s : r.resources) {
    if (s.state == control::State::kRejected) out.insert(s.kind + " " + s.ns + "/" + s.name);
  }
  return out;
}

// Validates the edited file with the rest of DIR, prints the diff, writes unless dry-run.
int apply_edit(std::string_view command, Target& t, const std::string& vs, const std::string& ns,
               const std::string& edited, bool dry_run, const std::string& done_message) {
  control::BuildResult before = control::build_from_files(t.files, 0);
  std::vector<control::SourceFile> after_files = t.files;
  after_files[t.index].content = edited;
  control::BuildResult after = control::build_from_files(after_files, 0);
  const std::string& name = t.files[t.index].name;
  std::string diff = unified_diff(t.files[t.index].content, edited, "a/" + name, "b/" + name);

  // Refuse when the VirtualService would be Rejected or anything new would be.
  std::vector<std::string> problems;
  std::set<std::string> was = rejected(before);
  for (const auto& s : after.resources) {
    if (s.state != control::State::kRejected) continue;
    bool target = s.kind == "VirtualService" && s.ns == ns && s.name == vs;
    if (!target && was.count(s.kind + " " + s.ns + "/" + s.name)) continue;
    for (const auto& d : s.reasons) {
      if (d.is_error())
        problems.push_back(s.kind + " " + s.ns + "/" + s.name + ": " + d.to_string());
    }
  }
  if (after.file_errors.size() > before.file_errors.size()) {
    for (const auto& d : after.file_errors)
      problems.push_back(d.to_string());
  }
  if (dry_run || !problems.empty()) std::fputs(diff.c_str(), stdout);
  if (!problems.empty()) {
    std::fprintf(stderr, "portico %.*s: refusing to write %s: the result would be invalid:\n",
                 static_cast<int>(command.size()), command.data(), name.c_str());
    for (const auto& p : problems)
      std::fprintf(stderr, "  %s\n", p.c_str());
    return kExitFindings;
  }
  for (const auto& s : after.resources) {
    if (s.kind != "VirtualService" || s.ns != ns || s.name != vs) continue;
    for (const auto& d : s.reasons)
      std::fprintf(stderr, "note: %s\n", d.to_string().c_str());
  }
  if (dry_run) return kExitOk;

  // Atomic replacement: a sibling temporary file (hidden, so a running portico ignores it),
  // fsynced, then renamed over the original with the original's permissions.
  std::filesystem::path path = t.base / name;
  std::string tmpl = (path.parent_path() / ("." + path.filename().string() + ".portico-XXXXXX"));
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  int fd = ::mkstemp(buf.data());
  if (fd < 0) {
    return fail(command, "cannot write next to " + path.string() + ": " + std::strerror(errno),
                kExitUnavailable);
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) ::fchmod(fd, st.st_mode & 07777);
  size_t off = 0;
  bool ok = true;
  while (off < edited.size()) {
    ssize_t n = ::write(fd, edited.data() + off, edited.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;
      break;
    }
    off += static_cast<size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  ok = (::close(fd) == 0) && ok;
  if (!ok || ::rename(buf.data(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(buf.data());
    return fail(command, "cannot write " + path.string() + ": " + std::strerror(e),
                kExitUnavailable);
  }
  std::printf("%s in %s\n", done_message.c_str(), path.c_str());
  return kExitOk;
}

bool parse_index(const std::string& text, size_t* out) {
  if (text.empty() || text.size() > 6) return false;
  size_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<size_t>(c - '0');
  }
  *out = v;
  return true;
}

// The start of both route commands: parses their common flags (--dir, --vs, --namespace, --name,
// --index, --dry-run) and its own `specs`, then checks that there is no positional argument and
// that --dir and --vs are given. Returns -1 to go on, else the exit code to return at once.
int parse_route_args(std::string_view cmd, const std::vector<std::string>& args,
                     std::vector<FlagSpec> specs, Args* a) {
  specs.insert(specs.end(), {{"--dir", "", true, false},
                             {"--vs", "", true, false},
                             {"--namespace", "-n", true, false},
                             {"--name", "", true, false},
                             {"--index", "", true, false},
                             {"--dry-run", "", false, false}});
  if (int rc = parse_args(cmd, args, specs, a); rc >= 0) return rc;
  if (!a->positional().empty()) {
    return usage_error(cmd, "unexpected argument '" + a->positional()[0] + "'");
  }
  if (!a->has("--dir")) return usage_error(cmd, "--dir DIR is required");
  if (!a->has("--vs")) return usage_error(cmd, "--vs NAME is required");
  return -1;
}

// --index (0 when not given) and the VirtualService named by --vs and --namespace in --dir.
// Returns -1 to go on, else the exit code to return at once.
int parse_index_and_find_target(std::string_view cmd, const Args& a, size_t* index, Target* t) {
  if (a.has("--index") && !parse_index(a.get("--index"), index)) {
    return usage_error(cmd, "--index wants a number >= 0, got '" + a.get("--index") + "'");
  }
  return find_target(cmd, a.get("--dir"), a.get("--vs"), a.get("--namespace", "default"), t);
}

}  // namespace

int route_add_command(const std::vector<std::string>& args) {
  constexpr std::string_view kCmd = "route add";
  Args a;
  if (int rc = parse_route_args(kCmd, args,
                                {{"--path-prefix", "", true, false},
                                 {"--path-exact", "", true, false},
                                 {"--path-regex", "", true, false},
                                 {"--method", "", true, true},
                                 {"--header", "-H", true, true},
                                 {"--upstream", "", true, false},
                                 {"--upstream-namespace", "", true, false},
                                 {"--direct-response", "", true, false},
                                 {"--body", "", true, false},
                                 {"--prefix-rewrite", "", true, false},
                                 {"--timeout", "", true, false}},
                                &a);
      rc >= 0) {
    return rc;
  }
  int paths = a.has("--path-prefix") + a.has("--path-exact") + a.has("--path-regex");
  if (paths != 1) {
    return usage_error(kCmd, "give exactly one of --path-prefix, --path-exact, --path-regex");
  }
  if (a.has("--upstream") == a.has("--direct-response")) {
    return usage_error(kCmd, "give exactly one of --upstream NAME, --direct-response STATUS");
  }
  size_t index = 0;
  const std::string vs = a.get("--vs");
  const std::string ns = a.get("--namespace", "default");
  Target t;
  if (int rc = parse_index_and_find_target(kCmd, a, &index, &t); rc >= 0) return rc;

  Json matcher = Json::object();
  std::string path;
  for (const char* flag : {"--path-prefix", "--path-exact", "--path-regex"}) {
    if (a.has(flag)) {
      path = a.get(flag);
      matcher[std::string(flag + 7)] = path;  // "--path-prefix" -> "prefix"
    }
  }
  for (const auto& h : a.all("--header")) {
    size_t colon = h.find(':');
    if (colon == std::string::npos || colon == 0) {
      return usage_error(kCmd, "--header wants 'Name: value', got '" + h + "'");
    }
    std::string value = h.substr(colon + 1);
    while (!value.empty() && value.front() == ' ')
      value.erase(0, 1);
    if (!matcher.contains("headers")) matcher["headers"] = Json::array();
    matcher["headers"].push_back(Json{{"name", h.substr(0, colon)}, {"value", value}});
  }
  if (a.has("--method")) matcher["methods"] = a.all("--method");

  std::string name = a.get("--name");
  if (name.empty()) {
    name = route_name_for(path, t.where.names);
  } else if (std::find(t.where.names.begin(), t.where.names.end(), name) != t.where.names.end()) {
    return fail(kCmd,
                "VirtualService " + ns + "/" + vs + " already has a route named '" + name + "'",
                kExitFindings);
  }
  Json route{{"name", name}, {"matchers", Json::array({matcher})}};
  if (a.has("--upstream")) {
    Json up{{"name", a.get("--upstream")}};
    if (a.has("--upstream-namespace")) up["namespace"] = a.get("--upstream-namespace");
    route["routeAction"] = Json{{"single", Json{{"upstream", up}}}};
  } else {
    size_t status = 0;
    if (!parse_index(a.get("--direct-response"), &status) || status < 100 || status > 599) {
      return usage_error(kCmd, "--direct-response wants a status 100..599, got '" +
                                   a.get("--direct-response") + "'");
    }
    Json d{{"status", status}};
    if (a.has("--body")) d["body"] = a.get("--body");
    route["directResponseAction"] = d;
  }
  Json options = Json::object();
  if (a.has("--prefix-rewrite")) options["prefixRewrite"] = a.get("--prefix-rewrite");
  if (a.has("--timeout")) options["timeout"] = a.get("--timeout");
  if (!options.empty()) route["options"] = options;
  // The router replaces exactly the matched prefix: /api + rewrite "/" sends /api/v1 as //v1.
  const std::string rewrite = a.get("--prefix-rewrite");
  if (a.has("--path-prefix") && !path.empty() && path.back() != '/' && !rewrite.empty() &&
      rewrite.back() == '/') {
    std::fprintf(stderr,
                 "note: with --path-prefix %s and --prefix-rewrite %s, %s/x is sent upstream as "
                 "%s/x; --path-prefix %s/ would send %sx\n",
                 path.c_str(), rewrite.c_str(), path.c_str(), rewrite.c_str(), path.c_str(),
                 rewrite.c_str());
  }

  std::string edited;
  std::string error;
  if (!insert_route(t.files[t.index].content, t.where, route, index, &edited, &error)) {
    return usage_error(kCmd, error);
  }
  return apply_edit(kCmd, t, vs, ns, edited, a.has("--dry-run"),
                    "route " + name + " added to VirtualService " + ns + "/" + vs + " at index " +
                        std::to_string(index));
}

int route_remove_command(const std::vector<std::string>& args) {
  constexpr std::string_view kCmd = "route remove";
  Args a;
  if (int rc = parse_route_args(kCmd, args, {}, &a); rc >= 0) return rc;
  if (a.has("--name") == a.has("--index")) {
    return usage_error(kCmd, "give exactly one of --name ROUTE, --index N");
  }
  size_t index = 0;
  const std::string vs = a.get("--vs");
  const std::string ns = a.get("--namespace", "default");
  Target t;
  if (int rc = parse_index_and_find_target(kCmd, a, &index, &t); rc >= 0) return rc;
  if (a.has("--name")) {
    auto it = std::find(t.where.names.begin(), t.where.names.end(), a.get("--name"));
    if (it == t.where.names.end()) {
      return fail(
          kCmd, "VirtualService " + ns + "/" + vs + " has no route named '" + a.get("--name") + "'",
          kExitFindings);
    }
    index = static_cast<size_t>(it - t.where.names.begin());
  }
  std::string edited;
  std::string error;
  if (!remove_route(t.files[t.index].content, t.where, index, &edited, &error)) {
    return usage_error(kCmd, error);
  }
  std::string label =
      t.where.names[index].empty() ? "#" + std::to_string(index) : t.where.names[index];
  return apply_edit(kCmd, t, vs, ns, edited, a.has("--dry-run"),
                    "route " + label + " removed from VirtualService " + ns + "/" + vs);
}

}  // namespace portico::cli
