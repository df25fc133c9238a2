# SPDX-License-Identifier: Apache-2.0
"""proto.socketio with the official clients: npm socket.io-client 4.x (Node), Debian's
python3-socketio and headless Chromium, each over HTTP long-polling only, WebSocket only and the
clients' default (polling, then the upgrade to WebSocket): auth payload accepted and refused, emit
with an ack answered by a backend, pushes received as events (text, binary, rooms, a namespace),
and reconnection after the server closes the transport. Then the Engine.IO polling protocol by
hand: errors, overlapping polls, CORS."""
import concurrent.futures
import http.client
import json
import os
import socket
import subprocess
import threading
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
        config: {{ namespaces: ["/", "/chat"], ping_interval: {ping}, cors_origins: ["*"] }}
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


def upgrades(gw):
    """Polling sessions moved onto a WebSocket (the module's socketio_upgrades counter)."""
    text = gw.admin("GET", "/metrics")[1].decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("imgate_socketio_upgrades_total"))


# socket.io-client `transports` option: long-polling only, WebSocket only, and the default
# (a polling handshake, then the upgrade).
TRANSPORTS = {"polling": ["polling"], "websocket": ["websocket"], "upgrade": ["polling", "websocket"]}


@pytest.fixture(params=list(TRANSPORTS))
def transports(request):
    return TRANSPORTS[request.param]


def test_emit_with_ack_answered_by_the_backend(gateway_factory, backend, transports):
    gw = start(gateway_factory, backend)
    out = node("sio_client.js", "ack", base(gw), json.dumps({
        "token": make_token("sia"), "binary": True, "transports": transports,
        "wait_upgrade": len(transports) == 2}))
    assert out.get("connected"), out
    assert out["transport"] == transports[-1], out
    # The default path upgraded the polling session (on loopback often before "connect").
    assert upgrades(gw) == (1 if len(transports) == 2 else 0)
    if len(transports) == 2:
        assert out["after_upgrade"] == {"backend": "sio", "got": '["after upgrade"]'}, out
    else:
        assert out["first"] == transports[0], out
    # The event's arguments reach the backend as a JSON array, byte for byte; its answer is the ack.
    assert out["answer"] == {"backend": "sio", "got": '[{"text":"hi"},2]'}, out
    # A binary event reaches the backend base64-encoded (its test answer echoes only text bodies).
    assert out["binary"] == {"backend": "sio", "got": None}, out
    # Attachments among other arguments reach the backend inline, base64 in {"_binary": ...}.
    assert out["mixed"] == {"backend": "sio",
                            "got": '[{"name":"x.bin","data":{"_binary":"AQI="}},{"_binary":"Aw=="}]'}, out
    paths = [r[0] for r in backend.requests]
    assert paths == ["/sio/chat", "/sio/upload", "/sio/attach"] + ["/sio/chat"] * (len(transports) - 1), paths
    upload = backend.requests[1][2]
    assert upload["user"] == "sia" and upload["type"] == "binary"
    assert upload["body_base64"] == "AAEC/w=="


def test_bad_token_gets_connect_error_with_the_reason(gateway_factory, backend, transports):
    gw = start(gateway_factory, backend)
    out = node("sio_client.js", "refused", base(gw), json.dumps({
        "token": make_token("x", secret="wrong" * 8), "transports": transports}))
    assert out.get("connect_error") == "signature mismatch", out
    assert out["data"] == {"code": "unauthenticated"}, out
    out = node("sio_client.js", "refused", base(gw), json.dumps({"transports": transports}))
    assert out.get("connect_error") == "missing token", out


class Receiver:
    """A Node socket.io-client waiting for pushes (`receive` scenario)."""

    def __init__(self, gw, user, count=1, namespace="", transports=("websocket",), **extra):
        options = {"token": make_token(user), "count": count, "namespace": namespace,
                   "transports": list(transports), **extra}
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


def test_pushes_arrive_as_events(gateway_factory, backend, transports):
    gw = start(gateway_factory, backend)
    r = Receiver(gw, "sib", count=4, transports=transports)
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


def test_no_loss_or_reordering_across_the_upgrade(gateway_factory, backend):
    # Pushes every few ms while the client connects over polling and upgrades: whatever the
    # polling transport had queued when the client switched goes out first on the WebSocket.
    gw = start(gateway_factory, backend)
    stop = threading.Event()
    pushed = []

    def pusher():
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        headers = {"Authorization": "Bearer " + API_KEY, "Content-Type": "application/json"}
        i = 0
        while not stop.is_set() and i < 2000:
            conn.request("POST", "/v1/push", json.dumps({"to": {"users": ["sij"]}, "data": i,
                                                         "event": "tick"}), headers)
            resp = conn.getresponse()
            assert resp.status == 200, resp.read()
            if json.loads(resp.read())["sessions"] > 0:
                pushed.append(i)
            i += 1
            time.sleep(0.002)
        conn.close()

    thread = threading.Thread(target=pusher)
    thread.start()
    try:
        r = Receiver(gw, "sij", count=100000, transports=["polling", "websocket"], until="end",
                     with_transport=True)
        gw.wait_for(lambda: upgrades(gw) == 1, what="upgrade")
        time.sleep(0.3)  # pushes after the upgrade too
    finally:
        stop.set()
        thread.join()
    assert gw.push({"users": ["sij"]}, None, event="end")[0] == 200
    events = r.result()["events"]
    ticks = [e["args"][0] for e in events if e["event"] == "tick"]
    assert events[-1]["event"] == "end" and events[-1]["transport"] == "websocket", events[-3:]
    # Every push made while the session was online arrived, once, in order (the first few may
    # predate the session: those were pushed to nobody).
    assert ticks == list(range(ticks[0], pushed[-1] + 1)), ticks
    assert set(pushed) <= set(ticks), sorted(set(pushed) - set(ticks))[:10]


def test_namespaces(gateway_factory, backend, transports):
    gw = start(gateway_factory, backend)
    out = node("sio_client.js", "namespaces", base(gw), json.dumps({"token": make_token("sic"),
                                                                    "transports": transports}))
    assert out.get("refused") == "Invalid namespace", out
    assert out["answer"] == {"backend": "sio", "got": '["from chat"]'}, out
    assert backend.requests[0][2]["body"] == '["from chat"]'
    # A push to a namespace reaches only sockets connected to it.
    r = Receiver(gw, "sid", count=1, namespace="/chat", transports=transports)
    assert gw.push({"users": ["sid"]}, "main only", event="x")[0] == 200
    assert gw.push({"users": ["sid"]}, "for chat", event="y", namespace="/chat")[0] == 200
    assert r.result()["events"] == [{"event": "y", "args": ["for chat"]}]


def test_reconnects_after_the_server_closes_the_transport(gateway_factory, backend, transports):
    # Pings every 60 s, idle timeout 1 s: the server closes quiet sessions, the client comes back.
    gw = start(gateway_factory, backend, idle="1s", ping="60s")
    out = node("sio_client.js", "reconnect", base(gw), json.dumps({"token": make_token("sie"),
                                                                   "transports": transports}))
    assert out["connects"] == 2, out
    assert out["reasons"][0] == "transport close", out


def test_python_socketio_client(gateway_factory, backend, transports):
    """Debian's python3-socketio client: connect with auth, emit with a callback, receive a push."""
    gw = start(gateway_factory, backend)
    script = r"""
import json, sys, threading, socketio
url, token, transports = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
sio = socketio.Client(reconnection=False)
got = threading.Event()
result = {}
@sio.on("news")
def news(data):
    result["news"] = data
    got.set()
sio.connect(url, transports=transports, auth={"token": token}, wait_timeout=5)
result["ack"] = sio.call("chat", {"n": 1}, timeout=5)
print("ready", flush=True)
got.wait(10)
sio.disconnect()
print(json.dumps(result), flush=True)
"""
    proc = subprocess.Popen(["/usr/bin/python3", "-c", script, base(gw), make_token("sif"),
                             ",".join(transports)],
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
    # The page started on cross-origin long-polling (CORS) and upgraded to WebSocket.
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


def test_plain_engine_io_client(gateway_factory, transports):
    """mode: engineio: engine.io-client messages are messages (echoed here), pushes arrive."""
    gw = gateway_factory(EIO_CONFIG.format(api_key=API_KEY, secret=SECRET))
    proc = subprocess.Popen(["node", os.path.join(NODE_DIR, "eio_client.js"), base(gw),
                             make_token("eio"), "3", ",".join(transports)], cwd=NODE_DIR,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.strip() == "ready", line + proc.stderr.read()
    gw.wait_for(lambda: gw.online("eio") == 1, what="engine.io client online")
    assert gw.push({"users": ["eio"]}, "pushed")[0] == 200
    out, err = proc.communicate(timeout=15)
    result = json.loads(out.strip().splitlines()[-1])
    assert sorted(map(json.dumps, result["got"])) == sorted(
        map(json.dumps, ["hello engine", {"hex": "010203"}, "pushed"])), (result, err)
    if transports != ["polling", "websocket"]:  # the upgrade may not be done by then
        assert result["transport"] == transports[0]
    # Without a token the upgrade is refused by the auth stage (no in-band hello in this mode).
    url = f"ws://127.0.0.1:{gw.port}/engine.io/?EIO=4&transport=websocket"
    assert run(handshake_status(url)) == 401
    assert run(handshake_status(url + "&token=" + make_token("eio2"))) == 101


# ---- The Engine.IO polling protocol by hand ---------------------------------------------------

def raw(gw, method, path, body=None, headers=None):
    """One HTTP request; returns (status, body text, headers)."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(), resp.headers
    finally:
        conn.close()


def open_polling(gw, token):
    """Handshake and CONNECT over polling; returns the sid."""
    status, body, headers = raw(gw, "GET", "/socket.io/?EIO=4&transport=polling")
    assert status == 200 and body.startswith("0{"), (status, body)
    assert headers["Content-Type"] == "text/plain; charset=UTF-8"
    opened = json.loads(body[1:])
    assert opened["upgrades"] == ["websocket"] and opened["maxPayload"] == 1000000, opened
    sid = opened["sid"]
    status, body, _ = raw(gw, "POST", f"/socket.io/?EIO=4&transport=polling&sid={sid}",
                          '40{"token":"%s"}' % token)
    assert (status, body) == (200, "ok")
    status, body, _ = raw(gw, "GET", f"/socket.io/?EIO=4&transport=polling&sid={sid}")
    assert status == 200 and body.startswith('40{"sid":'), (status, body)
    return sid


def test_polling_by_hand(gateway_factory, backend):
    gw = start(gateway_factory, backend)
    sid = open_polling(gw, make_token("sih"))
    path = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    # Two events in one POST (record separator), both answered through the backend.
    status, body, _ = raw(gw, "POST", path, '421["chat","a"]\x1e422["chat","b"]')
    assert (status, body) == (200, "ok")
    answers = []
    deadline = time.time() + 5
    while len(answers) < 2 and time.time() < deadline:
        status, body, _ = raw(gw, "GET", path)
        assert status == 200, (status, body)
        answers += [p for p in body.split("\x1e") if p.startswith("43")]
    assert {p[:3]: json.loads(p[3:]) for p in answers} == {
        "431": [{"backend": "sio", "got": '["a"]'}],
        "432": [{"backend": "sio", "got": '["b"]'}]}, answers
    # A push waits for the next poll; a binary one is base64 in the polling payload.
    assert gw.push({"users": ["sih"]}, "x", event="news")[0] == 200
    status, body, _ = raw(gw, "GET", path)
    assert body == '42["news","x"]', body
    status, body_, _ = gw.http("POST", "/v1/push", {"to": {"users": ["sih"]}, "data_base64": "AAEC/w==",
                                                    "event": "blob"})
    assert status == 200, body_
    status, body, _ = raw(gw, "GET", path)
    assert body == '451-["blob",{"_placeholder":true,"num":0}]\x1ebAAEC/w==', body
    # A held poll is answered by the next push.
    holder = concurrent.futures.ThreadPoolExecutor(1)
    held = holder.submit(raw, gw, "GET", path)
    time.sleep(0.3)
    assert not held.done()
    assert gw.push({"users": ["sih"]}, "late", event="news")[0] == 200
    assert held.result(timeout=5)[1] == '42["news","late"]'
    # A second poll while one is held: 400 "Bad request" and the session closes (the held poll
    # gets the close packet), as the reference server answers overlapping polls.
    held = holder.submit(raw, gw, "GET", path)
    time.sleep(0.3)
    status, body, _ = raw(gw, "GET", path)
    assert (status, json.loads(body)) == (400, {"code": 3, "message": "Bad request"})
    assert held.result(timeout=5)[1].split("\x1e")[-1] == "1"
    gw.wait_for(lambda: gw.online("sih") == 0, what="session closed")
    status, body, _ = raw(gw, "GET", path)
    assert (status, json.loads(body)) == (400, {"code": 1, "message": "Session ID unknown"})
    holder.shutdown()


def test_polling_errors(gateway_factory, backend):
    gw = start(gateway_factory, backend)
    unknown = "A" * 20
    for method, body in (("GET", None), ("POST", "40")):
        status, text, _ = raw(gw, method, f"/socket.io/?EIO=4&transport=polling&sid={unknown}", body)
        assert (status, json.loads(text)) == (400, {"code": 1, "message": "Session ID unknown"})
    status, text, _ = raw(gw, "GET", "/socket.io/?EIO=4&transport=polling&sid=short")
    assert (status, json.loads(text)) == (400, {"code": 1, "message": "Session ID unknown"})
    status, text, _ = raw(gw, "POST", "/socket.io/?EIO=4&transport=polling", "40")
    assert (status, json.loads(text)) == (400, {"code": 2, "message": "Bad handshake method"})
    # A WebSocket upgrade naming an unknown polling session is refused before the 101.
    url = f"ws://127.0.0.1:{gw.port}/socket.io/?EIO=4&transport=websocket&sid={unknown}"
    assert run(handshake_status(url)) == 400
    # A body over maxPayload is refused.
    sid = open_polling(gw, make_token("sii"))
    status, _, _ = raw(gw, "POST", f"/socket.io/?EIO=4&transport=polling&sid={sid}",
                       "4" + "x" * 1000001)
    assert status == 413


def test_polling_sessions_are_admitted_like_connections(gateway_factory, backend):
    # Handshakes on keep-alive connections must not pile up sessions past the limits: each
    # polling session holds a connection (and per-IP) slot of `limits` until it ends.
    gw = gateway_factory("limits: { max_connections_per_ip: 3 }\n" + CONFIG.format(
        idle="120s", ping="25s", backend=backend.address, secret=SECRET, api_key=API_KEY))
    handshake = "/socket.io/?EIO=4&transport=polling"
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)  # one keep-alive connection

    def get():
        conn.request("GET", handshake)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()

    for _ in range(2):  # this connection + the sessions so far stay within 3
        status, body = get()
        assert status == 200 and body.startswith("0{"), (status, body)
    status, body = get()
    conn.close()
    assert status == 503, (status, body)
    assert json.loads(body) == {"error": "unavailable",
                                "reason": "admission limit: max_connections_per_ip"}, body
    status, text, _ = gw.admin("GET", "/metrics")
    assert 'imgate_connections_refused_total{limit="max_connections_per_ip"} 1' in text.decode()


def test_polling_cors(gateway_factory, backend):
    gw = start(gateway_factory, backend)
    origin = "http://app.example"
    status, _, headers = raw(gw, "OPTIONS", "/socket.io/?EIO=4&transport=polling", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] in ("*", origin)
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert headers["Access-Control-Allow-Headers"] == "content-type"
    status, body, headers = raw(gw, "GET", "/socket.io/?EIO=4&transport=polling",
                                headers={"Origin": origin})
    assert status == 200 and body.startswith("0{")
    assert headers["Access-Control-Allow-Origin"] in ("*", origin)



def test_input_behind_a_held_poll_is_bounded(gateway_factory, backend):
    # A long poll holds its connection's one exchange; bytes pipelined behind it wait unparsed.
    # The gateway buffers at most 64 KiB of them and stops reading (TCP flow control), so a
    # client cannot make it buffer without bound.
    gw = start(gateway_factory, backend)
    sid = open_polling(gw, make_token("held"))
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    sock.sendall(f"GET /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    time.sleep(0.2)  # the poll is held (nothing to send for ping_interval)
    sock.setblocking(False)
    junk = b"X" * (1 << 20)
    sent = 0
    deadline = time.time() + 3
    while time.time() < deadline and sent < (32 << 20):
        try:
            sent += sock.send(junk)
        except BlockingIOError:
            time.sleep(0.01)
    sock.close()
    # Bounded: ~300 KiB (64 KiB buffered + socket buffers); unbounded reading took > 9 MiB.
    assert sent < (2 << 20), f"the gateway kept reading: {sent} bytes accepted"
    status, body, _ = raw(gw, "GET", "/v1/stats", headers={"Authorization": "Bearer " + API_KEY})
    assert status == 200, (status, body)
