#include "control/sources/factory.h"

#include "control/sources/etcd_source.h"

namespace portico::control {

MadeSources make_sources(const api::SettingsSpec& settings) {
  MadeSources out;
  if (const auto& etcd = settings.etcd_config_source) {
    EtcdSourceOptions options;
    options.address = etcd->address;
    options.prefix = etcd->prefix;
    options.timeout = etcd->timeout;
    auto source = EtcdSource::make(std::move(options));
    if (source) {
      out.sources.push_back(std::move(source.value()));
    } else {
      out.errors.push_back("etcdConfigSource: " + source.error().message);
    }
  }
  return out;
}

std::string sources_fingerprint(const api::SettingsSpec& settings) {
  std::string out;
  if (const auto& etcd = settings.etcd_config_source) {
    out += "etcd " + etcd->address + " " + etcd->prefix + " " +
           std::to_string(etcd->timeout.count()) + "ms\n";
  }
  return out;
}

}  // namespace portico::control
