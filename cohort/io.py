"""Read and write definitions as JSON, with errors that name the JSON path.

>>> from cohort.model import Cohort, Entry, DeathCriterion
>>> c = Cohort(name="deaths", entry=Entry(criteria=[DeathCriterion()]))
>>> loads(dumps(c)) == c
True
>>> try:
...     loads('{"kind": "cohort", "name": "x", "entry": {"criteria": []}}')
... except DefinitionError as e:
...     print(e.path)
entry.criteria
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from cohort.errors import DefinitionError
from cohort.model import Cohort, CohortSet, Definition
from workbench.atomic import write_text

_ADAPTER: TypeAdapter[Cohort | CohortSet] = TypeAdapter(Definition)


def json_path(loc: tuple[Any, ...], data: Any) -> str:
    """A pydantic error location as a JSON path into ``data``, union tags dropped.

    Pydantic puts the tag of a discriminated union into the location; walking the input
    tells a real key (present in the data) from a tag (absent).

    >>> json_path(("cohort", "rules", 0, "requirement", "window"),
    ...           {"rules": [{"window": {}}]})
    'rules[0].window'
    """
    out, node = "", data
    for part in loc:
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            out, node = out + f"[{part}]", node[part]
        elif isinstance(part, str) and isinstance(node, dict) and part in node:
            out, node = (f"{out}.{part}" if out else part), node[part]
        elif isinstance(part, str) and isinstance(node, dict):
            # a tag (skip) unless it is the missing key itself, which ends the path
            if part not in _TAGS:
                out = f"{out}.{part}" if out else part
                node = None
        else:
            out += f"[{part}]" if isinstance(part, int) else f".{part}"
            node = None
    return out


_TAGS = {"cohort", "union", "intersect", "minus", "requirement", "group", "condition", "drug",
         "procedure", "measurement", "visit", "death", "observation_period", "screening",
         "lifelog", "region_indicator", "consent", "has_genome", "age", "sex", "region",
         "cohort_member", "genotype", "end_of_observation", "fixed_offset", "drug_exposure_end"}


MAX_DEPTH = 100   # JSON nesting: about 45 levels of nested groups, far more than any study


def _too_deep(data: Any, limit: int) -> str | None:
    """The JSON path where ``data`` nests deeper than ``limit`` levels, or None."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if depth > limit:
            return path or "(top level)"
        if isinstance(node, dict):
            stack.extend((v, f"{path}.{k}" if path else str(k), depth + 1)
                         for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(node))
    return None


def from_data(data: Any) -> Cohort | CohortSet:
    """Validate parsed JSON into a definition; DefinitionError names the first problem."""
    if (where := _too_deep(data, MAX_DEPTH)) is not None:
        raise DefinitionError(f"nested more than {MAX_DEPTH} levels deep",
                              path=where[:200] + ("..." if len(where) > 200 else ""),
                              hint="a definition nests a few levels; flatten the groups")
    if isinstance(data, dict) and "kind" not in data:
        data = {**data, "kind": "cohort"}
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as e:
        err = e.errors()[0]
        msg = err["msg"].removeprefix("Value error, ")
        if len(msg) > 300:      # pydantic repeats a bad tag, however long it is
            msg = msg[:300] + "..."
        raise DefinitionError(msg, path=json_path(tuple(err["loc"]), data) or "(top level)",
                              hint="fix the definition; `workbench cohort describe` checks "
                                   "it without running") from None


def parse_json(text: str | bytes, *, source: str = "") -> Any:
    """JSON text (or UTF-8 bytes, a BOM allowed) as Python data; DefinitionError says
    where it is not JSON: ``source`` (a file name), line and column.

    >>> try:
    ...     parse_json('{"name": }', source="t2d.json")
    ... except DefinitionError as e:
    ...     print(e.message)
    (file): t2d.json is not valid JSON: Expecting value at line 1 column 10
    """
    what = f"{source} is not" if source else "not"
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = text[:e.start].count(b"\n") + 1
            raise DefinitionError(f"{what} UTF-8 text: byte {text[e.start]:#04x} at line {line}",
                                  path="(file)", hint="save the definition as UTF-8 JSON"
                                  ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DefinitionError(f"{what} valid JSON: {e.msg} at line {e.lineno} column "
                              f"{e.colno}", path="(file)") from None
    except RecursionError:
        raise DefinitionError(f"{what} JSON this reader takes: nested too deeply",
                              path="(file)", hint="a definition nests a few levels; was "
                                                  "this file generated by mistake?") from None


def from_text(text: str | bytes, *, source: str = "") -> Cohort | CohortSet:
    """:func:`parse_json` then :func:`from_data`."""
    data = parse_json(text, source=source)
    try:
        return from_data(data)
    except RecursionError:
        raise DefinitionError("the definition nests groups or cohorts too deeply",
                              path="(top level)") from None


def loads(text: str | bytes) -> Cohort | CohortSet:
    """A definition from JSON text (see the module docstring)."""
    return from_text(text)


def read_definition_bytes(path: Path | str) -> bytes:
    """A definition file's bytes; DefinitionError when it cannot be read."""
    p = Path(path)
    if not p.is_file():
        raise DefinitionError(f"definition file {p} does not exist")
    try:
        return p.read_bytes()
    except OSError as e:
        raise DefinitionError(f"cannot read definition file {p}: {e.strerror}") from None


def load(path: Path | str) -> Cohort | CohortSet:
    """Read a definition file (our JSON; ATLAS JSON is detected by `cohort.atlas`)."""
    return from_text(read_definition_bytes(path), source=Path(path).name)


def dumps(definition: Cohort | CohortSet) -> str:
    return definition.model_dump_json(indent=2) + "\n"


def save(definition: Cohort | CohortSet, path: Path | str) -> Path:
    """Write JSON atomically (a temp file beside ``path``, flushed, then renamed)."""
    return write_text(path, dumps(definition))
