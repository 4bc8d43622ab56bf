"""The Chromium switches of the browser runtime keep Playwright's own disabled features.

Chromium honours only the last ``--disable-features`` switch, and ours comes after
Playwright's: a feature Playwright disables but our list forgets would silently come back.
The installed driver's bundle is the reference, so a Playwright upgrade that changes its
list fails here instead of changing the browsers quietly.
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright._impl._driver import compute_driver_executable

from workers.browser.runtime import CHROMIUM_ARGS, DISABLED_FEATURES, PLAYWRIGHT_DISABLED_FEATURES


def playwright_disabled_features() -> list[str]:
    """The feature names of ``disabledFeatures = [...]`` in the installed Playwright driver."""
    lib = Path(compute_driver_executable()[1]).parent / "lib"
    for path in (lib / "coreBundle.js", lib / "server" / "chromium" / "chromiumSwitches.js"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            found = re.search(r"disabledFeatures = \[(.*?)\]", text, re.S)
            if found:
                without_comments = re.sub(r"//[^\n]*", "", found.group(1))
                return re.findall(r'"([A-Za-z0-9_]+)"', without_comments)
    raise AssertionError(f"no disabledFeatures list found in the Playwright driver under {lib}")


def test_our_list_repeats_playwrights_own():
    theirs = playwright_disabled_features()
    assert theirs, "the driver's list was read empty"
    assert sorted(PLAYWRIGHT_DISABLED_FEATURES) == sorted(theirs)


def test_one_disable_features_switch_with_both_lists():
    switches = [arg for arg in CHROMIUM_ARGS if arg.startswith("--disable-features=")]
    assert len(switches) == 1
    features = switches[0].split("=", 1)[1].split(",")
    assert set(features) == set(PLAYWRIGHT_DISABLED_FEATURES) | set(DISABLED_FEATURES)
    assert "WebUIOmniboxPopup" in features
