"""The retry schedule doubles each wait, spans the window, and ends in the dead-letter list."""

import random

import pytest

from shared.webhooks.backoff import next_delay, retry_delays

DAY = 86400.0


def test_default_schedule_spans_about_a_day():
    delays = retry_delays(15, DAY)
    assert len(delays) == 14
    assert sum(delays) == pytest.approx(DAY)
    pairs = list(zip(delays, delays[1:], strict=False))
    assert all(later > earlier for earlier, later in pairs)
    assert all(later == pytest.approx(2 * earlier) for earlier, later in pairs)
    assert 4 < delays[0] < 6
    assert delays[-1] == pytest.approx(DAY / 2, rel=1e-3)


@pytest.mark.parametrize("attempts, window", [(2, 60.0), (3, 70.0), (8, 3600.0), (20, 7 * DAY)])
def test_schedule_sums_to_window(attempts, window):
    delays = retry_delays(attempts, window)
    assert len(delays) == attempts - 1
    assert sum(delays) == pytest.approx(window)


def test_single_attempt_has_no_retries():
    assert retry_delays(1, DAY) == []
    assert next_delay(1, 1, DAY) is None


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError):
        retry_delays(0, DAY)
    with pytest.raises(ValueError):
        retry_delays(5, 0)
    with pytest.raises(ValueError):
        next_delay(0, 15, DAY)


def test_jitter_is_bounded_and_actually_varies():
    nominal = retry_delays(15, DAY)
    rng = random.Random(42)
    for attempt in range(1, 15):
        samples = [next_delay(attempt, 15, DAY, rng) for _ in range(200)]
        base = nominal[attempt - 1]
        assert all(0.8 * base <= sample <= 1.2 * base for sample in samples)
        assert max(samples) - min(samples) > 0.2 * base


def test_jitter_is_reproducible_with_a_seeded_rng():
    first = [next_delay(n, 15, DAY, random.Random(7)) for n in range(1, 15)]
    second = [next_delay(n, 15, DAY, random.Random(7)) for n in range(1, 15)]
    assert first == second


def test_none_after_the_last_attempt():
    assert next_delay(14, 15, DAY) is not None
    assert next_delay(15, 15, DAY) is None
    assert next_delay(16, 15, DAY) is None
