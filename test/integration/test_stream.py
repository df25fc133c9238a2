# SPDX-License-Identifier: Apache-2.0
"""A `type: stream` listener: raw TCP straight to one codec (proto.lines), through a pipeline."""
import signal
import socket

from conftest import API_KEY

CONFIG = """
workers: 2
sessions: {{ idle_timeout: {idle} }}
admin: {{ bind: 127.0.0.1:0 }}
listeners:
  - name: edge
    bind: 127.0.0.1:0
    locations:
      - {{ path: /v1/, protocol: proto.http_push, config: {{ api_keys: [{key}] }} }}
  - name: lines
    type: stream
    bind: 127.0.0.1:0
    protocol: proto.lines
    config: {{ max_line: 100 }}
    pipeline: echo
pipelines:
  echo: [ echo ]
"""


def connect(gw):
    s = socket.create_connection(("127.0.0.1", gw.ports["lines"]), timeout=5)
    return s, s.makefile("rb")


def test_lines_echo_push_and_errors(gateway_factory):
    gw = gateway_factory(CONFIG.format(idle="120s", key=API_KEY))
    s, f = connect(gw)
    s.sendall(b"hello\r\nwor")
    assert f.readline() == b"hello\n"
    s.sendall(b"ld\n")
    assert f.readline() == b"world\n"
    # Sessions without auth belong to the default app: a push to "all" reaches them.
    gw.wait_for(lambda: gw.admin("GET", "/status")[1]["sessions"] == 1, what="session")
    status, body, _ = gw.push("all", "pushed")
    assert status == 200 and body["sessions"] == 1
    assert f.readline() == b"pushed\n"
    # A line over max_line closes the connection with an error line.
    s.sendall(b"x" * 200 + b"\n")
    assert f.readline() == b"error message_too_big: line longer than max_line\n"
    assert f.readline() == b""
    s.close()


def test_lines_idle_timeout_and_graceful_stop(gateway_factory):
    gw = gateway_factory(CONFIG.format(idle="1s", key=API_KEY))
    s, f = connect(gw)
    assert f.readline() == b"error timeout: idle timeout\n"
    s.close()
    s, f = connect(gw)
    s.sendall(b"ping\n")
    assert f.readline() == b"ping\n"
    gw.signal(signal.SIGQUIT)
    assert f.readline() == b"error shutdown: server shutting down\n"
    gw.proc.wait(timeout=10)
    assert gw.proc.returncode == 0
