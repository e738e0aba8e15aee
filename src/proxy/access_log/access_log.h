// A listener's access logs, compiled once per configuration (control thread) and shared by the
// workers: each finished stream is rendered by its worker, once per log, into that worker's
// buffer of the process's writer (writer.h). Nothing here blocks or makes a system call.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "proxy/access_log/format.h"
#include "proxy/access_log/writer.h"
#include "snapshot/proxy_config.h"

namespace portico::proxy::access_log {

class ListenerLog {
 public:
  struct Compiled {
    std::shared_ptr<const ListenerLog> log;  // null when the listener has no log that works
    std::vector<std::string> errors;         // one per log that could not be set up
  };
  // Control thread. A log whose file cannot be opened is left out and reported; the others work.
  static Compiled compile(const std::vector<snapshot::AccessLog>& logs, Manager& manager);

  // Worker `worker`: one line per log.
  void log(unsigned worker, const Entry& entry) const;

 private:
  struct One {
    std::shared_ptr<const Sink> sink;
    Formatter formatter;
  };
  Manager* manager_ = nullptr;
  std::vector<One> logs_;
};

}  // namespace portico::proxy::access_log
