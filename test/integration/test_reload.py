# SPDX-License-Identifier: Apache-2.0
"""Reload keeps every connection and changes behaviour for them; a bad reload keeps serving;
SIGQUIT closes sessions with 1001."""
import asyncio
import signal
import time

from conftest import make_token, render
from wsutil import close_code, connect, run


def test_reload_with_1000_connections_drops_none_and_applies_new_config(gateway_factory):
    gw = gateway_factory(pipeline="im")
    n = 1000

    async def main():
        clients = []
        for i in range(0, n, 100):
            clients += await asyncio.gather(*[connect(gw.ws_url(token=make_token(f"u{j % 500}")))
                                              for j in range(i, i + 100)])
        gw.wait_for(lambda: gw.admin("GET", "/status")[1]["sessions"] == n, timeout=20, what="1000 sessions")
        # Echo before reload: the "im" pipeline has no terminal stage, so nothing comes back.
        await clients[0].send("before")
        try:
            await asyncio.wait_for(clients[0].recv(), 0.3)
            assert False, "no echo expected before reload"
        except asyncio.TimeoutError:
            pass
        # New config: the same location now runs the echo pipeline, and the per-user cap is 1.
        await asyncio.to_thread(gw.reload, render(pipeline="echo", max_conns_per_user=1))
        assert "reload done" in gw.read_log()
        assert gw.admin("GET", "/status")[1]["sessions"] == n
        # Every existing connection now echoes: its stages moved to the new generation.
        for ws in clients[:: 50]:
            await ws.send("after")
            assert await asyncio.wait_for(ws.recv(), 5) == "after"
        assert all(ws.open for ws in clients)
        # And the new cap applies to them: a new session of u1 evicts its older ones (u1 had 2).
        newer = await connect(gw.ws_url(token=make_token("u1")))
        assert await close_code(clients[1]) == 4009
        assert await close_code(clients[501]) == 4009
        await newer.close()
        await asyncio.gather(*[ws.close() for ws in clients if ws.open])
    run(main(), timeout=120)


def test_invalid_reload_keeps_serving(gateway_factory):
    gw = gateway_factory(pipeline="echo")

    async def main():
        ws = await connect(gw.ws_url(token=make_token("stay")))
        await asyncio.to_thread(gw.reload, "listeners: [ {name: edge, bind: 127.0.0.1:0, locations: [] } ]\nbogus: 1\n")
        log = gw.read_log()
        assert "reload failed" in log and "bogus" in log
        status = gw.admin("GET", "/status")[1]
        assert status["last_reload"]["ok"] is False and status["generation"] == 1
        await ws.send("still here")
        assert await asyncio.wait_for(ws.recv(), 5) == "still here"
        ws2 = await connect(gw.ws_url(token=make_token("new")))
        await ws2.send("new ok")
        assert await asyncio.wait_for(ws2.recv(), 5) == "new ok"
        await ws.close()
        await ws2.close()
    run(main())


def test_reload_via_admin_endpoint_and_imgate_s(gateway_factory):
    import subprocess
    from conftest import BIN
    gw = gateway_factory()
    status, body, _ = gw.admin("POST", "/reload")
    assert status == 200 and body["generation"] == 2
    # A non-reloadable key (workers) is refused with the reason, and the old config stays.
    # imgate -s reload finds the admin listener in the config: the test config used port 0, so
    # write the bound port in (the admin socket is kept: same listener name).
    fixed = render().replace("bind: 127.0.0.1:0\nlisteners", f"bind: 127.0.0.1:{gw.ports['admin']}\nlisteners")
    assert fixed != render()
    gw.write_config(fixed.replace("workers: 2", "workers: 1"))
    status, body, _ = gw.admin("POST", "/reload")
    assert status == 400 and "workers" in body["reason"] and "restart" in body["reason"]
    out = subprocess.run([BIN, "-s", "reload", "-c", gw.config], capture_output=True, text=True, timeout=10)
    assert out.returncode == 1 and "restart" in out.stdout, out.stdout + out.stderr
    gw.write_config(fixed)
    out = subprocess.run([BIN, "-s", "reload", "-c", gw.config], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stdout + out.stderr
    assert '"status":"reloaded"' in out.stdout


def test_sigquit_sends_1001_and_exits(gateway_factory):
    gw = gateway_factory()

    async def main():
        ws = await connect(gw.ws_url(token=make_token("q")))
        gw.wait_for(lambda: gw.online("q") == 1, what="online")
        gw.signal(signal.SIGQUIT)
        assert await close_code(ws) == 1001
    run(main())
    gw.proc.wait(timeout=10)
    assert gw.proc.returncode == 0
    assert "imgate stopped" in gw.read_log()


def test_reload_diffs_listeners(gateway_factory):
    """Same address keeps its socket; a new listener starts accepting; a removed one stops
    accepting while its open sessions stay."""
    import socket
    base = render(pipeline="echo")
    extra = base.replace("pipelines:", """  - name: extra
    bind: 127.0.0.1:0
    locations:
      - {path: /ws, protocol: proto.websocket, pipeline: echo}
pipelines:""", 1)
    gw = gateway_factory(extra)
    extra_port = gw.ports["extra"]

    async def main():
        old = await connect(f"ws://127.0.0.1:{extra_port}/ws?token={make_token('x1')}")
        edge = await connect(gw.ws_url(token=make_token("x2")))
        # Remove "extra", keep "edge": the edge socket stays, the extra one stops accepting.
        await asyncio.to_thread(gw.reload, base)
        assert "reload done" in gw.read_log()
        await old.send("still on removed listener")
        assert await asyncio.wait_for(old.recv(), 5) == "still on removed listener"
        await edge.send("edge")
        assert await asyncio.wait_for(edge.recv(), 5) == "edge"
        refused = False
        try:
            s = socket.create_connection(("127.0.0.1", extra_port), timeout=2)
            s.close()
        except OSError:
            refused = True
        assert refused, "removed listener still accepts"
        again = await connect(gw.ws_url(token=make_token("x3")))
        await again.send("new on kept socket")
        assert await asyncio.wait_for(again.recv(), 5) == "new on kept socket"
        for ws in (old, edge, again):
            await ws.close()
    run(main())


def test_pid_file_and_imgate_s_stop(gateway_factory, tmp_path):
    import os
    import subprocess
    from conftest import BIN
    pid_file = str(tmp_path / "imgate.pid")
    gw = gateway_factory(render().replace("workers: 2", f"workers: 2\npid_file: {pid_file}"))
    with open(pid_file) as f:
        assert int(f.read()) == gw.proc.pid
    out = subprocess.run([BIN, "-s", "stop", "-c", gw.config], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    gw.proc.wait(timeout=10)
    assert gw.proc.returncode == 0
    assert not os.path.exists(pid_file)
