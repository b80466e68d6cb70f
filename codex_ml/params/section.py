"""The machinery under every params section: strict frozen pydantic models whose errors read as one
line each, `key: expected ..., got ...`, for a YAML author; every problem of one validation at once.

Ranges are constraints on the types (`Positive`, `Fraction`, ...) and what a key expects is said from
them (`expected_of`), with a `Hint` where a number needs a word ("0 = all cores").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Self, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails


class ParamsError(ValueError):
    """A params file or value that does not match the schema: one line per problem, each naming its
    key (and the file, when there is one)."""

    @property
    def problems(self) -> list[str]:
        return str(self).splitlines()


def raise_all(problems: list[ParamsError]) -> None:
    """Every problem a validator found, raised as one ParamsError (one line each), so a user meets
    them in one run rather than one per run."""
    if problems:
        raise ParamsError("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Hint:
    """Said in parentheses after what a key expects: `an integer >= 0 (0 = all cores)`."""

    text: str


def setting(default: Any, doc: str, **constraints: Any) -> Any:
    """A key's default, its one line of meaning (docs/params.md) and any constraints."""
    if callable(default):
        return Field(default_factory=default, description=doc, **constraints)
    return Field(default, description=doc, **constraints)


Positive = Annotated[int, Field(gt=0)]
AtLeast1 = Annotated[int, Field(ge=1)]
Count = Annotated[int, Field(ge=0)]
Cores = Annotated[int, Field(ge=0), Hint("0 = all cores")]
Mib = Annotated[int, Field(ge=1), Hint("MiB")]
Fraction = Annotated[float, Field(ge=0, lt=1)]
Share = Annotated[float, Field(ge=0, le=1)]
PositiveNumber = Annotated[float, Field(gt=0)]


class Section(BaseModel):
    """A frozen, strict params section. `key` is its dotted name in params.yaml (for messages)."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", allow_inf_nan=False)
    key: ClassVar[str] = ""

    def __init__(self, **values: Any) -> None:
        # Sections built directly (the CLIs build them from options) fail with the same one line.
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ParamsError("\n".join(error_lines(exc, type(self), self.key))) from None

    @model_validator(mode="before")
    @classmethod
    def _empty_is_default(cls, value: Any) -> Any:
        return {} if value is None else value  # `lora:` with nothing under it: every default

    def replace(self, **updates: Any) -> Self:
        """A validated copy with `updates` (pydantic's model_copy would skip validation)."""
        return type(self)(**{**dict(self), **updates})


def fail(key: str, expected: str, got: object) -> ParamsError:
    return ParamsError(f"{key}: expected {expected}, got {got!r}")


# What pydantic's strict type errors expect, as a YAML author reads it.
_EXPECTED = {"int_type": "an integer", "float_type": "a number", "finite_number": "a finite number",
             "bool_type": "true or false", "string_type": "a string", "list_type": "a list of strings",
             "dict_type": "a mapping"}
_BOUNDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def constraints(info: FieldInfo) -> tuple[Any, list[Any]]:
    """A key's type and its constraint metadata, looking inside `Annotated[...] | None` too."""
    for arm in get_args(info.annotation) if type(None) in get_args(info.annotation) else ():
        if get_origin(arm) is Annotated:
            base, *extras = get_args(arm)
            return base, [m for e in extras for m in (e.metadata if isinstance(e, FieldInfo) else [e])]
    return info.annotation, list(info.metadata)


def has_bounds(info: FieldInfo) -> bool:
    return any(hasattr(m, name) for m in constraints(info)[1] for name in _BOUNDS)


def expected_of(info: FieldInfo) -> str:
    """What a key with constraints expects: `an integer in [16, 1024]`, `a number > 0 (hint)`."""
    base, metadata = constraints(info)
    kind = "an integer" if base is int else "a number" if base is float else "a value"
    bounds = {name: getattr(m, name) for m in metadata for name in _BOUNDS if hasattr(m, name)}
    low = [(n, v) for n, v in bounds.items() if n in ("gt", "ge")]
    high = [(n, v) for n, v in bounds.items() if n in ("lt", "le")]
    if low and high:
        (ln, lv), (hn, hv) = low[0], high[0]
        text = f"{kind} in {'[' if ln == 'ge' else '('}{lv}, {hv}{']' if hn == 'le' else ')'}"
    else:
        text = " ".join([kind, *(f"{_BOUNDS[n]} {v}" for n, v in low + high)])
    hints = [m.text for m in metadata if isinstance(m, Hint)]
    return text + (f" ({hints[0]})" if hints else "")


def error_lines(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every pydantic error, one line each, `key: expected ..., got ...` with the key dotted
    (`data.include[0]`). A union's alternatives (one error each) are one problem: its first error's
    line, with what the others at the same key expect joined by "or". A validator's own ParamsError
    is its lines as they are."""
    lines: list[str] = []
    unions: dict[str, tuple[int, str, list[str]]] = {}  # union -> (its line, its key, what each expects)
    for err in exc.errors():
        if isinstance(inner := err.get("ctx", {}).get("error"), ParamsError):
            lines += inner.problems  # a validator's messages, already complete
            continue
        key, expected, got, union = _explain(err, model, prefix)
        if got is None:
            lines.append(f"{key}: {expected}")
        elif union not in unions:
            unions[union] = (len(lines), key, [expected])
            lines.append(f"{key}: expected {expected}, got {got}")
        elif unions[union][1] == key:  # another alternative of that union, at the same key
            at, _, alternatives = unions[union]
            alternatives.append(expected)
            lines[at] = f"{key}: expected {' or '.join(alternatives)}, got {got}"
    return lines


def _explain(err: ErrorDetails, model: type[BaseModel], prefix: str) -> tuple[str, str, str | None, str]:
    """(dotted key, what was expected, what was given, the key of the union it is an alternative of:
    else the key itself) of one pydantic error."""
    key, owner, info, union = prefix, model, None, ""
    annotation: Any = model
    for part in err["loc"]:
        if isinstance(part, int):
            key, info = f"{key}[{part}]", None
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            owner, key = annotation, f"{key}.{part}" if key else str(part)
            info = owner.model_fields.get(str(part))
            annotation = info.annotation if info else None
        else:  # a union member's tag (`list[str]`), not a key
            union = union or key
    if err["type"] == "extra_forbidden":
        return key, f"unknown key; expected one of {', '.join(sorted(owner.model_fields))}", None, key
    ctx = err.get("ctx", {})
    if err["type"] == "model_type":
        expected = f"a mapping of {ctx['class_name']} keys"
    elif err["type"] == "literal_error":  # ctx: "'stdlib', 'dir' or 'jsonl'"
        expected = "one of " + ctx["expected"].replace("'", "").replace(" or ", ", ")
    elif err["type"] in ("greater_than", "greater_than_equal", "less_than", "less_than_equal") and info:
        expected = expected_of(info)
    else:
        expected = _EXPECTED.get(err["type"], err["msg"].removeprefix("Input should be "))
    nullable = info is not None and type(None) in get_args(info.annotation)
    return key, expected + (" or null" if nullable else ""), _show(err["input"]), union or key


def _show(value: Any) -> str:
    """A value as the YAML author wrote it: null, true, false; anything else as repr."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return repr(value)
