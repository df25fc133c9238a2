# SPDX-License-Identifier: Apache-2.0
"""Third-party modules end to end (issue 7): the SDK installed with `meson install`, both example
modules built out of tree against it with their three-line meson projects, loaded by
`modules.load`, exercised with real clients, then reloaded with a changed word list, a replaced
.so and with a module removed, without dropping the sessions of the other modules. Also the
loader's errors as a user sees them (`imgate -t`, a failed reload)."""
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess

import pytest

from conftest import BIN, EXAMPLES, ROOT, SECRET, make_token
from wsutil import connect, run

BUILD = os.path.dirname(BIN)


@pytest.fixture(scope="module")
def sdk(tmp_path_factory):
    """The SDK as `meson install --tags devel` lays it out, under a DESTDIR."""
    dest = tmp_path_factory.mktemp("sdk")
    subprocess.run(["meson", "install", "-C", BUILD, "--no-rebuild", "--tags", "devel",
                    "--destdir", str(dest)], check=True, capture_output=True)
    pcs = [os.path.join(d, f) for d, _, files in os.walk(dest) for f in files
           if f == "imgate-sdk.pc"]
    assert len(pcs) == 1, pcs
    headers = [f for _, _, files in os.walk(dest) for f in files if f.endswith(".h")]
    assert "module.h" in headers and "codec.h" in headers and "abi_hash.h" in headers
    return os.path.dirname(pcs[0])


def build_out_of_tree(sdk_pc_dir, example, workdir):
    """Copies modules/examples/<example> (sources + out_of_tree/meson.build) and builds it the way
    docs/modules.md tells a module author to."""
    src = os.path.join(workdir, example)
    shutil.copytree(os.path.join(ROOT, "modules", "examples", example), src)
    env = dict(os.environ, PKG_CONFIG_PATH=sdk_pc_dir)
    out = os.path.join(workdir, example + "-build")
    for cmd in (["meson", "setup", out, os.path.join(src, "out_of_tree")], ["ninja", "-C", out]):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}"
    sos = [f for f in os.listdir(out) if f.endswith(".so")]
    assert sos == [f"example_{example}.so"], sos
    return os.path.join(out, sos[0])


@pytest.fixture(scope="module")
def out_of_tree(sdk, tmp_path_factory):
    work = tmp_path_factory.mktemp("modules")
    return {name: build_out_of_tree(sdk, name, str(work)) for name in ("content_filter", "ndjson")}


CONFIG = """
workers: 2
admin: {{ bind: 127.0.0.1:0 }}
modules:
  load: [ {load} ]
listeners:
  - name: edge
    bind: 127.0.0.1:0
    locations:
      - {{ path: /ws, protocol: proto.websocket, pipeline: {ws_pipeline} }}
  - name: nd
    type: stream
    bind: 127.0.0.1:0
    protocol: example.ndjson
    pipeline: plain
pipelines:{filtered}
  plain:
    - auth.jwt: {{ secret: {secret} }}
    - echo
"""


def config(filter_so, ndjson_so, filtered=True):
    load = ", ".join(f'"{p}"' for p in ([filter_so] if filtered else []) + [ndjson_so])
    pipeline = f"""
  filtered:
    - auth.jwt: {{ secret: {SECRET} }}
    - example.content_filter: {{ words_file: words.txt, action: mask }}
    - echo""" if filtered else ""
    return CONFIG.format(load=load, ws_pipeline="filtered" if filtered else "plain", secret=SECRET,
                         filtered=pipeline)


class NdjsonClient:
    """A raw-socket client of example.ndjson (its README documents the lines)."""

    def __init__(self, port, user):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        self.send({"type": "hello", "token": make_token(user), "device": "nc"})
        welcome = self.recv()
        assert welcome["type"] == "welcome" and welcome["user"] == user, welcome

    def send(self, obj):
        self.sock.sendall(json.dumps(obj).encode() + b"\n")

    def recv(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def echo(self, data):
        self.send({"type": "message", "event": "chat", "data": data})
        reply = self.recv()
        assert reply["type"] == "message", reply
        return reply["data"]


def copies_mapped(gw, so_name):
    """Distinct private copies of a module .so mapped in the gateway (one memfd per load)."""
    with open(f"/proc/{gw.proc.pid}/maps") as f:
        return len({line.split()[4] for line in f if f"/memfd:imgate-module:{so_name} " in line})


def test_out_of_tree_modules_load_reload_replace_remove(gateway_factory, out_of_tree):
    filter_so, ndjson_so = out_of_tree["content_filter"], out_of_tree["ndjson"]
    gw = gateway_factory(config(filter_so, ndjson_so), files={"words.txt": "spam\n"})
    words = os.path.join(gw.dir, "words.txt")
    assert copies_mapped(gw, "example_content_filter.so") == 1
    assert copies_mapped(gw, "example_ndjson.so") == 1

    nd = NdjsonClient(gw.ports["nd"], "nina")
    assert nd.echo({"n": 1}) == {"n": 1}

    async def main():
        ws = await connect(gw.ws_url(token=make_token("walt")))

        async def echo(text):
            await ws.send(text)
            return await asyncio.wait_for(ws.recv(), 5)

        assert await echo("no SPAM here") == "no **** here"

        # 1. A changed word list, picked up by reload, applies to the open session.
        with open(words, "w") as f:
            f.write("eggs\n")
        await asyncio.to_thread(gw.reload)
        assert await echo("spam and eggs") == "spam and ****"
        assert nd.echo("still here") == "still here"

        # 2. The .so replaced on disk (a new build installed over it): the reload loads the new
        #    file as a second copy; the old copy goes once the sessions moved off it.
        tmp = filter_so + ".new"
        shutil.copy(filter_so, tmp)
        os.replace(tmp, filter_so)
        await asyncio.to_thread(gw.reload)
        assert await echo("eggs") == "****"  # the session migrated to the new copy
        gw.wait_for(lambda: copies_mapped(gw, "example_content_filter.so") == 1,
                    what="the replaced copy to be unloaded")
        assert copies_mapped(gw, "example_ndjson.so") == 1  # unchanged file: same copy kept

        # 3. The filter removed from config and from modules.load: the WebSocket session stays,
        #    now unfiltered; the NDJSON session never noticed; the .so is unmapped.
        await asyncio.to_thread(gw.reload, config(filter_so, ndjson_so, filtered=False))
        assert await echo("spam and eggs") == "spam and eggs"
        gw.wait_for(lambda: copies_mapped(gw, "example_content_filter.so") == 0,
                    what="the removed module to be unloaded")
        assert nd.echo([1, 2]) == [1, 2]
        await ws.close()

    run(main())
    log = gw.read_log()
    assert log.count("reload done") == 3, log
    assert "reload failed" not in log


def test_in_tree_examples_are_the_same_modules():
    """The in-tree build makes the same two .so files (what the other integration tests load)."""
    for example in ("content_filter", "ndjson"):
        so = os.path.join(EXAMPLES, example, f"example_{example}.so")
        out = subprocess.run([BIN, "--describe", so], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith(f"example.{example} ("), out.stdout


def check(tmp_path, text):
    path = tmp_path / "imgate.yaml"
    path.write_text(text)
    r = subprocess.run([BIN, "-t", "-c", str(path)], capture_output=True, text=True)
    return r.returncode, r.stderr


LOAD_ONLY = """
modules:
  load:
    - {path}
listeners:
  - name: edge
    bind: 127.0.0.1:0
    locations:
      - {{ path: /ws, protocol: proto.websocket{pipeline} }}
"""


def test_loader_errors_name_the_config_location(tmp_path):
    cases = {
        "missing.so": r'modules\.load\[0\]: cannot load module ".*/missing\.so": No such file',
        "not_elf.so": r'modules\.load\[0\]: cannot load module ".*/not_elf\.so": .*(ELF|too short)',
    }
    (tmp_path / "not_elf.so").write_text("this is not a shared object\n")
    for name, pattern in cases.items():
        rc, err = check(tmp_path, LOAD_ONLY.format(pipeline="", path=name))
        assert rc == 1, err
        assert re.search(r"imgate\.yaml:4:7: " + pattern, err), err
    modules_dir = os.path.join(BUILD, "test", "modules")
    rc, err = check(tmp_path, LOAD_ONLY.format(pipeline="", path=os.path.join(modules_dir, "wrong_signature.so")))
    assert rc == 1 and "is not binary compatible" in err, err
    rc, err = check(tmp_path, LOAD_ONLY.format(pipeline="", path=os.path.join(modules_dir, "no_entry.so")))
    assert rc == 1 and "does not export imgate_module_entry_v1" in err, err
    rc, err = check(tmp_path, LOAD_ONLY.format(pipeline="", path=os.path.join(modules_dir, "duplicate_name.so")))
    assert rc == 1 and 'duplicate module name "echo"' in err, err
    good = os.path.join(modules_dir, "good.so")
    rc, err = check(tmp_path, LOAD_ONLY.replace("    - {path}", "    - {path}\n    - {path}")
                    .format(path=good, pipeline=""))
    assert rc == 1 and "is listed twice" in err, err
    throws = os.path.join(modules_dir, "throws_in_compile.so")
    text = LOAD_ONLY.format(path=throws, pipeline=", pipeline: p")
    rc, err = check(tmp_path, text + "pipelines:\n  p: [ test.throws_in_compile ]\n")
    assert rc == 1 and "test.throws_in_compile: compile() threw" in err, err
    rc, err = check(tmp_path, LOAD_ONLY.format(pipeline="", path=good))
    assert rc == 0, err


def test_bad_module_on_reload_keeps_the_running_config(gateway_factory):
    gw = gateway_factory(LOAD_ONLY.format(pipeline="", path=os.path.join(EXAMPLES, "ndjson", "example_ndjson.so"))
                         + "admin: { bind: 127.0.0.1:0 }\n")

    async def main():
        ws = await connect(gw.ws_url())
        await asyncio.to_thread(gw.reload, LOAD_ONLY.format(pipeline="", path="gone.so")
                                + "admin: { bind: 127.0.0.1:0 }\n")
        assert 'cannot load module' in gw.read_log()
        assert "reload failed" in gw.read_log()
        await ws.ping()
        await ws.close()

    run(main())
    assert copies_mapped(gw, "example_ndjson.so") == 1


def test_the_tutorial_in_docs_modules_md_works(sdk, gateway_factory, tmp_path):
    """Builds the files of docs/modules.md's "first module" exactly as printed there, loads the
    .so and talks to it: the guide cannot rot."""
    with open(os.path.join(ROOT, "docs", "modules.md")) as f:
        doc = f.read()
    blocks = dict(re.findall(r"```\w+ file=(\S+)\n(.*?)```", doc, re.S))
    assert set(blocks) == {"shout.cc", "meson.build"}, blocks.keys()
    src = tmp_path / "shout"
    src.mkdir()
    for name, text in blocks.items():
        (src / name).write_text(text)
    env = dict(os.environ, PKG_CONFIG_PATH=sdk)
    for cmd in (["meson", "setup", "build"], ["ninja", "-C", "build"]):
        r = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True)
        assert r.returncode == 0, f"{cmd} failed:\n{r.stdout}\n{r.stderr}"
    so = str(src / "build" / "acme_shout.so")
    described = subprocess.run([BIN, "--describe", so], capture_output=True, text=True)
    assert described.stdout.startswith("acme.shout (stage): upper-cases text messages"), described
    yaml = re.search(r"```yaml\n(modules:\n  load: \[ build/acme_shout.so \].*?)```", doc, re.S)
    assert yaml, "the tutorial's config block is missing"
    text = yaml.group(1).replace("build/acme_shout.so", so).replace("127.0.0.1:8080", "127.0.0.1:0")
    gw = gateway_factory(text)

    async def main():
        ws = await connect(gw.ws_url())
        await ws.send("hello")
        assert await asyncio.wait_for(ws.recv(), 5) == "> HELLO"
        await ws.close()

    run(main())
