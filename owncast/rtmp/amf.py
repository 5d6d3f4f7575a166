"""AMF0 encoding and decoding, and the AMF3 values AMF0 may switch to.

AMF3 reaches the server only inside AMF0, after the 0x11 (avmplus) marker: an AMF3
command or data message is a 0x00 byte and then AMF0 (the session skips the byte), and any AMF0
value may be an AMF3 one. So there is no AMF3 entry point, only the AMF3 value decoder
that the 0x11 marker calls, sharing the message's reference tables.

Pure functions over bytes; ``AmfError`` for anything malformed, so the connection that
sent it can be dropped without harming the server.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

_DOUBLE = struct.Struct(">d")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
MAX_DEPTH = 64
#: Largest AMF0 encoding produced. Decoded AMF3 may share one object many times by
#: reference (or contain itself): expanded, a few hundred bytes can stand for terabytes.
MAX_ENCODED = 1024 * 1024


class AmfError(ValueError):
    """Malformed or unsupported AMF data."""


class Undefined:
    """AMF ``undefined``, distinct from ``null`` (None)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "Undefined"


UNDEFINED = Undefined()


class EcmaArray(dict):
    """An AMF0 ECMA (associative) array: encodes as type 8 rather than an object."""


# -- AMF0 decoding ---------------------------------------------------------------------
class _Reader:
    __slots__ = ("data", "pos", "amf3_strings", "amf3_objects", "amf3_traits")

    def __init__(self, data: bytes | memoryview, pos: int = 0):
        self.data = memoryview(data)
        self.pos = pos
        self.amf3_strings: list[str] = []
        self.amf3_objects: list[Any] = []
        self.amf3_traits: list[tuple] = []

    def take(self, n: int) -> memoryview:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise AmfError("truncated AMF data")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise AmfError("truncated AMF data")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def utf8(self, n: int) -> str:
        try:
            return str(self.take(n), "utf-8")
        except UnicodeDecodeError as e:
            raise AmfError("invalid UTF-8 in AMF string") from e


def _amf0_key_values(r: _Reader, depth: int, target: dict) -> dict:
    while True:
        (n,) = _U16.unpack(r.take(2))
        if n == 0:
            if r.byte() != 0x09:
                raise AmfError("AMF0 object without end marker")
            return target
        key = r.utf8(n)
        target[key] = _amf0_value(r, depth + 1)


def _amf0_value(r: _Reader, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise AmfError("AMF data nested too deeply")
    marker = r.byte()
    if marker == 0x00:
        return _DOUBLE.unpack(r.take(8))[0]
    if marker == 0x01:
        return r.byte() != 0
    if marker == 0x02:
        (n,) = _U16.unpack(r.take(2))
        return r.utf8(n)
    if marker == 0x03:
        return _amf0_key_values(r, depth, {})
    if marker in (0x05, 0x0D):  # null, unsupported
        return None
    if marker == 0x06:
        return UNDEFINED
    if marker == 0x08:
        r.take(4)  # the count is only a hint; the end marker terminates
        return _amf0_key_values(r, depth, EcmaArray())
    if marker == 0x0A:
        (count,) = _U32.unpack(r.take(4))
        if count > len(r.data) - r.pos:
            raise AmfError("AMF0 strict array longer than its message")
        return [_amf0_value(r, depth + 1) for _ in range(count)]
    if marker == 0x0B:
        millis = _DOUBLE.unpack(r.take(8))[0]
        r.take(2)  # a time zone, always 0
        return _date(millis, "AMF0")
    if marker in (0x0C, 0x0F):  # long string, XML document
        (n,) = _U32.unpack(r.take(4))
        return r.utf8(n)
    if marker == 0x11:
        return _amf3_value(r, depth + 1)
    raise AmfError(f"unsupported AMF0 marker 0x{marker:02x}")


def _date(millis: float, kind: str) -> datetime:
    try:
        return datetime.fromtimestamp(millis / 1000, timezone.utc)
    except (OverflowError, OSError, ValueError) as e:
        raise AmfError(f"{kind} date out of range") from e


def decode_amf0(data: bytes | memoryview) -> list[Any]:
    """Every AMF0 value in ``data``, in order."""
    r = _Reader(data)
    values = []
    while r.pos < len(r.data):
        values.append(_amf0_value(r))
    return values


# -- AMF3 values (after AMF0's 0x11 marker) -----------------------------------------
def _u29(r: _Reader) -> int:
    value = 0
    for i in range(4):
        b = r.byte()
        if i == 3:
            return (value << 8) | b
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            return value
    return value  # pragma: no cover - loop always returns


def _amf3_string(r: _Reader) -> str:
    header = _u29(r)
    if not header & 1:
        index = header >> 1
        if index >= len(r.amf3_strings):
            raise AmfError("bad AMF3 string reference")
        return r.amf3_strings[index]
    text = r.utf8(header >> 1)
    if text:
        r.amf3_strings.append(text)
    return text


def _amf3_value(r: _Reader, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise AmfError("AMF data nested too deeply")
    marker = r.byte()
    if marker == 0x00:
        return UNDEFINED
    if marker == 0x01:
        return None
    if marker in (0x02, 0x03):
        return marker == 0x03
    if marker == 0x04:
        value = _u29(r)
        return value - (1 << 29) if value & (1 << 28) else value
    if marker == 0x05:
        return _DOUBLE.unpack(r.take(8))[0]
    if marker == 0x06:
        return _amf3_string(r)
    if marker in (0x07, 0x0B):  # XML document, XML
        return _amf3_leaf(r, r.utf8)
    if marker == 0x08:
        return _amf3_leaf(r, lambda _: _date(_DOUBLE.unpack(r.take(8))[0], "AMF3"))
    if marker == 0x09:
        header = _u29(r)
        if not header & 1:
            return _amf3_ref(r, header)
        count = header >> 1
        if count > len(r.data) - r.pos:
            raise AmfError("AMF3 array longer than its message")
        # Register the container before reading members, so references from inside
        # it resolve; an array with no associative part is a list, fixed up in place.
        index = len(r.amf3_objects)
        assoc: dict = {}
        r.amf3_objects.append(assoc)
        while True:
            key = _amf3_string(r)
            if not key:
                break
            assoc[key] = _amf3_value(r, depth + 1)
        if assoc:
            assoc.update((i, _amf3_value(r, depth + 1)) for i in range(count))
            return assoc
        dense: list = []
        r.amf3_objects[index] = dense
        dense.extend(_amf3_value(r, depth + 1) for _ in range(count))
        return dense
    if marker == 0x0A:
        return _amf3_object(r, depth)
    if marker == 0x0C:
        return _amf3_leaf(r, lambda n: bytes(r.take(n)))
    raise AmfError(f"unsupported AMF3 marker 0x{marker:02x}")


def _amf3_leaf(r: _Reader, read: Callable[[int], Any]) -> Any:
    """An object-table value without members (XML, date, byte array): a reference to an
    earlier one, or a new one that ``read(n)`` takes (``n``: the header's length field),
    remembered for later references."""
    header = _u29(r)
    if not header & 1:
        return _amf3_ref(r, header)
    value = read(header >> 1)
    r.amf3_objects.append(value)
    return value


def _amf3_ref(r: _Reader, header: int) -> Any:
    index = header >> 1
    if index >= len(r.amf3_objects):
        raise AmfError("bad AMF3 object reference")
    return r.amf3_objects[index]


def _amf3_object(r: _Reader, depth: int) -> dict:
    header = _u29(r)
    if not header & 1:
        return _amf3_ref(r, header)
    if not header & 2:
        index = header >> 2
        if index >= len(r.amf3_traits):
            raise AmfError("bad AMF3 traits reference")
        externalizable, dynamic, names = r.amf3_traits[index]
    else:
        externalizable, dynamic = bool(header & 4), bool(header & 8)
        _amf3_string(r)  # class name: anonymous objects are all we need
        names = [_amf3_string(r) for _ in range(header >> 4)]
        r.amf3_traits.append((externalizable, dynamic, names))
    if externalizable:
        raise AmfError("externalizable AMF3 objects are not supported")
    obj: dict = {}
    r.amf3_objects.append(obj)
    for name in names:
        obj[name] = _amf3_value(r, depth + 1)
    if dynamic:
        while True:
            key = _amf3_string(r)
            if not key:
                break
            obj[key] = _amf3_value(r, depth + 1)
    return obj


# -- AMF0 encoding ---------------------------------------------------------------------
def _encode_key(key: str, out: bytearray) -> None:
    raw = key.encode("utf-8")
    out += _U16.pack(len(raw))
    out += raw


def _encode(value: Any, out: bytearray, depth: int = 0) -> None:
    if depth > MAX_DEPTH or len(out) > MAX_ENCODED:
        raise AmfError("AMF value too large or nested too deeply to encode")
    if value is None:
        out.append(0x05)
    elif value is UNDEFINED:
        out.append(0x06)
    elif isinstance(value, bool):
        out += b"\x01\x01" if value else b"\x01\x00"
    elif isinstance(value, (int, float)):
        out.append(0x00)
        out += _DOUBLE.pack(float(value))
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        if len(raw) > 0xFFFF:
            out.append(0x0C)
            out += _U32.pack(len(raw))
        else:
            out.append(0x02)
            out += _U16.pack(len(raw))
        out += raw
    elif isinstance(value, dict):
        if isinstance(value, EcmaArray):
            out.append(0x08)
            out += _U32.pack(len(value))
        else:
            out.append(0x03)
        for key, item in value.items():
            _encode_key(str(key), out)
            _encode(item, out, depth + 1)
        out += b"\x00\x00\x09"
    elif isinstance(value, (list, tuple)):
        out.append(0x0A)
        out += _U32.pack(len(value))
        for item in value:
            _encode(item, out, depth + 1)
    elif isinstance(value, datetime):
        out.append(0x0B)
        out += _DOUBLE.pack(value.timestamp() * 1000)
        out += b"\x00\x00"
    else:
        raise AmfError(f"cannot encode {type(value).__name__} as AMF0")


def encode_amf0(*values: Any) -> bytes:
    out = bytearray()
    for value in values:
        _encode(value, out)
    return bytes(out)
