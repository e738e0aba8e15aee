// Helpers shared by the api and control unit tests: diagnostics as strings, decoding a file that
// holds exactly one resource. Test thread only (GoogleTest assertions).
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "api/decode.h"

namespace portico::api::test {

// Each diagnostic's to_string(), in order (for ElementsAre / IsEmpty).
inline std::vector<std::string> lines(const std::vector<Diagnostic>& diags) {
  std::vector<std::string> out;
  for (const auto& d : diags)
    out.push_back(d.to_string());
  return out;
}

// Decodes text as the file file_name and returns its only resource. Fails the test (and returns an
// empty Resource) when the file does not parse, has an error or holds other than one resource.
inline Resource decode_one(const std::string& file_name, const std::string& text) {
  auto f = decode_file(file_name, text);
  EXPECT_TRUE(f.parsed);
  EXPECT_THAT(lines(f.errors), ::testing::IsEmpty());
  if (f.resources.size() != 1) {
    ADD_FAILURE() << "expected one resource, got " << f.resources.size();
    return Resource{};
  }
  return f.resources[0];
}

}  // namespace portico::api::test
