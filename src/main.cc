// portico: one binary, subcommands in the HashiCorp tradition. This file only dispatches; the
// commands live in src/cli/ and are the only place where the planes are wired together.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/help.h"

int main(int argc, char** argv) {
  using portico::cli::overview_text;
  if (argc < 2) {
    std::fputs(overview_text(), stderr);
    return 2;
  }
  std::string cmd = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (cmd == "run") {
    // run.cc parses its own flags; its help is kept with the others.
    for (const auto& a : args) {
      if (a == "--help" || a == "-h") {
        std::fputs(portico::cli::help_text("run"), stdout);
        return 0;
      }
    }
    return portico::cli::run_command(args);
  }
  if (cmd == "server") {
    for (const auto& a : args) {
      if (a == "--help" || a == "-h") {
        std::fputs(portico::cli::help_text("server"), stdout);
        return 0;
      }
    }
    return portico::cli::server_command(args);
  }
  // The CLI commands read documents from files and from the admin API: a bug in reading one must
  // end in one line naming it, never in std::terminate.
  try {
    if (cmd == "validate") return portico::cli::validate_command(args);
    if (cmd == "get") return portico::cli::get_command(args);
    if (cmd == "describe") return portico::cli::describe_command(args);
    if (cmd == "check") return portico::cli::check_command(args);
    if (cmd == "proxy") return portico::cli::proxy_command(args);
    if (cmd == "route") return portico::cli::route_command(args);
    if (cmd == "diff") return portico::cli::diff_command(args);
    if (cmd == "apply") return portico::cli::apply_command(args);
    if (cmd == "delete") return portico::cli::delete_command(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "portico %s: internal error: %s\n", cmd.c_str(), e.what());
    return 1;
  }
  if (cmd == "version" || cmd == "--version") {
    std::printf("portico 0.1.0\n");
    return 0;
  }
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    if (!args.empty()) {
      std::string topic = args[0];
      if (args.size() > 1) topic += " " + args[1];
      const char* text = portico::cli::help_text(topic);
      if (!text) text = portico::cli::help_text(args[0]);
      if (text) {
        std::fputs(text, stdout);
        return 0;
      }
    }
    std::fputs(overview_text(), stdout);
    return 0;
  }
  std::fprintf(stderr, "portico: unknown command '%s'\n\n%s", cmd.c_str(), overview_text());
  return 2;
}
