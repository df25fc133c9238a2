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


def ws_frame(opcode, payload, fin=True, mask=True):
    """One client frame (masked unless told otherwise)."""
    import os
    import struct
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        header = struct.pack("!BB", b0, m | n)
    elif n < 65536:
        header = struct.pack("!BBH", b0, m | 126, n)
    else:
        header = struct.pack("!BBQ", b0, m | 127, n)
    if not mask:
        return header + payload
    key = os.urandom(4)
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawWs:
    """A WebSocket client on a plain socket that does nothing by itself (no pongs, no pings,
    no reads unless asked): for server pings, idle timers and slow consumers."""

    def __init__(self, port, target, rcvbuf=None, timeout=5):
        import base64
        import os
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Before connect, so the advertised window stays small.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError("closed during handshake: %r" % buf)
            buf += chunk
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise AssertionError("handshake refused: %r" % head)
        self.local_port = self.sock.getsockname()[1]

    def send(self, opcode, payload=b""):
        self.sock.sendall(ws_frame(opcode, payload))

    def _need(self, n, deadline):
        import time
        while len(self.buf) < n:
            left = deadline - time.time()
            if left <= 0:
                raise socket.timeout()
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError()
            self.buf += chunk

    def read_frame(self, timeout=5):
        """Returns (opcode, payload); raises socket.timeout, or EOFError on close."""
        import struct
        import time
        deadline = time.time() + timeout
        self._need(2, deadline)
        n = self.buf[1] & 0x7F
        off = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        self._need(off + n, deadline)
        opcode = self.buf[0] & 0x0F
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return opcode, payload

    def close_code(self, timeout=5):
        """Reads frames until a close frame; returns its code (None without one, "eof")."""
        import struct
        while True:
            try:
                op, payload = self.read_frame(timeout)
            except (EOFError, ConnectionResetError):
                return "eof"
            if op == 8:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None

    def close(self):
        self.sock.close()
