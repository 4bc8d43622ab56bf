"""Decode Chromium's IndexedDB LevelDB keys and values, as far as stored CryptoKeys need.

Keys: every IndexedDB key starts with a prefix naming database, object store and index
ids (Chromium's ``KeyPrefix``); records of an object store have index id 1 and are
followed by the encoded IDB key. Database and object store names live in metadata keys.

Values: a varint version, then Blink's SerializedScriptValue (``0xFF`` version, an
optional trailer-offset header, then V8's own ``0xFF`` version and the V8 value). A
CryptoKey is a V8 host object (``\\``) whose Blink tag is ``K``; its body is written by
``V8ScriptValueSerializerForModules::WriteCryptoKey``: a sub-tag with the algorithm's
parameters, the usages bit mask (bit 0 = extractable) and the key material, raw bytes
for secret keys and PKCS#8 / SPKI for private / public ones.

The V8 part understands primitives, strings, plain objects and arrays (so a key kept
inside an object is found too); anything else raises :class:`UnsupportedValue`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from workers.whatsapp.leveldb_files import read_varint

DATABASE_NAME_TYPE = 201  # global metadata key type byte: origin + database name -> id
OBJECT_STORE_META = 50  # database metadata key type byte: object store metadata
OBJECT_STORE_DATA_INDEX = 1
_BLOB_WRAPPED = 0x11  # Blink "requires processing" pseudo-version: value lives elsewhere

# WebCrypto algorithm ids on the wire (blink web_crypto_sub_tags.h).
ALGORITHMS = {
    1: "AES-CBC",
    2: "HMAC",
    3: "RSASSA-PKCS1-v1_5",
    5: "SHA-1",
    6: "SHA-256",
    7: "SHA-384",
    8: "SHA-512",
    9: "AES-GCM",
    10: "RSA-OAEP",
    11: "AES-CTR",
    12: "AES-KW",
    13: "RSA-PSS",
    14: "ECDSA",
    15: "ECDH",
    16: "HKDF",
    17: "PBKDF2",
    18: "Ed25519",
    19: "X25519",
}
CURVES = {1: "P-256", 2: "P-384", 3: "P-521"}
# Usage bits in the order CryptoKey.usages lists them.
USAGES = (
    (1 << 1, "encrypt"),
    (1 << 2, "decrypt"),
    (1 << 3, "sign"),
    (1 << 4, "verify"),
    (1 << 5, "deriveKey"),
    (1 << 8, "deriveBits"),
    (1 << 6, "wrapKey"),
    (1 << 7, "unwrapKey"),
)
_EXTRACTABLE = 1
_AES, _HMAC, _RSA, _EC, _NO_PARAMS, _ED25519, _X25519 = 1, 2, 4, 5, 6, 7, 8
_PUBLIC, _PRIVATE = 1, 2


class UnsupportedValue(ValueError):
    """A stored value this reader does not decode (kept out of the results)."""


@dataclass(frozen=True)
class StoredKey:
    """A CryptoKey as Chromium stored it, ready for ``crypto.subtle.importKey``."""

    format: str
    key_data: bytes
    algorithm: str | dict[str, Any]
    usages: list[str]
    extractable: bool


# ------------------------------------------------------------------------ keys
def split_prefix(key: bytes) -> tuple[int, int, int, int]:
    """(database id, object store id, index id, offset of the rest) of an IDB LevelDB key."""
    if not key:
        raise UnsupportedValue("empty key")
    first = key[0]
    sizes = ((first >> 5) + 1, ((first >> 2) & 7) + 1, (first & 3) + 1)
    pos, ids = 1, []
    for size in sizes:
        if pos + size > len(key):
            raise UnsupportedValue("truncated key prefix")
        ids.append(int.from_bytes(key[pos : pos + size], "little"))
        pos += size
    return ids[0], ids[1], ids[2], pos


def read_string_with_length(buf: bytes, pos: int) -> tuple[str, int]:
    """A varint count of UTF-16 code units, then the units big-endian."""
    units, pos = read_varint(buf, pos)
    end = pos + 2 * units
    if end > len(buf):
        raise UnsupportedValue("truncated string")
    return buf[pos:end].decode("utf-16-be"), end


def decode_idb_key(buf: bytes, pos: int = 0) -> tuple[Any, int]:
    """An encoded IndexedDB key (string, number, date, binary, array) as Python."""
    kind = buf[pos]
    pos += 1
    if kind == 1:
        return read_string_with_length(buf, pos)
    if kind in (2, 3):  # date, number: a little-endian double
        return struct.unpack_from("<d", buf, pos)[0], pos + 8
    if kind == 4:
        count, pos = read_varint(buf, pos)
        items = []
        for _ in range(count):
            item, pos = decode_idb_key(buf, pos)
            items.append(item)
        return items, pos
    if kind == 6:
        size, pos = read_varint(buf, pos)
        return bytes(buf[pos : pos + size]).hex(), pos + size
    raise UnsupportedValue(f"IDB key type {kind}")


# ---------------------------------------------------------------------- values
def value_keys(value: bytes) -> list[StoredKey]:
    """Every CryptoKey inside one object store record's value (empty if none)."""
    _, pos = read_varint(value, 0)  # IndexedDB value version
    if value[pos : pos + 1] != b"\xff":
        raise UnsupportedValue("no Blink envelope")
    blink_version, pos = read_varint(value, pos + 1)
    if blink_version == _BLOB_WRAPPED:
        raise UnsupportedValue("value stored outside LevelDB (blob or wrapped)")
    if value[pos : pos + 1] == b"\xfe":  # trailer offset (8) and size (4)
        pos += 13
    reader = _V8Reader(value, pos)
    if reader.byte() != 0xFF:
        raise UnsupportedValue("no V8 envelope")
    reader.varint()  # V8 format version
    reader.value()
    return reader.found


class _V8Reader:
    """Just enough of V8's ValueDeserializer to walk plain data down to CryptoKeys."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        self.found: list[StoredKey] = []

    def byte(self) -> int:
        if self.pos >= len(self.buf):
            raise UnsupportedValue("truncated value")
        self.pos += 1
        return self.buf[self.pos - 1]

    def varint(self) -> int:
        value, self.pos = read_varint(self.buf, self.pos)
        return value

    def raw(self, size: int) -> bytes:
        if self.pos + size > len(self.buf):
            raise UnsupportedValue("truncated value")
        self.pos += size
        return bytes(self.buf[self.pos - size : self.pos])

    def tag(self) -> int:
        tag = self.byte()
        while tag == 0:  # padding
            tag = self.byte()
        return tag

    def value(self) -> Any:
        tag = self.tag()
        simple = {ord("_"): None, ord("0"): None, ord("T"): True, ord("F"): False}
        if tag in simple:
            return simple[tag]
        if tag == ord("I"):
            n = self.varint()
            return (n >> 1) ^ -(n & 1)
        if tag == ord("U"):
            return self.varint()
        if tag in (ord("N"), ord("D")):
            return struct.unpack("<d", self.raw(8))[0]
        if tag in (ord('"'), ord("S")):
            return self.raw(self.varint()).decode("latin-1" if tag == ord('"') else "utf-8")
        if tag == ord("c"):
            return self.raw(self.varint()).decode("utf-16-le")
        if tag == ord("o"):
            return self._properties(ord("{"), {})
        if tag == ord("A"):
            items = [self.value() for _ in range(self.varint())]
            self._properties(ord("$"), {})
            return items
        if tag == ord("a"):
            self.varint()  # length
            return self._properties(ord("@"), {})
        if tag == ord("\\"):
            return self._host_object()
        raise UnsupportedValue(f"V8 tag {chr(tag)!r}")

    def _properties(self, end: int, into: dict) -> dict:
        while True:
            while self.buf[self.pos : self.pos + 1] == b"\0":  # padding
                self.pos += 1
            if self.buf[self.pos : self.pos + 1] == bytes([end]):
                self.pos += 1
                self.varint()  # property count
                if end != ord("{"):
                    self.varint()  # arrays repeat their length
                return into
            key = self.value()
            into[key] = self.value()

    def _host_object(self) -> StoredKey:
        if self.byte() != ord("K"):
            raise UnsupportedValue("host object other than CryptoKey")
        key = self._crypto_key()
        self.found.append(key)
        return key

    def _crypto_key(self) -> StoredKey:
        sub = self.byte()
        private: bool | None = None  # None: a secret key
        if sub == _AES:
            algorithm: str | dict[str, Any] = {"name": _algorithm(self.varint())}
            self.varint()  # length in bytes, implied by the material
        elif sub == _HMAC:
            self.varint()
            algorithm = {"name": "HMAC", "hash": _algorithm(self.varint())}
        elif sub == _RSA:
            name = _algorithm(self.varint())
            private = self.varint() == _PRIVATE
            self.varint()  # modulus length
            self.raw(self.varint())  # public exponent
            algorithm = {"name": name, "hash": _algorithm(self.varint())}
        elif sub == _EC:
            name = _algorithm(self.varint())
            private = self.varint() == _PRIVATE
            algorithm = {"name": name, "namedCurve": CURVES.get(self.varint(), "?")}
        elif sub in (_ED25519, _X25519):
            algorithm = {"name": _algorithm(self.varint())}
            private = self.varint() == _PRIVATE
        elif sub == _NO_PARAMS:
            algorithm = _algorithm(self.varint())  # HKDF / PBKDF2: imported by name
        else:
            raise UnsupportedValue(f"CryptoKey sub-tag {sub}")
        mask = self.varint()
        material = self.raw(self.varint())
        fmt = "raw" if private is None else ("pkcs8" if private else "spki")
        usages = [name for bit, name in USAGES if mask & bit]
        return StoredKey(fmt, material, algorithm, usages, bool(mask & _EXTRACTABLE))


def _algorithm(wire_id: int) -> str:
    try:
        return ALGORITHMS[wire_id]
    except KeyError:
        raise UnsupportedValue(f"algorithm id {wire_id}") from None
