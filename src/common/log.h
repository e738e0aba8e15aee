// Minimal leveled logger to stderr. Any thread (each line is written with one write(2) call).
// Nothing on the request path logs at info level; per-request events are metrics.
#pragma once

#include <cstdio>
#include <string_view>

namespace portico::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

void set_level(Level level);
Level level();
bool parse_level(std::string_view text, Level* out);

// printf-style; the line is prefixed with a UTC timestamp and the level, and ends with a newline.
void write(Level level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace portico::log

#define PORTICO_LOG(lvl, ...)                                         \
  do {                                                                \
    if (::portico::log::Level::lvl >= ::portico::log::level())        \
      ::portico::log::write(::portico::log::Level::lvl, __VA_ARGS__); \
  } while (0)
#define LOG_DEBUG(...) PORTICO_LOG(kDebug, __VA_ARGS__)
#define LOG_INFO(...) PORTICO_LOG(kInfo, __VA_ARGS__)
#define LOG_WARN(...) PORTICO_LOG(kWarn, __VA_ARGS__)
#define LOG_ERROR(...) PORTICO_LOG(kError, __VA_ARGS__)
