"""Finding Chromium browser processes by their command line (``workers.browser.runtime``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from workers.browser.runtime import browser_processes

# Forks once, then both processes sleep: the child keeps the parent's command line, like a
# child Chromium forked and not yet exec'd.
FORKS = "import os, sys, time; os.fork(); sys.stdout.write('up\\n'); sys.stdout.flush(); time.sleep(30)"


def test_a_forked_child_with_the_same_command_line_is_not_a_second_browser(tmp_path):
    folder = str(tmp_path / "profile")
    proc = subprocess.Popen(
        [sys.executable, "-c", FORKS, f"--user-data-dir={folder}"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # both processes in one group, ended together below
    )
    try:
        assert proc.stdout.readline() == "up\n" and proc.stdout.readline() == "up\n"
        deadline = time.monotonic() + 5
        mine = {}
        while time.monotonic() < deadline:  # /proc shows the child's command line once it is up
            mine = {pid: f for pid, f in browser_processes().items() if f == folder}
            if mine:
                break
            time.sleep(0.05)
        assert mine == {proc.pid: folder}
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
