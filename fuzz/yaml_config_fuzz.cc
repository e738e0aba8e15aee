// libFuzzer target: the bytes are one configuration file, run through decode, validate and
// translate, then rendered as JSON (config dump and resource statuses). Nothing may crash, hang or
// throw.
#include <cstddef>
#include <cstdint>
#include <string>

#include "control/pipeline.h"
#include "snapshot/proxy_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string content(reinterpret_cast<const char*>(data), size);
  portico::control::BuildResult result =
      portico::control::build_from_files({{"fuzz.yaml", content}}, 1);
  if (!result.config) __builtin_trap();  // the contract: never null
  std::string dump = portico::snapshot::to_json(*result.config, false);
  std::string statuses = portico::control::resources_to_json(result.resources, result.file_errors);
  for (const auto& d : result.file_errors)
    (void)d.to_string();
  for (const auto& s : result.resources) {
    for (const auto& d : s.reasons)
      (void)d.to_string();
  }
  if (dump.empty() || statuses.empty()) __builtin_trap();
  return 0;
}
