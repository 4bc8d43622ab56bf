"""Reading stored CryptoKeys from an IndexedDB LevelDB folder, on folders built byte by byte.

The writer below follows LevelDB's file formats (log blocks and fragments, write
batches, tables with restart arrays and block trailers, MANIFEST version edits) and
Chromium's IndexedDB key and value encodings, independently of the reader under test.
The real-Chromium proof is tests/e2e/test_profile_keys.py.
"""

from __future__ import annotations

import base64
import struct
import subprocess
import sys
from pathlib import Path

import cramjam
import pytest

from workers.whatsapp.idb_values import UnsupportedValue, value_keys
from workers.whatsapp.leveldb_files import crc32c, log_records
from workers.whatsapp.profile_keys import ProfileKeysUnreadable, origin_identifier, recover_keys

ORIGIN = "http://127.0.0.1:8765"
FOLDER = "http_127.0.0.1_8765.indexeddb.leveldb"
MATERIAL = bytes(range(32))


# ----------------------------------------------------------- LevelDB writer
def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def log_file(records: list[bytes]) -> bytes:
    """LevelDB log: records cut into fragments that never cross a 32 KiB block."""
    out = bytearray()
    for record in records:
        rest, first = record, True
        while True:
            left = 32768 - len(out) % 32768
            if left < 7:
                out += b"\0" * left
                left = 32768
            chunk, rest = rest[: left - 7], rest[left - 7 :]
            kind = (1 if not rest else 2) if first else (4 if not rest else 3)
            out += struct.pack("<IHB", masked_crc(bytes([kind]) + chunk), len(chunk), kind) + chunk
            first = False
            if not rest:
                break
    return bytes(out)


def batch(sequence: int, ops: list[tuple[bytes, bytes | None]]) -> bytes:
    out = bytearray(struct.pack("<QI", sequence, len(ops)))
    for key, value in ops:
        if value is None:
            out += b"\0" + varint(len(key)) + key
        else:
            out += b"\1" + varint(len(key)) + key + varint(len(value)) + value
    return bytes(out)


def block(entries: list[tuple[bytes, bytes]]) -> bytes:
    out = bytearray()
    for key, value in entries:
        out += varint(0) + varint(len(key)) + varint(len(value)) + key + value
    return bytes(out) + struct.pack("<II", 0, 1)


def table_file(entries: list[tuple[bytes, int, bytes | None]], compress: bool) -> bytes:
    """An .ldb table of one data block; entries are (user key, sequence, value or None)."""
    internal = sorted(
        (key + struct.pack("<Q", seq << 8 | (value is not None)), value or b"") for key, seq, value in entries
    )
    out = bytearray()

    def put(raw: bytes, squeeze: bool) -> bytes:
        body = bytes(cramjam.snappy.compress_raw(raw)) if squeeze else raw
        kind = bytes([1 if squeeze else 0])
        handle = varint(len(out)) + varint(len(body))
        out.extend(body + kind + struct.pack("<I", masked_crc(body + kind)))
        return handle

    data = put(block(internal), compress)
    meta = put(block([]), False)
    index = put(block([(internal[-1][0], data)]), False)
    footer = (meta + index).ljust(40, b"\0") + struct.pack("<Q", 0xDB4775248B80FB57)
    return bytes(out) + footer


def write_leveldb(folder: Path, table: list, log: list[bytes], table_number: int = 5) -> None:
    folder.mkdir(parents=True)
    (folder / f"{table_number:06d}.ldb").write_bytes(table_file(table, compress=True))
    (folder / "000007.log").write_bytes(log_file(log))
    edit = (
        varint(1) + varint(8) + b"idb_cmp1" + varint(2) + varint(7) + varint(3) + varint(8)
        + varint(7) + varint(0) + varint(table_number) + varint(100) + varint(1) + b"a" + varint(1) + b"z"
    )  # fmt: skip
    (folder / "MANIFEST-000002").write_bytes(log_file([edit]))
    (folder / "CURRENT").write_text("MANIFEST-000002\n")
    (folder / "LOCK").write_bytes(b"")


# ------------------------------------------------- IndexedDB encodings
def utf16(text: str) -> bytes:
    return varint(len(text)) + text.encode("utf-16-be")


def db_name_key(name: str) -> bytes:
    return b"\0\0\0\0" + bytes([201]) + utf16("http_127.0.0.1_8765@1") + utf16(name)


def store_name_key(db: int, store: int) -> bytes:
    return bytes([0, db, 0, 0, 50]) + varint(store) + b"\0"


def data_key(db: int, store: int, key: str) -> bytes:
    return bytes([0, db, store, 1, 1]) + utf16(key)


def idb_value(v8_value: bytes) -> bytes:
    """Value version, Blink envelope with an (empty) trailer header, V8 envelope."""
    return varint(2) + b"\xff\x15\xfe" + bytes(12) + b"\xff\x10" + v8_value


def crypto_key(params: bytes, usages: int, material: bytes = MATERIAL) -> bytes:
    return b"\\K" + params + varint(usages) + varint(len(material)) + material


HKDF_KEY = crypto_key(b"\x06" + varint(16), 1 << 5)  # HKDF, deriveKey, not extractable


def profile_with(tmp_path: Path, table: list, log: list[bytes]) -> Path:
    write_leveldb(tmp_path / "profile" / "Default" / "IndexedDB" / FOLDER, table, log)
    return tmp_path / "profile"


def names(db: int = 1, store: int = 1) -> list:
    return [
        (db_name_key("wawc_db_enc"), 1, bytes([db])),
        (store_name_key(db, store), 2, "keys".encode("utf-16-be")),
    ]


# ------------------------------------------------------------------ tests
def test_crc32c_and_origin_identifiers() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert origin_identifier("http://127.0.0.1:8765/") == "http_127.0.0.1_8765"
    assert origin_identifier("https://web.whatsapp.com/") == "https_web.whatsapp.com_0"
    assert origin_identifier("https://web.whatsapp.com:443") == "https_web.whatsapp.com_0"
    with pytest.raises(ValueError):
        origin_identifier("not an origin")


@pytest.mark.parametrize(
    ("v8_value", "expected"),
    [
        (HKDF_KEY, ("raw", "HKDF", ["deriveKey"], False)),
        (
            crypto_key(b"\x01" + varint(9) + varint(32), 1 | 2 | 4),
            ("raw", {"name": "AES-GCM"}, ["encrypt", "decrypt"], True),
        ),
        (
            crypto_key(b"\x02" + varint(64) + varint(6), 8 | 16),
            ("raw", {"name": "HMAC", "hash": "SHA-256"}, ["sign", "verify"], False),
        ),
        (
            crypto_key(b"\x05" + varint(14) + varint(2) + varint(1), 8),
            ("pkcs8", {"name": "ECDSA", "namedCurve": "P-256"}, ["sign"], False),
        ),
        (
            crypto_key(b"\x06" + varint(17), 1 << 8),
            ("raw", "PBKDF2", ["deriveBits"], False),
        ),
    ],
)
def test_crypto_key_shapes(v8_value: bytes, expected: tuple) -> None:
    (key,) = value_keys(idb_value(v8_value))
    assert (key.format, key.algorithm, key.usages, key.extractable) == expected
    assert key.key_data == MATERIAL


def test_keys_inside_plain_data_are_found() -> None:
    one_byte = b'"' + varint(1)
    obj = b"o" + one_byte + b"k" + HKDF_KEY + one_byte + b"n" + b"I" + varint(84) + b"{" + varint(2)
    array = b"A" + varint(2) + b"T" + obj + b"$" + varint(0) + varint(2)
    assert [k.algorithm for k in value_keys(idb_value(array))] == ["HKDF"]
    assert value_keys(idb_value(b'"' + varint(3) + b"abc")) == []


@pytest.mark.parametrize(
    "raw",
    [
        varint(2) + b"\xff\x11\x01" + bytes(10),  # wrapped into a blob file
        idb_value(b"\\X"),  # another host object
        idb_value(b"\\K\x09"),  # unknown CryptoKey sub-tag
        idb_value(b"\\K\x06" + varint(99)),  # unknown algorithm
        idb_value(HKDF_KEY[:-4]),  # truncated material
        idb_value(b"r"),  # a RegExp: not decoded
    ],
)
def test_unsupported_values_raise(raw: bytes) -> None:
    with pytest.raises(UnsupportedValue):
        value_keys(raw)


def test_log_records_span_blocks_and_stop_at_a_torn_tail(tmp_path: Path) -> None:
    big, small = bytes(range(256)) * 300, b"tail record"
    path = tmp_path / "000003.log"
    path.write_bytes(log_file([b"first", big, small]))
    assert [r for r, _ in log_records(path)] == [b"first", big, small]
    assert all(verify() for _, verify in log_records(path))

    path.write_bytes(path.read_bytes()[:-3])  # killed mid-write
    assert [r for r, _ in log_records(path)] == [b"first", big]

    data = bytearray(path.read_bytes())
    data[40000] ^= 0xFF  # inside the big record's second fragment
    path.write_bytes(bytes(data))
    assert [verify() for _, verify in log_records(path)] == [True, False]


def test_recover_keys_from_table_and_log(tmp_path: Path) -> None:
    other = crypto_key(b"\x01" + varint(9) + varint(16), 2 | 4, bytes(16))
    table = [
        *names(),
        (data_key(1, 1, "enc"), 3, idb_value(other)),  # replaced by the log below
        (data_key(1, 1, "old"), 4, idb_value(other)),  # deleted by the log below
    ]
    log = [batch(10, [(data_key(1, 1, "enc"), idb_value(HKDF_KEY)), (data_key(1, 1, "old"), None)])]
    profile = profile_with(tmp_path, table, log)

    assert recover_keys(profile, ORIGIN) == [
        {
            "format": "raw",
            "keyData": base64.b64encode(MATERIAL).decode(),
            "algorithm": "HKDF",
            "usages": ["deriveKey"],
            "source": {"database": "wawc_db_enc", "store": "keys", "key": "enc"},
        }
    ]
    assert recover_keys(profile) == recover_keys(profile, ORIGIN)
    assert recover_keys(profile, "http://127.0.0.1:9999") == []
    assert recover_keys(tmp_path / "no-profile") == []


def test_a_deleted_database_holds_no_key(tmp_path: Path) -> None:
    stored = batch(10, [(data_key(1, 1, "enc"), idb_value(HKDF_KEY))])
    log = [stored, batch(20, [(db_name_key("wawc_db_enc"), None)])]
    assert recover_keys(profile_with(tmp_path, names(), log)) == []


def test_a_corrupt_record_is_refused_not_returned(tmp_path: Path) -> None:
    profile = profile_with(tmp_path, names(), [batch(10, [(data_key(1, 1, "enc"), idb_value(HKDF_KEY))])])
    log = next((profile / "Default" / "IndexedDB" / FOLDER).glob("*.log"))
    data = bytearray(log.read_bytes())
    data[data.index(MATERIAL) + 5] ^= 0x01  # one bit of the key material
    log.write_bytes(bytes(data))
    with pytest.raises(ProfileKeysUnreadable, match="checksum"):
        recover_keys(profile)


def test_a_missing_live_table_is_refused(tmp_path: Path) -> None:
    profile = profile_with(tmp_path, names(), [batch(10, [(data_key(1, 1, "enc"), idb_value(HKDF_KEY))])])
    next((profile / "Default" / "IndexedDB" / FOLDER).glob("*.ldb")).unlink()
    with pytest.raises(ProfileKeysUnreadable, match="missing"):
        recover_keys(profile)


def test_a_locked_leveldb_is_refused(tmp_path: Path) -> None:
    profile = profile_with(tmp_path, names(), [batch(10, [(data_key(1, 1, "enc"), idb_value(HKDF_KEY))])])
    lock = profile / "Default" / "IndexedDB" / FOLDER / "LOCK"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR); fcntl.lockf(fd, fcntl.LOCK_EX);"
            " print('held', flush=True); sys.stdin.read()",
            str(lock),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ProfileKeysUnreadable, match="running Chromium"):
            recover_keys(profile)
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    assert len(recover_keys(profile)) == 1


def test_a_key_overwritten_by_plain_data_is_gone(tmp_path: Path) -> None:
    table = [*names(), (data_key(1, 1, "enc"), 3, idb_value(HKDF_KEY))]
    log = [batch(10, [(data_key(1, 1, "enc"), idb_value(b'"' + varint(2) + b"no"))])]
    assert recover_keys(profile_with(tmp_path, table, log)) == []
