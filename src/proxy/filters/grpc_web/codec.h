// The wire pieces of gRPC-Web (the protocol of grpc/grpc's doc/PROTOCOL-WEB.md) that the
// grpc_web filter needs, with no asio and no stream: content-type mapping, the streaming base64
// decoder of -text request bodies and encoder of -text response bodies (both carry a partial
// quantum across chunk boundaries), the message-frame boundary tracker, and the trailer frame.
// Plain values: one stream, one thread (a worker's); the fuzz target drives them directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace portico::proxy::filters::grpc_web {

// A request content-type the filter translates: application/grpc-web[+suffix] or
// application/grpc-web-text[+suffix] (parameters after ';' are ignored; case-insensitive).
struct WebContentType {
  bool text = false;
  std::string_view suffix;  // without the '+' ("proto"), empty when none; a view into the input
};
std::optional<WebContentType> parse_web_content_type(std::string_view content_type);

// application/grpc or application/grpc+suffix (what a gRPC server answers): the suffix, or
// nullopt when `content_type` is not gRPC.
std::optional<std::string_view> grpc_suffix(std::string_view content_type);

// "application/grpc" + ("+" suffix); the web forms for responses.
std::string grpc_content_type(std::string_view suffix);
std::string web_content_type(bool text, std::string_view suffix);

// Decodes standard base64 (RFC 4648 §4, padded) fed in pieces of any size. Every 4-character
// quantum is decoded on its own, so padding may end any quantum, not only the last one: gRPC-Web
// clients may encode each message separately and concatenate the results. Anything else (a
// character outside the alphabet, whitespace, '=' in the first two places of a quantum or before
// a non-'=', a partial quantum at the end) is an error, sticky until reset().
class Base64Decoder {
 public:
  // Appends what `in` completes to `out`. False on malformed input (nothing more is decoded).
  bool feed(std::string_view in, std::string& out);
  // True when the input so far ended on a quantum boundary (the body may end here).
  bool complete() const { return !failed_ && held_ == 0; }
  bool failed() const { return failed_; }
  void reset() {
    held_ = 0;
    failed_ = false;
  }

 private:
  bool quantum(const char* q, std::string& out);
  char hold_[4] = {};
  uint8_t held_ = 0;
  bool failed_ = false;
};

// Encodes bytes fed in pieces as one base64 text: up to two bytes wait for the next piece, so
// that quanta are never padded mid-stream, except by flush(), which pads what waits (used at a
// message boundary, so that a streamed message reaches the client whole, and at the end).
class Base64Encoder {
 public:
  void feed(std::string_view in, std::string& out);
  void flush(std::string& out);
  size_t pending() const { return held_; }

 private:
  unsigned char hold_[3] = {};
  uint8_t held_ = 0;  // 0..2 between calls
};

// Follows the length-prefixed frames (1 flag byte, 4 bytes big-endian length, payload) of a
// gRPC body fed in pieces: whether the bytes so far end exactly between two frames.
class FrameTracker {
 public:
  void feed(std::string_view in);
  bool at_boundary() const { return header_left_ == 5 && payload_left_ == 0; }

 private:
  uint8_t header_left_ = 5;
  uint32_t length_ = 0;
  uint64_t payload_left_ = 0;
};

// The trailer frame: flag 0x80, 4-byte big-endian length, then "name: value\r\n" lines with
// lower-case names.
class TrailerFrame {
 public:
  void add(std::string_view name, std::string_view value);
  // Appends the whole frame (header and lines) to `out`.
  void append_to(std::string& out) const;
  bool empty() const { return lines_.empty(); }

 private:
  std::string lines_;
};

inline constexpr uint8_t kTrailerFlag = 0x80;

}  // namespace portico::proxy::filters::grpc_web
