#!/usr/bin/env python3
"""Sums the JUnit XML files (gtest, pytest) and checks.txt in a results folder.

Prints the failed test names and a final "N passed, N failed" line; exits 1 on any failure or
when no test ran at all.
"""
import pathlib
import sys
import xml.etree.ElementTree as ET


def main() -> int:
    results = pathlib.Path(sys.argv[1])
    passed = failed = skipped = 0
    failures = []
    for xml in sorted(results.glob("*.xml")):
        try:
            root = ET.parse(xml).getroot()
        except ET.ParseError as e:
            failures.append(f"{xml.name}: unreadable ({e})")
            failed += 1
            continue
        for case in root.iter("testcase"):
            name = f"{case.get('classname')}.{case.get('name')}"
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
                failures.append(name)
            elif case.find("skipped") is not None or case.get("result") == "skipped":
                skipped += 1
            else:
                passed += 1
    for expected in ("unit.xml", "integration.xml"):
        if not (results / expected).exists():
            failed += 1
            failures.append(f"{expected}: suite did not run")
    fuzz = results / "checks.txt"
    if fuzz.exists():
        for line in fuzz.read_text().splitlines():
            status, name = line.split(" ", 1)
            if status == "pass":
                passed += 1
            else:
                failed += 1
                failures.append(name)
    for f in failures:
        print(f"FAILED: {f}")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
