# SPDX-License-Identifier: Apache-2.0
"""example.content_filter in a real pipeline: masking, rejecting, and a reload that swaps the word
list for sessions that are already open."""
import asyncio
import json
import os

from conftest import EXAMPLES, SECRET, make_token
from wsutil import connect, run

# The example is not built in: it is loaded from the .so the build makes in tree.
CONFIG = """
workers: 2
modules:
  load: [ "{so}" ]
admin: {{ bind: 127.0.0.1:0 }}
listeners:
  - name: edge
    bind: 127.0.0.1:0
    locations:
      - {{ path: /ws, protocol: proto.websocket, pipeline: chat }}
pipelines:
  chat:
    - auth.jwt: {{ secret: {secret} }}
    - example.content_filter: {{ words_file: words.txt, action: {action} }}
    - echo
"""
FILTER_SO = os.path.join(EXAMPLES, "content_filter", "example_content_filter.so")


def test_mask_then_reload_with_a_new_list(gateway_factory, tmp_path):
    gw = gateway_factory(CONFIG.format(secret=SECRET, action="mask", so=FILTER_SO), files={"words.txt": "spam\n"})
    words = os.path.join(gw.dir, "words.txt")

    async def main():
        ws = await connect(gw.ws_url(token=make_token("f1")))
        await ws.send("this is SPAM")
        assert await asyncio.wait_for(ws.recv(), 5) == "this is ****"
        with open(words, "w") as f:
            f.write("eggs\n")
        await asyncio.to_thread(gw.reload, CONFIG.format(secret=SECRET, action="reject", so=FILTER_SO))
        assert "reload done" in gw.read_log()
        await ws.send("spam and eggs")
        err = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert err["type"] == "error" and err["error"] == "permission_denied"
        await ws.send("spam only")
        assert await asyncio.wait_for(ws.recv(), 5) == "spam only"
        await ws.close()
    run(main())
