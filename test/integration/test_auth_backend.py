# SPDX-License-Identifier: Apache-2.0
"""auth.backend against the real binary and a real backend process: the handshake's credentials
are POSTed to an upstream group; an accepted answer sets the identity (seen through the push
API), joins rooms and bounds the session with expire_at (close 4001); 401/403 answers refuse the
WebSocket handshake with the backend's reason; a dead or hanging backend gives 503 (fail
closed). Answers are cached by token."""
import asyncio
import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from backend import Backend
from conftest import API_KEY, BIN
from wsutil import close_code, connect, handshake_status, raw_request, run


def _built():
    out = subprocess.run([BIN, "--list-modules"], capture_output=True, text=True, timeout=10)
    return any(line.split()[:1] == ["auth.backend"] for line in out.stdout.splitlines())


pytestmark = pytest.mark.skipif(not _built(), reason="the auth.backend module is not built in")

CONFIG = """
workers: 2
admin: {{ bind: 127.0.0.1:0 }}
upstreams:
  login:
    backends: [ {{address: "{login}"}} ]
    timeout: 5s
    retries: 0
  strict:
    backends: [ {{address: "{strict}"}} ]
    timeout: 5s
    retries: 0
listeners:
  - name: edge
    bind: 127.0.0.1:0
    locations:
      - {{ path: /ws, protocol: proto.websocket, pipeline: im }}
      - {{ path: /ws-strict, protocol: proto.websocket, pipeline: strict }}
      - {{ path: /v1/, protocol: proto.http_push, config: {{ api_keys: [{api_key}] }} }}
pipelines:
  im:
    - auth.backend: {{ upstream: login, timeout: 1s }}
    - echo
  strict:
    - auth.backend: {{ upstream: strict, path: /check }}
    - echo
"""


class Refuser:
    """A backend that answers every request with 401 and a reason (backend.py has no 401 mode)."""

    def __init__(self):
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                owner.requests += 1
                body = json.dumps({"reason": "password changed"}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return f"127.0.0.1:{self.server.server_address[1]}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def backends():
    login = Backend("login")
    strict = Refuser()
    yield login, strict
    login.stop()
    strict.stop()


def start(gateway_factory, backends):
    login, strict = backends
    return gateway_factory(CONFIG.format(login=login.address, strict=strict.address,
                                         api_key=API_KEY))


def refusal(gw, path, token):
    """Status and JSON body of a refused WebSocket handshake."""
    raw = raw_request(gw.port, (f"GET {path}?token={token} HTTP/1.1\r\nHost: x\r\n"
                                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def metric(gw, name):
    text = gw.admin("GET", "/metrics")[1].decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(f"imgate_{name}_total"))


def test_accepted_identity_rooms_and_cache(gateway_factory, backends):
    login, _ = backends
    gw = start(gateway_factory, backends)
    login.mode = "answer"
    login.answer = {"uid": "alice", "app": "chat", "device": "ios-1", "rooms": ["lobby"]}

    async def main():
        ws = await connect(gw.ws_url(token="opaque-1", query="device=ignored"),
                           origin="https://app.example",
                           extra_headers={"X-Forwarded-For": "203.0.113.9"})
        path, headers, body = login.requests[0]
        assert path == "/auth"
        assert {k.lower(): v for k, v in headers.items()}["content-type"] == "application/json"
        assert body["token"] == "opaque-1"
        assert body["headers"]["origin"] == "https://app.example"
        assert body["headers"]["x-forwarded-for"] == "203.0.113.9"
        assert "websockets" in body["headers"]["user-agent"].lower()
        assert body["query"] == {"device": "ignored"}
        assert body["protocol"] == "proto.websocket" and body["listener"] == "edge"
        assert body["peer"].startswith("127.0.0.1:")

        # The identity is the backend's, seen through the push API, with the room joined.
        def joined():
            status, user, _ = gw.http("GET", "/v1/users/alice?app=chat")
            assert status == 200
            return user["online"] and user["sessions"][0]["rooms"] == ["lobby"]
        gw.wait_for(joined, what="alice in lobby")
        status, user, _ = gw.http("GET", "/v1/users/alice?app=chat")
        assert user["sessions"][0]["device"] == "ios-1"
        assert gw.http("GET", "/v1/users/alice")[1]["online"] is False  # another app
        status, body, _ = gw.push({"room": "lobby"}, "to the lobby", app="chat")
        assert status == 200 and body["sessions"] == 1, body
        assert await asyncio.wait_for(ws.recv(), 5) == "to the lobby"

        # The same token again: answered from the cache, the backend is not asked.
        again = await connect(gw.ws_url(token="opaque-1"))
        assert login.count() == 1
        gw.wait_for(lambda: len(gw.http("GET", "/v1/users/alice?app=chat")[1]["sessions"]) == 2,
                    what="second session")
        # Another token is asked for.
        login.answer = {"uid": "bob"}
        bob = await connect(gw.ws_url(token="opaque-2"))
        assert login.count() == 2
        assert gw.online("bob") == 1  # app "default"
        for w in (ws, again, bob):
            await w.close()

    run(main())
    assert metric(gw, "auth_backend_accepted") == 3
    assert metric(gw, "auth_backend_cache_hits") == 1
    assert metric(gw, "auth_backend_cache_misses") == 2


def test_expire_at_closes_with_4001(gateway_factory, backends):
    login, _ = backends
    gw = start(gateway_factory, backends)
    login.mode = "answer"
    login.answer = {"uid": "carol", "expire_at": int(time.time()) + 2}

    async def main():
        ws = await connect(gw.ws_url(token="short-lived"))
        assert await close_code(ws, timeout=5) == 4001

    run(main())
    assert metric(gw, "auth_backend_expired") == 1
    # The cached answer ended at expire_at; asked again, the backend gives the same expire_at,
    # now past: the handshake is refused.
    status, body = refusal(gw, "/ws", "short-lived")
    assert status == 401 and body["reason"] == "credentials expired", body


def test_refusals_401_and_403(gateway_factory, backends):
    login, strict = backends
    gw = start(gateway_factory, backends)

    status, body = refusal(gw, "/ws-strict", "revoked")
    assert status == 401, body
    assert body == {"error": "unauthenticated", "reason": "password changed"}
    # Cached for negative_ttl (5 s): a reconnect storm does not reach the backend.
    assert run(handshake_status(gw.ws_url(path="/ws-strict", token="revoked"))) == 401
    assert strict.requests == 1

    login.mode = "reject"  # 403 {"error": "not allowed"}
    status, body = refusal(gw, "/ws", "banned")
    assert status == 403, body
    assert body == {"error": "permission_denied", "reason": "forbidden by the auth backend"}

    # No token: refused here, the backend is not asked.
    before = login.count()
    assert run(handshake_status(gw.ws_url())) == 401
    assert login.count() == before
    assert metric(gw, "auth_backend_rejected") == 4


def test_backend_down_and_timeout_fail_closed(gateway_factory, backends):
    login, _ = backends
    gw = start(gateway_factory, backends)

    login.mode = "hang"  # answers after 3 s; the stage waits 1 s
    started = time.time()
    status, body = refusal(gw, "/ws", "slow")
    assert status == 503, body
    assert body == {"error": "unavailable", "reason": "auth backend unavailable"}
    assert time.time() - started < 2.5

    login.stop()
    status, body = refusal(gw, "/ws", "any")
    assert status == 503, body
    assert body["reason"] == "auth backend unavailable"
    # Failures are not cached: still 503, asked again each time.
    assert run(handshake_status(gw.ws_url(token="slow"))) == 503
    assert metric(gw, "auth_backend_unavailable") == 3
    assert "unavailable" in gw.read_log()
