// SPDX-License-Identifier: Apache-2.0
// proto.tcp_frame: the factory, its config schema and the registration line.
#include <memory>
#include <span>
#include <string_view>
#include <utility>

#include "imgate/sdk/module.h"
#include "tcp_frame_codec.h"

namespace imgate::mod::tcp_frame {

namespace {

constexpr int64_t kKiB = 1024;
constexpr int64_t kMiB = 1024 * kKiB;

constexpr ParamSpec kSchema[] = {
    {.key = "max_frame",
     .type = ParamType::kSize,
     .default_value = "64KiB",
     .min = 256,
     .max = 16 * kMiB,
     .help = "largest frame body, on the wire and after inflating (ERROR+CLOSE 1009 above it, "
             "checked from the header before buffering); 64KiB fits chat and signalling and "
             "bounds per-session buffering; below 256 a HELLO with a short token would not fit"},
    {.key = "compression",
     .type = ParamType::kBool,
     .default_value = "true",
     .help = "zlib-compress outbound PUSH and SEND_ACK bodies of at least compress_min_size "
             "bytes when that makes them smaller; JSON payloads shrink 3-5x and every client "
             "must inflate anyway (inbound compressed frames are always accepted)"},
    {.key = "compress_min_size",
     .type = ParamType::kSize,
     .default_value = "256",
     .min = 0,
     .max = 64 * kMiB,
     .help = "outbound bodies shorter than this are sent uncompressed: zlib's 6-byte framing "
             "and per-stream setup cost more than they save on short chat messages"},
    {.key = "compression_level",
     .type = ParamType::kInt,
     .default_value = "1",
     .min = 1,
     .max = 9,
     .help = "zlib level; 1 is several times faster than 6 and loses little on short messages"},
    {.key = "reconnect_hint",
     .type = ParamType::kString,
     .default_value = "",
     .help = "sent in GOAWAY when the server drains: where clients should reconnect (e.g. the "
             "pool's DNS name); empty (default) means the same address, which a load balancer "
             "in front of several nodes routes elsewhere"},
    {.key = "reconnect_jitter",
     .type = ParamType::kDuration,
     .default_value = "5s",
     .min = 0,
     .max = 10 * 60 * 1000,
     .help = "sent in GOAWAY: clients wait a random time up to this before reconnecting, so a "
             "draining node's clients do not all reconnect at once; 5s spreads 100k clients to "
             "20k connects/s"},
};

class TcpFrameConfig final : public ProtocolConfig {
 public:
  explicit TcpFrameConfig(TcpFrameOptions options)
      : options_(std::make_shared<const TcpFrameOptions>(std::move(options))) {}
  Sniff sniff(std::string_view first_bytes) const override {
    if (first_bytes.empty()) {
      return Sniff::kNeedMore;
    }
    if (static_cast<uint8_t>(first_bytes[0]) != kMagic0) {
      return Sniff::kNoMatch;
    }
    if (first_bytes.size() < 2) {
      return Sniff::kNeedMore;
    }
    return static_cast<uint8_t>(first_bytes[1]) == kMagic1 ? Sniff::kMatch : Sniff::kNoMatch;
  }
  CodecPtr createCodec() const override { return std::make_unique<TcpFrameCodec>(options_); }
  bool handshakeInBand() const override { return true; }

 private:
  std::shared_ptr<const TcpFrameOptions> options_;
};

class TcpFrameFactory final : public ProtocolFactory {
 public:
  std::string_view name() const override { return "proto.tcp_frame"; }
  std::span<const ParamSpec> schema() const override { return kSchema; }
  std::string_view description() const override {
    return "binary TCP frame protocol with in-band HELLO auth (stream listeners; mobile SDKs)";
  }
  Result<ProtocolConfigPtr> compile(const ConfigView& config, LoadContext&) const override {
    TcpFrameOptions options;
    options.max_frame = static_cast<uint32_t>(config.getSize("max_frame"));
    options.compression = config.getBool("compression");
    options.compress_min_size = static_cast<uint32_t>(config.getSize("compress_min_size"));
    options.compression_level = static_cast<int>(config.getInt("compression_level"));
    options.reconnect_hint = config.getString("reconnect_hint");
    if (options.reconnect_hint.size() > kMaxReason) {
      return fail(Errc::kInvalidConfig, config.location("reconnect_hint") +
                                            ": longer than 256 bytes");
    }
    options.reconnect_jitter = config.getDuration("reconnect_jitter");
    return std::make_shared<const TcpFrameConfig>(std::move(options));
  }
};

}  // namespace

}  // namespace imgate::mod::tcp_frame

IMGATE_MODULE(proto_tcp_frame, imgate::mod::tcp_frame::TcpFrameFactory, "0.1.0")
