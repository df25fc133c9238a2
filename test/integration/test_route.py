# SPDX-License-Identifier: Apache-2.0
"""Uplink routing to existing backends: clients' messages (TCP frames and WebSocket) are POSTed to
upstream groups by rule, and the backend's answer comes back as the ack."""
import asyncio
import json
import os
import sys
import time

import pytest

from backend import Backend
from conftest import ROOT, SECRET, make_token
from wsutil import connect, run

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import imgate_tcp as tf  # noqa: E402

CONFIG = """
workers: 2
admin: {{ bind: 127.0.0.1:0 }}
upstreams:
  chat:
    backends: [ {{address: "{a}"}}, {{address: "{b}"}} ]
    timeout: 1s
    retries: 1
    health_check: {{ path: /healthz, interval: 200ms, timeout: 500ms, healthy_threshold: 1, unhealthy_threshold: 1 }}
  slow:
    backends: [ {{address: "{c}"}} ]
    timeout: 500ms
    retries: 0
  sticky:
    backends: [ {{address: "{a}"}}, {{address: "{b}"}} ]
    policy: consistent_hash
listeners:
  - name: edge
    bind: 127.0.0.1:0
    locations:
      - {{ path: /ws, protocol: proto.websocket, pipeline: im }}
  - name: tcp
    type: stream
    bind: 127.0.0.1:0
    protocol: proto.tcp_frame
    pipeline: im
pipelines:
  im:
    - auth.jwt: {{ secret: {secret} }}
    - route:
        rules:
          - {{ event: "slow\\\\..*", upstream: slow }}
          - {{ event: "sticky\\\\..*", upstream: sticky, path: /sticky }}
          - {{ event: "canary\\\\..*", upstream: chat, path: /canary, gray_upstream: slow, gray_percent: 30 }}
          - {{ event: "chat\\\\..*", upstream: chat, path: "/im/{{event}}" }}
          - {{ listener: edge, upstream: chat, path: "/ws/{{user}}" }}
"""


@pytest.fixture
def backends():
    started = [Backend("a"), Backend("b"), Backend("c")]
    yield started
    for b in started:
        b.stop()


def start(gateway_factory, backends):
    a, b, c = backends
    return gateway_factory(CONFIG.format(a=a.address, b=b.address, c=c.address, secret=SECRET))


def tcp_client(gw, user):
    client = tf.TcpFrameClient("127.0.0.1", gw.ports["tcp"])
    ack = client.hello(token=make_token(user))
    assert ack.name == "HELLO_ACK", ack
    return client


def test_tcp_send_reaches_the_backend_and_the_reply_is_the_ack(gateway_factory, backends):
    gw = start(gateway_factory, backends)
    client = tcp_client(gw, "alice")
    fid = client.send("hello backend", event="chat.send", msg_id="c-1")
    ack = client.recv_type(tf.SEND_ACK)
    assert ack.id == fid or ack.get("msg_id") == "c-1"
    assert ack.get("status", 0) == 0
    reply = json.loads(ack["data"])
    assert reply["got"] == "hello backend"
    hit = [b for b in backends[:2] if b.count() == 1]
    assert len(hit) == 1
    path, headers, envelope = hit[0].requests[0]
    assert path == "/im/chat.send"
    assert envelope["user"] == "alice" and envelope["event"] == "chat.send"
    assert envelope["body"] == "hello backend" and envelope["protocol"] == "proto.tcp_frame"
    assert {k.lower(): v for k, v in headers.items()}["x-imgate-trace-id"] == envelope["trace_id"]
    client.shutdown()


def test_round_robin_and_failover_without_client_errors(gateway_factory, backends):
    gw = start(gateway_factory, backends)
    client = tcp_client(gw, "bob")
    for i in range(10):
        client.send(f"m{i}", event="chat.x")
        assert client.recv_type(tf.SEND_ACK).get("status", 0) == 0
    assert backends[0].count() > 0 and backends[1].count() > 0
    # Kill one backend process: its connections drop and connects are refused; calls are retried
    # on the other backend, so clients see no error.
    backends[1].stop()
    time.sleep(0.2)
    before_a = backends[0].count()
    for i in range(10):
        client.send(f"n{i}", event="chat.x")
        assert client.recv_type(tf.SEND_ACK).get("status", 0) == 0
    assert backends[0].count() == before_a + 10
    client.shutdown()


def test_backend_errors_come_back_as_error_acks(gateway_factory, backends):
    gw = start(gateway_factory, backends)
    client = tcp_client(gw, "carol")
    backends[0].mode = backends[1].mode = "reject"
    client.send("x", event="chat.x")
    ack = client.recv_type(tf.SEND_ACK)
    assert ack.get("status") == 4003  # permission denied, from the backend's 403
    # A hung backend: timeout error ack, and the session stays usable.
    backends[2].mode = "hang"
    client.send("y", event="slow.call")
    ack = client.recv_type(tf.SEND_ACK, timeout=5)
    assert ack.get("status") not in (None, 0)
    # No rule: not found, without closing the session.
    client.send("z", event="weather")
    ack = client.recv_type(tf.SEND_ACK)
    assert ack.get("status") == 4004
    backends[0].mode = backends[1].mode = "ok"
    client.send("ok now", event="chat.x")
    assert client.recv_type(tf.SEND_ACK).get("status", 0) == 0
    client.shutdown()


def test_websocket_messages_are_routed_and_answered(gateway_factory, backends):
    gw = start(gateway_factory, backends)

    async def main():
        ws = await connect(f"ws://127.0.0.1:{gw.ports['edge']}/ws?token={make_token('dave')}")
        await ws.send("from ws")
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert reply["got"] == "from ws"
        sent = [r for b in backends[:2] for r in b.requests if r[0] == "/ws/dave"]
        assert len(sent) == 1 and sent[0][2]["protocol"] == "proto.websocket"
        # A failing backend answers with a JSON error message; the session stays open.
        backends[0].mode = backends[1].mode = "fail"
        await ws.send("again")
        err = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert err["type"] == "error" and err["error"] == "unavailable"
        backends[0].mode = backends[1].mode = "ok"
        await ws.send("third")
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["got"] == "third"
        await ws.close()
    run(main())


def test_health_checks_and_upstream_metrics(gateway_factory, backends):
    gw = start(gateway_factory, backends)
    client = tcp_client(gw, "erin")
    client.send("x", event="chat.x")
    assert client.recv_type(tf.SEND_ACK).get("status", 0) == 0
    backends[1].healthy = False

    def healthy_gauge(backend):
        text = gw.admin("GET", "/metrics")[1].decode()
        for line in text.splitlines():
            if line.startswith("imgate_upstream_healthy") and backend.address in line and '"chat"' in line:
                return line.rsplit(" ", 1)[1]
        return None

    gw.wait_for(lambda: healthy_gauge(backends[1]) == "0", what="backend b marked down")
    assert healthy_gauge(backends[0]) == "1"
    before = backends[1].count()
    for i in range(6):
        client.send(f"h{i}", event="chat.x")
        assert client.recv_type(tf.SEND_ACK).get("status", 0) == 0
    assert backends[1].count() == before  # nothing sent to the unhealthy backend
    backends[1].healthy = True
    gw.wait_for(lambda: healthy_gauge(backends[1]) == "1", what="backend b back")
    text = gw.admin("GET", "/metrics")[1].decode()
    assert "imgate_upstream_requests_total" in text and "imgate_route_forwarded_total" in text
    client.shutdown()


def test_reload_changes_rules_for_connected_clients(gateway_factory, backends):
    gw = start(gateway_factory, backends)
    client = tcp_client(gw, "frank")
    client.send("before", event="news.x")
    assert client.recv_type(tf.SEND_ACK).get("status") == 4004
    a, b, c = backends
    text = CONFIG.format(a=a.address, b=b.address, c=c.address, secret=SECRET).replace(
        '{ event: "chat\\\\..*", upstream: chat, path: "/im/{event}" }',
        '{ event: "(chat|news)\\\\..*", upstream: chat, path: "/im/{event}" }')
    assert "news" in text
    gw.reload(text)
    assert "reload done" in gw.read_log()
    client.send("after", event="news.x")
    assert client.recv_type(tf.SEND_ACK).get("status", 0) == 0
    client.shutdown()


def test_retried_message_id_is_acked_again_not_forwarded_twice(gateway_factory, backends):
    gw = start(gateway_factory, backends)
    client = tcp_client(gw, "gina")
    client.send("pay 10", event="chat.pay", msg_id="dup-1")
    first = client.recv_type(tf.SEND_ACK)
    # The client lost the ack and reconnects, then retries the same message id.
    client.shutdown()
    client = tcp_client(gw, "gina")
    client.send("pay 10", event="chat.pay", msg_id="dup-1")
    second = client.recv_type(tf.SEND_ACK)
    assert first.get("status", 0) == 0 and second.get("status", 0) == 0
    assert json.loads(first["data"]) == json.loads(second["data"])
    forwarded = [r for b in backends[:2] for r in b.requests if r[2] and r[2].get("id") == "dup-1"]
    assert len(forwarded) == 1
    client.shutdown()


def test_backend_answer_can_push_to_other_users(gateway_factory, backends):
    gw = start(gateway_factory, backends)
    sender = tcp_client(gw, "hank")
    peer = tcp_client(gw, "peer")
    backends[0].mode = backends[1].mode = "instruct"
    sender.send("hello peer", event="chat.dm")
    ack = sender.recv_type(tf.SEND_ACK)
    assert ack.get("status", 0) == 0 and ack["data"] == b"stored"
    push = peer.recv_type(tf.PUSH)
    assert json.loads(push["data"]) == {"from": "hank", "text": "hello peer"}
    sender.shutdown()
    peer.shutdown()


def test_answers_and_messages_that_are_not_utf8_text_cost_no_connection(gateway_factory, backends):
    """A text frame must be UTF-8 or the client fails the connection (1007): a backend's raw
    answer that is not arrives as a binary message, a lone surrogate escape in instructions as
    U+FFFD, and a TCP client's "text" that is not UTF-8 reaches the backend as base64."""
    gw = start(gateway_factory, backends)

    async def main():
        url = f"ws://127.0.0.1:{gw.ports['edge']}/ws?token="
        ws = await connect(url + make_token("erin"))
        peer = await connect(url + make_token("frank"))
        backends[0].mode = backends[1].mode = "raw"
        backends[0].raw_hex = backends[1].raw_hex = (b"\xff\xfe not text").hex()
        await ws.send("first")
        assert await asyncio.wait_for(ws.recv(), 5) == b"\xff\xfe not text"
        backends[0].answer = backends[1].answer = {"imgate": {
            "reply": "ok \udc00", "push": [{"to": {"users": ["frank"]}, "data": "x\udfff"}]}}
        backends[0].mode = backends[1].mode = "answer"
        await ws.send("second")
        assert await asyncio.wait_for(ws.recv(), 5) == "ok \ufffd"
        assert await asyncio.wait_for(peer.recv(), 5) == "x\ufffd"
        backends[0].mode = backends[1].mode = "ok"
        await ws.send("third")  # both connections are still open
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["got"] == "third"
        await ws.close()
        await peer.close()
    run(main())

    client = tcp_client(gw, "gina")
    client.send(b"caf\xe9", event="chat.latin1")
    assert client.recv_type(tf.SEND_ACK).get("status", 0) == 0
    sent = [r[2] for b in backends[:2] for r in b.requests if r[2] and r[2]["user"] == "gina"]
    assert len(sent) == 1
    assert sent[0]["type"] == "binary" and sent[0]["body_base64"] == "Y2Fm6Q=="
    client.shutdown()


def fnv_bucket(app, user):
    h = 14695981039346656037
    for b in (app + "/" + user).encode():
        h ^= b
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h % 100


def test_consistent_hash_keeps_each_user_on_one_backend(gateway_factory, backends):
    gw = start(gateway_factory, backends)
    seen = {}
    for u in range(12):
        client = tcp_client(gw, f"s{u}")
        for i in range(4):
            client.send(f"{i}", event="sticky.x")
            assert client.recv_type(tf.SEND_ACK).get("status", 0) == 0
        client.shutdown()
    for b in backends[:2]:
        for path, _, env in b.requests:
            if path == "/sticky":
                seen.setdefault(env["user"], set()).add(b.name)
    assert len(seen) == 12
    assert all(len(names) == 1 for names in seen.values()), seen
    assert {n for names in seen.values() for n in names} == {"a", "b"}  # users spread over both


def test_gray_release_share_matches_the_configured_percentage(gateway_factory, backends):
    gw = start(gateway_factory, backends)
    users = [f"g{u}" for u in range(100)]
    for user in users:
        client = tcp_client(gw, user)
        client.send("x", event="canary.x")
        assert client.recv_type(tf.SEND_ACK).get("status", 0) == 0
        client.shutdown()
    canary = {env["user"] for path, _, env in backends[2].requests if path == "/canary"}
    expected = {u for u in users if fnv_bucket("default", u) < 30}
    assert canary == expected
    assert 15 <= len(canary) <= 45
