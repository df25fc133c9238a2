# SPDX-License-Identifier: Apache-2.0
"""Chaos test of reliable delivery (docs/reliability.md) against the real binary.

One imgate (2 workers, ack_timeout 200ms, idle_timeout 2s) and reliable clients of every kind
that speaks seqs: TCP frames (scripts/imgate_tcp.py), WebSocket envelope (imgate.v1, a small
synchronous client below so that a connection can be reset at any byte) and Socket.IO with
connection state recovery (socket.io-client in Node, sio_chaos.js). Each client is its own user
and every user is in one room. A pusher sends messages through POST /v1/push at a steady rate
on two connections at once (some slots push twice to one stream concurrently): USER_MSGS to
each user, ROOM_MSGS to the room, ALL_MSGS to everyone, about a third of them reliable, each
with a unique id; the push API's answers say which seq each id got. Meanwhile every client's
connection is cut several times at random points: the client dies (socket closed without a
close frame; Node: SIGKILL and restart with the position the dead process had reached), a TCP
reset (SO_LINGER 0), an idle timeout (the client stops reading and pinging until the server
closes it; Node: SIGSTOP), and the server is reloaded (SIGHUP with a changed but equivalent
config, three times). Clients reconnect with resume (their last processed (stream, epoch, seq)),
ack what they process (cumulatively) and drop duplicates.

At the end every client must have processed, per stream, every seq exactly once and in order,
except where it was told recovery is impossible (a resync notice; the gap right after it is
then explicitly signalled). A silent gap, a reordering, a duplicate the contract forbids
(a replay of something before the resume position, or a second copy of a message that did not
ask for an ack), a changed epoch, a payload at another seq than the push API said, a Socket.IO
offset that does not end at its event, a reload that fails, a push the API refuses, or a
session the server does not close after idle_timeout all fail the run.

Knobs: IMGATE_CHAOS_SEED (the first run's seed; each run prints its own and failures name it),
IMGATE_CHAOS_RUNS (default 1: runs of the whole scenario inside this one test, seeds seed,
seed+1, ...), IMGATE_CHAOS_VERBOSE=1 (print every client's trace: connects, hello answers,
cuts, closes, gaps). A run takes about 13 s and is bounded (RUN_LIMIT).
"""
import base64
import collections
import http.client
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse

from conftest import API_KEY, NODE_DIR, ROOT, SECRET, make_token

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import imgate_tcp as tf  # noqa: E402

N_TCP, N_WS, N_SIO = 3, 3, 2
USER_MSGS, ROOM_MSGS, ALL_MSGS = 150, 100, 20
RELIABLE_SHARE = 0.3
PUSH_SECONDS = 11.0        # the pusher's steady rate spreads the messages over this long
IDLE_TIMEOUT = 2.0         # sessions.idle_timeout
PING_EVERY = 0.5           # what a healthy client does
SETTLE_SECONDS = 10.0      # after the last push: time for every client to catch up
RUN_LIMIT = 30.0           # a run that takes longer fails
ROOM = "chaos"
DEVICE = "chaosdev"
STREAMS = ("user", "room:" + ROOM, "all")
TOTALS = {"user": USER_MSGS, "room:" + ROOM: ROOM_MSGS, "all": ALL_MSGS}

CONFIG = """
# chaos test, generation {generation}
workers: 2
log: {{ level: info }}
admin: {{ bind: "127.0.0.1:{admin_port}" }}
sessions:
  idle_timeout: {idle}
delivery:
  ack_timeout: {ack}
  max_retransmits: 5
listeners:
  - name: edge
    bind: "127.0.0.1:{edge_port}"
    locations:
      - {{ path: /v1/, protocol: proto.http_push, config: {{ api_keys: [{key}] }} }}
      - {{ path: /ws, protocol: proto.websocket, pipeline: im }}
      - path: /socket.io/
        protocol: proto.socketio
        pipeline: im
        config: {{ recovery: true, ping_interval: {sio_ping}, ping_timeout: 1s }}
  - name: tcp
    type: stream
    bind: "127.0.0.1:{tcp_port}"
    protocol: proto.tcp_frame
    pipeline: im
pipelines:
  im:
    - auth.jwt: {{ secret: {secret} }}
"""


def render(generation, ports=None, spelling=0):
    """The config; later generations name the bound ports instead of 0 and spell the same
    durations differently: a changed but equivalent config."""
    ports = ports or {}
    idle = ["2s", "2000ms"][spelling % 2]
    ack = ["200ms", "0.2s"][spelling % 2]
    sio_ping = ["1s", "1000ms"][spelling % 2]
    return CONFIG.format(generation=generation, admin_port=ports.get("admin", 0),
                         edge_port=ports.get("edge", 0), tcp_port=ports.get("tcp", 0),
                         idle=idle, ack=ack, sio_ping=sio_ping, key=API_KEY, secret=SECRET)


# ---- what one client processed ----

class Ledger:
    """One client's view: positions, what it processed per stream, where it was told that a
    gap follows, and every contract violation seen on the way (with a trace for evidence).
    Shared by the client's threads; every method takes the lock.

    TCP and WebSocket pushes carry (stream, epoch, seq): `processed` holds seqs and `ids` the
    payload id seen at each seq (checked against what the push API answered). Socket.IO events
    carry no seq: `processed` holds payload ids, mapped to seqs after the run."""

    def __init__(self, name, proto, t0):
        self.name, self.proto, self.t0 = name, proto, t0
        self.lock = threading.Lock()
        self.pos = {}                                   # stream -> [epoch hex, seq]
        self.processed = {s: [] for s in STREAMS}
        self.ids = {s: {} for s in STREAMS}             # seq -> payload id (TCP, WebSocket)
        self.signals = {s: [] for s in STREAMS}         # indexes into processed
        self.offsets = []                               # (stream, id, offset seq) (Socket.IO)
        self.problems = []
        self.trace = collections.deque(maxlen=600)
        self.stats = collections.Counter()
        self.conn = 0
        self.conn_seen = {}                             # (stream, seq) -> asked for an ack
        self.conn_resume = {}                           # stream -> seq resumed from
        self.epochs = {}                                # stream -> first epoch seen

    def note(self, text):
        self.trace.append((time.time() - self.t0, f"conn {self.conn}: {text}"))

    def problem(self, text):
        self.note("PROBLEM " + text)
        self.problems.append(f"{self.name} conn {self.conn} t={time.time() - self.t0:.3f}: {text}")

    def resume(self):
        with self.lock:
            return {s: (e, q) for s, (e, q) in self.pos.items()}

    def position(self, stream):
        with self.lock:
            return self.pos.get(stream, ["0", 0])[1]

    def opened(self, streams, resumed):
        """A new session: `streams` is the hello answer, `resumed` what the client sent."""
        with self.lock:
            self.conn += 1
            self.conn_seen = {}
            self.conn_resume = {s: q for s, (_, q) in resumed.items()}
            self.stats["connects"] += 1
            self.note(f"open resume={resumed} streams={streams}")
            for s, info in streams.items():
                if s not in TOTALS:
                    self.note(f"unexpected stream {s}")
                    continue
                rec, epoch, seq = info["recovery"], info["epoch"], info["seq"]
                self.stats[rec] += 1
                if rec == "impossible":
                    self.signals[s].append(len(self.processed[s]))
                elif s in resumed:
                    if rec != "recovered":
                        self.problem(f"resume of {s} from {resumed[s]} answered {info}")
                    elif (epoch, seq) != tuple(resumed[s]) and resumed[s][0] != "0":
                        self.problem(f"{s} recovered at {epoch}/{seq}, asked {resumed[s]}")
                self.pos[s] = [epoch, seq]
            for s in resumed:
                if s not in streams:
                    self.problem(f"resumed stream {s} missing from the hello answer")

    def accept(self, stream, epoch, seq, payload, ack_required):
        """A sequenced push (TCP, WebSocket envelope). True when it is processed, False for a
        duplicate."""
        with self.lock:
            self.stats["received"] += 1
            if not isinstance(payload, dict) or payload.get("s") != stream:
                self.problem(f"push {stream}/{seq} carries {payload!r}")
                return False
            first = self.epochs.setdefault(stream, epoch)
            if epoch != first:
                self.problem(f"{stream} epoch changed {first} -> {epoch} (no restart happened)")
            p = self.pos.get(stream)
            if p is not None and p[0] == epoch and seq <= p[1]:
                prior = self.conn_seen.get((stream, seq))
                if prior:
                    self.stats["dup_retransmit"] += 1
                elif seq <= self.conn_resume.get(stream, 0):
                    self.problem(f"{stream} seq {seq} replayed although the session resumed "
                                 f"from {self.conn_resume[stream]}")
                else:
                    self.problem(f"{stream} seq {seq} delivered twice on one session, first "
                                 f"copy {'not seen' if prior is None else 'without ack flag'}")
                if self.ids[stream].get(seq, payload.get("id")) != payload.get("id"):
                    self.problem(f"{stream} seq {seq} came as {payload.get('id')} and as "
                                 f"{self.ids[stream][seq]}")
                return False
            expect = (p[1] if p is not None and p[0] in (epoch, "0") else 0) + 1
            if seq != expect:
                self.note(f"GAP {stream}: got {seq}, expected {expect}")
            self.conn_seen[(stream, seq)] = bool(ack_required)
            self.processed[stream].append(seq)
            self.ids[stream][seq] = payload.get("id")
            self.pos[stream] = [epoch, seq]
            self.stats["processed"] += 1
            return True

    def sio_connected(self, recovered, pid):
        with self.lock:
            self.conn += 1
            self.stats["connects"] += 1
            self.note(f"sio connect pid={pid} recovered={recovered}")
            if self.conn > 1:
                self.stats["recovered" if recovered else "not_recovered"] += 1
                if not recovered:
                    for s in STREAMS:  # socket.recovered false: resync everything
                        self.signals[s].append(len(self.processed[s]))

    def sio_event(self, data, acked, offset):
        """A Socket.IO event: no seq on the wire; duplicates are dropped by payload id."""
        with self.lock:
            self.stats["received"] += 1
            if not isinstance(data, dict) or data.get("s") not in TOTALS:
                self.problem(f"unexpected event data {data!r}")
                return False
            s, pid = data["s"], data.get("id")
            if offset:
                self.offsets.append((s, pid, parse_offset(offset).get(s)))
            if pid in self.ids[s]:
                self.stats["dup_retransmit" if acked else "dup_replay"] += 1
                return False
            self.ids[s][pid] = len(self.processed[s])
            self.processed[s].append(pid)
            self.stats["processed"] += 1
            return True

    def complete(self):
        with self.lock:
            if self.proto == "sio":
                return all(len(self.processed[s]) >= TOTALS[s] for s in STREAMS)
            return all(self.pos.get(s, ["0", 0])[1] >= TOTALS[s] for s in STREAMS)

    def verdict(self, numbering):
        """Contract violations: silent gaps, reorders, missing tails, payloads at the wrong seq,
        plus what was seen live. `numbering`: stream -> {payload id: seq} from the push API."""
        out = list(self.problems)
        with self.lock:
            for s in STREAMS:
                seq_of = numbering[s]
                label = f"{self.name} {s}"
                if self.proto == "sio":
                    seqs = []
                    for pid in self.processed[s]:
                        if pid not in seq_of:
                            out.append(f"{label}: processed {pid}, never numbered by the push API")
                        seqs.append(seq_of.get(pid, 0))
                    for stream, pid, at in self.offsets:
                        if stream == s and (at is None or at[1] != seq_of.get(pid)):
                            out.append(f"{label}: the offset after event {pid} (seq "
                                       f"{seq_of.get(pid)}) says {at}")
                            break
                else:
                    seqs = self.processed[s]
                    id_at = {q: pid for pid, q in seq_of.items()}
                    wrong = [(q, pid, id_at.get(q)) for q, pid in self.ids[s].items()
                             if id_at.get(q) != pid]
                    if wrong:
                        out.append(f"{label}: payloads at the wrong seq (seq, got, pushed as): "
                                   f"{wrong[:5]}")
                out += check_sequence(label, seqs, self.signals[s], TOTALS[s])
        return out


def check_sequence(label, processed, signals, total):
    """processed must be 1..total, except right after a signalled index."""
    marks = set(signals)
    out = []
    expect = 1
    for i, seq in enumerate(processed):
        if seq != expect:
            if seq > expect and i in marks:
                pass  # told: recovery impossible / not recovered
            elif seq > expect:
                out.append(f"{label}: SILENT GAP, seqs {expect}..{seq - 1} never processed "
                           f"(processed #{i} is {seq})")
            else:
                out.append(f"{label}: {seq} processed again or out of order, after {expect - 1}")
        expect = max(expect, seq + 1)
    if expect <= total and len(processed) not in marks:
        out.append(f"{label}: SILENT LOSS of the tail, seqs {expect}..{total} never processed")
    return out


def parse_offset(offset):
    """Socket.IO offset "stream~epoch~seq|..." -> {stream: (epoch, seq)}."""
    out = {}
    if offset in (None, "", "-"):
        return out
    for part in offset.split("|"):
        bits = part.split("~")
        if len(bits) == 3:
            out[urllib.parse.unquote(bits[0])] = (bits[1], int(bits[2]))
    return out


# ---- the cut schedule ----

def schedule(rng, start, end):
    """Random cut points for one client: each kind at least once, a few more dies and resets,
    some of them bunched right after the previous one (so a cut hits a replay)."""
    extra = [rng.choice(["die", "reset"]) for _ in range(rng.randint(0, 2))]
    kinds = ["die", "reset", "idle"] + extra
    rng.shuffle(kinds)
    times = sorted(rng.uniform(start, end) for _ in kinds)
    for i in range(1, len(times)):
        if rng.random() < 0.3:
            times[i] = min(times[i], times[i - 1] + rng.uniform(0.05, 0.4))
    times.sort()
    return list(zip(times, kinds))


class Client(threading.Thread):
    def __init__(self, run, index, proto, rng):
        super().__init__(daemon=True, name=f"{proto}{index}")
        self.run_ = run
        self.user = f"{proto}{index}"
        self.proto = proto
        self.rng = rng
        self.ledger = Ledger(self.user, proto, run.t0)
        self.token = make_token(self.user, extra={"rooms": [ROOM], "device": DEVICE})
        self.cuts = []        # set by the run once it knows when pushing starts
        self.started = threading.Event()
        self.cut_counts = collections.Counter()

    def due_cut(self):
        now = time.time()
        kind = None
        while self.cuts and self.cuts[0][0] <= now:
            _, kind = self.cuts.pop(0)  # cuts missed while away collapse into the last one
        return kind

    def run(self):
        try:
            self.main()
        except Exception:  # a crash of the test client is a test failure, with its stack
            self.ledger.problem("client crashed:\n" + traceback.format_exc())
        finally:
            self.started.set()

    def backoff(self):
        self.run_.stop.wait(self.rng.uniform(0.02, 0.2))


def linger_reset(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class TcpClient(Client):
    def main(self):
        while not self.run_.stop.is_set():
            try:
                self.session()
            except (OSError, tf.ProtocolError) as e:
                self.ledger.note(f"connection error {e!r}")
            self.backoff()

    def session(self):
        c = tf.TcpFrameClient("127.0.0.1", self.run_.gw.ports["tcp"])
        try:
            resumed = self.ledger.resume()
            ack = c.hello(token=self.token, device=DEVICE, resume=resumed or None)
            if ack is None or ack.type != tf.HELLO_ACK:
                self.ledger.note(f"hello refused: {ack!r}")
                return
            streams = {k: dict(v, epoch=tf.epoch_hex(v["epoch"])) for k, v in ack.streams.items()}
            self.ledger.opened(streams, resumed)
            self.started.set()
            last_ping = time.time()
            while not self.run_.stop.is_set():
                kind = self.due_cut()
                if kind:
                    self.cut(c, kind)
                    return
                if time.time() - last_ping >= PING_EVERY:
                    c.ping()
                    last_ping = time.time()
                try:
                    f = c.recv(timeout=0.1)
                except socket.timeout:
                    continue
                if not self.handle(c, f, ack_ok=True):
                    return
            c.close(1000, "done")
        finally:
            c.shutdown()

    def handle(self, c, f, ack_ok):
        """False when the session is over."""
        if f is None:
            self.ledger.note("eof from server")
            return False
        if f.type == tf.PUSH:
            if f.id == 0:
                self.ledger.problem(f"push outside a stream: {f!r}")
                return True
            stream = f.stream or "user"
            try:
                payload = json.loads(f["data"])
            except (KeyError, ValueError):
                payload = f.get("data")
            asked = bool(f.flags & tf.F_ACK_REQUIRED)
            self.ledger.accept(stream, tf.epoch_hex(f["epoch"]), f.id, payload, asked)
            if asked and ack_ok:
                c.push_ack(self.ledger.position(stream), None if stream == "user" else stream)
        elif f.type in (tf.CLOSE, tf.ERROR, tf.GOAWAY):
            self.ledger.note(f"server sent {f!r}")
        return True

    def cut(self, c, kind):
        self.cut_counts[kind] += 1
        self.ledger.note(f"CUT {kind}")
        if kind == "die":
            c.sock.close()
        elif kind == "reset":
            linger_reset(c.sock)
        else:  # idle: silent (no reads, pings, pongs or acks) until the server gives up
            c.auto_pong = False
            if self.run_.stop.wait(IDLE_TIMEOUT + 0.6):
                return
            deadline = time.time() + 4.0
            while time.time() < deadline:
                try:
                    f = c.recv(timeout=max(deadline - time.time(), 0.01))
                except socket.timeout:
                    break
                if f is None:
                    return
                self.handle(c, f, ack_ok=False)
            self.ledger.problem(f"idle for {IDLE_TIMEOUT + 4.6:.1f}s and the server did not close")


class WsConn:
    """A WebSocket client on a plain blocking socket, offering imgate.v1."""

    def __init__(self, port, target, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: imgate.v1\r\n"
                           "\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(65536)
            if not chunk or len(buf) > 65536:
                raise ConnectionError(f"closed during the handshake: {buf[:200]!r}")
            buf += chunk
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode(errors="replace").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            raise ConnectionError(f"handshake refused: {lines[0]}")
        fields = (ln.partition(":") for ln in lines[1:])
        headers = {k.strip().lower(): v.strip() for k, _, v in fields}
        if headers.get("sec-websocket-protocol") != "imgate.v1":
            raise ConnectionError(f"no imgate.v1: {headers}")
        self.auto_pong = True
        self.fragments = None

    def send(self, opcode, payload=b""):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        keyed = (mask * (n // 4 + 1))[:n]
        body = (int.from_bytes(payload, "big") ^ int.from_bytes(keyed, "big")).to_bytes(n, "big")
        self.sock.sendall(head + mask + body)

    def send_json(self, obj):
        self.send(1, json.dumps(obj, separators=(",", ":")).encode())

    def _frame(self):
        b = self.buf
        if len(b) < 2:
            return None
        n, off = b[1] & 0x7F, 2
        if n == 126:
            if len(b) < 4:
                return None
            n, off = struct.unpack("!H", b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, off = struct.unpack("!Q", b[2:10])[0], 10
        if b[1] & 0x80:
            raise ConnectionError("masked server frame")
        if len(b) < off + n:
            return None
        self.buf = b[off + n:]
        return b[0] & 0x80, b[0] & 0x0F, b[off:off + n]

    def recv(self, timeout):
        """("text", str) or ("close", code); None at EOF; raises socket.timeout."""
        deadline = time.time() + timeout
        while True:
            f = self._frame()
            if f is None:
                left = deadline - time.time()
                if left <= 0:
                    raise socket.timeout()
                self.sock.settimeout(left)
                chunk = self.sock.recv(65536)
                if not chunk:
                    return None
                self.buf += chunk
                continue
            fin, op, payload = f
            if op == 9:
                if self.auto_pong:
                    self.send(10, payload)
            elif op == 10:
                pass
            elif op == 8:
                return "close", struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            elif op in (0, 1, 2):
                self.fragments = (self.fragments or b"") + payload if op == 0 else payload
                if fin:
                    text, self.fragments = self.fragments, None
                    return "text", text.decode()


class WsClient(Client):
    def main(self):
        while not self.run_.stop.is_set():
            try:
                self.session()
            except (OSError, ValueError) as e:
                self.ledger.note(f"connection error {e!r}")
            self.backoff()

    def session(self):
        resumed = self.ledger.resume()
        query = "token=" + self.token
        if resumed:
            query += "&resume=" + urllib.parse.quote(json.dumps(
                {s: {"epoch": e, "seq": q} for s, (e, q) in resumed.items()}))
        ws = WsConn(self.run_.gw.port, "/ws?" + query)
        try:
            kind, text = ws.recv(5.0)
            welcome = json.loads(text) if kind == "text" else {}
            if welcome.get("t") != "welcome":
                self.ledger.note(f"no welcome: {kind} {text!r}")
                return
            self.ledger.opened(welcome["streams"], resumed)
            self.started.set()
            last_ping = time.time()
            while not self.run_.stop.is_set():
                kind = self.due_cut()
                if kind:
                    self.cut(ws, kind)
                    return
                if time.time() - last_ping >= PING_EVERY:
                    ws.send_json({"t": "ping"})
                    last_ping = time.time()
                try:
                    m = ws.recv(0.1)
                except socket.timeout:
                    continue
                if not self.handle(ws, m, ack_ok=True):
                    return
            ws.send(8, struct.pack("!H", 1000))
        finally:
            try:
                ws.sock.close()
            except OSError:
                pass

    def handle(self, ws, m, ack_ok):
        if m is None:
            self.ledger.note("eof from server")
            return False
        kind, value = m
        if kind == "close":
            self.ledger.note(f"server closed with {value}")
            return True  # EOF follows
        msg = json.loads(value)
        if msg.get("t") != "push":
            return True
        if "seq" not in msg:
            self.ledger.problem(f"push outside a stream: {msg!r}")
            return True
        try:
            payload = json.loads(msg["data"])
        except (KeyError, ValueError):
            payload = msg.get("data")
        self.ledger.accept(msg["stream"], msg["epoch"], msg["seq"], payload, msg.get("ack") is True)
        if msg.get("ack") is True and ack_ok:
            ws.send_json({"t": "ack", "stream": msg["stream"],
                          "seq": self.ledger.position(msg["stream"])})
        return True

    def cut(self, ws, kind):
        self.cut_counts[kind] += 1
        self.ledger.note(f"CUT {kind}")
        if kind == "die":
            ws.sock.close()
        elif kind == "reset":
            linger_reset(ws.sock)
        else:
            ws.auto_pong = False
            if self.run_.stop.wait(IDLE_TIMEOUT + 0.6):
                return
            deadline = time.time() + 4.0
            while time.time() < deadline:
                try:
                    m = ws.recv(max(deadline - time.time(), 0.01))
                except socket.timeout:
                    break
                if m is None:
                    return
                self.handle(ws, m, ack_ok=False)
            self.ledger.problem(f"idle for {IDLE_TIMEOUT + 4.6:.1f}s and the server did not close")


class SioClient(Client):
    """Drives sio_chaos.js: reads what it processed from its stdout; kills and restarts it."""

    def __init__(self, *a):
        super().__init__(*a)
        self.proc = None
        self.reader = None
        self.pid = None
        self.offset = None
        self.failed = threading.Event()
        self.connected = False

    def spawn(self):
        options = {"token": self.token, "pid": self.pid, "offset": self.offset,
                   "reconnect_ms": 150, "life_ms": int(RUN_LIMIT * 1000) + 20000}
        self.failed.clear()
        self.connected = False
        self.proc = subprocess.Popen(
            ["node", os.path.join(NODE_DIR, "sio_chaos.js"),
             f"http://127.0.0.1:{self.run_.gw.port}", json.dumps(options)],
            cwd=NODE_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, bufsize=1)
        self.reader = threading.Thread(target=self.read, args=(self.proc,), daemon=True)
        self.reader.start()

    def read(self, proc):
        for line in proc.stdout:
            kind, _, rest = line.strip().partition(" ")
            try:
                obj = json.loads(rest) if rest else {}
            except ValueError:
                self.ledger.problem(f"driver printed {line!r}")
                continue
            if kind == "connect":
                self.connected = True
                self.pid = obj["pid"]
                self.ledger.sio_connected(obj["recovered"], obj["pid"])
                self.started.set()
            elif kind == "event":
                if obj.get("offset"):
                    self.offset = obj["offset"]
                self.ledger.sio_event(obj["data"], obj["acked"], obj.get("offset"))
            elif kind == "error":
                self.ledger.note(f"connect_error {obj}")
                self.failed.set()
            else:
                self.connected = self.connected and kind != "disconnect"
                with self.ledger.lock:
                    self.ledger.note(f"{kind} {obj}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait()
        self.reader.join(5)

    def command(self, text):
        try:
            self.proc.stdin.write(text + "\n")
            self.proc.stdin.flush()
        except OSError:
            pass

    def main(self):
        self.spawn()
        try:
            while not self.run_.stop.wait(0.02):
                if self.proc.poll() is not None or self.failed.is_set():
                    self.ledger.note(f"driver gone ({self.proc.poll()}) or refused: restart")
                    self.kill()
                    self.backoff()
                    self.spawn()
                    continue
                kind = self.due_cut() if self.connected else None
                if not kind:
                    continue
                self.cut_counts[kind] += 1
                with self.ledger.lock:
                    self.ledger.note(f"CUT {kind}")
                if kind == "die":
                    self.kill()
                    self.backoff()
                    self.spawn()
                elif kind == "reset":
                    self.command("reset")
                else:  # idle: frozen until the server closed the session
                    self.proc.send_signal(signal.SIGSTOP)
                    self.run_.stop.wait(IDLE_TIMEOUT + 0.3)
                    deadline = time.time() + 4.0
                    while self.run_.gw.online(self.user) and time.time() < deadline:
                        time.sleep(0.05)
                    if self.run_.gw.online(self.user):
                        self.ledger.problem(f"frozen for {IDLE_TIMEOUT + 4.3:.1f}s and the server "
                                            "did not close the Socket.IO session")
                    self.proc.send_signal(signal.SIGCONT)
        finally:
            self.command("quit")
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                pass
            self.kill()


# ---- the pusher and the reloads ----

class Pusher:
    """Two HTTP connections (likely on different workers) pushing in lockstep: each time slot
    sends one message on each, at a steady rate. Some slots push twice to the same stream at
    once (concurrent appends and fan-outs of one stream). Payloads carry a unique id; the push
    API's answers give each id its seq (the numbering every client is checked against)."""

    def __init__(self, run, users, rng):
        self.run_ = run
        labels = [u for u in users for _ in range(USER_MSGS)]
        labels += ["room"] * ROOM_MSGS + ["all"] * ALL_MSGS
        rng.shuffle(labels)
        self.slots = []
        while labels:
            a = labels.pop()
            b = None
            if labels and rng.random() < (0.5 if a in ("room", "all") else 0.15):
                same = [i for i, x in enumerate(labels) if x == a]
                if same:
                    b = labels.pop(same[-1])
            if b is None and labels:
                b = labels.pop()
            self.slots.append([(x, rng.random() < RELIABLE_SHARE) for x in (a, b) if x])
        self.problems = []
        self.numbering = collections.defaultdict(dict)  # (stream, target) -> {id: seq}
        self.epochs = {}
        self.lock = threading.Lock()
        self.done_at = None

    def start(self):
        self.t_start = time.time()
        self.threads = [threading.Thread(target=self.main, args=(lane,), daemon=True,
                                         name=f"pusher{lane}") for lane in (0, 1)]
        for t in self.threads:
            t.start()

    def join(self, timeout):
        deadline = time.time() + timeout
        for t in self.threads:
            t.join(max(deadline - time.time(), 0))
        if not any(t.is_alive() for t in self.threads):
            self.done_at = time.time()

    def main(self, lane):
        try:
            self.push_lane(lane)
        except Exception:
            with self.lock:
                self.problems.append(f"pusher {lane} crashed:\n" + traceback.format_exc())

    def push_lane(self, lane):
        conn = http.client.HTTPConnection("127.0.0.1", self.run_.gw.port, timeout=10)
        step = PUSH_SECONDS / len(self.slots)
        for k, slot in enumerate(self.slots):
            if lane >= len(slot):
                continue
            if self.run_.stop.is_set():
                return
            delay = self.t_start + k * step - time.time()
            if delay > 0:
                time.sleep(delay)
            label, reliable = slot[lane]
            if label == "room":
                to, stream, target = {"room": ROOM}, "room:" + ROOM, ROOM
            elif label == "all":
                to, stream, target = "all", "all", "all"
            else:
                to, stream, target = {"users": [label]}, "user", label
            pid = f"{k}.{lane}"
            body = {"to": to, "event": "m", "data": {"s": stream, "id": pid}}
            if reliable:
                body["reliable"] = True
            conn.request("POST", "/v1/push", json.dumps(body),
                         {"Authorization": "Bearer " + API_KEY, "Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
            with self.lock:
                if resp.status != 200:
                    self.problems.append(f"push {pid} to {label}: HTTP {resp.status} {raw[:300]!r}")
                    return
                seqs = json.loads(raw).get("seq", [])
                if len(seqs) != 1 or seqs[0]["stream"] != stream:
                    self.problems.append(f"push {pid} to {label} numbered {seqs}")
                    return
                self.numbering[(stream, target)][pid] = seqs[0]["seq"]
                first = self.epochs.setdefault((stream, target), seqs[0]["epoch"])
                if first != seqs[0]["epoch"]:
                    self.problems.append(f"push {pid} to {label}: epoch {first} -> "
                                         f"{seqs[0]['epoch']}")
        conn.close()

    def check(self):
        """Each stream was numbered 1..N without gaps or repeats."""
        for (stream, target), seq_of in sorted(self.numbering.items()):
            if sorted(seq_of.values()) != list(range(1, TOTALS[stream] + 1)):
                self.problems.append(f"{stream} of {target} numbered "
                                     f"{sorted(seq_of.values())[:10]}... for {len(seq_of)} pushes")
        return self.problems

    def numbering_for(self, user):
        return {"user": self.numbering[("user", user)],
                "room:" + ROOM: self.numbering[("room:" + ROOM, ROOM)],
                "all": self.numbering[("all", "all")]}


class Run:
    def __init__(self, gateway_factory, seed):
        self.seed = seed
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.t0 = time.time()
        self.gw = gateway_factory(render(1))
        self.clients = []
        kinds = [("tcp", TcpClient, N_TCP), ("ws", WsClient, N_WS), ("sio", SioClient, N_SIO)]
        for proto, cls, count in kinds:
            for i in range(count):
                self.clients.append(cls(self, i, proto, random.Random(self.rng.random())))
        self.reloads = 0
        self.metrics = {}

    def reloader(self, times):
        generation = 1
        for at in times:
            if self.stop.wait(max(at - time.time(), 0)):
                return
            generation += 1
            text = render(generation, self.gw.ports, spelling=generation)
            self.gw.reload(text)
            self.reloads += 1
            for c in self.clients:
                c.ledger.note(f"RELOAD generation {generation}")

    def execute(self):
        try:
            return self.chaos()
        finally:  # whatever happened: clients (and their Node processes) and imgate end here
            self.stop.set()
            for c in self.clients:
                if c.ident is not None:
                    c.join(8)
            self.gw.stop()

    def chaos(self):
        for c in self.clients:
            c.start()
        for c in self.clients:
            assert c.started.wait(10), f"seed {self.seed}: {c.user} never connected"
        time.sleep(0.3)  # the first sessions settle (room joins) before numbering starts
        pusher = Pusher(self, [c.user for c in self.clients], self.rng)
        start = time.time() + 0.1
        for c in self.clients:
            c.cuts = [(start + t, k) for t, k in schedule(c.rng, 0.3, PUSH_SECONDS - 0.5)]
        reload_times = sorted(start + self.rng.uniform(0.5, PUSH_SECONDS - 0.5) for _ in range(3))
        reloader = threading.Thread(target=self.reloader, args=(reload_times,), daemon=True)
        pusher.start()
        reloader.start()
        pusher.join(PUSH_SECONDS + 6)
        push_time = (pusher.done_at or time.time()) - start
        reloader.join(10)
        for c in self.clients:
            c.cuts = []
        deadline = time.time() + SETTLE_SECONDS
        while time.time() < deadline and not all(c.ledger.complete() for c in self.clients):
            time.sleep(0.05)
        settle_time = time.time() - (pusher.done_at or time.time())
        self.metrics = self.delivery_metrics()
        return pusher, push_time, settle_time

    def delivery_metrics(self):
        status, text, _ = self.gw.admin("GET", "/metrics")
        out = {}
        for line in text.decode().splitlines() if status == 200 else []:
            if line.startswith("imgate_delivery_"):
                name, _, value = line.rpartition(" ")
                out[name[len("imgate_delivery_"):]] = int(float(value))
        return out

    def evaluate(self, pusher, push_time, settle_time):
        problems = list(pusher.check())
        if pusher.done_at is None:
            problems.append("the pusher did not finish")
        log = self.gw.read_log()
        if "reload failed" in log:
            problems += ["log: " + ln for ln in log.splitlines() if "reload failed" in ln][:3]
        if self.metrics.get('gaps_total{result="lost"}', 0):
            problems.append(f"imgate counted lost gaps: {self.metrics}")
        if self.reloads != 3:
            problems.append(f"{self.reloads} reloads of 3")
        bad = [l for l in log.splitlines() if "[alert]" in l or "[crit]" in l or "Sanitizer" in l]
        problems += ["log: " + l for l in bad[:5]]
        per_client = {}
        for c in self.clients:
            if c.is_alive():
                problems.append(f"{c.user}: client thread did not stop")
            found = c.ledger.verdict(pusher.numbering_for(c.user))
            if found:
                per_client[c] = found
                problems += found
        elapsed = time.time() - self.t0
        if elapsed > RUN_LIMIT:
            problems.append(f"run took {elapsed:.1f}s (limit {RUN_LIMIT}s)")
        summary = self.summary(push_time, settle_time, elapsed)
        evidence = []
        for c, found in per_client.items():
            evidence.append(f"--- {c.user} ({c.proto}) trace:")
            evidence += [f"  {t:7.3f} {text}" for t, text in c.ledger.trace]
            evidence.append(f"--- imgate log lines naming {c.user}:")
            evidence += ["  " + l for l in log.splitlines() if c.user in l][-80:]
        return problems, summary, evidence

    def summary(self, push_time, settle_time, elapsed):
        cuts = collections.Counter()
        per_proto = collections.defaultdict(collections.Counter)
        for c in self.clients:
            per_proto[c.proto].update(c.ledger.stats)
            cuts.update(c.cut_counts)
        keys = ("connects", "recovered", "impossible", "not_recovered", "processed",
                "dup_retransmit", "dup_replay")
        protos = "; ".join(f"{p}: " + " ".join(f"{k}={st[k]}" for k in keys if st[k])
                           for p, st in per_proto.items())
        m = collections.defaultdict(lambda: "?", self.metrics)
        filled, lost = m['gaps_total{result="filled"}'], m['gaps_total{result="lost"}']
        server = (f"imgate: retransmits={m['retransmits_total']} "
                  f"ack_timeouts={m['ack_timeouts_total']} replayed={m['replayed_total']} "
                  f"duplicates={m['duplicates_total']} gaps filled={filled} lost={lost}")
        return (f"seed={self.seed} {elapsed:.1f}s (pushing {push_time:.1f}s, all caught up "
                f"{settle_time:.1f}s after) reloads={self.reloads} cuts={dict(cuts)}; {protos}; "
                f"{server}")


def test_chaos_reliable_delivery(gateway_factory):
    base = int(os.environ.get("IMGATE_CHAOS_SEED", random.randrange(1 << 31)))
    runs = int(os.environ.get("IMGATE_CHAOS_RUNS", "1"))
    failures = []
    for i in range(runs):
        seed = base + i
        run = Run(gateway_factory, seed)
        problems, summary, evidence = run.evaluate(*run.execute())
        print(f"chaos run {i + 1}/{runs}: {summary}" + (" FAILED" if problems else ""), flush=True)
        if os.environ.get("IMGATE_CHAOS_VERBOSE"):
            for c in run.clients:
                print(f"--- {c.user}:\n" + "\n".join(f"  {t:7.3f} {x}" for t, x in c.ledger.trace))
        if problems:
            failures.append(f"run {i + 1} seed {seed} (rerun: IMGATE_CHAOS_SEED={seed} "
                            f"IMGATE_CHAOS_RUNS=1):\n  " + "\n  ".join(problems[:40]) + "\n" +
                            "\n".join(evidence[-1500:]))
    assert not failures, f"{len(failures)} of {runs} chaos runs failed:\n" + "\n\n".join(failures)
