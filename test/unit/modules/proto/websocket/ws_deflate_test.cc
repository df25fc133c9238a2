// SPDX-License-Identifier: Apache-2.0
#include "modules/proto/websocket/ws_deflate.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <random>
#include <string>
#include <vector>

#include "modules/proto/websocket/ws_codec.h"
#include "test/unit/modules/proto/websocket/fakes.h"
#include "test/unit/modules/proto/websocket/ws_test_client.h"

namespace imgate::mod::websocket {
namespace {

using testing::clientFrame;
using testing::ClientDeflater;
using testing::ClientInflater;
using testing::decodeAllWays;
using testing::DecodeRun;
using testing::deflateOptions;
using testing::FakeOut;
using testing::FakeSink;
using testing::kFin;
using testing::kRsv1;
using testing::parseServerFrames;
using testing::runDecode;
using testing::ServerFrame;

constexpr uint8_t kText = 0x1;
constexpr uint8_t kBinary = 0x2;
constexpr uint8_t kCont = 0x0;
constexpr uint8_t kPing = 0x9;

// Chat-like JSON: repetitive within and across messages.
std::string chatMessage(int i) {
  return R"({"type":"message","room":"general","from":"user)" + std::to_string(i % 7) +
         R"(","text":"hello there, this is message number )" + std::to_string(i) +
         R"( in the conversation","ts":)" + std::to_string(1700000000 + i) + "}";
}

std::string randomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) {
    c = static_cast<char>(rng());
  }
  return s;
}

// ---- Negotiation ----------------------------------------------------------------------------

struct NegotiationCase {
  std::string name;
  std::vector<std::string> headers;
  std::optional<std::string> response;  // nullopt: declined
  DeflatePolicy policy = {};
  int server_bits = 15;
};

TEST(WsDeflateTest, NegotiationTable) {
  DeflatePolicy keep_client;  // does not ask the client to drop context
  keep_client.client_no_context_takeover = false;
  DeflatePolicy force_server;
  force_server.server_no_context_takeover = true;
  force_server.client_no_context_takeover = false;
  DeflatePolicy small_window;
  small_window.server_max_window_bits = 10;
  small_window.client_no_context_takeover = false;
  DeflatePolicy disabled;
  disabled.enabled = false;

  const std::vector<NegotiationCase> cases = {
      {"plain", {"permessage-deflate"}, "permessage-deflate", keep_client},
      {"default_policy_asks_client_nct", {"permessage-deflate"},
       "permessage-deflate; client_no_context_takeover"},
      {"browser_offer", {"permessage-deflate; client_max_window_bits"}, "permessage-deflate",
       keep_client},
      {"client_bits_value", {"permessage-deflate; client_max_window_bits=10"},
       "permessage-deflate", keep_client},
      {"server_nct", {"permessage-deflate; server_no_context_takeover"},
       "permessage-deflate; server_no_context_takeover", keep_client},
      {"client_nct_echoed", {"permessage-deflate; client_no_context_takeover"},
       "permessage-deflate; client_no_context_takeover", keep_client},
      {"forced_server_nct", {"permessage-deflate"},
       "permessage-deflate; server_no_context_takeover", force_server},
      {"server_bits", {"permessage-deflate; server_max_window_bits=10"},
       "permessage-deflate; server_max_window_bits=10", keep_client, 10},
      {"server_bits_capped_by_policy", {"permessage-deflate; server_max_window_bits=12"},
       "permessage-deflate; server_max_window_bits=10", small_window, 10},
      {"policy_window_not_announced_unasked", {"permessage-deflate"}, "permessage-deflate",
       small_window, 10},
      {"quoted_value", {"permessage-deflate; server_max_window_bits=\"11\""},
       "permessage-deflate; server_max_window_bits=11", keep_client, 11},
      {"case_and_spaces", {"  PerMessage-Deflate ;Server_No_Context_Takeover  "},
       "permessage-deflate; server_no_context_takeover", keep_client},
      {"server_bits_8_declined", {"permessage-deflate; server_max_window_bits=8"}, std::nullopt},
      {"fallback_after_8",
       {"permessage-deflate; server_max_window_bits=8, permessage-deflate"},
       "permessage-deflate", keep_client},
      {"unknown_param_declined_then_next",
       {"permessage-deflate; foo=1, permessage-deflate; server_no_context_takeover"},
       "permessage-deflate; server_no_context_takeover", keep_client},
      {"second_header", {"x-webkit-deflate-frame", "permessage-deflate"}, "permessage-deflate",
       keep_client},
      {"other_extension_only", {"x-custom; a=1"}, std::nullopt},
      {"empty", {""}, std::nullopt},
      {"duplicate_param", {"permessage-deflate; server_no_context_takeover; "
                           "server_no_context_takeover"}, std::nullopt},
      {"nct_with_value", {"permessage-deflate; client_no_context_takeover=1"}, std::nullopt},
      {"server_bits_missing_value", {"permessage-deflate; server_max_window_bits"},
       std::nullopt},
      {"server_bits_16", {"permessage-deflate; server_max_window_bits=16"}, std::nullopt},
      {"server_bits_leading_zero", {"permessage-deflate; server_max_window_bits=010"},
       std::nullopt},
      {"server_bits_7", {"permessage-deflate; server_max_window_bits=7"}, std::nullopt},
      {"client_bits_16", {"permessage-deflate; client_max_window_bits=16"}, std::nullopt},
      {"client_bits_junk", {"permessage-deflate; client_max_window_bits=x"}, std::nullopt},
      {"unterminated_quote", {"permessage-deflate; server_max_window_bits=\"10"}, std::nullopt},
      {"bad_quoted", {"permessage-deflate; server_max_window_bits=\"1\"0\""}, std::nullopt},
      {"quoted_comma_not_split",
       {"x-ext; a=\"1,permessage-deflate\", permessage-deflate"}, "permessage-deflate",
       keep_client},
      {"disabled", {"permessage-deflate"}, std::nullopt, disabled},
  };
  for (const NegotiationCase& c : cases) {
    std::vector<std::string_view> views(c.headers.begin(), c.headers.end());
    const std::optional<DeflateAgreement> got = negotiateDeflate(views, c.policy);
    ASSERT_EQ(got.has_value(), c.response.has_value()) << c.name;
    if (got) {
      EXPECT_EQ(got->response, *c.response) << c.name;
      EXPECT_TRUE(got->params.enabled) << c.name;
      EXPECT_EQ(got->params.server_max_window_bits, c.server_bits) << c.name;
      EXPECT_EQ(got->params.server_no_context_takeover,
                got->response.find("server_no_context_takeover") != std::string::npos)
          << c.name;
      EXPECT_EQ(got->params.client_no_context_takeover,
                got->response.find("client_no_context_takeover") != std::string::npos)
          << c.name;
    }
  }
}

// ---- Inflate (client -> server) -------------------------------------------------------------

std::string compressedStream(const std::vector<std::string>& texts, bool takeover) {
  ClientDeflater client(takeover);
  std::string wire;
  for (const std::string& t : texts) {
    wire += clientFrame(kFin | kRsv1 | kText, client.deflateMessage(t));
  }
  return wire;
}

TEST(WsDeflateTest, DecodesCompressedMessagesAllWays) {
  std::vector<std::string> texts;
  for (int i = 0; i < 4; ++i) {
    texts.push_back(chatMessage(i));
  }
  for (bool client_takeover : {false, true}) {
    SCOPED_TRACE(client_takeover ? "client keeps context" : "client resets context");
    // The server only frees its inflater per message when the client promised not to keep
    // context; a keeping client needs client_no_context_takeover=false on the server too.
    const DecodeRun run = decodeAllWays(deflateOptions(!client_takeover),
                                        compressedStream(texts, client_takeover));
    ASSERT_FALSE(run.error.has_value());
    ASSERT_EQ(run.messages.size(), texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      EXPECT_EQ(run.messages[i].first, PayloadType::kText);
      EXPECT_EQ(run.messages[i].second, texts[i]);
    }
  }
}

TEST(WsDeflateTest, LargeCompressedTextSpansManyChunks) {
  // Poorly compressible multi-byte text: the compressed payload spans several unmask chunks and
  // the inflated output several inflate chunks, with characters split across both.
  static constexpr const char* kPieces[] = {"\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\xC3\xA9", "a",
                                            "\xE4\xBD\xA0", "Z", "\xD0\x96"};
  std::mt19937 rng(42);
  std::string text;
  while (text.size() < 60000) {
    text += kPieces[rng() % 7];
  }
  ClientDeflater client(false);
  const std::string z = client.deflateMessage(text);
  ASSERT_GT(z.size(), 3u * 4096);
  WsCodecOptions options = deflateOptions();
  options.max_message = 1 << 20;
  const DecodeRun run = decodeAllWays(options, clientFrame(kFin | kRsv1 | kText, z));
  ASSERT_FALSE(run.error.has_value());
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_EQ(run.messages[0].second, text);
}

TEST(WsDeflateTest, FragmentedCompressedMessageWithPing) {
  ClientDeflater client(false);
  const std::string text = chatMessage(1) + chatMessage(2);
  const std::string z = client.deflateMessage(text);
  const size_t a = z.size() / 3;
  const size_t b = 2 * z.size() / 3;
  const std::string wire = clientFrame(kRsv1 | kText, z.substr(0, a)) +
                           clientFrame(kFin | kPing, "hb") +
                           clientFrame(kCont, z.substr(a, b - a)) +
                           clientFrame(kFin | kCont, z.substr(b));
  const DecodeRun run = decodeAllWays(deflateOptions(), wire);
  ASSERT_FALSE(run.error.has_value());
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_EQ(run.messages[0].second, text);
  EXPECT_EQ(run.out, "\x8A\x02hb");
}

TEST(WsDeflateTest, MixedCompressedAndPlainMessages) {
  ClientDeflater client(true);
  const std::string bin = randomBytes(300, 7);
  // One statement per message: the client's deflate calls must run in wire order.
  std::string wire = clientFrame(kFin | kRsv1 | kText, client.deflateMessage(chatMessage(1)));
  wire += clientFrame(kFin | kText, "plain");
  wire += clientFrame(kFin | kRsv1 | kBinary, client.deflateMessage(bin));
  wire += clientFrame(kFin | kRsv1 | kText, client.deflateMessage(chatMessage(2)));
  const DecodeRun run = decodeAllWays(deflateOptions(false), wire);
  ASSERT_FALSE(run.error.has_value());
  ASSERT_EQ(run.messages.size(), 4u);
  EXPECT_EQ(run.messages[0].second, chatMessage(1));
  EXPECT_EQ(run.messages[1].second, "plain");
  EXPECT_EQ(run.messages[2].first, PayloadType::kBinary);
  EXPECT_EQ(run.messages[2].second, bin);
  EXPECT_EQ(run.messages[3].second, chatMessage(2));
}

TEST(WsDeflateTest, EmptyCompressedMessage) {
  ClientDeflater client(false);
  const std::string z = client.deflateMessage("");
  EXPECT_EQ(z, std::string("\x00", 1));
  const DecodeRun run = decodeAllWays(deflateOptions(), clientFrame(kFin | kRsv1 | kText, z));
  ASSERT_FALSE(run.error.has_value());
  ASSERT_EQ(run.messages.size(), 1u);
  EXPECT_EQ(run.messages[0].second, "");
}

TEST(WsDeflateTest, FinalBlockMessagesAreAccepted) {
  // RFC 7692 §7.2.3.4: a sender may end each message with a BFINAL block instead of a flush.
  std::string wire;
  for (int i = 0; i < 3; ++i) {
    ClientDeflater client(false);
    wire += clientFrame(kFin | kRsv1 | kText, client.deflateMessage(chatMessage(i), Z_FINISH));
  }
  for (bool nct : {true, false}) {
    const DecodeRun run = decodeAllWays(deflateOptions(nct), wire);
    ASSERT_FALSE(run.error.has_value());
    ASSERT_EQ(run.messages.size(), 3u);
    EXPECT_EQ(run.messages[2].second, chatMessage(2));
  }
}

TEST(WsDeflateTest, DataAfterFinalBlockIsInvalid) {
  ClientDeflater client(false);
  const std::string z = client.deflateMessage("abc", Z_FINISH) + "\x01\x02\x03";
  const DecodeRun run = runDecode(deflateOptions(), clientFrame(kFin | kRsv1 | kBinary, z));
  ASSERT_TRUE(run.error.has_value());
  EXPECT_EQ(*run.error, Errc::kInvalidPayload);
}

TEST(WsDeflateTest, CompressedErrors) {
  ClientDeflater client(false);
  struct Case {
    std::string name;
    std::string wire;
    Errc expected;
    uint32_t max_message = 64 * 1024;
  };
  const std::vector<Case> cases = {
      {"corrupt_stream", clientFrame(kFin | kRsv1 | kBinary, "\xFF\xFF\xFF\xFF"),
       Errc::kInvalidPayload},
      {"invalid_utf8_after_inflate",
       clientFrame(kFin | kRsv1 | kText, client.deflateMessage("ok \xC0\xAF")),
       Errc::kInvalidPayload},
      {"utf8_truncated_after_inflate",
       clientFrame(kFin | kRsv1 | kText, client.deflateMessage("ok \xE2\x82")),
       Errc::kInvalidPayload},
      {"inflates_past_limit",
       clientFrame(kFin | kRsv1 | kBinary, client.deflateMessage(std::string(2000, 'a'))),
       Errc::kMessageTooBig, 1999},
      {"compressed_frame_over_budget",
       clientFrame(kFin | kRsv1 | kBinary, randomBytes(compressedBudget(100) + 1, 3)),
       Errc::kMessageTooBig, 100},
  };
  for (const Case& c : cases) {
    WsCodecOptions options = deflateOptions();
    options.max_message = c.max_message;
    const DecodeRun run = decodeAllWays(options, c.wire);
    ASSERT_TRUE(run.error.has_value()) << c.name;
    EXPECT_EQ(*run.error, c.expected) << c.name;
  }
}

TEST(WsDeflateTest, InflateBombStopsAtTheLimit) {
  // 16 MiB of zeros deflates to ~16 KiB; the codec must fail with 1009 without inflating it.
  ClientDeflater client(false);
  const std::string z = client.deflateMessage(std::string(16 << 20, '\0'));
  ASSERT_LT(z.size(), 64u * 1024);
  WsCodec codec(deflateOptions());
  FakeSink sink;
  FakeOut out;
  Result<size_t> r = codec.decode(clientFrame(kFin | kRsv1 | kBinary, z), sink, out);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kMessageTooBig);
  EXPECT_EQ(closeCodeFor(r.error().code), 1009);
  EXPECT_TRUE(sink.messages.empty());

  // The Inflater itself never produces more than limit + 1 bytes.
  Inflater inflater;
  std::string inflated;
  Status s = inflater.feed(z, inflated, 1000);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, Errc::kMessageTooBig);
  EXPECT_LE(inflated.size(), 1000u);
}

TEST(WsDeflateTest, InflaterIsFreedWithoutClientContext) {
  ClientDeflater client(false);
  const std::string frame = clientFrame(kFin | kRsv1 | kText, client.deflateMessage("hello hello"));
  {
    WsCodec codec(deflateOptions(true));
    FakeSink sink;
    FakeOut out;
    ASSERT_TRUE(codec.decode(frame, sink, out).has_value());
    EXPECT_FALSE(codec.hasInflaterForTest());
  }
  {
    WsCodec codec(deflateOptions(false));
    FakeSink sink;
    FakeOut out;
    ASSERT_TRUE(codec.decode(frame, sink, out).has_value());
    EXPECT_TRUE(codec.hasInflaterForTest());  // the client may refer back to this message
  }
}

// ---- Deflate (server -> client) -------------------------------------------------------------

Message message(std::string payload, PayloadType type = PayloadType::kText) {
  Message m;
  m.type = type;
  m.payload = makeBytes(std::move(payload));
  return m;
}

// Inflates every server frame in `wire` as a client would.
std::vector<std::string> clientReceive(std::string_view wire, ClientInflater& inflater,
                                       int* compressed_frames = nullptr) {
  bool ok = false;
  std::vector<std::string> out;
  for (const ServerFrame& f : parseServerFrames(wire, &ok)) {
    EXPECT_TRUE(f.fin);
    if (f.rsv1) {
      if (compressed_frames != nullptr) {
        ++*compressed_frames;
      }
      std::optional<std::string> m = inflater.inflateMessage(f.payload);
      EXPECT_TRUE(m.has_value());
      out.push_back(m.value_or("<inflate failed>"));
    } else {
      out.push_back(f.payload);
    }
  }
  EXPECT_TRUE(ok);
  return out;
}

TEST(WsDeflateTest, EncodeCompressesAtOrAboveMinSize) {
  WsCodecOptions options = deflateOptions();
  options.compress_min_size = 64;
  WsCodec codec(options);
  FakeOut out;
  const std::string big = chatMessage(1) + chatMessage(2);
  ASSERT_TRUE(codec.encode(message(big), out).has_value());
  ASSERT_TRUE(codec.encode(message(std::string(63, 'x')), out).has_value());
  ASSERT_TRUE(codec.encode(message(std::string(64, 'y'), PayloadType::kBinary), out).has_value());
  const std::vector<ServerFrame> frames = parseServerFrames(out.data);
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_TRUE(frames[0].rsv1);
  EXPECT_LT(frames[0].payload.size(), big.size());
  EXPECT_EQ(frames[0].opcode, kText);
  EXPECT_FALSE(frames[1].rsv1);
  EXPECT_TRUE(frames[2].rsv1);
  EXPECT_EQ(frames[2].opcode, kBinary);
  ClientInflater client(true);
  const std::vector<std::string> got = clientReceive(out.data, client);
  EXPECT_EQ(got, (std::vector<std::string>{big, std::string(63, 'x'), std::string(64, 'y')}));
  EXPECT_FALSE(codec.hasDeflaterForTest());  // no session deflater by default
}

TEST(WsDeflateTest, IncompressiblePayloadFallsBackToPlainFrame) {
  WsCodec codec(deflateOptions());
  const std::string noise = randomBytes(500, 11);
  Bytes shared = codec.encodeShared(message(noise, PayloadType::kBinary));
  const std::vector<ServerFrame> frames = parseServerFrames(*shared);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_FALSE(frames[0].rsv1);
  EXPECT_EQ(frames[0].payload, noise);
}

TEST(WsDeflateTest, SharedFramesInflateWithAndWithoutClientContext) {
  // The shared bytes must decode for a client that keeps context (its window already holds
  // other messages) and for one that resets per message, in any interleaving.
  WsCodec a(deflateOptions());
  WsCodecOptions nct = deflateOptions();
  nct.deflate.server_no_context_takeover = true;
  WsCodec b(nct);
  ClientInflater keeps(true);
  ClientInflater resets(false);
  for (int i = 0; i < 20; ++i) {
    const Message m = message(chatMessage(i) + chatMessage(i + 1));
    const std::vector<std::string> expected = {std::string(m.data())};
    EXPECT_EQ(a.sharedEncodingKey(m), b.sharedEncodingKey(m));
    Bytes shared = a.encodeShared(m);
    ASSERT_TRUE(shared);
    EXPECT_EQ(*shared, *b.encodeShared(m)) << "deterministic";
    int compressed = 0;
    EXPECT_EQ(clientReceive(*shared, keeps, &compressed), expected);
    EXPECT_EQ(clientReceive(*shared, resets), expected);
    EXPECT_EQ(compressed, 1);
    // Per-session frames in between also keep both clients in step.
    FakeOut out;
    ASSERT_TRUE(a.encode(message(chatMessage(100 + i)), out).has_value());
    EXPECT_EQ(clientReceive(out.data, keeps), std::vector<std::string>{chatMessage(100 + i)});
    EXPECT_EQ(clientReceive(out.data, resets), std::vector<std::string>{chatMessage(100 + i)});
  }
}

TEST(WsDeflateTest, ServerWindowBitsAreRespected) {
  // A client that negotiated server_max_window_bits=9 inflates with a 512-byte window; any
  // back-reference beyond it would fail.
  WsCodecOptions options = deflateOptions();
  options.deflate.server_max_window_bits = 9;
  WsCodec codec(options);
  std::string payload;
  for (int i = 0; i < 400; ++i) {
    payload += chatMessage(i % 5);
  }
  Bytes shared = codec.encodeShared(message(payload));
  ClientInflater client(false, 9);
  int compressed = 0;
  EXPECT_EQ(clientReceive(*shared, client, &compressed), std::vector<std::string>{payload});
  EXPECT_EQ(compressed, 1);
}

TEST(WsDeflateTest, SessionDeflaterKeepsContextAndStopsSharing) {
  WsCodecOptions options = deflateOptions();
  options.session_deflater = true;
  WsCodec codec(options);
  ClientInflater client(true);
  const Message first = message(chatMessage(1));
  EXPECT_NE(codec.sharedEncodingKey(first), 0u);  // nothing to desynchronise yet
  FakeOut out;
  size_t first_size = 0;
  for (int i = 0; i < 10; ++i) {
    const size_t before = out.data.size();
    ASSERT_TRUE(codec.encode(message(chatMessage(i)), out).has_value());
    if (i == 0) {
      first_size = out.data.size() - before;
    } else {
      // Context takeover: later messages refer back and get much smaller.
      EXPECT_LT(out.data.size() - before, first_size);
    }
  }
  EXPECT_TRUE(codec.hasDeflaterForTest());
  std::vector<std::string> expected;
  for (int i = 0; i < 10; ++i) {
    expected.push_back(chatMessage(i));
  }
  EXPECT_EQ(clientReceive(out.data, client), expected);
  EXPECT_EQ(codec.sharedEncodingKey(first), 0u);
  EXPECT_NE(codec.sharedEncodingKey(message("short")), 0u);  // uncompressed stays shared

  WsCodecOptions no_takeover = options;
  no_takeover.deflate.server_no_context_takeover = true;
  WsCodec fresh(no_takeover);
  FakeOut out2;
  ASSERT_TRUE(fresh.encode(first, out2).has_value());
  EXPECT_FALSE(fresh.hasDeflaterForTest());
}

TEST(WsDeflateTest, RoundTripThroughTheServerInflater) {
  // Server-side Deflater output decoded by the server-side Inflater, across sizes.
  for (size_t n : {0u, 1u, 100u, 5000u, 200000u}) {
    const std::string payload = n > 1000 ? std::string(n / 2, 'a') + randomBytes(n - n / 2, 5)
                                         : randomBytes(n, 9);
    std::string z;
    ASSERT_TRUE(deflateFresh(payload, 15, 6, z).has_value());
    Inflater inflater;
    std::string back;
    ASSERT_TRUE(inflater.feed(z, back, n + 10).has_value());
    ASSERT_TRUE(inflater.finish(back, n + 10).has_value());
    EXPECT_EQ(back, payload) << n;
  }
}

}  // namespace
}  // namespace imgate::mod::websocket
