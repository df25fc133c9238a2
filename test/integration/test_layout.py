# SPDX-License-Identifier: Apache-2.0
"""The SDK boundary (STYLE.md §4.1): modules include only imgate/sdk/, modules/common/, their own
headers and system or third-party headers, never the core's internals."""
import os
import re

from conftest import ROOT

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


def test_modules_include_only_the_sdk():
    bad = []
    modules = os.path.join(ROOT, "modules")
    for folder, _, files in os.walk(modules):
        for name in files:
            if not name.endswith((".h", ".cc")):
                continue
            path = os.path.join(folder, name)
            with open(path) as f:
                for inc in INCLUDE.findall(f.read()):
                    ok = (inc.startswith("imgate/sdk/") or inc.startswith("modules/common/")
                          or os.path.exists(os.path.join(folder, inc))
                          or (inc.startswith("modules/") and not inc.startswith("modules/../")))
                    if not ok or inc.startswith("core/") or "imgate/core" in inc:
                        bad.append(f"{os.path.relpath(path, ROOT)}: {inc}")
    assert not bad, "modules include core internals:\n" + "\n".join(bad)
