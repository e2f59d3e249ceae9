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


def from_data(data: Any) -> Cohort | CohortSet:
    """Validate parsed JSON into a definition; DefinitionError names the first problem."""
    if isinstance(data, dict) and "kind" not in data:
        data = {**data, "kind": "cohort"}
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as e:
        err = e.errors()[0]
        msg = err["msg"].removeprefix("Value error, ")
        raise DefinitionError(msg, path=json_path(tuple(err["loc"]), data) or "(top level)",
                              hint="fix the definition; `workbench cohort describe` checks "
                                   "it without running") from None


def loads(text: str) -> Cohort | CohortSet:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DefinitionError(f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}",
                              path="(file)") from None
    return from_data(data)


def load(path: Path | str) -> Cohort | CohortSet:
    """Read a definition file (our JSON; ATLAS JSON is detected by `cohort.atlas`)."""
    p = Path(path)
    if not p.is_file():
        raise DefinitionError(f"definition file {p} does not exist")
    return loads(p.read_text(encoding="utf-8"))


def dumps(definition: Cohort | CohortSet) -> str:
    return definition.model_dump_json(indent=2) + "\n"


def save(definition: Cohort | CohortSet, path: Path | str) -> Path:
    """Write JSON atomically (a temp file beside ``path``, flushed, then renamed)."""
    return write_text(path, dumps(definition))
