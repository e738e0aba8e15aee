#include "control/sources/factory.h"

namespace portico::control {

MadeSources make_sources(const api::SettingsSpec& settings) {
  MadeSources out;
  (void)settings;  // each source kind adds itself here
  return out;
}

std::string sources_fingerprint(const api::SettingsSpec& settings) {
  std::string out;
  (void)settings;  // each source kind appends its settings here
  return out;
}

}  // namespace portico::control
