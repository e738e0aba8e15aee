#include "control/sources/file_watcher.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

namespace portico::control {

namespace {
constexpr uint32_t kMask = IN_CLOSE_WRITE | IN_MODIFY | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
                           IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB;
constexpr size_t kMaxPaths = 4096;
}  // namespace

Result<std::unique_ptr<FileWatcher>> FileWatcher::open(const std::filesystem::path& dir) {
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return Error::io(std::string("inotify_init1: ") + std::strerror(errno));
  std::unique_ptr<FileWatcher> w(new FileWatcher(fd));
  w->root_ = dir;
  w->watch_tree(dir);
  if (w->dirs_.empty())
    return Error::io("cannot watch " + dir.string() + ": " + std::strerror(errno));
  return w;
}

FileWatcher::~FileWatcher() {
  if (fd_ >= 0) ::close(fd_);
}

void FileWatcher::watch_tree(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  // Directories are watched through symlinks too (inotify follows them), as the listing reads
  // them. Hidden directories are not read, so not watched: a Kubernetes mount's "..data" swap is
  // seen in the directory that holds the "..data" link.
  std::set<fs::path> seen;
  std::error_code ec;
  auto add = [&](const fs::path& p) {
    fs::path real = fs::canonical(p, ec);
    if (ec || !seen.insert(real).second) return false;  // a symlink loop, or watched already
    int wd = inotify_add_watch(fd_, p.c_str(), kMask);
    if (wd >= 0) dirs_[wd] = p;
    return true;
  };
  if (!add(dir)) return;
  fs::recursive_directory_iterator it(dir,
                                      fs::directory_options::follow_directory_symlink |
                                          fs::directory_options::skip_permission_denied,
                                      ec);
  size_t visited = 0;
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (++visited > 100000) break;
    std::error_code dec;
    if (!it->is_directory(dec)) continue;
    std::string name = it->path().filename().string();
    if (!name.empty() && name[0] == '.') {
      it.disable_recursion_pending();
      continue;
    }
    if (it.depth() > 32 || !add(it->path())) it.disable_recursion_pending();
  }
}

void FileWatcher::watch_dirs(const std::vector<std::filesystem::path>& dirs) {
  for (const auto& dir : dirs) {
    int wd = inotify_add_watch(fd_, dir.c_str(), kMask);
    if (wd >= 0) dirs_[wd] = dir;
  }
}

bool FileWatcher::drain() {
  alignas(inotify_event) char buf[16384];
  bool changed = false;
  bool rewatch = false;  // the tree may hold directories not watched yet
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
        overflowed_ = true;
        relist_ = true;
        rewatch = true;
        continue;
      }
      std::string name = ev->len ? std::string(ev->name) : std::string();
      // Editors' swap and backup files do not hold configuration; Kubernetes' "..data" link does
      // (its atomic swap is how a ConfigMap or Secret mount changes).
      bool k8s_swap = name == "..data";
      if (!k8s_swap && !name.empty() && (name[0] == '.' || name.back() == '~')) continue;
      changed = true;
      auto dir = dirs_.find(ev->wd);
      if (dir == dirs_.end()) {
        relist_ = true;  // a directory no longer known: only a listing tells what it held
        continue;
      }
      std::filesystem::path path = name.empty() ? dir->second : dir->second / name;
      if (name.empty() || k8s_swap || (ev->mask & IN_ISDIR)) {
        rewatch = true;  // a directory created, moved, removed, or a mount swapped
      } else if (ev->mask & (IN_CREATE | IN_MOVED_TO)) {
        // A new symlink may point to a directory (inotify does not say so).
        std::error_code ec;
        if (std::filesystem::is_directory(path, ec)) rewatch = true;
      }
      paths_.insert(std::move(path));
      if (paths_.size() > kMaxPaths) {  // nobody takes them, or a storm: list instead
        paths_.clear();
        relist_ = true;
      }
    }
  }
  // New directories, directories behind new symlinks, symlinks that now point elsewhere: watch
  // whatever the tree holds now (already watched directories keep their watch). Only after a
  // directory event: at 10,000 files, walking the tree on every file's change was most of it.
  if (rewatch) watch_tree(root_);
  return changed;
}

}  // namespace portico::control
