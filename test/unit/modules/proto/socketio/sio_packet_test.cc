// SPDX-License-Identifier: Apache-2.0
// Socket.IO v5 packets: the examples of the protocol document and socket.io-parser's own test
// vectors (accepted and refused) verbatim, round trips over every type, the binary
// reassembler, and the event helpers the module maps messages with.
#include "modules/proto/socketio/sio_packet.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace imgate::mod::socketio {
namespace {

using namespace std::string_literals;

struct Expect {
  std::string text;
  SioType type;
  std::string nsp;
  std::optional<uint64_t> id;
  std::string data;
  uint32_t attachments;
};

void expectParsed(const Expect& e) {
  auto p = parseSioPacket(e.text);
  ASSERT_TRUE(p) << e.text << ": " << p.error().message;
  EXPECT_EQ(p->type, e.type) << e.text;
  EXPECT_EQ(p->nsp, e.nsp) << e.text;
  EXPECT_EQ(p->id, e.id) << e.text;
  EXPECT_EQ(p->data, e.data) << e.text;
  EXPECT_EQ(p->attachments, e.attachments) << e.text;
  EXPECT_TRUE(validateSioPacket(*p)) << e.text;
}

// Canonical texts: decode, check fields, encode back to the same bytes.
TEST(SocketioSioPacket, ProtocolDocumentExamples) {
  const std::string ph0 = R"({"_placeholder":true,"num":0})";
  const std::string ph1 = R"({"_placeholder":true,"num":1})";
  const std::vector<Expect> cases = {
      {"0", SioType::kConnect, "/", std::nullopt, "", 0},
      {R"(0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"})", SioType::kConnect, "/admin", std::nullopt,
       R"({"sid":"oSO0OpakMV_3jnilAAAA"})", 0},
      {R"(0/admin,{"token":"123"})", SioType::kConnect, "/admin", std::nullopt,
       R"({"token":"123"})", 0},
      {"0/admin,", SioType::kConnect, "/admin", std::nullopt, "", 0},
      {R"(0{"sid":"wZX3oN0bSVIhsaknAAAI"})", SioType::kConnect, "/", std::nullopt,
       R"({"sid":"wZX3oN0bSVIhsaknAAAI"})", 0},
      {R"(4{"message":"Not authorized"})", SioType::kConnectError, "/", std::nullopt,
       R"({"message":"Not authorized"})", 0},
      {R"(2["foo"])", SioType::kEvent, "/", std::nullopt, R"(["foo"])", 0},
      {R"(2["hello",1])", SioType::kEvent, "/", std::nullopt, R"(["hello",1])", 0},
      {R"(2["hey","Jude"])", SioType::kEvent, "/", std::nullopt, R"(["hey","Jude"])", 0},
      {R"(2/admin,["bar"])", SioType::kEvent, "/admin", std::nullopt, R"(["bar"])", 0},
      {R"(51-["baz",)" + ph0 + "]", SioType::kBinaryEvent, "/", std::nullopt,
       R"(["baz",)" + ph0 + "]", 1},
      {R"(51-["hello",)" + ph0 + "]", SioType::kBinaryEvent, "/", std::nullopt,
       R"(["hello",)" + ph0 + "]", 1},
      {R"(52-/admin,["baz",)" + ph0 + "," + ph1 + "]", SioType::kBinaryEvent, "/admin",
       std::nullopt, R"(["baz",)" + ph0 + "," + ph1 + "]", 2},
      {R"(212["foo"])", SioType::kEvent, "/", 12, R"(["foo"])", 0},
      {R"(3/admin,13["bar"])", SioType::kAck, "/admin", 13, R"(["bar"])", 0},
      {R"(312[])", SioType::kAck, "/", 12, "[]", 0},
      {R"(61-15["bar",)" + ph0 + "]", SioType::kBinaryAck, "/", 15, R"(["bar",)" + ph0 + "]", 1},
      {"1", SioType::kDisconnect, "/", std::nullopt, "", 0},
      {"1/admin,", SioType::kDisconnect, "/admin", std::nullopt, "", 0},
      // The sample session, Engine.IO "4" stripped.
      {R"(0/admin,{"sid":"-G5j-67EZFp-q59rADQM"})", SioType::kConnect, "/admin", std::nullopt,
       R"({"sid":"-G5j-67EZFp-q59rADQM"})", 0},
      {R"(2/admin,1["tellme"])", SioType::kEvent, "/admin", 1, R"(["tellme"])", 0},
      {"61-/admin,1[" + ph0 + "]", SioType::kBinaryAck, "/admin", 1, "[" + ph0 + "]", 1},
  };
  for (const Expect& e : cases) {
    expectParsed(e);
    auto p = parseSioPacket(e.text);
    ASSERT_TRUE(p);
    EXPECT_EQ(encodeSioPacket(*p), e.text);
  }
}

// socket.io-parser's test/parser.js and test/buffer.js packets that must decode.
TEST(SocketioSioPacket, ReferenceParserAccepts) {
  const std::vector<Expect> cases = {
      {R"(0/woot,{"token":"123"})", SioType::kConnect, "/woot", std::nullopt,
       R"({"token":"123"})", 0},
      {"1/woot,", SioType::kDisconnect, "/woot", std::nullopt, "", 0},
      {R"(2["a",1,{}])", SioType::kEvent, "/", std::nullopt, R"(["a",1,{}])", 0},
      {R"(2[1,"a",{}])", SioType::kEvent, "/", std::nullopt, R"([1,"a",{}])", 0},
      {R"(2/test,1["a",1,{}])", SioType::kEvent, "/test", 1, R"(["a",1,{}])", 0},
      {R"(3123["a",1,{}])", SioType::kAck, "/", 123, R"(["a",1,{}])", 0},
      {R"(4"Unauthorized")", SioType::kConnectError, "/", std::nullopt, R"("Unauthorized")", 0},
      {R"(4{"message":"Unauthorized"})", SioType::kConnectError, "/", std::nullopt,
       R"({"message":"Unauthorized"})", 0},
      {R"(51-/cool,23["a",{"_placeholder":true,"num":0}])", SioType::kBinaryEvent, "/cool", 23,
       R"(["a",{"_placeholder":true,"num":0}])", 1},
      {R"(51-/cool,23["a",{"b":["c",{"_placeholder":true,"num":0}]}])", SioType::kBinaryEvent,
       "/cool", 23, R"(["a",{"b":["c",{"_placeholder":true,"num":0}]}])", 1},
      {R"(61-/back,127["a",{"_placeholder":true,"num":0},{}])", SioType::kBinaryAck, "/back", 127,
       R"(["a",{"_placeholder":true,"num":0},{}])", 1},
      {R"(51-["hello"])", SioType::kBinaryEvent, "/", std::nullopt, R"(["hello"])", 1},
      {R"(2["b",{"a":"val"}])", SioType::kEvent, "/", std::nullopt, R"(["b",{"a":"val"}])", 0},
  };
  for (const Expect& e : cases) {
    expectParsed(e);
    EXPECT_EQ(encodeSioPacket(*parseSioPacket(e.text)), e.text);
  }
}

// Accepted like the reference, but encoded canonically.
TEST(SocketioSioPacket, NonCanonicalForms) {
  struct Case {
    std::string text;
    std::string canonical;
  };
  const std::vector<Case> cases = {
      {"0/admin", "0/admin,"},                      // namespace runs to the end
      {"1/admin", "1/admin,"},
      {R"(2/,["a"])", R"(2["a"])"},                 // explicit main namespace
      {R"(2007["a"])", R"(27["a"])"},               // leading zeros in the id
      {R"(501-["a",{"_placeholder":true,"num":0}])", R"(51-["a",{"_placeholder":true,"num":0}])"},
      {R"(2 ["a"] )", R"(2 ["a"] )"},               // JSON whitespace kept as sent
      {"0/a b,{}", "0/a b,{}"},
      {"0/\xE2\x82\xAC,", "0/\xE2\x82\xAC,"},
  };
  for (const Case& c : cases) {
    auto p = parseSioPacket(c.text);
    ASSERT_TRUE(p) << c.text << ": " << p.error().message;
    EXPECT_EQ(encodeSioPacket(*p), c.canonical) << c.text;
    auto again = parseSioPacket(encodeSioPacket(*p));
    ASSERT_TRUE(again);
    EXPECT_EQ(encodeSioPacket(*again), c.canonical);
  }
  auto p = parseSioPacket("0/admin");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->nsp, "/admin");
  EXPECT_TRUE(p->data.empty());
}

TEST(SocketioSioPacket, Malformed) {
  struct Case {
    std::string text;
    std::string reason;
  };
  const std::string ph = R"({"_placeholder":true,"num":0})";
  const std::vector<Case> cases = {
      // socket.io-parser test/parser.js "throw an error upon parsing error"
      {R"(442["some","data")", "invalid payload"},
      {R"(0/admin,"invalid")", "invalid payload"},
      {"0[]", "invalid payload"},
      {"1/admin,{}", "invalid payload"},
      {R"(2/admin,"invalid)", "invalid payload"},
      {"2/admin,{}", "invalid payload"},
      {R"(2[{"toString":"foo"}])", "invalid payload"},
      {R"(2[true,"foo"])", "invalid payload"},
      {R"(2[null,"bar"])", "invalid payload"},
      {R"(2["connect"])", "invalid payload: reserved event name \"connect\""},
      {R"(2["disconnect","123"])", "invalid payload: reserved event name"},
      {"5", "illegal attachments"},
      {"51", "illegal attachments"},
      {"50-", "illegal attachments"},
      {"5a-", "illegal attachments"},
      {"51.23-", "illegal attachments"},
      {"999", "unknown packet type"},
      // test/buffer.js
      {R"(51-["hello",{"_placeholder":true,"num":"splice"}])", "illegal attachments"},
      {R"(51-["hello",{"_placeholder":true,"num":1}])", "illegal attachments"},
      {R"(611-[)" + ph + "]", "too many attachments"},
      {R"(599999999999999999999999-["a"])", "too many attachments"},
      // the rest of the grammar
      {"", "empty packet"},
      {"7", "unknown packet type"},
      {"a", "unknown packet type"},
      {"-1", "unknown packet type"},
      {"5-[\"a\"]", "illegal attachments"},
      {"5 1-[\"a\"]", "illegal attachments"},
      {R"(2["connect_error"])", "reserved event name"},
      {R"(2["disconnecting"])", "reserved event name"},
      {R"(2["newListener"])", "reserved event name"},
      {R"(2["removeListener"])", "reserved event name"},
      {R"(2["\u0063onnect"])", "reserved event name \"connect\""},
      {"2", "EVENT without data"},
      {"212", "EVENT without data"},
      {"2/admin,", "EVENT without data"},
      {"3/admin,13", "ACK without data"},
      {"4", "CONNECT_ERROR without data"},
      {"51-", "BINARY_EVENT without data"},
      {"2[]", "not a non-empty array"},
      {R"(2{"a":1})", "not a non-empty array"},
      {R"(2"a")", "not a non-empty array"},
      {"3{}", "ack data is not an array"},
      {"63-\"x\"", "ack data is not an array"},
      {"4[]", "neither an object nor a string"},
      {"4null", "neither an object nor a string"},
      {"0null", "CONNECT data is not an object"},
      {"1[]", "DISCONNECT with data"},
      {R"(2["a",])", "invalid payload: bad json"},
      {R"(2['a'])", "invalid payload: bad json"},
      {R"(2["a"]x)", "invalid payload: bytes after json value"},
      {"2[\"\xC3\"]", "invalid payload: invalid utf-8"},
      {R"(2admin,["a"])", "invalid payload"},  // namespace without '/'
      {R"(29007199254740992["a"])", "ack id too large"},
      {R"(299999999999999999999999999["a"])", "ack id too large"},
      {"0/" + std::string(256, 'a') + ",", "namespace too long"},
      {"0/a\x1e" "b,", "invalid namespace"},
      {"0/a\nb,", "invalid namespace"},
      {"0/a\xC3,", "invalid namespace"},
      {"2[\"a\"," + std::string(32, '[') + std::string(32, ']') + "]", "nested deeper than 32"},
  };
  for (const Case& c : cases) {
    auto p = parseSioPacket(c.text);
    ASSERT_FALSE(p) << c.text;
    EXPECT_EQ(p.error().code, Errc::kProtocolError) << c.text;
    EXPECT_NE(p.error().message.find(c.reason), std::string::npos)
        << c.text << " -> " << p.error().message;
  }
}

TEST(SocketioSioPacket, Limits) {
  EXPECT_TRUE(parseSioPacket("0/" + std::string(255, 'a') + ","));
  EXPECT_TRUE(parseSioPacket(R"(29007199254740991["a"])"));
  auto max_id = parseSioPacket(R"(29007199254740991["a"])");
  EXPECT_EQ(max_id->id, kMaxAckId);
  EXPECT_TRUE(parseSioPacket("2[\"a\"," + std::string(31, '[') + std::string(31, ']') + "]"));

  SioLimits limits;
  limits.max_packet_bytes = 10;
  EXPECT_TRUE(parseSioPacket(R"(2["abcde"])", limits));
  auto big = parseSioPacket(R"(2["abcdef"])", limits);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, Errc::kMessageTooBig);

  limits = SioLimits{};
  limits.max_attachments = 2;  // socket.io-parser "throws an error when receiving too many"
  auto many = parseSioPacket(
      R"(53-["hello",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1},)"
      R"({"_placeholder":true,"num":2}])",
      limits);
  ASSERT_FALSE(many);
  EXPECT_EQ(many.error().message, "too many attachments");
  limits.max_depth = 2;
  EXPECT_TRUE(parseSioPacket(R"(2["a",{"b":1}])", limits));
  EXPECT_FALSE(parseSioPacket(R"(2["a",{"b":[]}])", limits));
  limits.max_namespace_bytes = 3;
  EXPECT_TRUE(parseSioPacket("0/ab,", limits));
  EXPECT_FALSE(parseSioPacket("0/abc,", limits));
}

// encode→parse→encode over every type, namespace, id and representative data.
TEST(SocketioSioPacket, RoundTripEveryType) {
  const std::vector<std::pair<SioType, std::vector<std::string>>> data = {
      {SioType::kConnect, {"", "{}", R"({"token":"123"})"}},
      {SioType::kDisconnect, {""}},
      {SioType::kEvent, {R"(["a"])", R"([1])", R"(["chat",{"text":"hi \"x\""},[1,2],null])"}},
      {SioType::kAck, {"[]", R"(["bar"])", R"([{"ok":true}])"}},
      {SioType::kConnectError, {R"("nope")", R"({"message":"Not authorized","data":{}})"}},
      {SioType::kBinaryEvent,
       {R"(["f",{"_placeholder":true,"num":0}])", R"(["f",{"_placeholder":true,"num":1}])"}},
      {SioType::kBinaryAck, {R"([{"_placeholder":true,"num":0}])", "[]"}},
  };
  const std::vector<std::string> nsps = {"/", "/admin", "/a/b-c_d.e~f", "/\xE2\x82\xAC"};
  const std::vector<std::optional<uint64_t>> ids = {std::nullopt, 0, 7, 13, 4294967296ULL,
                                                    kMaxAckId};
  int checked = 0;
  for (const auto& [type, payloads] : data) {
    for (const std::string& d : payloads) {
      for (const std::string& nsp : nsps) {
        for (const auto& id : ids) {
          SioPacket p;
          p.type = type;
          p.nsp = nsp;
          p.id = id;
          p.data = d;
          p.attachments = isBinaryType(type) ? 2 : 0;
          ASSERT_TRUE(validateSioPacket(p)) << encodeSioPacket(p);
          const std::string text = encodeSioPacket(p);
          auto back = parseSioPacket(text);
          ASSERT_TRUE(back) << text << ": " << back.error().message;
          EXPECT_EQ(back->type, p.type);
          EXPECT_EQ(back->nsp, p.nsp);
          EXPECT_EQ(back->id, p.id);
          EXPECT_EQ(back->data, p.data);
          EXPECT_EQ(back->attachments, p.attachments);
          EXPECT_EQ(encodeSioPacket(*back), text);
          ++checked;
        }
      }
    }
  }
  EXPECT_EQ(checked, 16 * 4 * 6);
}

TEST(SocketioSioPacket, ValidateRejectsUnencodablePackets) {
  auto invalid = [](SioPacket p, const std::string& reason) {
    auto st = validateSioPacket(p);
    ASSERT_FALSE(st) << reason;
    EXPECT_NE(st.error().message.find(reason), std::string::npos) << st.error().message;
  };
  invalid({SioType::kEvent, "/a,b", std::nullopt, R"(["hello"])", 0}, "invalid namespace");
  invalid({SioType::kEvent, "", std::nullopt, R"(["hello"])", 0}, "invalid namespace");
  invalid({SioType::kEvent, "admin", std::nullopt, R"(["hello"])", 0}, "invalid namespace");
  invalid({SioType::kEvent, "/", kMaxAckId + 1, R"(["hello"])", 0}, "ack id too large");
  invalid({SioType::kEvent, "/", std::nullopt, R"(["hello"])", 1}, "illegal attachments");
  invalid({SioType::kBinaryEvent, "/", std::nullopt, R"(["hello"])", 0}, "illegal attachments");
  invalid({SioType::kBinaryEvent, "/", std::nullopt, R"(["hello"])", 11}, "too many");
  invalid({SioType::kEvent, "/", std::nullopt, "", 0}, "without data");
  invalid({SioType::kEvent, "/", 3, "5", 0}, "not a non-empty array");
  invalid({SioType::kConnect, "/", std::nullopt, "[]", 0}, "not an object");
  invalid({SioType::kDisconnect, "/", std::nullopt, "{}", 0}, "with data");
  invalid({static_cast<SioType>(7), "/", std::nullopt, "", 0}, "unknown packet type");
}

// Every truncation and single-byte change of valid packets: never a crash, and whatever is
// accepted is a fixed point of encode∘parse.
TEST(SocketioSioPacket, TruncationsAndMutationsAreSafe) {
  const std::vector<std::string> seeds = {
      R"(52-/admin,7["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}])",
      R"(3/admin,13["bar",{"a":[1,2.5e3,"\u00e9"]}])",
      R"(0/admin,{"token":"123"})",
      R"(4"Not authorized")",
  };
  const std::string alphabet = "0123456789-,/[]{}\":\\u_ tfnae.\x1e\xC3";
  for (const std::string& seed : seeds) {
    auto check = [](const std::string& text) {
      auto p = parseSioPacket(text);
      if (!p) {
        return;
      }
      ASSERT_TRUE(validateSioPacket(*p)) << text;
      const std::string canonical = encodeSioPacket(*p);
      auto again = parseSioPacket(canonical);
      ASSERT_TRUE(again) << text;
      EXPECT_EQ(encodeSioPacket(*again), canonical) << text;
    };
    for (size_t cut = 0; cut <= seed.size(); ++cut) {
      check(seed.substr(0, cut));
    }
    for (size_t i = 0; i < seed.size(); ++i) {
      for (char c : alphabet) {
        std::string m = seed;
        m[i] = c;
        check(m);
      }
    }
  }
}

// ---- SioBinaryAssembler ----------------------------------------------------------------------

TEST(SocketioSioAssembler, TextPacketsPassThrough) {
  SioBinaryAssembler a;
  auto r = a.onText(R"(2["hello",1])");
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->packet.type, SioType::kEvent);
  EXPECT_TRUE((*r)->buffers.empty());
  EXPECT_FALSE(a.awaiting());
}

TEST(SocketioSioAssembler, CollectsAttachmentsInOrder) {
  SioBinaryAssembler a;
  auto r = a.onText(
      R"(52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}])");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->has_value());
  EXPECT_TRUE(a.awaiting());
  r = a.onBinary("\x01\x02");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->has_value());
  EXPECT_EQ(a.bufferedBytes(), 2u);
  r = a.onBinary("\x03\x04");
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->packet.type, SioType::kBinaryEvent);
  EXPECT_EQ((*r)->packet.nsp, "/admin");
  EXPECT_EQ((*r)->buffers, (std::vector<std::string>{"\x01\x02", "\x03\x04"}));
  EXPECT_FALSE(a.awaiting());
  EXPECT_EQ(a.bufferedBytes(), 0u);
  // The next packet starts clean; empty and NUL-holding buffers are buffers like any other.
  r = a.onText(R"(61-15["bar",{"_placeholder":true,"num":0}])");
  ASSERT_TRUE(r);
  r = a.onBinary(""s);
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->packet.id, 15u);
  EXPECT_EQ((*r)->buffers, std::vector<std::string>{""});
}

TEST(SocketioSioAssembler, PlaintextWhileReconstructingIsAnError) {
  SioBinaryAssembler a;
  ASSERT_TRUE(a.onText(R"(51-["hello",{"_placeholder":true,"num":0}])"));
  auto r = a.onText(R"(2["hello"])");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kProtocolError);
  EXPECT_EQ(r.error().message, "got plaintext data when reconstructing a packet");
  EXPECT_FALSE(a.awaiting());  // reset after the error

  ASSERT_TRUE(a.onText(R"(51-["hello",{"_placeholder":true,"num":0}])"));
  SioPacket p;
  p.data = R"(["x"])";
  auto r2 = a.onPacket(p);
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().message, "got plaintext data when reconstructing a packet");
}

TEST(SocketioSioAssembler, BinaryWithoutHeaderIsAnError) {
  SioBinaryAssembler a;
  auto r = a.onBinary("world");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "got binary data when not reconstructing a packet");
  ASSERT_TRUE(a.onText(R"(51-["a",{"_placeholder":true,"num":0}])"));
  ASSERT_TRUE(a.onBinary("x"));
  EXPECT_FALSE(a.onBinary("y"));  // one too many
}

TEST(SocketioSioAssembler, ParseErrorsAndLimits) {
  SioLimits limits;
  limits.max_binary_bytes = 5;
  SioBinaryAssembler a(limits);
  EXPECT_FALSE(a.onText("51-"));
  EXPECT_FALSE(a.awaiting());
  ASSERT_TRUE(a.onText(
      R"(52-["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}])"));
  ASSERT_TRUE(a.onBinary("abc"));
  auto r = a.onBinary("def");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kMessageTooBig);
  EXPECT_FALSE(a.awaiting());
  ASSERT_TRUE(a.onText(
      R"(52-["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}])"));
  ASSERT_TRUE(a.onBinary("abc"));
  auto ok = a.onBinary("de");
  ASSERT_TRUE(ok);
  EXPECT_TRUE(ok->has_value());
  ASSERT_TRUE(a.onText(R"(51-["a",{"_placeholder":true,"num":0}])"));
  a.reset();
  EXPECT_FALSE(a.awaiting());
  EXPECT_TRUE(a.onText(R"(2["a"])"));
}

// ---- Event helpers ---------------------------------------------------------------------------

TEST(SocketioSioEvents, SplitEvent) {
  struct Case {
    std::string data;
    std::string name;
    bool numeric;
    std::string args;
  };
  const std::vector<Case> cases = {
      {R"(["chat",{"a":1},2])", "chat", false, R"([{"a":1},2])"},
      {R"(["hello",1])", "hello", false, "[1]"},
      {R"(["ping"])", "ping", false, "[]"},
      {R"( [ "sp" , {"b" : [ 1 ]} ,  "x" ] )", "sp", false, R"([{"b" : [ 1 ]} ,  "x"])"},
      {R"(["\u0063hat\n\"q\""])", "chat\n\"q\"", false, "[]"},
      {R"(["\ud83d\ude00",null])", "\xF0\x9F\x98\x80", false, "[null]"},
      {R"([1,"a",{}])", "1", true, R"(["a",{}])"},
      {R"([-2.5e3])", "-2.5e3", true, "[]"},
      {R"(["", ""])", "", false, R"([""])"},
  };
  for (const Case& c : cases) {
    auto v = splitEvent(c.data);
    ASSERT_TRUE(v) << c.data << ": " << v.error().message;
    EXPECT_EQ(v->name, c.name) << c.data;
    EXPECT_EQ(v->numeric_name, c.numeric) << c.data;
    EXPECT_EQ(v->args, c.args) << c.data;
  }
  for (const std::string bad : {"", "[]", "{}", "\"a\"", "[true]", "[null,1]", "[{}]",
                                "[[\"a\"]]", "[\"a\",]", "[\"a\""}) {
    EXPECT_FALSE(splitEvent(bad)) << bad;
  }
  EXPECT_FALSE(splitEvent(R"(["a",[[[]]]])", 3));
  EXPECT_TRUE(splitEvent(R"(["a",[[]]])", 3));
}

TEST(SocketioSioEvents, EventJsonIsTheInverse) {
  struct Case {
    std::string event;
    std::string args;
    std::string json;
  };
  const std::vector<Case> cases = {
      {"chat", R"([{"a":1},2])", R"(["chat",{"a":1},2])"},
      {"x", "[]", R"(["x"])"},
      {"x", " [ ] ", R"(["x"])"},
      {"x", " [ 1 , 2 ] ", R"(["x",1 , 2])"},
      {"say \"hi\"\n", "[true]", R"(["say \"hi\"\n",true])"},
      {"caf\xC3\xA9", "[]", "[\"caf\xC3\xA9\"]"},
  };
  for (const Case& c : cases) {
    auto j = eventJson(c.event, c.args);
    ASSERT_TRUE(j) << c.event;
    EXPECT_EQ(*j, c.json);
    auto v = splitEvent(*j);
    ASSERT_TRUE(v);
    EXPECT_EQ(v->name, c.event);
    auto args_back = eventJson(v->name, v->args);
    ASSERT_TRUE(args_back);
    EXPECT_EQ(*args_back, *j);
    // What the server pushes is a valid EVENT for the parser.
    EXPECT_TRUE(parseSioPacket("2" + *j)) << *j;
  }
  EXPECT_FALSE(eventJson("x", ""));
  EXPECT_FALSE(eventJson("x", "{}"));
  EXPECT_FALSE(eventJson("x", "[1,]"));
  EXPECT_FALSE(eventJson("x", "1"));
}

TEST(SocketioSioEvents, BinaryEventJson) {
  EXPECT_EQ(binaryEventJson("file", 0), R"(["file"])");
  EXPECT_EQ(binaryEventJson("file", 2),
            R"(["file",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}])");
  SioPacket p;
  p.type = SioType::kBinaryEvent;
  p.attachments = 3;
  p.data = binaryEventJson("up\"load", 3);
  ASSERT_TRUE(validateSioPacket(p));
  auto back = parseSioPacket(encodeSioPacket(p));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->data, p.data);
  EXPECT_EQ(encodeSioPacket(p).substr(0, 3), "53-");
  auto v = splitEvent(p.data);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->name, "up\"load");
}

}  // namespace
}  // namespace imgate::mod::socketio
