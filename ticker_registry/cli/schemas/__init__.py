"""The rows each command prints, as JSON Schema documents: one ``<command>.json`` per command.

``--format json`` prints an array of row objects and ``--format ndjson`` the same objects,
one a line; CSV has the same columns and ``status --wide`` the same table. Each schema's
``items.required`` lists every key of a row, in output order: it is where the commands
take their columns (:func:`columns`), so a schema and the output cannot drift apart.
docs/cli-output.md is generated from these files by :func:`markdown`.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

__all__ = ["columns", "commands", "markdown", "schema"]


@cache
def schema(command: str) -> dict[str, Any]:
    """The JSON Schema of ``command``'s JSON output (an array of rows)."""
    path = files(__name__) / f"{command}.json"
    if not path.is_file():
        raise ValueError(f"no output schema for command {command!r}; known: "
                         f"{', '.join(commands())}")
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def columns(command: str) -> list[str]:
    """The keys of every row ``command`` prints, in order."""
    return list(schema(command)["items"]["required"])


def commands() -> list[str]:
    """Every command with an output schema, sorted."""
    return sorted(p.name[:-len(".json")] for p in files(__name__).iterdir()
                  if p.name.endswith(".json"))


def _type(spec: dict[str, Any]) -> str:
    kinds = spec.get("type", "any")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    text = " or ".join("null" if k == "null" else k for k in kinds)
    if "array" in kinds and "items" in spec:
        text = text.replace("array", f"array of {_type(spec['items'])}")
    if "enum" in spec:
        text += ": " + ", ".join(json.dumps(v) for v in spec["enum"])
    return text


def markdown() -> str:
    """docs/cli-output.md: one section per command, its keys with type and meaning."""
    lines = ["# CLI output: JSON, NDJSON and CSV",
             "",
             "<!-- Generated from ticker_registry/cli/schemas/*.json by "
             "ticker_registry.cli.schemas.markdown(); tests/test_cli_output.py checks it "
             "(TR_UPDATE_SNAPSHOTS=1 rewrites it). -->",
             "",
             "Every command that prints rows takes `--format table|json|csv|ndjson`. `json` is",
             "an array of row objects, `ndjson` the same objects one per line, `csv` the same",
             "keys as columns. A command's rows always have exactly the keys listed below, in",
             "this order, whatever the data; values are raw: numbers as numbers, missing values",
             "(and NaN) as `null` (an empty CSV cell), lists as arrays (in CSV joined by `,`).",
             "The default table may show fewer columns, formatted for people (`status --wide`",
             "shows them all). The JSON Schema of each command is",
             "`ticker_registry/cli/schemas/<command>.json`.",
             ""]
    for command in commands():
        doc = schema(command)
        props = doc["items"]["properties"]
        lines += [f"## {command}", "", doc["description"], "", "| key | type | meaning |",
                  "| --- | --- | --- |"]
        lines += [f"| `{key}` | {_type(props[key])} | {props[key].get('description', '')} |"
                  for key in columns(command)]
        lines.append("")
    return "\n".join(lines)
