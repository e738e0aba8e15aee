#include "proxy/filters/grpc_web/codec.h"

#include <algorithm>

namespace portico::proxy::filters::grpc_web {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// 0..63, or -1 outside the alphabet ('=' included).
constexpr int8_t value_of(char c) {
  if (c >= 'A' && c <= 'Z') return static_cast<int8_t>(c - 'A');
  if (c >= 'a' && c <= 'z') return static_cast<int8_t>(c - 'a' + 26);
  if (c >= '0' && c <= '9') return static_cast<int8_t>(c - '0' + 52);
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (lower(s[i]) != prefix[i]) return false;
  }
  return true;
}

// The media type without parameters and surrounding whitespace.
std::string_view media_type(std::string_view ct) {
  if (size_t semi = ct.find(';'); semi != std::string_view::npos) ct = ct.substr(0, semi);
  while (!ct.empty() && (ct.front() == ' ' || ct.front() == '\t'))
    ct.remove_prefix(1);
  while (!ct.empty() && (ct.back() == ' ' || ct.back() == '\t'))
    ct.remove_suffix(1);
  return ct;
}

// After a matched prefix: "" or "+suffix" (a non-empty token). nullopt otherwise.
std::optional<std::string_view> suffix_after(std::string_view rest) {
  if (rest.empty()) return std::string_view();
  if (rest.front() != '+' || rest.size() == 1) return std::nullopt;
  rest.remove_prefix(1);
  for (char c : rest) {
    if (c <= ' ' || c >= 127 || c == '/' || c == '+') return std::nullopt;
  }
  return rest;
}

}  // namespace

std::optional<WebContentType> parse_web_content_type(std::string_view content_type) {
  std::string_view mt = media_type(content_type);
  constexpr std::string_view kWeb = "application/grpc-web";
  if (!iequals_prefix(mt, kWeb)) return std::nullopt;
  std::string_view rest = mt.substr(kWeb.size());
  WebContentType out;
  constexpr std::string_view kText = "-text";
  if (iequals_prefix(rest, kText)) {
    out.text = true;
    rest.remove_prefix(kText.size());
  }
  auto s = suffix_after(rest);
  if (!s) return std::nullopt;
  out.suffix = *s;
  return out;
}

std::optional<std::string_view> grpc_suffix(std::string_view content_type) {
  std::string_view mt = media_type(content_type);
  constexpr std::string_view kGrpc = "application/grpc";
  if (!iequals_prefix(mt, kGrpc)) return std::nullopt;
  return suffix_after(mt.substr(kGrpc.size()));
}

std::string grpc_content_type(std::string_view suffix) {
  std::string out = "application/grpc";
  if (!suffix.empty()) {
    out.push_back('+');
    out.append(suffix);
  }
  return out;
}

std::string web_content_type(bool text, std::string_view suffix) {
  std::string out = text ? "application/grpc-web-text" : "application/grpc-web";
  if (!suffix.empty()) {
    out.push_back('+');
    out.append(suffix);
  }
  return out;
}

// ---- Base64Decoder ----

bool Base64Decoder::quantum(const char* q, std::string& out) {
  const int8_t a = value_of(q[0]);
  const int8_t b = value_of(q[1]);
  if (a < 0 || b < 0) return false;
  const bool pad3 = q[2] == '=';
  const bool pad4 = q[3] == '=';
  if (pad3 && !pad4) return false;
  const int8_t c = pad3 ? 0 : value_of(q[2]);
  const int8_t d = pad4 ? 0 : value_of(q[3]);
  if (c < 0 || d < 0) return false;
  const uint32_t v = static_cast<uint32_t>(a) << 18 | static_cast<uint32_t>(b) << 12 |
                     static_cast<uint32_t>(c) << 6 | static_cast<uint32_t>(d);
  out.push_back(static_cast<char>(v >> 16));
  if (!pad3) out.push_back(static_cast<char>((v >> 8) & 255));
  if (!pad4) out.push_back(static_cast<char>(v & 255));
  return true;
}

bool Base64Decoder::feed(std::string_view in, std::string& out) {
  if (failed_) return false;
  size_t i = 0;
  // Complete a quantum started by an earlier piece.
  while (held_ > 0 && i < in.size()) {
    hold_[held_++] = in[i++];
    if (held_ == 4) {
      held_ = 0;
      if (!quantum(hold_, out)) {
        failed_ = true;
        return false;
      }
    }
  }
  out.reserve(out.size() + (in.size() - i) / 4 * 3);
  for (; i + 4 <= in.size(); i += 4) {
    if (!quantum(in.data() + i, out)) {
      failed_ = true;
      return false;
    }
  }
  for (; i < in.size(); ++i)
    hold_[held_++] = in[i];
  return true;
}

// ---- Base64Encoder ----

namespace {

void encode_group(uint32_t v, std::string& out) {
  out.push_back(kAlphabet[v >> 18]);
  out.push_back(kAlphabet[(v >> 12) & 63]);
  out.push_back(kAlphabet[(v >> 6) & 63]);
  out.push_back(kAlphabet[v & 63]);
}

}  // namespace

void Base64Encoder::feed(std::string_view in, std::string& out) {
  size_t i = 0;
  if (held_ > 0) {
    while (held_ < 3 && i < in.size())
      hold_[held_++] = static_cast<unsigned char>(in[i++]);
    if (held_ < 3) return;
    encode_group(
        static_cast<uint32_t>(hold_[0]) << 16 | static_cast<uint32_t>(hold_[1]) << 8 | hold_[2],
        out);
    held_ = 0;
  }
  out.reserve(out.size() + (in.size() - i) / 3 * 4);
  for (; i + 3 <= in.size(); i += 3) {
    encode_group(static_cast<uint32_t>(static_cast<unsigned char>(in[i])) << 16 |
                     static_cast<uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8 |
                     static_cast<unsigned char>(in[i + 2]),
                 out);
  }
  for (; i < in.size(); ++i)
    hold_[held_++] = static_cast<unsigned char>(in[i]);
}

void Base64Encoder::flush(std::string& out) {
  if (held_ == 0) return;
  uint32_t v = static_cast<uint32_t>(hold_[0]) << 16;
  if (held_ == 2) v |= static_cast<uint32_t>(hold_[1]) << 8;
  out.push_back(kAlphabet[v >> 18]);
  out.push_back(kAlphabet[(v >> 12) & 63]);
  out.push_back(held_ == 2 ? kAlphabet[(v >> 6) & 63] : '=');
  out.push_back('=');
  held_ = 0;
}

// ---- FrameTracker ----

void FrameTracker::feed(std::string_view in) {
  size_t i = 0;
  while (i < in.size()) {
    if (payload_left_ > 0) {
      const size_t take = static_cast<size_t>(
          std::min<uint64_t>(payload_left_, static_cast<uint64_t>(in.size() - i)));
      payload_left_ -= take;
      i += take;
      continue;
    }
    // A header byte: the flag first (ignored), then the length, big-endian.
    if (header_left_ < 5) length_ = length_ << 8 | static_cast<unsigned char>(in[i]);
    ++i;
    if (--header_left_ == 0) {
      payload_left_ = length_;
      length_ = 0;
      header_left_ = 5;
    }
  }
}

// ---- TrailerFrame ----

void TrailerFrame::add(std::string_view name, std::string_view value) {
  for (char c : name)
    lines_.push_back(lower(c));
  lines_.append(": ");
  lines_.append(value);
  lines_.append("\r\n");
}

void TrailerFrame::append_to(std::string& out) const {
  const uint32_t n = static_cast<uint32_t>(lines_.size());
  out.push_back(static_cast<char>(kTrailerFlag));
  out.push_back(static_cast<char>(n >> 24));
  out.push_back(static_cast<char>((n >> 16) & 255));
  out.push_back(static_cast<char>((n >> 8) & 255));
  out.push_back(static_cast<char>(n & 255));
  out.append(lines_);
}

}  // namespace portico::proxy::filters::grpc_web
