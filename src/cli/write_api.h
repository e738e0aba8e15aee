// The write half of `portico run`'s admin API and `portico server`'s REST API: POST /v1/apply (one
// or more YAML or JSON documents, `---` separated) and DELETE /v1/resources/<Kind>/<ns>/<name>,
// into the store the pipeline writes to (control::Pipeline::write_target). Every document of an
// apply is decoded and validated first, with the decoder the sources use: one error anywhere and
// nothing is written (422, every diagnostic with its path). Control-plane thread (the admin
// handlers run there).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/diagnostic.h"
#include "api/resources.h"
#include "control/pipeline.h"
#include "proxy/admin/admin.h"

namespace portico::cli {

struct WriteAccess {
  // When set, writes need "Authorization: Bearer <token>" (401 otherwise).
  std::string token;
  // When set, writes are refused (403) with this reason.
  std::string refused;
};

// The answer to a write request, or nullopt when `request` is not one (the caller serves it).
std::optional<proxy::admin::Response> serve_write(control::Pipeline& pipeline,
                                                  const proxy::admin::Request& request,
                                                  const WriteAccess& access);

// portico_api_writes_total{result=created|configured|unchanged|deleted|not_found|conflict|
// unsupported|failed} (one per resource written or not) and portico_api_write_requests_total{
// result=refused|unauthorized} (requests refused whole: a document with an error; no or a wrong
// token, or writes not allowed), in Prometheus text format. The counts of this process.
std::string write_stats();

// An apply body split into its documents: each resource with the text of its own document (which
// decodes alone to the same resource), or every diagnostic that refuses the request.
struct ApplyDocuments {
  std::vector<api::Resource> resources;
  std::vector<std::string> texts;  // resources[i]'s document
  std::vector<api::Diagnostic> errors;
};
ApplyDocuments split_apply_body(std::string_view body);

}  // namespace portico::cli
