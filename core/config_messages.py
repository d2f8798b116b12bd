"""One-line messages for configuration mistakes: the file, the line, the field's place and what to change."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic_core import ErrorDetails

from core.errors import redact

Loc = tuple[str | int, ...]
# Fields whose values may be credentials: a message names the field, never echoes what it holds.
_SECRET_FIELDS = frozenset({"api_key", "headers"})
_PLAIN = {
    "tuple_type": "should be a list",
    "model_type": "should be a mapping of fields",
    "model_attributes_type": "should be a mapping of fields",
    "dict_type": "should be a mapping",
}


class ConfigProblem(Exception):
    """A mistake at a place in the file, before it is given the file's name and line."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def place(loc: Loc) -> str:
    """`providers[1].kind` for ('providers', 1, 'kind')."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def yaml_message(source: str, exc: yaml.YAMLError) -> str:
    """`netra.yaml:4:3: YAML syntax error: …` from PyYAML's error and its marks (0-based there, 1-based here)."""
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return f"{source}: YAML syntax error: {exc}"
    mark = exc.problem_mark
    label = "YAML error" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
    text = f"{source}:{mark.line + 1}:{mark.column + 1}: {label}: {exc.problem}"
    if exc.context and exc.context_mark is not None:
        text += f" ({exc.context} that starts at line {exc.context_mark.line + 1})"
    elif exc.context:
        text += f" ({exc.context})"
    return text


def located(source: str, root: yaml.Node | None, problem: ConfigProblem) -> str:
    """The problem as `file:line: place: message` (the line of the deepest node the place reaches)."""
    line = _line_of(root, problem.loc)
    where = f"{source}:{line}" if line is not None else source
    what = f"{place(problem.loc)}: {problem.message}" if problem.loc else problem.message
    return redact(f"{where}: {what}")


def _line_of(root: yaml.Node | None, loc: Loc) -> int | None:
    if root is None:
        return None
    node, line = root, root.start_mark.line
    for part in loc:
        found = _child(node, part)
        if found is None:
            break
        line, node = found[0].start_mark.line, found[1]
    return line + 1


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node, yaml.Node] | None:
    """(the node whose line names this part, the node to walk into next)."""
    if isinstance(node, yaml.MappingNode) and isinstance(part, str):
        return next(((k, v) for k, v in node.value if getattr(k, "value", None) == part), None)
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        item: yaml.Node = node.value[part]
        return item, item
    return None


def validation_problem(error: ErrorDetails, models: Mapping[tuple[str, ...], type[BaseModel]]) -> ConfigProblem:
    """A pydantic error as a problem that names the field; `models` says which model sits at which place."""
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        fields = models.get(tuple(p for p in loc[:-1] if isinstance(p, str)))
        return ConfigProblem(loc, _unknown_field(str(loc[-1]), fields))
    if kind == "literal_error":
        choices = ", ".join(re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", ""))))
        return ConfigProblem(loc, f"{error['input']!r} is not one of {choices}")
    if kind == "missing":
        return ConfigProblem(loc[:-1], f"{loc[-1]} is required")
    if kind == "model_type" and not loc:
        return ConfigProblem(loc, "the file should be a mapping with `providers:` and `models:`")
    message = _PLAIN.get(kind, error["msg"].replace("Input should", "should"))
    if not _SECRET_FIELDS.intersection(p for p in loc if isinstance(p, str)):
        message += f" (got {_short(error['input'])})"
    return ConfigProblem(loc, message)


def _unknown_field(name: str, model: type[BaseModel] | None) -> str:
    if model is None:
        return "unknown field"
    known: Sequence[str] = list(model.model_fields)
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f"unknown field; did you mean {close[0]}?"
    return f"unknown field; the fields here are {', '.join(known)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
