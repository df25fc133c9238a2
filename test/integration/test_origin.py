# SPDX-License-Identifier: Apache-2.0
"""The origin stage against the real binary: browser-like WebSocket handshakes with an Origin
header (python websockets' origin=), refused with 403 before any 101; missing and null origins;
the allow-list changed by a reload."""
import base64
import os

from conftest import make_token, SECRET
from wsutil import connect, handshake_status, raw_request, run

CONFIG = """
workers: 2
log:
  level: debug
admin:
  bind: 127.0.0.1:0
listeners:
  - name: edge
    bind: 127.0.0.1:0
    locations:
      - path: /ws
        protocol: proto.websocket
        pipeline: web
      - path: /native
        protocol: proto.websocket
        pipeline: strict
pipelines:
  web:
    - origin:
        allow: [ {allow} ]
    - auth.jwt:
        secret: {secret}
  strict:
    - origin:
        allow: [ "https://app\\\\.example\\\\.com" ]
        allow_missing: false
        allow_null: true
    - auth.jwt:
        secret: {secret}
"""

ALLOW = r'"https://([a-z0-9-]+\\.)?example\\.com", "http://localhost:[0-9]+"'


def config(allow=ALLOW):
    return CONFIG.replace("{allow}", allow).replace("{secret}", SECRET)


def url(gw, path="/ws", user="alice"):
    return f"ws://127.0.0.1:{gw.port}{path}?token={make_token(user)}"


def upgrade(gw, path, origin=None, token=True):
    """A raw upgrade request; returns the status line and the whole answer."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path}{'?token=' + make_token('raw') if token else ''} HTTP/1.1",
             "Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    raw = raw_request(gw.port, ("\r\n".join(lines) + "\r\n\r\n").encode(), read_until_close=False)
    return raw.split(b"\r\n", 1)[0].decode(), raw


def test_allowed_origins_connect(gateway_factory):
    gw = gateway_factory(config())

    async def main():
        for origin in ["https://example.com", "https://www.example.com", "https://WWW.EXAMPLE.COM",
                       "http://localhost:3000"]:
            ws = await connect(url(gw), origin=origin)
            await ws.close()
        # Native clients send no Origin: allowed by default (allow_missing: true).
        ws = await connect(url(gw))
        await ws.close()
    run(main())


def test_refused_origins_get_403(gateway_factory):
    gw = gateway_factory(config())

    async def main():
        for origin in ["https://evil.com", "https://example.com.evil.com", "https://evilexample.com",
                       "http://example.com", "https://example.com:8443", "null"]:
            assert await handshake_status(url(gw), origin=origin) == 403, origin
    run(main())
    status, raw = upgrade(gw, "/ws", origin="https://evil.com")
    assert status == "HTTP/1.1 403 Forbidden", raw
    assert b"permission_denied" in raw or b"origin not allowed" in raw, raw
    # Origin is checked before auth: no token and a bad origin is a 403, not a 401.
    status, _ = upgrade(gw, "/ws", origin="https://evil.com", token=False)
    assert status.startswith("HTTP/1.1 403"), status
    status, _ = upgrade(gw, "/ws", origin="https://example.com", token=False)
    assert status.startswith("HTTP/1.1 401"), status
    assert 'origin "https://evil.com" not allowed' in gw.read_log()


def test_missing_and_null_when_configured(gateway_factory):
    gw = gateway_factory(config())

    async def main():
        # /native: allow_missing false, allow_null true.
        assert await handshake_status(url(gw, "/native")) == 403
        assert await handshake_status(url(gw, "/native"), origin="null") == 101
        assert await handshake_status(url(gw, "/native"), origin="https://app.example.com") == 101
        assert await handshake_status(url(gw, "/native"), origin="https://www.example.com") == 403
    run(main())
    status, _ = upgrade(gw, "/native")
    assert status.startswith("HTTP/1.1 403"), status


def test_reload_changes_the_allow_list(gateway_factory):
    gw = gateway_factory(config())

    async def main():
        assert await handshake_status(url(gw), origin="https://partner.test") == 403
    run(main())
    gw.reload(config(ALLOW + r', "https://partner\\.test"'))
    assert "reload done" in gw.read_log()

    async def again():
        assert await handshake_status(url(gw), origin="https://partner.test") == 101
        assert await handshake_status(url(gw), origin="https://evil.com") == 403
    run(again())


def test_bad_pattern_fails_the_load(tmp_path):
    import subprocess
    from conftest import BIN
    path = tmp_path / "c.yaml"
    path.write_text(config('"https://ok\\\\.com", "https://(broken"'))
    out = subprocess.run([BIN, "-t", "-c", str(path)], capture_output=True, text=True, timeout=10)
    assert out.returncode == 1
    text = out.stdout + out.stderr
    assert 'allow[1]: bad pattern "https://(broken"' in text, text
