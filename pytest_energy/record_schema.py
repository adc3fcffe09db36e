"""The JSON Schema of results files, derived from the dataclasses in :mod:`.record`.

The committed ``schema/results.schema.json`` is this function's output; a test
keeps the two equal, so the schema cannot drift from what the plugin writes.
Regenerate with
``python -m pytest_energy.record_schema > pytest_energy/schema/results.schema.json``.
"""

from __future__ import annotations

import json
import typing
from dataclasses import MISSING, fields, is_dataclass
from typing import Any

from pytest_energy import record

SCHEMA_ID = "https://github.com/pytest-energy/pytest-energy/schema/results.schema.json"


def _type(annotation: Any, definitions: dict[str, Any]) -> dict[str, Any]:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is type(None):
        return {"type": "null"}
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return {"anyOf": [_type(a, definitions) for a in args]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin is list:
        return {"type": "array", "items": _type(args[0], definitions) if args else {}}
    if origin is dict:
        value = _type(args[1], definitions) if len(args) == 2 else {}
        return {"type": "object", "additionalProperties": value}
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is int:
        return {"type": "integer"}
    if annotation is float:
        return {"type": ["number", "null"]}  # non-finite floats are written as null
    if annotation is str:
        return {"type": "string"}
    if isinstance(annotation, type) and is_dataclass(annotation):
        _define(annotation, definitions)
        return {"$ref": f"#/$defs/{annotation.__name__}"}
    return {}


def _define(cls: type, definitions: dict[str, Any]) -> None:
    if cls.__name__ in definitions:
        return
    definitions[cls.__name__] = {}  # placeholder against recursion
    hints = typing.get_type_hints(cls, vars(record))
    properties: dict[str, Any] = {}
    required: list[str] = []
    for f in fields(cls):
        properties[f.name] = _type(hints[f.name], definitions)
        if f.default is MISSING and f.default_factory is MISSING:
            required.append(f.name)
    doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
    definitions[cls.__name__] = {
        "type": "object",
        "description": doc,
        "properties": properties,
        "required": required,
    }


def build_schema() -> dict[str, Any]:
    """The schema of a results file of the current ``SCHEMA_VERSION``."""
    definitions: dict[str, Any] = {}
    _define(record.RunRecord, definitions)
    root = definitions.pop("RunRecord")
    root["properties"]["schema_version"] = {"const": record.SCHEMA_VERSION}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "pytest-energy results",
        **root,
        "$defs": dict(sorted(definitions.items())),
    }


def main() -> None:
    print(json.dumps(build_schema(), indent=1))


if __name__ == "__main__":
    main()
