// SPDX-License-Identifier: Apache-2.0
#include "client_codec.h"

#include <algorithm>
#include <utility>

#include "wire.h"

namespace imgate::bench::load {

namespace {

constexpr size_t kMaxHead = 16 * 1024;

// The value of "key":"value" in a JSON text (no escapes expected in the values looked up).
std::string_view jsonStringField(std::string_view text, std::string_view quoted_key) {
  size_t pos = text.find(quoted_key);
  if (pos == std::string_view::npos) {
    return {};
  }
  pos += quoted_key.size();
  while (pos < text.size() && (text[pos] == ' ' || text[pos] == ':')) {
    ++pos;
  }
  if (pos >= text.size() || text[pos] != '"') {
    return {};
  }
  const size_t end = text.find('"', pos + 1);
  if (end == std::string_view::npos) {
    return {};
  }
  return text.substr(pos + 1, end - pos - 1);
}

}  // namespace

ClientCodec::ClientCodec(CodecConfig config)
    : config_(std::move(config)), rng_(config_.ws_salt | 1) {
  out_.reserve(4096);
}

std::string ClientCodec::user(uint32_t id) const {
  return config_.users_prefix + std::to_string(id);
}

std::string ClientCodec::token(uint32_t id) const {
  return makeJwt(config_.jwt_secret, user(id), config_.jwt_iat_s, config_.jwt_exp_s);
}

uint32_t ClientCodec::nextMask() {
  // xorshift64*: masks need not be cryptographic against our own server.
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  return uint32_t((rng_ * 0x2545F4914F6CDD1DULL) >> 32);
}

void ClientCodec::fail(uint8_t& state, std::string_view reason, ClientEvents& events) {
  if (state != kStateDone) {
    events.closed(reason);
    state = kStateDone;
  }
}

void ClientCodec::sendWs(uint8_t opcode, std::string_view payload, ClientEvents& events) {
  out_.clear();
  appendWsFrame(out_, opcode, payload, nextMask());
  events.send(out_);
}

void ClientCodec::start(uint8_t& state, uint32_t id, ClientEvents& events) {
  out_.clear();
  if (config_.protocol == Protocol::kTcp) {
    const std::string jwt = token(id);
    appendTcpFrame(out_, kTcpHello, 0, 1,
                   {{kTagToken, jwt}, {kTagDevice, "bench"}, {kTagSdkVersion, "imgate_load/1"}});
    state = kStateHello;
    events.send(out_);
    return;
  }
  out_.append("GET ");
  if (config_.protocol == Protocol::kSocketIo) {
    out_.append(config_.sio_path);
    out_.append("?EIO=4&transport=websocket");
  } else if (config_.protocol == Protocol::kNchan) {
    // No token: the bench's Nchan checks nothing (an auth subrequest per connection would need
    // a server of its own); the channels come from the query.
    out_.append(nchanSubscribeTarget(config_.nchan_path, user(id), config_.room));
  } else {
    out_.append(config_.ws_path);
    out_.append("?token=");
    out_.append(token(id));
  }
  out_.append(" HTTP/1.1\r\nHost: ");
  out_.append(config_.host_header);
  out_.append("\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ");
  out_.append(wsKey(config_.ws_salt, id));
  out_.append("\r\nSec-WebSocket-Version: 13\r\n");
  if (config_.protocol == Protocol::kWsEnvelope) {
    out_.append("Sec-WebSocket-Protocol: imgate.v1\r\n");
  }
  out_.append("\r\n");
  state = kStateHttp;
  events.send(out_);
}

size_t ClientCodec::consume(uint8_t& state, uint32_t id, const uint8_t* data, size_t size,
                            ClientEvents& events) {
  if (state == kStateDone || state < kStateHttp) {
    return size;  // nothing is expected before start(); bytes after a close are ignored
  }
  if (config_.protocol == Protocol::kTcp) {
    return consumeTcp(state, data, size, events);
  }
  return consumeWebSocket(state, id, data, size, events);
}

// ---- WebSocket, envelope, Socket.IO -------------------------------------------------------------

size_t ClientCodec::upgradeResponse(uint8_t& state, uint32_t id, std::string_view buf,
                                    ClientEvents& events) {
  HttpHead head;
  const Parse r = parseHttpHead(buf, kMaxHead, head);
  if (r == Parse::kNeedMore) {
    return 0;
  }
  if (r == Parse::kError) {
    fail(state, "bad_http_response", events);
    return 0;
  }
  if (head.status != 101) {
    fail(state, "http_" + std::to_string(head.status), events);
    return 0;
  }
  const std::string_view h = buf.substr(0, head.head_len);
  const auto accept = headerValue(h, "sec-websocket-accept");
  if (!accept || *accept != wsAccept(wsKey(config_.ws_salt, id))) {
    fail(state, "bad_websocket_accept", events);
    return 0;
  }
  if (config_.protocol == Protocol::kWsEnvelope) {
    const auto proto = headerValue(h, "sec-websocket-protocol");
    if (!proto || *proto != "imgate.v1") {
      fail(state, "envelope_not_selected", events);
      return 0;
    }
    state = kStateWelcome;
  } else if (config_.protocol == Protocol::kSocketIo) {
    state = kStateSioOpen;
  } else {
    state = kStateOpen;
    events.established();
  }
  return head.head_len;
}

size_t ClientCodec::consumeWebSocket(uint8_t& state, uint32_t id, const uint8_t* data, size_t size,
                                     ClientEvents& events) {
  size_t off = 0;
  if (state == kStateHttp) {
    off = upgradeResponse(state, id, std::string_view(reinterpret_cast<const char*>(data), size),
                          events);
    if (off == 0) {
      return 0;
    }
  }
  while (off < size && state != kStateDone) {
    WsFrame f;
    const Parse r = parseWsFrame(data + off, size - off, config_.max_message, f);
    if (r == Parse::kNeedMore) {
      break;
    }
    if (r == Parse::kError) {
      fail(state, "ws_protocol_error", events);
      break;
    }
    const auto payload = [&](size_t at, const WsFrame& fr) {
      return std::string_view(reinterpret_cast<const char*>(data + at + fr.header_len),
                              size_t(fr.payload_len));
    };
    if (f.opcode == kWsContinuation) {
      fail(state, "ws_protocol_error", events);  // a continuation with no message started
      break;
    }
    if ((f.opcode == kWsText || f.opcode == kWsBinary) && !f.fin) {
      // A fragmented message: wait until its last fragment is buffered too, then handle the
      // whole message and the control frames interleaved with it, in order.
      size_t end = off + f.size();
      uint64_t total = f.payload_len;
      bool complete = false;
      bool bad = false;
      while (end < size) {
        WsFrame g;
        const Parse rg = parseWsFrame(data + end, size - end, config_.max_message, g);
        if (rg == Parse::kNeedMore) {
          break;
        }
        if (rg == Parse::kError || g.opcode == kWsText || g.opcode == kWsBinary) {
          bad = true;
          break;
        }
        if (g.opcode == kWsContinuation) {
          total += g.payload_len;
          if (total > config_.max_message) {
            bad = true;
            break;
          }
        }
        end += g.size();
        if (g.opcode == kWsContinuation && g.fin) {
          complete = true;
          break;
        }
      }
      if (bad) {
        fail(state, "ws_protocol_error", events);
        break;
      }
      if (!complete) {
        if (end - off > maxBuffered()) {
          fail(state, "ws_message_too_big", events);
        }
        break;
      }
      assembled_.clear();
      std::string controls;  // control frames met between fragments, handled after
      for (size_t at = off; at < end;) {
        WsFrame g;
        (void)parseWsFrame(data + at, size - at, config_.max_message, g);
        if (g.opcode <= kWsBinary) {
          assembled_.append(payload(at, g));
        } else {
          controls.append(reinterpret_cast<const char*>(data + at), g.size());
        }
        at += g.size();
      }
      onWsMessage(state, id, assembled_, f.opcode == kWsText, events);
      if (!controls.empty() && state != kStateDone) {
        consumeWebSocket(state, id, reinterpret_cast<const uint8_t*>(controls.data()),
                         controls.size(), events);
      }
      off = end;
      continue;
    }
    const std::string_view body = payload(off, f);
    off += f.size();
    switch (f.opcode) {
      case kWsText:
      case kWsBinary:
        onWsMessage(state, id, body, f.opcode == kWsText, events);
        break;
      case kWsPing:
        sendWs(kWsPong, body, events);
        break;
      case kWsPong:
        break;
      case kWsClose: {
        const unsigned code =
            body.size() >= 2 ? (unsigned(uint8_t(body[0])) << 8) | uint8_t(body[1]) : 1005;
        fail(state, "ws_close_" + std::to_string(code), events);
        break;
      }
      default:
        break;
    }
  }
  return off;
}

void ClientCodec::onWsMessage(uint8_t& state, uint32_t id, std::string_view msg, bool text,
                              ClientEvents& events) {
  switch (config_.protocol) {
    case Protocol::kWsEnvelope:
      onEnvelope(state, msg, events);
      return;
    case Protocol::kSocketIo:
      if (text) {
        onSocketIo(state, id, msg, events);
      }
      return;  // binary attachments are not part of any scenario
    case Protocol::kNchan:
      // Raw published bodies only: nothing here answers an uplink message.
      if (uint64_t t = 0, n = 0; state == kStateOpen && scanPayload(msg, t, n)) {
        events.delivery(t, n);
      }
      return;
    default:
      break;
  }
  if (state != kStateOpen) {
    return;
  }
  uint64_t t = 0;
  uint64_t n = 0;
  if (scanPayload(msg, t, n)) {
    events.delivery(t, n);
  } else {
    // Plain WebSocket acks: the backend's reply, or {"type":"error",...} (ws_codec.cc).
    events.uplinkReply(!msg.starts_with("{\"type\":\"error\""));
  }
}

void ClientCodec::onEnvelope(uint8_t& state, std::string_view msg, ClientEvents& events) {
  // Inside the envelope's JSON strings every quote is escaped, so "t":" only matches the
  // envelope's own type field.
  const std::string_view type = jsonStringField(msg, "\"t\"");
  if (state == kStateWelcome) {
    if (type == "welcome") {
      state = kStateOpen;
      events.established();
    }
    return;
  }
  if (state != kStateOpen) {
    return;
  }
  if (type == "push") {
    uint64_t t = 0;
    uint64_t n = 0;
    if (scanPayload(msg, t, n)) {
      events.delivery(t, n);
    } else {
      events.uplinkReply(true);  // the echo stage's copy of an uplink message
    }
    if (msg.find("\"ack\":true") != std::string_view::npos) {
      uint64_t seq = 0;
      const std::string_view stream = jsonStringField(msg, "\"stream\"");
      if (!stream.empty() && scanU64(msg, "seq", seq)) {
        std::string ack = "{\"t\":\"ack\",\"stream\":\"";
        ack.append(stream);
        ack.append("\",\"seq\":");
        ack.append(std::to_string(seq));
        ack.push_back('}');
        sendWs(kWsText, ack, events);
      }
    }
  } else if (type == "ack") {
    events.uplinkReply(jsonStringField(msg, "\"status\"") == "ok");
  }
}

void ClientCodec::onSocketIo(uint8_t& state, uint32_t id, std::string_view msg,
                             ClientEvents& events) {
  if (msg.empty()) {
    return;
  }
  switch (msg[0]) {
    case '0':  // Engine.IO open: authenticate the default namespace
      if (state == kStateSioOpen) {
        std::string connect = "40{\"token\":\"";
        connect.append(token(id));
        connect.append("\"}");
        state = kStateSioConnect;
        sendWs(kWsText, connect, events);
      }
      return;
    case '1':
      fail(state, "eio_close", events);
      return;
    case '2':
      sendWs(kWsText, "3", events);
      return;
    case '4':
      break;
    default:
      return;  // pong, noop
  }
  if (msg.size() < 2) {
    return;
  }
  const char type = msg[1];
  std::string_view rest = msg.substr(2);
  if (!rest.empty() && rest[0] == '/') {
    const size_t comma = rest.find(',');
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  size_t digits = 0;
  while (digits < rest.size() && digits < 19 && rest[digits] >= '0' && rest[digits] <= '9') {
    ++digits;
  }
  const std::string_view ack_id = rest.substr(0, digits);
  const std::string_view args = rest.substr(digits);
  switch (type) {
    case '0':
      if (state == kStateSioConnect) {
        state = kStateOpen;
        events.established();
      }
      return;
    case '4':
      fail(state, "connect_error", events);
      return;
    case '1':
      fail(state, "sio_disconnect", events);
      return;
    case '2': {
      if (state != kStateOpen) {
        return;
      }
      uint64_t t = 0;
      uint64_t n = 0;
      if (scanPayload(args, t, n)) {
        events.delivery(t, n);
      } else {
        events.uplinkReply(true);  // echo of an uplink event
      }
      if (!ack_id.empty() && state == kStateOpen) {
        std::string ack = "43";
        ack.append(ack_id);
        ack.append("[]");
        sendWs(kWsText, ack, events);
      }
      return;
    }
    case '3':
      if (state == kStateOpen) {
        events.uplinkReply(!args.starts_with("[{\"error\":"));
      }
      return;
    default:
      return;
  }
}

// ---- TCP frames ---------------------------------------------------------------------------------

size_t ClientCodec::consumeTcp(uint8_t& state, const uint8_t* data, size_t size,
                               ClientEvents& events) {
  size_t off = 0;
  while (off < size && state != kStateDone) {
    TcpFrame f;
    const uint32_t max_len = uint32_t(std::min<uint64_t>(config_.max_message, UINT32_MAX));
    const Parse r = parseTcpHeader(data + off, size - off, max_len, f);
    if (r == Parse::kNeedMore) {
      break;
    }
    if (r == Parse::kError) {
      fail(state, "tcp_protocol_error", events);
      break;
    }
    std::string_view body(reinterpret_cast<const char*>(data + off + kTcpHeaderSize), f.length);
    off += f.size();
    if ((f.flags & kTcpCompressed) != 0) {
      if (!inflateZlib(body, config_.max_message, inflated_)) {
        fail(state, "tcp_bad_zlib", events);
        break;
      }
      body = inflated_;
    }
    std::string_view value;
    switch (f.type) {
      case kTcpHelloAck:
        if (state == kStateHello) {
          state = kStateOpen;
          events.established();
        }
        break;
      case kTcpPing:
        out_.clear();
        appendTcpRawFrame(out_, kTcpPong, 0, f.id, body);
        events.send(out_);
        break;
      case kTcpPush: {
        if (state != kStateOpen) {
          break;
        }
        if (findTlv(body, kTagData, value) == Parse::kError) {
          fail(state, "tcp_protocol_error", events);
          break;
        }
        uint64_t t = 0;
        uint64_t n = 0;
        if (scanPayload(value, t, n)) {
          events.delivery(t, n);
        } else {
          events.uplinkReply(true);  // the echo stage's copy of an uplink SEND
        }
        if ((f.flags & kTcpAckRequired) != 0 && f.id != 0 && state == kStateOpen) {
          std::string_view stream;
          const Parse rs = findTlv(body, kTagStream, stream);
          std::string ack;
          if (rs == Parse::kOk) {
            appendTcpFrame(ack, kTcpPushAck, 0, f.id, {{kTagStream, stream}});
          } else {
            appendTcpFrame(ack, kTcpPushAck, 0, f.id, {});
          }
          events.send(ack);
        }
        break;
      }
      case kTcpSendAck: {
        if (state != kStateOpen) {
          break;
        }
        const Parse rs = findTlv(body, kTagStatus, value);
        events.uplinkReply(rs == Parse::kNeedMore || (rs == Parse::kOk && readBe(value) == 0));
        break;
      }
      case kTcpError:
      case kTcpClose: {
        uint64_t code = 0;
        if (findTlv(body, kTagCode, value) == Parse::kOk) {
          code = readBe(value);
        }
        fail(state,
             std::string(f.type == kTcpError ? "tcp_error_" : "tcp_close_") + std::to_string(code),
             events);
        break;
      }
      case kTcpGoaway:
        fail(state, "tcp_goaway", events);
        break;
      default:
        break;  // PONG, READ and types added later
    }
  }
  return off;
}

void ClientCodec::sendPing(ClientEvents& events) {
  switch (config_.protocol) {
    case Protocol::kWs:
    case Protocol::kNchan:
      sendWs(kWsPing, "", events);
      return;
    case Protocol::kWsEnvelope:
      sendWs(kWsText, R"({"t":"ping"})", events);
      return;
    case Protocol::kTcp:
      out_.clear();
      appendTcpRawFrame(out_, kTcpPing, 0, 1, "");
      events.send(out_);
      return;
    case Protocol::kSocketIo:
      return;
  }
}

// ---- Uplink -------------------------------------------------------------------------------------

void ClientCodec::sendUplink(uint32_t id, uint64_t k, ClientEvents& events) {
  (void)id;
  const std::string num = std::to_string(config_.uplink_id_base + k);
  // Uplink bodies never contain lg_t, so echoes are told apart from pushes.
  std::string body = "{\"up\":" + num;
  if (body.size() + 10 < config_.uplink_bytes) {
    body.append(",\"p\":\"");
    body.append(config_.uplink_bytes - body.size() - 2, 'x');
    body.push_back('"');
  }
  body.push_back('}');
  switch (config_.protocol) {
    case Protocol::kWs:
      sendWs(kWsText, body, events);
      return;
    case Protocol::kWsEnvelope: {
      // The body travels as a JSON string: escape its quotes.
      std::string msg = "{\"t\":\"msg\",\"id\":\"" + num + "\",\"event\":\"up\",\"data\":\"";
      for (char c : body) {
        if (c == '"') {
          msg.push_back('\\');
        }
        msg.push_back(c);
      }
      msg.append("\"}");
      sendWs(kWsText, msg, events);
      return;
    }
    case Protocol::kSocketIo: {
      std::string msg = "42" + num + "[\"up\"," + body + "]";
      sendWs(kWsText, msg, events);
      return;
    }
    case Protocol::kTcp:
      out_.clear();
      appendTcpFrame(out_, kTcpSend, kTcpAckRequired, config_.uplink_id_base + k,
                     {{kTagEvent, "up"}, {kTagData, body}});
      events.send(out_);
      return;
    case Protocol::kNchan:
      return;  // options.cc refuses the uplink scenario: Nchan subscribers only receive
  }
}

}  // namespace imgate::bench::load
