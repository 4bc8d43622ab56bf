"""The status table maps every database status to a memory status and back."""

import pytest

from shared.statuses import (
    DATABASE_TO_MEMORY,
    MEMORY_TO_DATABASE,
    MemoryStatus,
    SessionStatus,
    to_database,
    to_memory,
)


def test_mapping_is_total_in_both_directions():
    assert set(DATABASE_TO_MEMORY) == set(SessionStatus)
    assert set(MEMORY_TO_DATABASE) == set(MemoryStatus)


@pytest.mark.parametrize("status", list(SessionStatus))
def test_round_trip_from_database(status):
    assert to_database(to_memory(status)) is status
    assert to_memory(status).value == status.value.lower()


@pytest.mark.parametrize("status", list(MemoryStatus))
def test_round_trip_from_memory(status):
    assert to_memory(to_database(status)) is status
    assert to_database(status.value).value == status.value.upper()


@pytest.mark.parametrize("bad", ["connected", "LOST", "", None])
def test_unknown_database_status_is_rejected(bad):
    with pytest.raises(ValueError):
        to_memory(bad)


@pytest.mark.parametrize("bad", ["CONNECTED", "lost", ""])
def test_unknown_memory_status_is_rejected(bad):
    with pytest.raises(ValueError):
        to_database(bad)
