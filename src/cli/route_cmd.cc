// `portico route explain|add|remove`: the route subcommands.
#include <cstdio>
#include <string>
#include <vector>

#include "cli/admin_client.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/explain.h"
#include "cli/help.h"
#include "cli/local.h"
#include "cli/route_edit.h"

namespace portico::cli {

namespace {

using Json = nlohmann::ordered_json;

int explain_command(const std::vector<std::string>& args) {
  Args a;
  if (int rc = parse_args("route explain", args,
                          {{"--admin", "", true, false},
                           {"--dir", "", true, false},
                           {"--header", "-H", true, true},
                           {"--output", "-o", true, false}},
                          &a);
      rc >= 0) {
    return rc;
  }
  std::string out_flag = a.get("--output", "text");
  if (out_flag != "text" && out_flag != "json") {
    return usage_error("route explain",
                       "unknown output format '" + out_flag + "' (valid: text, json)");
  }
  const auto& pos = a.positional();
  if (pos.size() != 2) return usage_error("route explain", "wants METHOD URL");
  if (a.has("--dir") && a.has("--admin")) {
    return usage_error("route explain", "--dir and --admin exclude each other");
  }
  ExplainRequest request;
  request.method = pos[0];
  request.url = pos[1];
  request.headers = a.all("--header");
  for (char c : request.method) {
    if (c < 'A' || c > 'Z') {
      return usage_error("route explain", "'" + request.method +
                                              "' is not a method (GET, POST, ...; methods are "
                                              "case-sensitive)");
    }
  }
  Json dump;
  std::string error;
  if (a.has("--dir")) {
    control::BuildResult result;
    if (!build_local(a.get("--dir"), &result, &error)) {
      return fail("route explain", error, kExitUnavailable);
    }
    dump = dump_of(result);
  } else if (!admin_get_json(a.get("--admin", kDefaultAdmin), "/config_dump", &dump, &error)) {
    return fail("route explain", error, kExitUnavailable);
  }
  Json x;
  if (!explain_route(dump, request, &x, &error)) return usage_error("route explain", error);
  if (out_flag == "json") {
    std::printf("%s\n", x.dump(2, ' ', false, Json::error_handler_t::replace).c_str());
  } else {
    std::fputs(render_explanation(x).c_str(), stdout);
  }
  const std::string outcome = x.value("outcome", "");
  return outcome == "forward" || outcome == "redirect" || outcome == "direct_response"
             ? kExitOk
             : kExitFindings;
}

}  // namespace

int route_command(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(help_text("route"), args.empty() ? stderr : stdout);
    return args.empty() ? kExitUsage : kExitOk;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "explain") return explain_command(rest);
  if (args[0] == "add") return route_add_command(rest);
  if (args[0] == "remove" || args[0] == "rm" || args[0] == "delete") {
    return route_remove_command(rest);
  }
  return usage_error("route", "unknown subcommand '" + args[0] + "' (valid: explain, add, remove)");
}

}  // namespace portico::cli
