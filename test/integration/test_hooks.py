# SPDX-License-Identifier: Apache-2.0
"""Lifecycle webhooks (the `hooks` stage) against a real backend process: connect, disconnect and
room join/leave events are POSTed to an upstream group, and the connect answer delivers messages
and joins rooms."""
import asyncio
import json
import os
import sys
import time

import pytest

from backend import Backend
from conftest import API_KEY, ROOT, SECRET, make_token
from wsutil import connect, run

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import imgate_tcp as tf  # noqa: E402

CONFIG = """
workers: 2
admin: {{ bind: 127.0.0.1:0 }}
upstreams:
  presence:
    backends: [ {{address: "{a}"}} ]
    timeout: 5s
    retries: 0
listeners:
  - name: edge
    bind: 127.0.0.1:0
    locations:
      - {{ path: /ws, protocol: proto.websocket, pipeline: im }}
      - {{ path: /v1/, protocol: proto.http_push, config: {{ api_keys: [{api_key}] }} }}
  - name: tcp
    type: stream
    bind: 127.0.0.1:0
    protocol: proto.tcp_frame
    pipeline: im
pipelines:
  im:
    - auth.jwt: {{ secret: {secret} }}
    - hooks: {{ upstream: presence, path: "/hooks/{{event}}" }}
"""

WELCOME = {"messages": [{"data": "welcome", "event": "hello"}, {"data": {"unread": 3}}],
           "rooms": ["lobby"]}


@pytest.fixture
def backend():
    b = Backend("hooks")
    yield b
    b.stop()


def start(gateway_factory, backend):
    return gateway_factory(CONFIG.format(a=backend.address, secret=SECRET, api_key=API_KEY))


def events(backend, name, user=None):
    found = [body for path, _, body in backend.requests if body and body.get("event") == name]
    return [b for b in found if user is None or b.get("user") == user]


def wait_event(gw, backend, name, user):
    gw.wait_for(lambda: events(backend, name, user), what=f"{name} webhook for {user}")
    return events(backend, name, user)[0]


def room_push(gw, text):
    status, body, _ = gw.push({"room": "lobby"}, text)
    assert status == 200, body
    return body


def test_websocket_connect_webhook_answer_and_disconnect(gateway_factory, backend):
    gw = start(gateway_factory, backend)
    backend.mode = "answer"
    backend.answer = WELCOME

    async def main():
        ws = await connect(gw.ws_url(token=make_token("alice")))
        assert await asyncio.wait_for(ws.recv(), 5) == "welcome"
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"unread": 3}
        hook = events(backend, "connect", "alice")[0]
        assert hook["protocol"] == "proto.websocket" and hook["listener"] == "edge"
        assert hook["app"] == "default" and hook["peer"].startswith("127.0.0.1:")
        assert int(hook["session"]) > 0 and abs(hook["ts"] - time.time() * 1000) < 10_000
        path, headers, _ = backend.requests[0]
        assert path == "/hooks/connect"
        assert {k.lower(): v for k, v in headers.items()}["x-imgate-event"] == "connect"
        # The room join in the answer makes a later room push from the HTTP API reach the client.
        assert room_push(gw, "to the lobby")["sessions"] == 1
        assert await asyncio.wait_for(ws.recv(), 5) == "to the lobby"
        await ws.close()
        gone = wait_event(gw, backend, "disconnect", "alice")
        assert gone["session"] == hook["session"] and gone["duration_ms"] >= 0
    run(main())
    text = gw.admin("GET", "/metrics")[1].decode()
    assert any(l.startswith("imgate_hooks_applied_total") and l.rsplit(" ", 1)[1] == "1"
               for l in text.splitlines()), text


def test_tcp_connect_answer_join_frames_and_disconnect(gateway_factory, backend):
    gw = start(gateway_factory, backend)
    backend.mode = "answer"
    backend.answer = WELCOME
    client = tf.TcpFrameClient("127.0.0.1", gw.ports["tcp"])
    assert client.hello(token=make_token("bob"), device="phone").name == "HELLO_ACK"
    first = client.recv_type(tf.PUSH)
    assert first["data"] == b"welcome" and first.get("event") == "hello"
    assert json.loads(client.recv_type(tf.PUSH)["data"]) == {"unread": 3}
    hook = events(backend, "connect", "bob")[0]
    assert hook["protocol"] == "proto.tcp_frame" and hook["device"] == "phone"
    assert room_push(gw, "lobby news")["sessions"] == 1
    assert client.recv_type(tf.PUSH)["data"] == b"lobby news"
    # A JOIN frame reaches the backend as a join event; the gateway itself does not join.
    backend.answer = {"rooms": ["secret"]}
    client.join("secret")
    joined = wait_event(gw, backend, "join", "bob")
    assert joined["room"] == "secret" and joined["session"] == hook["session"]
    status, body, _ = gw.push({"room": "secret"}, "x")
    assert status == 200 and body["sessions"] == 0
    client.leave("secret")
    assert wait_event(gw, backend, "leave", "bob")["room"] == "secret"
    client.close()
    assert wait_event(gw, backend, "disconnect", "bob")["session"] == hook["session"]
    client.shutdown()


def test_hung_webhook_backend_does_not_delay_the_open(gateway_factory, backend):
    gw = start(gateway_factory, backend)
    backend.mode = "hang"  # answers after 3 s
    client = tf.TcpFrameClient("127.0.0.1", gw.ports["tcp"])
    t0 = time.monotonic()
    assert client.hello(token=make_token("carol")).name == "HELLO_ACK"
    assert time.monotonic() - t0 < 1.0
    gw.wait_for(lambda: events(backend, "connect", "carol"), what="connect webhook")
    # The session works while the webhook hangs: pushes arrive.
    status, body, _ = gw.push({"users": ["carol"]}, "still here")
    assert status == 200 and body["sessions"] == 1
    assert client.recv_type(tf.PUSH)["data"] == b"still here"

    async def ws_open():
        t1 = time.monotonic()
        ws = await connect(gw.ws_url(token=make_token("dave")))
        assert time.monotonic() - t1 < 1.0
        await ws.close()
    run(ws_open())
    client.shutdown()


def test_bad_answers_and_failures_never_close_the_session(gateway_factory, backend):
    gw = start(gateway_factory, backend)
    backend.mode = "answer"
    backend.answer = {"messages": "not a list", "rooms": ["lobby"]}
    client = tf.TcpFrameClient("127.0.0.1", gw.ports["tcp"])
    assert client.hello(token=make_token("erin")).name == "HELLO_ACK"

    def counter(name):
        text = gw.admin("GET", "/metrics")[1].decode()
        return sum(int(l.rsplit(" ", 1)[1]) for l in text.splitlines()
                   if l.startswith(f"imgate_{name}_total"))

    gw.wait_for(lambda: counter("hooks_invalid") == 1, what="invalid answer counted")
    assert room_push(gw, "x")["sessions"] == 0  # nothing of the bad answer was applied
    backend.mode = "fail"
    client.join("r1")
    gw.wait_for(lambda: counter("hooks_failed") == 2, what="failed join webhook counted")
    status, body, _ = gw.push({"users": ["erin"]}, "alive")
    assert status == 200 and body["sessions"] == 1
    assert client.recv_type(tf.PUSH)["data"] == b"alive"
    assert counter("hooks_sent") == 2
    client.shutdown()
