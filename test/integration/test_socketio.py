# SPDX-License-Identifier: Apache-2.0
"""proto.socketio with the official clients: npm socket.io-client 4.x (Node) and Debian's
python3-socketio, over the WebSocket transport: auth payload accepted and refused, emit with an
ack answered by a backend, pushes received as events (text, binary, rooms, a namespace), and
reconnection after the server closes the transport."""
import json
import os
import subprocess
import time

import pytest

from backend import Backend
from conftest import API_KEY, NODE_DIR, SECRET, make_token, node
from wsutil import handshake_status, run

CONFIG = """
workers: 2
sessions: {{ idle_timeout: {idle} }}
admin: {{ bind: 127.0.0.1:0 }}
upstreams:
  chat:
    backends: [ {{address: "{backend}"}} ]
    timeout: 2s
listeners:
  - name: edge
    bind: 127.0.0.1:0
    locations:
      - path: /socket.io/
        protocol: proto.socketio
        pipeline: im
        config: {{ namespaces: ["/", "/chat"], ping_interval: {ping} }}
      - {{ path: /v1/, protocol: proto.http_push, config: {{ api_keys: [{api_key}] }} }}
pipelines:
  im:
    - auth.jwt: {{ secret: {secret} }}
    - route: {{ rules: [ {{ upstream: chat, path: "/sio/{{event}}" }} ] }}
"""


@pytest.fixture
def backend():
    b = Backend("sio")
    yield b
    b.stop()


def start(gateway_factory, backend, idle="120s", ping="25s"):
    return gateway_factory(CONFIG.format(idle=idle, ping=ping, backend=backend.address,
                                         secret=SECRET, api_key=API_KEY))


def base(gw):
    return f"http://127.0.0.1:{gw.port}"


def test_emit_with_ack_answered_by_the_backend(gateway_factory, backend):
    gw = start(gateway_factory, backend)
    out = node("sio_client.js", "ack", base(gw), json.dumps({"token": make_token("sia"), "binary": True}))
    assert out.get("connected"), out
    # The event's arguments reach the backend as a JSON array, byte for byte; its answer is the ack.
    assert out["answer"] == {"backend": "sio", "got": '[{"text":"hi"},2]'}, out
    # A binary event reaches the backend base64-encoded (its test answer echoes only text bodies).
    assert out["binary"] == {"backend": "sio", "got": None}, out
    paths = [r[0] for r in backend.requests]
    assert paths == ["/sio/chat", "/sio/upload"], paths
    upload = backend.requests[1][2]
    assert upload["user"] == "sia" and upload["type"] == "binary"
    assert upload["body_base64"] == "AAEC/w=="


def test_bad_token_gets_connect_error_with_the_reason(gateway_factory, backend):
    gw = start(gateway_factory, backend)
    out = node("sio_client.js", "refused", base(gw), json.dumps({"token": make_token("x", secret="wrong" * 8)}))
    assert out["connect_error"] == "signature mismatch", out
    assert out["data"] == {"code": "unauthenticated"}, out
    out = node("sio_client.js", "refused", base(gw), json.dumps({}))
    assert out["connect_error"] == "missing token", out


class Receiver:
    """A Node socket.io-client waiting for pushes (`receive` scenario)."""

    def __init__(self, gw, user, count=1, namespace=""):
        options = {"token": make_token(user), "count": count, "namespace": namespace}
        self.proc = subprocess.Popen(["node", os.path.join(NODE_DIR, "sio_client.js"), "receive", base(gw),
                                      json.dumps(options)], cwd=NODE_DIR, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("ready "), line + self.proc.stderr.read()

    def result(self):
        out, err = self.proc.communicate(timeout=15)
        return json.loads(out.strip().splitlines()[-1])


def test_ack_ids_of_different_sockets_are_different_messages(gateway_factory, backend):
    # Socket.IO ack ids count per client socket (every tab, device or page load starts at 0):
    # the route stage's de-duplication must not answer a second socket's id 0 from the first
    # socket's cached answer.
    gw = start(gateway_factory, backend)
    for _ in range(2):
        out = node("sio_client.js", "ack", base(gw), json.dumps({"token": make_token("sid")}))
        assert out["answer"] == {"backend": "sio", "got": '[{"text":"hi"},2]'}, out
    assert [r[0] for r in backend.requests] == ["/sio/chat", "/sio/chat"]


def test_pushes_arrive_as_events(gateway_factory, backend):
    gw = start(gateway_factory, backend)
    r = Receiver(gw, "sib", count=4)
    assert gw.push({"users": ["sib"]}, {"text": "hello"}, event="news")[0] == 200
    assert gw.push({"users": ["sib"]}, "plain text")[0] == 200
    status, body, _ = gw.http("POST", "/v1/push", {"to": {"users": ["sib"]}, "data_base64": "AAEC/w==",
                                                   "event": "blob"})
    assert status == 200, body
    status, body, _ = gw.http("POST", "/v1/rooms/lobby/members", {"users": ["sib"]})
    assert status == 200, body
    assert gw.push({"room": "lobby"}, [1, 2], event="room")[0] == 200
    events = r.result()["events"]
    assert events == [
        {"event": "news", "args": [{"text": "hello"}]},
        {"event": "message", "args": ["plain text"]},
        {"event": "blob", "args": [{"hex": "000102ff"}]},
        {"event": "room", "args": [[1, 2]]},
    ], events


def test_namespaces(gateway_factory, backend):
    gw = start(gateway_factory, backend)
    out = node("sio_client.js", "namespaces", base(gw), json.dumps({"token": make_token("sic")}))
    assert out.get("refused") == "Invalid namespace", out
    assert out["answer"] == {"backend": "sio", "got": '["from chat"]'}, out
    assert backend.requests[0][2]["body"] == '["from chat"]'
    # A push to a namespace reaches only sockets connected to it.
    r = Receiver(gw, "sid", count=1, namespace="/chat")
    assert gw.push({"users": ["sid"]}, "main only", event="x")[0] == 200
    assert gw.push({"users": ["sid"]}, "for chat", event="y", namespace="/chat")[0] == 200
    assert r.result()["events"] == [{"event": "y", "args": ["for chat"]}]


def test_reconnects_after_the_server_closes_the_transport(gateway_factory, backend):
    # Pings every 60 s, idle timeout 1 s: the server closes quiet sessions, the client comes back.
    gw = start(gateway_factory, backend, idle="1s", ping="60s")
    out = node("sio_client.js", "reconnect", base(gw), json.dumps({"token": make_token("sie")}))
    assert out["connects"] == 2, out
    assert out["reasons"][0] == "transport close", out


def test_python_socketio_client(gateway_factory, backend):
    """Debian's python3-socketio client: connect with auth, emit with a callback, receive a push."""
    gw = start(gateway_factory, backend)
    script = r"""
import json, sys, threading, socketio
url, token = sys.argv[1], sys.argv[2]
sio = socketio.Client(reconnection=False)
got = threading.Event()
result = {}
@sio.on("news")
def news(data):
    result["news"] = data
    got.set()
sio.connect(url, transports=["websocket"], auth={"token": token}, wait_timeout=5)
result["ack"] = sio.call("chat", {"n": 1}, timeout=5)
print("ready", flush=True)
got.wait(10)
sio.disconnect()
print(json.dumps(result), flush=True)
"""
    proc = subprocess.Popen(["/usr/bin/python3", "-c", script, base(gw), make_token("sif")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.strip() == "ready", line + proc.stderr.read()
    deadline = time.time() + 5
    while gw.online("sif") == 0 and time.time() < deadline:
        time.sleep(0.05)
    assert gw.push({"users": ["sif"]}, {"hi": "py"}, event="news")[0] == 200
    out, err = proc.communicate(timeout=15)
    result = json.loads(out.strip().splitlines()[-1])
    assert result == {"ack": {"backend": "sio", "got": '[{"n":1}]'}, "news": {"hi": "py"}}, (out, err)


def test_engine_io_errors(gateway_factory, backend):
    gw = start(gateway_factory, backend)
    status, body, _ = gw.http("GET", "/socket.io/?EIO=3&transport=websocket", api_key=None)
    assert (status, body) == (400, {"code": 5, "message": "Unsupported protocol version"})
    status, body, _ = gw.http("GET", "/socket.io/?EIO=4&transport=carrier-pigeon", api_key=None)
    assert (status, body) == (400, {"code": 0, "message": "Transport unknown"})


def test_chromium_with_the_socketio_browser_bundle(gateway_factory, backend):
    gw = start(gateway_factory, backend)
    proc = subprocess.Popen(["node", os.path.join(NODE_DIR, "browser_sio_client.js"), base(gw),
                             make_token("sig")], cwd=NODE_DIR, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    ready = proc.stdout.readline().strip()
    assert ready == "ready", ready + proc.stderr.read()
    gw.wait_for(lambda: gw.online("sig") == 1, what="browser online")
    assert gw.push({"users": ["sig"]}, {"from": "backend"}, event="news")[0] == 200
    out, err = proc.communicate(timeout=30)
    result = json.loads(out.strip().splitlines()[-1])
    assert result == {"news": {"from": "backend"}, "transport": "websocket"}, (result, err)


EIO_CONFIG = """
workers: 2
admin: {{ bind: 127.0.0.1:0 }}
listeners:
  - name: edge
    bind: 127.0.0.1:0
    locations:
      - path: /engine.io/
        protocol: proto.socketio
        pipeline: im
        config: {{ mode: engineio }}
      - {{ path: /v1/, protocol: proto.http_push, config: {{ api_keys: [{api_key}] }} }}
pipelines:
  im:
    - auth.jwt: {{ secret: {secret} }}
    - echo
"""


def test_plain_engine_io_client(gateway_factory):
    """mode: engineio: engine.io-client messages are messages (echoed here), pushes arrive."""
    gw = gateway_factory(EIO_CONFIG.format(api_key=API_KEY, secret=SECRET))
    proc = subprocess.Popen(["node", os.path.join(NODE_DIR, "eio_client.js"), base(gw),
                             make_token("eio"), "3"], cwd=NODE_DIR, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.strip() == "ready", line + proc.stderr.read()
    gw.wait_for(lambda: gw.online("eio") == 1, what="engine.io client online")
    assert gw.push({"users": ["eio"]}, "pushed")[0] == 200
    out, err = proc.communicate(timeout=15)
    result = json.loads(out.strip().splitlines()[-1])
    assert sorted(map(json.dumps, result["got"])) == sorted(
        map(json.dumps, ["hello engine", {"hex": "010203"}, "pushed"])), (result, err)
    assert result["transport"] == "websocket"
    # Without a token the upgrade is refused by the auth stage (no in-band hello in this mode).
    url = f"ws://127.0.0.1:{gw.port}/engine.io/?EIO=4&transport=websocket"
    assert run(handshake_status(url)) == 401
    assert run(handshake_status(url + "&token=" + make_token("eio2"))) == 101
