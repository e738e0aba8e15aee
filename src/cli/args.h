// Argument parsing for the CLI commands (hand written, kubectl habits): "--flag=value" and
// "--flag value", short forms ("-o json", "-ojson"), repeatable flags, boolean flags, "--" to end
// the flags, "-" as a positional (stdin). Plain values; main thread only.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace portico::cli {

struct FlagSpec {
  std::string name;         // "--output"
  std::string short_name;   // "-o", or "" when there is none
  bool takes_value = true;  // false: a boolean flag ("--dry-run")
  bool repeated = false;    // may be given several times ("-H")
};

class Args {
 public:
  // Parses `args` against `specs` ("--help" and "-h" are always known and set help()). Returns ""
  // or one line saying what is wrong ("unknown flag '--x'", "--output needs a value", ...).
  std::string parse(const std::vector<std::string>& args, const std::vector<FlagSpec>& specs);

  bool help() const { return help_; }
  bool has(std::string_view name) const { return values_.find(name) != values_.end(); }
  // The value of a flag (the last one given for a repeated flag), or `fallback`.
  std::string get(std::string_view name, std::string fallback = "") const;
  // Every value of a repeated flag, in order.
  std::vector<std::string> all(std::string_view name) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::vector<std::string>, std::less<>> values_;
  std::vector<std::string> positional_;
  bool help_ = false;
};

// Walks a long-running command's arguments (`portico run`, `server`, `proxy`) one at a time:
// "--flag=value" and "--flag value". The caller decides what each flag means.
class FlagWalker {
 public:
  // `command` names the command in errors ("portico run").
  FlagWalker(std::string command, const std::vector<std::string>& args)
      : command_(std::move(command)), args_(args) {}
  // Moves to the next argument; false at the end.
  bool next();
  // The flag ("--admin", the part before '=') or the positional argument.
  const std::string& arg() const { return arg_; }
  // Whether the flag came as "--flag=value".
  bool has_inline() const { return has_inline_; }
  // The flag's value (consuming the next argument unless it was inline), or null after printing
  // "<command>: --flag needs a value".
  const std::string* value();

 private:
  std::string command_;
  const std::vector<std::string>& args_;
  size_t next_ = 0;
  std::string arg_, inline_value_;
  bool has_inline_ = false;
};

// A duration flag's value: "30s", "500ms", "2m", "0". False when malformed.
bool parse_duration(const std::string& text, std::chrono::milliseconds* out);

// The flags every command reading a running portico takes: --admin ADDR:PORT.
inline constexpr const char* kDefaultAdmin = "127.0.0.1:9901";

}  // namespace portico::cli
