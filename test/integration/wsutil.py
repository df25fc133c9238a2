# SPDX-License-Identifier: Apache-2.0
"""Small helpers around Debian's python3-websockets (10.x asyncio API)."""
import asyncio
import socket

import websockets


def run(coro, timeout=20):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def connect(url, **kw):
    kw.setdefault("open_timeout", 5)
    kw.setdefault("ping_interval", None)
    kw.setdefault("max_size", 2 ** 24)
    return await websockets.connect(url, **kw)


async def close_code(ws, timeout=5):
    """Waits for the server to close `ws`; returns the close code it sent (None if none)."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.exceptions.ConnectionClosed as e:
        return e.rcvd.code if e.rcvd is not None else None


async def handshake_status(url, **kw):
    """Returns the HTTP status of a refused handshake (or 101 when accepted)."""
    try:
        ws = await connect(url, **kw)
    except websockets.exceptions.InvalidStatusCode as e:
        return e.status_code
    await ws.close()
    return 101


def raw_request(port, data: bytes, read_until_close=True, timeout=5):
    """Sends raw bytes and returns everything the server answered until it closed."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    chunks = []
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
            if not read_until_close:
                break
    except socket.timeout:
        pass
    s.close()
    return b"".join(chunks)
