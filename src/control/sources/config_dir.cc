#include "control/sources/config_dir.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

namespace portico::control {

namespace fs = std::filesystem;

namespace {

bool is_config_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

bool is_hidden(const fs::path& p) {
  std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

}  // namespace

ConfigFileList list_config_files(const fs::path& dir) {
  ConfigFileList out;
  out.base = dir;
  std::error_code ec;
  if (fs::is_regular_file(dir, ec)) {
    out.base = dir.parent_path();
    out.files.push_back(dir.filename().generic_string());
    return out;
  }
  if (!fs::is_directory(dir, ec)) {
    out.error = "cannot read configuration directory " + dir.string() + ": " +
                (ec ? ec.message() : "not a directory");
    return out;
  }
  fs::recursive_directory_iterator it(dir,
                                      fs::directory_options::follow_directory_symlink |
                                          fs::directory_options::skip_permission_denied,
                                      ec);
  if (ec) {
    out.error = "cannot read configuration directory " + dir.string() + ": " + ec.message();
    return out;
  }
  size_t visited = 0;
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (++visited > 100000 || it.depth() > 32) {  // symlink loops and runaway trees
      it.disable_recursion_pending();
      if (visited > 100000) break;
      continue;
    }
    const fs::path& p = it->path();
    if (is_hidden(p)) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    std::error_code fec;
    if (!it->is_regular_file(fec) || !is_config_extension(p)) continue;
    out.files.push_back(p.lexically_relative(dir).generic_string());
  }
  if (ec) out.error = "error while listing " + dir.string() + ": " + ec.message();
  std::sort(out.files.begin(), out.files.end());
  return out;
}

std::optional<std::string> read_config_file(const fs::path& path, size_t max_bytes,
                                            std::string* error) {
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  if (ec) {
    *error = "cannot read file: " + ec.message();
    return std::nullopt;
  }
  if (size > max_bytes) {
    *error = "file is larger than " + std::to_string(max_bytes / (1024 * 1024)) + " MiB (" +
             std::to_string(size) + " bytes)";
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = std::string("cannot open file: ") + std::strerror(errno);
    return std::nullopt;
  }
  std::string content;
  content.resize(static_cast<size_t>(size) + 1);  // +1 notices a file that grew meanwhile
  in.read(content.data(), static_cast<std::streamsize>(content.size()));
  if (in.bad()) {
    *error = "cannot read file";
    return std::nullopt;
  }
  content.resize(static_cast<size_t>(in.gcount()));
  if (content.size() > max_bytes) {
    *error = "file is larger than " + std::to_string(max_bytes / (1024 * 1024)) + " MiB";
    return std::nullopt;
  }
  return content;
}

}  // namespace portico::control
