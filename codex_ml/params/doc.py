"""docs/params.md from the schema: every key with its type, default, allowed values and meaning.

`python -m codex_ml.params.doc > docs/params.md` (`make params-doc`); a test fails while the file
differs from what this prints, so the page cannot drift from the code.
"""

from __future__ import annotations

import json
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from codex_ml.params import Params
from codex_ml.params.section import Hint, constraints, expected_of, has_bounds

HEADER = """# Params

Every key of `params.yaml`, generated from the schema in `codex_ml/params/` (`make params-doc`; a test
fails while this page is stale). `params.yaml` is composed from `conf/` (Hydra groups); change a value
for one run with `dvc exp run` and `-S <key>=<value>`, or pick a profile with `-S train=quick`,
`-S model=llama-small`, `-S data=dir`. Types are strict: `1.5` is not an integer, `"1"` is not a number,
booleans are `true` or `false`. Bad values stop the first stage before any work, with one line per
problem naming its key: every problem of the file in one run.
"""


def type_name(annotation: Any) -> str:
    """The YAML author's name of a key's type."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return type_name(args[0])
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in args)
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin is dict:
        return "mapping"
    if annotation is type(None):
        return "null"
    return {int: "integer", float: "number", bool: "boolean", str: "string"}.get(annotation, str(annotation))


def rows(model: type[BaseModel], prefix: str) -> list[tuple[str, list[str]]]:
    """(section, table rows) for `model` and every section nested in it, depth first."""
    own: list[str] = []
    nested: list[tuple[str, list[str]]] = []
    for name, info in model.model_fields.items():
        dotted = f"{prefix}.{name}" if prefix else name
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            nested.extend(rows(annotation, dotted))
            continue
        default = info.get_default(call_default_factory=True)
        allowed = expected_of(info) if has_bounds(info) else ""
        if not allowed and (hints := [m.text for m in constraints(info)[1] if isinstance(m, Hint)]):
            allowed = hints[0]
        own.append(f"| `{dotted}` | {type_name(annotation)} | `{json.dumps(default)}` | {allowed} | "
                   f"{info.description or ''} |")
    return ([(prefix, own)] if own else []) + nested


def markdown() -> str:
    parts = [HEADER]
    for section, table in rows(Params, ""):
        doc = (Params.model_fields[section.split(".")[0]].description or "") if "." not in section else ""
        title = f"## `{section}`" + (f" ({doc})" if doc else "")
        head = "| key | type | default | allowed | meaning |\n| --- | --- | --- | --- | --- |"
        parts.append(f"{title}\n\n{head}\n" + "\n".join(table) + "\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(markdown(), end="")
