"""JSON Schema for every message, checked in under `protocol/schemas/`.

Robots and gateways written in other languages implement the contract from these
files. Regenerate after changing a model: `python -m protocol.schema`; a test
fails while the checked-in files are stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from protocol.enrollment import EnrollRequest, EnrollResponse
from protocol.models import (
    BODY_BY_KIND,
    PARAMS_BY_TYPE,
    Command,
    Envelope,
    ModelAssignment,
    ModelManifest,
    Watermark,
)
from protocol.robot import ROBOT_MESSAGES

SCHEMA_DIR = Path(__file__).parent / "schemas"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _schema(model: type[BaseModel], title: str) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    return {"$schema": _DIALECT, "$id": f"outpost:v1:{title}", **schema}


def _tie(schema: dict[str, Any], key: str, field: str, mapping: dict[Any, Any]) -> None:
    """Add if/then clauses so `field` must match the model named by `key`."""
    schema["allOf"] = [
        {
            "if": {"properties": {key: {"const": str(value)}}, "required": [key]},
            "then": {"properties": {field: {"$ref": f"#/$defs/{model.__name__}"}}},
        }
        for value, model in mapping.items()
    ]


def generate_schemas() -> dict[str, dict[str, Any]]:
    """File name → JSON Schema, for every top-level message."""
    envelope = _schema(Envelope, "envelope")
    _tie(envelope, "kind", "body", BODY_BY_KIND)
    command = _schema(Command, "command")
    _tie(command, "type", "params", PARAMS_BY_TYPE)
    schemas = {"envelope.json": envelope, "command.json": command}
    for model, name in (
        (Watermark, "watermark"),
        (ModelManifest, "model-manifest"),
        (ModelAssignment, "model-assignment"),
        (EnrollRequest, "enroll-request"),
        (EnrollResponse, "enroll-response"),
    ):
        schemas[f"{name}.json"] = _schema(model, name)
    for kind, body in BODY_BY_KIND.items():
        schemas[f"body.{kind}.json"] = _schema(body, f"body.{kind}")
    for suffix, message in ROBOT_MESSAGES.items():
        schemas[f"robot.{suffix}.json"] = _schema(message, f"robot.{suffix}")
    return schemas


def render(schema: dict[str, Any]) -> str:
    """Stable, diff-friendly text of one schema."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema into `directory`, removing stale files; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    schemas = generate_schemas()
    for stale in directory.glob("*.json"):
        if stale.name not in schemas:
            stale.unlink()
    written = []
    for name, schema in sorted(schemas.items()):
        path = directory / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_schemas():
        sys.stdout.write(f"wrote {written_path}\n")
