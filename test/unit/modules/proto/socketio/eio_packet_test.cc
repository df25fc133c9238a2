// SPDX-License-Identifier: Apache-2.0
// Engine.IO v4 packets: the examples of the protocol document verbatim, every packet type in
// both transports, payload round trips both ways, malformed input with its reason, and the
// handshake/error strings of the reference server.
#include "modules/proto/socketio/eio_packet.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace imgate::mod::socketio {
namespace {

using namespace std::string_literals;

constexpr EioType kAllTypes[] = {EioType::kOpen,    EioType::kClose,   EioType::kPing,
                                 EioType::kPong,    EioType::kMessage, EioType::kUpgrade,
                                 EioType::kNoop};

void expectPacket(const EioPacket& p, EioType type, bool binary, const std::string& data) {
  EXPECT_EQ(p.type, type);
  EXPECT_EQ(p.binary, binary);
  EXPECT_EQ(p.data, data);
}

// ---- WebSocket frames ------------------------------------------------------------------------

TEST(SocketioEioFrame, TextFramesOfEveryType) {
  for (EioType type : kAllTypes) {
    const char digit = static_cast<char>('0' + static_cast<int>(type));
    for (const std::string data : {"", "probe", "hello \xE2\x82\xAC", "{\"a\":1}"}) {
      const std::string frame = std::string(1, digit) + data;
      auto p = parseEioText(frame);
      ASSERT_TRUE(p) << frame;
      expectPacket(*p, type, false, data);
      EXPECT_EQ(encodeEioFrame(*p), frame);
    }
  }
}

TEST(SocketioEioFrame, DocumentExamples) {
  auto hello = parseEioText("4hello");
  ASSERT_TRUE(hello);
  expectPacket(*hello, EioType::kMessage, false, "hello");
  auto probe = parseEioText("2probe");
  ASSERT_TRUE(probe);
  expectPacket(*probe, EioType::kPing, false, "probe");
  EXPECT_EQ(encodeEioFrame({EioType::kPong, false, "probe"}), "3probe");
  EXPECT_EQ(encodeEioFrame({EioType::kUpgrade, false, ""}), "5");
  EXPECT_EQ(encodeEioFrame({EioType::kMessage, false, R"(2["hello"])"}), R"(42["hello"])");
}

TEST(SocketioEioFrame, BinaryFrames) {
  const std::string bytes = "\x01\x02\x00\xff"s;
  EioPacket p = parseEioBinary(bytes);
  expectPacket(p, EioType::kMessage, true, bytes);
  EXPECT_EQ(encodeEioFrame(p), bytes);  // sent as is, no type byte in v4
  expectPacket(parseEioBinary(""), EioType::kMessage, true, "");
  // A text frame in the polling form is a binary message too (engine.io-parser decodePacket).
  auto b = parseEioText("bAQIDBA==");
  ASSERT_TRUE(b);
  expectPacket(*b, EioType::kMessage, true, "\x01\x02\x03\x04");
}

TEST(SocketioEioFrame, MalformedText) {
  struct Case {
    std::string frame;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"", "empty packet"},
      {"7", "unknown packet type"},
      {"9hello", "unknown packet type"},
      {"x", "unknown packet type"},
      {"B", "unknown packet type"},
      {"\x1e", "unknown packet type"},
      {"bA", "invalid base64"},
      {"bAQ=", "invalid base64"},
      {"b!!!!", "invalid base64"},
      {"bAQID BA==", "invalid base64"},
      {"bAQ-_", "invalid base64"},
  };
  for (const Case& c : cases) {
    auto p = parseEioText(c.frame);
    ASSERT_FALSE(p) << c.frame;
    EXPECT_EQ(p.error().code, Errc::kProtocolError);
    EXPECT_NE(p.error().message.find(c.reason), std::string::npos) << c.frame;
  }
}

// ---- Polling payloads ------------------------------------------------------------------------

TEST(SocketioEioPayload, DocumentExamples) {
  {
    auto r = decodeEioPayload("4hello\x1e" "2\x1e" "4world");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->size(), 3u);
    expectPacket((*r)[0], EioType::kMessage, false, "hello");
    expectPacket((*r)[1], EioType::kPing, false, "");
    expectPacket((*r)[2], EioType::kMessage, false, "world");
    EXPECT_EQ(encodeEioPayload(*r), "4hello\x1e" "2\x1e" "4world");
  }
  {
    auto r = decodeEioPayload("4hello\x1e" "bAQIDBA==");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->size(), 2u);
    expectPacket((*r)[1], EioType::kMessage, true, "\x01\x02\x03\x04");
    EXPECT_EQ(encodeEioPayload(*r), "4hello\x1e" "bAQIDBA==");
  }
  {
    // The v3→v4 note: "€" counted as one UTF-16 unit in v3; v4 just separates.
    auto r = decodeEioPayload("4hello\x1e" "4\xE2\x82\xAC\x1e" "bAQIDBA==");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->size(), 3u);
    expectPacket((*r)[0], EioType::kMessage, false, "hello");
    expectPacket((*r)[1], EioType::kMessage, false, "\xE2\x82\xAC");
    expectPacket((*r)[2], EioType::kMessage, true, "\x01\x02\x03\x04");
  }
  {
    const std::string body = R"(42["hello"])" "\x1e" R"(42["world"])";
    auto r = decodeEioPayload(body);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->size(), 2u);
    expectPacket((*r)[1], EioType::kMessage, false, R"(2["world"])");
    EXPECT_EQ(encodeEioPayload(*r), body);
  }
}

// Deterministic xorshift so the "random-ish" mixes are reproducible.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    s_ ^= s_ << 13;
    s_ ^= s_ >> 7;
    s_ ^= s_ << 17;
    return s_;
  }
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }

 private:
  uint64_t s_;
};

EioPacket randomPacket(Rng& rng) {
  EioPacket p;
  p.binary = rng.below(3) == 0;
  p.type = p.binary ? EioType::kMessage : kAllTypes[rng.below(7)];
  const size_t len = rng.below(4) == 0 ? rng.below(300) : rng.below(6);
  for (size_t i = 0; i < len; ++i) {
    char c = static_cast<char>(rng.below(256));
    if (!p.binary && c == '\x1e') {
      c = 'x';  // the one byte text data cannot carry
    }
    p.data.push_back(c);
  }
  return p;
}

// encode→decode gives the packets back and decode→encode gives the bytes back, for every
// type alone (text and binary) and for mixes of every size up to 40 packets.
TEST(SocketioEioPayload, RoundTrips) {
  std::vector<std::vector<EioPacket>> sets;
  for (EioType type : kAllTypes) {
    sets.push_back({EioPacket{type, false, ""}});
    sets.push_back({EioPacket{type, false, "data"}});
  }
  for (size_t n = 0; n < 6; ++n) {
    std::string bytes;
    for (size_t i = 0; i < n; ++i) {
      bytes.push_back(static_cast<char>(0xFD + i));
    }
    sets.push_back({EioPacket{EioType::kMessage, true, bytes}});  // every base64 tail length
  }
  Rng rng(0x5eed);
  for (int round = 0; round < 400; ++round) {
    std::vector<EioPacket> mix;
    const size_t n = 1 + rng.below(40);
    for (size_t i = 0; i < n; ++i) {
      mix.push_back(randomPacket(rng));
    }
    sets.push_back(std::move(mix));
  }
  for (const auto& packets : sets) {
    const std::string body = encodeEioPayload(packets);
    auto decoded = decodeEioPayload(body);
    ASSERT_TRUE(decoded) << decoded.error().message;
    ASSERT_EQ(decoded->size(), packets.size());
    for (size_t i = 0; i < packets.size(); ++i) {
      expectPacket((*decoded)[i], packets[i].type, packets[i].binary, packets[i].data);
    }
    EXPECT_EQ(encodeEioPayload(*decoded), body);
  }
}

TEST(SocketioEioPayload, NonCanonicalBase64IsAcceptedAndReencodedPadded) {
  auto r = decodeEioPayload("bAQIDBA");  // Node accepts missing padding too
  ASSERT_TRUE(r);
  expectPacket((*r)[0], EioType::kMessage, true, "\x01\x02\x03\x04");
  EXPECT_EQ(encodeEioPayload(*r), "bAQIDBA==");
  auto empty = decodeEioPayload("b");
  ASSERT_TRUE(empty);
  expectPacket((*empty)[0], EioType::kMessage, true, "");
}

TEST(SocketioEioPayload, Malformed) {
  struct Case {
    std::string body;
    Errc code;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"", Errc::kProtocolError, "empty payload"},
      {"\x1e", Errc::kProtocolError, "empty packet"},
      {"4a\x1e", Errc::kProtocolError, "empty packet"},
      {"\x1e" "4a", Errc::kProtocolError, "empty packet"},
      {"4a\x1e\x1e" "4b", Errc::kProtocolError, "empty packet"},
      {"4a\x1e" "7b", Errc::kProtocolError, "unknown packet type"},
      {"hello", Errc::kProtocolError, "unknown packet type"},
      {"4a\x1e" "b!", Errc::kProtocolError, "invalid base64"},
      {"bAQIDBA=", Errc::kProtocolError, "invalid base64"},
      {"bAQIDBB==", Errc::kProtocolError, "invalid base64"},  // non-zero unused bits
  };
  for (const Case& c : cases) {
    auto r = decodeEioPayload(c.body);
    ASSERT_FALSE(r) << c.body;
    EXPECT_EQ(r.error().code, c.code) << c.body;
    EXPECT_NE(r.error().message.find(c.reason), std::string::npos)
        << c.body << " -> " << r.error().message;
  }
}

TEST(SocketioEioPayload, Limits) {
  EioLimits limits;
  limits.max_payload_bytes = 10;
  limits.max_packets = 3;
  EXPECT_TRUE(decodeEioPayload("4123456789", limits));
  auto big = decodeEioPayload("41234567890", limits);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, Errc::kMessageTooBig);
  EXPECT_TRUE(decodeEioPayload("2\x1e" "2\x1e" "2", limits));
  auto many = decodeEioPayload("2\x1e" "2\x1e" "2\x1e" "2", limits);
  ASSERT_FALSE(many);
  EXPECT_EQ(many.error().code, Errc::kMessageTooBig);
  EXPECT_NE(many.error().message.find("more than 3 packets"), std::string::npos);
  // Defaults: 1e6 bytes, 10000 packets.
  std::string body = "2";
  for (int i = 1; i < 10000; ++i) {
    body += "\x1e" "2";
  }
  EXPECT_TRUE(decodeEioPayload(body));
  EXPECT_FALSE(decodeEioPayload(body + "\x1e" "2"));
  EXPECT_TRUE(decodeEioPayload("4" + std::string(999999, 'a')));
  EXPECT_FALSE(decodeEioPayload("4" + std::string(1000000, 'a')));
}

// Every truncation of valid bodies either fails cleanly or decodes to packets that encode
// and decode again to themselves.
TEST(SocketioEioPayload, TruncationsAreSafe) {
  const std::string body = "4hello\x1e" "2probe\x1e" "bAQIDBA==\x1e" "6";
  for (size_t cut = 0; cut <= body.size(); ++cut) {
    auto r = decodeEioPayload(body.substr(0, cut));
    if (r) {
      auto again = decodeEioPayload(encodeEioPayload(*r));
      ASSERT_TRUE(again);
      EXPECT_EQ(encodeEioPayload(*again), encodeEioPayload(*r));
    }
  }
}

// ---- Handshake, session ids, errors ----------------------------------------------------------

TEST(SocketioEioHandshake, OpenPacketJsonMatchesReferenceServer) {
  const std::vector<std::string> ws = {"websocket"};
  EXPECT_EQ(openPacketJson("lv_VI97HAXpY6yYWAAAC", ws, 25000, 20000, 1000000),
            R"({"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,)"
            R"("pingTimeout":20000,"maxPayload":1000000})");
  EXPECT_EQ(openPacketJson("abc", {}, 1, 2, 3),
            R"({"sid":"abc","upgrades":[],"pingInterval":1,"pingTimeout":2,"maxPayload":3})");
  const std::vector<std::string> two = {"websocket", "webtransport"};
  EXPECT_EQ(openPacketJson("a\"b", two, 0, 0, 0),
            R"({"sid":"a\"b","upgrades":["websocket","webtransport"],"pingInterval":0,)"
            R"("pingTimeout":0,"maxPayload":0})");
  EXPECT_EQ(encodeEioFrame({EioType::kOpen, false, openPacketJson("s", ws, 25000, 5000, 1)}),
            R"(0{"sid":"s","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000,)"
            R"("maxPayload":1})");
}

TEST(SocketioEioHandshake, SessionIds) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto id = newSessionId();
    ASSERT_TRUE(id);
    ASSERT_EQ(id->size(), kSessionIdLength);
    EXPECT_TRUE(plausibleSessionId(*id)) << *id;
    EXPECT_TRUE(seen.insert(*id).second) << "duplicate " << *id;
  }
  // All 64 characters of the alphabet show up over 20000 random characters.
  std::set<char> chars;
  for (const std::string& id : seen) {
    chars.insert(id.begin(), id.end());
  }
  EXPECT_EQ(chars.size(), 64u);
  EXPECT_TRUE(chars.count('-') && chars.count('_'));
  EXPECT_FALSE(chars.count('+') || chars.count('/') || chars.count('='));
}

TEST(SocketioEioHandshake, PlausibleSessionId) {
  EXPECT_TRUE(plausibleSessionId("lv_VI97HAXpY6yYWAAAC"));
  EXPECT_TRUE(plausibleSessionId("-G5j-67EZFp-q59rADQM"));
  EXPECT_FALSE(plausibleSessionId(""));
  EXPECT_FALSE(plausibleSessionId("lv_VI97HAXpY6yYWAAA"));    // 19
  EXPECT_FALSE(plausibleSessionId("lv_VI97HAXpY6yYWAAACx"));  // 21
  EXPECT_FALSE(plausibleSessionId("lv_VI97HAXpY6yYWAA+C"));
  EXPECT_FALSE(plausibleSessionId("lv_VI97HAXpY6yYWAA/C"));
  EXPECT_FALSE(plausibleSessionId("lv_VI97HAXpY6yYWAA=C"));
  EXPECT_FALSE(plausibleSessionId("lv_VI97HAXpY6yYWAA%2"));
  EXPECT_FALSE(plausibleSessionId("lv_VI97HAXpY6yYWAA\0C"s));
  EXPECT_FALSE(plausibleSessionId("lv_VI97HAXpY6yYWAAA\xC3"));
}

TEST(SocketioEioErrors, TableOfReferenceServer) {
  struct Case {
    EioError error;
    int code;
    std::string message;
    int status;
  };
  const std::vector<Case> cases = {
      {EioError::kUnknownTransport, 0, "Transport unknown", 400},
      {EioError::kUnknownSid, 1, "Session ID unknown", 400},
      {EioError::kBadHandshakeMethod, 2, "Bad handshake method", 400},
      {EioError::kBadRequest, 3, "Bad request", 400},
      {EioError::kForbidden, 4, "Forbidden", 403},
      {EioError::kUnsupportedProtocolVersion, 5, "Unsupported protocol version", 400},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(static_cast<int>(c.error), c.code);
    EXPECT_EQ(eioErrorMessage(c.error), c.message);
    EXPECT_EQ(eioErrorHttpStatus(c.error), c.status);
    EXPECT_EQ(eioErrorBody(c.error),
              "{\"code\":" + std::to_string(c.code) + ",\"message\":\"" + c.message + "\"}");
  }
  EXPECT_EQ(eioErrorBody(EioError::kUnknownSid), R"({"code":1,"message":"Session ID unknown"})");
  EXPECT_EQ(eioErrorBody(EioError::kForbidden, "not \"you\""),
            R"({"code":4,"message":"not \"you\""})");
}

TEST(SocketioEioErrors, TypeNames) {
  EXPECT_EQ(eioTypeName(EioType::kOpen), "open");
  EXPECT_EQ(eioTypeName(EioType::kMessage), "message");
  EXPECT_EQ(eioTypeName(EioType::kNoop), "noop");
}

}  // namespace
}  // namespace imgate::mod::socketio
