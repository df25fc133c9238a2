# SPDX-License-Identifier: Apache-2.0
"""Session limits and timers, presence and targeting, with raw-socket and Python websockets
clients: server pings, idle timeout with client pings, slow consumers (max_outbound), the
per-user cap across interleaved users, GET /v1/users fields, push by session id, app isolation."""
import asyncio
import socket
import time

import pytest

from conftest import API_KEY, SECRET, make_token
from wsutil import RawWs, close_code, connect, run

SESSIONS_CONFIG = """
workers: 2
sessions:
  idle_timeout: {idle_timeout}
  ping_interval: {ping_interval}
  max_conns_per_user: {max_conns_per_user}
  max_outbound: {max_outbound}
  close_timeout: {close_timeout}
  slow_consumer: {slow_consumer}
  outbound_high_water: {high_water}
admin:
  bind: 127.0.0.1:0
listeners:
  - name: edge
    bind: 127.0.0.1:0
    locations:
      - path: /ws
        protocol: proto.websocket
        pipeline: im
        config:
          permessage_deflate: {deflate}
      - path: /v1/
        protocol: proto.http_push
        config:
          api_keys: [{api_key}]
pipelines:
  im:
    - auth.jwt:
        secret: {secret}
"""


def sessions_config(**overrides):
    values = dict(idle_timeout="120s", ping_interval=0, max_conns_per_user=8,
                  max_outbound="4MiB", close_timeout="2s", deflate="true", api_key=API_KEY,
                  slow_consumer="close", high_water="1MiB",
                  secret=SECRET)
    values.update(overrides)
    return SESSIONS_CONFIG.format(**values)


def raw_client(gw, user, **kw):
    return RawWs(gw.port, f"/ws?token={make_token(user, **kw)}")


def sessions_of(gw, user, app=None):
    status, body, _ = gw.http("GET", f"/v1/users/{user}" + (f"?app={app}" if app else ""))
    assert status == 200, body
    return body["sessions"]


def test_sessions_server_pings_quiet_clients(gateway_factory):
    gw = gateway_factory(sessions_config(ping_interval="1s", idle_timeout="3s"))
    c = raw_client(gw, "pinged")
    try:
        start = time.time()
        op, payload = c.read_frame(timeout=4)
        assert op == 0x9, (op, payload)
        assert 0.5 <= time.time() - start < 4
        # Pings keep coming while the client stays quiet...
        op, _ = c.read_frame(timeout=3)
        assert op == 0x9
        # ...but server pings are not client activity: unanswered, the session still idles out.
        assert c.close_code(timeout=5) == 4000
    finally:
        c.close()


def test_sessions_client_answering_pings_survives_idle_timeout(gateway_factory):
    gw = gateway_factory(sessions_config(ping_interval="1s", idle_timeout="2s"))

    def raw_ponger():
        # A raw client that only answers the server's pings with pongs.
        c = raw_client(gw, "ponger")
        pings = 0
        try:
            deadline = time.time() + 4.5
            while time.time() < deadline:
                try:
                    op, payload = c.read_frame(timeout=deadline - time.time())
                except socket.timeout:
                    break
                assert op == 0x9, op
                pings += 1
                c.send(0xA, payload)
            return pings, len(sessions_of(gw, "ponger"))
        finally:
            c.close()

    async def main():
        # Python websockets answers pings by itself (its own keepalive pings are off here).
        ws = await connect(gw.ws_url(token=make_token("auto")))
        pings, online = await asyncio.gather(asyncio.to_thread(raw_ponger), asyncio.sleep(4.5))
        pings, online = pings
        assert pings >= 2 and online == 1, (pings, online)
        assert ws.open
        _, body, _ = await asyncio.to_thread(gw.push, {"users": ["auto"]}, "still here")
        assert body["sessions"] == 1
        assert await asyncio.wait_for(ws.recv(), 5) == "still here"
        await ws.close()
    run(main())


def test_sessions_client_pings_keep_session_past_idle_timeout(gateway_factory):
    gw = gateway_factory(sessions_config(idle_timeout="2s"))
    active = raw_client(gw, "active")
    silent = raw_client(gw, "silent")
    try:
        deadline = time.time() + 3.5
        while time.time() < deadline:
            active.send(0x9, b"hb")
            op, payload = active.read_frame(timeout=2)
            assert (op, payload) == (0xA, b"hb")
            time.sleep(0.5)
        assert silent.close_code(timeout=3) == 4000
        assert len(sessions_of(gw, "active")) == 1
        assert len(sessions_of(gw, "silent")) == 0
    finally:
        active.close()
        silent.close()


def test_sessions_slow_consumer_closed_over_max_outbound(gateway_factory):
    gw = gateway_factory(sessions_config(max_outbound="64KiB", close_timeout="10s",
                                         deflate="false"))
    slow = RawWs(gw.port, f"/ws?token={make_token('slow')}", rcvbuf=4096)
    healthy = raw_client(gw, "healthy")
    try:
        gw.wait_for(lambda: len(sessions_of(gw, "slow")) == 1, what="slow online")
        chunk = "S" * 32768
        pushes = 0
        dropped = 0
        while pushes < 400 and sessions_of(gw, "slow"):
            status, body, _ = gw.push({"users": ["slow"]}, chunk)
            assert status == 200, body
            dropped += body["dropped"]
            pushes += 1
        assert not sessions_of(gw, "slow"), f"slow consumer still online after {pushes} pushes"
        # Bounded: it went within a few MiB of kernel buffers plus max_outbound.
        assert pushes * len(chunk) < 64 * 1024 * 1024
        # What it does read ends with the 4008 close frame (close_timeout leaves time to read).
        assert slow.close_code(timeout=10) == 4008
        # The server is fine and other sessions are served.
        assert gw.admin("GET", "/healthz")[0] == 200
        _, body, _ = gw.push({"users": ["healthy"]}, "ok")
        assert body["sessions"] == 1
        assert healthy.read_frame(timeout=5) == (0x1, b"ok")
        status, metrics, _ = gw.admin("GET", "/metrics")
        assert status == 200
        text = metrics.decode()
        assert 'imgate_session_closes_total{reason="slow_consumer"} 1' in text, text
        assert "imgate_errors_total{kind=\"outbound_overflow\"} 1" in text, text
    finally:
        slow.close()
        healthy.close()


def test_sessions_slow_consumer_drop_new_keeps_the_session(gateway_factory):
    """drop_new: a reader that never reads stays connected; pushes beyond outbound_high_water are
    dropped (and reported), so its memory stays bounded; other sessions are served."""
    gw = gateway_factory(sessions_config(max_outbound="1MiB", high_water="64KiB",
                                         slow_consumer="drop_new", deflate="false"))
    slow = RawWs(gw.port, f"/ws?token={make_token('stuck')}", rcvbuf=4096)
    healthy = raw_client(gw, "fine")
    try:
        gw.wait_for(lambda: len(sessions_of(gw, "stuck")) == 1, what="stuck online")
        chunk = "D" * 32768
        dropped = 0
        for _ in range(300):  # ~9.8 MiB offered, far beyond kernel buffers and the caps
            status, body, _ = gw.push({"users": ["stuck"]}, chunk)
            assert status == 200, body
            dropped += body["dropped"]
        assert len(sessions_of(gw, "stuck")) == 1, "drop_new must not close the session"
        assert dropped > 200, dropped
        _, metrics, _ = gw.admin("GET", "/metrics")
        text = metrics.decode()
        assert f"imgate_outbound_dropped_total {dropped}" in text, text
        assert 'imgate_session_closes_total{reason="slow_consumer"} 0' in text, text
        _, body, _ = gw.push({"users": ["fine"]}, "ok")
        assert body["sessions"] == 1
        assert healthy.read_frame(timeout=5) == (0x1, b"ok")
    finally:
        slow.close()
        healthy.close()


def test_sessions_slow_consumer_drop_oldest_keeps_the_newest(gateway_factory):
    """drop_oldest: pushes to a reader that stopped reading wait in a bounded backlog whose
    oldest entries make room for new ones; when the reader resumes it gets what was already
    buffered, then the newest messages, in order, with the dropped ones missing in between."""
    gw = gateway_factory(sessions_config(max_outbound="256KiB", high_water="64KiB",
                                         slow_consumer="drop_oldest", deflate="false"))
    slow = RawWs(gw.port, f"/ws?token={make_token('lagging')}", rcvbuf=4096)
    try:
        gw.wait_for(lambda: len(sessions_of(gw, "lagging")) == 1, what="lagging online")
        total = 800
        dropped = 0
        for i in range(total):  # 800 x 16 KiB: far beyond the kernel buffers and the budget
            status, body, _ = gw.push({"users": ["lagging"]}, f"{i:05d}" + "x" * 16379)
            assert status == 200, body
            dropped += body["dropped"]
        assert len(sessions_of(gw, "lagging")) == 1, "drop_oldest must not close the session"
        assert dropped > 100, dropped
        got = []
        while len(got) < total - dropped:
            op, payload = slow.read_frame(timeout=10)
            assert op == 0x1
            got.append(int(payload[:5]))
        assert got == sorted(got) and len(set(got)) == len(got), got
        # The newest made it, contiguously: the backlog (192 KiB, 11 of these messages) always
        # keeps the latest ones and gives up the oldest.
        assert got[-11:] == list(range(total - 11, total)), got[-20:]
        assert len(got) < total  # and something in between was dropped
        _, metrics, _ = gw.admin("GET", "/metrics")
        assert f"imgate_outbound_dropped_total {dropped}" in metrics.decode()
    finally:
        slow.close()


def test_sessions_per_user_cap_with_interleaved_users(gateway_factory):
    gw = gateway_factory(sessions_config(max_conns_per_user=2))

    async def main():
        order = ["a", "b", "a", "c", "b", "a", "b", "c"]
        conns = []
        for user in order:
            ws = await connect(gw.ws_url(token=make_token("cap-" + user)))
            conns.append((user, ws))
            # Connect in a known order: wait until the hub has it.
            count = order[:len(conns)].count(user)
            gw.wait_for(lambda u=user, n=count: len(sessions_of(gw, "cap-" + u)) == min(n, 2)
                        and len(sessions_of(gw, "cap-" + u)) >= 1, what="session of " + user)
        # a: 3 sessions -> the first goes; b: 3 -> the first goes; c: 2 -> none goes.
        assert await close_code(conns[0][1]) == 4009
        assert await close_code(conns[1][1]) == 4009
        for user in "abc":
            gw.wait_for(lambda u=user: len(sessions_of(gw, "cap-" + u)) == 2, what="cap " + user)
        survivors = [i for i in range(len(conns)) if i not in (0, 1)]
        for user in "abc":
            _, body, _ = await asyncio.to_thread(gw.push, {"users": ["cap-" + user]}, "to " + user)
            assert body["sessions"] == 2
        for i in survivors:
            user, ws = conns[i]
            assert await asyncio.wait_for(ws.recv(), 5) == "to " + user
            assert ws.open
        # A fourth session of a evicts the oldest remaining one (index 2), nobody else.
        newest = await connect(gw.ws_url(token=make_token("cap-a")))
        assert await close_code(conns[2][1]) == 4009
        for i in survivors[1:]:
            assert conns[i][1].open
        for user in "bc":
            assert len(sessions_of(gw, "cap-" + user)) == 2
        # The cap is per app: the same user id in another app evicts nobody here.
        other = [await connect(gw.ws_url(token=make_token("cap-b", app="other")))
                 for _ in range(2)]
        gw.wait_for(lambda: len(sessions_of(gw, "cap-b", app="other")) == 2, what="other app")
        assert len(sessions_of(gw, "cap-b")) == 2
        for i in survivors[1:]:
            assert conns[i][1].open
        await asyncio.gather(*[ws.close() for ws in other])
        await newest.close()
        await asyncio.gather(*[ws.close() for _, ws in conns])
    run(main())


def test_sessions_presence_fields(gateway_factory):
    gw = gateway_factory(sessions_config())

    async def main():
        before = int(time.time() * 1000)
        ws = await connect(gw.ws_url(token=make_token("pres", extra={"device": "ios"})))
        ws2 = await connect(gw.ws_url(token=make_token("pres"), query="device=web"))
        gw.wait_for(lambda: len(sessions_of(gw, "pres")) == 2, what="two sessions")
        after = int(time.time() * 1000)
        status, body, _ = await asyncio.to_thread(gw.http, "GET", "/v1/users/pres")
        assert status == 200 and body["user"] == "pres" and body["online"] is True, body
        by_port = {int(s["peer"].rsplit(":", 1)[1]): s for s in body["sessions"]}
        s1 = by_port[ws.local_address[1]]
        s2 = by_port[ws2.local_address[1]]
        for s in (s1, s2):
            assert isinstance(s["id"], str) and s["id"].isdigit()
            assert s["protocol"] == "proto.websocket"
            assert s["listener"] == "edge"
            assert s["peer"].startswith("127.0.0.1:")
            assert before - 1000 <= s["connected_at"] <= after + 1000, (before, s, after)
        assert s1["device"] == "ios"
        assert s2["device"] == "web"
        assert s1["id"] != s2["id"]
        await ws.close()
        gw.wait_for(lambda: len(sessions_of(gw, "pres")) == 1, what="one closed")
        assert sessions_of(gw, "pres")[0]["id"] == s2["id"]
        await ws2.close()
        gw.wait_for(lambda: gw.http("GET", "/v1/users/pres")[1]["online"] is False, what="offline")
    run(main())


def test_sessions_push_by_session_id(gateway_factory):
    gw = gateway_factory(sessions_config())

    async def main():
        a = await connect(gw.ws_url(token=make_token("sid")))
        b = await connect(gw.ws_url(token=make_token("sid")))
        gw.wait_for(lambda: len(sessions_of(gw, "sid")) == 2, what="two sessions")
        ids = {s["peer"]: s["id"] for s in sessions_of(gw, "sid")}
        id_a = ids[f"127.0.0.1:{a.local_address[1]}"]
        id_b = ids[f"127.0.0.1:{b.local_address[1]}"]
        _, body, _ = await asyncio.to_thread(gw.push, {"sessions": [id_a]}, "only a")
        assert body["sessions"] == 1 and body["offline"] == [], body
        assert await asyncio.wait_for(a.recv(), 5) == "only a"
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(b.recv(), 0.3)
        # JSON integers are accepted; an unknown id is reported offline.
        unknown = str(int(id_b) + 1000003)
        _, body, _ = await asyncio.to_thread(gw.push, {"sessions": [int(id_b), unknown]}, "b too")
        assert body["sessions"] == 1 and body["offline"] == [unknown], body
        assert await asyncio.wait_for(b.recv(), 5) == "b too"
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(a.recv(), 0.3)
        # Both at once.
        _, body, _ = await asyncio.to_thread(gw.push, {"sessions": [id_a, id_b]}, "both")
        assert body["sessions"] == 2
        assert await asyncio.wait_for(a.recv(), 5) == "both"
        assert await asyncio.wait_for(b.recv(), 5) == "both"
        await a.close()
        await b.close()
    run(main())


def test_sessions_push_all_is_isolated_by_app(gateway_factory):
    gw = gateway_factory(sessions_config())

    async def main():
        in_a = await connect(gw.ws_url(token=make_token("same", app="A")))
        in_b = await connect(gw.ws_url(token=make_token("same", app="B")))
        in_default = await connect(gw.ws_url(token=make_token("plain")))
        gw.wait_for(lambda: len(sessions_of(gw, "same", app="A")) == 1
                    and len(sessions_of(gw, "same", app="B")) == 1
                    and len(sessions_of(gw, "plain")) == 1, what="three apps online")
        # One user id in two apps is two different users.
        assert len(sessions_of(gw, "same")) == 0

        async def silent(*conns):
            for ws in conns:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(ws.recv(), 0.3)

        _, body, _ = await asyncio.to_thread(gw.push, "all", "for B", app="B")
        assert body["sessions"] == 1, body
        assert await asyncio.wait_for(in_b.recv(), 5) == "for B"
        await silent(in_a, in_default)
        _, body, _ = await asyncio.to_thread(gw.http, "POST", "/v1/push?app=A",
                                             {"to": "all", "data": "for A"})
        assert body["sessions"] == 1, body
        assert await asyncio.wait_for(in_a.recv(), 5) == "for A"
        await silent(in_b, in_default)
        _, body, _ = await asyncio.to_thread(gw.push, "all", "for default")
        assert body["sessions"] == 1, body
        assert await asyncio.wait_for(in_default.recv(), 5) == "for default"
        await silent(in_a, in_b)
        # Users are looked up inside the app too.
        _, body, _ = await asyncio.to_thread(gw.push, {"users": ["same"]}, "users in B", app="B")
        assert body["sessions"] == 1 and body["offline"] == []
        assert await asyncio.wait_for(in_b.recv(), 5) == "users in B"
        await silent(in_a)
        _, body, _ = await asyncio.to_thread(gw.push, "all", "nobody", app="C")
        assert body["sessions"] == 0
        # Stats are per app.
        _, stats, _ = await asyncio.to_thread(gw.http, "GET", "/v1/stats?app=A")
        assert stats["sessions"] == 1 and stats["users"] == 1
        await asyncio.gather(in_a.close(), in_b.close(), in_default.close())
    run(main())


def test_sessions_push_by_session_id_does_not_cross_apps(gateway_factory):
    gw = gateway_factory(sessions_config())

    async def main():
        ws = await connect(gw.ws_url(token=make_token("x", app="A")), close_timeout=1)
        try:
            gw.wait_for(lambda: len(sessions_of(gw, "x", app="A")) == 1, what="online")
            sid = sessions_of(gw, "x", app="A")[0]["id"]
            # Sessions live inside an app (docs/http-api.md, "Tenant"): app B cannot reach it.
            _, body, _ = await asyncio.to_thread(gw.push, {"sessions": [sid]}, "wrong app",
                                                 app="B")
            assert body["sessions"] == 0 and body["offline"] == [sid], body
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.3)
            _, body, _ = await asyncio.to_thread(gw.push, {"sessions": [sid]}, "right app",
                                                 app="A")
            assert body["sessions"] == 1
            assert await asyncio.wait_for(ws.recv(), 5) == "right app"
        finally:
            await ws.close()
    run(main())
