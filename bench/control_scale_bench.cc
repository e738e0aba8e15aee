// Control-plane scale benchmark (a program, not a test; single-threaded): decodes, validates and
// translates a configuration directory (normally one written by bench/scale/gen.py) through the
// public entry points `portico run` uses, and prints the wall time, CPU time and memory of every
// phase, then the time of a pipeline sync after one route, and after one endpoint, changed in one
// file. Usage:
//
//   control_scale_bench DIR [--repeat N] [--workers N]
//
// Phases, one after the other on one thread, each printed as a line and as
// `SCALE phase=NAME ms=.. median_ms=.. cpu_ms=.. rss_mb=.. peak_rss_mb=..`:
//
// - read: control::list_config_files and read_config_file of every file.
// - decode: api::decode_file of every file (YAML, field decoding, spec as JSON, validation).
// - yaml_events, yaml_load: yaml-cpp alone, to split `decode` (decode_file parses every file
//   twice: an event-counting pass that enforces the limits, then YAML::LoadAll).
// - validate: api::validate_resource again on every resource (its share of `decode`).
// - copy: copying every resource into one vector (what build_from_store did twice per sync before
//   it translated the store's shared resources).
// - translate: control::translate (cross-resource checks, the ProxyConfig, the statuses), from
//   scratch.
// - config_json: snapshot::to_json of the config (what /config_dump serves).
// - status_json: control::resources_to_json (the /resources document, rendered at every sync).
// - runtime: proxy::build_runtime (router indexes and stat slots, built by Server::apply).
// - sync_cold: control::Pipeline::sync on a new Pipeline fed by a FileSource, publishing through
//   build_runtime: what `portico run` does at start, before the workers pick the config up.
// - sync_unchanged: sync again with nothing changed and no event (a complete listing: every file
//   is stated).
// - sync_route: one route's direct-response body changed in one VirtualService file, then sync.
// - sync_endpoint: one host port changed in one Upstream file, then sync.
//   Both edits are announced to the source with FileSource::note_changed, as `portico run`'s file
//   watcher does, so the poll looks at that one file.
//
// The sync phases also print how long translation and publication took inside the sync, how many
// VirtualServices and routes the incremental translator translated (`vs_translated`,
// `routes_translated`, per sync; the others were reused: 1 VirtualService for a route change, 0 for
// an endpoint), how many virtual hosts build_runtime compiled or reused, and the pipeline's
// counters as /stats shows them (portico_control_*_translated_total). Each edited file is restored
// (and synced, unmeasured) after its phase.
//
// Memory: `rss_mb` is the resident set after the phase (/proc/self/statm), `peak_rss_mb` the
// process's maximum so far (getrusage). Freed memory is not always returned to the system; the
// peak after `runtime` is the figure for "decode + translate + runtime of the whole directory".
#include <sys/resource.h>
#include <unistd.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "api/decode.h"
#include "api/validate.h"
#include "control/pipeline.h"
#include "control/sources/config_dir.h"
#include "control/sources/file_source.h"
#include "control/status/status.h"
#include "control/translate/translator.h"
#include "proxy/runtime.h"
#include "proxy/stats/stats.h"
#include "snapshot/proxy_config.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace control = portico::control;
namespace api = portico::api;
namespace snapshot = portico::snapshot;
namespace proxy = portico::proxy;

double rss_mb() {
  std::ifstream in("/proc/self/statm");
  long pages = 0, resident = 0;
  in >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1e6;
}

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1e3;  // ru_maxrss is in KiB on Linux
}

// CPU time (user + system) of this process so far, in ms: steadier than wall time on a busy
// machine.
double cpu_ms() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto ms = [](const timeval& tv) { return tv.tv_sec * 1e3 + tv.tv_usec / 1e3; };
  return ms(ru.ru_utime) + ms(ru.ru_stime);
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Runs `fn` `repeat` times; returns the smallest wall time in ms (the least disturbed run on a
// shared machine) and the median.
struct Timing {
  double min_ms = 0;
  double median_ms = 0;
  double cpu_ms = 0;  // CPU time of the run with the least of it
};
Timing time_it(int repeat, const std::function<void()>& fn) {
  std::vector<double> runs, cpu;
  for (int i = 0; i < repeat; ++i) {
    double c0 = cpu_ms();
    auto t0 = Clock::now();
    fn();
    runs.push_back(ms_since(t0));
    cpu.push_back(cpu_ms() - c0);
  }
  std::sort(runs.begin(), runs.end());
  return {runs.front(), runs[runs.size() / 2], *std::min_element(cpu.begin(), cpu.end())};
}

void report(const char* phase, Timing t, const std::string& extra = "") {
  std::printf("%-17s %9.1f ms (median %.1f, cpu %.1f)  rss %6.1f MB  peak %6.1f MB%s%s\n", phase,
              t.min_ms, t.median_ms, t.cpu_ms, rss_mb(), peak_rss_mb(), extra.empty() ? "" : "  ",
              extra.c_str());
  std::printf(
      "SCALE phase=%s ms=%.2f median_ms=%.2f cpu_ms=%.2f rss_mb=%.1f peak_rss_mb=%.1f%s%s\n", phase,
      t.min_ms, t.median_ms, t.cpu_ms, rss_mb(), peak_rss_mb(), extra.empty() ? "" : " ",
      extra.c_str());
  std::fflush(stdout);
}

bool write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  return static_cast<bool>(out);
}

// A file of `files` whose content contains every one of `needles`; its index or -1.
int find_file(const std::vector<std::string>& contents,
              std::initializer_list<const char*> needles) {
  for (size_t i = 0; i < contents.size(); ++i) {
    bool all = true;
    for (const char* n : needles)
      all = all && contents[i].find(n) != std::string::npos;
    if (all) return static_cast<int>(i);
  }
  return -1;
}

// Receives yaml-cpp's parser events and does nothing with them.
class NullHandler : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// What the pipeline's translate and publish callbacks saw during one sync.
struct PipelineProbe {
  double translate_ms = 0, publish_ms = 0;
  double translate_cpu_ms = 0, publish_cpu_ms = 0;  // this process's CPU time (one thread)
  int translations = 0;
  size_t virtual_services = 0, routes = 0;
  size_t hosts_compiled = 0, hosts_reused = 0;    // by build_runtime
  std::shared_ptr<const proxy::Runtime> runtime;  // the last one published, kept like a worker
  void reset() {
    auto keep = std::move(runtime);
    *this = PipelineProbe{};
    runtime = std::move(keep);
  }
  void add(const PipelineProbe& o) {
    translate_ms += o.translate_ms;
    publish_ms += o.publish_ms;
    translate_cpu_ms += o.translate_cpu_ms;
    publish_cpu_ms += o.publish_cpu_ms;
    translations += o.translations;
    virtual_services += o.virtual_services;
    routes += o.routes;
    hosts_compiled += o.hosts_compiled;
    hosts_reused += o.hosts_reused;
  }
};

struct Counts {
  size_t resources = 0, virtual_services = 0, upstreams = 0, gateways = 0, api_routes = 0;
  size_t errors = 0, warnings = 0;
};

Counts count(const std::vector<api::DecodedFile>& decoded) {
  Counts c;
  for (const auto& f : decoded) {
    c.errors += f.errors.size();
    for (const auto& r : f.resources) {
      ++c.resources;
      switch (r.kind) {
        case api::Kind::kGateway:
          ++c.gateways;
          break;
        case api::Kind::kUpstream:
          ++c.upstreams;
          break;
        case api::Kind::kVirtualService:
          ++c.virtual_services;
          c.api_routes += r.virtual_service().routes.size();
          break;
        default:
          break;
      }
      for (const auto& d : r.diagnostics)
        (d.severity == api::Diagnostic::Severity::kError ? c.errors : c.warnings) += 1;
    }
  }
  return c;
}

size_t snapshot_routes(const snapshot::ProxyConfig& config) {
  size_t n = 0;
  for (const auto& l : config.listeners)
    for (const auto& v : l.virtual_hosts)
      n += v->routes.size();
  return n;
}

int usage() {
  std::fprintf(stderr, "usage: control_scale_bench DIR [--repeat N] [--workers N] [--sync-only]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  int repeat = 3;
  int workers = 1;
  bool sync_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--sync-only") {
      sync_only = true;
    } else if ((a == "--repeat" || a == "--workers") && i + 1 < argc) {
      int v = std::atoi(argv[++i]);
      if (v < 1 || v > 64) return usage();
      (a == "--repeat" ? repeat : workers) = v;
    } else if (!a.empty() && a[0] != '-' && dir.empty()) {
      dir = a;
    } else {
      return usage();
    }
  }
  if (dir.empty()) return usage();
  std::printf("# control_scale_bench %s (repeat %d: min and median of the runs)\n", dir.c_str(),
              repeat);
  report("start", {});

  // ---- list + read ----
  control::ConfigFileList list;
  std::vector<std::string> contents;
  size_t bytes = 0;
  Timing t = time_it(repeat, [&] {
    list = control::list_config_files(dir);
    contents.clear();
    bytes = 0;
    for (const auto& name : list.files) {
      std::string error;
      auto c = control::read_config_file(list.base / name, api::kMaxFileBytes, &error);
      if (!c) {
        std::fprintf(stderr, "control_scale_bench: %s: %s\n", name.c_str(), error.c_str());
        std::exit(1);
      }
      bytes += c->size();
      contents.push_back(std::move(*c));
    }
  });
  if (!list.error.empty()) {
    std::fprintf(stderr, "control_scale_bench: %s\n", list.error.c_str());
    return 1;
  }
  report("read", t,
         "files=" + std::to_string(list.files.size()) + " bytes=" + std::to_string(bytes));

  proxy::stats::Registry registry(static_cast<unsigned>(workers));
  if (!sync_only) {  // --sync-only: straight to the pipeline's phases
    // ---- decode (with validate) ----
    std::vector<api::DecodedFile> decoded;
    t = time_it(repeat, [&] {
      decoded.clear();
      decoded.reserve(contents.size());
      for (size_t i = 0; i < contents.size(); ++i)
        decoded.push_back(api::decode_file(list.files[i], contents[i]));
    });
    Counts c = count(decoded);
    report("decode", t,
           "resources=" + std::to_string(c.resources) + " virtual_services=" +
               std::to_string(c.virtual_services) + " routes=" + std::to_string(c.api_routes) +
               " upstreams=" + std::to_string(c.upstreams) +
               " gateways=" + std::to_string(c.gateways) + " errors=" + std::to_string(c.errors) +
               " warnings=" + std::to_string(c.warnings));
    if (c.errors != 0) {
      // Print a few: a generated configuration is meant to be valid.
      int shown = 0;
      for (const auto& f : decoded) {
        for (const auto& e : f.errors)
          if (shown++ < 5) std::fprintf(stderr, "  %s\n", e.to_string().c_str());
        for (const auto& r : f.resources)
          for (const auto& d : r.diagnostics)
            if (d.severity == api::Diagnostic::Severity::kError && shown++ < 5)
              std::fprintf(stderr, "  %s\n", d.to_string().c_str());
      }
    }

    // ---- yaml-cpp alone, to split `decode`: decode_file scans each file twice (an event-counting
    // pass that guards the limits, then YAML::LoadAll) before it decodes the nodes ----
    t = time_it(repeat, [&] {
      for (const auto& text : contents) {
        std::istringstream in(text);
        YAML::Parser parser(in);
        NullHandler handler;
        while (parser.HandleNextDocument(handler)) {
        }
      }
    });
    report("yaml_events", t, "(included in decode: the first pass)");
    t = time_it(repeat, [&] {
      for (const auto& text : contents) {
        std::vector<YAML::Node> docs = YAML::LoadAll(text);
        if (docs.empty()) std::abort();
      }
    });
    report("yaml_load", t, "(included in decode: YAML::LoadAll, nodes built and freed)");

    // ---- validate alone (on copies, so that the diagnostics of `decoded` stay as they are) ----
    {
      std::vector<api::Resource> copies;
      for (const auto& f : decoded)
        copies.insert(copies.end(), f.resources.begin(), f.resources.end());
      t = time_it(1, [&] {
        for (auto& r : copies)
          api::validate_resource(r);
      });
    }
    report("validate", t, "(included in decode)");

    // ---- copy, as assemble() does ----
    std::vector<api::Resource> unique;
    t = time_it(repeat, [&] {
      unique.clear();
      for (const auto& f : decoded)
        unique.insert(unique.end(), f.resources.begin(), f.resources.end());
    });
    report("copy", t);

    // ---- translate ----
    control::Translation translation;
    t = time_it(repeat, [&] {
      control::TranslateOptions options;
      options.base_dir = dir;
      translation = control::translate(unique, 1, 0, options);
    });
    size_t rejected = 0, warned = 0;
    for (const auto& s : translation.statuses) {
      rejected += s.state == control::State::kRejected;
      warned += s.state == control::State::kWarning;
    }
    report("translate", t,
           "listeners=" + std::to_string(translation.config->listeners.size()) +
               " snapshot_routes=" + std::to_string(snapshot_routes(*translation.config)) +
               " clusters=" + std::to_string(translation.config->clusters.size()) +
               " rejected=" + std::to_string(rejected) + " warning=" + std::to_string(warned));

    // ---- what `portico run` does after the build ----
    std::string json;
    t = time_it(repeat, [&] { json = snapshot::to_json(*translation.config, false); });
    report("config_json", t, "bytes=" + std::to_string(json.size()));
    json.clear();
    json.shrink_to_fit();
    t = time_it(repeat, [&] { json = control::resources_to_json(translation.statuses, {}); });
    report("status_json", t, "bytes=" + std::to_string(json.size()));
    json.clear();
    json.shrink_to_fit();
    std::shared_ptr<const proxy::Runtime> runtime;
    t = time_it(repeat, [&] {
      runtime.reset();
      runtime = proxy::build_runtime(translation.config, registry);
    });
    report("runtime", t);
    std::printf("SCALE phase=total_pipeline_peak peak_rss_mb=%.1f\n", peak_rss_mb());

    // The pipeline phases start from a clean slate (the figures above stay in the peak).
    runtime.reset();
    translation = {};
    unique.clear();
    unique.shrink_to_fit();
    decoded.clear();
    decoded.shrink_to_fit();
  }

  // ---- control::Pipeline fed by control::FileSource, as `portico run` uses it ----
  int vs_file = find_file(contents, {"kind: VirtualService", "body: \""});
  int up_file = find_file(contents, {"kind: Upstream", "port: "});
  std::string vs_path = vs_file < 0 ? "" : (list.base / list.files[vs_file]).string();
  std::string up_path = up_file < 0 ? "" : (list.base / list.files[up_file]).string();
  std::string vs_original = vs_file < 0 ? "" : contents[vs_file];
  std::string up_original = up_file < 0 ? "" : contents[up_file];
  contents.clear();
  contents.shrink_to_fit();

  // Publication builds the data plane's Runtime, as Server::apply does (without the sockets and
  // the workers' pickup), reusing the previous Runtime's compiled virtual hosts. Translation is
  // the incremental control::Translator `portico run` uses, wrapped to time it and to count the
  // VirtualServices and routes it translated (not reused).
  PipelineProbe probe;
  control::TranslateOptions translate_options;
  translate_options.base_dir = dir;
  control::Translator translator(translate_options);
  // The edits below are announced to the source as `portico run`'s file watcher does.
  auto file_source = std::make_unique<control::FileSource>(dir);
  control::FileSource* files = file_source.get();
  auto pipeline = std::make_unique<control::Pipeline>(
      std::move(file_source),
      [&](std::shared_ptr<const snapshot::ProxyConfig> config) {
        auto t0 = Clock::now();
        double c0 = cpu_ms();
        probe.runtime = proxy::build_runtime(
            std::move(config), registry, proxy::filters::builtin_registry(), probe.runtime.get());
        probe.publish_ms += ms_since(t0);
        probe.publish_cpu_ms += cpu_ms() - c0;
        probe.hosts_compiled += probe.runtime->virtual_hosts_compiled;
        probe.hosts_reused += probe.runtime->virtual_hosts_reused;
        return std::vector<control::ListenerFailure>{};
      },
      [&](const std::vector<control::ResourcePtr>& resources, uint64_t version, int64_t now_ms,
          bool allow_partial) {
        auto t0 = Clock::now();
        double c0 = cpu_ms();
        control::Translation out = translator.translate(resources, version, now_ms, allow_partial);
        probe.translate_ms += ms_since(t0);
        probe.translate_cpu_ms += cpu_ms() - c0;
        ++probe.translations;
        probe.virtual_services += out.translated.virtual_services;
        probe.routes += out.translated.routes;
        return out;
      });
  uint64_t seen = 0;
  auto sync = [&](const char* phase, int runs, const std::function<void(int)>& before_each) {
    std::vector<double> wall, cpu;
    PipelineProbe total;
    for (int i = 0; i < runs; ++i) {
      if (before_each) before_each(i);
      probe.reset();
      double c = cpu_ms();
      auto start = Clock::now();
      control::Pipeline::SyncResult r = pipeline->sync(false, static_cast<int64_t>(++seen));
      wall.push_back(ms_since(start));
      cpu.push_back(cpu_ms() - c);
      if (r.failed) std::printf("# %s: sync failed: %s\n", phase, pipeline->last_error().c_str());
      if (!pipeline->current().ok()) std::printf("# %s: the configuration is not ok\n", phase);
      total.add(probe);
    }
    std::sort(wall.begin(), wall.end());
    char e[512];
    std::snprintf(e, sizeof e,
                  "translate_ms=%.1f translate_cpu_ms=%.1f publish_ms=%.1f publish_cpu_ms=%.1f "
                  "translations=%d vs_translated=%zu "
                  "routes_translated=%zu hosts_compiled=%zu hosts_reused=%zu version=%llu "
                  "portico_control_routes_translated_total=%llu "
                  "portico_control_virtual_services_translated_total=%llu",
                  total.translate_ms / runs, total.translate_cpu_ms / runs, total.publish_ms / runs,
                  total.publish_cpu_ms / runs, total.translations / runs,
                  total.virtual_services / runs, total.routes / runs, total.hosts_compiled / runs,
                  total.hosts_reused / runs, static_cast<unsigned long long>(pipeline->version()),
                  static_cast<unsigned long long>(pipeline->metrics().routes_translated),
                  static_cast<unsigned long long>(pipeline->metrics().virtual_services_translated));
    report(phase, {wall.front(), wall[wall.size() / 2], *std::min_element(cpu.begin(), cpu.end())},
           e);
  };
  sync("sync_cold", 1, nullptr);
  sync("sync_unchanged", repeat, nullptr);

  int edits = 0;
  using Edit = std::function<std::string(const std::string&, int)>;
  auto sync_after = [&](const char* phase, const std::string& path, const std::string& original,
                        const Edit& edit) {
    if (path.empty()) {
      std::printf("# %s: no file to edit\n", phase);
      return;
    }
    sync(phase, repeat, [&](int) {
      if (!write_file(path, edit(original, ++edits))) {
        std::fprintf(stderr, "control_scale_bench: cannot write %s\n", path.c_str());
        std::exit(1);
      }
      files->note_changed(path);  // the watcher's event
    });
    write_file(path, original);
    files->note_changed(path);
    (void)pipeline->sync(false, static_cast<int64_t>(++seen));  // the restore, not measured
  };
  // One route: the first direct-response body of the file ("ok vs1" becomes "<n>-ok vs1").
  sync_after("sync_route", vs_path, vs_original, [](const std::string& text, int n) {
    std::string out = text;
    size_t at = out.find("body: \"") + 7;
    return out.insert(at, std::to_string(n) + "-");
  });
  // One endpoint: the first host port of the file moves to another port.
  sync_after("sync_endpoint", up_path, up_original, [](const std::string& text, int n) {
    size_t at = text.find("port: ") + 6;
    size_t end = text.find_first_not_of("0123456789", at);
    int port = std::atoi(text.substr(at, end - at).c_str());
    int moved = 1024 + (port + n) % 60000;
    return text.substr(0, at) + std::to_string(moved) + text.substr(end);
  });
  std::printf("# edited files restored: %s %s\n", vs_path.c_str(), up_path.c_str());
  std::printf("SCALE phase=end peak_rss_mb=%.1f\n", peak_rss_mb());
  return 0;
}
