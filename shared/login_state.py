"""Login-state archive: the on-disk WhatsApp Web storage of one Chromium profile.

Why not Playwright's ``storage_state()``: WhatsApp Web keeps a non-extractable
WebCrypto key in IndexedDB and encrypts its localStorage secrets with keys derived
from it; ``storage_state(indexed_db=True)`` turns that key into ``{}`` and the
restored session is dead. A byte copy of the profile's ``Default/IndexedDB`` and
``Default/Local Storage`` folders restores it, so that is what we archive.

Frame (all integers big-endian, nothing else before or after)::

    b"ZHLS" | format (1 byte) | sha256(ciphertext) (32 bytes) | ciphertext

Two kinds share the frame; the format byte, readable without decrypting
(:func:`kind_of`), says which:

* ``1`` "profile": the ciphertext is a Fernet token of the zlib-compressed tar of the
  profile's storage folders. The tar may also hold ``ZapHub/keys.json``, the key
  records of the session's importKey capture (``workers.whatsapp.portable``), so a
  session linked with the capture installed can later move to the shared browser
  mode with no scan. Archives without that member (all older ones) read as ``[]``.
* ``2`` "portable": the ciphertext is a Fernet token of the zlib-compressed JSON of a
  portable login state (``workers.whatsapp.portable.dump``): IndexedDB, localStorage
  and the raw key material. It is a password; it only ever exists encrypted here.

The ciphertext is always Fernet, so :func:`verify` and :func:`reencrypt` work on both. Each Fernet key is
derived from a caller-supplied secret with HKDF-SHA256, so the database only ever
holds encrypted archives. Callers pass a list of secrets, newest first (see
``shared.secrets``): the first encrypts, any decrypts (``MultiFernet``). A Fernet
token decrypts with the key that made it whatever else is in the list, so rotation
needs no format change: version 1 archives made before rotation existed still open.

This module is pure Python (no Playwright, no Flask) so both the API side and the
workers can import it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

from cryptography.fernet import InvalidToken, MultiFernet

from shared.sealing import LOGIN_STATES, fernet_for, multi_fernet

MAGIC = b"ZHLS"
FORMAT_VERSION = 1  # the profile kind; older archives all carry it
PORTABLE_VERSION = 2
KINDS = {FORMAT_VERSION: "profile", PORTABLE_VERSION: "portable"}
# Tar member holding the capture's key records (never written into a profile folder).
KEYS_MEMBER = "ZapHub/keys.json"
_HEADER_LEN = len(MAGIC) + 1 + 32

# The only folders we archive / accept back, relative to the profile root.
ARCHIVED_DIRS: tuple[str, ...] = ("Default/IndexedDB", "Default/Local Storage")

# Chromium holds these open with exclusive locks; copying them is useless (they are
# recreated) and on some platforms fails.
_SKIP_NAMES = frozenset({"LOCK", "lockfile", "SingletonLock", "SingletonCookie", "SingletonSocket"})

# A real WhatsApp profile's storage is tens of MB; refuse to inflate anything absurd
# (decompression bombs from a tampered database row).
MAX_UNPACKED_BYTES = 1024 * 1024 * 1024


class LoginStateError(Exception):
    """The archive cannot be produced or restored; the message says why."""


def _multi_fernet(secrets: Sequence[str]) -> MultiFernet:
    if isinstance(secrets, (str, bytes)):
        raise TypeError("login state secrets must be a list of keys, newest first")
    if not secrets or not all(secrets):
        raise LoginStateError("no login state secret configured (SECRET_KEYS)")
    return multi_fernet(secrets, LOGIN_STATES)


def _frame(token: bytes, version: int = FORMAT_VERSION) -> bytes:
    return MAGIC + bytes([version]) + hashlib.sha256(token).digest() + token


def _read_stable(path: Path) -> bytes | None:
    """File bytes, or None if it vanished or is locked (Chromium churns these folders)."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except (FileNotFoundError, PermissionError, IsADirectoryError, OSError):
        return None


def _build_tar(profile_dir: Path, keys: list[dict] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        if keys:
            data = json.dumps(keys).encode()
            info = tarfile.TarInfo(KEYS_MEMBER)
            info.size = len(data)
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
        for rel_root in ARCHIVED_DIRS:
            root = profile_dir / rel_root
            if not root.is_dir():
                continue
            # os.walk swallows errors for directories that vanish mid-walk (onerror=None).
            for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
                dirnames.sort()
                rel_dir = Path(dirpath).relative_to(profile_dir).as_posix()
                info = tarfile.TarInfo(rel_dir)
                info.type = tarfile.DIRTYPE
                info.mode = 0o700
                tar.addfile(info)
                for name in sorted(filenames):
                    full = Path(dirpath) / name
                    if name in _SKIP_NAMES or full.is_symlink() or not full.is_file():
                        continue
                    data = _read_stable(full)
                    if data is None:
                        continue
                    info = tarfile.TarInfo(f"{rel_dir}/{name}")
                    info.size = len(data)
                    info.mode = 0o600
                    tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def pack(profile_dir: Path, secrets: Sequence[str], keys: list[dict] | None = None) -> bytes:
    """Archive, compress, encrypt (with the first of ``secrets``) and frame ``profile_dir``'s login storage.

    ``keys`` (the session's captured key records, JSON-able) travel in the same archive
    as ``ZapHub/keys.json``; read them back with :func:`read_keys` or
    :func:`unpack_with_keys`. Raises ``LoginStateError`` if the profile has none of the
    storage folders.
    """
    profile_dir = Path(profile_dir)
    if not any((profile_dir / d).is_dir() for d in ARCHIVED_DIRS):
        raise LoginStateError(f"profile has no login storage to archive: {profile_dir.name}")
    if keys is not None and not isinstance(keys, list):
        raise LoginStateError("key records must be a list")
    fernet = _multi_fernet(secrets)
    compressed = zlib.compress(_build_tar(profile_dir, keys), 6)
    return _frame(fernet.encrypt(compressed))


def pack_portable(state: dict, secrets: Sequence[str]) -> bytes:
    """Compress, encrypt (with the first of ``secrets``) and frame a portable login state (JSON-able)."""
    if not isinstance(state, dict):
        raise LoginStateError("portable login state must be an object")
    fernet = _multi_fernet(secrets)
    try:
        raw = json.dumps(state, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise LoginStateError(f"portable login state is not JSON-able: {exc}") from None
    return _frame(fernet.encrypt(zlib.compress(raw, 6)), PORTABLE_VERSION)


def unpack_portable(blob: bytes, secrets: Sequence[str]) -> dict:
    """The portable login state inside ``blob`` (decrypted by any of ``secrets``).

    Raises ``LoginStateError`` on a damaged frame, a wrong secret, a profile archive, or
    content that is not a portable state object (the page-level structure is checked by
    ``workers.whatsapp.portable.validate``).
    """
    if kind_of(blob) != "portable":
        raise LoginStateError("login state is a profile archive, not a portable login state")
    try:
        state = json.loads(_open_frame(blob, secrets))
    except (UnicodeDecodeError, ValueError):
        raise LoginStateError("portable login state is not valid JSON") from None
    if not isinstance(state, dict) or not isinstance(state.get("version"), int):
        raise LoginStateError("portable login state has no version")
    return state


def kind_of(blob: bytes) -> str:
    """``"profile"`` or ``"portable"``, from the format byte (frame and checksum checked, no decryption)."""
    return KINDS[_version_and_token(blob)[0]]


def _token_of(blob: bytes) -> bytes:
    """Check magic, version and checksum; return the Fernet token inside."""
    return _version_and_token(blob)[1]


def _version_and_token(blob: bytes) -> tuple[int, bytes]:
    """Check magic, version and checksum; return the format byte and the Fernet token."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise LoginStateError("login state is not bytes")
    blob = bytes(blob)
    if len(blob) < _HEADER_LEN:
        raise LoginStateError("login state is truncated")
    if blob[:4] != MAGIC:
        raise LoginStateError("login state has a bad magic (not a ZapHub archive)")
    version = blob[4]
    if version not in KINDS:
        raise LoginStateError(f"login state format version {version} is not supported")
    digest, token = blob[5:_HEADER_LEN], blob[_HEADER_LEN:]
    if hashlib.sha256(token).digest() != digest:
        raise LoginStateError("login state checksum mismatch")
    return version, token


def _open_frame(blob: bytes, secrets: Sequence[str]) -> bytes:
    """Verify the frame and return the decrypted, decompressed tar bytes."""
    fernet = _multi_fernet(secrets)
    try:
        compressed = fernet.decrypt(_token_of(blob))
    except InvalidToken:
        raise LoginStateError("login state cannot be decrypted (no key matches)") from None
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(compressed, MAX_UNPACKED_BYTES)
        if inflater.unconsumed_tail:
            raise LoginStateError("login state is too large once decompressed")
        if not inflater.eof:
            raise LoginStateError("login state compressed data is truncated")
    except zlib.error as exc:
        raise LoginStateError(f"login state cannot be decompressed: {exc}") from None
    return raw


def verify(blob: bytes, secrets: Sequence[str]) -> None:
    """Check magic, version, checksum, decryption (by any of ``secrets``) and compression."""
    _open_frame(blob, secrets)


def reencrypt(blob: bytes, secrets: Sequence[str]) -> bytes | None:
    """``blob`` encrypted with the first of ``secrets``, or None if it already is.

    Raises ``LoginStateError`` if the frame is damaged or no key decrypts it.
    """
    fernet = _multi_fernet(secrets)
    token = _token_of(blob)
    try:
        fernet_for(secrets[0], LOGIN_STATES).decrypt(token)
        return None
    except InvalidToken:
        pass
    try:
        return _frame(fernet.rotate(token), blob[4])
    except InvalidToken:
        raise LoginStateError("login state cannot be decrypted (no key matches)") from None


def _safe_member_path(name: str) -> PurePosixPath:
    """Validate one archive member name; refuse traversal and foreign folders."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or name.startswith(("/", "\\")) or "\\" in name:
        raise LoginStateError(f"login state member has an unsafe path: {name!r}")
    if any(part in ("..", "") for part in path.parts) or ":" in path.parts[0]:
        raise LoginStateError(f"login state member has an unsafe path: {name!r}")
    if not any(path == PurePosixPath(root) or PurePosixPath(root) in path.parents for root in ARCHIVED_DIRS):
        raise LoginStateError(f"login state member is outside the storage folders: {name!r}")
    return path


def unpack(blob: bytes, profile_dir: Path, secrets: Sequence[str]) -> list[str]:
    """Verify ``blob`` (decrypted by any of ``secrets``) and restore its storage folders.

    Everything is validated before anything is written, so a bad archive leaves the
    target untouched. The caller is expected to pass a fresh (empty or missing)
    profile folder. Returns the restored member names (relative paths); the key
    records are not written anywhere (see :func:`unpack_with_keys`).
    Raises ``LoginStateError`` with a clear reason on any problem.
    """
    return unpack_with_keys(blob, profile_dir, secrets)[0]


def unpack_with_keys(blob: bytes, profile_dir: Path, secrets: Sequence[str]) -> tuple[list[str], list[dict]]:
    """:func:`unpack`, also returning the archive's captured key records (``[]`` if it has none)."""
    with _profile_tar(blob, secrets) as tar:
        keys = _keys_in(tar)
        return _extract(tar, Path(profile_dir)), keys


def read_keys(blob: bytes, secrets: Sequence[str]) -> list[dict]:
    """The captured key records of a profile archive (``[]`` for archives made without them)."""
    with _profile_tar(blob, secrets) as tar:
        return _keys_in(tar)


@contextlib.contextmanager
def _profile_tar(blob: bytes, secrets: Sequence[str]) -> Iterator[tarfile.TarFile]:
    if kind_of(blob) != "profile":
        raise LoginStateError("login state is a portable login state, not a profile archive")
    raw = _open_frame(blob, secrets)
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            yield tar
    except (tarfile.TarError, EOFError) as exc:
        raise LoginStateError(f"login state archive is unreadable: {exc}") from None


def _keys_in(tar: tarfile.TarFile) -> list[dict]:
    try:
        member = tar.getmember(KEYS_MEMBER)
    except KeyError:
        return []
    src = tar.extractfile(member) if member.isfile() else None
    if src is None:
        raise LoginStateError("login state key records are not a file")
    try:
        keys = json.loads(src.read())
    except (UnicodeDecodeError, ValueError):
        raise LoginStateError("login state key records are not valid JSON") from None
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise LoginStateError("login state key records are not a list of objects")
    return keys


def _extract(tar: tarfile.TarFile, profile_dir: Path) -> list[str]:
    members = [m for m in tar.getmembers() if m.name != KEYS_MEMBER]
    plan: list[tuple[PurePosixPath, tarfile.TarInfo]] = []
    for member in members:
        if not (member.isfile() or member.isdir()):
            raise LoginStateError(f"login state member is not a regular file or folder: {member.name!r}")
        plan.append((_safe_member_path(member.name), member))

    profile_dir.mkdir(parents=True, exist_ok=True)
    base = profile_dir.resolve()
    written: list[str] = []
    for rel, member in plan:
        target = base.joinpath(*rel.parts)
        # Belt and braces: a pre-existing symlink inside the target could redirect us.
        if base not in target.resolve().parents and target.resolve() != base:
            raise LoginStateError(f"login state member escapes the profile: {member.name!r}")
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        src = tar.extractfile(member)
        data = src.read() if src is not None else b""
        with open(target, "wb") as fh:
            fh.write(data)
        written.append(rel.as_posix())
    return written
