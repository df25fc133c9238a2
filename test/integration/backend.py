# SPDX-License-Identifier: Apache-2.0
"""A small test backend (Python standard library): records what imgate POSTs and answers as told.

`Backend` runs it as a separate process (`/usr/bin/python3 backend.py NAME`), so a test can kill
it like a real backend dies; the test drives it through `/_control/` endpoints. The tests use
only the `Backend` class.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _BackendServer:
    def __init__(self, name):
        self.name = name
        self.requests = []          # (path, headers dict, parsed JSON body)
        self.mode = "ok"            # ok | fail | hang | reject | instruct | answer | raw
        self.answer = {}            # mode "answer": this JSON value is the 200 answer
        self.raw_hex = ""           # mode "raw": these bytes (hex) are the 200 answer
        self.healthy = True
        self.lock = threading.Lock()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes

            def log_message(self, *args):
                pass

            def _answer(self, status, body=b"", ctype="application/json"):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/_control/state":
                    with backend.lock:
                        state = {"requests": backend.requests}
                    self._answer(200, json.dumps(state).encode())
                elif self.path == "/healthz":
                    self._answer(200 if backend.healthy else 500, b"{}")
                else:
                    self._answer(404, b"{}")

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                if self.path == "/_control/set":
                    for key, value in json.loads(raw).items():
                        setattr(backend, key, value)
                    self._answer(200, b"{}")
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with backend.lock:
                    backend.requests.append([self.path, dict(self.headers), body])
                mode = backend.mode
                if mode == "hang":
                    time.sleep(3)
                    mode = "ok"
                if mode == "fail":
                    self._answer(500, b'{"error":"boom"}')
                elif mode == "reject":
                    self._answer(403, b'{"error":"not allowed"}')
                elif mode == "answer":
                    self._answer(200, json.dumps(backend.answer).encode())
                elif mode == "raw":
                    # Any bytes, e.g. not UTF-8 (the control call cannot carry them as JSON).
                    self._answer(200, bytes.fromhex(backend.raw_hex), "application/octet-stream")
                elif mode == "instruct":
                    # Answer the sender and push to another user in one go.
                    reply = {"imgate": {"reply": "stored", "push": [
                        {"to": {"users": ["peer"]}, "data": {"from": body.get("user"), "text": body.get("body")}}]}}
                    self._answer(200, json.dumps(reply).encode())
                else:
                    reply = {"backend": backend.name, "got": body.get("body") if body else None}
                    self._answer(200, json.dumps(reply).encode())

        class Server(ThreadingHTTPServer):
            # Remembers open connections so stop() can cut them like a killed process would.
            def process_request(self, request, client_address):
                with backend.lock:
                    backend.sockets.append(request)
                super().process_request(request, client_address)

        self.sockets = []
        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def count(self):
        with self.lock:
            return len(self.requests)

    def stop(self):
        """Stops like a killed process: no more accepts, and every open connection is cut."""
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            for s in self.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.sockets.clear()


class Backend:
    """A backend in its own process (killed for real by stop())."""

    def __init__(self, name):
        self.name = name
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), name],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.isdigit():
            self.proc.kill()
            raise RuntimeError(f"test backend {name} did not start: {line!r}")
        self.port = int(line)

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def _call(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, json.dumps(body) if body is not None else None,
                         {"Content-Type": "application/json", "Connection": "close"})
            return json.loads(conn.getresponse().read() or b"{}")
        finally:
            conn.close()

    def _set(self, **values):
        self._call("POST", "/_control/set", values)

    @property
    def requests(self):
        """What imgate POSTed, in order: (path, headers, parsed JSON body) tuples."""
        return [tuple(r) for r in self._call("GET", "/_control/state")["requests"]]

    def count(self):
        return len(self.requests)

    mode = property(lambda self: None, lambda self, v: self._set(mode=v))
    healthy = property(lambda self: None, lambda self, v: self._set(healthy=v))
    answer = property(lambda self: None, lambda self, v: self._set(answer=v))
    raw_hex = property(lambda self: None, lambda self, v: self._set(raw_hex=v))

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """Kills the process: connections drop and connects are refused, as when a backend dies."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


if __name__ == "__main__":
    server = _BackendServer(sys.argv[1] if len(sys.argv) > 1 else "backend")
    print(server.port, flush=True)
    try:
        server.thread.join()
    except KeyboardInterrupt:
        pass
