#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A proto.tcp_frame client (docs/protocol/tcp-frame.md), standard library only.

As a program:   scripts/imgate_tcp.py 127.0.0.1:7100 --token "$JWT" --device laptop
  Prints HELLO_ACK and every frame the server sends (pushes as `push seq=.. event=..: data`),
  answers server pings, acks pushes that ask for it (per stream, cumulative), drops duplicate
  pushes (same stream and seq, e.g. retransmitted after a lost ack), and sends each stdin line
  as a SEND ("event: text" sends with that event; a plain line sends with --event). "/join room",
  "/leave room", "/read [stream] seq", "/ping" and "/quit" are commands. --resume FILE keeps the
  stream positions in FILE (JSON) and resumes from them on the next run.
As a module:    from imgate_tcp import TcpFrameClient (the integration tests do); Streams keeps
  positions, drops duplicates and builds the HELLO's resume field.
"""
import argparse
import json
import os
import socket
import struct
import sys
import threading
import time
import zlib

MAGIC = b"\xB7\x46"
VERSION = 1
HEADER = struct.Struct(">2sBBB3xQI")  # magic, version, type, flags, reserved, id, length

(HELLO, HELLO_ACK, PING, PONG, SEND, SEND_ACK, PUSH, PUSH_ACK, JOIN, LEAVE, ERROR, GOAWAY, CLOSE,
 READ) = range(1, 15)
TYPE_NAMES = {1: "HELLO", 2: "HELLO_ACK", 3: "PING", 4: "PONG", 5: "SEND", 6: "SEND_ACK",
              7: "PUSH", 8: "PUSH_ACK", 9: "JOIN", 10: "LEAVE", 11: "ERROR", 12: "GOAWAY",
              13: "CLOSE", 14: "READ"}

F_COMPRESSED, F_ACK_REQUIRED, F_BINARY = 0x01, 0x02, 0x04

# tag -> (name, kind): kind is "str", "bytes" or the width of a big-endian unsigned integer.
TAGS = {
    0x01: ("token", "str"), 0x02: ("device", "str"), 0x03: ("sdk_version", "str"),
    0x04: ("resume_session", 8), 0x05: ("last_seq", 8), 0x06: ("session_id", 8),
    0x07: ("heartbeat_ms", 4), 0x08: ("idle_timeout_ms", 4), 0x09: ("server_time_ms", 8),
    0x0A: ("user", "str"), 0x0B: ("app", "str"), 0x0C: ("event", "str"), 0x0D: ("data", "bytes"),
    0x0E: ("status", 2), 0x0F: ("reason", "str"), 0x10: ("code", 2), 0x11: ("room", "str"),
    0x12: ("reconnect_hint", "str"), 0x13: ("retry_after_ms", 4), 0x14: ("msg_id", "str"),
    0x15: ("ping_interval_ms", 4), 0x16: ("kind", 1), 0x17: ("stream", "str"),
    0x18: ("epoch", 8), 0x19: ("resume", "str"), 0x1A: ("streams", "str"),
}
TAG_OF = {name: (tag, kind) for tag, (name, kind) in TAGS.items()}


class ProtocolError(Exception):
    pass


def epoch_hex(epoch):
    """Epochs as text: lower-case hex without leading zeros ("0" for 0)."""
    return format(epoch, "x")


def resume_json(positions):
    """The HELLO's resume field from {stream: (epoch, seq)} (epoch an int or a hex string)."""
    out = {}
    for stream, (epoch, seq) in positions.items():
        out[stream] = {"epoch": epoch if isinstance(epoch, str) else epoch_hex(epoch),
                       "seq": int(seq)}
    return json.dumps(out, separators=(",", ":"))


def tlv(**fields):
    """Encodes keyword fields (names from TAGS) as TLV records; None values are skipped."""
    out = b""
    for name, value in fields.items():
        if value is None:
            continue
        tag, kind = TAG_OF[name]
        if isinstance(kind, int):
            raw = value.to_bytes(kind, "big")
        elif isinstance(value, str):
            raw = value.encode()
        else:
            raw = bytes(value)
        out += struct.pack(">BI", tag, len(raw)) + raw
    return out


def parse_fields(body):
    fields, pos = {}, 0
    while pos < len(body):
        if len(body) - pos < 5:
            raise ProtocolError("truncated field header")
        tag, length = struct.unpack_from(">BI", body, pos)
        pos += 5
        if length > len(body) - pos:
            raise ProtocolError("field runs past the body")
        raw = body[pos:pos + length]
        pos += length
        if tag not in TAGS:
            continue  # unknown tags are skipped (forward compatibility)
        name, kind = TAGS[tag]
        if isinstance(kind, int):
            fields[name] = int.from_bytes(raw, "big")
        elif kind == "str":
            fields[name] = raw.decode(errors="replace")
        else:
            fields[name] = raw
    return fields


def frame(ftype, body=b"", fid=0, flags=0, compress=False):
    if compress:
        packed = zlib.compress(body)
        if len(packed) < len(body):
            body, flags = packed, flags | F_COMPRESSED
    return HEADER.pack(MAGIC, VERSION, ftype, flags, fid, len(body)) + body


class Frame:
    def __init__(self, ftype, flags, fid, body):
        self.type, self.flags, self.id, self.body = ftype, flags, fid, body
        self.fields = {} if ftype in (PING, PONG) else parse_fields(body)

    @property
    def name(self):
        return TYPE_NAMES.get(self.type, str(self.type))

    def __getitem__(self, key):
        return self.fields[key]

    def get(self, key, default=None):
        return self.fields.get(key, default)

    @property
    def stream(self):
        """PUSH (seq != 0), READ: the stream named; "" when absent (the user stream)."""
        return self.fields.get("stream", "")

    @property
    def streams(self):
        """HELLO_ACK: {stream: {"epoch": int, "seq": N, "recovery": str, "replayed": K}}."""
        raw = self.fields.get("streams")
        if raw is None:
            return {}
        out = json.loads(raw)
        for v in out.values():
            v["epoch"] = int(v["epoch"], 16)
        return out

    def __repr__(self):
        return f"<{self.name} id={self.id} flags={self.flags:#x} {self.fields}>"


class Streams:
    """Client-side stream positions: what a reliable client keeps across reconnects.

    accept(push) returns False for a duplicate (same stream, epoch and a seq already seen; the
    server retransmits unacked pushes with the same seq) and True otherwise; a new epoch means
    the stream's history was lost and counting restarts. opened(hello_ack) applies the HELLO_ACK
    streams answer and returns the streams whose recovery is "impossible" (resync those from
    the backend). resume() is the HELLO's resume JSON."""

    def __init__(self, positions=None):
        self.positions = dict(positions or {})  # stream -> (epoch, seq)

    def accept(self, push):
        if push.id == 0:
            return True
        epoch, seq = self.positions.get(push.stream, (None, 0))
        new_epoch = push.get("epoch", 0)
        if epoch == new_epoch and push.id <= seq:
            return False
        self.positions[push.stream] = (new_epoch, push.id)
        return True

    def opened(self, hello_ack):
        impossible = []
        for stream, s in hello_ack.streams.items():
            self.positions[stream] = (s["epoch"], s["seq"])
            if s["recovery"] == "impossible":
                impossible.append(stream)
        return impossible

    def resume(self):
        return resume_json(self.positions) if self.positions else None


class TcpFrameClient:
    """One connection. recv() returns the next frame (server PINGs are answered on the way)."""

    def __init__(self, host, port, timeout=5.0, max_frame=16 << 20):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.max_frame = max_frame
        self.buf = b""
        self.next_id = 1
        self.auto_pong = True
        self.closed = False

    def _id(self):
        fid, self.next_id = self.next_id, self.next_id + 1
        return fid

    # ---- sending ----
    def send_raw(self, data):
        self.sock.sendall(data)

    def hello(self, token=None, device=None, sdk_version="imgate_tcp.py/1", resume_session=None,
              last_seq=None, wait=True, epoch=None, resume=None):
        """`epoch` (int) with `last_seq`: the user stream's position. `resume`: a JSON string,
        or {stream: (epoch, seq)} (see resume_json), for any streams."""
        if resume is not None and not isinstance(resume, (str, bytes)):
            resume = resume_json(resume)
        self.send_raw(frame(HELLO, tlv(token=token, device=device, sdk_version=sdk_version,
                                       resume_session=resume_session, last_seq=last_seq,
                                       epoch=epoch, resume=resume),
                            self._id()))
        return self.recv() if wait else None

    def send(self, data, event=None, binary=False, ack=True, compress=False, msg_id=None):
        fid = self._id()
        if isinstance(data, str):
            data = data.encode()
        flags = (F_BINARY if binary else 0) | (F_ACK_REQUIRED if ack else 0)
        self.send_raw(frame(SEND, tlv(msg_id=msg_id, event=event, data=data), fid, flags,
                            compress))
        return fid

    def push_ack(self, seq, stream=None):
        """Acks every seq <= `seq` of `stream` (None or "": the user stream)."""
        self.send_raw(frame(PUSH_ACK, tlv(stream=stream or None), seq))

    def read(self, seq, stream=None):
        """Marks `stream` read up to `seq` (> 0) for the user's other devices."""
        self.send_raw(frame(READ, tlv(stream=stream or None), seq))

    def join(self, room):
        self.send_raw(frame(JOIN, tlv(room=room), self._id()))

    def leave(self, room):
        self.send_raw(frame(LEAVE, tlv(room=room), self._id()))

    def ping(self, body=b""):
        fid = self._id()
        self.send_raw(frame(PING, body, fid))
        return fid

    def close(self, code=1000, reason=""):
        self.send_raw(frame(CLOSE, tlv(code=code, reason=reason or None)))

    # ---- receiving ----
    def _parse_one(self):
        if len(self.buf) < HEADER.size:
            if self.buf[:2] and not MAGIC.startswith(self.buf[:2]):
                raise ProtocolError("bad magic")
            return None
        magic, version, ftype, flags, fid, length = HEADER.unpack_from(self.buf)
        if magic != MAGIC or version != VERSION:
            raise ProtocolError("bad magic or version")
        if length > self.max_frame:
            raise ProtocolError("frame too big")
        if len(self.buf) < HEADER.size + length:
            return None
        body = self.buf[HEADER.size:HEADER.size + length]
        self.buf = self.buf[HEADER.size + length:]
        if flags & F_COMPRESSED:
            d = zlib.decompressobj()
            body = d.decompress(body, self.max_frame + 1)
            if len(body) > self.max_frame or not d.eof:
                raise ProtocolError("bad compressed body")
        return Frame(ftype, flags, fid, body)

    def recv(self, timeout=5.0):
        """The next frame, or None when the server closed the connection. Raises
        socket.timeout when nothing arrives in time."""
        deadline = time.time() + timeout
        while True:
            f = self._parse_one()
            if f is not None:
                if f.type == PING and self.auto_pong:
                    self.send_raw(frame(PONG, f.body, f.id))
                return f
            left = deadline - time.time()
            if left <= 0:
                raise socket.timeout("no frame within %.1fs" % timeout)
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                self.closed = True
                return None
            self.buf += chunk

    def recv_type(self, ftype, timeout=5.0):
        """Skips frames until one of `ftype` arrives (PONGs and PINGs in between are dropped)."""
        while True:
            f = self.recv(timeout)
            if f is None or f.type == ftype:
                return f
            if f.type not in (PING, PONG):
                raise ProtocolError(f"expected {TYPE_NAMES[ftype]}, got {f!r}")

    def recv_eof(self, timeout=5.0):
        """Reads until the server closes; returns the frames it sent before."""
        frames = []
        while True:
            f = self.recv(timeout)
            if f is None:
                return frames
            frames.append(f)

    def shutdown(self):
        try:
            self.sock.close()
        except OSError:
            pass


def describe(f):
    if f.type == PUSH:
        data = f.get("data", b"")
        text = data.hex() if f.flags & F_BINARY else data.decode(errors="replace")
        where = f" stream={f.stream} epoch={epoch_hex(f.get('epoch', 0))}" if f.id else ""
        return f"push seq={f.id}{where} event={f.get('event', '')}: {text}"
    if f.type == READ:
        return f"read stream={f.stream} seq={f.id} device={f.get('device', '')}"
    if f.type == SEND_ACK:
        return (f"ack id={f.id} status={f.get('status', 0)} "
                f"{f.get('reason', '')} {f.get('data', b'').decode(errors='replace')}").rstrip()
    return repr(f)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("address", help="host:port of a proto.tcp_frame stream listener")
    p.add_argument("--token", help="JWT for auth.jwt")
    p.add_argument("--device", default=None)
    p.add_argument("--event", default="message", help="event for plain stdin lines")
    p.add_argument("--heartbeat", type=float, default=None,
                   help="ping every N seconds (default: the server's heartbeat hint)")
    p.add_argument("--resume", metavar="FILE", default=None,
                   help="keep stream positions in FILE and resume from them when it exists")
    args = p.parse_args(argv)
    host, _, port = args.address.rpartition(":")
    streams = Streams()
    if args.resume and os.path.exists(args.resume):
        with open(args.resume) as fh:
            saved = json.load(fh)
        streams = Streams({k: (int(v["epoch"], 16), v["seq"]) for k, v in saved.items()})

    def save():
        if args.resume:
            with open(args.resume, "w") as fh:
                fh.write(streams.resume() or "{}")

    c = TcpFrameClient(host or "127.0.0.1", int(port))
    ack = c.hello(token=args.token, device=args.device, resume=streams.resume())
    if ack is None or ack.type != HELLO_ACK:
        print(describe(ack) if ack else "connection closed", flush=True)
        for f in c.recv_eof():
            print(describe(f), flush=True)
        return 1
    print(f"connected: session {ack['session_id']} user {ack.get('user')!r} "
          f"heartbeat {ack.get('heartbeat_ms')}ms", flush=True)
    for name, s in ack.streams.items():
        print(f"stream {name}: epoch {epoch_hex(s['epoch'])} seq {s['seq']} {s['recovery']}, "
              f"{s['replayed']} replayed", flush=True)
    for name in streams.opened(ack):
        print(f"stream {name}: history lost, resync it from the backend", flush=True)
    lock = threading.Lock()
    done = threading.Event()

    def reader():
        while not done.is_set():
            try:
                f = c.recv(timeout=3600)
            except (OSError, ProtocolError) as e:
                print(f"error: {e}", flush=True)
                break
            if f is None:
                print("connection closed", flush=True)
                break
            fresh = f.type != PUSH or streams.accept(f)
            if f.type == PUSH and f.flags & F_ACK_REQUIRED:
                with lock:
                    c.push_ack(f.id, f.stream)  # duplicates too: our first ack was lost
            if not fresh:
                print(f"duplicate push seq={f.id} stream={f.stream} dropped", flush=True)
            elif f.type != PONG:
                print(describe(f), flush=True)
        done.set()

    def heartbeat(every):
        while not done.wait(every):
            with lock:
                c.ping()

    threading.Thread(target=reader, daemon=True).start()
    every = args.heartbeat or (ack.get("heartbeat_ms", 0) / 1000.0)
    if every > 0:
        threading.Thread(target=heartbeat, args=(every,), daemon=True).start()
    for line in sys.stdin:
        line = line.rstrip("\n")
        if done.is_set():
            break
        with lock:
            if line == "/quit":
                c.close(1000, "bye")
                break
            if line == "/ping":
                c.ping()
            elif line.startswith("/join "):
                c.join(line[6:])
            elif line.startswith("/leave "):
                c.leave(line[7:])
            elif line.startswith("/read "):
                parts = line.split()
                if len(parts) in (2, 3) and parts[-1].isdigit() and int(parts[-1]) > 0:
                    c.read(int(parts[-1]), parts[1] if len(parts) == 3 else None)
                else:
                    print("usage: /read [stream] seq", flush=True)
            elif ": " in line:
                event, _, text = line.partition(": ")
                c.send(text, event=event)
            else:
                c.send(line, event=args.event)
    done.wait(1.0)
    c.shutdown()
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
