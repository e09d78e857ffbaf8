#!/usr/bin/env python3
"""Prints `--test NAME` for every test target of the workspace but those named on the command line,
so `make test` can run the long suites beside the rest and a new test target is never left out."""

import json
import subprocess
import sys


def main() -> int:
    left_out = set(sys.argv[1:])
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--no-deps", "--format-version", "1", "--locked"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    names = sorted(
        t["name"]
        for p in meta["packages"]
        for t in p["targets"]
        if "test" in t["kind"] and t["name"] not in left_out
    )
    unknown = left_out - {
        t["name"] for p in meta["packages"] for t in p["targets"] if "test" in t["kind"]
    }
    if unknown:
        print(f"no test target named {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    print(" ".join(f"--test {n}" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
