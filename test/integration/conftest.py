# SPDX-License-Identifier: Apache-2.0
"""Integration test harness: runs the real imgate binary (nginx-tests style).

Each test writes its YAML into a temp folder, starts imgate with every listener on port 0, reads
the bound ports from the startup log, drives it with real clients, and at teardown asserts the
log holds no [alert]/[crit] line and no sanitizer report.
"""
import base64
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import subprocess
import textwrap
import time
import urllib.error
import urllib.request

import pytest

ROOT = os.environ.get("IMGATE_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
BIN = os.environ.get("IMGATE_BIN", os.path.join(ROOT, "build", "imgate"))
# Example module .so files built in tree (modules/examples/*), next to the binary.
EXAMPLES = os.path.join(os.path.dirname(BIN), "modules", "examples")
NODE_DIR = os.path.dirname(os.path.abspath(__file__))
SECRET = "integration-test-secret-0123456789abcdef"
API_KEY = "test-api-key"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(sub, secret=SECRET, alg="HS256", exp_in=3600, nbf_in=None, app=None, extra=None):
    header = {"alg": alg, "typ": "JWT"}
    now = int(time.time())
    payload = {"sub": sub, "iat": now}
    if exp_in is not None:
        payload["exp"] = now + exp_in
    if nbf_in is not None:
        payload["nbf"] = now + nbf_in
    if app is not None:
        payload["app"] = app
    payload.update(extra or {})
    signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}.get(alg)
    if digest is None:
        return signing + "."
    sig = hmac.new(secret.encode(), signing.encode(), digest).digest()
    return signing + "." + b64url(sig)


DEFAULT_CONFIG = """
workers: 2
log:
  level: info
sessions:
  idle_timeout: {idle_timeout}
  max_conns_per_user: {max_conns_per_user}
admin:
  bind: 127.0.0.1:0
listeners:
  - name: edge
    bind: 127.0.0.1:0
    locations:
      - path: /ws
        protocol: proto.websocket
        pipeline: {pipeline}
        config:
          max_message: {max_message}
          subprotocols: [imgate]
      - path: /v1/
        protocol: proto.http_push
        config:
          api_keys: [{api_key}]
pipelines:
  im:
    - auth.jwt:
        secret: {secret}
  echo:
    - auth.jwt:
        secret: {secret}
    - echo
"""


class Gateway:
    def __init__(self, tmp_path, config_text):
        self.dir = tmp_path
        self.config = os.path.join(tmp_path, "imgate.yaml")
        self.log_path = os.path.join(tmp_path, "imgate.log")
        self.write_config(config_text)
        self.proc = None
        self.ports = {}

    def write_config(self, text):
        with open(self.config, "w") as f:
            f.write(textwrap.dedent(text))

    def start(self, timeout=10):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([BIN, "-c", self.config], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = self.read_log()
            if "started:" in text:
                for m in re.finditer(r'listening on \S+ port (\d+) \(listener "([^"]+)"', text):
                    self.ports[m.group(2)] = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"imgate exited with {self.proc.returncode}:\n{text}")
            time.sleep(0.02)
        raise AssertionError("imgate did not start:\n" + self.read_log())

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    @property
    def port(self):
        return self.ports["edge"]

    def ws_url(self, path="/ws", token=None, query=""):
        q = []
        if token is not None:
            q.append("token=" + token)
        if query:
            q.append(query)
        return f"ws://127.0.0.1:{self.port}{path}" + ("?" + "&".join(q) if q else "")

    def http(self, method, path, body=None, headers=None, port=None, api_key=API_KEY):
        url = f"http://127.0.0.1:{port or self.port}{path}"
        data = None
        h = {}
        if api_key:
            h["Authorization"] = "Bearer " + api_key
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        req = urllib.request.Request(url, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
                return resp.status, (json.loads(raw) if raw and resp.headers.get_content_type() == "application/json" else raw), resp.headers
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw), e.headers
            except ValueError:
                return e.code, raw, e.headers

    def push(self, to, data, **extra):
        body = {"to": to, "data": data}
        body.update(extra)
        return self.http("POST", "/v1/push", body)

    def admin(self, method, path):
        return self.http(method, path, port=self.ports["admin"], api_key=None)

    def wait_for(self, predicate, timeout=5, what="condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}")

    def online(self, user):
        status, body, _ = self.http("GET", f"/v1/users/{user}")
        assert status == 200
        return len(body["sessions"])

    def signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self, text=None):
        if text is not None:
            self.write_config(text)
        before = self.read_log().count("reload done") + self.read_log().count("reload failed,")
        self.signal(signal.SIGHUP)
        self.wait_for(lambda: self.read_log().count("reload done") + self.read_log().count("reload failed,") > before,
                      what="reload outcome")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()

    def assert_clean_log(self):
        text = self.read_log()
        bad = [l for l in text.splitlines()
               if "[alert]" in l or "[crit]" in l or "Sanitizer" in l or "runtime error:" in l]
        assert not bad, "log has alerts or sanitizer reports:\n" + "\n".join(bad)


def render(**overrides):
    values = dict(idle_timeout="120s", max_conns_per_user=8, pipeline="im", max_message="64KiB",
                  api_key=API_KEY, secret=SECRET)
    values.update(overrides)
    return DEFAULT_CONFIG.format(**values)


@pytest.fixture
def gateway_factory(tmp_path):
    started = []

    def make(config_text=None, files=None, **overrides):
        folder = tmp_path / f"gw{len(started)}"
        folder.mkdir()
        for name, text in (files or {}).items():  # files the config refers to
            (folder / name).write_text(text)
        gw = Gateway(str(folder), config_text or render(**overrides))
        started.append(gw)
        return gw.start()

    yield make
    for gw in started:
        gw.stop()
        gw.assert_clean_log()


@pytest.fixture
def gateway(gateway_factory):
    return gateway_factory()


def node(script, *args, timeout=30):
    """Runs a Node script from this folder (with its node_modules) and returns parsed JSON output."""
    out = subprocess.run(["node", os.path.join(NODE_DIR, script), *map(str, args)], cwd=NODE_DIR,
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"node {script} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    return json.loads(out.stdout.strip().splitlines()[-1])
