// SPDX-License-Identifier: Apache-2.0
#include "modules/proto/websocket/ws_codec.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test/unit/modules/proto/websocket/fakes.h"
#include "test/unit/modules/proto/websocket/ws_test_client.h"

namespace imgate::mod::websocket {
namespace {

using testing::clientFrame;
using testing::closePayload;
using testing::decodeAllWays;
using testing::DecodeRun;
using testing::FakeOut;
using testing::FakeSink;
using testing::kFin;
using testing::kRsv1;
using testing::kRsv2;
using testing::kRsv3;
using testing::parseServerFrames;
using testing::runDecode;
using testing::ServerFrame;

constexpr uint8_t kText = 0x1;
constexpr uint8_t kBinary = 0x2;
constexpr uint8_t kCont = 0x0;
constexpr uint8_t kClose = 0x8;
constexpr uint8_t kPing = 0x9;
constexpr uint8_t kPong = 0xA;

std::string frames(std::initializer_list<std::string> parts) {
  std::string all;
  for (const std::string& p : parts) {
    all += p;
  }
  return all;
}

// ---- Valid input table ----------------------------------------------------------------------

struct ValidCase {
  std::string name;
  std::string input;
  std::vector<std::pair<PayloadType, std::string>> messages;
  std::string out;  // bytes the codec must write (pongs, close echo)
  int frames;       // onActivity calls
  bool closed = false;
};

std::vector<ValidCase> validCases() {
  const std::string big(70000, 'x');
  std::string big_utf8;  // multi-byte characters straddle every unmask chunk boundary
  while (big_utf8.size() < 70000) {
    big_utf8 += "\xE2\x82\xAC\xF0\x9F\x98\x80" "ab";
  }
  const std::string mid(300, 'm');
  std::string binary;
  for (int i = 0; i < 256; ++i) {
    binary.push_back(static_cast<char>(i));
  }
  return {
      {"text", clientFrame(kFin | kText, "Hello"), {{PayloadType::kText, "Hello"}}, "", 1},
      {"empty_text", clientFrame(kFin | kText, ""), {{PayloadType::kText, ""}}, "", 1},
      {"binary_all_bytes", clientFrame(kFin | kBinary, binary),
       {{PayloadType::kBinary, binary}}, "", 1},
      {"len16", clientFrame(kFin | kText, mid), {{PayloadType::kText, mid}}, "", 1},
      {"len64", clientFrame(kFin | kBinary, big), {{PayloadType::kBinary, big}}, "", 1},
      {"len64_text_utf8", clientFrame(kFin | kText, big_utf8), {{PayloadType::kText, big_utf8}},
       "", 1},
      {"non_minimal_len16", clientFrame(kFin | kText, "abc", 2), {{PayloadType::kText, "abc"}},
       "", 1},
      {"non_minimal_len64", clientFrame(kFin | kText, "abc", 8), {{PayloadType::kText, "abc"}},
       "", 1},
      {"two_messages",
       frames({clientFrame(kFin | kText, "one"), clientFrame(kFin | kBinary, "two")}),
       {{PayloadType::kText, "one"}, {PayloadType::kBinary, "two"}}, "", 2},
      {"fragmented_with_pings",
       frames({clientFrame(kText, "Hel"), clientFrame(kFin | kPing, "p1"),
               clientFrame(kCont, "lo "), clientFrame(kFin | kPong, "x"),
               clientFrame(kFin | kPing, ""), clientFrame(kFin | kCont, "world")}),
       {{PayloadType::kText, "Hello world"}}, std::string("\x8A\x02p1\x8A\x00", 6), 6},
      {"utf8_split_across_fragments",
       frames({clientFrame(kText, "\xE2"), clientFrame(kCont, "\x82"),
               clientFrame(kFin | kCont, "\xAC!")}),
       {{PayloadType::kText, "\xE2\x82\xAC!"}}, "", 3},
      {"empty_fragments",
       frames({clientFrame(kBinary, ""), clientFrame(kCont, ""), clientFrame(kFin | kCont, "z")}),
       {{PayloadType::kBinary, "z"}}, "", 3},
      {"ping_125", clientFrame(kFin | kPing, std::string(125, 'p')), {},
       "\x8A\x7D" + std::string(125, 'p'), 1},
      {"close_with_reason_then_garbage",
       frames({clientFrame(kFin | kText, "last"),
               clientFrame(kFin | kClose, closePayload(1000, "bye \xC3\xA9")), "\xFF\xFF\xFF"}),
       {{PayloadType::kText, "last"}}, std::string("\x88\x02\x03\xE8", 4), 2, true},
      {"close_empty", clientFrame(kFin | kClose, ""), {}, std::string("\x88\x00", 2), 1, true},
      {"close_4999", clientFrame(kFin | kClose, closePayload(4999)), {},
       std::string("\x88\x02\x13\x87", 4), 1, true},
  };
}

TEST(WsCodecTest, ValidInputsWholeBytewiseAndEverySplit) {
  for (const ValidCase& c : validCases()) {
    SCOPED_TRACE(c.name);
    const DecodeRun run = decodeAllWays(WsCodecOptions{.max_message = 1 << 20}, c.input);
    EXPECT_FALSE(run.error.has_value());
    EXPECT_EQ(run.messages, c.messages);
    EXPECT_EQ(run.out, c.out);
    EXPECT_EQ(run.activity, c.frames);
    EXPECT_EQ(run.peer_closed, c.closed);
    EXPECT_EQ(run.leftover, 0u);
  }
}

TEST(WsCodecTest, PartialFrameIsNotConsumed) {
  const std::string f = clientFrame(kFin | kText, "Hello");
  WsCodec codec(WsCodecOptions{});
  FakeSink sink;
  FakeOut out;
  for (size_t k = 0; k < f.size(); ++k) {
    Result<size_t> r = codec.decode(std::string_view(f).substr(0, k), sink, out);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(*r, 0u) << k;
  }
  Result<size_t> r = codec.decode(f + "\x81", sink, out);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, f.size());
  ASSERT_EQ(sink.messages.size(), 1u);
  EXPECT_EQ(sink.messages[0].kind, MessageKind::kData);
  EXPECT_EQ(sink.messages[0].data(), "Hello");
}

TEST(WsCodecTest, CloseReasonIsReportedAndLaterInputIgnored) {
  WsCodec codec(WsCodecOptions{});
  FakeSink sink;
  FakeOut out;
  const std::string close = clientFrame(kFin | kClose, closePayload(1001, "going away"));
  Result<size_t> r = codec.decode(close + clientFrame(kFin | kText, "late"), sink, out);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(sink.peer_closed);
  EXPECT_EQ(sink.close_code, Errc::kNone);
  EXPECT_EQ(sink.close_reason, "going away");
  EXPECT_TRUE(sink.messages.empty());
  EXPECT_EQ(out.data, std::string("\x88\x02\x03\xE9", 4));
  // Further input is swallowed, and the core's closing encodeClose() adds nothing.
  r = codec.decode(clientFrame(kFin | kText, "later"), sink, out);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, clientFrame(kFin | kText, "later").size());
  codec.encodeClose(Errc::kNone, "", out);
  EXPECT_EQ(out.data.size(), 4u);
}

TEST(WsCodecTest, ValidCloseCodesAreAccepted) {
  for (uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                        3000, 3999, 4000, 4999}) {
    const DecodeRun run =
        runDecode(WsCodecOptions{}, clientFrame(kFin | kClose, closePayload(code)));
    EXPECT_FALSE(run.error.has_value()) << code;
    EXPECT_TRUE(run.peer_closed) << code;
    const auto echo = parseServerFrames(run.out);
    ASSERT_EQ(echo.size(), 1u);
    EXPECT_EQ(echo[0].payload, closePayload(code)) << code;
  }
}

// ---- Error table ----------------------------------------------------------------------------

struct ErrorCase {
  std::string name;
  std::string input;
  Errc expected;
  uint32_t max_message = 1 << 20;
  bool deflate = false;
};

std::vector<ErrorCase> errorCases() {
  std::vector<ErrorCase> cases = {
      {"unmasked", clientFrame(kFin | kText, "hi", 0, false), Errc::kProtocolError},
      {"rsv1_without_deflate", clientFrame(kFin | kRsv1 | kText, "hi"), Errc::kProtocolError},
      {"rsv2", clientFrame(kFin | kRsv2 | kText, "hi"), Errc::kProtocolError},
      {"rsv3", clientFrame(kFin | kRsv3 | kBinary, "hi"), Errc::kProtocolError},
      {"rsv2_with_deflate", clientFrame(kFin | kRsv2 | kText, "hi"), Errc::kProtocolError,
       1 << 20, true},
      {"rsv1_on_ping_with_deflate", clientFrame(kFin | kRsv1 | kPing, ""), Errc::kProtocolError,
       1 << 20, true},
      {"rsv1_on_continuation",
       frames({clientFrame(kRsv1 | kText, ""), clientFrame(kFin | kRsv1 | kCont, "")}),
       Errc::kProtocolError, 1 << 20, true},
      {"ping_126", clientFrame(kFin | kPing, std::string(126, 'p')), Errc::kProtocolError},
      {"close_126", clientFrame(kFin | kClose, closePayload(1000, std::string(124, 'r'))),
       Errc::kProtocolError},
      {"fragmented_ping", clientFrame(kPing, "p"), Errc::kProtocolError},
      {"continuation_without_message", clientFrame(kFin | kCont, "x"), Errc::kProtocolError},
      {"text_inside_fragmented",
       frames({clientFrame(kText, "a"), clientFrame(kFin | kText, "b")}), Errc::kProtocolError},
      {"binary_inside_fragmented",
       frames({clientFrame(kBinary, "a"), clientFrame(kFin | kBinary, "b")}),
       Errc::kProtocolError},
      {"len64_top_bit", std::string("\x82\xFF\x80\x00\x00\x00\x00\x00\x00\x00", 10),
       Errc::kProtocolError},
      {"too_big_single", clientFrame(kFin | kBinary, std::string(17, 'b')),
       Errc::kMessageTooBig, 16},
      {"too_big_fragmented",
       frames({clientFrame(kText, std::string(10, 'a')), clientFrame(kFin | kCont, "1234567")}),
       Errc::kMessageTooBig, 16},
      {"too_big_header_only", std::string("\x82\xFF\x00\x00\x00\x00\x40\x00\x00\x00", 10),
       Errc::kMessageTooBig},
      {"bad_utf8", clientFrame(kFin | kText, "ab\xC0\xAF"), Errc::kInvalidPayload},
      {"bad_utf8_first_fragment",
       frames({clientFrame(kText, "\xED\xA0\x80"), clientFrame(kFin | kCont, "ok")}),
       Errc::kInvalidPayload},
      {"utf8_truncated_at_fin", clientFrame(kFin | kText, "ab\xE2\x82"), Errc::kInvalidPayload},
      {"close_one_byte", clientFrame(kFin | kClose, "\x03"), Errc::kProtocolError},
      {"close_reason_bad_utf8", clientFrame(kFin | kClose, closePayload(1000, "\xFF")),
       Errc::kInvalidPayload},
      {"valid_frame_then_error",
       frames({clientFrame(kFin | kText, "ok"), clientFrame(kFin | 0x3, "")}),
       Errc::kProtocolError},
  };
  for (uint8_t op : {0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    cases.push_back({"reserved_opcode_" + std::to_string(op),
                     clientFrame(static_cast<uint8_t>(kFin | op), ""), Errc::kProtocolError});
  }
  for (uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
    cases.push_back({"close_code_" + std::to_string(code),
                     clientFrame(kFin | kClose, closePayload(code)), Errc::kProtocolError});
  }
  return cases;
}

TEST(WsCodecTest, ErrorsWholeBytewiseAndEverySplit) {
  for (const ErrorCase& c : errorCases()) {
    SCOPED_TRACE(c.name);
    WsCodecOptions options;
    options.max_message = c.max_message;
    options.deflate.enabled = c.deflate;
    const DecodeRun run = decodeAllWays(options, c.input);
    ASSERT_TRUE(run.error.has_value());
    EXPECT_EQ(*run.error, c.expected);
    EXPECT_FALSE(run.peer_closed);
  }
}

TEST(WsCodecTest, ValidMessageBeforeErrorIsDelivered) {
  const DecodeRun run = runDecode(
      WsCodecOptions{}, frames({clientFrame(kFin | kText, "ok"), clientFrame(kFin | 0x3, "")}));
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_EQ(run.messages[0].second, "ok");
}

TEST(WsCodecTest, TooBigIsDetectedFromTheHeaderAlone) {
  WsCodec codec(WsCodecOptions{.max_message = 1000});
  FakeSink sink;
  FakeOut out;
  // 16-bit length 1001: two length bytes are enough, no mask or payload needed.
  Result<size_t> r = codec.decode(std::string("\x82\xFE\x03\xE9", 4), sink, out);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kMessageTooBig);
}

TEST(WsCodecTest, InvalidUtf8FailsBeforeTheFrameIsComplete) {
  // A 100-byte text frame whose 3rd payload byte makes the UTF-8 impossible; only 10 payload
  // bytes have arrived (Autobahn 6.4.3 style fail-fast).
  const std::string frame = clientFrame(kFin | kText, "ab\xF5" + std::string(97, 'c'));
  WsCodec codec(WsCodecOptions{});
  FakeSink sink;
  FakeOut out;
  Result<size_t> r = codec.decode(std::string_view(frame).substr(0, 2 + 4 + 10), sink, out);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kInvalidPayload);
  EXPECT_EQ(sink.activity, 0);
}

TEST(WsCodecTest, InvalidUtf8FailsBeforeTheMessageIsComplete) {
  WsCodec codec(WsCodecOptions{});
  FakeSink sink;
  FakeOut out;
  ASSERT_TRUE(codec.decode(clientFrame(kText, "valid "), sink, out).has_value());
  Result<size_t> r = codec.decode(clientFrame(kCont, "\xF4\x90\x80\x80"), sink, out);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kInvalidPayload);
}

TEST(WsCodecTest, DecodeAfterErrorIgnoresInput) {
  WsCodec codec(WsCodecOptions{});
  FakeSink sink;
  FakeOut out;
  ASSERT_FALSE(codec.decode(clientFrame(kFin | kText, "x", 0, false), sink, out).has_value());
  Result<size_t> r = codec.decode(clientFrame(kFin | kText, "x"), sink, out);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(sink.messages.empty());
  EXPECT_EQ(codec.sharedEncodingKey(Message{}), 0u);
}

TEST(WsCodecTest, PongIsSkippedUnderBackpressure) {
  WsCodec codec(WsCodecOptions{});
  FakeSink sink;
  FakeOut out;
  out.extra_pending = kPongBackpressureLimit + 1;
  ASSERT_TRUE(codec.decode(clientFrame(kFin | kPing, "p"), sink, out).has_value());
  EXPECT_TRUE(out.data.empty());
  EXPECT_EQ(sink.activity, 1);
  out.extra_pending = 0;
  ASSERT_TRUE(codec.decode(clientFrame(kFin | kPing, "q"), sink, out).has_value());
  EXPECT_EQ(out.data, "\x8A\x01q");
}

TEST(WsCodecTest, IdleCodecIsSmallAndHoldsNoBuffers) {
  std::printf("sizeof(WsCodec) = %zu\n", sizeof(WsCodec));
  EXPECT_LE(sizeof(WsCodec), 80u);  // the 80-byte allocator class: everything else is on demand
  WsCodec codec(testing::deflateOptions());
  FakeSink sink;
  FakeOut out;
  ASSERT_TRUE(codec.decode(clientFrame(kFin | kText, std::string(5000, 'a')), sink, out));
  EXPECT_LE(codec.bufferedForTest(), std::string().capacity());  // no heap block kept
  EXPECT_FALSE(codec.hasInflaterForTest());
  EXPECT_FALSE(codec.hasDeflaterForTest());
}

// ---- Encode ---------------------------------------------------------------------------------

Message textMessage(std::string payload, PayloadType type = PayloadType::kText) {
  Message m;
  m.type = type;
  m.payload = makeBytes(std::move(payload));
  return m;
}

TEST(WsCodecTest, EncodeFrames) {
  struct Case {
    Message message;
    std::string header;
  };
  std::vector<Case> cases;
  cases.push_back({textMessage("Hello"), "\x81\x05"});
  cases.push_back({textMessage("", PayloadType::kBinary), std::string("\x82\x00", 2)});
  cases.push_back({textMessage(std::string(125, 'a')), "\x81\x7D"});
  cases.push_back({textMessage(std::string(126, 'a')), std::string("\x81\x7E\x00\x7E", 4)});
  cases.push_back({textMessage(std::string(65535, 'a')), "\x81\x7E\xFF\xFF"});
  cases.push_back({textMessage(std::string(65536, 'b'), PayloadType::kBinary),
                   std::string("\x82\x7F\x00\x00\x00\x00\x00\x01\x00\x00", 10)});
  Message no_payload;
  cases.push_back({no_payload, std::string("\x81\x00", 2)});
  // Text that is not UTF-8 would make the client fail the connection: binary, bytes unchanged.
  cases.push_back({textMessage("caf\xC3\xA9"), "\x81\x05"});
  cases.push_back({textMessage("\xFF\xFE"), "\x82\x02"});
  cases.push_back({textMessage("ab\xED\xA0\x80"), "\x82\x05"});  // a surrogate
  cases.push_back({textMessage(std::string(300, 'a') + "\xC3"), "\x82\x7E\x01\x2D"});
  for (const Case& c : cases) {
    WsCodec codec(WsCodecOptions{});
    FakeOut out;
    ASSERT_TRUE(codec.encode(c.message, out).has_value());
    EXPECT_EQ(out.data, c.header + std::string(c.message.data()));
    // Fan-out bytes are identical to the per-session encoding.
    Bytes shared = codec.encodeShared(c.message);
    ASSERT_TRUE(shared);
    EXPECT_EQ(*shared, out.data);
  }
}

TEST(WsCodecTest, LargePayloadIsAppendedByReference) {
  WsCodec codec(WsCodecOptions{});
  FakeOut out;
  ASSERT_TRUE(codec.encode(textMessage(std::string(4096, 'z')), out).has_value());
  EXPECT_EQ(out.shared_appends, 1);
  FakeOut small;
  ASSERT_TRUE(codec.encode(textMessage("tiny"), small).has_value());
  EXPECT_EQ(small.shared_appends, 0);
}

TEST(WsCodecTest, CloseCodeTable) {
  const std::vector<std::pair<Errc, uint16_t>> table = {
      {Errc::kNone, 1000},           {Errc::kProtocolError, 1002},
      {Errc::kInvalidPayload, 1007}, {Errc::kMessageTooBig, 1009},
      {Errc::kShutdown, 1001},       {Errc::kInternal, 1011},
      {Errc::kUnavailable, 1013},    {Errc::kTimeout, 4000},
      {Errc::kUnauthenticated, 4001}, {Errc::kPermissionDenied, 4003},
      {Errc::kEvicted, 4009},        {Errc::kKicked, 4010},
      {Errc::kResourceExhausted, 4029}, {Errc::kBadRequest, 1008},
      {Errc::kInvalidConfig, 1011},  {Errc::kNotFound, 1011},
      {static_cast<Errc>(999), 1011},
  };
  for (const auto& [errc, code] : table) {
    EXPECT_EQ(closeCodeFor(errc), code) << errcName(errc);
    WsCodec codec(WsCodecOptions{});
    FakeOut out;
    codec.encodeClose(errc, "r", out);
    const std::vector<ServerFrame> f = parseServerFrames(out.data);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].opcode, kClose);
    ASSERT_GE(f[0].payload.size(), 2u);
    EXPECT_EQ(f[0].payload.substr(0, 2), closePayload(code));
    // Every code the server sends is one a client must accept.
    EXPECT_TRUE(isValidCloseCode(code));
  }
}

TEST(WsCodecTest, CloseReasonIsTruncatedOnUtf8BoundaryAndOmittedForInternal) {
  std::string reason;
  for (int i = 0; i < 60; ++i) {
    reason += "\xE2\x82\xAC";  // 180 bytes
  }
  WsCodec codec(WsCodecOptions{});
  FakeOut out;
  codec.encodeClose(Errc::kKicked, reason, out);
  std::vector<ServerFrame> f = parseServerFrames(out.data);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].payload.size(), 2u + 123u);  // 41 whole euro signs
  EXPECT_TRUE(common::isValidUtf8(f[0].payload.substr(2)));
  EXPECT_EQ(f[0].payload.substr(0, 2), closePayload(4010));

  WsCodec internal(WsCodecOptions{});
  FakeOut out2;
  internal.encodeClose(Errc::kInternal, "null pointer in stage foo", out2);
  f = parseServerFrames(out2.data);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].payload, closePayload(1011));

  WsCodec invalid(WsCodecOptions{});
  FakeOut out3;
  invalid.encodeClose(Errc::kBadRequest, "ok\xFFno", out3);
  f = parseServerFrames(out3.data);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].payload, closePayload(1008, "ok"));
}

TEST(WsCodecTest, NothingIsSentAfterClose) {
  WsCodec codec(WsCodecOptions{});
  FakeOut out;
  codec.encodeClose(Errc::kShutdown, "bye", out);
  const std::string after_close = out.data;
  codec.encodeClose(Errc::kInternal, "again", out);
  codec.encodePing(out);
  EXPECT_TRUE(codec.encode(textMessage("late"), out).has_value());
  EXPECT_EQ(out.data, after_close);
  EXPECT_TRUE(codec.closeSent());
  EXPECT_EQ(codec.sharedEncodingKey(textMessage("late")), 0u);
  FakeSink sink;
  Result<size_t> r = codec.decode(clientFrame(kFin | kText, "x"), sink, out);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(sink.messages.empty());
}

TEST(WsCodecTest, PingFrame) {
  WsCodec codec(WsCodecOptions{});
  FakeOut out;
  codec.encodePing(out);
  EXPECT_EQ(out.data, std::string("\x89\x00", 2));
}

TEST(WsCodecTest, SharedKeysDistinguishVariants) {
  const Message text = textMessage(std::string(200, 't'));
  const Message binary = textMessage(std::string(200, 't'), PayloadType::kBinary);
  const Message small = textMessage("hi");

  WsCodec plain(WsCodecOptions{});
  WsCodec plain2(WsCodecOptions{});
  WsCodec deflate(testing::deflateOptions());
  WsCodecOptions w10 = testing::deflateOptions();
  w10.deflate.server_max_window_bits = 10;
  WsCodec deflate10(w10);
  WsCodecOptions level9 = testing::deflateOptions();
  level9.compression_level = 9;
  WsCodec deflate_l9(level9);

  EXPECT_NE(plain.sharedEncodingKey(text), 0u);
  EXPECT_EQ(plain.sharedEncodingKey(text), plain2.sharedEncodingKey(text));
  EXPECT_NE(plain.sharedEncodingKey(text), plain.sharedEncodingKey(binary));
  EXPECT_NE(plain.sharedEncodingKey(text), deflate.sharedEncodingKey(text));
  EXPECT_NE(deflate.sharedEncodingKey(text), deflate.sharedEncodingKey(binary));
  EXPECT_NE(deflate.sharedEncodingKey(text), deflate10.sharedEncodingKey(text));
  EXPECT_NE(deflate.sharedEncodingKey(text), deflate_l9.sharedEncodingKey(text));
  // Below compress_min_size a deflate session gets the same bytes as a plain one.
  EXPECT_EQ(deflate.sharedEncodingKey(small), plain.sharedEncodingKey(small));
  EXPECT_EQ(*deflate.encodeShared(small), *plain.encodeShared(small));
}

}  // namespace
}  // namespace imgate::mod::websocket
