"""Unit tests for shared.login_state: round trip and every failure mode."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zlib
from pathlib import Path

import pytest

from shared import login_state
from shared.login_state import FORMAT_VERSION, MAGIC, LoginStateError, pack, unpack
from shared.sealing import LOGIN_STATES, fernet_for

SECRET = "unit-test-secret"
KEYS = [SECRET]


def _make_profile(root: Path) -> Path:
    idb = root / "Default" / "IndexedDB" / "http_127.0.0.1_8000.indexeddb.leveldb"
    idb.mkdir(parents=True)
    (idb / "000003.log").write_bytes(b"\x00key-material\xff" * 100)
    (idb / "CURRENT").write_text("MANIFEST-000001\n")
    (idb / "LOCK").write_text("")
    ls = root / "Default" / "Local Storage" / "leveldb"
    ls.mkdir(parents=True)
    (ls / "000005.ldb").write_bytes(os.urandom(2048))
    (ls / "LOCK").write_text("")
    # Things that must NOT be archived.
    (root / "Default" / "Cookies").write_bytes(b"cookies")
    (root / "Local State").write_text("{}")
    return root


def _frame(token: bytes) -> bytes:
    return MAGIC + bytes([FORMAT_VERSION]) + hashlib.sha256(token).digest() + token


def _encrypt_tar(tar_bytes: bytes, secret: str = SECRET) -> bytes:
    return _frame(fernet_for(secret, LOGIN_STATES).encrypt(zlib.compress(tar_bytes)))


def _tar_with(*members: tarfile.TarInfo, data: bytes = b"x") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info in members:
            if info.isfile():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def test_round_trip_restores_only_storage_folders(tmp_path: Path) -> None:
    src = _make_profile(tmp_path / "src")
    blob = pack(src, KEYS)
    assert blob[:4] == MAGIC and blob[4] == 1
    dst = tmp_path / "dst"
    written = unpack(blob, dst, KEYS)
    idb = "Default/IndexedDB/http_127.0.0.1_8000.indexeddb.leveldb"
    assert f"{idb}/000003.log" in written
    assert (dst / idb / "000003.log").read_bytes() == (src / idb / "000003.log").read_bytes()
    ldb = dst / "Default" / "Local Storage" / "leveldb" / "000005.ldb"
    assert ldb.read_bytes() == (src / "Default/Local Storage/leveldb/000005.ldb").read_bytes()
    assert not (dst / idb / "LOCK").exists()
    assert not (dst / "Default" / "Cookies").exists()
    assert not (dst / "Local State").exists()


def test_pack_is_encrypted(tmp_path: Path) -> None:
    src = _make_profile(tmp_path / "src")
    blob = pack(src, KEYS)
    assert b"key-material" not in blob
    assert b"IndexedDB" not in blob


def test_pack_skips_symlinks_and_vanishing_files(tmp_path: Path, monkeypatch) -> None:
    src = _make_profile(tmp_path / "src")
    outside = tmp_path / "secret.txt"
    outside.write_text("do not leak")
    ls = src / "Default" / "Local Storage" / "leveldb"
    (ls / "link").symlink_to(outside)
    (ls / "gone.log").write_text("vanishes")
    real_read = login_state._read_stable

    def flaky(path: Path):
        if path.name == "gone.log":
            path.unlink()
        return real_read(path)

    monkeypatch.setattr(login_state, "_read_stable", flaky)
    written = unpack(pack(src, KEYS), tmp_path / "dst", KEYS)
    assert not any(n.endswith(("/link", "/gone.log")) for n in written)


def test_pack_without_storage_fails(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(LoginStateError, match="no login storage"):
        pack(tmp_path / "empty", KEYS)


def test_empty_secret_refused(tmp_path: Path) -> None:
    src = _make_profile(tmp_path / "src")
    for keys in ([], [""]):
        with pytest.raises(LoginStateError, match="secret"):
            pack(src, keys)
    with pytest.raises(TypeError, match="list of keys"):
        pack(src, SECRET)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda b: b[:10], "truncated"),
        (lambda b: b"XXXX" + b[4:], "bad magic"),
        (lambda b: b[:4] + bytes([9]) + b[5:], "version 9"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "checksum mismatch"),
        (lambda b: b[:10] + bytes([b[10] ^ 1]) + b[11:], "checksum mismatch"),
    ],
)
def test_corrupt_frames(tmp_path: Path, mutate, reason: str) -> None:
    blob = pack(_make_profile(tmp_path / "src"), KEYS)
    with pytest.raises(LoginStateError, match=reason):
        unpack(mutate(blob), tmp_path / "dst", KEYS)
    assert not (tmp_path / "dst").exists()


def test_not_bytes(tmp_path: Path) -> None:
    with pytest.raises(LoginStateError, match="not bytes"):
        unpack("ZHLS", tmp_path / "dst", KEYS)  # type: ignore[arg-type]


def test_wrong_secret(tmp_path: Path) -> None:
    blob = pack(_make_profile(tmp_path / "src"), KEYS)
    with pytest.raises(LoginStateError, match="decrypted"):
        unpack(blob, tmp_path / "dst", ["another-secret"])


def test_valid_token_but_not_zlib(tmp_path: Path) -> None:
    blob = _frame(fernet_for(SECRET, LOGIN_STATES).encrypt(b"definitely not zlib"))
    with pytest.raises(LoginStateError, match="decompressed"):
        unpack(blob, tmp_path / "dst", KEYS)


def test_truncated_zlib(tmp_path: Path) -> None:
    data = zlib.compress(b"a" * 10000)[:-6]
    blob = _frame(fernet_for(SECRET, LOGIN_STATES).encrypt(data))
    with pytest.raises(LoginStateError, match="truncated|decompressed"):
        unpack(blob, tmp_path / "dst", KEYS)


def test_decompression_bomb_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(login_state, "MAX_UNPACKED_BYTES", 1000)
    blob = _encrypt_tar(b"\x00" * 100_000)
    with pytest.raises(LoginStateError, match="too large"):
        unpack(blob, tmp_path / "dst", KEYS)


def test_not_a_tar(tmp_path: Path) -> None:
    blob = _encrypt_tar(b"this is not a tar archive" * 40)
    with pytest.raises(LoginStateError, match="unreadable"):
        unpack(blob, tmp_path / "dst", KEYS)


@pytest.mark.parametrize(
    "name",
    [
        "/etc/passwd",
        "Default/IndexedDB/../../../evil",
        "../Default/IndexedDB/x",
        "Default/Cookies",
        "Default/IndexedDBX/x",
        "C:/Default/IndexedDB/x",
        "Default\\IndexedDB\\..\\..\\x",
    ],
)
def test_unsafe_member_paths_refused(tmp_path: Path, name: str) -> None:
    blob = _encrypt_tar(_tar_with(tarfile.TarInfo(name)))
    with pytest.raises(LoginStateError, match="unsafe path|outside the storage"):
        unpack(blob, tmp_path / "dst", KEYS)
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE])
def test_links_and_special_files_refused(tmp_path: Path, kind: bytes) -> None:
    info = tarfile.TarInfo("Default/IndexedDB/link")
    info.type = kind
    info.linkname = "/etc/passwd"
    blob = _encrypt_tar(_tar_with(info))
    with pytest.raises(LoginStateError, match="not a regular file"):
        unpack(blob, tmp_path / "dst", KEYS)


def test_bad_member_leaves_target_untouched(tmp_path: Path) -> None:
    good = tarfile.TarInfo("Default/IndexedDB/ok")
    bad = tarfile.TarInfo("../escape")
    blob = _encrypt_tar(_tar_with(good, bad))
    with pytest.raises(LoginStateError):
        unpack(blob, tmp_path / "dst", KEYS)
    assert not (tmp_path / "dst").exists()


def test_symlink_inside_target_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dst = tmp_path / "dst"
    (dst / "Default").mkdir(parents=True)
    (dst / "Default" / "IndexedDB").symlink_to(outside, target_is_directory=True)
    blob = _encrypt_tar(_tar_with(tarfile.TarInfo("Default/IndexedDB/pwn")))
    with pytest.raises(LoginStateError, match="escapes"):
        unpack(blob, dst, KEYS)
    assert not (outside / "pwn").exists()
