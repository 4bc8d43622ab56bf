"""The cleanup's scratch folders: temporary profiles of shared browsers and conversions."""

from __future__ import annotations

import os
import time
from pathlib import Path

from workers.cleanup import SCRATCH_MIN_AGE, _unused_scratch
from workers.context import SHARED_BROWSERS_DIR
from workers.whatsapp.modes import CONVERSIONS_DIR


def _folder(path: Path, age: float) -> Path:
    path.mkdir(parents=True)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def test_only_old_folders_no_chromium_uses_are_scratch(tmp_path):
    old = SCRATCH_MIN_AGE + 5
    dead = _folder(tmp_path / SHARED_BROWSERS_DIR / "playwright_chromiumdev_profile-dead", old)
    used = _folder(tmp_path / SHARED_BROWSERS_DIR / "playwright_chromiumdev_profile-used", old)
    _folder(tmp_path / SHARED_BROWSERS_DIR / "playwright_chromiumdev_profile-new", 1)
    left = _folder(tmp_path / CONVERSIONS_DIR / ".restore-s1-abcd1234", old)
    _folder(tmp_path / "s1", old)  # a session's profile folder is never scratch
    assert _unused_scratch(tmp_path, {os.path.abspath(used)}) == sorted([dead, left])


def test_no_scratch_folders_means_nothing_to_remove(tmp_path):
    assert _unused_scratch(tmp_path, set()) == []
