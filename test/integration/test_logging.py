# SPDX-License-Identifier: Apache-2.0
"""Logging against the real binary: JSON lines, log.file (and its reopening at reload), the access
log of HTTP requests and session open/close, and log.level filtering."""
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import API_KEY, BIN, SECRET, Gateway, make_token
from wsutil import close_code, connect, raw_request, run

LOG_CONFIG = """
workers: 2
log:
  level: {level}
  format: {format}
  file: "{file}"
  access_log: {access_log}
admin:
  bind: 127.0.0.1:{admin_port}
listeners:
  - name: edge
    bind: 127.0.0.1:{edge_port}
    locations:
      - path: /ws
        protocol: proto.websocket
        pipeline: im
      - path: /v1/
        protocol: proto.http_push
        config:
          api_keys: [{api_key}]
pipelines:
  im:
    - auth.jwt:
        secret: {secret}
"""

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LEVELS = {"debug", "info", "notice", "warn", "error", "crit", "alert"}
ACCESS = re.compile(r"access 127\.0\.0\.1:\d+ edge (\d{3}) \d+B \d+us")


def log_config(**overrides):
    values = dict(level="info", format="text", file="", access_log="true", admin_port=0,
                  edge_port=0, api_key=API_KEY, secret=SECRET)
    values.update(overrides)
    return LOG_CONFIG.format(**values)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def messages(text):
    """The message of every line, text or JSON."""
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line).get("msg", ""))
                continue
            except ValueError:
                pass
        out.append(line)
    return out


class LogGateway(Gateway):
    """Gateway whose log may be JSON, in log.file, or filtered below notice: ports come from
    the startup lines wherever they went, or are fixed in advance (`ports`)."""

    def __init__(self, tmp_path, config_text, log_file=None, ports=None):
        super().__init__(tmp_path, config_text)
        self.log_file = log_file
        self.fixed_ports = ports

    def file_text(self):
        if not self.log_file or not os.path.exists(self.log_file):
            return ""
        with open(self.log_file, "rb") as f:
            return f.read().decode(errors="replace")

    def stderr_text(self):
        return Gateway.read_log(self)

    def read_log(self):
        return self.stderr_text() + self.file_text()

    def start(self, timeout=10):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([BIN, "-c", self.config], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"imgate exited with {self.proc.returncode}:\n"
                                     + self.read_log())
            if self.fixed_ports:
                try:
                    self.ports = dict(self.fixed_ports)
                    if self.admin("GET", "/healthz")[0] == 200:
                        return self
                except OSError:
                    pass
            else:
                msgs = "\n".join(messages(self.read_log()))
                if "started:" in msgs:
                    for m in re.finditer(r'listening on \S+ port (\d+) \(listener "([^"]+)"',
                                         msgs):
                        self.ports[m.group(2)] = int(m.group(1))
                    return self
            time.sleep(0.02)
        raise AssertionError("imgate did not start:\n" + self.read_log())

    def reload_and_wait(self, text=None):
        """SIGHUP, then waits for /status to show the outcome (works at any log level)."""
        if text is not None:
            self.write_config(text)
        before = self.admin("GET", "/status")[1]["last_reload"]
        self.signal(signal.SIGHUP)
        self.wait_for(lambda: self.admin("GET", "/status")[1]["last_reload"] != before,
                      what="reload outcome")
        return self.admin("GET", "/status")[1]


@pytest.fixture
def log_gateway(tmp_path):
    started = []

    def make(config_text, log_file=None, ports=None):
        folder = tmp_path / f"gw{len(started)}"
        folder.mkdir()
        gw = LogGateway(str(folder), config_text, log_file=log_file, ports=ports)
        started.append(gw)
        return gw.start()

    yield make
    for gw in started:
        gw.stop()
        gw.assert_clean_log()


def session_round_trip(gw, user, app=None):
    """Opens a WebSocket session, checks it is online, closes it; returns its session id."""
    async def main():
        ws = await connect(gw.ws_url(token=make_token(user, app=app)))
        q = f"?app={app}" if app else ""
        gw.wait_for(lambda: gw.http("GET", f"/v1/users/{user}{q}")[1]["online"], what="online")
        sid = gw.http("GET", f"/v1/users/{user}{q}")[1]["sessions"][0]["id"]
        await ws.close()
        gw.wait_for(lambda: not gw.http("GET", f"/v1/users/{user}{q}")[1]["online"],
                    what="offline")
        return sid
    return run(main())


def wait_for_log(gw, pattern, what):
    gw.wait_for(lambda: re.search(pattern, "\n".join(messages(gw.read_log()))), what=what)


def test_logging_json_lines(log_gateway):
    gw = log_gateway(log_config(format="json"))
    gw.http("GET", "/v1/stats")
    sid = session_round_trip(gw, "jsonuser")
    # Characters that need escaping end up in messages: a quote in a request target, and a
    # failed reload whose errors quote keys and values.
    raw_request(gw.port, b'GET /nowhere"\\x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    good = open(gw.config).read()
    status = gw.reload_and_wait(good + "bogus: 1\n")
    assert status["last_reload"]["ok"] is False
    gw.reload_and_wait(good)
    wait_for_log(gw, rf"session {sid} closed", "session close line")
    lines = gw.read_log().splitlines()
    assert len(lines) >= 8, lines
    seen_levels = set()
    for line in lines:
        obj = json.loads(line)  # every line is one JSON object, nothing else
        assert isinstance(obj, dict), line
        assert TS.match(obj["ts"]), line
        assert obj["level"] in LEVELS, line
        assert isinstance(obj["msg"], str) and obj["msg"], line
        seen_levels.add(obj["level"])
    assert {"notice", "info", "error"} <= seen_levels, seen_levels
    msgs = [json.loads(l)["msg"] for l in lines]
    assert any("started:" in m for m in msgs)
    assert any(ACCESS.search(m) for m in msgs)
    assert any(m.startswith(f"session {sid} open") and 'user "jsonuser"' in m for m in msgs)
    # Quotes inside messages survive the round trip through JSON escaping.
    assert any('unknown key "bogus"' in m for m in msgs if "reload failed" in m), msgs


def test_logging_to_file_and_reopen_on_reload(log_gateway, tmp_path):
    path = str(tmp_path / "logs" / "imgate.log")
    os.makedirs(os.path.dirname(path))
    gw = log_gateway(log_config(file=path), log_file=path)
    gw.http("GET", "/v1/stats")
    wait_for_log(gw, ACCESS.pattern, "access line in the file")
    in_file = gw.file_text()
    assert "started:" in in_file and ACCESS.search(in_file), in_file
    # Nothing goes to standard error once the file is configured.
    assert gw.stderr_text() == "", gw.stderr_text()
    # Rotation: move the file away, reload, and new lines go to a fresh file at the same path.
    rotated = path + ".1"
    os.rename(path, rotated)
    status = gw.reload_and_wait()
    assert status["last_reload"]["ok"] is True
    gw.http("GET", "/v1/stats?app=after-rotation")
    gw.wait_for(lambda: os.path.exists(path) and ACCESS.search(gw.file_text()),
                what="access line in the reopened file")
    with open(rotated) as f:
        old = f.read()
    assert "reloading configuration" in old
    assert "reload done" in gw.file_text()
    assert gw.stderr_text() == ""


def test_logging_unwritable_log_file_refuses_reload_and_start(log_gateway, tmp_path):
    gw = log_gateway(log_config())
    bad = log_config(file=str(tmp_path / "no-such-dir" / "x.log"))
    status = gw.reload_and_wait(bad)
    assert status["last_reload"]["ok"] is False
    assert any("log.file" in e for e in status["last_reload"]["errors"]), status
    assert gw.http("GET", "/v1/stats")[0] == 200
    out = subprocess.run([BIN, "-c", gw.config], capture_output=True, text=True, timeout=10)
    assert out.returncode == 1 and "no-such-dir" in out.stderr, out.stderr


def test_logging_access_log_on(log_gateway):
    gw = log_gateway(log_config(access_log="true"))
    before = len(ACCESS.findall(gw.read_log()))
    assert gw.http("GET", "/v1/stats")[0] == 200
    assert gw.http("GET", "/v1/stats", api_key="wrong")[0] == 401
    wait_for_log(gw, r"edge 401 ", "401 access line")
    statuses = [m.group(1) for m in ACCESS.finditer(gw.read_log())][before:]
    assert statuses == ["200", "401"], statuses
    sid = session_round_trip(gw, "acc", app="shop")
    wait_for_log(gw, rf"session {sid} closed", "close line")
    msgs = messages(gw.read_log())
    opened = [m for m in msgs if f"session {sid} open" in m]
    assert len(opened) == 1, msgs
    assert 'user "acc"' in opened[0] and 'app "shop"' in opened[0]
    assert "proto.websocket" in opened[0] and "peer 127.0.0.1:" in opened[0]
    closed = [m for m in msgs if f"session {sid} closed" in m]
    assert len(closed) == 1 and 'user "acc"' in closed[0], msgs
    # The upgrade itself is an HTTP request too: one 101 line.
    assert sum(1 for m in msgs if ACCESS.search(m) and " edge 101 " in m) == 1


def test_logging_session_close_reason_is_logged(log_gateway):
    gw = log_gateway(log_config())

    async def main():
        ws = await connect(gw.ws_url(token=make_token("kickme")))
        gw.wait_for(lambda: gw.http("GET", "/v1/users/kickme")[1]["online"], what="online")
        gw.http("DELETE", "/v1/users/kickme/sessions")
        assert await close_code(ws) == 4010
    run(main())
    wait_for_log(gw, r'session \d+ closed kicked app "default" user "kickme"', "kicked close line")


def test_logging_one_access_line_per_request(log_gateway):
    gw = log_gateway(log_config())
    raw_request(gw.port, b"GET /no-location HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    gw.http("GET", "/v1/stats")
    wait_for_log(gw, r"edge 200 ", "200 access line")
    access = [m for m in messages(gw.read_log()) if " access " in m]
    assert len(access) == 2, access
    assert ACCESS.search(access[0]) and ACCESS.search(access[0]).group(1) == "404", access


def test_logging_session_close_line_has_app(log_gateway):
    gw = log_gateway(log_config())
    sid = session_round_trip(gw, "appclose", app="shop")
    wait_for_log(gw, rf"session {sid} closed", "close line")
    closed = [m for m in messages(gw.read_log()) if f"session {sid} closed" in m]
    assert 'app "shop"' in closed[0], closed


def test_logging_access_log_off(log_gateway):
    gw = log_gateway(log_config(access_log="false"))
    assert gw.http("GET", "/v1/stats")[0] == 200
    raw_request(gw.port, b"GET /no-location HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    sid = session_round_trip(gw, "quiet")
    # Something after them is logged (a reload), so the absence is not a race with the writes.
    gw.reload_and_wait()
    wait_for_log(gw, "reload done", "reload line")
    text = gw.read_log()
    assert "access " not in text, text
    assert f"session {sid}" not in text, text
    assert "started:" in text
    # Turned on by reload, it applies to the next request.
    gw.reload_and_wait(log_config(access_log="true"))
    gw.http("GET", "/v1/stats")
    wait_for_log(gw, ACCESS.pattern, "access line after reload")


def test_logging_level_warn_hides_info_and_notice(log_gateway):
    ports = {"edge": free_port(), "admin": free_port()}
    gw = log_gateway(log_config(level="warn", edge_port=ports["edge"],
                                admin_port=ports["admin"]), ports=ports)
    gw.http("GET", "/v1/stats")
    session_round_trip(gw, "warned")
    good = open(gw.config).read()
    # An error is still written.
    status = gw.reload_and_wait(good + "bogus: 1\n")
    assert status["last_reload"]["ok"] is False
    gw.wait_for(lambda: "[error]" in gw.read_log(), what="error line")
    text = gw.read_log()
    for line in text.splitlines():
        assert re.search(r"\[(warn|error|crit|alert)\]", line), line
    assert "access " not in text and "listening on" not in text and "started:" not in text
    # Back to info by reload: info lines appear again.
    status = gw.reload_and_wait(good.replace("level: warn", "level: info"))
    assert status["last_reload"]["ok"] is True, status
    gw.http("GET", "/v1/stats")
    wait_for_log(gw, ACCESS.pattern, "access line at info")
    assert "[info]" in gw.read_log()
