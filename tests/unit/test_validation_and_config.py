"""Name and config rules, and settings read from the environment."""

import pytest

from shared.config import Settings, queue_for_worker
from shared.errors import InvalidInput
from shared.validation import check_session_name, encode_config, is_lazy


@pytest.mark.parametrize("name", ["a", "vendas", "a" * 64, "0-_x"])
def test_good_names(name):
    assert check_session_name(name) == name


@pytest.mark.parametrize("name", ["", "A", "../x", "a/b", "a" * 65, "é", "x\n", None, 5, "-a"])
def test_bad_names(name):
    with pytest.raises(InvalidInput) as error:
        check_session_name(name)
    assert error.value.field == "name"


def test_config_must_be_a_small_object():
    assert encode_config({"b": 1, "a": [1]}) == '{"a":[1],"b":1}'
    for bad in ([1], "x", 3):
        with pytest.raises(InvalidInput):
            encode_config(bad)
    with pytest.raises(InvalidInput):
        encode_config({"k": "x" * 20000})


def test_settings_from_environment_types_and_defaults():
    settings = Settings.from_env(
        {
            "WORKER_CAPACITY": "7",
            "HEARTBEAT_INTERVAL": "1.5",
            "TESTING": "yes",
            "WORKER_ID": "w9",
            "REDIS_URL": "",
        }
    )
    assert settings.WORKER_CAPACITY == 7 and settings.HEARTBEAT_INTERVAL == 1.5
    assert settings.TESTING is True and settings.worker_queue == "worker.w9"
    assert settings.REDIS_URL == "redis://localhost:6379/0"
    assert settings.DATABASE_URL.startswith("sqlite:///") and settings.DATABASE_URL.endswith("zaphub.db")
    assert queue_for_worker("a") == "worker.a"


def test_bad_number_in_environment_fails_loudly():
    with pytest.raises(ValueError):
        Settings.from_env({"WORKER_CAPACITY": "many"})


def test_lazy_config_key_is_a_boolean():
    assert encode_config({"lazy": True}) == '{"lazy":true}'
    assert is_lazy('{"lazy":true}') and is_lazy({"lazy": True})
    assert not is_lazy("{}") and not is_lazy({"lazy": False}) and not is_lazy("not json")
    for bad in ("true", 1, None):
        with pytest.raises(InvalidInput) as error:
            encode_config({"lazy": bad})
        assert "lazy" in str(error.value)


def test_restore_and_lazy_settings_from_environment():
    settings = Settings.from_env(
        {
            "RESTORE_CONCURRENCY": "5",
            "RESTORE_JITTER_SECONDS": "0.1",
            "LAZY_IDLE_SECONDS": "7",
            "LAZY_WAKE_INTERVAL": "60",
        }
    )
    assert settings.RESTORE_CONCURRENCY == 5 and settings.RESTORE_JITTER_SECONDS == 0.1
    assert settings.LAZY_IDLE_SECONDS == 7.0 and settings.LAZY_WAKE_INTERVAL == 60.0
    assert Settings().RESTORE_CONCURRENCY == 3


def test_browser_mode_settings():
    assert Settings.from_env({}).BROWSER_MODE == "profile"
    shared = Settings.from_env({"BROWSER_MODE": "shared", "BROWSER_SESSIONS_PER_PROCESS": "4"})
    assert (shared.BROWSER_MODE, shared.BROWSER_SESSIONS_PER_PROCESS) == ("shared", 4)
    with pytest.raises(ValueError, match="BROWSER_MODE must be one of profile, shared, not 'pool'"):
        Settings.from_env({"BROWSER_MODE": "pool"})
    with pytest.raises(ValueError, match="BROWSER_SESSIONS_PER_PROCESS must be at least 1"):
        Settings.from_env({"BROWSER_SESSIONS_PER_PROCESS": "0"})
