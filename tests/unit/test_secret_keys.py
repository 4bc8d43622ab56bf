"""Login-state keys: which ones, the startup refusal, and rotation through MultiFernet."""

from __future__ import annotations

import base64
import zlib
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared import login_state
from shared.config import Settings
from shared.login_state import LoginStateError, pack, reencrypt, unpack, verify
from shared.secrets import DEVELOPMENT_KEY, SecretKeyError, require_secret_keys, secret_keys

OLD, NEW = "old-key-0123456789", "new-key-9876543210"


def _settings(**env: str) -> Settings:
    return Settings.from_env(env)


def _profile(root: Path) -> Path:
    storage = root / "Default" / "IndexedDB"
    storage.mkdir(parents=True)
    (storage / "000003.log").write_bytes(b"wawc key material")
    return root


def test_keys_are_newest_first_with_secret_key_last() -> None:
    settings = _settings(SECRET_KEYS=f" {NEW} ,, {OLD},", SECRET_KEY="single")
    assert secret_keys(settings) == [NEW, OLD, "single"]
    assert secret_keys(_settings(SECRET_KEYS=f"{NEW},{OLD}", SECRET_KEY=OLD)) == [NEW, OLD]
    assert secret_keys(_settings(SECRET_KEY=OLD)) == [OLD]


@pytest.mark.parametrize(
    "env",
    [{}, {"SECRET_KEY": ""}, {"SECRET_KEY": "   "}, {"SECRET_KEYS": " , ,"}, {"SECRET_KEY": DEVELOPMENT_KEY}],
    ids=["unset", "empty", "blank", "only-commas", "public-default"],
)
def test_no_key_or_the_public_one_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(SecretKeyError) as refused:
        require_secret_keys(_settings(**env))
    message = str(refused.value)
    assert "\n" not in message and "SECRET_KEYS" in message and "SECRET_KEY " in message
    assert "DEV_MODE" in message


def test_the_config_default_is_no_key() -> None:
    assert Settings().SECRET_KEY == ""


def test_dev_mode_allows_no_key_and_the_public_one() -> None:
    assert require_secret_keys(_settings(DEV_MODE="1")) == [DEVELOPMENT_KEY]
    assert require_secret_keys(_settings(DEV_MODE="1", SECRET_KEY=DEVELOPMENT_KEY)) == [DEVELOPMENT_KEY]


def test_the_public_key_may_stay_as_an_old_key_to_rotate_away_from() -> None:
    settings = _settings(SECRET_KEYS=NEW, SECRET_KEY=DEVELOPMENT_KEY)
    assert require_secret_keys(settings) == [NEW, DEVELOPMENT_KEY]


def test_an_old_archive_opens_with_new_and_old_keys(tmp_path: Path) -> None:
    old_archive = pack(_profile(tmp_path / "src"), [OLD])
    verify(old_archive, [NEW, OLD])
    assert unpack(old_archive, tmp_path / "dst", [NEW, OLD]) == ["Default/IndexedDB/000003.log"]


def test_an_archive_of_the_first_format_still_opens_after_rotation(tmp_path: Path) -> None:
    # Version 1 archives written before key lists existed: one HKDF-derived Fernet key,
    # derived here as it always was (not through the module), so the derivation cannot drift.
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"zaphub-login-state", info=b"fernet-v1").derive(
        OLD.encode()
    )
    token = Fernet(base64.urlsafe_b64encode(key)).encrypt(
        zlib.compress(login_state._build_tar(_profile(tmp_path / "s")))
    )
    archive = login_state._frame(token)
    assert archive[4] == 1
    verify(archive, [NEW, OLD])


def test_new_archives_use_the_first_key_only(tmp_path: Path) -> None:
    archive = pack(_profile(tmp_path / "src"), [NEW, OLD])
    verify(archive, [NEW])
    with pytest.raises(LoginStateError, match="no key matches"):
        verify(archive, [OLD])


def test_reencrypt_moves_an_archive_to_the_first_key(tmp_path: Path) -> None:
    old_archive = pack(_profile(tmp_path / "src"), [OLD])
    rotated = reencrypt(old_archive, [NEW, OLD])
    assert rotated is not None
    assert unpack(rotated, tmp_path / "dst", [NEW]) == ["Default/IndexedDB/000003.log"]
    assert reencrypt(rotated, [NEW, OLD]) is None  # already current
    with pytest.raises(LoginStateError, match="no key matches"):
        reencrypt(old_archive, [NEW, "unrelated"])
