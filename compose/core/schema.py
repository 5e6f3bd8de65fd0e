"""Declared schemas, one line per failure.

Files compose reads (config.json, compose-plan.yaml, compose-gitops.yaml, the
kustomizations it follows) are validated by pydantic v2 models that live next
to their readers. This module turns a `ValidationError` into the one line
compose prints: `field problem (got value)` for every wrong field, joined by
"; ", so the reader's own message can add the file and the fix.

    try:
        Model.model_validate(data)
    except ValidationError as err:
        raise InvalidInput(f"{path}: {describe(err)}; fix the file") from None

`validate(model, data, source, fix)` does exactly that. pydantic is imported by
the modules that define models, not here, so commands that read no such file do
not pay for the import.
"""

from __future__ import annotations

from typing import Any, TypeVar

from compose.core.errors import InvalidInput

T = TypeVar("T")


class FieldError(ValueError):
    """Raised by a field validator with the complete one-line message of a domain check
    (`invalid --router 'x': choose service or inference-pool`): `describe()` prints it as
    it is for command-line options, and after the field's path for a file."""


def checked(check: Any, kind: Any = str) -> Any:
    """A pydantic BeforeValidator that runs `check(value)` (a function raising InvalidInput
    with its own message, and checking the type and length first) on a non-None value:
    the schema declares the field's type and bounds, and the rule lives in one function
    that the code calls too, so a bad value gets the same message from both. A value of
    another type than `kind` is left to the field's own (strict) type check, whose message
    says what type it must be."""
    from pydantic import BeforeValidator

    def run(value: Any) -> Any:
        if value is None or not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return value
        try:
            check(value)
        except InvalidInput as err:
            raise FieldError(str(err)) from None
        return value

    return BeforeValidator(run)

_MESSAGES = {
    "bool_type": "must be a boolean (true or false, not a string)",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "string_type": "must be a string",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "finite_number": "must be a finite number",
    "missing": "is required",
    "extra_forbidden": "is not a known field (remove it, or check its spelling)",
}
_BOUNDS = {"greater_than_equal": "at least", "greater_than": "greater than",
           "less_than_equal": "at most", "less_than": "less than"}


def describe(err: Any, limit: int = 8, rename: Any = None) -> str:
    """The errors of a pydantic ValidationError as `field problem (got value)`, joined by '; '.

    `rename(field_path) -> str` shows a field under another name (a command-line flag)."""
    parts = []
    errors = err.errors()
    for e in errors[:limit]:
        kind = e["type"]
        ctx = e.get("ctx") or {}
        if kind in _MESSAGES:
            problem = _MESSAGES[kind]
        elif kind in _BOUNDS:
            problem = f"must be {_BOUNDS[kind]} {next(iter(ctx.values()), '?')}"
        elif kind == "literal_error":
            problem = f"must be {ctx.get('expected', 'one of the allowed values')}"
        elif kind in ("too_short", "too_long", "string_too_short", "string_too_long"):
            problem = e["msg"].replace("List should have", "must have").replace("String should have", "must have")
            problem = problem.replace("Value should have", "must have")
            problem = problem[:1].lower() + problem[1:]
        elif kind == "value_error" and isinstance(ctx.get("error"), FieldError):
            name = field_path(e["loc"])
            parts.append(str(ctx["error"]) if rename else f"{name}: {ctx['error']}")
            continue
        elif kind == "value_error":
            problem = str(ctx.get("error", e["msg"]))
        else:
            msg = e["msg"]
            problem = msg[:1].lower() + msg[1:]
        got = "" if kind in ("missing",) else f" (got {short_repr(e.get('input'))})"
        if kind == "extra_forbidden":
            got = ""
        name = field_path(e["loc"])
        parts.append(f"{rename(name) if rename else name} {problem}{got}")
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return "; ".join(parts)


def field_path(loc: tuple) -> str:
    """('a', 'b', 0) -> 'a.b[0]'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def short_repr(value: Any, limit: int = 40) -> str:
    """A value as the message shows it: short, a string that looks like a boolean says so,
    and one that holds a credential is not shown at all."""
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
        return f"the string {value!r}"
    if isinstance(value, str):
        from compose.core import secrets

        head = value[:600]
        if secrets.leaks(head) or secrets.userinfo_like(head):
            return "a value with credentials, not shown"
    if isinstance(value, (dict, list)) and len(repr(value)) > limit:
        return kind_of(value)
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def kind_of(value: Any) -> str:
    """'a list', 'a string', ... for messages about the wrong kind of value."""
    return {list: "a list", dict: "a mapping", str: "a string", int: "a number", float: "a number",
            bool: "a boolean", type(None): "null"}.get(type(value), type(value).__name__)


def validate(model: type[T], data: Any, source: str, fix: str) -> T:
    """`model.model_validate(data)`, or InvalidInput `source: <problems>; <fix>`."""
    from pydantic import ValidationError

    try:
        return model.model_validate(data)  # type: ignore[attr-defined]
    except ValidationError as err:
        raise InvalidInput(f"{source}: {describe(err)}; {fix}") from None


__all__ = ["FieldError", "checked", "describe", "field_path", "short_repr", "kind_of", "validate"]
