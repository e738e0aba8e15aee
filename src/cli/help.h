// The --help text of every CLI command, and the exit codes they share. Constants; any thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cli/args.h"

namespace portico::cli {

// Exit codes of every command (docs/operations.md lists them).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFindings = 1;  // the answer is "no": errors, problems, differences, 404
inline constexpr int kExitUsage = 2;     // bad arguments
inline constexpr int kExitUnavailable = 3;  // the admin API or the files could not be read

// The help of `portico COMMAND` ("get", "route explain", ...), or nullptr when unknown.
const char* help_text(std::string_view command);

// The overview printed by `portico --help`.
const char* overview_text();

// Prints "portico COMMAND: message" on stderr and returns `code`.
int fail(std::string_view command, const std::string& message, int code);
// Prints "portico COMMAND: message (see `portico COMMAND --help`)" and returns kExitUsage.
int usage_error(std::string_view command, const std::string& message);
// Parses the arguments of `command`. Returns -1 to go on; otherwise the exit code to return at
// once (the help was printed: 0; a usage error was printed: 2).
int parse_args(std::string_view command, const std::vector<std::string>& args,
               const std::vector<FlagSpec>& specs, Args* out);

}  // namespace portico::cli
