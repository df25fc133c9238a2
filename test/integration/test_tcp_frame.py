# SPDX-License-Identifier: Apache-2.0
"""proto.tcp_frame on `type: stream` listeners, driven by scripts/imgate_tcp.py's client."""
import os
import signal
import socket
import sys
import time

from conftest import API_KEY, ROOT, SECRET, make_token

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import imgate_tcp as tf  # noqa: E402

CONFIG = """
workers: 2
sessions: {{ idle_timeout: {idle} }}
admin: {{ bind: 127.0.0.1:0 }}
listeners:
  - name: edge
    bind: 127.0.0.1:0
    locations:
      - {{ path: /v1/, protocol: proto.http_push, config: {{ api_keys: [{key}] }} }}
  - name: tcp
    type: stream
    bind: 127.0.0.1:0
    protocol: proto.tcp_frame
    config: {{ max_frame: 4KiB, compress_min_size: 512, reconnect_hint: "pool.example:7100" }}
    pipeline: im
  - name: tcp_echo
    type: stream
    bind: 127.0.0.1:0
    protocol: proto.tcp_frame
    pipeline: echo
pipelines:
  im:
    - auth.jwt: {{ secret: {secret} }}
  echo:
    - auth.jwt: {{ secret: {secret} }}
    - echo
"""


def start(gateway_factory, idle="120s"):
    return gateway_factory(CONFIG.format(idle=idle, key=API_KEY, secret=SECRET))


def client(gw, listener="tcp"):
    return tf.TcpFrameClient("127.0.0.1", gw.ports[listener])


def expect_close(c, code, with_error):
    """The server's last frames: [ERROR(code)] CLOSE(code), then EOF."""
    frames = [f for f in c.recv_eof() if f.type not in (tf.PING, tf.PONG)]
    names = [f.name for f in frames]
    assert names == (["ERROR", "CLOSE"] if with_error else ["CLOSE"]), frames
    for f in frames:
        assert f["code"] == code, frames
    return frames


def test_hello_push_ping_and_session_id(gateway_factory):
    gw = start(gateway_factory)
    c = client(gw)
    ack = c.hello(token=make_token("alice"), device="phone 1")
    assert ack.type == tf.HELLO_ACK and ack.id == 1
    assert ack["user"] == "alice"
    assert ack["device"] == "phone 1"  # from the percent-encoded device query parameter
    assert ack["idle_timeout_ms"] == 120000 and ack["heartbeat_ms"] == 48000
    assert abs(ack["server_time_ms"] - time.time() * 1000) < 60000
    status, body, _ = gw.http("GET", "/v1/users/alice")
    assert status == 200 and len(body["sessions"]) == 1
    assert str(body["sessions"][0]["id"]) == str(ack["session_id"])
    # Ping / pong.
    pid = c.ping(b"t0")
    pong = c.recv_type(tf.PONG)
    assert pong.id == pid and pong.body == b"t0"
    # A push through the HTTP API arrives as PUSH, numbered in alice's user stream.
    status, body, _ = gw.push({"users": ["alice"]}, "hello alice", event="news", id="p1")
    assert status == 200 and body["sessions"] == 1
    p = c.recv_type(tf.PUSH)
    assert p["data"] == b"hello alice" and p["event"] == "news" and p["msg_id"] == "p1"
    assert p.id == 1 and p.stream == "user" and not p.flags & tf.F_BINARY
    # A large compressible push is compressed on the wire (compress_min_size: 512).
    big = "x" * 3000
    gw.push({"users": ["alice"]}, big)
    p = c.recv_type(tf.PUSH)
    assert p.flags & tf.F_COMPRESSED and p["data"] == big.encode()
    # Binary push.
    gw.http("POST", "/v1/push", {"to": {"users": ["alice"]}, "data_base64": "AAEC"})
    p = c.recv_type(tf.PUSH)
    assert p.flags & tf.F_BINARY and p["data"] == b"\x00\x01\x02"
    # Client close: echoed with CLOSE 1000, then the server closes.
    c.close(1000, "bye")
    expect_close(c, 1000, with_error=False)
    gw.wait_for(lambda: gw.online("alice") == 0, what="session gone")


def test_bad_token_gets_error_and_close(gateway_factory):
    gw = start(gateway_factory)
    c = client(gw)
    first = c.hello(token="not-a-jwt")
    assert first.type == tf.ERROR and first["code"] == 4001
    rest = c.recv_eof()
    assert [f.name for f in rest] == ["CLOSE"] and rest[0]["code"] == 4001
    assert c.closed
    # No HELLO at all: a SEND first is a protocol error.
    c = client(gw)
    c.send("too early", event="chat")
    expect_close(c, 1002, with_error=True)


def test_echo_pipeline_sticky_and_half_packets(gateway_factory):
    gw = start(gateway_factory)
    c = client(gw, "tcp_echo")
    # Sticky: HELLO and three SENDs in one write.
    batch = tf.frame(tf.HELLO, tf.tlv(token=make_token("bob")), 1)
    for i in range(3):
        batch += tf.frame(tf.SEND, tf.tlv(event="chat", data=f"m{i}".encode()), 10 + i)
    c.send_raw(batch)
    assert c.recv().type == tf.HELLO_ACK
    got = [c.recv_type(tf.PUSH) for _ in range(3)]
    assert [(p["event"], p["data"]) for p in got] == [("chat", b"m0"), ("chat", b"m1"),
                                                     ("chat", b"m2")]
    # Half packets: one compressed SEND in 1-byte writes.
    one = tf.frame(tf.SEND, tf.tlv(event="slow", data=b"y" * 1000), 20, compress=True)
    assert one[4] & tf.F_COMPRESSED
    for b in one:
        c.send_raw(bytes([b]))
        time.sleep(0.0005)
    p = c.recv_type(tf.PUSH)
    assert p["event"] == "slow" and p["data"] == b"y" * 1000


def test_max_frame_exceeded(gateway_factory):
    gw = start(gateway_factory)
    c = client(gw)
    assert c.hello(token=make_token("carol")).type == tf.HELLO_ACK
    # Only the header is sent: the limit is checked before the body is buffered.
    c.send_raw(tf.HEADER.pack(tf.MAGIC, tf.VERSION, tf.SEND, 0, 1, 4097))
    frames = expect_close(c, 1009, with_error=True)
    assert "max_frame" in frames[0]["reason"]


def test_idle_timeout_closes_with_timeout_code(gateway_factory):
    gw = start(gateway_factory, idle="1s")
    c = client(gw)
    ack = c.hello(token=make_token("dave"))
    assert ack["idle_timeout_ms"] == 1000
    expect_close(c, 4000, with_error=False)


def test_sigquit_sends_goaway_then_close(gateway_factory):
    gw = start(gateway_factory)
    c = client(gw)
    assert c.hello(token=make_token("erin")).type == tf.HELLO_ACK
    gw.wait_for(lambda: gw.online("erin") == 1, what="session")
    gw.signal(signal.SIGQUIT)
    frames = [f for f in c.recv_eof(timeout=10) if f.type not in (tf.PING, tf.PONG)]
    assert [f.name for f in frames] == ["GOAWAY", "CLOSE"], frames
    assert frames[0]["reconnect_hint"] == "pool.example:7100"
    assert frames[0]["retry_after_ms"] == 5000
    assert frames[1]["code"] == 1001
    gw.proc.wait(timeout=10)
    assert gw.proc.returncode == 0


def test_cli_script_prints_pushes(gateway_factory):
    import subprocess
    gw = start(gateway_factory)
    proc = subprocess.Popen(
        ["/usr/bin/python3", os.path.join(ROOT, "scripts", "imgate_tcp.py"),
         f"127.0.0.1:{gw.ports['tcp_echo']}", "--token", make_token("frank")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("connected: session ")
        # The HELLO_ACK's streams: the user's own and the app's broadcasts.
        assert proc.stdout.readline().startswith("stream user: epoch 0 seq 0 fresh")
        assert proc.stdout.readline().startswith("stream all: epoch 0 seq 0 fresh")
        proc.stdin.write("chat: hi there\n")
        proc.stdin.flush()
        # The echo stage's reply belongs to no stream: seq 0.
        assert proc.stdout.readline().strip() == "push seq=0 event=chat: hi there"
        proc.stdin.write("/quit\n")
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_frames_from_a_non_client_are_refused(gateway_factory):
    gw = start(gateway_factory)
    s = socket.create_connection(("127.0.0.1", gw.ports["tcp"]), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    c = tf.TcpFrameClient.__new__(tf.TcpFrameClient)
    c.sock, c.buf, c.max_frame, c.auto_pong, c.closed, c.next_id = s, b"", 1 << 20, True, False, 1
    expect_close(c, 1002, with_error=True)
