# SPDX-License-Identifier: Apache-2.0
"""TLS listeners against real clients: wss:// with Python websockets, https with curl, protocol
versions with Python's ssl (OpenSSL), plain HTTP on a TLS port, a missing certificate in
`imgate -t`, and a certificate change by reload that keeps open wss sessions."""
import asyncio
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import warnings

import pytest

from conftest import API_KEY, BIN, NODE_DIR, SECRET, make_token
from wsutil import connect, run

TLS_CONFIG = """
workers: 2
sessions:
  idle_timeout: 120s
  handshake_timeout: {handshake_timeout}
admin:
  bind: 127.0.0.1:0
listeners:
  - name: edge
    bind: 127.0.0.1:0
    tls:
      cert: {cert}
      key: {key}
      min_version: "{min_version}"
    locations:
      - path: /ws
        protocol: proto.websocket
        pipeline: echo
      - path: /engine.io/
        protocol: proto.socketio
        pipeline: echo
        config: {{ mode: engineio }}
      - path: /v1/
        protocol: proto.http_push
        config:
          api_keys: [{api_key}]
pipelines:
  echo:
    - auth.jwt:
        secret: {secret}
    - echo
"""


def tls_config(cert, key, min_version="1.2", handshake_timeout="10s"):
    return TLS_CONFIG.format(cert=cert, key=key, min_version=min_version, api_key=API_KEY,
                             secret=SECRET, handshake_timeout=handshake_timeout)


def make_cert(folder, name, cn="localhost"):
    """Self-signed EC P-256 certificate for 127.0.0.1 and localhost; returns (cert, key)."""
    cert = os.path.join(folder, name + ".pem")
    key = os.path.join(folder, name + ".key")
    out = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + cn,
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return cert, key


def client_context(cafile, minimum=None, maximum=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if minimum is not None:
            ctx.minimum_version = minimum
        if maximum is not None:
            ctx.maximum_version = maximum
    if maximum is not None and maximum < ssl.TLSVersion.TLSv1_2:
        # OpenSSL 3 refuses TLS < 1.2 at the default security level even as a client: level 0
        # makes the client really offer TLS 1.1, so a failure is the server's refusal.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


def tls_handshake(port, ctx):
    """Returns the negotiated version, or None when the handshake failed."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                return s.version()
        except (ssl.SSLError, ConnectionError, socket.timeout):
            return None


@pytest.fixture
def certs(tmp_path):
    return make_cert(str(tmp_path), "server")


@pytest.fixture
def tls_gateway(gateway_factory, certs):
    return gateway_factory(tls_config(*certs))


def wss_url(gw, user):
    return f"wss://127.0.0.1:{gw.port}/ws?token={make_token(user)}"


def https_json(gw, cafile, method, path, body=None):
    """The push API over https with Python's client; returns (status, parsed JSON body)."""
    import urllib.error
    import urllib.request
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"https://127.0.0.1:{gw.port}{path}", data=data, method=method,
                                 headers={"Authorization": "Bearer " + API_KEY,
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10, context=client_context(cafile)) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def curl_https(gw, cafile, *args):
    out = subprocess.run(["curl", "-sS", "--cacert", cafile, "-o", "-", "-w", "\n%{http_code}",
                          "-H", f"Authorization: Bearer {API_KEY}", *args],
                         capture_output=True, text=True, timeout=15)
    body, _, code = out.stdout.rpartition("\n")
    return out.returncode, int(code or 0), body


def test_tls_wss_push_and_https_api(tls_gateway, certs):
    gw = tls_gateway
    cert, _ = certs
    assert ", tls)" in gw.read_log()

    async def main():
        ws = await connect(wss_url(gw, "tlsuser"), ssl=client_context(cert))
        # The echo pipeline proves both directions go through TLS.
        await ws.send("over tls")
        assert await asyncio.wait_for(ws.recv(), 5) == "over tls"
        base = f"https://127.0.0.1:{gw.port}"
        rc, code, body = await asyncio.to_thread(
            curl_https, gw, cert, "-H", "Content-Type: application/json",
            "-d", '{"to": {"users": ["tlsuser"]}, "data": "pushed over https"}', base + "/v1/push")
        assert rc == 0 and code == 200, body
        assert '"sessions":1' in body
        assert await asyncio.wait_for(ws.recv(), 5) == "pushed over https"
        # A large push crosses several TLS records.
        big = "z" * 50000
        rc, code, body = await asyncio.to_thread(
            curl_https, gw, cert, "-H", "Content-Type: application/json",
            "-d", '{"to": {"users": ["tlsuser"]}, "data": "%s"}' % big, base + "/v1/push")
        assert code == 200, body
        assert await asyncio.wait_for(ws.recv(), 5) == big
        rc, code, body = await asyncio.to_thread(curl_https, gw, cert, base + "/v1/users/tlsuser")
        assert code == 200 and '"online":true' in body
        await ws.close()
    run(main())


def test_tls_client_without_trust_is_refused_by_the_client(tls_gateway):
    # Sanity check of the harness: the certificate really is checked by the clients above.
    rc, code, _ = curl_https(tls_gateway, "/etc/ssl/certs/ca-certificates.crt",
                             f"https://127.0.0.1:{tls_gateway.port}/v1/stats")
    assert rc != 0 and code == 0


def _permissive_server(cert, key):
    """A TLS 1.1-capable OpenSSL server (Python ssl), to prove the TLS 1.1 client works."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = listener.accept()
        try:
            with ctx.wrap_socket(conn, server_side=True) as s:
                s.recv(1)
        except (ssl.SSLError, OSError):
            pass
        listener.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return listener.getsockname()[1], t


def test_tls_1_1_refused_1_2_accepted(tls_gateway, certs):
    cert, key = certs
    tls11 = client_context(cert, minimum=ssl.TLSVersion.TLSv1_1, maximum=ssl.TLSVersion.TLSv1_1)
    port, t = _permissive_server(cert, key)
    assert tls_handshake(port, tls11) == "TLSv1.1"  # the client can really speak 1.1
    t.join(5)
    assert tls_handshake(tls_gateway.port, tls11) is None
    tls12 = client_context(cert, maximum=ssl.TLSVersion.TLSv1_2)
    assert tls_handshake(tls_gateway.port, tls12) == "TLSv1.2"
    assert tls_handshake(tls_gateway.port, client_context(cert)) == "TLSv1.3"
    # openssl s_client agrees.
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{tls_gateway.port}",
                          "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", "-CAfile", cert],
                         input="", capture_output=True, text=True, timeout=15)
    assert out.returncode != 0
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{tls_gateway.port}",
                          "-tls1_2", "-CAfile", cert, "-verify_return_error"],
                         input="", capture_output=True, text=True, timeout=15)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Protocol  : TLSv1.2" in out.stdout or "TLSv1.2" in out.stdout


def test_min_version_1_3_refuses_1_2(gateway_factory, certs):
    cert, key = certs
    gw = gateway_factory(tls_config(cert, key, min_version="1.3"))
    assert tls_handshake(gw.port, client_context(cert, maximum=ssl.TLSVersion.TLSv1_2)) is None
    assert tls_handshake(gw.port, client_context(cert)) == "TLSv1.3"

    async def main():
        ws = await connect(wss_url(gw, "v13"), ssl=client_context(cert))
        await ws.send("1.3 only")
        assert await asyncio.wait_for(ws.recv(), 5) == "1.3 only"
        await ws.close()
    run(main())


def test_plain_http_on_tls_port_is_not_served_and_server_survives(tls_gateway, certs):
    gw = tls_gateway
    cert, _ = certs
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    s.sendall(f"GET /v1/stats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n\r\n"
              .encode())
    got = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    assert not got.startswith(b"HTTP/1.1 200"), got
    assert b"\"sessions\"" not in got
    # A garbage ClientHello-sized blob too, then the server still works.
    raw = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    raw.sendall(b"\x16\x03\x01\x00\x05" + b"\xff" * 5)
    raw.settimeout(5)
    try:
        raw.recv(4096)
    except (socket.timeout, ConnectionResetError):
        pass
    raw.close()
    assert gw.proc.poll() is None
    assert gw.admin("GET", "/healthz")[0] == 200
    assert tls_handshake(gw.port, client_context(cert)) == "TLSv1.3"
    rc, code, body = curl_https(gw, cert, f"https://127.0.0.1:{gw.port}/v1/stats")
    assert code == 200, body


def _line_of(text, needle):
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(needle + " not in config")


def test_missing_cert_file_fails_config_test_with_location(tmp_path, certs):
    _, key = certs
    missing = os.path.join(str(tmp_path), "nope", "missing.pem")
    config = os.path.join(str(tmp_path), "tls.yaml")
    text = tls_config(missing, key)
    with open(config, "w") as f:
        f.write(text)
    out = subprocess.run([BIN, "-t", "-c", config], capture_output=True, text=True, timeout=15)
    both = out.stdout + out.stderr
    assert out.returncode == 1, both
    line = _line_of(text, "cert: " + missing)
    assert f"{config}:{line}:" in both, both
    assert "tls.cert" in both and "missing.pem" in both, both
    # A valid certificate makes the same file pass.
    with open(config, "w") as f:
        f.write(tls_config(certs[0], key))
    out = subprocess.run([BIN, "-t", "-c", config], capture_output=True, text=True, timeout=15)
    assert out.returncode == 0, out.stdout + out.stderr


def test_key_not_matching_cert_fails_config_test(tmp_path, certs):
    other_cert, _ = make_cert(str(tmp_path), "other")
    config = os.path.join(str(tmp_path), "tls.yaml")
    text = tls_config(other_cert, certs[1])
    with open(config, "w") as f:
        f.write(text)
    out = subprocess.run([BIN, "-t", "-c", config], capture_output=True, text=True, timeout=15)
    both = out.stdout + out.stderr
    assert out.returncode == 1, both
    assert f"{config}:{_line_of(text, 'key: ')}:" in both and "tls.key" in both, both


def test_reload_to_new_cert_keeps_open_wss_session(gateway_factory, tmp_path):
    folder = str(tmp_path)
    old_cert, old_key = make_cert(folder, "old", cn="old.localhost")
    new_cert, new_key = make_cert(folder, "new", cn="new.localhost")
    # Relative paths resolve against the config file's directory (gw0/ inside tmp_path).
    gw = gateway_factory(tls_config("../old.pem", "../old.key"))

    async def main():
        ws = await connect(wss_url(gw, "keep"), ssl=client_context(old_cert))
        await ws.send("before")
        assert await asyncio.wait_for(ws.recv(), 5) == "before"
        await asyncio.to_thread(gw.reload, tls_config("../new.pem", "../new.key"))
        assert "reload done" in gw.read_log(), gw.read_log()
        # The open session keeps its TLS connection and still works both ways.
        await ws.send("after")
        assert await asyncio.wait_for(ws.recv(), 5) == "after"
        status, body, _ = await asyncio.to_thread(
            lambda: _https_push(gw, new_cert, "keep", "pushed after reload"))
        assert status == 200 and '"sessions":1' in body, body
        assert await asyncio.wait_for(ws.recv(), 5) == "pushed after reload"
        assert ws.open
        # New handshakes present the new certificate only.
        assert tls_handshake(gw.port, client_context(new_cert)) == "TLSv1.3"
        assert tls_handshake(gw.port, client_context(old_cert)) is None
        ws2 = await connect(wss_url(gw, "fresh"), ssl=client_context(new_cert))
        await ws2.send("new cert")
        assert await asyncio.wait_for(ws2.recv(), 5) == "new cert"
        await ws2.close()
        await ws.close()
    run(main())


def _https_push(gw, cafile, user, data):
    rc, code, body = curl_https(gw, cafile, "-H", "Content-Type: application/json",
                                "-d", '{"to": {"users": ["%s"]}, "data": "%s"}' % (user, data),
                                f"https://127.0.0.1:{gw.port}/v1/push")
    return code, body, rc


def test_tls_handshake_timeout_closes_silent_and_stalled_connections(gateway_factory, certs):
    cert, key = certs
    gw = gateway_factory(tls_config(cert, key, handshake_timeout="1s"))
    hello_start = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"  # a ClientHello cut short
    for first_bytes in (b"", hello_start):
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
        if first_bytes:
            s.sendall(first_bytes)
        start = time.time()
        try:
            assert s.recv(4096) == b""
        except ConnectionResetError:
            pass
        assert time.time() - start < 4.5
        s.close()
    assert tls_handshake(gw.port, client_context(cert)) == "TLSv1.3"


def test_tls_many_large_pushes_arrive_intact_in_order(tls_gateway, certs):
    gw = tls_gateway
    cert, _ = certs

    async def main():
        # No compression: every byte goes through SSL_write (partial writes, 16 KiB records).
        ws = await connect(wss_url(gw, "bulk"), ssl=client_context(cert), compression=None)
        payloads = [f"{i:04d}" + chr(ord("a") + i % 26) * 70000 for i in range(12)]
        body = {"messages": [{"to": {"users": ["bulk"]}, "data": p} for p in payloads]}
        status, result = await asyncio.to_thread(https_json, gw, cert, "POST", "/v1/push", body)
        assert status == 200 and result["sessions"] == 12, result
        for p in payloads:
            assert await asyncio.wait_for(ws.recv(), 10) == p
        await ws.close()
    run(main())


def test_tls_engine_io_polling_then_upgrade(tls_gateway):
    """engine.io-client over https: long-polling, then the upgrade hands the TLS connection (and
    its OpenSSL state) to the worker that holds the polling session; messages echo before and
    after."""
    gw = tls_gateway
    env = dict(os.environ, IMGATE_TLS_INSECURE="1")  # the test's self-signed certificate
    proc = subprocess.run(["node", os.path.join(NODE_DIR, "eio_client.js"),
                           f"https://127.0.0.1:{gw.port}", make_token("tlseio"), "3",
                           "polling,websocket", "upgrade"], cwd=NODE_DIR, env=env,
                          capture_output=True, text=True, timeout=30)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result.get("upgraded") is True and result["transport"] == "websocket", (result, proc.stderr)
    assert sorted(map(json.dumps, result["got"])) == sorted(
        map(json.dumps, ["hello engine", {"hex": "010203"}, "after upgrade"])), result

