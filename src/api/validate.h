// Checks within one resource that need more than one field (unreachable routes, duplicate domains,
// options that make no sense for an action). Called by decode_file after decoding. Pure; any
// thread.
#pragma once

#include "api/resources.h"

namespace portico::api {

// Appends errors and warnings to r.diagnostics.
void validate_resource(Resource& r);

// True when every request that `later` matches is also matched by `earlier` (so a route with
// `later` placed after `earlier` never sees traffic). Conservative: false when it cannot tell.
bool shadows(const Matcher& earlier, const Matcher& later);

}  // namespace portico::api
