"""Login-state archive: the on-disk WhatsApp Web storage of one Chromium profile.

Why not Playwright's ``storage_state()``: WhatsApp Web keeps a non-extractable
WebCrypto key in IndexedDB and encrypts its localStorage secrets with keys derived
from it; ``storage_state(indexed_db=True)`` turns that key into ``{}`` and the
restored session is dead. A byte copy of the profile's ``Default/IndexedDB`` and
``Default/Local Storage`` folders restores it, so that is what we archive.

Frame (all integers big-endian, nothing else before or after)::

    b"ZHLS" | version (1 byte, = 1) | sha256(ciphertext) (32 bytes) | ciphertext

The ciphertext is a Fernet token of the zlib-compressed tar. Each Fernet key is
derived from a caller-supplied secret with HKDF-SHA256, so the database only ever
holds encrypted archives. Callers pass a list of secrets, newest first (see
``shared.secrets``): the first encrypts, any decrypts (``MultiFernet``). A Fernet
token decrypts with the key that made it whatever else is in the list, so rotation
needs no format change: version 1 archives made before rotation existed still open.

This module is pure Python (no Playwright, no Flask) so both the API side and the
workers can import it.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from cryptography.fernet import InvalidToken, MultiFernet

from shared.sealing import LOGIN_STATES, fernet_for, multi_fernet

MAGIC = b"ZHLS"
FORMAT_VERSION = 1
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


def _frame(token: bytes) -> bytes:
    return MAGIC + bytes([FORMAT_VERSION]) + hashlib.sha256(token).digest() + token


def _read_stable(path: Path) -> bytes | None:
    """File bytes, or None if it vanished or is locked (Chromium churns these folders)."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except (FileNotFoundError, PermissionError, IsADirectoryError, OSError):
        return None


def _build_tar(profile_dir: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
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


def pack(profile_dir: Path, secrets: Sequence[str]) -> bytes:
    """Archive, compress, encrypt (with the first of ``secrets``) and frame ``profile_dir``'s login storage.

    Raises ``LoginStateError`` if the profile has none of the storage folders.
    """
    profile_dir = Path(profile_dir)
    if not any((profile_dir / d).is_dir() for d in ARCHIVED_DIRS):
        raise LoginStateError(f"profile has no login storage to archive: {profile_dir.name}")
    fernet = _multi_fernet(secrets)
    compressed = zlib.compress(_build_tar(profile_dir), 6)
    return _frame(fernet.encrypt(compressed))


def _token_of(blob: bytes) -> bytes:
    """Check magic, version and checksum; return the Fernet token inside."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise LoginStateError("login state is not bytes")
    blob = bytes(blob)
    if len(blob) < _HEADER_LEN:
        raise LoginStateError("login state is truncated")
    if blob[:4] != MAGIC:
        raise LoginStateError("login state has a bad magic (not a ZapHub archive)")
    version = blob[4]
    if version != FORMAT_VERSION:
        raise LoginStateError(f"login state format version {version} is not supported")
    digest, token = blob[5:_HEADER_LEN], blob[_HEADER_LEN:]
    if hashlib.sha256(token).digest() != digest:
        raise LoginStateError("login state checksum mismatch")
    return token


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
        return _frame(fernet.rotate(token))
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
    profile folder. Returns the restored member names (relative paths).
    Raises ``LoginStateError`` with a clear reason on any problem.
    """
    raw = _open_frame(blob, secrets)
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            return _extract(tar, Path(profile_dir))
    except (tarfile.TarError, EOFError) as exc:
        raise LoginStateError(f"login state archive is unreadable: {exc}") from None


def _extract(tar: tarfile.TarFile, profile_dir: Path) -> list[str]:
    members = tar.getmembers()
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
