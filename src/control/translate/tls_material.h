// Reading and checking TLS key material for the translator: PEM certificates, private keys, CA
// bundles and OCSP staples, inline or from files, checked with OpenSSL. Pure functions with no
// shared state (any thread; called on the control-plane thread). Messages never contain key
// material.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "api/resources.h"

namespace portico::control {

inline constexpr size_t kMaxMaterialFileBytes = 1024 * 1024;

// The path `file` names, relative to `dir` unless absolute.
std::filesystem::path material_path(const std::filesystem::path& dir, const std::string& file);

// The material's bytes: its inline value, or its file's content (relative to `dir`). nullopt with
// *error set when the file cannot be read, is empty or is larger than 1 MiB.
std::optional<std::string> load_material(const api::SecretMaterial& m,
                                         const std::filesystem::path& dir, std::string* error);

// Each returns an empty string when the text is good, else a message that reads well after
// "field: ".
// One or more PEM certificates (leaf first); no private key mixed in.
std::string check_cert_chain(const std::string& pem);
// One unencrypted PEM private key.
std::string check_private_key(const std::string& pem);
// The chain's first certificate belongs to the key.
std::string check_key_matches(const std::string& cert_pem, const std::string& key_pem);
// One or more PEM CA certificates.
std::string check_ca_bundle(const std::string& pem);

// An OCSP response: DER bytes (from a file), or base64 of them (inline, as Gloo's Secret carries
// bytes). Returns the DER, or nullopt with *error set when it does not parse.
std::optional<std::string> decode_ocsp_response(const std::string& value, bool base64,
                                                std::string* error);

}  // namespace portico::control
