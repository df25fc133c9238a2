# SPDX-License-Identifier: Apache-2.0
"""The push API over real HTTP (curl and urllib): errors are JSON with the right status."""
import json
import os
import subprocess

from conftest import API_KEY


def curl(gw, *args):
    out = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", *args], capture_output=True,
                         text=True, timeout=10)
    body, _, code = out.stdout.rpartition("\n")
    return int(code), body


def test_push_api_errors(gateway):
    base = f"http://127.0.0.1:{gateway.port}"
    auth = ["-H", f"Authorization: Bearer {API_KEY}"]
    code, body = curl(gateway, base + "/v1/stats")
    assert code == 401 and json.loads(body)["error"] == "unauthenticated"
    code, body = curl(gateway, *auth, base + "/v1/stats")
    assert code == 200 and json.loads(body)["sessions"] == 0
    code, body = curl(gateway, *auth, "-X", "POST", "-H", "Content-Type: application/json",
                      "-d", "{not json", base + "/v1/push")
    assert code == 400 and "reason" in json.loads(body)
    code, body = curl(gateway, *auth, "-X", "POST", "-H", "Content-Type: text/plain", "-d", "x",
                      base + "/v1/push")
    assert code == 415
    code, body = curl(gateway, *auth, "-X", "PUT", base + "/v1/push")
    assert code == 405
    code, body = curl(gateway, *auth, base + "/v1/nothing")
    assert code == 404 and json.loads(body)["error"] == "not_found"
    code, body = curl(gateway, *auth, "-X", "POST", "-H", "Content-Type: application/json",
                      "-d", json.dumps({"to": {"planets": ["x"]}, "data": "x"}), base + "/v1/push")
    assert code == 400 and "reason" in json.loads(body)
    big = os.path.join(gateway.dir, "big.json")
    with open(big, "w") as f:
        json.dump({"to": "all", "data": "x" * (2 * 1024 * 1024)}, f)
    code, body = curl(gateway, *auth, "-X", "POST", "-H", "Content-Type: application/json",
                      "--data-binary", "@" + big, base + "/v1/push")
    assert code == 413
    # No location at all for a path: 404 from the core.
    code, body = curl(gateway, base + "/elsewhere")
    assert code == 404


def test_keepalive_and_pipelined_requests(gateway):
    from wsutil import raw_request
    req = (f"GET /v1/stats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n\r\n").encode()
    last = (f"GET /v1/stats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
            "Connection: close\r\n\r\n").encode()
    resp = raw_request(gateway.port, req + req + last)
    assert resp.count(b"HTTP/1.1 200 OK") == 3


def test_metrics_and_healthz(gateway):
    gateway.http("GET", "/v1/stats")
    status, body, headers = gateway.admin("GET", "/metrics")
    assert status == 200
    text = body.decode()
    for name in ["imgate_connections ", "imgate_sessions ", "imgate_users ", "imgate_messages_in_total",
                 "imgate_messages_out_total", "imgate_bytes_in_total", "imgate_push_latency_seconds_bucket",
                 'imgate_reloads_total{result="ok"}', "imgate_errors_total", "imgate_http_requests_total"]:
        assert name in text, name
    status, body, _ = gateway.admin("GET", "/healthz")
    assert status == 200 and body["status"] == "ok"


BALANCED = """
workers: 2
admin: { bind: 127.0.0.1:0 }
listeners:
  - name: edge
    bind: 127.0.0.1:0
    locations:
      - { path: /ws, protocol: proto.websocket, pipeline: im }
  - name: api
    bind: 127.0.0.1:0
    balance: exact
    admission: false
    locations:
      - { path: /v1/, protocol: proto.http_push, config: { api_keys: [%s] } }
pipelines:
  im:
    - echo
"""


def _open_and_ask(port):
    """A keep-alive connection that has been answered once (so a worker owns it)."""
    import socket
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(f"GET /v1/stats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n\r\n".encode())
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(4096)
        assert chunk, "closed before answering"
        got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(body) < length:
        body += s.recv(4096)
    assert head.startswith(b"HTTP/1.1 200"), head
    return s


def test_exact_balance_spreads_a_listeners_connections_evenly(gateway_factory):
    """balance: exact gives each new connection to the worker with the fewest open ones from that
    listener; the kernel's SO_REUSEPORT hash alone would stay within one of even for all 16
    steps about once in 256 runs. /status shows the per-worker counts."""
    import time
    gw = gateway_factory(BALANCED % API_KEY)

    def open_counts():
        status, body, _ = gw.admin("GET", "/status")
        assert status == 200
        api = [l for l in body["listeners"] if l["name"] == "api"][0]
        assert api["balance"] == "exact"
        return api["open"]

    assert open_counts() == [0, 0]
    edge = [l for l in gw.admin("GET", "/status")[1]["listeners"] if l["name"] == "edge"][0]
    assert "open" not in edge  # kernel balance keeps no counts
    conns = []
    for i in range(16):
        conns.append(_open_and_ask(gw.ports["api"]))
        counts = open_counts()
        assert sum(counts) == i + 1 and max(counts) - min(counts) <= 1, (i, counts)
    assert open_counts() == [8, 8]
    for s in conns:
        s.close()
    deadline = time.time() + 5
    while open_counts() != [0, 0] and time.time() < deadline:
        time.sleep(0.05)
    assert open_counts() == [0, 0]
    # Both workers serve again after everything closed.
    again = [_open_and_ask(gw.ports["api"]) for _ in range(2)]
    assert open_counts() == [1, 1]
    for s in again:
        s.close()
