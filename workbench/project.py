"""Open Lab projects: the tables and columns a project may read, and its tier cap.

A project is a folder holding ``project.toml`` (or ``project.json``), named by
``access.Session(user, tier, project=FOLDER)`` or ``$WORKBENCH_PROJECT``; the audit trail
of its sessions is written there too (``audit.jsonl``). An example::

    name = "ldl-open-lab"
    tier = "registered"            # the highest tier of any session in the project
    users = ["kim", "lee"]         # optional: only these users may work in it
    description = "LDL and lifestyle; approved by the DAC on 2025-03-02"

    [tables]                       # table = "*" (every column) or a list of columns
    person = ["person_id", "gender_concept_id", "year_of_birth"]
    observation_period = "*"
    health_screening = ["person_id", "screening_date", "ldl_cholesterol"]

A catalog opened under a project (:func:`workbench.catalog.open`) has views of the
granted tables only, each with the granted columns only; a cohort definition reading
anything else is refused before it runs, naming the criterion's JSON path and the table
(:func:`cohort.governance.check_grants`). Always visible, whatever the grants: the
vocabulary (``concept``, ``concept_ancestor``, ``concept_relationship``: reference data
with nobody in it) and ``consent`` (every query leaves withdrawn persons out through it).

A file that cannot be used raises :class:`~workbench.errors.ProjectError` naming the
file, each field at fault and what is wrong with it.

>>> p = Project.model_validate({"name": "p1", "tier": "registered",
...                             "tables": {"person": ["year_of_birth", "person_id"]}})
>>> p.columns("person"), p.columns("death"), p.columns("concept")[:2]
(('person_id', 'year_of_birth'), None, ('concept_id', 'concept_name'))
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from workbench.access import Tier
from workbench.errors import ProjectError
from workbench.schema import TABLES

FILES = ("project.toml", "project.json")
ALWAYS_VISIBLE = ("concept", "concept_ancestor", "concept_relationship", "consent")
CARRIER_TABLE = "genotype_carrier"   # workbench.catalog.CARRIER_TABLE (granted whole)
CARRIER_COLUMNS = ("sample_id", "contig", "position", "ref", "alt", "n_alt")

_EXAMPLE = ('name = "my-project"\ntier = "registered"\n[tables]\n'
            'person = ["person_id", "year_of_birth"]\nobservation_period = "*"')


def _schema_columns(table: str) -> tuple[str, ...]:
    if table == CARRIER_TABLE:
        return CARRIER_COLUMNS
    return tuple(TABLES[table].names)


class Project(BaseModel):
    """A project file's content (see the module docstring); ``file`` and ``folder`` say
    where it was read from (None when built in code)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
    tier: Tier
    users: list[str] | None = None
    description: str = ""
    tables: dict[str, list[str] | str] = Field(min_length=1)
    _file: Path | None = PrivateAttr(default=None)

    @field_validator("users")
    @classmethod
    def _users(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and (not v or any(not u.strip() for u in v)):
            raise ValueError("users must list at least one non-empty user name (or be left "
                             "out: then every user may work in the project)")
        return v

    @field_validator("tables")
    @classmethod
    def _grants(cls, v: dict[str, list[str] | str]) -> dict[str, list[str] | str]:
        problems = []
        known = [*TABLES, CARRIER_TABLE]
        for table, cols in v.items():
            if table not in known:
                problems.append(f"{table}: no such table (tables: {', '.join(known)})")
                continue
            if table in ALWAYS_VISIBLE:
                problems.append(f"{table}: always visible to every project; leave it out")
                continue
            if cols == "*":
                continue
            if isinstance(cols, str):
                problems.append(f'{table}: {cols!r} is not a list of columns; use a list, '
                                f'or "*" for all')
                continue
            if table == CARRIER_TABLE:
                problems.append(f'{table}: granted whole or not at all; use "*"')
                continue
            if not cols:
                problems.append(f'{table}: no columns; list some, or "*" for all')
            have = _schema_columns(table)
            for k, c in enumerate(cols):
                if c not in have:
                    problems.append(f"{table}[{k}]: {table} has no column {c!r} "
                                    f"(its columns: {', '.join(have)})")
                elif c in cols[:k]:
                    problems.append(f"{table}[{k}]: column {c!r} is listed twice")
        if problems:
            raise ValueError("\n".join(problems))   # one line each in the report
        return v

    @property
    def file(self) -> Path | None:
        return self._file

    @property
    def folder(self) -> Path | None:
        return None if self._file is None else self._file.parent

    def columns(self, table: str) -> tuple[str, ...] | None:
        """The columns of ``table`` the project sees (in the table's order), or None when
        the table is not granted."""
        if table in ALWAYS_VISIBLE:
            return _schema_columns(table)
        granted = self.tables.get(table)
        if granted is None:
            return None
        have = _schema_columns(table)
        return have if granted == "*" else tuple(c for c in have if c in granted)


_CACHE: dict[tuple[Path, int, int], Project] = {}


def project_file(location: str | Path) -> Path:
    """The project file of a folder (project.toml, else project.json), or the file given."""
    path = Path(location).expanduser()
    if path.is_dir():
        for name in FILES:
            if (path / name).is_file():
                return (path / name).resolve()
        raise ProjectError(f"project folder {path} has no {' or '.join(FILES)}",
                           hint=f"write one, e.g.\n{_EXAMPLE}")
    if not path.is_file():
        raise ProjectError(f"project {path} does not exist",
                           hint="name a project folder (holding project.toml) or its file, "
                                "in access.Session(..., project=...) or $WORKBENCH_PROJECT")
    if path.suffix not in (".toml", ".json"):
        raise ProjectError(f"project file {path} is neither .toml nor .json",
                           hint="name the file project.toml (or project.json)")
    return path.resolve()


def load_project(location: str | Path) -> Project:
    """Read and validate a project (folder or file); every problem is reported at once.

    Files are read again when they change (size or modification time).
    """
    path = project_file(location)
    st = path.stat()
    key = (path, st.st_mtime_ns, st.st_size)
    if key in _CACHE:
        return _CACHE[key]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ProjectError(f"project file {path} cannot be read ({e})") from e
    try:
        data: Any = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProjectError(f"project file {path} is not valid TOML: {e}",
                           hint=f"a project file looks like\n{_EXAMPLE}") from e
    except json.JSONDecodeError as e:
        raise ProjectError(f"project file {path} is not valid JSON: {e.msg} (line "
                           f"{e.lineno}, column {e.colno})") from e
    if not isinstance(data, dict):
        raise ProjectError(f"project file {path}: the top level is a "
                           f"{type(data).__name__}, expected a table of fields")
    try:
        project = Project.model_validate(data)
    except ValidationError as e:
        raise ProjectError(_describe(path, e), hint=f"a project file looks like\n{_EXAMPLE}"
                           ) from None
    project._file = path
    _CACHE[key] = project
    return project


def _describe(path: Path, err: ValidationError) -> str:
    """One line per problem: the field's path, what is wrong, what was found."""
    lines = []
    for e in err.errors():
        where = ""
        for part in e["loc"]:
            where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else
                                                                 str(part))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "value_error" and where == "tables":
            lines += [f"  {where}.{m}" if where else f"  {m}" for m in msg.splitlines()]
            continue
        if e["type"] == "string_pattern_mismatch":
            msg = "use letters, digits, '_', '.' and '-' (at most 64, not starting with a sign)"
        elif e["type"] == "missing":
            msg = "missing (required)"
        elif e["type"] == "extra_forbidden":
            msg = "unknown field (fields: name, tier, users, description, tables)"
        found = e.get("input")
        shown = ("" if e["type"] in ("missing", "value_error") or isinstance(found, dict)
                 else f" (found {found!r})")
        lines.append(f"  {where or '(top level)'}: {msg}{shown}")
    return "\n".join([f"project file {path} is not valid ({len(lines)} problem(s)):", *lines])
