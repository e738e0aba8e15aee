// The subcommands of the portico binary. Each takes the arguments after its name and returns the
// process exit code (kExit* in cli/help.h). Main thread only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace portico::cli {

int run_command(const std::vector<std::string>& args);       // portico run DIR [...]
int validate_command(const std::vector<std::string>& args);  // portico validate DIR|FILE|-
int get_command(const std::vector<std::string>& args);       // portico get KIND [NAME]
int describe_command(const std::vector<std::string>& args);  // portico describe KIND NAME
int check_command(const std::vector<std::string>& args);     // portico check
int proxy_command(const std::vector<std::string>& args);     // portico proxy dump
int route_command(const std::vector<std::string>& args);     // portico route explain|add|remove
int diff_command(const std::vector<std::string>& args);      // portico diff DIR|FILE
int apply_command(const std::vector<std::string>& args);     // portico apply -f FILE|DIR|-
int delete_command(const std::vector<std::string>& args);    // portico delete KIND NAME | -f F
int server_command(const std::vector<std::string>& args);    // portico server DIR [...]
// portico proxy --server URL --node NAME [...] (proxy_command hands it every `proxy` call with
// --server).
int fleet_proxy_command(const std::vector<std::string>& args);

// Parses "host:port" (IPv6 as [::1]:9901). False when malformed.
bool parse_host_port(const std::string& text, std::string* host, uint16_t* port);

}  // namespace portico::cli
