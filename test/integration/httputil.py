# SPDX-License-Identifier: Apache-2.0
"""Raw HTTP/1.1 over a socket, for tests that need byte-level control (limits, pipelining,
Expect, HEAD, connection handling) where urllib and curl would hide what the server did."""
import socket
import time


class Response:
    def __init__(self, status, reason, headers, body, raw_head):
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-cased names -> last value
        self.body = body
        self.raw_head = raw_head

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def __repr__(self):
        return f"Response({self.status} {self.reason}, {self.headers}, {self.body[:200]!r})"


class RawHttp:
    """One client connection; read_response() parses exactly one response off the stream."""

    def __init__(self, port, timeout=5):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by the server")
        self.buf += chunk

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        assert version.startswith("HTTP/1."), lines[0]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status), reason, headers, head

    def read_response(self, head_request=False):
        status, reason, headers, head = self.read_head()
        body = b""
        if not head_request and status >= 200 and status not in (204, 304):
            n = int(headers.get("content-length", "0"))
            while len(self.buf) < n:
                self._fill()
            body, self.buf = self.buf[:n], self.buf[n:]
        return Response(status, reason, headers, body, head)

    def closed_within(self, seconds):
        """True when the server closes the connection (EOF or reset) within `seconds`. Bytes
        that arrive before the close are appended to the buffer."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.time()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not chunk:
                return True
            self.buf += chunk
        return False

    def read_all_until_close(self, seconds=5):
        self.closed_within(seconds)
        data, self.buf = self.buf, b""
        return data

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def request(method, target, headers=None, body=b"", version="1.1", host="x"):
    """Builds request bytes; Content-Length is added for a non-empty body unless given."""
    h = {"Host": host} if host else {}
    h.update(headers or {})
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in h):
        h["Content-Length"] = str(len(body))
    lines = [f"{method} {target} HTTP/{version}"] + [f"{k}: {v}" for k, v in h.items()]
    payload = body if isinstance(body, bytes) else body.encode()
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
