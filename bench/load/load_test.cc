// SPDX-License-Identifier: Apache-2.0
// Unit tests of the load generator's wire helpers, histogram, options and client codecs. The
// codecs are fed every server stream whole, one byte at a time and split at every offset, the
// way the worker hands them a connection's bytes, and must report the same events each time.

#include <gtest/gtest.h>
#include <zlib.h>

#include <string>
#include <vector>

#include "client_codec.h"
#include "histogram.h"
#include "options.h"
#include "wire.h"

namespace imgate::bench::load {
namespace {

const uint8_t* u8(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

std::string serverWsFrame(uint8_t first_byte, std::string_view payload) {
  std::string out;
  out.push_back(char(first_byte));
  if (payload.size() < 126) {
    out.push_back(char(payload.size()));
  } else if (payload.size() <= 0xFFFF) {
    out.push_back(char(126));
    out.push_back(char(payload.size() >> 8));
    out.push_back(char(payload.size() & 0xFF));
  } else {
    out.push_back(char(127));
    for (int i = 7; i >= 0; --i) {
      out.push_back(char((uint64_t(payload.size()) >> (8 * i)) & 0xFF));
    }
  }
  out.append(payload);
  return out;
}

std::string text(std::string_view payload) { return serverWsFrame(0x81, payload); }

std::string zlibCompress(std::string_view in) {
  uLongf len = compressBound(uLong(in.size()));
  std::string out(len, '\0');
  compress(reinterpret_cast<Bytef*>(out.data()), &len, reinterpret_cast<const Bytef*>(in.data()),
           uLong(in.size()));
  out.resize(len);
  return out;
}

// ---- Wire helpers -------------------------------------------------------------------------------

TEST(LoadWire, Base64Vectors) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  EXPECT_EQ(base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64Url("\xfb\xff"), "-_8");
}

TEST(LoadWire, JwtMatchesAnIndependentHs256) {
  // Expected value computed with Python's hmac/hashlib from the same header and claims.
  EXPECT_EQ(makeJwt("sekrit", "u7", 1700000000, 1700003600),
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
            "eyJzdWIiOiJ1NyIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAzNjAwfQ."
            "iTRV3hICFi76fu7E52OuxSDKtAgLPkIt0NwWwD7Rkiw");
}

TEST(LoadWire, WebSocketAcceptRfc6455Example) {
  EXPECT_EQ(wsAccept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  EXPECT_EQ(wsKey(42, 7).size(), 24u);
  EXPECT_NE(wsKey(42, 7), wsKey(42, 8));
  EXPECT_EQ(wsKey(42, 7), wsKey(42, 7));
}

TEST(LoadWire, HttpHeadParsing) {
  HttpHead h;
  EXPECT_EQ(parseHttpHead("HTTP/1.1 200 OK\r\nContent-Len", 1024, h), Parse::kNeedMore);
  const std::string ok = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nX-A:  b \r\n\r\nhello";
  ASSERT_EQ(parseHttpHead(ok, 1024, h), Parse::kOk);
  EXPECT_EQ(h.status, 200);
  EXPECT_TRUE(h.has_length);
  EXPECT_EQ(h.content_length, 5u);
  EXPECT_EQ(h.head_len, ok.size() - 5);
  EXPECT_EQ(headerValue(ok.substr(0, h.head_len), "x-a"), "b");
  EXPECT_FALSE(headerValue(ok.substr(0, h.head_len), "x-b").has_value());
  EXPECT_EQ(parseHttpHead("HTTP/1.1 2x0 OK\r\n\r\n", 1024, h), Parse::kError);
  EXPECT_EQ(parseHttpHead("SSH-2.0-x\r\n\r\n", 1024, h), Parse::kError);
  EXPECT_EQ(parseHttpHead("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 1024, h), Parse::kError);
  EXPECT_EQ(parseHttpHead(std::string(100, 'x'), 64, h), Parse::kError);  // head too long

  HttpRequestHead r;
  const std::string req = "POST /im/up HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
  ASSERT_EQ(parseHttpRequestHead(req, 1024, r), Parse::kOk);
  EXPECT_EQ(r.content_length, 3u);
  EXPECT_FALSE(r.close);
  EXPECT_EQ(parseHttpRequestHead("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 1024, r),
            Parse::kError);
}

TEST(LoadWire, WebSocketFrameLengthsAndErrors) {
  WsFrame f;
  for (size_t len : {size_t(0), size_t(125), size_t(126), size_t(65535), size_t(65536)}) {
    const std::string frame = serverWsFrame(0x82, std::string(len, 'a'));
    ASSERT_EQ(parseWsFrame(u8(frame), frame.size(), 1u << 20, f), Parse::kOk) << len;
    EXPECT_EQ(f.payload_len, len);
    EXPECT_EQ(f.size(), frame.size());
    EXPECT_EQ(f.opcode, kWsBinary);
    EXPECT_TRUE(f.fin);
    for (size_t cut = 0; cut < std::min<size_t>(frame.size(), 12); ++cut) {
      EXPECT_EQ(parseWsFrame(u8(frame), cut, 1u << 20, f), Parse::kNeedMore) << len << "/" << cut;
    }
  }
  const auto bad = [&](std::string bytes) {
    return parseWsFrame(u8(bytes), bytes.size(), 1u << 20, f) == Parse::kError;
  };
  EXPECT_TRUE(bad(std::string("\x81\x81\0\0\0\0a", 7)));  // masked server frame
  EXPECT_TRUE(
      bad(std::string("\xC1\x01"
                      "a",
                      3)));                                      // RSV1 without an extension
  EXPECT_TRUE(bad(std::string("\x83\x00", 2)));                  // reserved opcode
  EXPECT_TRUE(bad(std::string("\x09\x00", 2)));                  // fragmented ping
  EXPECT_TRUE(bad(serverWsFrame(0x89, std::string(126, 'a'))));  // long control frame
  EXPECT_TRUE(bad(std::string("\x81\x7E\x00\x05hello", 9)));     // non-minimal length
  const std::string big = serverWsFrame(0x82, std::string(2000, 'a'));
  EXPECT_EQ(parseWsFrame(u8(big), big.size(), 1000, f), Parse::kError);
}

TEST(LoadWire, ClientFramesAreMaskedAndRoundTrip) {
  for (size_t len : {size_t(0), size_t(5), size_t(200), size_t(70000)}) {
    std::string out;
    const std::string payload(len, 'z');
    appendWsFrame(out, kWsText, payload, 0x01020304);
    const uint8_t b1 = uint8_t(out[1]);
    ASSERT_TRUE(b1 & 0x80);
    size_t pos = 2;
    uint64_t n = b1 & 0x7F;
    if (n == 126) {
      n = (uint64_t(uint8_t(out[2])) << 8) | uint8_t(out[3]);
      pos = 4;
    } else if (n == 127) {
      n = readBe(std::string_view(out).substr(2, 8));
      pos = 10;
    }
    ASSERT_EQ(n, len);
    const uint8_t key[4] = {1, 2, 3, 4};
    EXPECT_EQ(std::string_view(out).substr(pos, 4), std::string("\x01\x02\x03\x04", 4));
    std::string unmasked;
    for (size_t i = 0; i < len; ++i) {
      unmasked.push_back(char(uint8_t(out[pos + 4 + i]) ^ key[i & 3]));
    }
    EXPECT_EQ(unmasked, payload);
  }
}

TEST(LoadWire, TcpHelloMatchesTheSpecExample) {
  // docs/protocol/tcp-frame.md: the HELLO with token "t" and device "d", byte by byte.
  std::string out;
  appendTcpFrame(out, kTcpHello, 0, 1, {{kTagToken, "t"}, {kTagDevice, "d"}});
  const std::string expected(
      "\xB7\x46\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x0C"
      "\x01\x00\x00\x00\x01t\x02\x00\x00\x00\x01"
      "d",
      32);
  EXPECT_EQ(out, expected);
  TcpFrame f;
  ASSERT_EQ(parseTcpHeader(u8(out), out.size(), 1024, f), Parse::kOk);
  EXPECT_EQ(f.type, kTcpHello);
  EXPECT_EQ(f.id, 1u);
  EXPECT_EQ(f.length, 12u);
  std::string_view v;
  EXPECT_EQ(findTlv(std::string_view(out).substr(20), kTagDevice, v), Parse::kOk);
  EXPECT_EQ(v, "d");
  EXPECT_EQ(findTlv(std::string_view(out).substr(20), kTagData, v), Parse::kNeedMore);
  EXPECT_EQ(findTlv(std::string_view(out).substr(20, 8), kTagDevice, v), Parse::kError);
  // Garbage is refused as soon as its first byte arrives; a long body from the header alone.
  EXPECT_EQ(parseTcpHeader(u8("G"), 1, 1024, f), Parse::kError);
  std::string reserved = out;
  reserved[6] = 1;
  EXPECT_EQ(parseTcpHeader(u8(reserved), 7, 1024, f), Parse::kError);
  EXPECT_EQ(parseTcpHeader(u8(out), out.size(), 11, f), Parse::kError);
}

TEST(LoadWire, InflateZlib) {
  const std::string plain = "hello hello hello hello";
  const std::string z = zlibCompress(plain);
  std::string out;
  ASSERT_TRUE(inflateZlib(z, 1024, out));
  EXPECT_EQ(out, plain);
  EXPECT_FALSE(inflateZlib(z.substr(0, z.size() - 3), 1024, out));  // truncated
  EXPECT_FALSE(inflateZlib(z + "x", 1024, out));                    // trailing bytes
  EXPECT_FALSE(inflateZlib("not zlib", 1024, out));
  EXPECT_FALSE(inflateZlib(zlibCompress(std::string(5000, 'a')), 1000, out));  // too big
}

TEST(LoadWire, PayloadScanning) {
  const std::string p = makePayload(1700000000123456789ULL, 42, 0);
  EXPECT_EQ(p, R"({"lg_t":1700000000123456789,"lg_n":42})");
  uint64_t t = 0;
  uint64_t n = 0;
  ASSERT_TRUE(scanPayload(p, t, n));
  EXPECT_EQ(t, 1700000000123456789ULL);
  EXPECT_EQ(n, 42u);
  // Escaped inside the envelope's data string, and as a Socket.IO argument.
  ASSERT_TRUE(scanPayload(R"({"t":"push","data":"{\"lg_t\":5,\"lg_n\":6}"})", t, n));
  EXPECT_EQ(t, 5u);
  EXPECT_EQ(n, 6u);
  ASSERT_TRUE(scanPayload(R"(["bench",{"lg_t":7,"lg_n":8}])", t, n));
  EXPECT_EQ(n, 8u);
  EXPECT_FALSE(scanPayload(R"({"up":3})", t, n));
  EXPECT_FALSE(scanPayload(R"({"lg_tx":1,"lg_n":2})", t, n));
  EXPECT_FALSE(scanPayload(R"({"lg_t":"x","lg_n":2})", t, n));
  for (size_t size : {10, 64, 100, 1000}) {
    const std::string padded = makePayload(1, 2, size);
    EXPECT_GE(padded.size(), size);
    EXPECT_LE(padded.size(), std::max<size_t>(size, 30) + 8);
    ASSERT_TRUE(scanPayload(padded, t, n));
    EXPECT_EQ(n, 2u);
  }
}

// Parses a stream of pipelined answers fed in the chunks given by `cuts` (the push API client's
// readable() loop) and logs "status body" per answer, or "error".
std::vector<std::string> answers(const std::string& stream, const std::vector<size_t>& cuts) {
  std::vector<std::string> log;
  std::string buf;
  size_t prev = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(stream.size());
  for (size_t end : ends) {
    buf.append(stream, prev, end - prev);
    prev = end;
    size_t off = 0;
    while (true) {
      HttpAnswer a;
      const Parse p = parseHttpAnswer(std::string_view(buf).substr(off), 1024, 256, a);
      if (p == Parse::kNeedMore) {
        break;
      }
      if (p == Parse::kError) {
        log.push_back("error");
        return log;
      }
      log.push_back(std::to_string(a.status) + " " + std::string(a.body));
      off += a.size;
    }
    buf.erase(0, off);
  }
  return log;
}

TEST(LoadWire, HttpAnswersSplitAtEveryOffset) {
  // Nchan's JSON and text answers, then imgate's push answer, pipelined on one connection.
  const std::string json = R"({"messages": 1, "requested": -1, "subscribers": 3, )"
                           R"("last_message_id": "1795405546:0" })";
  const std::string plain =
      "queued messages: 1\r\nlast requested: -1 sec. ago\r\nactive subscribers: 0\r\n"
      "last message id: 1795405541:0";
  const std::string stream =
      "HTTP/1.1 201 Created\r\nServer: nginx/1.22.1\r\nContent-Type: text/json\r\n"
      "Content-Length: " +
      std::to_string(json.size()) + "\r\nConnection: keep-alive\r\n\r\n" + json +
      "HTTP/1.1 202 Accepted\r\nContent-Type: text/plain\r\nContent-Length: " +
      std::to_string(plain.size()) + "\r\n\r\n" + plain +
      "HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n{\"sessions\":5}";
  const std::vector<std::string> expected = {"201 " + json, "202 " + plain,
                                             R"(200 {"sessions":5})"};
  EXPECT_EQ(answers(stream, {}), expected);
  std::vector<size_t> bytes;
  for (size_t i = 1; i < stream.size(); ++i) {
    bytes.push_back(i);
  }
  EXPECT_EQ(answers(stream, bytes), expected) << "byte by byte";
  for (size_t i = 1; i < stream.size(); ++i) {
    ASSERT_EQ(answers(stream, {i}), expected) << "split at " << i;
  }
  // A body to wait for, then what the client cannot frame or will not hold.
  EXPECT_TRUE(answers("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", {}).empty());
  EXPECT_EQ(answers("HTTP/1.1 200 OK\r\n\r\nabc", {}), std::vector<std::string>{"error"});
  EXPECT_EQ(answers("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n"
                    "\r\nabc",
                    {}),
            std::vector<std::string>{"error"});
  EXPECT_EQ(answers("HTTP/1.1 200 OK\r\nContent-Length: 257\r\n\r\n", {}),
            std::vector<std::string>{"error"});  // above max_body, refused from the head
  EXPECT_EQ(answers("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", {}),
            std::vector<std::string>{"200 "});
}

TEST(LoadWire, NchanPublishRequest) {
  std::string out = "x";  // appends
  appendNchanPublish(out, "127.0.0.1:18181", "/pub/", kNchanBroadcastChannel, makePayload(5, 6, 0));
  const std::string body = R"({"lg_t":5,"lg_n":6})";
  EXPECT_EQ(out,
            "xPOST /pub/all HTTP/1.1\r\nHost: 127.0.0.1:18181\r\nAccept: application/json\r\n"
            "Content-Type: text/plain\r\nContent-Length: 19\r\n\r\n" +
                body);
  HttpRequestHead head;
  ASSERT_EQ(parseHttpRequestHead(std::string_view(out).substr(1), 1024, head), Parse::kOk);
  EXPECT_EQ(head.content_length, body.size());
  EXPECT_EQ(out.substr(1 + head.head_len), body);
  EXPECT_EQ(nchanUserChannel("u12"), "user_u12");
  EXPECT_EQ(nchanRoomChannel("bench"), "room_bench");
  EXPECT_EQ(nchanSubscribeTarget("/sub", "u12", "bench"), "/sub?user=u12&room=bench");
}

TEST(LoadWire, NchanSubscriberCounts) {
  EXPECT_EQ(nchanSubscribers(R"({"messages": 2, "requested": -1, "subscribers": 0, "x": 9})"), 0u);
  EXPECT_EQ(nchanSubscribers(R"({"subscribers":1234567})"), 1234567u);
  EXPECT_EQ(nchanSubscribers("queued messages: 1\r\nactive subscribers: 42\r\nlast"), 42u);
  EXPECT_FALSE(nchanSubscribers(R"({"messages": 2})").has_value());
  EXPECT_FALSE(nchanSubscribers(R"({"subscribers": "x"})").has_value());
  EXPECT_FALSE(nchanSubscribers(R"({"subscribers": 12345678901234567890})").has_value());
  EXPECT_FALSE(nchanSubscribers("active subscribers:").has_value());
}

// ---- Histogram ----------------------------------------------------------------------------------

TEST(LoadHistogram, QuantilesWithinOnePercent) {
  Histogram h;
  for (uint64_t v = 1; v <= 100000; ++v) {
    h.record(v * 1000);
  }
  EXPECT_EQ(h.count(), 100000u);
  EXPECT_EQ(h.min(), 1000u);
  EXPECT_EQ(h.max(), 100000000u);
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const double exact = q * 100000 * 1000;
    EXPECT_NEAR(double(h.quantile(q)), exact, exact * 0.01) << q;
  }
  EXPECT_EQ(h.quantile(1.0), h.max());
  Histogram other;
  other.record(5);
  h.merge(other);
  EXPECT_EQ(h.min(), 5u);
  EXPECT_EQ(h.count(), 100001u);
  EXPECT_EQ(Histogram().quantile(0.5), 0u);
}

TEST(LoadHistogram, BucketsAreMonotonic) {
  size_t prev = 0;
  for (uint64_t v = 0; v < 5'000'000; v = v * 3 / 2 + 1) {
    const size_t i = Histogram::index(v);
    EXPECT_GE(i, prev);
    EXPECT_GE(Histogram::upperEdge(i), v);
    prev = i;
  }
  EXPECT_LT(Histogram::index(UINT64_MAX), Histogram::kBuckets);
}

// ---- Options ------------------------------------------------------------------------------------

std::string parse(std::vector<std::string> args, Options& o) {
  args.insert(args.begin(), "imgate_load");
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  bool help = false;
  return parseOptions(int(argv.size()), argv.data(), o, help);
}

TEST(LoadOptions, ParsesAndBoundsValues) {
  Options o;
  ASSERT_EQ(parse({"--scenario", "fanout", "--protocol=socketio", "--connections", "300",
                   "--threads", "3", "--push-rate", "20/s", "--duration", "1500ms", "--room", "",
                   "--source-ips", "127.1.0.1-127.1.0.10", "--tag", "commit=abc"},
                  o),
            "");
  EXPECT_EQ(o.scenario, Scenario::kFanout);
  EXPECT_EQ(o.protocol, Protocol::kSocketIo);
  EXPECT_EQ(o.connections, 300u);
  EXPECT_EQ(o.threads, 3u);
  EXPECT_EQ(o.push_rate, 20u);
  EXPECT_DOUBLE_EQ(o.duration_s, 1.5);
  EXPECT_TRUE(o.broadcast);  // an empty room means "all"
  EXPECT_EQ(o.source_last - o.source_first, 9u);
  ASSERT_EQ(o.tags.size(), 1u);
  EXPECT_EQ(o.tags[0].second, "abc");

  Options d;
  ASSERT_EQ(parse({"--smoke"}, d), "");
  EXPECT_EQ(d.connections, 50u);
  EXPECT_NE(d.source_first, 0u);  // loopback target: spread by default

  Options bad;
  EXPECT_NE(parse({"--duration", "601"}, bad), "");
  EXPECT_NE(parse({"--connections", "0"}, bad), "");
  EXPECT_NE(parse({"--connections", "99999999"}, bad), "");
  EXPECT_NE(parse({"--scenario", "fanout", "--pushes", "100001"}, bad), "");
  EXPECT_NE(parse({"--users-prefix", "a\"b"}, bad), "");
  EXPECT_NE(parse({"--target", "localhost:80"}, bad), "");
  EXPECT_NE(parse({"--bogus"}, bad), "");
  EXPECT_NE(parse({"--threads"}, bad), "");
  EXPECT_NE(parse({"--scenario", "backend"}, bad), "");
  EXPECT_NE(parse({"--protocol", "nchan", "--scenario", "uplink"}, bad), "");
  EXPECT_NE(parse({"--publish", "redis"}, bad), "");
  EXPECT_NE(parse({"--nchan-path", "sub"}, bad), "");
  EXPECT_NE(parse({"--imgate-pid", "12,"}, bad), "");
  EXPECT_NE(parse({"--imgate-pid", "0"}, bad), "");
  uint32_t a = 0;
  uint32_t b = 0;
  EXPECT_TRUE(parseIpRange("127.0.0.2", a, b));
  EXPECT_EQ(a, b);
  EXPECT_FALSE(parseIpRange("127.0.0.9-127.0.0.2", a, b));
}

TEST(LoadOptions, NchanAndServerPids) {
  Options d;
  ASSERT_EQ(parse({}, d), "");
  EXPECT_EQ(d.publisher, Publisher::kImgate);
  EXPECT_TRUE(d.server_pids.empty());
  EXPECT_EQ(d.imgate_pid, 0);

  Options o;
  ASSERT_EQ(parse({"--protocol", "nchan", "--scenario", "fanout", "--imgate-pid", "10,11,12"}, o),
            "");
  EXPECT_EQ(o.protocol, Protocol::kNchan);
  EXPECT_EQ(o.publisher, Publisher::kNchan);  // implied by the protocol
  EXPECT_EQ(o.server_pids, (std::vector<int64_t>{10, 11, 12}));
  EXPECT_EQ(o.imgate_pid, 10);
  EXPECT_EQ(o.nchan_path, "/sub");
  EXPECT_EQ(o.nchan_pub_path, "/pub/");

  Options e;  // an explicit --publish wins, in either order
  ASSERT_EQ(parse({"--publish", "imgate", "--protocol", "nchan", "--server-pids", "7",
                   "--nchan-pub-path", "/p/"},
                  e),
            "");
  EXPECT_EQ(e.publisher, Publisher::kImgate);
  EXPECT_EQ(e.server_pids, (std::vector<int64_t>{7}));
  EXPECT_EQ(e.nchan_pub_path, "/p/");

  std::string many = "1";
  for (size_t i = 1; i < kMaxServerPids; ++i) {
    many += "," + std::to_string(i + 1);
  }
  Options m;
  ASSERT_EQ(parse({"--imgate-pid", many}, m), "");
  EXPECT_EQ(m.server_pids.size(), kMaxServerPids);
  EXPECT_NE(parse({"--imgate-pid", many + ",99"}, m), "");
}

// ---- Client codecs ------------------------------------------------------------------------------

// Records what a codec reports; decodes the client's masked frames so logs do not depend on
// masking keys.
class Recorder : public ClientEvents {
 public:
  explicit Recorder(Protocol p) : protocol_(p) {}
  void send(std::string_view bytes) override {
    if (protocol_ == Protocol::kTcp) {
      log.push_back("send tcp type " + std::to_string(uint8_t(bytes[3])) + " id " +
                    std::to_string(readBe(bytes.substr(8, 8))) + " len " +
                    std::to_string(bytes.size()));
      return;
    }
    if (bytes.starts_with("GET ")) {
      log.push_back("send " + std::string(bytes.substr(0, bytes.find(' ', 4))));
      return;
    }
    const uint8_t opcode = uint8_t(bytes[0]) & 0x0F;
    size_t pos = 2;
    uint64_t n = uint8_t(bytes[1]) & 0x7F;
    if (n == 126) {
      n = readBe(bytes.substr(2, 2));
      pos = 4;
    }
    std::string payload;
    for (size_t i = 0; i < n; ++i) {
      payload.push_back(char(uint8_t(bytes[pos + 4 + i]) ^ uint8_t(bytes[pos + (i & 3)])));
    }
    log.push_back("send ws " + std::to_string(opcode) + " " + payload);
  }
  void established() override { log.push_back("established"); }
  void delivery(uint64_t t_ns, uint64_t n) override {
    log.push_back("delivery " + std::to_string(t_ns) + " " + std::to_string(n));
  }
  void uplinkReply(bool ok) override { log.push_back(ok ? "reply ok" : "reply error"); }
  void closed(std::string_view reason) override { log.push_back("closed " + std::string(reason)); }

  std::vector<std::string> log;

 private:
  Protocol protocol_;
};

CodecConfig testConfig(Protocol p) {
  CodecConfig c;
  c.protocol = p;
  c.host_header = "127.0.0.1:1";
  c.jwt_secret = "s";
  c.jwt_iat_s = 1700000000;
  c.jwt_exp_s = 1700003600;
  c.ws_salt = 99;
  c.max_message = 1 << 16;
  return c;
}

constexpr uint32_t kId = 7;

// Feeds `stream` in the chunks given by `cuts` the way Worker::feed does (unparsed bytes are
// handed back with the next chunk) and returns the event log.
std::vector<std::string> run(Protocol p, const std::string& stream, const std::vector<size_t>& cuts,
                             uint8_t* final_state = nullptr) {
  ClientCodec codec(testConfig(p));
  Recorder rec(p);
  uint8_t state = kStateConnecting;
  codec.start(state, kId, rec);
  std::string buf;
  size_t prev = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(stream.size());
  for (size_t end : ends) {
    buf.append(stream, prev, end - prev);
    prev = end;
    const size_t used = codec.consume(state, kId, u8(buf), buf.size(), rec);
    buf.erase(0, used);
    if (state == kStateDone) {
      break;
    }
  }
  if (final_state != nullptr) {
    *final_state = state;
  }
  return rec.log;
}

// Whole, byte by byte, and split once at every offset: the logs must be identical.
void expectSplitInvariant(Protocol p, const std::string& stream,
                          const std::vector<std::string>& expected) {
  EXPECT_EQ(run(p, stream, {}), expected);
  std::vector<size_t> bytes;
  for (size_t i = 1; i < stream.size(); ++i) {
    bytes.push_back(i);
  }
  EXPECT_EQ(run(p, stream, bytes), expected) << "byte by byte";
  for (size_t i = 1; i < stream.size(); ++i) {
    ASSERT_EQ(run(p, stream, {i}), expected) << "split at " << i;
  }
}

std::string upgrade101(const char* extra = "") {
  const std::string accept = wsAccept(wsKey(99, kId));
  return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: " +
         accept + "\r\n" + extra + "\r\n";
}

TEST(LoadClientCodec, PlainWebSocket) {
  const std::string stream = upgrade101() + text(R"({"lg_t":100,"lg_n":1})") +
                             serverWsFrame(0x89, "pi") +
                             // a fragmented message with a ping between its fragments
                             serverWsFrame(0x01, R"({"lg_t":200,)") + serverWsFrame(0x89, "x") +
                             serverWsFrame(0x80, R"("lg_n":2})") + text(R"({"ok":true})") +
                             text(R"({"type":"error","id":"","error":"unavailable"})") +
                             serverWsFrame(0x88, std::string("\x03\xE8", 2));
  const std::vector<std::string> expected = {
      "send GET /ws?token=" + makeJwt("s", "u7", 1700000000, 1700003600),
      "established",
      "delivery 100 1",
      "send ws 10 pi",
      "delivery 200 2",
      "send ws 10 x",
      "reply ok",
      "reply error",
      "closed ws_close_1000"};
  expectSplitInvariant(Protocol::kWs, stream, expected);
}

TEST(LoadClientCodec, Envelope) {
  const std::string stream =
      upgrade101("Sec-WebSocket-Protocol: imgate.v1\r\n") +
      text(R"({"t":"welcome","session":"1","streams":{}})") +
      text(R"({"t":"push","stream":"room:r","epoch":"9f","seq":3,"ack":true,"event":"bench",)"
           R"("data":"{\"lg_t\":5,\"lg_n\":3}"})") +
      text(R"({"t":"ack","id":"1","status":"ok","ts":1})") +
      text(R"({"t":"ack","id":"2","status":"unavailable","reason":"","ts":1})") +
      text(R"({"t":"pong"})");
  expectSplitInvariant(
      Protocol::kWsEnvelope, stream,
      {"send GET /ws?token=" + makeJwt("s", "u7", 1700000000, 1700003600), "established",
       "delivery 5 3", R"(send ws 1 {"t":"ack","stream":"room:r","seq":3})", "reply ok",
       "reply error"});
  // Without imgate.v1 selected the run is refused.
  uint8_t state = 0;
  EXPECT_EQ(run(Protocol::kWsEnvelope, upgrade101(), {}, &state).back(),
            "closed envelope_not_selected");
  EXPECT_EQ(state, kStateDone);
}

TEST(LoadClientCodec, SocketIo) {
  const std::string stream =
      upgrade101() + text(R"(0{"sid":"abc","upgrades":[],"pingInterval":25000})") +
      text(R"(40{"sid":"def"})") + text("2") + text(R"(42["bench",{"lg_t":9,"lg_n":4}])") +
      text(R"(4217["bench",{"lg_t":10,"lg_n":5}])") + text(R"(43123[{"ok":true}])") +
      text(R"(43124[{"error":"unavailable","reason":""}])") + text(R"(42["up",{"up":1}])") +
      text("41");
  expectSplitInvariant(
      Protocol::kSocketIo, stream,
      {"send GET /socket.io/?EIO=4&transport=websocket",
       "send ws 1 40{\"token\":\"" + makeJwt("s", "u7", 1700000000, 1700003600) + "\"}",
       "established", "send ws 1 3", "delivery 9 4", "delivery 10 5", "send ws 1 4317[]",
       "reply ok", "reply error", "reply ok", "closed sio_disconnect"});
  EXPECT_EQ(run(Protocol::kSocketIo,
                upgrade101() + text("0{}") + text(R"(44{"message":"invalid token"})"), {})
                .back(),
            "closed connect_error");
}

TEST(LoadClientCodec, TcpFrames) {
  std::string stream;
  appendTcpFrame(stream, kTcpHelloAck, 0, 1, {});
  appendTcpRawFrame(stream, kTcpPing, 0, 9, "ab");
  // A compressed reliable push in a room stream: acked with the stream's name.
  std::string body;
  {
    std::string fields;
    appendTcpFrame(fields, 0, 0, 0, {{kTagStream, "room:r"}, {kTagData, makePayload(11, 6, 300)}});
    body = zlibCompress(fields.substr(kTcpHeaderSize));
  }
  appendTcpRawFrame(stream, kTcpPush, kTcpCompressed | kTcpAckRequired, 42, body);
  std::string status_ok("\0\0", 2);
  std::string status_bad("\x0F\xA1", 2);
  appendTcpFrame(stream, kTcpSendAck, 0, 5, {{kTagStatus, status_ok}});
  appendTcpFrame(stream, kTcpSendAck, 0, 6, {{kTagStatus, status_bad}});
  appendTcpFrame(stream, kTcpPush, 0, 0, {{kTagEvent, "up"}, {kTagData, R"({"up":7})"}});
  appendTcpFrame(stream, kTcpError, 0, 0, {{kTagCode, std::string("\x03\xEA", 2)}});
  appendTcpFrame(stream, kTcpClose, 0, 0, {});
  const auto log = run(Protocol::kTcp, stream, {});
  ASSERT_FALSE(log.empty());
  EXPECT_TRUE(log[0].starts_with("send tcp type 1 id 1")) << log[0];
  const std::vector<std::string> rest(log.begin() + 1, log.end());
  EXPECT_EQ(rest,
            (std::vector<std::string>{"established", "send tcp type 4 id 9 len 22", "delivery 11 6",
                                      "send tcp type 8 id 42 len 31", "reply ok", "reply error",
                                      "reply ok", "closed tcp_error_1002"}));
  expectSplitInvariant(Protocol::kTcp, stream, log);
}

TEST(LoadClientCodec, NchanSubscriber) {
  // Raw published bodies in text or binary frames; anything else (a body that is not a bench
  // payload) is ignored, never taken for an uplink answer.
  const std::string stream =
      upgrade101() + text(R"({"lg_t":100,"lg_n":1})") +
      serverWsFrame(0x82, R"({"lg_t":101,"lg_n":2,"p":"xxxx"})") + text("hello") +
      serverWsFrame(0x89, "pi") + serverWsFrame(0x01, R"({"lg_t":102,)") +
      serverWsFrame(0x80, R"("lg_n":3})") + serverWsFrame(0x88, std::string("\x03\xE9", 2));
  expectSplitInvariant(
      Protocol::kNchan, stream,
      {"send GET /sub?user=u7&room=bench", "established", "delivery 100 1", "delivery 101 2",
       "send ws 10 pi", "delivery 102 3", "closed ws_close_1001"});
  // No token, the channels in the query, a plain upgrade.
  ClientCodec codec(testConfig(Protocol::kNchan));
  struct Capture : Recorder {
    Capture() : Recorder(Protocol::kNchan) {}
    void send(std::string_view bytes) override { raw = bytes; }
    std::string raw;
  } cap;
  uint8_t state = kStateConnecting;
  codec.start(state, 3, cap);
  EXPECT_EQ(state, kStateHttp);
  EXPECT_TRUE(cap.raw.starts_with("GET /sub?user=u3&room=bench HTTP/1.1\r\n")) << cap.raw;
  EXPECT_EQ(cap.raw.find("token"), std::string::npos);
  EXPECT_EQ(cap.raw.find("Sec-WebSocket-Protocol"), std::string::npos);
  EXPECT_EQ(run(Protocol::kNchan, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", {}).back(),
            "closed http_403");
}

TEST(LoadClientCodec, HandshakeFailures) {
  EXPECT_EQ(run(Protocol::kWs, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n", {}).back(),
            "closed http_401");
  EXPECT_EQ(run(Protocol::kWs,
                "HTTP/1.1 101 Switching\r\n"
                "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
                {})
                .back(),
            "closed bad_websocket_accept");
  EXPECT_EQ(run(Protocol::kWs, upgrade101() + std::string("\x81\xFE", 2), {}).back(),
            "closed ws_protocol_error");  // masked server frame
  EXPECT_EQ(run(Protocol::kTcp, "HTTP/1.1 400 Bad Request\r\n\r\n", {}).back(),
            "closed tcp_protocol_error");
  // Bytes that stay incomplete are handed back, never consumed or reported.
  uint8_t state = 0;
  const auto log = run(Protocol::kWs, upgrade101() + std::string("\x81\x7E\x01", 3), {}, &state);
  EXPECT_EQ(log.back(), "established");
  EXPECT_EQ(state, kStateOpen);
}

TEST(LoadClientCodec, KeepalivePings) {
  const std::vector<std::pair<Protocol, std::vector<std::string>>> cases = {
      {Protocol::kWs, {"send ws 9 "}},
      {Protocol::kWsEnvelope, {R"(send ws 1 {"t":"ping"})"}},
      {Protocol::kTcp, {"send tcp type 3 id 1 len 20"}},
      {Protocol::kSocketIo, {}},  // Engine.IO v4: only the server pings
      {Protocol::kNchan, {"send ws 9 "}},
  };
  for (const auto& [p, expected] : cases) {
    ClientCodec codec(testConfig(p));
    Recorder rec(p);
    codec.sendPing(rec);
    EXPECT_EQ(rec.log, expected) << protocolName(p);
  }
}

TEST(LoadClientCodec, UplinkMessages) {
  for (Protocol p : {Protocol::kWs, Protocol::kWsEnvelope, Protocol::kSocketIo, Protocol::kTcp}) {
    CodecConfig cfg = testConfig(p);
    cfg.uplink_bytes = 40;
    cfg.uplink_id_base = 1000;
    ClientCodec codec(cfg);
    Recorder rec(p);
    codec.sendUplink(kId, 5, rec);
    ASSERT_EQ(rec.log.size(), 1u);
    const std::string& s = rec.log[0];
    switch (p) {
      case Protocol::kWs:
        EXPECT_TRUE(s.starts_with(R"(send ws 1 {"up":1005,"p":"x)")) << s;
        break;
      case Protocol::kWsEnvelope:
        EXPECT_TRUE(
            s.starts_with(R"(send ws 1 {"t":"msg","id":"1005","event":"up","data":"{\"up\":1005)"))
            << s;
        break;
      case Protocol::kSocketIo:
        EXPECT_TRUE(s.starts_with(R"(send ws 1 421005["up",{"up":1005)")) << s;
        break;
      case Protocol::kTcp:
        EXPECT_TRUE(s.starts_with("send tcp type 5 id 1005")) << s;
        break;
      case Protocol::kNchan:
        break;  // not in the loop: below
    }
    uint64_t t = 0;
    uint64_t n = 0;
    EXPECT_FALSE(scanPayload(s, t, n));  // never mistaken for a push
  }
  ClientCodec nchan(testConfig(Protocol::kNchan));
  Recorder rec(Protocol::kNchan);
  nchan.sendUplink(kId, 5, rec);
  EXPECT_TRUE(rec.log.empty());  // subscribers only receive
}

}  // namespace
}  // namespace imgate::bench::load
