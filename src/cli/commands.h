// The subcommands of the portico binary. Each returns the process exit code. Main thread only.
#pragma once

#include <string>
#include <vector>

namespace portico::cli {

int run_command(const std::vector<std::string>& args);       // portico run DIR [...]
int validate_command(const std::vector<std::string>& args);  // portico validate DIR
int get_command(const std::vector<std::string>& args);       // portico get KIND [NAME]
int describe_command(const std::vector<std::string>& args);  // portico describe KIND NAME

// Parses "host:port" (IPv6 as [::1]:9901). False when malformed.
bool parse_host_port(const std::string& text, std::string* host, uint16_t* port);

}  // namespace portico::cli
