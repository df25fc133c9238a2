# SPDX-License-Identifier: Apache-2.0
"""The browser path: headless Chromium connects with the token in a subprotocol, gets its own
message echoed and a push from the backend API."""
import json
import os
import shutil
import subprocess
import threading

import pytest

from conftest import NODE_DIR, make_token

pytestmark = pytest.mark.skipif(not shutil.which("chromium"), reason="chromium is not installed")


def test_chromium_websocket_with_token_subprotocol(gateway_factory):
    gw = gateway_factory(pipeline="echo")
    proc = subprocess.Popen(["node", os.path.join(NODE_DIR, "browser_client.js"),
                             gw.ws_url(), make_token("browser"), "2"],
                            cwd=NODE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready = proc.stdout.readline().strip()
    assert ready == "ready", ready + proc.stderr.read()
    gw.wait_for(lambda: gw.online("browser") == 1, what="browser online")
    status, body, _ = gw.push({"users": ["browser"]}, "pushed to the browser")
    assert status == 200 and body["sessions"] == 1
    out, err = proc.communicate(timeout=30)
    result = json.loads(out.strip().splitlines()[-1])
    assert result.get("protocol") == "imgate", (result, err)
    assert result["extensions"].startswith("permessage-deflate")
    assert result["messages"] == ["from the browser", "pushed to the browser"]
