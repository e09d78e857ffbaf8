"""`make report-check`: render a report in headless Chromium, save a PNG screenshot, and check that
the page logged no console error and that its charts have a non-zero size.

Usage: report_check.py REPORT.html SCREENSHOT.png
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
]


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("report-check: no Chromium (apt-get install chromium)")


def run(args, profile):
    return subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120,
    )


def main():
    report, png = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    url = "file://" + report
    failures = []
    with tempfile.TemporaryDirectory() as profile:
        dom = run(["--virtual-time-budget=3000", "--window-size=1200,900", "--dump-dom", url], profile)
        errors = [
            line for line in dom.stderr.splitlines()
            if "CONSOLE" in line and re.search(r"error|uncaught", line, re.I)
        ]
        if errors:
            failures.append("console errors:\n  " + "\n  ".join(errors))
        sizes = dict(re.findall(r'<svg id="(chart-[a-z]+)"[^>]*data-rendered-size="(\d+x\d+)"', dom.stdout))
        if not sizes:
            failures.append("no chart reported its size (did the page's script run?)")
        for chart, size in sizes.items():
            w, h = (int(x) for x in size.split("x"))
            if w == 0 or h == 0:
                failures.append(f"{chart} has size {size}")
        shot = run(["--window-size=1200,2200", f"--screenshot={png}", url], profile)
        if not os.path.exists(png) or os.path.getsize(png) == 0:
            failures.append(f"no screenshot: {shot.stderr[-500:]}")
    for chart, size in sizes.items():
        print(f"{chart}: {size}")
    if failures:
        print("report-check FAILED:\n" + "\n".join(failures))
        sys.exit(1)
    print(f"report-check: no console errors, {len(sizes)} charts drawn, screenshot {png}")


if __name__ == "__main__":
    main()
