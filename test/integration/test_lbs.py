# SPDX-License-Identifier: Apache-2.0
"""The lbs module (issue 5) against the real binary: answers per client address (simulated with
X-Forwarded-For from the trusted 127.0.0.1 proxy), app, SDK version and env; GeoIP through a
database written by mmdb_writer.py; and the self node moving down the list as WebSocket sessions
load it."""
import asyncio
import json
import subprocess
import urllib.error
import urllib.request

import pytest

import mmdb_writer
from conftest import BIN, SECRET, make_token
from wsutil import connect, run


def _built():
    out = subprocess.run([BIN, "--list-modules"], capture_output=True, text=True, timeout=10)
    return any(line.split()[:1] == ["lbs"] for line in out.stdout.splitlines())


pytestmark = pytest.mark.skipif(not _built(), reason="the lbs module is not built in")

CONFIG = """
workers: 2
log:
  level: info
admin:
  bind: 127.0.0.1:0
listeners:
  - name: edge
    bind: 127.0.0.1:0
    locations:
      - path: /ws
        protocol: proto.websocket
        pipeline: im
      - path: /v1/lbs
        protocol: lbs
        config:
          nodes:
            - {{ name: local, group: main, self: true,
                addresses: {{ ws: [ws://local.example/ws], tcp: ["local.example:9000"] }} }}
            - {{ name: static, group: main, load: 3,
                addresses: {{ ws: [ws://static.example/ws], tcp: ["static.example:9000"] }} }}
            - {{ name: cn, group: cn, region: CN-ZJ, addresses: {{ ws: [ws://cn.example/ws] }} }}
            - {{ name: intra, group: intranet, addresses: {{ ws: [ws://intra.example/ws] }} }}
            - {{ name: v2, group: v2, addresses: {{ ws: [ws://v2.example/ws] }} }}
            - {{ name: stage, group: staging, env: [staging],
                addresses: {{ ws: [ws://stage.example/ws] }} }}
          groups: [spare]
          default_group: main
          rules:
            apps: [ {{ match: [spare-app], group: spare }} ]
            sdk_versions: [ {{ match: [">=2.0.0 <3.0.0"], group: v2 }} ]
            environments: [ {{ match: [staging], group: staging }} ]
            networks: [ {{ match: [10.0.0.0/8, "fd00::/8"], group: intranet }} ]
            geoip:
              database: {geo}
              rules: [ {{ match: [CN-ZJ], group: cn }} ]
          trusted_proxies: [127.0.0.1/32]
          ttl: 60s
          heartbeat: 20s
          backup: [backup.example]
          near_equal_percent: 0
          near_equal_absolute: 0
pipelines:
  im:
    - auth.jwt:
        secret: {secret}
"""


@pytest.fixture
def lbs_gateway(gateway_factory, tmp_path):
    geo = tmp_path / "geo.mmdb"
    mmdb_writer.write(str(geo), [("1.2.3.0/24", mmdb_writer.location_record("CN-ZJ")),
                                 ("5.6.0.0/16", mmdb_writer.location_record("US-CA"))])
    return gateway_factory(CONFIG.format(geo=geo, secret=SECRET))


def lbs(gw, query="", client=None, method="GET"):
    """GET /v1/lbs through the trusted local proxy; `client` goes into X-Forwarded-For."""
    headers = {"X-Forwarded-For": client} if client else {}
    url = f"http://127.0.0.1:{gw.port}/v1/lbs" + ("?" + query if query else "")
    req = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw else None), resp.headers
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, (json.loads(raw) if raw else None), e.headers


def test_answers_follow_the_rules(lbs_gateway):
    gw = lbs_gateway
    status, body, headers = lbs(gw, "app=im&sdk=1.4.2&env=prod&device=ios", client="198.51.100.4")
    assert status == 200, body
    assert headers["Cache-Control"] == "private, max-age=60"
    assert headers.get_content_type() == "application/json"
    assert body["ttl"] == 60 and body["heartbeat_ms"] == 20000
    assert body["backoff"] == {"base_ms": 1000, "factor": 2.0, "jitter": 0.2, "max_ms": 60000}
    assert body["node_group"] == "main" and body["rule"] == "default"
    assert body["client_ip"] == "198.51.100.4"
    assert set(body["addresses"]) == {"ws", "tcp", "socketio", "wss"}
    assert sorted(body["addresses"]["ws"]) == ["ws://local.example/ws", "ws://static.example/ws"]
    assert body["backup"] == ["backup.example"]
    assert "fallback" not in body and "region" not in body

    cases = [
        # (query, X-Forwarded-For, group, rule)
        ("sdk=2.3.0", "198.51.100.4", "v2", "sdk"),
        ("sdk=3.0.0", "198.51.100.4", "main", "default"),
        ("env=staging", "198.51.100.4", "staging", "env"),
        ("", "10.20.30.40", "intranet", "network"),
        ("", "fd00::17", "intranet", "network"),
        ("", "1.2.3.4", "cn", "geoip"),
        ("", "5.6.7.8", "main", "default"),
        # app beats everything; the proxy chain's right-most untrusted hop is the client.
        ("app=spare-app&sdk=2.0.0&env=staging", "6.6.6.6, 1.2.3.4, 127.0.0.1", "spare", "app"),
        ("sdk=2.0.0&env=staging", "1.2.3.4", "v2", "sdk"),
    ]
    for query, client, group, rule in cases:
        status, body, _ = lbs(gw, query, client=client)
        assert status == 200, (query, client, body)
        assert (body["node_group"], body["rule"]) == (group, rule), (query, client, body)

    _, body, _ = lbs(gw, "", client="1.2.3.4")
    assert body["addresses"]["ws"] == ["ws://cn.example/ws"]
    assert body["region"] == "CN-ZJ" and body["country"] == "CN"
    _, body, _ = lbs(gw, "", client="5.6.7.8")
    assert body["region"] == "US-CA"
    # An empty group falls back to every node that serves the request, and says so.
    _, body, _ = lbs(gw, "app=spare-app", client="198.51.100.4")
    assert body["fallback"] is True and body["node_group"] == "spare"
    assert "ws://stage.example/ws" not in body["addresses"]["ws"], "env-tagged node without env"
    assert len(body["addresses"]["ws"]) == 5
    # The transport filter.
    _, body, _ = lbs(gw, "transport=tcp", client="198.51.100.4")
    assert set(body["addresses"]) == {"tcp"}
    assert sorted(body["addresses"]["tcp"]) == ["local.example:9000", "static.example:9000"]


def test_errors_and_head(lbs_gateway):
    gw = lbs_gateway
    status, body, headers = lbs(gw, method="POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    assert body["error"] == "bad_request"
    status, body, _ = lbs(gw, "transport=carrier-pigeon")
    assert status == 400 and "unknown transport" in body["reason"]
    status, body, _ = lbs(gw, "app=" + "x" * 300)
    assert status == 400 and "longer than 256 bytes" in body["reason"]
    status, body, headers = lbs(gw, method="HEAD")
    assert status == 200 and body is None
    assert int(headers["Content-Length"]) > 0
    # Without X-Forwarded-For the client is the peer itself.
    _, body, _ = lbs(gw)
    assert body["client_ip"] == "127.0.0.1"


def test_self_node_moves_down_as_sessions_load_it(lbs_gateway):
    gw = lbs_gateway

    def first():
        _, body, _ = lbs(gw, client="198.51.100.4")
        return body["addresses"]["ws"][0]

    # 0 live sessions against the static node's 3.
    assert first() == "ws://local.example/ws"

    async def main():
        sockets = [await connect(gw.ws_url(token=make_token(f"u{i}"))) for i in range(5)]
        gw.wait_for(lambda: first() == "ws://static.example/ws",
                    what="self node below the static one")
        for ws in sockets:
            await ws.close()
        gw.wait_for(lambda: first() == "ws://local.example/ws", timeout=10,
                    what="self node first again")

    run(main())


def test_bad_lbs_config_fails_the_load_with_its_location(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("""\
listeners:
  - name: edge
    bind: 127.0.0.1:0
    locations:
      - path: /v1/lbs
        protocol: lbs
        config:
          nodes: [ { name: a, addresses: { ws: [ws://a/ws] } } ]
          rules:
            networks: [ { match: [10.0.0.1/8], group: default } ]
""")
    out = subprocess.run([BIN, "-t", "-c", str(config)], capture_output=True, text=True, timeout=10)
    assert out.returncode == 1
    text = out.stdout + out.stderr
    assert "lbs" in text and "did you mean 10.0.0.0/8?" in text, text
