"""A minimal read-only LevelDB reader for Chromium profile folders (closed or killed).

Chromium keeps each origin's IndexedDB in a LevelDB folder. This module reads such a
folder without opening it through LevelDB (no native library, no lock taken, no
recovery written back): the MANIFEST named by ``CURRENT`` tells which ``.ldb`` tables and
which ``.log`` write-ahead logs are live; every live record is read and, per user key,
the one with the highest sequence number wins (a deletion hides the key).

Checksums are verified lazily: every :class:`Entry` carries a ``verify`` callable, and
callers check only the entries they use (a real profile holds tens of MB we never need,
and CRC32C in pure Python is slow).

Not handled: a LevelDB being written while we read it (callers read closed profiles),
table compression other than snappy, and the comparator's key ordering (we never seek).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cramjam

_BLOCK_SIZE = 32 * 1024  # log files are cut in blocks of this size
_HEADER = 7  # crc32c (4) | length (2) | type (1)
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
_TABLE_MAGIC = 0xDB4775248B80FB57
_TYPE_DELETION, _TYPE_VALUE = 0, 1


class LevelDBError(Exception):
    """The folder is not a LevelDB we can read; the message says why."""


@dataclass(frozen=True)
class Entry:
    """The newest state of one user key: its value (None when deleted) and where from."""

    sequence: int
    value: bytes | None
    verify: Callable[[], bool]


# ------------------------------------------------------------------- checksums
def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
    """LevelDB stores ``crc32c`` rotated and offset ("masked"); undo that."""
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# ---------------------------------------------------------------------- varints
def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a LevelDB/protobuf base-128 varint at ``pos``; return (value, next pos)."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise LevelDBError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise LevelDBError("varint too long")


def _read_prefixed(buf: bytes, pos: int) -> tuple[bytes, int]:
    size, pos = read_varint(buf, pos)
    if pos + size > len(buf):
        raise LevelDBError("truncated length-prefixed slice")
    return bytes(buf[pos : pos + size]), pos + size


# ------------------------------------------------------------------------- logs
def log_records(path: Path) -> Iterator[tuple[bytes, Callable[[], bool]]]:
    """Logical records of a LevelDB log file, each with a checksum verifier.

    A torn tail (a killed writer) ends the iteration quietly, as LevelDB's own recovery
    does; corruption in the middle raises :class:`LevelDBError`.
    """
    data = path.read_bytes()
    fragments: list[tuple[int, int, int]] = []  # (masked crc, offset of type byte, length)
    pos = 0
    while pos + _HEADER <= len(data):
        block_left = _BLOCK_SIZE - pos % _BLOCK_SIZE
        if block_left < _HEADER:  # block trailer padding
            pos += block_left
            continue
        masked, length, kind = struct.unpack_from("<IHB", data, pos)
        if kind == 0 and length == 0:  # preallocated zeros: nothing more in this block
            pos += block_left
            continue
        end = pos + _HEADER + length
        if end > len(data) or length > block_left - _HEADER:
            return  # torn tail
        fragments.append((masked, pos + 6, length))
        pos = end
        if kind in (_FULL, _LAST):
            if (kind == _FULL) != (len(fragments) == 1):
                raise LevelDBError(f"{path.name}: broken fragment chain at {pos}")
            yield b"".join(data[o + 1 : o + 1 + n] for _, o, n in fragments), _fragments_ok(data, fragments)
            fragments = []
        elif kind == _FIRST:
            fragments = fragments[-1:]
        elif kind != _MIDDLE:
            raise LevelDBError(f"{path.name}: unknown log record type {kind}")


def _fragments_ok(data: bytes, fragments: list[tuple[int, int, int]]) -> Callable[[], bool]:
    def verify() -> bool:
        return all(unmask_crc(m) == crc32c(data[o : o + 1 + n]) for m, o, n in fragments)

    return verify


def _batch_entries(
    batch: bytes, verify: Callable[[], bool]
) -> Iterator[tuple[bytes, int, bytes | None, Callable[[], bool]]]:
    """(user key, sequence, value or None, verify) of each operation of a write batch."""
    if len(batch) < 12:
        raise LevelDBError("write batch too short")
    sequence, count = struct.unpack_from("<QI", batch, 0)
    pos = 12
    for i in range(count):
        if pos >= len(batch):
            raise LevelDBError("write batch shorter than its count")
        tag = batch[pos]
        key, pos = _read_prefixed(batch, pos + 1)
        if tag == _TYPE_VALUE:
            value, pos = _read_prefixed(batch, pos)
            yield key, sequence + i, value, verify
        elif tag == _TYPE_DELETION:
            yield key, sequence + i, None, verify
        else:
            raise LevelDBError(f"unknown write batch tag {tag}")


# ----------------------------------------------------------------------- tables
def _block(data: bytes, offset: int, size: int) -> tuple[bytes, Callable[[], bool]]:
    if offset + size + 5 > len(data):
        raise LevelDBError("block handle past the end of the table")
    raw = data[offset : offset + size]
    kind = data[offset + size]
    (masked,) = struct.unpack_from("<I", data, offset + size + 1)

    def verify() -> bool:
        return unmask_crc(masked) == crc32c(data[offset : offset + size + 1])

    if kind == 0:
        return bytes(raw), verify
    if kind == 1:
        return bytes(cramjam.snappy.decompress_raw(raw)), verify
    raise LevelDBError(f"unsupported block compression {kind}")


def _block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise LevelDBError("block too short")
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * restarts
    if limit < 0:
        raise LevelDBError("bad restart count")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = read_varint(block, pos)
        unshared, pos = read_varint(block, pos)
        size, pos = read_varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        yield key, block[pos : pos + size]
        pos += size


def table_records(path: Path) -> Iterator[tuple[bytes, int, bytes | None, Callable[[], bool]]]:
    """(user key, sequence, value or None, verify) of every record of an ``.ldb`` table."""
    data = path.read_bytes()
    if len(data) < 48 or struct.unpack_from("<Q", data, len(data) - 8)[0] != _TABLE_MAGIC:
        raise LevelDBError(f"{path.name} is not a LevelDB table")
    footer = data[-48:]
    _, pos = read_varint(footer, 0)  # metaindex offset
    _, pos = read_varint(footer, pos)  # metaindex size
    index_offset, pos = read_varint(footer, pos)
    index_size, _ = read_varint(footer, pos)
    index, _ = _block(data, index_offset, index_size)
    for _, handle in _block_entries(index):
        offset, pos = read_varint(handle, 0)
        size, _ = read_varint(handle, pos)
        block, verify = _block(data, offset, size)
        for internal_key, value in _block_entries(block):
            if len(internal_key) < 8:
                raise LevelDBError(f"{path.name}: internal key too short")
            (trailer,) = struct.unpack_from("<Q", internal_key, len(internal_key) - 8)
            kind = trailer & 0xFF
            yield internal_key[:-8], trailer >> 8, (value if kind == _TYPE_VALUE else None), verify


# --------------------------------------------------------------------- manifest
@dataclass
class _Version:
    tables: set[int]
    log_number: int
    prev_log_number: int


def _read_manifest(folder: Path) -> _Version:
    current = folder / "CURRENT"
    try:
        name = current.read_text().strip()
    except OSError as exc:
        raise LevelDBError(f"no CURRENT file in {folder.name}") from exc
    manifest = folder / name
    if not name.startswith("MANIFEST-") or not manifest.is_file():
        raise LevelDBError(f"CURRENT names no manifest ({name!r})")
    tables: set[int] = set()
    log_number = prev_log_number = 0
    for edit, verify in log_records(manifest):
        if not verify():
            raise LevelDBError(f"{name}: checksum mismatch")
        pos = 0
        while pos < len(edit):
            tag, pos = read_varint(edit, pos)
            if tag == 1:  # comparator name
                _, pos = _read_prefixed(edit, pos)
            elif tag == 2:
                log_number, pos = read_varint(edit, pos)
            elif tag in (3, 4):  # next file number, last sequence
                _, pos = read_varint(edit, pos)
            elif tag == 5:  # compaction pointer
                _, pos = read_varint(edit, pos)
                _, pos = _read_prefixed(edit, pos)
            elif tag == 6:  # deleted file
                _, pos = read_varint(edit, pos)
                number, pos = read_varint(edit, pos)
                tables.discard(number)
            elif tag == 7:  # new file: level, number, size, smallest, largest
                _, pos = read_varint(edit, pos)
                number, pos = read_varint(edit, pos)
                _, pos = read_varint(edit, pos)
                _, pos = _read_prefixed(edit, pos)
                _, pos = _read_prefixed(edit, pos)
                tables.add(number)
            elif tag == 9:
                prev_log_number, pos = read_varint(edit, pos)
            else:
                raise LevelDBError(f"{name}: unknown version edit tag {tag}")
    return _Version(tables, log_number, prev_log_number)


def _numbered(folder: Path, suffix: str) -> dict[int, Path]:
    found = {}
    for path in folder.glob(f"*{suffix}"):
        stem = path.name[: -len(suffix)]
        if stem.isdigit():
            found[int(stem)] = path
    return found


def read_live(folder: Path, wanted: Callable[[bytes, bytes], bool] | None = None) -> dict[bytes, Entry]:
    """Every user key of a LevelDB folder with its newest state (deletions included).

    With ``wanted(key, value)``, values it declines are not kept: their entry reads as
    deleted but keeps its sequence number, so an older value never shows through.
    """
    version = _read_manifest(folder)
    tables = {**_numbered(folder, ".sst"), **_numbered(folder, ".ldb")}
    missing = version.tables - tables.keys()
    if missing:
        raise LevelDBError(f"live tables missing: {sorted(missing)}")
    newest: dict[bytes, Entry] = {}

    def keep(key: bytes, sequence: int, value: bytes | None, verify: Callable[[], bool]) -> None:
        old = newest.get(key)
        if old is None or sequence > old.sequence:
            if value is not None and wanted is not None and not wanted(key, value):
                value = None
            newest[key] = Entry(sequence, value, verify)

    for number in sorted(version.tables):
        for record in table_records(tables[number]):
            keep(*record)
    for number, path in sorted(_numbered(folder, ".log").items()):
        if number < version.log_number and number != version.prev_log_number:
            continue  # already in the tables; LevelDB deletes these soon
        for batch, verify in log_records(path):
            for record in _batch_entries(batch, verify):
                keep(*record)
    return newest
