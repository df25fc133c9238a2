# SPDX-License-Identifier: Apache-2.0
"""flow in a real pipeline (auth.jwt + flow + echo): a burst gets exactly `burst` echoes and then
rate-limited error acks, a token comes back after 1/rate, users share a bucket across sessions,
`action: close` closes with 4029, and bucket state survives a reload."""
import asyncio
import json
import re

from conftest import SECRET, make_token
from wsutil import close_code, connect, run

CONFIG = """
workers: 2
admin: {{ bind: 127.0.0.1:0 }}
listeners:
  - name: edge
    bind: 127.0.0.1:0
    locations:
      - {{ path: /ws, protocol: proto.websocket, pipeline: chat }}
pipelines:
  chat:
    - auth.jwt: {{ secret: {secret} }}
    - flow: {flow}
    - echo
"""


def config(flow):
    return CONFIG.format(secret=SECRET, flow=flow)


async def recv(ws, n):
    return [await asyncio.wait_for(ws.recv(), 5) for _ in range(n)]


def is_limited(frame, scope):
    """True for the WebSocket error form of a rate-limited ack from `scope`."""
    try:
        err = json.loads(frame)
    except ValueError:
        return False
    return (isinstance(err, dict) and err.get("type") == "error"
            and err.get("error") == "resource_exhausted"
            and err.get("reason", "").startswith(f"rate limited: {scope} "))


def limited_total(gw, scope):
    text = gw.admin("GET", "/metrics")[1].decode()
    line = rf'^imgate_flow_limited_{scope}_total{{instance="chat\[1\]:flow"}} (\d+)$'
    m = re.search(line, text, re.M)
    return int(m.group(1)) if m else 0


def test_burst_then_error_acks_then_one_more_after_one_over_rate(gateway_factory):
    # 1/s keeps the test fast; the eight messages of the burst take milliseconds, far from the
    # second a refill would need.
    gw = gateway_factory(config("{session: {rate: 1/s, burst: 5}}"))

    async def main():
        ws = await connect(gw.ws_url(token=make_token("alice")))
        for i in range(8):
            await ws.send(f"m{i}")
        frames = await recv(ws, 8)
        assert frames[:5] == [f"m{i}" for i in range(5)]
        assert all(is_limited(f, "session") for f in frames[5:]), frames[5:]
        assert "retry after" in json.loads(frames[5])["reason"]
        await asyncio.sleep(1.1)
        await ws.send("late")
        assert await asyncio.wait_for(ws.recv(), 5) == "late"
        await ws.send("again")
        assert is_limited(await asyncio.wait_for(ws.recv(), 5), "session")
        await ws.close()
    run(main())
    assert limited_total(gw, "session") == 4


def test_sessions_of_one_user_share_the_user_bucket(gateway_factory):
    gw = gateway_factory(config("{user: {rate: 1/m, burst: 4}}"))

    async def main():
        a = await connect(gw.ws_url(token=make_token("carol")))
        b = await connect(gw.ws_url(token=make_token("carol")))
        for ws, text in ((a, "a1"), (b, "b1"), (a, "a2"), (b, "b2")):
            await ws.send(text)
            assert await asyncio.wait_for(ws.recv(), 5) == text
        await a.send("a3")
        assert is_limited(await asyncio.wait_for(a.recv(), 5), "user")
        await b.send("b3")
        assert is_limited(await asyncio.wait_for(b.recv(), 5), "user")
        # Another user has a bucket of their own.
        d = await connect(gw.ws_url(token=make_token("dave")))
        await d.send("d1")
        assert await asyncio.wait_for(d.recv(), 5) == "d1"
        for ws in (a, b, d):
            await ws.close()
    run(main())
    assert limited_total(gw, "user") == 2


def test_close_action_closes_with_4029(gateway_factory):
    gw = gateway_factory(config("{action: close, session: {rate: 1/m, burst: 2}}"))

    async def main():
        ws = await connect(gw.ws_url(token=make_token("erin")))
        for text in ("x1", "x2"):
            await ws.send(text)
            assert await asyncio.wait_for(ws.recv(), 5) == text
        await ws.send("x3")
        assert await close_code(ws) == 4029
    run(main())


def test_reload_with_the_same_config_keeps_bucket_state(gateway_factory):
    flow = "{session: {rate: 1/m, burst: 3}, user: {rate: 1/m, burst: 4}}"
    gw = gateway_factory(config(flow))

    async def main():
        ws = await connect(gw.ws_url(token=make_token("frank")))
        for i in range(3):
            await ws.send(f"s{i}")
            assert await asyncio.wait_for(ws.recv(), 5) == f"s{i}"
        await ws.send("over")
        assert is_limited(await asyncio.wait_for(ws.recv(), 5), "session")
        await asyncio.to_thread(gw.reload, config(flow))
        assert "reload done" in gw.read_log()
        # The session moves to the new generation at this message, and is still limited.
        await ws.send("after reload")
        assert is_limited(await asyncio.wait_for(ws.recv(), 5), "session")
        # The user bucket (3 of 4 spent) carried over too: a new session gets one message.
        other = await connect(gw.ws_url(token=make_token("frank")))
        await other.send("o1")
        assert await asyncio.wait_for(other.recv(), 5) == "o1"
        await other.send("o2")
        assert is_limited(await asyncio.wait_for(other.recv(), 5), "user")
        # A reload that lowers the burst clamps; one that raises it refills nobody.
        await asyncio.to_thread(gw.reload, config(
            "{session: {rate: 1/m, burst: 10}, user: {rate: 1/m, burst: 10}}"))
        await ws.send("bigger burst")
        assert is_limited(await asyncio.wait_for(ws.recv(), 5), "session")
        await ws.close()
        await other.close()
    run(main())
    assert gw.read_log().count("reload done") == 2
