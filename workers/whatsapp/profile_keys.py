"""Recover the WebCrypto keys a site stored in IndexedDB, from a closed Chromium profile.

WhatsApp Web keeps a non-extractable CryptoKey in IndexedDB (``wawc_db_enc`` / ``keys``
/ ``enc``). No page API hands its material out, but Chromium writes the material into
the profile's IndexedDB LevelDB when it stores the key. For sessions linked before the
live capture existed, this module reads it back from disk, in the same record format
the live capture produces, so such sessions can move to the shared browser mode too.

The profile must not be open in a Chromium (its LevelDB lock is checked). A profile
whose Chromium was killed is fine: the write-ahead log is read up to its torn tail, as
LevelDB's own recovery does. Checksums of every record used are verified.

Not handled (raise or skip, never guess): values Blink moved out of LevelDB (large
values wrapped into blob files — a key is far below that size), IndexedDB on the
SQLite backend, non-default storage buckets, and values of shapes other than plain
data holding CryptoKeys (they are skipped; they hold no key this reader could find).
"""

from __future__ import annotations

import base64
import fcntl
import logging
import os
import struct
from pathlib import Path
from urllib.parse import urlsplit

from workers.whatsapp.idb_values import (
    DATABASE_NAME_TYPE,
    OBJECT_STORE_DATA_INDEX,
    OBJECT_STORE_META,
    StoredKey,
    UnsupportedValue,
    decode_idb_key,
    read_string_with_length,
    split_prefix,
    value_keys,
)
from workers.whatsapp.leveldb_files import Entry, LevelDBError, read_live, read_varint

log = logging.getLogger(__name__)

_DEFAULT_PORTS = {"http": 80, "https": 443}
# A CryptoKey is a V8 host object ("\\") with Blink's tag "K": values without these two
# bytes in a row cannot hold one, so they are not decoded at all.
_KEY_MARK = b"\\K"


class ProfileKeysUnreadable(Exception):
    """The profile's IndexedDB cannot be read reliably; the message says why."""


def origin_identifier(origin: str) -> str:
    """Chromium's folder name stem of an origin: ``http://127.0.0.1:8080`` → ``http_127.0.0.1_8080``.

    Default ports are written as 0 (``https_web.whatsapp.com_0``).
    """
    parts = urlsplit(origin)
    if not parts.scheme or not parts.hostname:
        raise ValueError(f"not an origin: {origin!r}")
    port = parts.port if parts.port not in (None, _DEFAULT_PORTS.get(parts.scheme)) else 0
    return f"{parts.scheme}_{parts.hostname}_{port}"


def recover_keys(profile_dir: Path, origin: str | None = None) -> list[dict]:
    """Every CryptoKey stored in the profile's IndexedDB (of ``origin`` only, if given).

    Each record is ``{"format", "keyData" (base64), "algorithm", "usages", "source":
    {"database", "store", "key"}}``, ready for ``crypto.subtle.importKey``. An empty list
    means no key is stored. Raises :class:`ProfileKeysUnreadable` when the profile is
    open in a Chromium or its storage cannot be read with confidence.
    """
    profile_dir = Path(profile_dir)
    idb_root = profile_dir / "Default" / "IndexedDB"
    if not idb_root.is_dir():
        return []
    stem = origin_identifier(origin) if origin else None
    records: list[dict] = []
    for folder in sorted(idb_root.glob("*.indexeddb.leveldb")):
        if stem is None or folder.name == f"{stem}.indexeddb.leveldb":
            records.extend(_folder_keys(folder))
    log.info("recovered %d stored key(s) from profile %s", len(records), profile_dir.name)
    return records


def _folder_keys(folder: Path) -> list[dict]:
    _refuse_if_open(folder)
    try:
        live = read_live(folder, _wanted)
    except (LevelDBError, OSError) as exc:
        raise ProfileKeysUnreadable(f"{folder.name}: {exc}") from exc
    entries = {key: entry for key, entry in live.items() if entry.value is not None}
    databases = _database_names(entries)
    stores = _store_names(entries)
    records, skipped = [], 0
    for key, entry in entries.items():
        if _KEY_MARK not in entry.value:
            continue
        try:
            db_id, store_id, index_id, pos = split_prefix(key)
            if index_id != OBJECT_STORE_DATA_INDEX or db_id not in databases:
                continue
            found = value_keys(entry.value)
            idb_key, _ = decode_idb_key(key, pos)
        except (ValueError, LevelDBError, IndexError, struct.error) as exc:  # UnsupportedValue too
            skipped += 1
            log.debug("skipped a value in %s: %s", folder.name, exc)
            continue
        db_name, db_entry = databases[db_id]
        store_name, store_entry = stores.get((db_id, store_id), (None, None))
        if store_entry is None:
            raise ProfileKeysUnreadable(f"{folder.name}: a key's object store has no name")
        _verified(folder, (db_entry, store_entry, entry))
        source = {"database": db_name, "store": store_name, "key": idb_key}
        records.extend(_record(stored, source) for stored in found)
    if skipped:
        log.info("%s: %d value(s) of unsupported shape skipped", folder.name, skipped)
    # Tables and logs come in file order; sort so the same profile always reads the same.
    return sorted(records, key=lambda r: repr(sorted(r["source"].items())))


def _wanted(key: bytes, value: bytes) -> bool:
    """Metadata (names, ids) and values that may hold a CryptoKey; the rest is not kept."""
    if _KEY_MARK in value:
        return True
    try:
        return split_prefix(key)[1:3] == (0, 0)
    except UnsupportedValue:
        return False


def _record(stored: StoredKey, source: dict) -> dict:
    return {
        "format": stored.format,
        "keyData": base64.b64encode(stored.key_data).decode("ascii"),
        "algorithm": stored.algorithm,
        "usages": list(stored.usages),
        "source": source,
    }


def _database_names(entries: dict[bytes, Entry]) -> dict[int, tuple[str, Entry]]:
    """Database id → (name, its metadata entry), from the global metadata keys."""
    names = {}
    for key, entry in entries.items():
        if not key.startswith(b"\x00\x00\x00\x00") or key[4:5] != bytes([DATABASE_NAME_TYPE]):
            continue
        try:
            _, pos = read_string_with_length(key, 5)  # origin identifier
            name, _ = read_string_with_length(key, pos)
        except (UnsupportedValue, LevelDBError, UnicodeDecodeError) as exc:
            raise ProfileKeysUnreadable(f"unreadable database name key: {exc}") from exc
        names[int.from_bytes(entry.value, "little")] = (name, entry)
    return names


def _store_names(entries: dict[bytes, Entry]) -> dict[tuple[int, int], tuple[str, Entry]]:
    """(database id, object store id) → (name, its metadata entry)."""
    names = {}
    for key, entry in entries.items():
        try:
            db_id, store_id, index_id, pos = split_prefix(key)
            if store_id or index_id or key[pos : pos + 1] != bytes([OBJECT_STORE_META]):
                continue
            number, pos = read_varint(key, pos + 1)
        except (UnsupportedValue, LevelDBError):
            continue
        if key[pos:] == b"\x00":  # metadata type 0: the store's name
            names[(db_id, number)] = (entry.value.decode("utf-16-be"), entry)
    return names


def _verified(folder: Path, entries: tuple[Entry, ...]) -> None:
    for entry in entries:
        if not entry.verify():
            raise ProfileKeysUnreadable(f"{folder.name}: checksum mismatch in a record used")


def _refuse_if_open(folder: Path) -> None:
    """A running Chromium holds the LevelDB's LOCK; its files are then still moving."""
    lock = folder / "LOCK"
    if not lock.exists():
        return
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError as exc:
        raise ProfileKeysUnreadable(f"{folder.name}: cannot check its lock ({exc.strerror})") from exc
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.lockf(fd, fcntl.LOCK_UN)
    except OSError as exc:
        raise ProfileKeysUnreadable(f"{folder.name} is open in a running Chromium") from exc
    finally:
        os.close(fd)
