# SPDX-License-Identifier: Apache-2.0
"""`imgate -t`: config validation errors name file, line, column and key; exit code 1."""
import os
import subprocess

from conftest import BIN, ROOT


def check(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    out = subprocess.run([BIN, "-t", "-c", str(path)], capture_output=True, text=True, timeout=10)
    return out.returncode, out.stdout + out.stderr, str(path)


def test_shipped_configs_are_valid():
    for name in ["conf/imgate.yaml"] + [os.path.join("conf/examples", f) for f in
                                        sorted(os.listdir(os.path.join(ROOT, "conf/examples"))) if f.endswith(".yaml")]:
        out = subprocess.run([BIN, "-t", "-c", os.path.join(ROOT, name)], capture_output=True,
                             text=True, timeout=10, cwd=ROOT)
        assert out.returncode == 0, f"{name}: {out.stderr}"
        assert "test is successful" in out.stdout


def test_unknown_key_reports_location_and_suggestion(tmp_path):
    code, out, path = check(tmp_path, """\
listeners:
  - name: a
    bind: 127.0.0.1:0
    locations:
      - path: /ws
        protocol: proto.websocket
        config:
          max_mesage: 1KiB
""")
    assert code == 1
    assert f"{path}:8:11: listeners[0].locations[0].config.max_mesage" in out
    assert "max_message" in out  # the suggestion


def test_wrong_type_and_range(tmp_path):
    code, out, path = check(tmp_path, """\
sessions:
  idle_timeout: soon
  max_conns_per_user: -3
listeners:
  - name: a
    bind: 127.0.0.1:0
    locations:
      - {path: /v1/, protocol: proto.http_push, config: {api_keys: [k]}}
""")
    assert code == 1
    assert f"{path}:2:17: sessions.idle_timeout" in out
    assert f"{path}:3:23: sessions.max_conns_per_user" in out


def test_unknown_module_and_pipeline(tmp_path):
    code, out, path = check(tmp_path, """\
listeners:
  - name: a
    bind: 127.0.0.1:0
    locations:
      - {path: /ws, protocol: proto.nope}
      - {path: /x, protocol: proto.websocket, pipeline: missing}
pipelines:
  p:
    - auth.nope: {}
""")
    assert code == 1
    assert 'unknown module "proto.nope"' in out
    assert 'no pipeline named "missing"' in out
    assert 'unknown module "auth.nope"' in out


def test_module_compile_error_is_located(tmp_path):
    code, out, path = check(tmp_path, """\
listeners:
  - name: a
    bind: 127.0.0.1:0
    locations:
      - {path: /ws, protocol: proto.websocket, pipeline: p}
pipelines:
  p:
    - auth.jwt: {algorithms: [HS256]}
""")
    assert code == 1
    assert f"{path}:8:" in out and "auth.jwt" in out and "secret" in out


def test_terminal_stage_must_be_last(tmp_path):
    code, out, _ = check(tmp_path, """\
listeners:
  - name: a
    bind: 127.0.0.1:0
    locations:
      - {path: /ws, protocol: proto.websocket, pipeline: p}
pipelines:
  p:
    - echo
    - auth.jwt: {secret: abcdefghijabcdefghijabcdefghij12}
""")
    assert code == 1
    assert 'terminal stage "echo" must be last' in out


def test_yaml_syntax_error(tmp_path):
    code, out, path = check(tmp_path, "listeners: [\n  - {name: a\n")
    assert code == 1
    assert path + ":" in out


def test_missing_file(tmp_path):
    out = subprocess.run([BIN, "-t", "-c", str(tmp_path / "nope.yaml")], capture_output=True, text=True)
    assert out.returncode == 1
    assert "nope.yaml" in out.stderr


def test_describe_and_list_modules():
    out = subprocess.run([BIN, "--list-modules"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in ["proto.websocket", "proto.http_push", "auth.jwt", "echo"]:
        assert name in out.stdout
    out = subprocess.run([BIN, "--describe", "proto.websocket"], capture_output=True, text=True)
    assert out.returncode == 0 and "max_message" in out.stdout


def test_docs_config_md_matches_the_binary():
    out = subprocess.run([BIN, "--config-reference"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    with open(os.path.join(ROOT, "docs/config.md")) as f:
        assert f.read() == out.stdout, "docs/config.md is stale: run build/imgate --config-reference > docs/config.md"


def test_sdk_abi_hash_is_current():
    out = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts/abi_hash.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
