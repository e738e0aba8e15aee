#include "proxy/access_log/access_log.h"

namespace portico::proxy::access_log {

ListenerLog::Compiled ListenerLog::compile(const std::vector<snapshot::AccessLog>& logs,
                                           Manager& manager) {
  Compiled out;
  if (logs.empty()) return out;
  auto log = std::make_shared<ListenerLog>();
  log->manager_ = &manager;
  for (const auto& l : logs) {
    auto formatter = l.json ? Formatter::json(l.json_fields) : Formatter::text(l.format);
    if (!formatter.ok()) {
      out.errors.push_back("access log " + l.path + ": " + formatter.error().message);
      continue;
    }
    auto sink = manager.sink(l.path);
    if (!sink.ok()) {
      out.errors.push_back(sink.error().message);
      continue;
    }
    log->logs_.push_back(One{std::move(sink.value()), std::move(formatter.value())});
  }
  if (!log->logs_.empty()) out.log = std::move(log);
  return out;
}

void ListenerLog::log(unsigned worker, const Entry& entry) const {
  thread_local std::string line;
  for (const One& one : logs_) {
    line.clear();
    one.formatter.render(entry, line);
    manager_->push(worker, *one.sink, line);
  }
  if (line.capacity() > Manager::kMaxLine * 2) std::string().swap(line);
}

}  // namespace portico::proxy::access_log
