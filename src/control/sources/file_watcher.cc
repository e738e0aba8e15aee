#include "control/sources/file_watcher.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace portico::control {

namespace {
constexpr uint32_t kMask = IN_CLOSE_WRITE | IN_MODIFY | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
                           IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB;
}

Result<std::unique_ptr<FileWatcher>> FileWatcher::open(const std::filesystem::path& dir) {
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return Error::io(std::string("inotify_init1: ") + std::strerror(errno));
  std::unique_ptr<FileWatcher> w(new FileWatcher(fd));
  w->watch_tree(dir);
  if (w->dirs_.empty())
    return Error::io("cannot watch " + dir.string() + ": " + std::strerror(errno));
  return w;
}

FileWatcher::~FileWatcher() {
  if (fd_ >= 0) ::close(fd_);
}

void FileWatcher::watch_tree(const std::filesystem::path& dir) {
  int wd = inotify_add_watch(fd_, dir.c_str(), kMask);
  if (wd >= 0) dirs_[wd] = dir;
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(
           dir, std::filesystem::directory_options::skip_permission_denied, ec)) {
    if (e.is_directory(ec)) {
      int sub = inotify_add_watch(fd_, e.path().c_str(), kMask);
      if (sub >= 0) dirs_[sub] = e.path();
    }
  }
}

bool FileWatcher::drain() {
  alignas(inotify_event) char buf[16384];
  bool changed = false;
  for (;;) {
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n <= 0) break;
    for (char* p = buf; p < buf + n;) {
      auto* ev = reinterpret_cast<inotify_event*>(p);
      p += sizeof(inotify_event) + ev->len;
      if (ev->mask & IN_IGNORED) {
        dirs_.erase(ev->wd);
        continue;
      }
      if (ev->mask & IN_Q_OVERFLOW) {
        changed = true;
        continue;
      }
      std::string name = ev->len ? std::string(ev->name) : std::string();
      // Editors' swap and backup files do not hold configuration.
      if (!name.empty() && (name[0] == '.' || name.back() == '~')) continue;
      if ((ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO))) {
        auto it = dirs_.find(ev->wd);
        if (it != dirs_.end()) watch_tree(it->second / name);
      }
      changed = true;
    }
  }
  return changed;
}

}  // namespace portico::control
