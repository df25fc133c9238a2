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
