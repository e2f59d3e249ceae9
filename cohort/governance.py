"""What access control and the audit trail need to know about cohorts.

:func:`needs` lists, by JSON path, the tables and columns a definition reads when it runs
(as :mod:`cohort.compile` builds its query; the concept tables used to resolve concept
sets are left out: they are reference data every project sees). :func:`check_grants`
refuses a definition that reads a table or column the catalog's project is not granted,
before anything is compiled or taken from a cache. :func:`gate` checks a tier and writes
the audit record of an action on a cohort result; :func:`audit_run` records a run.

>>> from cohort.builder import cohort, condition, age
>>> d = cohort("t2d").entry(condition("KCD8", "E11")).require("adults", age(18, None)).build()
>>> for n in needs(d)[3:]:
...     print(n.path, n.table, len(n.columns))
entry.criteria[0] condition_occurrence 5
inclusion_rules[0].group.items[0].criterion person 2
>>> sorted(tables_read(d))
['condition_occurrence', 'consent', 'observation_period', 'person']
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cohort import model as m
from cohort.compile import _EVENTS, _PERSON_TABLES, CARRIERS
from workbench import access, audit
from workbench.errors import AccessDenied

if TYPE_CHECKING:
    from cohort.engine import CohortResult
    from cohort.privacy import SmallCellPolicy
    from workbench.access import Tier
    from workbench.catalog import Catalog

_PERSON_COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "age": {"person": ("person_id", "year_of_birth")},
    "sex": {"person": ("person_id", "gender_concept_id")},
    "region": {"location": ("location_id", "state"), "person": ("person_id", "location_id")},
    "has_genome": {"sample_link": ("person_id",)},
}


@dataclass(frozen=True)
class Need:
    """A table, and the columns of it, that the criterion at ``path`` reads."""

    path: str
    table: str
    columns: tuple[str, ...]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def needs(definition: m.Cohort | m.CohortSet, path: str = "") -> list[Need]:
    """Every (JSON path, table, columns) the definition's query reads; ``(release)`` for
    what every cohort reads (observation periods; consent, to leave out withdrawn
    persons)."""
    out = [Need("(release)", "person", ("person_id",)),
           Need("(release)", "observation_period", ("person_id", "observation_period_start_date",
                                                    "observation_period_end_date")),
           Need("(release)", "consent", ("person_id", "withdrawal_date"))]
    out += _walk_definition(definition, path)
    return out


def _walk_definition(d: m.Cohort | m.CohortSet, path: str) -> Iterator[Need]:
    if isinstance(d, m.CohortSet):
        for k, c in enumerate(d.cohorts):
            yield from _walk_definition(c, _join(path, f"cohorts[{k}]"))
        return
    for k, c in enumerate(d.entry.criteria):
        yield from _criterion(c, _join(path, f"entry.criteria[{k}]"))
    for k, r in enumerate(d.inclusion_rules):
        yield from _group(r.group, _join(path, f"inclusion_rules[{k}].group"))
    if isinstance(d.exit, m.DrugExposureEnd):
        src = _EVENTS["drug"]
        yield Need(_join(path, "exit"), src.table, _event_columns(src) + (src.source_concept,))
    for k, c in enumerate(d.censoring):
        yield from _criterion(c, _join(path, f"censoring[{k}]"))


def _group(g: m.Group, path: str) -> Iterator[Need]:
    for k, item in enumerate(g.items):
        p = _join(path, f"items[{k}]")
        if isinstance(item, m.Group):
            yield from _group(item, p)
        else:
            yield from _criterion(item.criterion, _join(p, "criterion"))


def _event_columns(src: Any) -> tuple[str, ...]:
    cols = ["person_id", src.start, src.end, src.event_id, src.concept,
            "days_supply" if src.days_supply else None]
    return tuple(c for c in cols if c is not None)


def _criterion(c: Any, path: str) -> Iterator[Need]:
    if c.kind in _EVENTS:
        src = _EVENTS[c.kind]
        cols = list(_event_columns(src))
        if not hasattr(c, "concepts") and src.concept in cols:
            cols.remove(src.concept)
        if isinstance(c, m.VisitCriterion):
            cols.append("visit_source_value")
        if isinstance(c, m.ScreeningCriterion):
            cols.append(c.item)
        if isinstance(c, m.MeasurementCriterion):
            if c.first_occurrence or (c.value is not None and (
                    c.value.min is not None or c.value.max is not None)):
                cols.append("value_as_number")
            if c.first_occurrence or c.unit is not None:
                cols.append("unit_source_value")
        yield Need(path, src.table, tuple(dict.fromkeys(cols)))
    elif c.kind == "cohort_member":
        yield from needs(c.cohort, _join(path, "cohort"))
    elif c.kind == "genotype":
        yield Need(path, CARRIERS, ("sample_id", "contig", "position", "ref", "alt", "n_alt"))
        yield Need(path, "sample_link", ("person_id", "sample_id"))
        yield Need(path, "consent", ("person_id", "genomic", "withdrawal_date"))
    elif c.kind == "lifelog":
        yield Need(path, "wearable_daily", ("person_id", "date", c.metric))
    elif c.kind == "consent":
        yield Need(path, "consent", ("person_id", c.scope, "withdrawal_date"))
    elif c.kind == "region_indicator":
        yield Need(path, "region_indicator", ("location_id", "year", c.indicator))
        yield Need(path, "person", ("person_id", "location_id"))
    elif c.kind in _PERSON_COLUMNS:
        for table, cols in _PERSON_COLUMNS[c.kind].items():
            yield Need(path, table, cols)
    else:   # a kind added to the model but not here: name the table the compiler needs
        yield Need(path, _PERSON_TABLES.get(c.kind, c.kind), ())


def tables_read(definition: m.Cohort | m.CohortSet) -> set[str]:
    """The release tables the definition's query reads."""
    return {n.table for n in needs(definition)}


def check_grants(definition: m.Cohort | m.CohortSet, cat: Catalog) -> None:
    """Refuse (AccessDenied, with the criterion's JSON path) a definition that reads a
    table or column the catalog's project is not granted; nothing to check without one."""
    project = getattr(cat, "project", None)
    if project is None:
        return
    where = f"project {project.name!r}" + (f" ({project.file})" if project.file else "")
    for need in needs(definition):
        if need.table == CARRIERS and not cat.has(CARRIERS) and project.columns(CARRIERS):
            continue     # granted, not built yet: the compiler says how to build it
        have = project.columns(need.table)
        if have is None:
            raise AccessDenied(
                f"{where} is not granted table {need.table!r}, which this criterion reads",
                path=need.path, hint="remove the criterion, or ask the data access committee "
                                     "to add the table to the project's grants")
        missing = [c for c in need.columns if c not in have]
        if missing:
            raise AccessDenied(
                f"{where} is not granted column(s) {', '.join(missing)} of table "
                f"{need.table!r}, which this criterion reads", path=need.path,
                hint="remove the criterion, or ask the data access committee to add the "
                     "column(s) to the project's grants")


def cell(policy: SmallCellPolicy, n: int) -> int | str:
    """A count as it may leave (an int, or ``"< 20"``), for audit records."""
    c = policy.count(int(n))
    return c if isinstance(c, int) else str(c)


def _release(result: CohortResult) -> dict[str, Any]:
    return {"release_id": result.release_id, "kind": result.release_kind}


def result_sizes(result: CohortResult, rows: Any = None) -> dict[str, int | str]:
    """persons and rows of a result, through its policy ("withheld" when the result's
    counts are: an audit log its user can read must not give them back)."""
    if getattr(result, "withheld", None):
        return {"persons": "withheld", "rows": "withheld"}
    members = result._members if rows is None else rows
    return {"persons": cell(result.policy, members["subject_id"].n_unique()),
            "rows": cell(result.policy, members.height)}


def gate(tier: Tier, what: str, action: str, result: CohortResult, *,
         cat: Catalog | None = None, tables: Iterable[str] = (),
         sizes: Mapping[str, int | str] | None = None,
         detail: Mapping[str, Any] | None = None, record: bool = True) -> None:
    """Require ``tier`` for ``what`` (an action on ``result``), then record ``action`` in
    the audit trail (unless ``record`` is false) with the result's definition, release,
    the ``tables`` the catalog has, and ``sizes`` (default: the result's)."""
    access.require(tier, what, release=cat.manifest if cat is not None else _release(result),
                   catalog=cat, project=getattr(result, "_project", None))
    if record:
        record_action(action, result, cat=cat, tables=tables, sizes=sizes, detail=detail)


def record_action(action: str, result: CohortResult, *, cat: Catalog | None = None,
                  tables: Iterable[str] = (), sizes: Mapping[str, int | str] | None = None,
                  detail: Mapping[str, Any] | None = None) -> None:
    """The audit record of an action on ``result``: its definition and release, the
    ``tables`` read (those the catalog has), ``sizes`` (default: the result's)."""
    audit.record(action, release=cat.manifest if cat is not None else _release(result),
                 definition=result.definition,
                 tables=[t for t in tables if cat is None or cat.has(t)],
                 sizes=result_sizes(result) if sizes is None else sizes, detail=detail,
                 project=getattr(cat, "project", None))


def audit_run(result: CohortResult, cat: Catalog, *, action: str = "cohort.run",
              detail: Mapping[str, Any] | None = None) -> None:
    """The audit record of a cohort run: definition, release, tables read, sizes. The
    result also keeps the catalog's project, whose tier cap then applies to its members
    wherever they are read (see :func:`gate`)."""
    result._project = getattr(cat, "project", None)  # type: ignore[attr-defined]
    audit.record(action, release=cat.manifest, definition=result.definition,
                 tables=[t for t in tables_read(result.definition) if cat.has(t)], sizes={
                     **result_sizes(result), "steps": len(result.steps)}, detail=detail,
                 project=getattr(cat, "project", None))
