# SPDX-License-Identifier: Apache-2.0
"""WebSocket in, HTTP push out: Python websockets (Debian) and Node ws against the real binary."""
import asyncio
import base64
import json
import os
import socket
import struct

import pytest
import websockets

from conftest import make_token, node, render, SECRET
from wsutil import close_code, connect, handshake_status, raw_request, run


def test_connect_with_token_and_receive_push(gateway):
    async def main():
        ws = await connect(gateway.ws_url(token=make_token("alice")))
        gateway.wait_for(lambda: gateway.online("alice") == 1, what="alice online")
        status, body, _ = await asyncio.to_thread(gateway.push, {"users": ["alice", "bob"]}, "hello alice")
        assert status == 200
        assert body["sessions"] == 1 and body["offline"] == ["bob"]
        assert await asyncio.wait_for(ws.recv(), 5) == "hello alice"
        # JSON data is sent as its compact text; data_base64 as a binary message.
        await asyncio.to_thread(gateway.push, {"users": ["alice"]}, {"k": [1, 2]})
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"k": [1, 2]}
        await asyncio.to_thread(gateway.http, "POST", "/v1/push",
                                {"to": {"users": ["alice"]}, "data_base64": base64.b64encode(b"\x00\xff").decode()})
        assert await asyncio.wait_for(ws.recv(), 5) == b"\x00\xff"
        await ws.close()
    run(main())


def test_token_sources_header_and_subprotocol(gateway):
    async def main():
        ws1 = await connect(gateway.ws_url(), extra_headers={"Authorization": "Bearer " + make_token("h")})
        ws2 = await connect(gateway.ws_url(), subprotocols=["bearer." + make_token("s")])
        gateway.wait_for(lambda: gateway.online("h") == 1 and gateway.online("s") == 1, what="both online")
        # The token-carrying subprotocol is never echoed back.
        assert ws2.subprotocol is None
        await ws1.close()
        await ws2.close()
    run(main())


def test_two_sessions_of_one_user_both_receive(gateway):
    async def main():
        a = await connect(gateway.ws_url(token=make_token("carol")))
        b = await connect(gateway.ws_url(token=make_token("carol")))
        gateway.wait_for(lambda: gateway.online("carol") == 2, what="two sessions")
        status, body, _ = await asyncio.to_thread(gateway.push, {"users": ["carol"]}, "both")
        assert body["sessions"] == 2
        assert await asyncio.wait_for(a.recv(), 5) == "both"
        assert await asyncio.wait_for(b.recv(), 5) == "both"
        await a.close()
        await b.close()
    run(main())


def test_per_user_cap_evicts_oldest(gateway_factory):
    gw = gateway_factory(max_conns_per_user=2)

    async def main():
        first = await connect(gw.ws_url(token=make_token("dave")))
        gw.wait_for(lambda: gw.online("dave") == 1, what="first")
        second = await connect(gw.ws_url(token=make_token("dave")))
        gw.wait_for(lambda: gw.online("dave") == 2, what="second")
        third = await connect(gw.ws_url(token=make_token("dave")))
        assert await close_code(first) == 4009
        gw.wait_for(lambda: gw.online("dave") == 2, what="cap applied")
        _, body, _ = await asyncio.to_thread(gw.push, {"users": ["dave"]}, "x")
        assert body["sessions"] == 2
        assert await asyncio.wait_for(second.recv(), 5) == "x"
        assert await asyncio.wait_for(third.recv(), 5) == "x"
        await second.close()
        await third.close()
    run(main())


def test_idle_timeout_closes(gateway_factory):
    gw = gateway_factory(idle_timeout="1s")

    async def main():
        ws = await connect(gw.ws_url(token=make_token("idle")))
        assert await close_code(ws, timeout=5) == 4000
    run(main())


def test_bad_and_expired_tokens_get_401(gateway):
    async def main():
        assert await handshake_status(gateway.ws_url()) == 401
        assert await handshake_status(gateway.ws_url(token=make_token("x", exp_in=-120))) == 401
        assert await handshake_status(gateway.ws_url(token=make_token("x", secret="wrong-secret-0123456789abcdef012"))) == 401
        assert await handshake_status(gateway.ws_url(token=make_token("x", alg="none"))) == 401
        assert await handshake_status(gateway.ws_url(token=make_token("x", nbf_in=600))) == 401
        assert await handshake_status(gateway.ws_url(token=make_token("ok"))) == 101
    run(main())


def test_handshake_validation_statuses(gateway):
    key = base64.b64encode(os.urandom(16)).decode()
    base = (f"GET /ws?token={make_token('h')} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\n")
    resp = raw_request(gateway.port, (base + f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 8\r\n\r\n").encode())
    assert resp.startswith(b"HTTP/1.1 426"), resp
    assert b"Sec-WebSocket-Version: 13" in resp or b"sec-websocket-version: 13" in resp.lower()
    resp = raw_request(gateway.port, (base + "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    assert resp.startswith(b"HTTP/1.1 400"), resp


def _frame(opcode, payload, fin=True, mask=True, rsv=0):
    b0 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        header = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        header = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return header + payload
    key = os.urandom(4)
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def _raw_ws(gateway, user):
    key = base64.b64encode(os.urandom(16)).decode()
    s = socket.create_connection(("127.0.0.1", gateway.port), timeout=5)
    s.sendall((f"GET /ws?token={make_token(user)} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    assert buf.startswith(b"HTTP/1.1 101"), buf
    return s, buf.split(b"\r\n\r\n", 1)[1]


def _read_close(s, pending=b""):
    buf = pending
    while True:
        if len(buf) >= 2:
            op = buf[0] & 0x0F
            n = buf[1] & 0x7F
            if op == 8 and len(buf) >= 2 + n:
                return struct.unpack("!H", buf[2:4])[0] if n >= 2 else None
            if op != 8 and len(buf) >= 2 + n:
                buf = buf[2 + n:]
                continue
        chunk = s.recv(4096)
        if not chunk:
            return "eof"
        buf += chunk


@pytest.mark.parametrize("frames,code", [
    ([_frame(1, b"hi", mask=False)], 1002),                 # unmasked client frame
    ([_frame(3, b"x")], 1002),                              # reserved opcode
    ([_frame(1, b"\xff\xfe")], 1007),                       # invalid UTF-8
    ([_frame(0, b"x")], 1002),                              # continuation with nothing started
    ([_frame(9, b"p" * 126)], 1002),                        # control frame too long
    ([_frame(8, struct.pack("!H", 1005))], 1002),           # close with a reserved code
    ([_frame(2, b"z" * 70000)], 1009),                      # over max_message (64KiB)
])
def test_protocol_violations_close_with_the_right_code(gateway, frames, code):
    s, pending = _raw_ws(gateway, "viol")
    for f in frames:
        s.sendall(f)
    assert _read_close(s, pending) == code
    s.close()


def test_fragmented_message_with_interleaved_ping_is_echoed(gateway_factory):
    gw = gateway_factory(pipeline="echo")
    s, pending = _raw_ws(gw, "frag")
    s.sendall(_frame(1, b"hel", fin=False) + _frame(9, b"pp") + _frame(0, b"lo", fin=False) + _frame(0, b"!"))
    got = pending
    while len(got) < 4 + 8:
        got += s.recv(4096)
    # pong first (answered as soon as the ping arrived), then the echoed whole message
    assert got[0] == 0x8A and got[2:4] == b"pp"
    assert got[4] == 0x81 and got[6:12] == b"hello!"
    s.close()


def test_echo_pipeline_python_client(gateway_factory):
    gw = gateway_factory(pipeline="echo")

    async def main():
        ws = await connect(gw.ws_url(token=make_token("e")))
        await ws.send("text ✓")
        assert await ws.recv() == "text ✓"
        await ws.send(b"\x01\x02")
        assert await ws.recv() == b"\x01\x02"
        big = "y" * 60000
        await ws.send(big)
        assert await ws.recv() == big
        await ws.close()
    run(main())


def test_compressed_and_plain_clients_receive_fanout(gateway):
    async def main():
        plain = await connect(gateway.ws_url(token=make_token("fan1")), compression=None)
        deflate = await connect(gateway.ws_url(token=make_token("fan2")))  # offers permessage-deflate
        assert plain.extensions == []
        assert [e.name for e in deflate.extensions] == ["permessage-deflate"]
        gateway.wait_for(lambda: gateway.online("fan1") == 1 and gateway.online("fan2") == 1, what="online")
        payload = "fan-out " * 200
        status, body, _ = await asyncio.to_thread(gateway.push, "all", payload)
        assert body["sessions"] == 2
        assert await asyncio.wait_for(plain.recv(), 5) == payload
        assert await asyncio.wait_for(deflate.recv(), 5) == payload
        # Several in a row: a context-takeover client keeps decoding shared frames correctly.
        for i in range(5):
            await asyncio.to_thread(gateway.push, "all", payload + str(i))
            assert await asyncio.wait_for(plain.recv(), 5) == payload + str(i)
            assert await asyncio.wait_for(deflate.recv(), 5) == payload + str(i)
        await plain.close()
        await deflate.close()
    run(main())


def test_rooms_join_push_leave(gateway):
    async def main():
        a = await connect(gateway.ws_url(token=make_token("r1")))
        b = await connect(gateway.ws_url(token=make_token("r2")))
        gateway.wait_for(lambda: gateway.online("r1") == 1 and gateway.online("r2") == 1, what="online")
        status, body, _ = await asyncio.to_thread(gateway.http, "POST", "/v1/rooms/lobby/members",
                                                  {"users": ["r1", "r2", "ghost"]})
        assert status == 200 and sorted(body["joined"]) == ["r1", "r2"] and body["offline"] == ["ghost"]
        _, body, _ = await asyncio.to_thread(gateway.push, {"room": "lobby"}, "to room")
        assert body["sessions"] == 2
        assert await asyncio.wait_for(a.recv(), 5) == "to room"
        assert await asyncio.wait_for(b.recv(), 5) == "to room"
        status, body, _ = await asyncio.to_thread(gateway.http, "DELETE", "/v1/rooms/lobby/members", {"users": ["r2"]})
        assert status == 200 and body["left"] == ["r2"]
        _, body, _ = await asyncio.to_thread(gateway.push, {"room": "lobby"}, "only r1")
        assert body["sessions"] == 1
        assert await asyncio.wait_for(a.recv(), 5) == "only r1"
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(b.recv(), 0.3)
        await a.close()
        await b.close()
    run(main())


def test_kick_closes_sessions_with_4010(gateway):
    async def main():
        ws = await connect(gateway.ws_url(token=make_token("kicked")))
        gateway.wait_for(lambda: gateway.online("kicked") == 1, what="online")
        status, body, _ = await asyncio.to_thread(gateway.http, "DELETE", "/v1/users/kicked/sessions?reason=bye")
        assert status == 200 and body["kicked"] == 1
        assert await close_code(ws) == 4010
        gateway.wait_for(lambda: gateway.online("kicked") == 0, what="offline")
    run(main())


def test_node_ws_client_receives_push(gateway):
    # npm `ws`: connect with a token, get pushed to, echo pipeline not needed.
    import threading
    result = {}

    def client():
        result["out"] = node("ws_client.js", gateway.ws_url(token=make_token("nodeuser")), 1)

    t = threading.Thread(target=client)
    t.start()
    gateway.wait_for(lambda: gateway.online("nodeuser") == 1, timeout=15, what="node client online")
    status, body, _ = gateway.push({"users": ["nodeuser"]}, "from backend")
    assert status == 200 and body["sessions"] == 1
    t.join(20)
    assert result["out"]["messages"] == ["from backend"]
    assert result["out"]["extensions"] == "permessage-deflate"


def test_frames_sent_with_the_upgrade_request_are_not_stuck(gateway_factory):
    # A client may send its first frames right behind the handshake, in the same TCP segment.
    gw = gateway_factory(pipeline="echo")
    key = base64.b64encode(os.urandom(16)).decode()
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    s.sendall((f"GET /ws?token={make_token('early')} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
              + _frame(1, b"early bird"))
    buf = b""
    while b"early bird" not in buf:
        chunk = s.recv(4096)
        assert chunk, buf
        buf += chunk
    assert buf.startswith(b"HTTP/1.1 101")
    s.close()
