"""Resident memory of this worker's Chromium trees, read from ``/proc``.

A browser process of this worker is one whose ``--user-data-dir`` lies under the
worker's sessions folder (several workers may share a machine); its renderers, GPU and
utility processes are its descendants. Their ``VmRSS`` is summed. Shared pages are
counted in each process, so the figure overstates a little - what the kernel would
reclaim if the tree died is smaller - but it grows with the same things and is cheap.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from workers.browser.runtime import browser_processes, proc_files, stat_fields


def _parents() -> dict[int, int]:
    """pid → parent pid of every process (from ``/proc/<pid>/stat``)."""
    parents: dict[int, int] = {}
    for pid, raw in proc_files("stat"):
        fields = stat_fields(raw)
        if len(fields) > 1:
            parents[pid] = int(fields[1])
    return parents


def descendants(roots: Iterable[int]) -> set[int]:
    """``roots`` and every process below them."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    tree: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.add(pid)
            todo.extend(children.get(pid, ()))
    return tree


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024  # reported in kB
    except (OSError, ValueError):
        pass  # the process ended while being read
    return 0


def chromium_memory(sessions_dir: str) -> dict[str, int]:
    """Resident bytes and browser count of the Chromium trees with profiles under ``sessions_dir``."""
    root = Path(sessions_dir).resolve()
    browsers = [
        pid for pid, folder in browser_processes().items() if Path(folder).resolve().is_relative_to(root)
    ]
    if not browsers:
        return {"rss_bytes": 0, "browsers": 0}
    return {"rss_bytes": sum(_rss_bytes(pid) for pid in descendants(browsers)), "browsers": len(browsers)}
