# SPDX-License-Identifier: Apache-2.0
"""The core's HTTP/1.1 front over raw sockets: listener limits (431, 414, 413, 408), keep-alive
and HTTP/1.0 connection handling, Expect: 100-continue, HEAD, request smuggling, pipelining."""
import json
import socket
import time

import pytest

from conftest import API_KEY
from httputil import RawHttp, request

LIMITS_CONFIG = """
workers: 2
admin:
  bind: 127.0.0.1:0
listeners:
  - name: edge
    bind: 127.0.0.1:0
    max_header_size: {max_header_size}
    max_uri: {max_uri}
    max_body: {max_body}
    header_timeout: {header_timeout}
    keepalive_timeout: {keepalive_timeout}
    locations:
      - path: /v1/
        protocol: proto.http_push
        config:
          api_keys: [{api_key}]
"""

AUTH = {"Authorization": "Bearer " + API_KEY}
JSON = {"Content-Type": "application/json", **AUTH}


def limits_config(**overrides):
    values = dict(max_header_size="1KiB", max_uri=256, max_body="1KiB", header_timeout="30s",
                  keepalive_timeout="30s", api_key=API_KEY)
    values.update(overrides)
    return LIMITS_CONFIG.format(**values)


@pytest.fixture
def gw(gateway_factory):
    return gateway_factory(limits_config())


def one(gw, data, head_request=False):
    with RawHttp(gw.port) as c:
        c.send(data)
        return c.read_response(head_request=head_request)


def push_body(user="nobody", data="x"):
    return json.dumps({"to": {"users": [user]}, "data": data}).encode()


def test_http_header_block_over_max_header_size_gets_431(gw):
    # 1 KiB limit: request line + headers + the empty line.
    ok = one(gw, request("GET", "/v1/stats", {**AUTH, "X-Pad": "a" * 700}))
    assert ok.status == 200, ok
    with RawHttp(gw.port) as c:
        c.send(request("GET", "/v1/stats", {**AUTH, "X-Pad": "a" * 1100}))
        r = c.read_response()
        assert r.status == 431, r
        assert json.loads(r.body)["error"]
        assert c.closed_within(5)
    # Many small headers add up the same way.
    many = {**AUTH, **{f"X-H{i}": "v" * 20 for i in range(60)}}
    assert one(gw, request("GET", "/v1/stats", many)).status == 431


def test_http_uri_over_max_uri_gets_414(gw):
    # Under the limit the request goes through (404 from the module: no such route).
    r = one(gw, request("GET", "/v1/" + "u" * 200, AUTH))
    assert r.status == 404, r
    with RawHttp(gw.port) as c:
        c.send(request("GET", "/v1/" + "u" * 300, AUTH))
        r = c.read_response()
        assert r.status == 414, r
        assert c.closed_within(5)
    # A long query string counts too.
    assert one(gw, request("GET", "/v1/stats?app=" + "q" * 300, AUTH)).status == 414


def test_http_body_over_max_body_gets_413(gw):
    small = push_body(data="s" * 500)
    r = one(gw, request("POST", "/v1/push", JSON, small))
    assert r.status == 200 and json.loads(r.body)["offline"] == ["nobody"], r
    big = push_body(data="b" * 2000)
    with RawHttp(gw.port) as c:
        c.send(request("POST", "/v1/push", JSON, big))
        r = c.read_response()
        assert r.status == 413, r
        assert c.closed_within(5)
    # Chunked: the limit applies to the decoded body, as soon as a chunk size shows it.
    chunked = {**JSON, "Transfer-Encoding": "chunked"}
    half = big[:900]
    body = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(half), half, len(big) - 900, big[900:])
    assert one(gw, request("POST", "/v1/push", chunked, body)).status == 413
    ok_body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(small), small)
    assert one(gw, request("POST", "/v1/push", chunked, ok_body)).status == 200


def test_http_unfinished_request_gets_408_after_header_timeout(gateway_factory):
    gw = gateway_factory(limits_config(header_timeout="1s"))
    with RawHttp(gw.port) as c:
        c.send(b"GET /v1/stats HTTP/1.1\r\nHost: x\r\n")  # no empty line: headers never end
        start = time.time()
        r = c.read_response()
        assert r.status == 408, r
        assert 0.5 <= time.time() - start < 5
        assert c.closed_within(5)
    # A body that never completes is timed out the same way.
    with RawHttp(gw.port) as c:
        c.send(request("POST", "/v1/push", {**JSON, "Content-Length": "100"}, b'{"to":'))
        r = c.read_response()
        assert r.status == 408, r
    # The same on a kept-alive connection, for its second request.
    with RawHttp(gw.port) as c:
        c.send(request("GET", "/v1/stats", AUTH))
        assert c.read_response().status == 200
        c.send(b"GET /v1/stats HTTP/1.1\r\nHost: x\r\n")
        r = c.read_response()
        assert r.status == 408, r
    # Dripping bytes does not extend the deadline: it counts from the request's first byte.
    with RawHttp(gw.port) as c:
        start = time.time()
        c.send(b"GET /v1/stats HTTP/1.1\r\n")
        for i in range(20):
            time.sleep(0.25)
            try:
                c.send(f"X-Drip-{i}: x\r\n")
            except OSError:
                break
            if c.closed_within(0.01):
                break
        assert c.buf.startswith(b"HTTP/1.1 408"), c.buf
        assert time.time() - start < 4
    # A connection that never sends a byte is closed (no answer owed) within header_timeout.
    with RawHttp(gw.port) as c:
        assert c.closed_within(5)
        assert c.buf == b""
    # A slow but steady request that finishes in time is served.
    with RawHttp(gw.port) as c:
        data = request("GET", "/v1/stats", AUTH)
        c.send(data[:10])
        time.sleep(0.4)
        c.send(data[10:])
        assert c.read_response().status == 200


def test_http_keepalive_connection_closed_after_keepalive_timeout(gateway_factory):
    gw = gateway_factory(limits_config(keepalive_timeout="1s"))
    with RawHttp(gw.port) as c:
        c.send(request("GET", "/v1/stats", AUTH))
        r = c.read_response()
        assert r.status == 200 and r.header("connection") != "close", r
        # Still open for a second request right away...
        c.send(request("GET", "/v1/stats", AUTH))
        assert c.read_response().status == 200
        # ...then closed once idle for longer than keepalive_timeout, with nothing sent.
        start = time.time()
        assert c.closed_within(5), "keep-alive connection not closed"
        assert time.time() - start >= 0.5
        assert c.buf == b""


def test_http_expect_100_continue(gw):
    body = push_body()
    with RawHttp(gw.port) as c:
        c.send(request("POST", "/v1/push", {**JSON, "Content-Length": str(len(body)),
                                            "Expect": "100-continue"}))
        interim = c.read_response()
        assert interim.status == 100 and interim.raw_head == b"HTTP/1.1 100 Continue", interim
        c.send(body)
        r = c.read_response()
        assert r.status == 200 and json.loads(r.body)["offline"] == ["nobody"], r
        # The next request on the connection gets no stray 100.
        c.send(request("GET", "/v1/stats", AUTH))
        assert c.read_response().status == 200
    # A body announced over max_body is refused at once, without 100 Continue.
    with RawHttp(gw.port) as c:
        c.send(request("POST", "/v1/push", {**JSON, "Content-Length": "5000",
                                            "Expect": "100-continue"}))
        assert c.read_response().status == 413


def test_http_head_gets_headers_and_no_body(gateway_factory):
    gw = gateway_factory(limits_config())
    admin = gw.ports["admin"]
    with RawHttp(admin) as c:
        c.send(request("GET", "/healthz"))
        get = c.read_response()
    assert get.status == 200 and get.body
    with RawHttp(admin) as c:
        # HEAD then GET pipelined: if HEAD carried a body, it would be read as the next response.
        c.send(request("HEAD", "/healthz") + request("GET", "/healthz"))
        head = c.read_response(head_request=True)
        assert head.status == 200, head
        assert head.header("content-length") == get.header("content-length")
        assert head.header("content-type") == get.header("content-type")
        nxt = c.read_response()
        assert nxt.status == 200 and nxt.body == get.body, (head, nxt, c.buf)
    # HEAD on the push API is a 405 (documented), again with no body.
    with RawHttp(gw.port) as c:
        c.send(request("HEAD", "/v1/stats", AUTH) + request("GET", "/v1/stats", AUTH))
        head = c.read_response(head_request=True)
        assert head.status == 405, head
        nxt = c.read_response()
        assert nxt.status == 200 and b"sessions" in nxt.body, (head, nxt)


def test_http_1_0_without_keepalive_closed_after_answer(gw):
    with RawHttp(gw.port) as c:
        c.send(request("GET", "/v1/stats", AUTH, version="1.0", host=None))
        r = c.read_response()
        assert r.status == 200 and b"sessions" in r.body, r
        # Closed right after the answer (keepalive_timeout is 30s here).
        assert c.closed_within(3)
    # HTTP/1.0 with Connection: keep-alive stays open for another request.
    with RawHttp(gw.port) as c:
        c.send(request("GET", "/v1/stats", {**AUTH, "Connection": "keep-alive"}, version="1.0"))
        assert c.read_response().status == 200
        c.send(request("GET", "/v1/stats", AUTH, version="1.0"))
        assert c.read_response().status == 200
        assert c.closed_within(3)


def test_http_1_1_connection_close_honoured(gw):
    with RawHttp(gw.port) as c:
        c.send(request("GET", "/v1/stats", {**AUTH, "Connection": "close"}))
        r = c.read_response()
        assert r.status == 200 and r.header("connection") == "close"
        assert c.closed_within(3)


@pytest.mark.parametrize("headers,body", [
    ({"Content-Length": "5", "Transfer-Encoding": "chunked"}, b"0\r\n\r\n"),
    ({"Transfer-Encoding": "chunked", "Content-Length": "5"}, b"0\r\n\r\n"),
    ({"Content-Length": "5", "Content-Length ": "5"}, b"0\r\n\r\n"),        # space before colon
    ({"Content-Length": "5, 6"}, b"0\r\n\r\n"),
    ({"Transfer-Encoding": "chunked, chunked"}, b"0\r\n\r\n"),
    ({"Content-Length": "+5"}, b"0\r\n\r\n"),
])
def test_http_smuggling_attempts_get_400_and_close(gw, headers, body):
    # A second request rides behind the ambiguous one; it must never be answered.
    smuggled = request("GET", "/v1/stats", AUTH)
    with RawHttp(gw.port) as c:
        c.send(request("POST", "/v1/push", {**JSON, **headers}, body) + smuggled)
        r = c.read_response()
        assert r.status == 400, r
        rest = c.read_all_until_close(5)
        assert b"HTTP/1.1" not in rest, rest


def test_http_pipelined_requests_answered_in_order(gw):
    reqs = [
        request("GET", "/v1/users/first", AUTH),
        request("POST", "/v1/push", JSON, push_body("second")),
        request("GET", "/v1/nothing-here", AUTH),
        request("GET", "/v1/users/fourth", AUTH),
        request("GET", "/v1/stats?app=fifth", AUTH),
    ]
    with RawHttp(gw.port) as c:
        c.send(b"".join(reqs))
        got = [c.read_response() for _ in reqs]
    assert [r.status for r in got] == [200, 200, 404, 200, 200], got
    assert json.loads(got[0].body)["user"] == "first"
    assert json.loads(got[1].body)["offline"] == ["second"]
    assert json.loads(got[2].body)["error"] == "not_found"
    assert json.loads(got[3].body)["user"] == "fourth"
    assert "sessions" in json.loads(got[4].body)
    # Split at every offset of a two-request pipeline: the same answers.
    data = reqs[0] + reqs[3]
    for cut in range(1, len(data), 7):
        with RawHttp(gw.port) as c:
            c.send(data[:cut])
            c.send(data[cut:])
            a, b = c.read_response(), c.read_response()
            assert json.loads(a.body)["user"] == "first" and json.loads(b.body)["user"] == "fourth"


TWO_LISTENERS = """
workers: 2
admin:
  bind: 127.0.0.1:0
listeners:
  - name: edge
    bind: 127.0.0.1:{edge}
    locations:
      - path: /v1/
        protocol: proto.http_push
        config:
          api_keys: [{api_key}]
{extra}
"""

EXTRA = """
  - name: extra
    bind: 127.0.0.1:0
    locations:
      - path: /v1/
        protocol: proto.http_push
        config:
          api_keys: [{api_key}]
""".format(api_key=API_KEY)


def _answers(port, attempts=8):
    """How many of `attempts` fresh connections get an HTTP answer (each waits at most 1s)."""
    ok = 0
    for _ in range(attempts):
        try:
            with RawHttp(port, timeout=1) as c:
                c.send(request("GET", "/v1/stats", AUTH))
                if c.read_response().status == 200:
                    ok += 1
        except (OSError, EOFError):
            pass
    return ok


def test_http_listener_removed_by_reload_refuses_connections(gateway_factory):
    gw = gateway_factory(TWO_LISTENERS.format(edge=0, api_key=API_KEY, extra=EXTRA))
    port = gw.ports["extra"]
    assert _answers(port, 1) == 1
    gw.reload(TWO_LISTENERS.format(edge=0, api_key=API_KEY, extra=""))
    assert "reload done" in gw.read_log()
    assert _answers(gw.port, 2) == 2
    # docs/operations.md: "removed ones stop accepting". A connection must be refused, not
    # queued on a socket nobody accepts from.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_http_listener_rebound_to_its_port_by_reload_serves_every_connection(gateway_factory):
    gw = gateway_factory(TWO_LISTENERS.format(edge=0, api_key=API_KEY, extra=""))
    port = gw.port
    # The same address written out: a new socket key, so a new socket on the same port.
    gw.reload(TWO_LISTENERS.format(edge=port, api_key=API_KEY, extra=""))
    assert "reload done" in gw.read_log()
    time.sleep(0.2)  # workers switch acceptors right after the log line
    assert _answers(port) == 8
