"""A leftover browser counts as gone only when its whole process group is.

A renderer or utility process can outlive its browser for a moment and write into the
profile folder after the cleanup removed it. Here a stand-in "browser" (a Python
process with a ``--user-data-dir`` argument, leading its own group) has a child that
ignores SIGTERM, as a busy child would for a while.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from workers.cleanup import _group_runs, kill_browser

CHILD = "import signal, time; signal.signal(signal.SIGTERM, lambda *_: None); time.sleep(60)"
LEADER = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {CHILD!r}]); time.sleep(60)"


def group_size(pgid: int) -> int:
    found = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout.split()
    return len(found)


def test_the_kill_waits_for_the_whole_group(tmp_path: Path) -> None:
    folder = tmp_path / "profile"
    folder.mkdir()
    command = [sys.executable, "-c", LEADER, f"--user-data-dir={folder}"]
    leader = subprocess.Popen(command, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while group_size(leader.pid) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert group_size(leader.pid) == 2, "the child did not start"
        time.sleep(0.5)  # the child has set its SIGTERM handler by now
        assert kill_browser(leader.pid, str(folder), grace=0.5)
        assert not _group_runs(leader.pid), "a process of the browser's group still runs"
    finally:
        subprocess.run(["pkill", "-KILL", "-g", str(leader.pid)], check=False)
        leader.wait(10)
