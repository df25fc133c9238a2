# SPDX-License-Identifier: Apache-2.0
"""Reliable delivery (docs/reliability.md) against the real binary: per-stream seqs and epochs,
acks and retransmission, resume with exactly the missed messages, "recovery impossible",
offline storage, wait_ack, read sync across devices, and the metrics. Driven by the TCP frame
reference client (scripts/imgate_tcp.py) and python3-websockets."""
import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest

from conftest import API_KEY, NODE_DIR, ROOT, SECRET, make_token
from wsutil import connect, run

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import imgate_tcp as tf  # noqa: E402

CONFIG = """
workers: 2
admin: {{ bind: 127.0.0.1:0 }}
delivery:
  ack_timeout: {ack_timeout}
  max_retransmits: {max_retransmits}
  history: {{ max_messages: {max_messages} }}
listeners:
  - name: edge
    bind: 127.0.0.1:0
    locations:
      - {{ path: /v1/, protocol: proto.http_push, config: {{ api_keys: [{key}] }} }}
      - {{ path: /ws, protocol: proto.websocket, pipeline: im }}
      - {{ path: /socket.io/, protocol: proto.socketio, pipeline: im, config: {{ recovery: true }} }}
  - name: tcp
    type: stream
    bind: 127.0.0.1:0
    protocol: proto.tcp_frame
    pipeline: im
pipelines:
  im:
    - auth.jwt: {{ secret: {secret} }}
"""


def start(gateway_factory, ack_timeout="300ms", max_retransmits=3, max_messages=1000):
    return gateway_factory(CONFIG.format(ack_timeout=ack_timeout, max_retransmits=max_retransmits,
                                         max_messages=max_messages, key=API_KEY, secret=SECRET))


def tcp(gw, user, device="phone", **hello):
    c = tf.TcpFrameClient("127.0.0.1", gw.ports["tcp"])
    ack = c.hello(token=make_token(user), device=device, **hello)
    assert ack.type == tf.HELLO_ACK, ack
    return c, ack


def pushes(c, n, timeout=5.0):
    out = []
    while len(out) < n:
        f = c.recv(timeout)
        if f.type == tf.PUSH:
            out.append(f)
    return out


def no_push(c, wait=0.4):
    try:
        f = c.recv(wait)
    except Exception:  # socket.timeout: nothing came
        return True
    assert f.type != tf.PUSH, f
    return True


def push(gw, to, data, **extra):
    status, body, _ = gw.push(to, data, **extra)
    assert status == 200, body
    return body


def metric(gw, name):
    status, text, _ = gw.admin("GET", "/metrics")
    assert status == 200
    for line in text.decode().splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    raise AssertionError(f"{name} not in /metrics")


def test_user_stream_seqs_epoch_and_hello_ack_streams(gateway_factory):
    gw = start(gateway_factory)
    c, ack = tcp(gw, "alice")
    streams = ack.streams
    assert set(streams) == {"user", "all"}
    assert streams["user"] == {"epoch": 0, "seq": 0, "recovery": "fresh", "replayed": 0}
    bodies = [push(gw, {"users": ["alice"]}, f"m{i}") for i in range(3)]
    got = pushes(c, 3)
    assert [p.id for p in got] == [1, 2, 3]
    assert [p["data"] for p in got] == [b"m0", b"m1", b"m2"]
    epoch = got[0]["epoch"]
    assert epoch != 0 and all(p["epoch"] == epoch for p in got)
    assert all(p.stream == "user" for p in got)
    assert all(p.flags & tf.F_ACK_REQUIRED == 0 for p in got)  # not reliable: no ack asked
    # The push API says where each message went.
    assert [b["seq"] for b in bodies] == [
        [{"target": "alice", "stream": "user", "epoch": f"{epoch:x}", "seq": i}] for i in (1, 2, 3)]
    # Pushes to other users have their own streams.
    push(gw, {"users": ["bob"]}, "for bob")
    push(gw, {"users": ["alice"]}, "m3")
    assert pushes(c, 1)[0].id == 4


def test_reliable_push_is_retransmitted_until_acked(gateway_factory):
    gw = start(gateway_factory, ack_timeout="300ms", max_retransmits=5)
    c, _ = tcp(gw, "alice")
    push(gw, {"users": ["alice"]}, "important", reliable=True)
    first = pushes(c, 1)[0]
    assert first.flags & tf.F_ACK_REQUIRED
    again = pushes(c, 1, timeout=3)[0]  # not acked: sent again, same seq and bytes
    assert (again.id, again["data"], again["epoch"]) == (first.id, b"important", first["epoch"])
    c.push_ack(first.id)
    time.sleep(0.3)  # let the ack land before the next deadline
    assert no_push(c, wait=1.5)
    assert metric(gw, "imgate_delivery_retransmits_total") >= 1
    assert metric(gw, "imgate_delivery_acks_total") >= 1


def test_unacked_reliable_push_closes_after_max_retransmits(gateway_factory):
    gw = start(gateway_factory, ack_timeout="100ms", max_retransmits=2)
    c, _ = tcp(gw, "alice")
    push(gw, {"users": ["alice"]}, "never acked", reliable=True)
    frames = c.recv_eof(timeout=5)
    assert [f.name for f in frames if f.type == tf.PUSH] == ["PUSH"] * 3  # 1 + 2 retransmits
    close = [f for f in frames if f.type == tf.CLOSE]
    assert close and close[-1]["code"] == 4000, frames
    assert metric(gw, "imgate_delivery_ack_timeouts_total") == 1


def test_cumulative_ack_covers_earlier_messages(gateway_factory):
    gw = start(gateway_factory, ack_timeout="300ms")
    c, _ = tcp(gw, "alice")
    for i in range(5):
        push(gw, {"users": ["alice"]}, f"r{i}", reliable=True)
    got = pushes(c, 5)
    c.push_ack(got[-1].id)  # one ack for all five
    time.sleep(0.2)
    assert no_push(c, wait=1.0)


def test_resume_gets_exactly_the_missed_messages_in_order(gateway_factory):
    gw = start(gateway_factory)
    c, _ = tcp(gw, "alice")
    for i in range(3):
        push(gw, {"users": ["alice"]}, f"a{i}")
    got = pushes(c, 3)
    epoch, last = got[-1]["epoch"], got[-1].id
    c.sock.close()
    gw.wait_for(lambda: gw.online("alice") == 0, what="alice offline")
    for i in range(3, 6):
        body = push(gw, {"users": ["alice"]}, f"a{i}")
        assert body["offline"] == ["alice"] and body["offline_stored"] == ["alice"]
    c2, ack = tcp(gw, "alice", epoch=epoch, last_seq=last)
    assert ack.streams["user"] == {"epoch": epoch, "seq": 3, "recovery": "recovered",
                                   "replayed": 3}
    push(gw, {"users": ["alice"]}, "live")
    got = pushes(c2, 4)
    assert [(p.id, p["data"]) for p in got] == [(4, b"a3"), (5, b"a4"), (6, b"a5"), (7, b"live")]
    assert no_push(c2)


def test_resume_with_an_unknown_epoch_is_impossible(gateway_factory):
    gw = start(gateway_factory)
    c, _ = tcp(gw, "alice")
    push(gw, {"users": ["alice"]}, "x")
    epoch = pushes(c, 1)[0]["epoch"]
    c.sock.close()
    gw.wait_for(lambda: gw.online("alice") == 0, what="alice offline")
    c2, ack = tcp(gw, "alice", epoch=epoch ^ 0x5555, last_seq=1)
    assert ack.streams["user"]["recovery"] == "impossible"
    assert ack.streams["user"]["epoch"] == epoch and ack.streams["user"]["seq"] == 1
    assert no_push(c2)  # nothing replayed: the client resyncs from its backend
    assert metric(gw, 'imgate_delivery_resumes_total{outcome="impossible"}') == 1


def test_resume_beyond_history_is_impossible(gateway_factory):
    gw = start(gateway_factory, max_messages=3)
    c, _ = tcp(gw, "alice")
    push(gw, {"users": ["alice"]}, "seen")
    first = pushes(c, 1)[0]
    c.sock.close()
    gw.wait_for(lambda: gw.online("alice") == 0, what="alice offline")
    for i in range(5):  # more than the history keeps
        push(gw, {"users": ["alice"]}, f"missed{i}")
    c2, ack = tcp(gw, "alice", epoch=first["epoch"], last_seq=1)
    assert ack.streams["user"]["recovery"] == "impossible"
    assert ack.streams["user"]["seq"] == 6
    assert no_push(c2)


def test_offline_pushes_wait_for_the_next_session(gateway_factory):
    gw = start(gateway_factory)
    for i in range(3):
        body = push(gw, {"users": ["carol"]}, f"while away {i}")
        assert body["offline_stored"] == ["carol"] and body["sessions"] == 0

    async def scenario():
        ws = await connect(gw.ws_url(token=make_token("carol")))
        got = [await ws.recv() for _ in range(3)]
        push(gw, {"users": ["carol"]}, "live")
        got.append(await ws.recv())
        await ws.close()
        return got

    # A plain WebSocket client (no acks, no resume) still gets what was stored, in order.
    assert run(scenario()) == ["while away 0", "while away 1", "while away 2", "live"]
    assert metric(gw, "imgate_delivery_offline_delivered_total") == 3


def test_offline_storage_after_a_disconnect_without_resume(gateway_factory):
    gw = start(gateway_factory)
    c, _ = tcp(gw, "dave")
    push(gw, {"users": ["dave"]}, "before")
    assert pushes(c, 1)[0]["data"] == b"before"
    c.sock.close()
    gw.wait_for(lambda: gw.online("dave") == 0, what="dave offline")
    push(gw, {"users": ["dave"]}, "during")
    c2, ack = tcp(gw, "dave", device="other")  # no resume, unknown device: the offline backlog
    assert ack.streams["user"]["replayed"] == 1
    assert [p["data"] for p in pushes(c2, 1)] == [b"during"]
    assert no_push(c2)


def test_device_position_from_acks_is_used_when_no_resume_is_given(gateway_factory):
    gw = start(gateway_factory)
    phone, _ = tcp(gw, "erin", device="phone")
    tablet, _ = tcp(gw, "erin", device="tablet")
    for i in range(2):
        push(gw, {"users": ["erin"]}, f"m{i}")
    got = pushes(phone, 2)
    pushes(tablet, 2)
    phone.push_ack(got[0].id)  # the phone processed m0 only
    time.sleep(0.2)
    phone.sock.close()
    gw.wait_for(lambda: gw.online("erin") == 1, what="phone gone")
    push(gw, {"users": ["erin"]}, "m2")
    assert [p["data"] for p in pushes(tablet, 1)] == [b"m2"]
    phone2, ack = tcp(gw, "erin", device="phone")
    assert ack.streams["user"]["seq"] == 1 and ack.streams["user"]["replayed"] == 2
    assert [p["data"] for p in pushes(phone2, 2)] == [b"m1", b"m2"]


def test_wait_ack_reports_acked_unacked_and_offline(gateway_factory):
    gw = start(gateway_factory, ack_timeout="5s")
    acker, _ = tcp(gw, "frank")
    silent, _ = tcp(gw, "gina")

    def ack_when_received():
        p = pushes(acker, 1)[0]
        acker.push_ack(p.id)

    t = threading.Thread(target=ack_when_received)
    t.start()
    started = time.time()
    body = push(gw, {"users": ["frank", "gina", "nobody"]}, "please ack", wait_ack=800)
    elapsed = time.time() - started
    t.join()
    assert body["acked"] == ["frank"]
    assert body["unacked"] == ["gina"]
    assert body["offline"] == ["nobody"] and body["offline_stored"] == ["nobody"]
    assert elapsed >= 0.7  # gina never acked: the answer waited for the deadline
    assert pushes(silent, 1)[0].flags & tf.F_ACK_REQUIRED  # wait_ack implies reliable
    # All acked: the answer comes at once.
    started = time.time()
    t = threading.Thread(target=ack_when_received)
    t.start()
    body = push(gw, {"users": ["frank"]}, "again", wait_ack=5000)
    t.join()
    assert body["acked"] == ["frank"] and body["unacked"] == []
    assert time.time() - started < 4


def test_wait_ack_needs_a_user_target(gateway_factory):
    gw = start(gateway_factory)
    status, body, _ = gw.push({"rooms": ["r"]}, "x", wait_ack=100)
    assert status == 400 and "wait_ack" in body["reason"]
    status, body, _ = gw.push({"users": ["u"]}, "x", wait_ack=999999)
    assert status == 400
    status, body, _ = gw.push({"users": ["u"]}, "x", reliable="yes")
    assert status == 400 and "reliable" in body["reason"]


def test_room_stream_seqs_and_resume(gateway_factory):
    gw = start(gateway_factory)
    a, _ = tcp(gw, "hank")
    b, _ = tcp(gw, "ivy")
    status, body, _ = gw.http("POST", "/v1/rooms/lobby/members", {"users": ["hank", "ivy"]})
    assert status == 200 and sorted(body["joined"]) == ["hank", "ivy"]
    for i in range(2):
        body = push(gw, {"rooms": ["lobby"]}, f"r{i}")
        assert body["seq"][0]["stream"] == "room:lobby" and body["seq"][0]["seq"] == i + 1
    got_a, got_b = pushes(a, 2), pushes(b, 2)
    assert [(p.stream, p.id) for p in got_a] == [("room:lobby", 1), ("room:lobby", 2)]
    assert [(p.id, p["epoch"]) for p in got_a] == [(p.id, p["epoch"]) for p in got_b]
    epoch = got_a[0]["epoch"]
    a.sock.close()  # hank leaves; ivy keeps the membership alive
    gw.wait_for(lambda: gw.online("hank") == 0, what="hank offline")
    push(gw, {"rooms": ["lobby"]}, "r2")
    assert pushes(b, 1)[0].id == 3
    # hank comes back and joins again, then resumes the room from seq 2.
    status, body, _ = gw.http("POST", "/v1/rooms/lobby/members", {"users": ["hank"]})
    assert status == 200  # offline: hank has no session yet
    a2 = tf.TcpFrameClient("127.0.0.1", gw.ports["tcp"])
    ack = a2.hello(token=make_token("hank", extra={"rooms": ["lobby"]}),
                   resume={"room:lobby": (epoch, 2)})
    assert ack.streams["room:lobby"]["recovery"] == "recovered", ack.streams
    assert [(p.stream, p.id, p["data"]) for p in pushes(a2, 1)] == [("room:lobby", 3, b"r2")]


def test_push_right_after_a_room_join_reaches_every_new_member(gateway_factory):
    # The join's answer comes before every worker updated its room index; a push made after it
    # must still reach all members (it used to be taken for a duplicate on the slower worker).
    gw = start(gateway_factory)
    users = [f"j{i}" for i in range(6)]
    clients = [tcp(gw, u)[0] for u in users]
    api = socket.create_connection(("127.0.0.1", gw.port), timeout=5)

    def request(path, body):
        data = json.dumps(body).encode()
        return (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
                ).encode() + data

    for r in range(12):
        # Pipelined on one connection: the push is handled right after the join's answer, while
        # the other worker may still have the join's index update queued.
        api.sendall(request(f"/v1/rooms/race{r}/members", {"users": users}) +
                    request("/v1/push", {"to": {"rooms": [f"race{r}"]},
                                         "data": f"first in race{r}"}))
        answers = b""
        while answers.count(b"HTTP/1.1 200") < 2 or not answers.endswith(b"}"):
            answers += api.recv(65536)
        assert answers.count(b"HTTP/1.1 200") == 2, answers
        for c in clients:
            p = pushes(c, 1)[0]
            assert (p.stream, p.id, p["data"]) == (f"room:race{r}", 1, f"first in race{r}".encode())


def test_broadcast_stream(gateway_factory):
    gw = start(gateway_factory)
    a, ack = tcp(gw, "jay")
    body = push(gw, "all", "to everyone")
    assert body["seq"][0]["stream"] == "all" and body["seq"][0]["seq"] == 1
    p = pushes(a, 1)[0]
    assert (p.stream, p.id) == ("all", 1)


def test_read_marks_reach_the_users_other_devices(gateway_factory):
    gw = start(gateway_factory)
    phone, _ = tcp(gw, "kim", device="phone")
    laptop, _ = tcp(gw, "kim", device="laptop")
    push(gw, {"users": ["kim"]}, "hello")
    seq = pushes(phone, 1)[0].id
    pushes(laptop, 1)
    phone.read(seq)
    f = laptop.recv_type(tf.READ)
    assert (f.id, f.stream, f["device"]) == (seq, "user", "phone")
    assert no_push(phone)  # the reader is not told about its own mark
    assert metric(gw, "imgate_delivery_read_marks_total") == 1


def test_history_metrics(gateway_factory):
    gw = start(gateway_factory)
    push(gw, {"users": ["m1"]}, "x" * 100)
    push(gw, {"users": ["m2"]}, "y")
    assert metric(gw, "imgate_history_streams") == 2
    assert metric(gw, "imgate_history_messages") == 2
    assert metric(gw, "imgate_history_bytes") > 100


def test_delivery_disabled_is_fire_and_forget(gateway_factory):
    config = CONFIG.replace("delivery:\n", "delivery:\n  enabled: false\n").format(
        ack_timeout="1s", max_retransmits=1, max_messages=10, key=API_KEY, secret=SECRET)
    gw = gateway_factory(config)
    c, ack = tcp(gw, "lee")
    assert "streams" not in ack.fields
    body = push(gw, {"users": ["lee"]}, "plain", reliable=True)
    assert "seq" not in body and body["offline_stored"] == []
    p = pushes(c, 1)[0]
    assert p.id == 0 and p.flags & tf.F_ACK_REQUIRED  # flagged, but nothing is tracked
    c.sock.close()
    gw.wait_for(lambda: gw.online("lee") == 0, what="lee offline")
    body = push(gw, {"users": ["lee"]}, "lost")
    assert body["offline"] == ["lee"] and body["offline_stored"] == []


# ---- WebSocket JSON envelope (subprotocol imgate.v1) ----

async def ws_envelope(gw, user, query="", device=None):
    token = make_token(user, extra={"device": device} if device else None)
    url = gw.ws_url(token=token, query=query)
    ws = await connect(url, subprotocols=["imgate.v1"])
    assert ws.subprotocol == "imgate.v1"
    welcome = json.loads(await ws.recv())
    assert welcome["t"] == "welcome" and welcome["user"] == user
    return ws, welcome


async def recv_json(ws, t="push", timeout=5):
    while True:
        m = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if m["t"] == t:
            return m


def test_ws_envelope_seq_ack_retransmit_and_resume(gateway_factory):
    gw = start(gateway_factory, ack_timeout="300ms", max_retransmits=10)

    async def scenario():
        ws, welcome = await ws_envelope(gw, "nina")
        assert welcome["streams"]["user"] == {"epoch": "0", "seq": 0, "recovery": "fresh",
                                              "replayed": 0}
        push(gw, {"users": ["nina"]}, "plain")
        push(gw, {"users": ["nina"]}, "must ack", reliable=True)
        first = await recv_json(ws)
        assert (first["stream"], first["seq"], first["data"]) == ("user", 1, "plain")
        assert "ack" not in first
        second = await recv_json(ws)
        assert second["seq"] == 2 and second["ack"] is True
        again = await recv_json(ws, timeout=3)  # not acked: retransmitted, same seq
        assert again == second
        await ws.send(json.dumps({"t": "ack", "stream": "user", "seq": 2}))
        await asyncio.sleep(0.2)
        with_ack_gone = True
        try:
            extra = await recv_json(ws, timeout=1.0)
            with_ack_gone = extra["seq"] != 2
        except asyncio.TimeoutError:
            pass
        assert with_ack_gone
        epoch = first["epoch"]
        await ws.close()
        gw.wait_for(lambda: gw.online("nina") == 0, what="nina offline")
        push(gw, {"users": ["nina"]}, "while away")
        resume = urllib.parse.quote(json.dumps({"user": {"epoch": epoch, "seq": 2}}))
        ws2, welcome2 = await ws_envelope(gw, "nina", query="resume=" + resume)
        assert welcome2["streams"]["user"]["recovery"] == "recovered"
        assert welcome2["streams"]["user"]["replayed"] == 1
        missed = await recv_json(ws2)
        assert (missed["seq"], missed["data"]) == (3, "while away")
        await ws2.close()
        # The simple form: ?epoch=&last_seq=, with a wrong epoch: impossible.
        ws3, welcome3 = await ws_envelope(gw, "nina", query="epoch=abc&last_seq=3")
        assert welcome3["streams"]["user"]["recovery"] == "impossible"
        await ws3.close()

    run(scenario())


def test_ws_envelope_uplink_and_read_sync(gateway_factory):
    gw = start(gateway_factory)

    async def scenario():
        phone, _ = await ws_envelope(gw, "omar", device="phone")
        tablet = tf.TcpFrameClient("127.0.0.1", gw.ports["tcp"])
        tablet.hello(token=make_token("omar"), device="tablet")
        push(gw, {"users": ["omar"]}, "hi")
        p = await recv_json(phone)
        tablet_push = pushes(tablet, 1)[0]
        assert tablet_push.id == p["seq"]
        # The tablet (TCP) reads; the phone (WebSocket envelope) is told.
        tablet.read(p["seq"])
        mark = await recv_json(phone, t="read")
        assert mark == {"t": "read", "stream": "user", "seq": p["seq"], "device": "tablet"}
        # And the other way round.
        await phone.send(json.dumps({"t": "read", "stream": "user", "seq": p["seq"]}))
        f = tablet.recv_type(tf.READ)
        assert (f.id, f["device"]) == (p["seq"], "phone")
        # A ping envelope is answered.
        await phone.send('{"t":"ping"}')
        assert (await recv_json(phone, t="pong")) == {"t": "pong"}
        # A malformed envelope closes with 1007.
        await phone.send('{"t":"ack","seq":"one"}')
        try:
            while True:
                await asyncio.wait_for(phone.recv(), 5)
        except Exception:
            pass
        assert phone.close_code == 1007

    run(scenario())


def test_plain_websocket_clients_are_not_sent_read_notices(gateway_factory):
    gw = start(gateway_factory)

    async def scenario():
        plain = await connect(gw.ws_url(token=make_token("pia")))
        reader = tf.TcpFrameClient("127.0.0.1", gw.ports["tcp"])
        reader.hello(token=make_token("pia"), device="r")
        push(gw, {"users": ["pia"]}, "one")
        assert await plain.recv() == "one"
        seq = pushes(reader, 1)[0].id
        reader.read(seq)
        time.sleep(0.2)
        push(gw, {"users": ["pia"]}, "two")
        assert await plain.recv() == "two"  # nothing came in between
        await plain.close()

    run(scenario())


# ---- Socket.IO: client acks of reliable pushes and connection state recovery ----

def sio(gw, scenario, **options):
    return subprocess.Popen(["node", os.path.join(NODE_DIR, "sio_client.js"), scenario,
                             f"http://127.0.0.1:{gw.port}", json.dumps(options)],
                            cwd=NODE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def sio_result(proc):
    out, err = proc.communicate(timeout=20)
    return json.loads(out.strip().splitlines()[-1])


SIO_TRANSPORTS = pytest.mark.parametrize("transports", [["websocket"], ["polling"]],
                                         ids=["websocket", "polling"])


@SIO_TRANSPORTS
def test_socketio_acks_reliable_pushes(gateway_factory, transports):
    gw = start(gateway_factory, ack_timeout="300ms")
    proc = sio(gw, "receive", token=make_token("quinn"), count=2, transports=transports)
    assert proc.stdout.readline().startswith("ready ")
    push(gw, {"users": ["quinn"]}, "fire and forget", event="news")
    push(gw, {"users": ["quinn"]}, {"n": 1}, event="order", reliable=True)
    events = sio_result(proc)["events"]
    assert [e["event"] for e in events] == ["news", "order"]
    assert "acked" not in events[0] and events[1]["acked"] is True
    assert events[1]["args"] == [{"n": 1}]
    gw.wait_for(lambda: metric(gw, "imgate_delivery_acks_total") >= 1, what="the ack")
    time.sleep(0.6)
    assert metric(gw, "imgate_delivery_retransmits_total") == 0


@SIO_TRANSPORTS
def test_socketio_connection_state_recovery(gateway_factory, transports):
    gw = start(gateway_factory)
    proc = sio(gw, "recover", token=make_token("rita"), count=5, drop_after=2,
               reconnect_delay_ms=1500, transports=transports)
    line = proc.stdout.readline()
    assert line.startswith("ready ") and line.split()[2] == "false", line
    for i in range(2):
        push(gw, {"users": ["rita"]}, f"before {i}", event="msg")
    assert proc.stdout.readline().strip() == "dropped"
    gw.wait_for(lambda: gw.online("rita") == 0, what="rita's transport closed")
    for i in range(2):
        push(gw, {"users": ["rita"]}, f"missed {i}", event="msg")
    line = proc.stdout.readline()
    assert line.startswith("ready ") and line.split()[2] == "true", line  # socket.recovered
    push(gw, {"users": ["rita"]}, "after", event="msg")
    result = sio_result(proc)
    assert [e["args"] for e in result["events"]] == [
        ["before 0"], ["before 1"], ["missed 0"], ["missed 1"], ["after"]]
    assert [c["recovered"] for c in result["connects"]] == [False, True]


# ---- WebSocket binary envelope (subprotocol imgate.v1.bin): TCP frames in binary messages ----

def test_ws_binary_envelope_hello_ack_seq_retransmit_and_resume(gateway_factory):
    import zlib

    from wsutil import close_code

    gw = start(gateway_factory, ack_timeout="300ms", max_retransmits=10)

    def bin_frames(message):
        """The whole TCP frames of one binary message (a partial frame fails the test)."""
        assert isinstance(message, bytes), f"text message in imgate.v1.bin: {message!r}"
        frames, pos = [], 0
        while pos < len(message):
            magic, version, ftype, flags, fid, length = tf.HEADER.unpack_from(message, pos)
            assert (magic, version) == (tf.MAGIC, tf.VERSION)
            body = message[pos + tf.HEADER.size:pos + tf.HEADER.size + length]
            assert len(body) == length, "frame cut by the end of its message"
            pos += tf.HEADER.size + length
            if flags & tf.F_COMPRESSED:
                body = zlib.decompress(body)
            frames.append(tf.Frame(ftype, flags, fid, body))
        assert frames, "empty message"
        return frames

    async def open_bin(query=""):
        ws = await connect(gw.ws_url(token=make_token("olga"), query=query),
                           subprotocols=["imgate.v1.bin"])
        assert ws.subprotocol == "imgate.v1.bin"
        first = bin_frames(await asyncio.wait_for(ws.recv(), 5))
        assert [f.type for f in first] == [tf.HELLO_ACK]  # the first message, no HELLO sent
        assert first[0].id == 0 and first[0]["user"] == "olga"
        return ws, first[0]

    async def next_frame(ws, ftype=tf.PUSH, timeout=5):
        while True:
            for f in bin_frames(await asyncio.wait_for(ws.recv(), timeout)):
                if f.type == ftype:
                    return f

    async def scenario():
        ws, ack = await open_bin()
        assert ack.streams["user"] == {"epoch": 0, "seq": 0, "recovery": "fresh", "replayed": 0}
        push(gw, {"users": ["olga"]}, "plain")
        push(gw, {"users": ["olga"]}, "must ack", reliable=True)
        first = await next_frame(ws)
        assert (first.id, first.stream, first["data"]) == (1, "user", b"plain")
        assert first["epoch"] != 0 and not first.flags & tf.F_ACK_REQUIRED
        second = await next_frame(ws)
        assert second.id == 2 and second.flags & tf.F_ACK_REQUIRED
        again = await next_frame(ws, timeout=3)  # not acked: retransmitted, same seq and bytes
        assert (again.id, again["epoch"], again["data"]) == (2, first["epoch"], b"must ack")
        # PUSH_ACK and a PING batched in one message; the PING is answered.
        await ws.send(tf.frame(tf.PUSH_ACK, tf.tlv(stream="user"), 2) + tf.frame(tf.PING, b"p", 7))
        pong = await next_frame(ws, tf.PONG)
        assert (pong.id, pong.body) == (7, b"p")
        try:
            late = await next_frame(ws, timeout=1.2)
            assert late.id != 2, "retransmitted after the ack"
        except asyncio.TimeoutError:
            pass
        # A CLOSE frame is answered with CLOSE 1000, then the WebSocket close.
        await ws.send(tf.frame(tf.CLOSE, tf.tlv(code=1000)))
        close = await next_frame(ws, tf.CLOSE)
        assert close["code"] == 1000
        assert await close_code(ws) == 1000
        gw.wait_for(lambda: gw.online("olga") == 0, what="olga offline")
        push(gw, {"users": ["olga"]}, "while away")
        # Resume with ?epoch=&last_seq=: exactly the missed message follows the HELLO_ACK.
        ws2, ack2 = await open_bin(f"epoch={tf.epoch_hex(first['epoch'])}&last_seq=2")
        assert ack2.streams["user"] == {"epoch": first["epoch"], "seq": 2,
                                        "recovery": "recovered", "replayed": 1}
        missed = await next_frame(ws2)
        assert (missed.id, missed["data"]) == (3, b"while away")
        # A HELLO is a protocol error: ERROR + CLOSE 1002, then the WebSocket close 1002.
        await ws2.send(tf.frame(tf.HELLO, tf.tlv(token="t"), 1))
        error = await next_frame(ws2, tf.ERROR)
        assert error["code"] == 1002
        assert await close_code(ws2) == 1002

    run(scenario())
