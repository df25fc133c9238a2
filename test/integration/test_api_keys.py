# SPDX-License-Identifier: Apache-2.0
"""API keys with scopes, apps and rate limits: the push API (curl and urllib) and the admin
listener, against the real binary. Keys never reach the log."""
import json
import re
import subprocess

from conftest import BIN, SECRET

PUSH_KEYS = """
          api_keys: [ legacy-key-0001 ]
          default_app: shop
          keys:
            - {{ key: push-key-0001, name: pusher, scopes: [push], apps: [shop] }}
            - {{ key_file: read.key, name: reader, scopes: [read] }}
            - {{ key: ops-key-0001, name: ops, scopes: [admin] }}
            - {{ key: slow-key-0001, name: slow, scopes: [read], rate: {slow_rate}, burst: 2 }}
"""

CONFIG = """
workers: 2
log:
  level: info
admin:
  bind: 127.0.0.1:0
{admin}
listeners:
  - name: edge
    bind: 127.0.0.1:0
    locations:
      - path: /v1/
        protocol: proto.http_push
        config:
{push_keys}
pipelines:
  im:
    - auth.jwt:
        secret: {secret}
"""

ADMIN_KEYS = """  keys:
    - { key: admin-read-0001, scopes: [read] }
    - { key: admin-all-0001, scopes: [admin] }
"""

FILES = {"read.key": "read-key-0001\n"}
SECRETS = ["legacy-key-0001", "push-key-0001", "read-key-0001", "ops-key-0001", "slow-key-0001",
           "admin-read-0001", "admin-all-0001"]


def config(admin=ADMIN_KEYS, slow_rate="2/m"):
    return CONFIG.format(admin=admin, push_keys=PUSH_KEYS.format(slow_rate=slow_rate).strip("\n"),
                         secret=SECRET)


def curl(gw, method, path, key=None, body=None, port=None, header="x-api-key"):
    """Returns (status, headers dict with lower-case names, parsed JSON body or text)."""
    args = ["curl", "-s", "-i", "-X", method, f"http://127.0.0.1:{port or gw.port}{path}"]
    if key is not None:
        args += ["-H", f"X-API-Key: {key}" if header == "x-api-key" else f"Authorization: Bearer {key}"]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    out = subprocess.run(args, capture_output=True, timeout=10).stdout.decode()
    head, _, text = out.partition("\r\n\r\n")
    lines = head.split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    try:
        return status, headers, json.loads(text)
    except ValueError:
        return status, headers, text


# Every endpoint with the scope docs/http-api.md gives it.
ENDPOINTS = [
    ("POST", "/v1/push", {"to": {"users": ["alice"]}, "data": "x"}, "push"),
    ("POST", "/v1/rooms/lobby/members", {"users": ["alice"]}, "push"),
    ("DELETE", "/v1/rooms/lobby/members?user=alice", None, "push"),
    ("GET", "/v1/users/alice", None, "read"),
    ("GET", "/v1/rooms/lobby/members", None, "read"),
    ("GET", "/v1/stats", None, "read"),
    ("DELETE", "/v1/users/alice/sessions", None, "admin"),
]

KEYS = {"push-key-0001": ("pusher", {"push"}), "read-key-0001": ("reader", {"read"}),
        "ops-key-0001": ("ops", {"admin"}), "legacy-key-0001": ("api_keys[0]", {"push", "read", "admin"})}


def test_push_api_scopes(gateway_factory):
    gw = gateway_factory(config(), files=FILES)
    for method, path, body, needed in ENDPOINTS:
        for key, (name, scopes) in KEYS.items():
            status, answer, _ = gw.http(method, path, body, api_key=key)
            allowed = needed in scopes or "admin" in scopes
            if allowed:
                assert status == 200, (method, path, name, answer)
            else:
                assert status == 403, (method, path, name, answer)
                assert answer["error"] == "permission_denied", answer
                assert f'key "{name}" lacks scope "{needed}"' in answer["reason"], answer
    # The same through curl, with both header forms.
    status, _, answer = curl(gw, "DELETE", "/v1/users/alice/sessions", key="read-key-0001")
    assert status == 403 and answer["error"] == "permission_denied"
    status, _, answer = curl(gw, "GET", "/v1/stats", key="read-key-0001", header="authorization")
    assert status == 200 and answer["sessions"] == 0
    status, headers, answer = curl(gw, "GET", "/v1/stats", key="wrong-key")
    assert status == 401 and headers["www-authenticate"] == 'Bearer realm="imgate"'


def test_push_api_apps(gateway_factory):
    gw = gateway_factory(config(), files=FILES)
    status, _, _ = gw.http("POST", "/v1/push", {"to": "all", "data": "x"}, api_key="push-key-0001")
    assert status == 200  # default_app is shop
    status, answer, _ = gw.http("POST", "/v1/push?app=news", {"to": "all", "data": "x"},
                                api_key="push-key-0001")
    assert status == 403 and 'may not use app "news"' in answer["reason"], answer
    status, answer, _ = gw.http("POST", "/v1/push", {"messages": [{"to": "all", "data": "a"},
                                                                  {"to": "all", "data": "b", "app": "news"}]},
                                api_key="push-key-0001")
    assert status == 403, answer
    # Keys without apps may use any.
    status, _, _ = gw.http("GET", "/v1/stats?app=news", api_key="read-key-0001")
    assert status == 200


def test_push_api_rate_limit_429_and_retry_after(gateway_factory):
    gw = gateway_factory(config(), files=FILES)
    for _ in range(2):
        status, _, _ = curl(gw, "GET", "/v1/stats", key="slow-key-0001")
        assert status == 200
    status, headers, answer = curl(gw, "GET", "/v1/stats", key="slow-key-0001")
    assert status == 429, answer
    assert answer["error"] == "resource_exhausted"
    assert 'rate limit of key "slow" exceeded (2/m burst 2)' in answer["reason"], answer
    # 2/m: one token every 30 s, rounded up to whole seconds.
    retry = int(headers["retry-after"])
    assert 1 <= retry <= 30
    assert answer["retry_after"] == retry
    # Other keys are not affected; a reload with the same limit keeps the empty bucket.
    assert gw.http("GET", "/v1/stats", api_key="read-key-0001")[0] == 200
    gw.reload(config())
    assert "reload done" in gw.read_log()
    assert curl(gw, "GET", "/v1/stats", key="slow-key-0001")[0] == 429
    # A changed limit starts a full bucket.
    gw.reload(config(slow_rate="3/m"))
    assert curl(gw, "GET", "/v1/stats", key="slow-key-0001")[0] == 200
    metrics = gw.http("GET", "/metrics", port=gw.ports["admin"], api_key="admin-read-0001")[1].decode()
    assert re.search(r"imgate_http_push_rate_limited_total(\{[^}]*\})? [1-9]", metrics), metrics[:3000]


def test_keys_are_never_logged(gateway_factory):
    gw = gateway_factory(config(), files=FILES)
    for method, path, body, _ in ENDPOINTS:
        for key in SECRETS:
            gw.http(method, path, body, api_key=key)
    gw.http("GET", "/v1/stats", api_key="slow-key-0001")
    log = gw.read_log()
    for key in SECRETS:
        assert key not in log, key


def test_admin_keys_with_scopes(gateway_factory):
    gw = gateway_factory(config(), files=FILES)
    port = gw.ports["admin"]
    # /healthz stays open for load balancers.
    assert curl(gw, "GET", "/healthz", port=port)[0] == 200
    for path in ["/metrics", "/status"]:
        status, headers, answer = curl(gw, "GET", path, port=port)
        assert status == 401 and answer["error"] == "unauthenticated", (path, answer)
        assert curl(gw, "GET", path, key="wrong", port=port)[0] == 401
        assert curl(gw, "GET", path, key="admin-read-0001", port=port)[0] == 200
        assert curl(gw, "GET", path, key="admin-all-0001", port=port, header="authorization")[0] == 200
    status, _, answer = curl(gw, "POST", "/reload", key="admin-read-0001", port=port)
    assert status == 403 and answer["error"] == "permission_denied", answer
    assert curl(gw, "POST", "/reload", port=port)[0] == 401
    status, _, answer = curl(gw, "POST", "/reload", key="admin-all-0001", port=port,
                             header="authorization")
    assert status == 200 and answer["status"] == "reloaded", answer
    assert "is not on loopback" not in gw.read_log()


def test_admin_old_style_keys_keep_reads_open(gateway_factory):
    gw = gateway_factory(config(admin="  api_keys: [ admin-all-0001 ]"), files=FILES)
    port = gw.ports["admin"]
    assert curl(gw, "GET", "/metrics", port=port)[0] == 200
    assert curl(gw, "GET", "/status", port=port)[0] == 200
    assert curl(gw, "POST", "/reload", port=port)[0] == 401
    assert curl(gw, "POST", "/reload", key="admin-all-0001", port=port, header="authorization")[0] == 200


def test_admin_without_keys_beyond_loopback_warns(gateway_factory):
    text = config(admin="").replace("admin:\n  bind: 127.0.0.1:0", "admin:\n  bind: 0.0.0.0:0")
    gw = gateway_factory(text, files=FILES)
    assert re.search(r'\[warn\].*admin listener "0\.0\.0\.0:0" is not on loopback and has no keys',
                     gw.read_log()), gw.read_log()
    # Still open, as before.
    assert curl(gw, "GET", "/metrics", port=gw.ports["admin"])[0] == 200


def test_key_config_errors(tmp_path):
    (tmp_path / "read.key").write_text("read-key-0001\n")
    cases = [
        (config().replace("scopes: [push], apps", "scopes: [psuh], apps"),
         'keys[0].scopes: unknown scope "psuh" (expected push, read or admin)'),
        (config().replace("key: ops-key-0001", "key: push-key-0001"),
         "keys[2] is the same key as keys[0]"),
        (config().replace("key: ops-key-0001", 'key: ""'), "keys[2].key is empty"),
        (config().replace("key_file: read.key", "key_file: missing.key"), "cannot read key_file"),
        (config().replace("{ key: admin-read-0001, scopes: [read] }",
                          "{ key: admin-read-0001, scopes: [reload] }"),
         'keys[0].scopes: unknown scope "reload" (expected read or admin)'),
    ]
    for text, expected in cases:
        path = tmp_path / "c.yaml"
        path.write_text(text)
        out = subprocess.run([BIN, "-t", "-c", str(path)], capture_output=True, text=True, timeout=10)
        output = out.stdout + out.stderr
        assert out.returncode == 1, (expected, output)
        assert expected in output, (expected, output)
        for key in SECRETS:
            assert key not in output, (key, output)
