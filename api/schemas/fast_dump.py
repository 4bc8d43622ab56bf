"""Marshmallow dumps without the per-field machinery, for the API's responses.

A list of 100 sessions dumped by marshmallow spends most of its time in the generic
``Field.serialize`` path (accessor lookup, default handling, per-field method calls),
not in the conversions themselves. :func:`fast_dumper` reads a schema once and builds
a plain function per schema: one attribute read and one converter per field, nested
schemas compiled the same way. The output is marshmallow's own, by construction:

- the fields it knows (``String``, numbers, ``Boolean``, ``DateTime`` and
  :class:`~api.schemas.fields.UtcDateTime`, ``Function``, ``Nested``, ``List``) are
  converted exactly as their ``_serialize`` does;
- any other field, a field with a ``dump_default`` or a dotted ``attribute`` goes
  through marshmallow's own ``Field.serialize``;
- a schema with dump hooks or its own ``get_attribute`` keeps marshmallow's ``dump``.

``tests/integration/test_fast_dump.py`` checks the read routes' answers against
marshmallow's own dumps of the same data. The schemas stay the OpenAPI document's source.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from marshmallow import Schema, fields, missing
from marshmallow.schema import POST_DUMP, PRE_DUMP
from marshmallow.utils import ensure_text_type, get_value

from api.schemas.fields import UtcDateTime

Dump = Callable[[Any], Any]
# One step per field: (output key, attribute to read or None, converter). With an
# attribute, the converter gets the value (never None); without one, the whole object.
Step = tuple[str, str | None, Callable[[Any], Any]]


def _text(value: Any) -> Any:
    return value if type(value) is str else ensure_text_type(value)


def _identity(value: Any) -> Any:
    return value


def _datetime(field: fields.DateTime, utc: bool) -> Callable[[Any], Any]:
    data_format = field.format or field.DEFAULT_FORMAT
    format_func = field.SERIALIZATION_FUNCS.get(data_format)

    def convert(value: Any) -> Any:
        if utc and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return format_func(value) if format_func else value.strftime(data_format)

    if format_func is datetime.isoformat:
        # The generated reader writes this one inline (a page of sessions has 300 of them).
        INLINE_ISO[convert] = utc
    return convert


# The ISO text of recently dumped UTC timestamps. ``isoformat`` costs about a microsecond,
# three times a session; a session's timestamps are the same from one read to the next.
# Only the ``UTC`` singleton is looked up: equal datetimes in other zones differ in text.
_iso_utc = lru_cache(maxsize=8192)(datetime.isoformat)

# Converters the generated reader inlines: ISO datetimes (→ whether naive means UTC), and
# integer fields (whose conversion is ``int(value)``, nothing to do for an ``int``).
INLINE_ISO: dict[Callable[[Any], Any], bool] = {}
INLINE_INT: set[Callable[[Any], Any]] = set()


def _value_converter(field: fields.Field) -> Callable[[Any], Any] | None:
    """How ``field`` turns a non-None value into JSON, or ``None`` if it is not one we know."""
    kind = type(field)
    if kind.serialize is not fields.Field.serialize or not kind._CHECK_ATTRIBUTE:
        return None
    serialize = kind._serialize
    if serialize is fields.String._serialize:
        return _text
    if serialize is fields.Number._serialize and not field.as_string:
        if field.num_type is int:
            INLINE_INT.add(field._format_num)
        return field._format_num
    if serialize is fields.Field._serialize:  # Boolean, Raw: the value as it is
        return _identity
    if serialize is fields.DateTime._serialize:
        return _datetime(field, utc=False)
    if serialize is UtcDateTime._serialize:
        return _datetime(field, utc=True)
    if serialize is fields.Nested._serialize:
        child = _compile_one(field.schema)
        if child is None:
            return None
        if field.schema.many or field.many:
            return lambda value: [child(each) for each in value]
        return child
    if serialize is fields.List._serialize:
        inner = _value_converter(field.inner)
        if inner is None:
            return None
        return lambda value: [None if each is None else inner(each) for each in value]
    return None


def _step(schema: Schema, name: str, field: fields.Field) -> Step:
    key = field.data_key if field.data_key is not None else name
    attribute = field.attribute or name
    if type(field)._serialize is fields.Function._serialize and field.serialize_func is not None:
        return key, None, field.serialize_func
    convert = _value_converter(field)
    if convert is None or field.dump_default is not missing or "." in attribute:
        return key, None, lambda obj: field.serialize(name, obj, accessor=schema.get_attribute)
    return key, attribute, convert


def _generated_reader(steps: list[Step]) -> Dump:
    """The steps as one straight-line function over an object's attributes (no loop, no tuples).

    The same logic as the loop of ``read_mapping`` in :func:`_compile_one`, unrolled: each
    field costs one attribute read (``obj.name`` where the name allows it: a plain load,
    not a ``getattr`` call; a missing attribute skips the field, as ``getattr``'s default
    did) and, unless its converter is the identity - or a string's, given a ``str`` - one call.
    """
    lines = ["def read_object(obj):", "    out = {}"]
    scope: dict[str, Any] = {"missing": missing, "UTC": UTC, "iso": datetime.isoformat, "iso_utc": _iso_utc}
    for index, (key, attribute, convert) in enumerate(steps):
        scope[f"c{index}"], scope[f"k{index}"] = convert, key
        if attribute is None:
            lines += [f"    v = c{index}(obj)", f"    if v is not missing: out[k{index}] = v"]
            continue
        if attribute.isidentifier() and not keyword.iskeyword(attribute) and not attribute.startswith("__"):
            lines += ["    try:", f"        v = obj.{attribute}"]
            lines += ["    except AttributeError:", "        v = missing"]
        else:
            scope[f"a{index}"] = attribute
            lines.append(f"    v = getattr(obj, a{index}, missing)")
        if convert is _text:
            lines.append(f"    if type(v) is not str and v is not None and v is not missing: v = c{index}(v)")
        elif convert in INLINE_INT:
            lines.append(f"    if type(v) is not int and v is not None and v is not missing: v = c{index}(v)")
        elif convert in INLINE_ISO:
            # datetime.isoformat unbound, as marshmallow calls it: anything but a datetime fails alike.
            lines.append("    if v is not None and v is not missing:")
            if INLINE_ISO[convert]:
                lines.append("        if v.tzinfo is None: v = v.replace(tzinfo=UTC)")
                lines.append("        v = iso_utc(v) if v.tzinfo is UTC else iso(v)")
            else:
                lines.append("        v = iso(v)")
        elif convert is not _identity:
            lines.append(f"    if v is not None and v is not missing: v = c{index}(v)")
        lines.append(f"    if v is not missing: out[k{index}] = v")
    lines.append("    return out")
    exec("\n".join(lines), scope)  # noqa: S102 - source built above from field names held in variables
    return scope["read_object"]


def _compile_one(schema: Schema) -> Dump | None:
    """A function dumping one object like ``schema``, or ``None`` if only marshmallow can."""
    if schema._hooks[PRE_DUMP] or schema._hooks[POST_DUMP]:
        return None
    if type(schema).get_attribute is not Schema.get_attribute:
        return None
    steps = [_step(schema, name, field) for name, field in schema.dump_fields.items()]

    def read_mapping(obj: Any) -> dict[str, Any]:
        # marshmallow reads obj[key] first when obj has __getitem__ (a dict); else an attribute.
        out = {}
        for key, attribute, convert in steps:
            if attribute is None:
                value = convert(obj)
            else:
                value = get_value(obj, attribute, missing)
                if value is not None and value is not missing:
                    value = convert(value)
            if value is not missing:
                out[key] = value
        return out

    read_object = _generated_reader(steps)
    # Whether a type's objects are read as mappings, found once per type: hasattr() on an
    # object without __getitem__ raises and catches an AttributeError each time.
    mapping_types: dict[type, bool] = {}

    def dump_one(obj: Any) -> dict[str, Any]:
        kind = type(obj)
        mapping = mapping_types.get(kind)
        if mapping is None:
            mapping = mapping_types[kind] = hasattr(obj, "__getitem__")
        return read_mapping(obj) if mapping else read_object(obj)

    return dump_one


def _compile(schema: Schema) -> Dump:
    one = _compile_one(schema)
    if one is None:  # the class's dump: the instance's may be the fast one
        return lambda obj: type(schema).dump(schema, obj)
    if schema.many:
        return lambda objs: None if objs is None else [one(obj) for obj in objs]
    return one


def fast_dumper(schema: Schema) -> Dump:
    """A function dumping like ``schema.dump(obj)`` (compiled on first use, then kept)."""
    compiled: list[Dump] = []

    def dump(obj: Any) -> Any:
        if not compiled:
            compiled.append(_compile(schema))
        return compiled[0](obj)

    return dump


# Every schema instance given a fast dump (tests switch them back to compare).
FAST_SCHEMAS: list[Schema] = []


def with_fast_dump(schema: Any) -> Any:
    """``schema`` (an instance) whose ``dump`` goes through :func:`fast_dumper`; others as they are."""
    if not isinstance(schema, Schema):
        return schema
    fast = fast_dumper(schema)

    def dump(obj: Any, *, many: bool | None = None) -> Any:
        if many is not None and many != schema.many:
            return type(schema).dump(schema, obj, many=many)
        return fast(obj)

    schema.dump = dump
    FAST_SCHEMAS.append(schema)
    return schema
