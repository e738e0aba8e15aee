// Compiled RE2 patterns shared by everyone in the process who asks for the same pattern with the
// same options while one of them still holds it. The snapshot carries patterns only and the data
// plane compiles them (router::RouteRegexes); in `portico run` the control plane has compiled the
// same patterns to validate them, and without sharing every regex would be held twice (tens of MB
// at 100,000 routes). Thread-safe; RE2 objects are immutable and safe to match from any thread.
#pragma once

#include <re2/re2.h>

#include <memory>
#include <string>

namespace portico::common {

// The compiled pattern (check ok(): a pattern that does not compile is returned too, with its
// error). Errors are never logged by RE2.
std::shared_ptr<const re2::RE2> shared_regex(const std::string& pattern, bool case_sensitive);

// Patterns currently held by someone (tests).
size_t shared_regex_count();

}  // namespace portico::common
