"""Reading RFC 7240 ``Prefer`` headers for the ``wait`` preference."""

from __future__ import annotations

import pytest

from api.prefer import preferred_wait


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], None),
        (["wait=5"], 5),
        (["WAIT = 5"], 5),
        (['wait="7"'], 7),
        (["respond-async, wait=3"], 3),
        (["return=minimal", "wait=4"], 4),
        (["wait=2; foo=bar"], 2),
        (["wait=9, wait=1"], 9),  # the first occurrence counts
        (["wait=3600"], 60),  # bounded like ?wait=
        (["wait=0"], None),
        (["wait=-1"], None),
        (["wait=1.5"], None),
        (["wait=abc"], None),
        (["wait="], None),
        (["wait=²"], None),  # a digit to str.isdigit, not to delta-seconds
        (["respond-async"], None),
        (["waiting=5"], None),
    ],
)
def test_the_wait_preference(headers, expected):
    assert preferred_wait(headers, 60.0) == expected
