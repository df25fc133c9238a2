// SPDX-License-Identifier: Apache-2.0
// JSON text helpers for the Socket.IO codec. Socket.IO peers are JavaScript programs that use
// JSON.stringify and JSON.parse, so these follow ECMAScript exactly where it matters for
// interoperability, with UTF-8 where JavaScript has UTF-16:
//  - appendJsonString() (modules/common/json_text.h, shared with the other protocol modules)
//    produces the bytes JSON.stringify(string) produces, UTF-8 encoded;
//  - parseJsonString() unescapes one string literal as JSON.parse does;
//  - scanJson() accepts exactly the texts JSON.parse accepts (plus a nesting limit and a UTF-8
//    check), without building a tree, and reports the few facts the codec needs.
// All functions are pure and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "imgate/sdk/status.h"
#include "modules/common/json_text.h"

namespace imgate::mod::socketio {

// Nesting limit for JSON payloads. JSON.parse has none (V8 stops at its stack size); 32 is far
// above what chat payloads use and keeps one packet's validation bounded and non-recursive.
inline constexpr uint32_t kDefaultJsonMaxDepth = 32;

// appendJsonString() into a new string.
std::string jsonString(std::string_view utf8);

// Decodes one JSON string literal: `json` must be exactly `"..."`, with no surrounding
// whitespace. Handles all JSON escapes, including \uXXXX surrogate pairs (to 4-byte UTF-8).
// A lone surrogate escape (\ud800 without a following \udc00-\udfff, or a lone \udc00) is valid
// JSON and legal in a JavaScript string but has no UTF-8 form; it becomes U+FFFD, which is
// what a JavaScript peer's TextEncoder/Buffer.from would send for it.
// Errors (Errc::kProtocolError): not a string literal, unterminated, bad escape, raw control
// character, invalid UTF-8, bytes after the closing quote.
[[nodiscard]] Result<std::string> parseJsonString(std::string_view json);

enum class JsonKind : uint8_t { kNull, kFalse, kTrue, kNumber, kString, kArray, kObject };

struct JsonScanOptions {
  // Deepest container nesting accepted; the top-level array or object is depth 1.
  uint32_t max_depth = kDefaultJsonMaxDepth;
  // Socket.IO binary packets: every object whose "_placeholder" member is `true` must have a
  // "num" member that is a number n with 0 <= n < attachments, the check socket.io-parser
  // makes when it puts the buffers back ("illegal attachments"). Off for other packets.
  bool check_placeholders = false;
  uint32_t attachments = 0;
};

// What scanJson() learned about a valid text. Offsets are byte offsets into the scanned text.
struct JsonShape {
  JsonKind root = JsonKind::kNull;
  // The rest is set only when `root` is kArray.
  size_t elements = 0;                   // number of top-level elements
  JsonKind first = JsonKind::kNull;      // kind of element 0 (elements > 0)
  size_t first_begin = 0;                // element 0 is text[first_begin, first_end)
  size_t first_end = 0;
  size_t second_begin = 0;               // start of element 1 (elements > 1)
  size_t close = 0;                      // offset of the root's closing ']'
};

// Validates `text` as one JSON value, with optional whitespace around it, by the grammar of
// ECMA-404 / JSON.parse: numbers of any magnitude (1e400 is Infinity in JavaScript, not an
// error) and lone surrogate escapes are accepted. Beyond JSON.parse it rejects nesting deeper
// than options.max_depth and invalid UTF-8 inside strings (a JavaScript peer would have
// replaced those bytes, so they cannot be forwarded as they are).
// Iterative: constant stack use, no allocation up to depth 32, then 4 bytes per level.
// Errors (Errc::kProtocolError) name the problem and the byte offset.
[[nodiscard]] Result<JsonShape> scanJson(std::string_view text,
                                         const JsonScanOptions& options = {});

}  // namespace imgate::mod::socketio
