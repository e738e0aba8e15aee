// The "header_mutation" filter: adds, replaces and removes request and response headers. Config
// (JSON): {"request": {"add": [{"name": "x", "value": "v", "append": true}], "remove": ["y"]},
// "response": {...}}. Compiled on the control thread; filters run on one worker's stream.
#pragma once

#include <memory>
#include <string_view>

#include "proxy/filters/filter.h"

namespace portico::proxy::filters {

inline constexpr std::string_view kHeaderMutationName = "header_mutation";

Result<std::shared_ptr<const FilterFactory>> compile_header_mutation(std::string_view json);

// Applies mutations to a header map: removals first, then additions (append: false replaces).
void apply_mutations(const snapshot::HeaderMutations& m, http::HeaderMap& headers);

}  // namespace portico::proxy::filters
