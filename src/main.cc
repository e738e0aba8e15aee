// portico: one binary, subcommands in the HashiCorp tradition. This file only dispatches; the
// commands live in src/cli/ and are the only place where the planes are wired together.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace {

constexpr const char* kUsage = R"(portico - API gateway and control plane

Usage:
  portico run DIR [--admin ADDR:PORT] [--workers N] [--log-level LEVEL]
      Both planes in one process: configuration from the YAML files in DIR (watched for changes),
      traffic served on the Gateways' ports. Admin API on 127.0.0.1:9901 by default.
  portico validate DIR
      Check the configuration in DIR: every problem with its file, line and field path.
      Exit code 1 when anything is rejected.
  portico get KIND [NAME] [--admin ADDR:PORT]
      List resources with their status (KIND: gateways|virtualservices|upstreams, or gw|vs|us).
  portico describe KIND NAME [--namespace NS] [--admin ADDR:PORT]
      One resource: spec, status and every reason.
  portico version
)";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  std::string cmd = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (cmd == "run") return portico::cli::run_command(args);
  if (cmd == "validate") return portico::cli::validate_command(args);
  if (cmd == "get") return portico::cli::get_command(args);
  if (cmd == "describe") return portico::cli::describe_command(args);
  if (cmd == "version" || cmd == "--version") {
    std::printf("portico 0.1.0\n");
    return 0;
  }
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  std::fprintf(stderr, "portico: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
  return 2;
}
