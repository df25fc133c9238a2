// SPDX-License-Identifier: Apache-2.0
#include "modules/proto/lines/lines_codec.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace imgate::mod::lines {
namespace {

struct Sink final : CodecSink {
  std::vector<std::string> lines;
  int activity = 0;
  void onMessage(Message&& m) override { lines.emplace_back(m.data()); }
  void onPeerClose(Errc, std::string_view) override {}
  void onActivity() override { ++activity; }
  void onHello(HttpRequest) override {}
};

struct Out final : OutBuffer {
  std::string bytes;
  void append(std::string_view b) override { bytes.append(b); }
  void appendShared(Bytes b) override { bytes.append(*b); }
  size_t pending() const override { return bytes.size(); }
};

// Feeds `input` in pieces cut at `cuts`, keeping unconsumed bytes like the core does.
std::vector<std::string> feed(const std::string& input, const std::vector<size_t>& cuts,
                              uint32_t max_line = 64) {
  LinesCodec codec(max_line);
  Sink sink;
  Out out;
  std::string buffered;
  size_t from = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(input.size());
  for (size_t end : ends) {
    buffered.append(input, from, end - from);
    from = end;
    auto used = codec.decode(buffered, sink, out);
    EXPECT_TRUE(used.has_value());
    buffered.erase(0, *used);
  }
  return sink.lines;
}

TEST(ProtoLinesCodecTest, SplitsLinesAtEveryOffset) {
  const std::string input = "hello\r\nworld\n\nlast\n";
  const std::vector<std::string> want = {"hello", "world", "", "last"};
  EXPECT_EQ(feed(input, {}), want);
  for (size_t cut = 0; cut <= input.size(); ++cut) {
    EXPECT_EQ(feed(input, {cut}), want) << "cut at " << cut;
  }
  std::vector<size_t> every;
  for (size_t i = 1; i < input.size(); ++i) {
    every.push_back(i);
  }
  EXPECT_EQ(feed(input, every), want);
}

TEST(ProtoLinesCodecTest, PartialLineStaysUntilItsNewline) {
  LinesCodec codec(64);
  Sink sink;
  Out out;
  auto used = codec.decode("abc", sink, out);
  ASSERT_TRUE(used);
  EXPECT_EQ(*used, 0u);
  EXPECT_TRUE(sink.lines.empty());
}

TEST(ProtoLinesCodecTest, TooLongLineFails) {
  LinesCodec codec(4);
  Sink sink;
  Out out;
  auto r = codec.decode("12345\n", sink, out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kMessageTooBig);
  LinesCodec codec2(4);
  auto r2 = codec2.decode("123456", sink, out);  // no newline yet, already too long
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().code, Errc::kMessageTooBig);
}

TEST(ProtoLinesCodecTest, EncodeSharedAndClose) {
  LinesCodec codec(64);
  Out out;
  Message m;
  m.payload = makeBytes("hi");
  ASSERT_TRUE(codec.encode(m, out));
  EXPECT_EQ(out.bytes, "hi\n");
  EXPECT_NE(codec.sharedEncodingKey(m), 0u);
  EXPECT_EQ(*codec.encodeShared(m), "hi\n");
  codec.encodeClose(Errc::kTimeout, "idle\ntimeout", out);
  EXPECT_EQ(out.bytes, "hi\nerror timeout: idle timeout\n");
  EXPECT_EQ(codec.sharedEncodingKey(m), 0u);  // nothing more after the close
  ASSERT_TRUE(codec.encode(m, out));
  EXPECT_EQ(out.bytes, "hi\nerror timeout: idle timeout\n");
}

}  // namespace
}  // namespace imgate::mod::lines
