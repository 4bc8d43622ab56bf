"""Unit tests of the portable login state's pure-Python parts.

The portable archive kind of ``shared.login_state`` (round trip, checksum, wrong
secret, kind byte, key records carried in profile archives, older archives unchanged)
and ``workers.whatsapp.portable``'s ``KeyRecorder`` and state validation.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import io
import tarfile
from pathlib import Path

import pytest

from shared import login_state
from shared.login_state import (
    LoginStateError,
    kind_of,
    pack,
    pack_portable,
    read_keys,
    unpack,
    unpack_portable,
)
from tests.unit.test_login_state import KEYS, _encrypt_tar, _make_profile
from workers.whatsapp.portable import InvalidState, KeyRecorder, NotPortable, restore, validate

RAW = base64.b64encode(bytes(range(32))).decode()
RECORD = {"format": "raw", "keyData": RAW, "algorithm": "HKDF", "usages": ["deriveKey"]}
STATE = {
    "version": 1,
    "origin": "https://web.whatsapp.com",
    "indexedDB": [
        {
            "name": "wawc_db_enc",
            "version": 2,
            "stores": [
                {
                    "name": "keys",
                    "keyPath": "id",
                    "autoIncrement": True,
                    "indexes": [],
                    "records": [[1, {"id": 1, "key": {"$zh": "key", "i": 0}, "_expiration": 1}]],
                }
            ],
        }
    ],
    "localStorage": {"WebEncKeySalt": "c2FsdA=="},
    "keys": [RECORD],
}


# ------------------------------------------------------------ archive kinds
def test_portable_round_trip_and_kind() -> None:
    blob = pack_portable(STATE, KEYS)
    assert kind_of(blob) == "portable"
    assert unpack_portable(blob, KEYS) == STATE
    assert RAW.encode() not in blob  # encrypted, the material does not show
    login_state.verify(blob, KEYS)
    assert unpack_portable(login_state.reencrypt(blob, ["new-secret", *KEYS]), ["new-secret"]) == STATE


def test_portable_checksum_and_wrong_secret() -> None:
    blob = bytearray(pack_portable(STATE, KEYS))
    blob[-3] ^= 0x01
    with pytest.raises(LoginStateError, match="checksum mismatch"):
        unpack_portable(bytes(blob), KEYS)
    with pytest.raises(LoginStateError, match="cannot be decrypted"):
        unpack_portable(pack_portable(STATE, KEYS), ["another-secret"])
    with pytest.raises(LoginStateError, match="not JSON-able"):
        pack_portable({"x": float("nan")}, KEYS)


def test_kinds_do_not_mix(tmp_path: Path) -> None:
    profile = pack(_make_profile(tmp_path / "src"), KEYS)
    assert kind_of(profile) == "profile"
    with pytest.raises(LoginStateError, match="is a profile archive"):
        unpack_portable(profile, KEYS)
    with pytest.raises(LoginStateError, match="is a portable login state"):
        unpack(pack_portable(STATE, KEYS), tmp_path / "dst", KEYS)
    assert not (tmp_path / "dst").exists()


def test_profile_archive_carries_key_records(tmp_path: Path) -> None:
    blob = pack(_make_profile(tmp_path / "src"), KEYS, keys=[RECORD])
    assert read_keys(blob, KEYS) == [RECORD]
    names, keys = login_state.unpack_with_keys(blob, tmp_path / "dst", KEYS)
    assert keys == [RECORD]
    assert login_state.KEYS_MEMBER not in names
    assert not (tmp_path / "dst" / "ZapHub").exists()  # never written into the profile
    assert (tmp_path / "dst" / "Default" / "IndexedDB").is_dir()


def test_older_profile_archives_unpack_with_no_keys(tmp_path: Path) -> None:
    old = pack(_make_profile(tmp_path / "src"), KEYS)  # what pack made before key records
    assert read_keys(old, KEYS) == []
    assert unpack(old, tmp_path / "dst", KEYS)


def test_malformed_key_member_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b'{"not": "a list"}'
        info = tarfile.TarInfo(login_state.KEYS_MEMBER)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(LoginStateError, match="not a list of objects"):
        read_keys(_encrypt_tar(buf.getvalue()), KEYS)


# ---------------------------------------------------------------- recorder
def test_recorder_drops_duplicates_and_malformed_calls() -> None:
    recorder = KeyRecorder()
    recorder.record(RECORD)
    recorder.record(dict(RECORD))  # the restore's own re-import of the same material
    recorder.record({**RECORD, "format": "weird"})
    recorder.record({**RECORD, "keyData": "***"})
    recorder.record("not a dict")  # type: ignore[arg-type]
    assert recorder.records() == [RECORD]
    other = {**RECORD, "keyData": base64.b64encode(b"x" * 32).decode()}
    recorder.record(other)
    assert recorder.records() == [RECORD, other]
    assert KeyRecorder.from_records(recorder.records() + [RECORD]).records() == [RECORD, other]


def test_recorder_is_bounded() -> None:
    recorder = KeyRecorder()
    for i in range(200):
        recorder.record({**RECORD, "keyData": base64.b64encode(i.to_bytes(4, "big") * 8).decode()})
    assert len(recorder) == 64


def test_from_records_refuses_malformed_input() -> None:
    with pytest.raises(InvalidState, match="not a list"):
        KeyRecorder.from_records({"a": 1})  # type: ignore[arg-type]
    with pytest.raises(InvalidState, match="no algorithm name"):
        KeyRecorder.from_records([{**RECORD, "algorithm": {}}])
    with pytest.raises(InvalidState, match="usages"):
        KeyRecorder.from_records([{**RECORD, "usages": "deriveKey"}])


# -------------------------------------------------------------- validation
def _broken(path: str, value) -> dict:
    state = copy.deepcopy(STATE)
    *parents, last = path.split(".")
    node = state
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    return state


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("version", 7, "version 7 is not supported"),
        ("origin", "web.whatsapp.com", "not an absolute URL"),
        ("origin", "https://web.whatsapp.com/path", "no valid origin"),
        ("keys", {}, "keys are not a list"),
        ("localStorage", {"a": 1}, "localStorage is not a string map"),
        ("indexedDB", None, "indexedDB is not a list"),
        ("indexedDB.0.version", 0, "has no valid version"),
        ("indexedDB.0.stores", {}, "has no store list"),
        ("indexedDB.0.stores.0.records", [[1]], "not a \\[key, value\\] pair"),
        ("keys.0.keyData", "", "no base64 keyData"),
    ],
)
def test_validate_gives_a_clear_reason(path: str, value, reason: str) -> None:
    assert validate(copy.deepcopy(STATE)) == STATE
    with pytest.raises(InvalidState, match=reason):
        validate(_broken(path, value))


def test_invalid_state_is_not_portable_and_restore_checks_before_the_browser() -> None:
    assert issubclass(InvalidState, NotPortable)
    with pytest.raises(InvalidState, match="twice"):
        validate({**STATE, "indexedDB": STATE["indexedDB"] * 2})
    # No context is touched: a state of another origin is refused up front.
    with pytest.raises(InvalidState, match="is for https://web.whatsapp.com, not http://127.0.0.1:1"):
        asyncio.run(restore(None, STATE, "http://127.0.0.1:1/"))  # type: ignore[arg-type]


def test_records_from_another_source_keep_only_what_importKey_needs() -> None:
    found_on_disk = {**RECORD, "source": {"database": "wawc_db_enc", "store": "keys", "key": "enc"}}
    assert KeyRecorder.from_records([found_on_disk]).records() == [RECORD]
