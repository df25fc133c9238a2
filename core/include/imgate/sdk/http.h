// SPDX-License-Identifier: Apache-2.0
// HTTP/1.1 requests as the core's HTTP front hands them to the module mounted at a location.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/status.h"

namespace imgate {

struct HttpHeader {
  std::string name;  // lower case
  std::string value;
};

// A complete, parsed request (headers and the whole body, within the listener's limits).
struct HttpRequest {
  std::string method;  // as sent, e.g. "GET"
  std::string target;  // request-target as sent, e.g. "/v1/push?x=1"
  std::string path;    // target up to '?', percent-decoding left to the module
  std::string query;   // after '?', without it; empty when absent
  int version_minor = 1;  // HTTP/1.<minor>
  std::vector<HttpHeader> headers;
  std::string body;
  bool keep_alive = true;  // from the version and Connection header
  std::string peer;        // "127.0.0.1:53312"

  // First header with this name (case-insensitive), or nullopt.
  std::optional<std::string_view> header(std::string_view name) const;
  // Percent-decoded value of the first query parameter with this name, or nullopt.
  std::optional<std::string> queryParam(std::string_view name) const;
  // True when the comma-separated header `name` contains `token` (case-insensitive).
  bool headerHasToken(std::string_view name, std::string_view token) const;
};

struct HttpResponse {
  int status = 200;
  std::vector<HttpHeader> headers;  // Content-Length and Date are added by the core
  std::string body;

  static HttpResponse json(int status, std::string body) {
    return HttpResponse{status, {{"content-type", "application/json"}}, std::move(body)};
  }
};

// The HTTP status that answers an error category (handshake refusals, API errors).
inline int httpStatusFor(Errc code) noexcept {
  switch (code) {
    case Errc::kProtocolError:
    case Errc::kInvalidPayload:
    case Errc::kBadRequest: return 400;
    case Errc::kSlowConsumer: return 429;
    case Errc::kUnauthenticated: return 401;
    case Errc::kPermissionDenied: return 403;
    case Errc::kNotFound: return 404;
    case Errc::kTimeout: return 408;
    case Errc::kMessageTooBig: return 413;
    case Errc::kResourceExhausted: return 429;
    case Errc::kUnavailable:
    case Errc::kShutdown: return 503;
    default: return 500;
  }
}

// Standard reason phrase for a status code ("OK", "Not Found", ...).
std::string_view httpReason(int status) noexcept;

// Shared helpers, implemented inline so modules need no core symbols.
namespace http_detail {
inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}
inline int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}
}  // namespace http_detail

// Percent-decodes `in` ('+' becomes ' ' when `plus_is_space`). Invalid escapes are kept as is.
inline std::string percentDecode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%' && i + 2 < in.size()) {
      const int hi = http_detail::hexValue(in[i + 1]);
      const int lo = http_detail::hexValue(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

inline std::optional<std::string_view> HttpRequest::header(std::string_view name) const {
  for (const auto& h : headers) {
    if (http_detail::iequals(h.name, name)) return std::string_view(h.value);
  }
  return std::nullopt;
}

inline std::optional<std::string> HttpRequest::queryParam(std::string_view name) const {
  std::string_view q = query;
  while (!q.empty()) {
    const size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    const size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    if (percentDecode(key, true) == name) {
      return eq == std::string_view::npos ? std::string() : percentDecode(pair.substr(eq + 1), true);
    }
  }
  return std::nullopt;
}

inline bool HttpRequest::headerHasToken(std::string_view name, std::string_view token) const {
  for (const auto& h : headers) {
    if (!http_detail::iequals(h.name, name)) continue;
    std::string_view v = h.value;
    while (!v.empty()) {
      const size_t comma = v.find(',');
      if (http_detail::iequals(http_detail::trim(v.substr(0, comma)), token)) return true;
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  return false;
}

inline std::string_view httpReason(int status) noexcept {
  switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

}  // namespace imgate
