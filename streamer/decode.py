"""Record values to dicts (JSON with orjson, Avro with fastavro), and back for producers.

Decoders raise :class:`~streamer.errors.RecordError` with stage ``decode``; the worker sends
the record to the dead-letter topic and carries on.

Avro comes in two framings. *Plain* is bare Avro binary written with one known schema.
*Confluent* is the Schema Registry wire format: a magic byte ``0``, a big-endian 4-byte schema
id, then Avro binary; streamer maps ids to local ``.avsc`` files instead of calling a registry.

Examples
--------
>>> schema = {"type": "record", "name": "E", "fields": [{"name": "id", "type": "string"},
...           {"name": "x", "type": "double"}]}
>>> enc = AvroEncoder(schema, schema_id=7)
>>> data = enc.encode({"id": "a", "x": 1.5})
>>> data[:5]
b'\\x00\\x00\\x00\\x00\\x07'
>>> AvroDecoder(schema_ids={7: schema}).decode(data)
{'id': 'a', 'x': 1.5}
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import fastavro
import orjson

from streamer.errors import ConfigError, RecordError

__all__ = [
    "AvroDecoder",
    "AvroEncoder",
    "Decoder",
    "Encoder",
    "JsonDecoder",
    "JsonEncoder",
    "load_schema",
    "make_decoder",
]

_MAGIC = 0
_HEADER = struct.Struct(">bI")


class Decoder(Protocol):
    def decode(self, value: bytes) -> dict[str, Any]: ...


class Encoder(Protocol):
    def encode(self, obj: Mapping[str, Any]) -> bytes: ...


def load_schema(path: str | Path, *, setting: str = "schema") -> Any:
    """Read and parse an .avsc file; a bad file is a :class:`ConfigError` naming ``setting``."""
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(setting, f"Avro schema file {str(path)!r} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(setting, f"{path} is not JSON: {exc}") from exc
    try:
        return fastavro.parse_schema(raw)
    except Exception as exc:
        raise ConfigError(setting, f"{path} is not a valid Avro schema: {exc}") from exc


def _parse(schema: Any) -> Any:
    return (
        schema
        if isinstance(schema, dict) and "__fastavro_parsed" in schema
        else (fastavro.parse_schema(schema))
    )


class JsonDecoder:
    """A JSON object per record (orjson: strict RFC 8259, so NaN and Infinity are refused)."""

    def decode(self, value: bytes) -> dict[str, Any]:
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise RecordError("decode", "undecodable", f"not valid JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise RecordError(
                "decode", "undecodable", f"expected a JSON object, got {type(obj).__name__}"
            )
        return obj


class AvroDecoder:
    """Avro binary, plain or in the Confluent wire format.

    Parameters
    ----------
    schema
        Writer schema of plain payloads (parsed or as a dict); None if only framed payloads come.
    schema_ids
        Confluent schema id -> writer schema, for framed payloads.
    framing
        ``plain``, ``confluent``, or ``auto``: framed when the payload starts with the magic
        byte and a known id, plain otherwise. A plain payload can start with a zero byte too
        (a zero long, an empty string), so ``auto`` also needs the plain schema to read all the
        bytes; set the framing explicitly when all producers agree.
    """

    def __init__(
        self,
        schema: Any = None,
        schema_ids: Mapping[int, Any] | None = None,
        framing: str = "auto",
    ) -> None:
        if framing not in ("auto", "plain", "confluent"):
            raise ValueError(f"framing must be auto, plain or confluent, got {framing!r}")
        self.schema = None if schema is None else _parse(schema)
        self.schema_ids = {int(k): _parse(v) for k, v in (schema_ids or {}).items()}
        self.framing = framing
        if framing == "plain" and self.schema is None:
            raise ValueError("plain framing needs a schema")
        if framing == "confluent" and not self.schema_ids:
            raise ValueError("confluent framing needs schema_ids")

    def _read(self, value: bytes, schema: Any, start: int) -> dict[str, Any]:
        buf = io.BytesIO(value)
        buf.seek(start)
        try:
            obj = fastavro.schemaless_reader(buf, schema, None)
        except Exception as exc:
            raise RecordError(
                "decode", "undecodable", f"not Avro of the schema: {type(exc).__name__}: {exc}"
            ) from exc
        if buf.tell() != len(value):
            raise RecordError(
                "decode",
                "undecodable",
                f"Avro record ends at byte {buf.tell()} of {len(value)}: wrong schema or framing",
            )
        if not isinstance(obj, dict):
            raise RecordError("decode", "undecodable", "Avro schema is not a record")
        return obj

    def decode(self, value: bytes) -> dict[str, Any]:
        framed = len(value) >= _HEADER.size and value[0] == _MAGIC
        if self.framing != "plain" and framed:
            schema_id = _HEADER.unpack_from(value)[1]
            writer = self.schema_ids.get(schema_id)
            if writer is not None:
                if self.framing == "confluent" or self.schema is None:
                    return self._read(value, writer, _HEADER.size)
                try:
                    return self._read(value, writer, _HEADER.size)
                except RecordError:
                    pass  # auto: may still be a plain payload that starts with a zero byte
            elif self.framing == "confluent":
                raise RecordError(
                    "decode",
                    "unknown_schema",
                    f"schema id {schema_id} is not in input.avro.schema_ids",
                )
        elif self.framing == "confluent":
            raise RecordError("decode", "undecodable", "no Confluent wire-format header")
        if self.schema is None:
            raise RecordError("decode", "unknown_schema", "not framed and no plain schema set")
        return self._read(value, self.schema, 0)


class JsonEncoder:
    """Dicts to compact JSON; keys that are not strings (River class labels) become strings."""

    def encode(self, obj: Mapping[str, Any]) -> bytes:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)


class AvroEncoder:
    """Dicts to Avro binary; with ``schema_id``, in the Confluent wire format."""

    def __init__(self, schema: Any, schema_id: int | None = None) -> None:
        self.schema = _parse(schema)
        self._header = b"" if schema_id is None else _HEADER.pack(_MAGIC, schema_id)

    def encode(self, obj: Mapping[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(self._header)
        fastavro.schemaless_writer(buf, self.schema, obj)
        return buf.getvalue()


def make_decoder(
    fmt: str, *, schema_file: str | Path | None, schema_ids: Mapping[int, str | Path], framing: str
) -> Decoder:
    """The decoder that ``input.format`` asks for, with schema files read and checked."""
    if fmt == "json":
        return JsonDecoder()
    schema = load_schema(schema_file, setting="input.avro.schema") if schema_file else None
    ids = {
        int(k): load_schema(p, setting=f"input.avro.schema_ids.{k}") for k, p in schema_ids.items()
    }
    if schema is None and not ids:
        raise ConfigError(
            "input.avro.schema", "Avro input needs a schema file, or input.avro.schema_ids"
        )
    if framing == "plain" and schema is None:
        raise ConfigError("input.avro.schema", "plain framing needs a schema file")
    if framing == "confluent" and not ids:
        raise ConfigError("input.avro.schema_ids", "confluent framing needs at least one id")
    return AvroDecoder(schema, ids, framing)
