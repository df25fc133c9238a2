# SPDX-License-Identifier: Apache-2.0
"""Admission control (config `limits`): a reconnect avalanche is cut down at accept, before any
HTTP or auth work, the accepted clients are served, and memory stays bounded; per-IP caps and the
handshake cap; refusals are counted in /metrics by limit."""
import asyncio
import base64
import os
import resource
import time

from conftest import SECRET, make_token

CONFIG = """
workers: 2
admin: {{ bind: 127.0.0.1:0 }}
limits:
  connect_rate: {rate}
  connect_burst: {burst}
  max_connections_per_ip: {per_ip}
  max_handshakes: {handshakes}
listeners:
  - name: edge
    bind: 127.0.0.1:0
    locations:
      - {{ path: /ws, protocol: proto.websocket, pipeline: im }}
pipelines:
  im:
    - auth.jwt: {{ secret: {secret} }}
    - echo
"""


def config(rate=0, burst=0, per_ip=0, handshakes=10000):
    return CONFIG.format(rate=rate, burst=burst, per_ip=per_ip, handshakes=handshakes, secret=SECRET)


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


async def ws_open(port, user, source="127.0.0.1", hold=None):
    """Opens one WebSocket by hand. Returns (reader, writer) after a 101, or None when the
    gateway refused the socket (reset or closed before answering)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /ws?token={make_token(user)} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    except (ConnectionError, asyncio.IncompleteReadError, OSError):
        return None
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def echo(reader, writer, text):
    payload = text.encode()
    mask = os.urandom(4)
    writer.write(bytes([0x81, 0x80 | len(payload)]) + mask +
                 bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    await writer.drain()
    head = await asyncio.wait_for(reader.readexactly(2), 5)
    return (await reader.readexactly(head[1] & 0x7F)).decode()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def metric(gw, name):
    _, body, _ = gw.admin("GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return int(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def test_avalanche_is_cut_at_accept_and_the_admitted_are_served(gateway_factory):
    raise_nofile(8192)
    gw = gateway_factory(config(rate=300, burst=300))
    rss_before = rss_kib(gw.proc.pid)
    attempts = 3000

    async def main():
        start = time.monotonic()
        results = await asyncio.gather(*(ws_open(gw.port, f"u{i}") for i in range(attempts)))
        elapsed = time.monotonic() - start
        admitted = [r for r in results if r is not None]
        refused = attempts - len(admitted)
        # The token bucket: the burst, plus what refilled while the avalanche lasted.
        assert 300 <= len(admitted) <= 300 + 300 * elapsed + 50, (len(admitted), elapsed)
        assert refused >= attempts - (300 + 300 * elapsed + 50), refused
        # The admitted sessions are served.
        for reader, writer in admitted[:50]:
            assert await echo(reader, writer, "still here") == "still here"
        for _, writer in admitted:
            writer.close()
        return refused

    refused = asyncio.run(main())
    assert metric(gw, 'imgate_connections_refused_total{limit="connect_rate"}') == refused
    # Bounded memory: a few MiB for the ~400 admitted sessions and allocator warm-up, nothing
    # that grows with the refused attempts; and every slot came back once the clients left.
    assert rss_kib(gw.proc.pid) - rss_before < 32 * 1024, (rss_before, rss_kib(gw.proc.pid))
    gw.wait_for(lambda: metric(gw, "imgate_connections") == 1, what="connections released")  # /metrics itself
    assert metric(gw, "imgate_handshakes_in_progress") == 0


def test_per_ip_cap(gateway_factory):
    gw = gateway_factory(config(per_ip=3))

    async def main():
        held = [await ws_open(gw.port, f"p{i}") for i in range(3)]
        assert all(held)
        assert await ws_open(gw.port, "p4") is None  # a fourth from 127.0.0.1
        other = await ws_open(gw.port, "q1", source="127.0.0.2")
        assert other is not None  # another address is not affected
        held[0][1].close()
        await asyncio.sleep(0.3)  # the gateway sees the close and frees the slot
        again = await ws_open(gw.port, "p5")
        assert again is not None
        for conn in held[1:] + [other, again]:
            conn[1].close()

    asyncio.run(main())
    assert metric(gw, 'imgate_connections_refused_total{limit="max_connections_per_ip"}') == 1


def test_handshake_cap_counts_only_connections_still_in_their_handshake(gateway_factory):
    gw = gateway_factory(config(handshakes=2))

    async def main():
        # Two sockets that never send their request hold both handshake slots...
        idle = [await asyncio.open_connection("127.0.0.1", gw.port) for _ in range(2)]
        await asyncio.sleep(0.2)
        assert await ws_open(gw.port, "h1") is None
        for _, w in idle:
            w.close()
        await asyncio.sleep(0.3)
        # ...while open sessions do not: many sessions, each past its handshake, fit.
        sessions = [await ws_open(gw.port, f"h{i}") for i in range(10)]
        assert all(sessions)
        for _, w in sessions:
            w.close()

    asyncio.run(main())
    assert metric(gw, 'imgate_connections_refused_total{limit="max_handshakes"}') >= 1


def test_answered_pipelined_api_requests_free_the_handshake_slot(gateway_factory):
    # A keep-alive connection whose pipelined push API requests (run side by side) were answered
    # is past its handshake: with max_handshakes 1 the next client still gets in.
    text = config(handshakes=1).replace(
        "      - { path: /ws, protocol: proto.websocket, pipeline: im }",
        "      - { path: /ws, protocol: proto.websocket, pipeline: im }\n"
        "      - { path: /v1/, protocol: proto.http_push, config: { api_keys: [k] } }")
    assert "proto.http_push" in text
    gw = gateway_factory(text)

    async def main():
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        body = b'{"to":{"users":["nobody"]},"data":"x"}'
        req = (b"POST /v1/push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
               b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
        writer.write(req * 3)
        await writer.drain()
        for _ in range(3):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int([line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")][0].split(b":")[1])
            await reader.readexactly(length)
        # The API connection stays open; a WebSocket client must still be admitted.
        session = await ws_open(gw.port, "after-api")
        assert session is not None, "the answered API connection kept the only handshake slot"
        session[1].close()
        writer.close()

    asyncio.run(main())

