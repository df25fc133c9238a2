# SPDX-License-Identifier: Apache-2.0
"""auth.jwt `expiry: close` against the real binary: a session whose token is about to expire
gets the token.expiring notice, may refresh with a new token (the refresh never reaches the
next stage), and is closed with 4001 when it does not; `expiry: ignore` keeps connect-only
checks. WebSocket (JSON envelope), TCP frames and Socket.IO (event auth.refresh)."""
import asyncio
import json
import os
import subprocess
import sys
import time

from conftest import ROOT, SECRET, make_token
from wsutil import close_code, connect, run

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import imgate_tcp as tf  # noqa: E402

# exp has one-second resolution: a token made with exp_in=3 lives 2 to 3 s. With a 2 s window
# the notice comes within a second of connecting; with leeway 0 the close comes at exp.
CONFIG = """
workers: 2
admin: {{ bind: 127.0.0.1:0 }}
listeners:
  - name: edge
    bind: 127.0.0.1:0
    locations:
      - {{ path: /ws, protocol: proto.websocket, pipeline: expiring }}
      - {{ path: /ws-ignore, protocol: proto.websocket, pipeline: ignoring }}
      - {{ path: /socket.io/, protocol: proto.socketio, pipeline: expiring }}
  - name: tcp
    type: stream
    bind: 127.0.0.1:0
    protocol: proto.tcp_frame
    pipeline: expiring
pipelines:
  expiring:
    - auth.jwt: {{ secret: {secret}, leeway: 0, refresh_window: 2s }}
    - echo
  ignoring:
    - auth.jwt: {{ secret: {secret}, leeway: 0, refresh_window: 2s, expiry: ignore }}
    - echo
"""


def start(gateway_factory):
    return gateway_factory(CONFIG.format(secret=SECRET))


def exp_of(token):
    import base64
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"]


async def recv_json(ws, timeout=5):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


def metric(gw, name):
    text = gw.admin("GET", "/metrics")[1].decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(f"imgate_{name}_total"))


def test_websocket_notice_refresh_and_expiry(gateway_factory):
    gw = start(gateway_factory)

    async def refreshing():
        token = make_token("alice", exp_in=3)
        ws = await connect(gw.ws_url(token=token))
        notice = await recv_json(ws, timeout=3)
        assert notice == {"event": "token.expiring", "expires_at": exp_of(token)}
        # A token for someone else is refused; the old deadline stands.
        await ws.send(json.dumps({"event": "auth.refresh", "id": "bad",
                                  "token": make_token("mallory", exp_in=60)}))
        error = await recv_json(ws)
        assert error == {"type": "error", "id": "bad", "event": "auth.refresh",
                         "error": "unauthenticated", "reason": "token is for another user"}
        fresh = make_token("alice", exp_in=60)
        await ws.send(json.dumps({"event": "auth.refresh", "id": "r1", "token": fresh}))
        ack = await recv_json(ws)
        assert ack == {"event": "auth.refresh", "status": "ok", "expires_at": exp_of(fresh)}
        # Past the first token's exp the session is still open, and the refresh message itself
        # never reached the echo stage (the next thing echoed is "still here").
        await asyncio.sleep(max(0.0, exp_of(token) - time.time()) + 1.0)
        await ws.send("still here")
        assert await asyncio.wait_for(ws.recv(), 5) == "still here"
        await ws.close()

    async def expiring():
        token = make_token("bob", exp_in=3)
        ws = await connect(gw.ws_url(token=token))
        notice = await recv_json(ws, timeout=3)
        assert notice["event"] == "token.expiring"
        started = time.time()
        assert await close_code(ws, timeout=5) == 4001
        # Closed at exp (leeway 0), not earlier than a whole second short of it.
        assert time.time() >= exp_of(token) - 1.0
        assert time.time() - started < 4.5

    async def ignoring():
        ws = await connect(gw.ws_url(path="/ws-ignore", token=make_token("carol", exp_in=2)))
        await asyncio.sleep(3.2)
        # No notice, no close; an auth.refresh is an ordinary message here (echoed back).
        envelope = json.dumps({"event": "auth.refresh", "token": "x"})
        await ws.send(envelope)
        assert await asyncio.wait_for(ws.recv(), 5) == envelope
        await ws.close()

    async def main():
        await asyncio.gather(refreshing(), expiring(), ignoring())

    run(main(), timeout=30)
    assert metric(gw, "auth_jwt_refreshed") == 1
    assert metric(gw, "auth_jwt_refresh_failed") == 1
    assert metric(gw, "auth_jwt_expired") == 1
    assert metric(gw, "auth_jwt_expiry_notices") == 2


def test_tcp_frame_notice_refresh_and_expiry(gateway_factory):
    gw = start(gateway_factory)
    token = make_token("dave", exp_in=3)
    c = tf.TcpFrameClient("127.0.0.1", gw.ports["tcp"])
    assert c.hello(token=token).name == "HELLO_ACK"
    notice = c.recv_type(tf.PUSH, timeout=3)
    assert notice.get("event") == "token.expiring" and notice.get("kind") == 2
    assert json.loads(notice["data"]) == {"event": "token.expiring", "expires_at": exp_of(token)}
    fresh = make_token("dave", exp_in=60)
    fid = c.send(fresh, event="auth.refresh")
    ack = c.recv_type(tf.SEND_ACK)
    assert ack.id == fid and ack["status"] == 0
    assert json.loads(ack["data"]) == {"event": "auth.refresh", "status": "ok",
                                       "expires_at": exp_of(fresh)}
    time.sleep(max(0.0, exp_of(token) - time.time()) + 1.0)
    c.send("ping", event="chat", ack=False)
    assert c.recv_type(tf.PUSH)["data"] == b"ping"  # echoed: the session lives on
    c.shutdown()

    # Without a refresh: ERROR 4001 then CLOSE 4001 at exp.
    late = tf.TcpFrameClient("127.0.0.1", gw.ports["tcp"])
    assert late.hello(token=make_token("erin", exp_in=3)).name == "HELLO_ACK"
    frames = [f for f in late.recv_eof(timeout=6) if f.type not in (tf.PING, tf.PONG)]
    closing = [f for f in frames if f.type in (tf.ERROR, tf.CLOSE)]
    assert closing and all(f["code"] == 4001 for f in closing), frames
    late.shutdown()


def test_socketio_notice_and_refresh_with_ack(gateway_factory):
    """Debian's python3-socketio: the notice is an event, the refresh an emit with an ack."""
    gw = start(gateway_factory)
    script = r"""
import json, sys, threading, time, socketio
url, token, fresh, other = sys.argv[1:5]
sio = socketio.Client(reconnection=False)
noticed = threading.Event()
result = {}
@sio.on("token.expiring")
def expiring(data):
    result["notice"] = data
    noticed.set()
sio.connect(url, transports=["websocket"], auth={"token": token}, wait_timeout=5)
noticed.wait(5)
result["refused"] = sio.call("auth.refresh", {"token": other}, timeout=5)
result["ack"] = sio.call("auth.refresh", fresh, timeout=5)
time.sleep(max(0.0, json.loads(sys.argv[5]) - time.time()) + 1.0)
result["connected"] = sio.connected
sio.disconnect()
print(json.dumps(result), flush=True)
"""
    token = make_token("sio-user", exp_in=3)
    fresh = make_token("sio-user", exp_in=60)
    proc = subprocess.run(["/usr/bin/python3", "-c", script, f"http://127.0.0.1:{gw.port}", token,
                           fresh, make_token("someone-else", exp_in=60), str(exp_of(token))],
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {
        "notice": {"event": "token.expiring", "expires_at": exp_of(token)},
        "refused": {"error": "unauthenticated", "reason": "token is for another user"},
        "ack": {"event": "auth.refresh", "status": "ok", "expires_at": exp_of(fresh)},
        "connected": True,
    }, (proc.stdout, proc.stderr)
