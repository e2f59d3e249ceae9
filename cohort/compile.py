"""Definition -> one SQL query (a sqlglot expression tree), for DuckDB, Spark SQL, PostgreSQL.

The compiler is a pure function of (definition, the release's tables, resolved concept
sets). It never formats user values into SQL text: numbers, codes and dates become
sqlglot literals. The query returns, in one pass, the cohort rows (``part = 0``:
subject_id, cohort_start_date, cohort_end_date) and the attrition (``part = 1``: step,
persons), following OHDSI Circe's semantics:

1. entry events lie inside an observation period with the required prior/post
   observation; ``limit="first"`` keeps each person's earliest;
2. each inclusion rule is evaluated per index event; attrition step k counts persons with
   an index event meeting rules 1..k;
3. events meeting every rule get an exit date (end of observation, fixed offset, or end
   of a drug era, always capped at the end of observation), are censored by the first
   censoring event on or after the index, limited (first/all) and collapsed into eras.

Persons who withdrew consent never appear. Windows are inclusive at both ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp

from cohort import model as m
from cohort.concepts import Resolved
from cohort.errors import DefinitionError

Resolver = Callable[[m.ConceptSet, str], Resolved]

@dataclass(frozen=True)
class _Source:
    """Where an event criterion's events live, and Circe's end date when none is recorded
    (conditions +1 day; drugs days_supply, else +1 day; point events +1 day)."""

    table: str
    start: str
    end: str | None            # recorded end column, if any
    event_id: str | None       # tie-break for "first" (Circe orders by date, then id)
    concept: str | None = None
    source_concept: str | None = None
    days_supply: bool = False


_EVENTS: dict[str, _Source] = {
    "condition": _Source("condition_occurrence", "condition_start_date", "condition_end_date",
                         "condition_occurrence_id", "condition_concept_id",
                         "condition_source_concept_id"),
    "drug": _Source("drug_exposure", "drug_exposure_start_date", "drug_exposure_end_date",
                    "drug_exposure_id", "drug_concept_id", "drug_source_concept_id",
                    days_supply=True),
    "procedure": _Source("procedure_occurrence", "procedure_date", None,
                         "procedure_occurrence_id", "procedure_concept_id"),
    "measurement": _Source("measurement", "measurement_date", None, "measurement_id",
                           "measurement_concept_id"),
    "visit": _Source("visit_occurrence", "visit_start_date", "visit_end_date",
                     "visit_occurrence_id"),
    "death": _Source("death", "death_date", None, None),
    "observation_period": _Source("observation_period", "observation_period_start_date",
                                  "observation_period_end_date", "observation_period_id"),
    "screening": _Source("health_screening", "screening_date", None, None),
}
_PERSON_TABLES = {"age": "person", "sex": "person", "region": "location",
                  "region_indicator": "region_indicator", "consent": "consent",
                  "has_genome": "sample_link", "lifelog": "wearable_daily"}
_SEX = {"male": 8507, "female": 8532}
CARRIERS = "genotype_carrier"   # the view workbench.catalog makes of the carrier table


def lit(value: object) -> exp.Expression:
    """A SQL literal for a Python value (never string formatting)."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table)


def add_days(date: exp.Expression, days: int) -> exp.Expression:
    """date + days, as a DATE in every dialect (DuckDB would give a TIMESTAMP)."""
    return exp.cast(exp.DateAdd(this=date, expression=exp.Literal.number(days),
                                unit=exp.var("DAY")), "DATE")


def in_range(value: exp.Expression, r: m.Range) -> exp.Expression | None:
    conds = []
    if r.min is not None:
        conds.append(value >= lit(r.min))
    if r.max is not None:
        conds.append(value <= lit(r.max))
    return exp.and_(*conds) if conds else None


def compare(n: exp.Expression, occ: m.Occurrence) -> exp.Expression:
    k = lit(occ.count)
    return {"at_least": n >= k, "at_most": n <= k, "exactly": exp.EQ(this=n, expression=k)}[
        occ.op]


@dataclass
class Compiled:
    """A compiled definition: the query (for one dialect) and its attrition steps."""

    query: exp.Select
    steps: list[str]
    dialect: str = "duckdb"

    def sql(self, dialect: str | None = None, *, pretty: bool = False) -> str:
        dialect = dialect or self.dialect
        if dialect != self.dialect:
            raise ValueError(f"compiled for {self.dialect}, not {dialect}: compile with "
                             f"dialect={dialect!r} (the query shape differs by engine)")
        q = self.query
        if dialect == "spark":   # Spark has no MATERIALIZED hint
            q = q.copy()
            for cte in q.find_all(exp.CTE):
                cte.set("materialized", None)
        return q.sql(dialect=dialect, pretty=pretty)


@dataclass
class _Ctx:
    tables: set[str]
    resolve: Resolver
    dialect: str = "duckdb"
    ctes: list[tuple[str, exp.Expression, bool]] = field(default_factory=list)
    n: int = 0

    def add(self, prefix: str, body: exp.Expression, *, materialized: bool = False) -> str:
        self.n += 1
        name = f"{prefix}_{self.n}"
        self.ctes.append((name, body, materialized))
        return name

    def need(self, table: str, path: str) -> None:
        if table not in self.tables:
            raise DefinitionError(
                f"this release has no table {table!r}, which the criterion needs", path=path,
                hint="choose a release with that domain, or remove the criterion")


DIALECTS = ("duckdb", "spark", "postgres")


def compile_definition(definition: m.Cohort | m.CohortSet, tables: set[str],
                       resolve: Resolver, dialect: str = "duckdb") -> Compiled:
    """Compile a cohort (or set operation) into one query (see module docstring)."""
    ctx = _context(tables, resolve, dialect)
    rows, steps, attrition = _definition(ctx, definition, "")
    parts = [exp.select(lit(0).as_("part"), col("subject_id"), col("cohort_start_date"),
                        col("cohort_end_date"), exp.cast(exp.Null(), "INT").as_("step"),
                        exp.cast(exp.Null(), "BIGINT").as_("persons")).from_(rows)]
    for k in range(len(steps)):
        parts.append(exp.select(lit(1), exp.cast(exp.Null(), "BIGINT"),
                                exp.cast(exp.Null(), "DATE"), exp.cast(exp.Null(), "DATE"),
                                lit(k), col(f"n_{k}")).from_(attrition))
    query = parts[0]
    for p in parts[1:]:
        query = exp.union(query, p, distinct=False)
    final = exp.select("*").from_(exp.Subquery(this=query, alias=exp.TableAlias(
        this=exp.to_identifier("result"))))
    return Compiled(_with_ctes(ctx, final), steps, dialect)


# --- a cohort in parts (cohort.incremental): index events, rules, members ----------------

INDEX_COLUMNS = ("event_id", "person_id", "start_date", "end_date", "op_start", "op_end")
EVENT_COLUMNS = ("person_id", "event_id", "start_date", "end_date")


def compile_entry_events(cohort: m.Cohort, tables: set[str], resolve: Resolver,
                         dialect: str = "duckdb") -> Compiled:
    """The events of the entry criteria (``EVENT_COLUMNS``), before step 1's observation
    period, consent and limit."""
    ctx = _context(tables, resolve, dialect)
    union = _entry_events(ctx, cohort.entry, "")
    return Compiled(_with_ctes(ctx, exp.select(*EVENT_COLUMNS).from_(exp.Subquery(
        this=union, alias=exp.TableAlias(this=exp.to_identifier("e"))))), [], dialect)


def compile_index(cohort: m.Cohort, tables: set[str], resolve: Resolver,
                  dialect: str = "duckdb", *, events: str | None = None) -> Compiled:
    """The index events of step 1 (module docstring), one row each: ``INDEX_COLUMNS``;
    from the entry criteria's events in the table ``events`` if given (as
    :func:`compile_entry_events` gives them)."""
    ctx = _context(tables, resolve, dialect)
    idx = _index(ctx, cohort.entry, "", events)
    return Compiled(_with_ctes(ctx, exp.select(*INDEX_COLUMNS).from_(idx)), ["entry events"],
                    dialect)


def compile_rules(cohort: m.Cohort, rules: list[int], events: str, tables: set[str],
                  resolve: Resolver, dialect: str = "duckdb") -> Compiled:
    """The inclusion rules numbered ``rules`` (0-based) evaluated on the index events in
    the table ``events`` (``INDEX_COLUMNS``, event_id unique): those columns and a
    boolean ``rule_{k+1}`` per rule, as in the single query's flags."""
    ctx = _context(tables, resolve, dialect)
    flags, steps = _flags(ctx, cohort, events, "", rules)
    return Compiled(_with_ctes(ctx, exp.select("*").from_(flags)), steps[1:], dialect)


def compile_members(cohort: m.Cohort, qualified: str, tables: set[str], resolve: Resolver,
                    dialect: str = "duckdb") -> Compiled:
    """Step 3 on the index events meeting every rule, in the table ``qualified``
    (``INDEX_COLUMNS``): the cohort rows (subject_id, cohort_start_date,
    cohort_end_date)."""
    ctx = _context(tables, resolve, dialect)
    rows = _collapse(ctx, _censored(ctx, cohort, qualified, ""), cohort.era_pad_days)
    return Compiled(_with_ctes(ctx, exp.select(
        "subject_id", "cohort_start_date", "cohort_end_date").from_(rows)), [], dialect)


def _context(tables: set[str], resolve: Resolver, dialect: str) -> _Ctx:
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}; known: {', '.join(DIALECTS)}")
    ctx = _Ctx(set(tables), resolve, dialect)
    ctx.need("person", "(release)")
    ctx.need("observation_period", "(release)")
    return ctx


def _with_ctes(ctx: _Ctx, final: exp.Select) -> exp.Select:
    """``final`` with the context's CTEs attached."""
    uses = _references(ctx, final)
    for name, body, mat in ctx.ctes:
        # used once: inline it, so filters and join keys reach the table scan; the index
        # events and rule flags, used many times, are computed once
        final = final.with_(name, as_=body, materialized=True if mat else (
            False if uses[name] == 1 else None), copy=False)   # no O(n^2) tree copies
    return final


def _references(ctx: _Ctx, query: exp.Expression) -> dict[str, int]:
    """How many times each CTE is referenced (in the query and in other CTEs)."""
    names = {n for n, _, _ in ctx.ctes}
    uses = dict.fromkeys(names, 0)
    for node in [query, *[b for _, b, _ in ctx.ctes]]:
        for t in node.find_all(exp.Table):
            if t.name in names:
                uses[t.name] += 1
    return uses


def _definition(ctx: _Ctx, d: m.Cohort | m.CohortSet, path: str) -> tuple[str, list[str], str]:
    if isinstance(d, m.CohortSet):
        return _set(ctx, d, path)
    return _cohort(ctx, d, path)


def _join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# --- events -----------------------------------------------------------------------------

def _end_expr(src: _Source, e: str) -> exp.Expression:
    start = col(src.start, e)
    fallbacks: list[exp.Expression] = []
    if src.days_supply:
        fallbacks.append(exp.cast(exp.DateAdd(this=start, expression=col("days_supply", e),
                                              unit=exp.var("DAY")), "DATE"))
    fallbacks.append(add_days(start, 1))
    if src.end is None:
        return fallbacks[-1]
    return exp.Coalesce(this=col(src.end, e), expressions=fallbacks)


def _codeset_match(ctx: _Ctx, src: _Source, cs: m.ConceptSet, e: str, path: str,
                   *, source_column: bool = False) -> exp.Expression:
    """Circe's codeset join: the concept column in the resolved set (mapped source codes
    are in the set but match only where ``source_column`` asks for the source column)."""
    r = ctx.resolve(cs, path)
    ids = [lit(i) for i in (*r.standard, *r.source)]
    if not ids:
        return exp.false()
    match = [col(src.concept, e).isin(*ids)]
    if source_column and src.source_concept:
        match.append(col(src.source_concept, e).isin(*[i.copy() for i in ids]))
    return exp.or_(*match) if len(match) > 1 else match[0]


def _events(ctx: _Ctx, c: m.EventCriterion, path: str) -> str:
    """CTE of (person_id, start_date, end_date) for an event criterion, as Circe builds it:
    codeset filter, then "first" (by date, then event id), then attribute filters."""
    src = _EVENTS[c.kind]
    ctx.need(src.table, path)
    e = "e"
    codeset: list[exp.Expression] = []
    if hasattr(c, "concepts"):
        codeset.append(_codeset_match(ctx, src, c.concepts, e, _join_path(path, "concepts")))
    if isinstance(c, m.VisitCriterion):
        codeset.append(col("visit_source_value", e).isin(*[lit(v) for v in c.visit_types]))
    if isinstance(c, m.ScreeningCriterion):
        codeset.append(exp.Not(this=exp.Is(this=col(c.item, e), expression=exp.Null())))
    attrs: list[exp.Expression] = []
    if isinstance(c, m.MeasurementCriterion):
        if c.value is not None and (rc := in_range(col("value_as_number", e), c.value)):
            attrs.append(rc)
        if c.unit is not None:
            attrs.append(exp.EQ(this=col("unit_source_value", e), expression=lit(c.unit)))
    if isinstance(c, m.ScreeningCriterion) and (rc := in_range(col(c.item, e), c.value)):
        attrs.append(rc)
    eid = col(src.event_id, e) if src.event_id else exp.cast(lit(0), "BIGINT")
    cols = [col("person_id", e).as_("person_id"), eid.as_("event_id"),
            col(src.start, e).as_("start_date"), _end_expr(src, e).as_("end_date")]
    if not c.first_occurrence:
        sel = exp.select(*cols).from_(exp.to_table(src.table).as_(e))
        if codeset or attrs:
            sel = sel.where(exp.and_(*codeset, *attrs))
        return ctx.add("ev", sel)
    order = [col(src.start, e), col(src.event_id, e) if src.event_id else eid.copy()]
    carried = [*cols, *[a.copy().as_(a.name) for a in _attr_columns(c, e)]]
    first = _first_per_person(ctx)(carried, order, exp.to_table(src.table).as_(e),
                                   exp.and_(*codeset) if codeset else None)
    outer = [a.transform(lambda n: col(n.name, "r") if isinstance(n, exp.Column) else n)
             for a in attrs]
    sel = exp.select(col("person_id", "r"), col("event_id", "r"), col("start_date", "r"),
                     col("end_date", "r")).from_(first.subquery("r"))
    return ctx.add("ev", sel.where(exp.and_(*outer)) if outer else sel)


def _first_per_person(ctx: _Ctx) -> Callable[..., exp.Select]:
    """How this dialect takes each person's first row: :func:`_first_by_aggregate`, or
    :func:`_first_by_rank` where there is no ARG_MIN."""
    return _first_by_aggregate if ctx.dialect in ("duckdb", "spark") else _first_by_rank


def _first_by_aggregate(carried: list[exp.Alias], order: list[exp.Expression],
                        source: exp.Expression, where: exp.Expression | None) -> exp.Select:
    """Each person's first row by ``order``, as one hash aggregate (ARG_MIN / MIN_BY of a
    struct): far cheaper than ranking every matching row with a window."""
    packed = exp.Struct(expressions=[exp.PropertyEQ(this=exp.to_identifier(a.alias),
                                                    expression=a.this) for a in carried
                                     if a.alias != "person_id"])
    key = exp.Struct(expressions=[exp.PropertyEQ(this=exp.to_identifier(f"k{i}"),
                                                 expression=o) for i, o in enumerate(order)])
    person = next(a.this for a in carried if a.alias == "person_id")
    agg = exp.select(person.copy().as_("person_id"), exp.ArgMin(this=packed, expression=key)
                     .as_("f")).from_(source).group_by(person.copy())
    if where is not None:
        agg = agg.where(where)
    return exp.select(col("person_id", "a"), *[
        exp.Dot(this=col("f", "a"), expression=exp.to_identifier(a.alias)).as_(a.alias)
        for a in carried if a.alias != "person_id"]).from_(agg.subquery("a"))


def _first_by_rank(carried: list[exp.Alias], order: list[exp.Expression],
                   source: exp.Expression, where: exp.Expression | None) -> exp.Select:
    """Each person's first row by ``order``, with ROW_NUMBER (dialects without ARG_MIN)."""
    person = next(a.this for a in carried if a.alias == "person_id")
    ranked = exp.select(*carried, exp.Window(
        this=exp.RowNumber(), partition_by=[person.copy()],
        order=exp.Order(expressions=[exp.Ordered(this=o.copy()) for o in order])).as_(
        "ordinal")).from_(source)
    if where is not None:
        ranked = ranked.where(where)
    return exp.select(*[col(a.alias, "k") for a in carried]).from_(ranked.subquery("k")).where(
        exp.EQ(this=col("ordinal", "k"), expression=lit(1)))


def _attr_columns(c: m.EventCriterion, e: str) -> list[exp.Column]:
    """Columns the attribute filters read, carried through the ranking subquery."""
    if isinstance(c, m.MeasurementCriterion):
        return [col("value_as_number", e), col("unit_source_value", e)]
    if isinstance(c, m.ScreeningCriterion):
        return [col(c.item, e)]
    return []


def _not_withdrawn(ctx: _Ctx, person: exp.Expression) -> exp.Expression | None:
    if "consent" not in ctx.tables:
        return None
    sub = exp.select(lit(1)).from_(exp.to_table("consent").as_("w")).where(exp.and_(
        exp.EQ(this=col("person_id", "w"), expression=person),
        exp.Not(this=exp.Is(this=col("withdrawal_date", "w"), expression=exp.Null()))))
    return exp.Not(this=exp.Exists(this=sub))


def _entry_events(ctx: _Ctx, entry: m.Entry, path: str) -> exp.Expression:
    """The union of the entry criteria's events."""
    sources = [_events(ctx, c, _join_path(path, f"entry.criteria[{i}]"))
               for i, c in enumerate(entry.criteria)]
    union: exp.Expression = exp.select("*").from_(sources[0])
    for s in sources[1:]:
        union = exp.union(union, exp.select("*").from_(s), distinct=False)
    return union


def _index(ctx: _Ctx, entry: m.Entry, path: str, events: str | None = None) -> str:
    union = (exp.select(*EVENT_COLUMNS).from_(events) if events is not None
             else _entry_events(ctx, entry, path))
    e, op = "e", "op"
    conds = [exp.Between(this=col("start_date", e), low=col("observation_period_start_date", op),
                         high=col("observation_period_end_date", op))]
    if entry.prior_observation:
        conds.append(add_days(col("observation_period_start_date", op),
                              entry.prior_observation) <= col("start_date", e))
    if entry.post_observation:
        conds.append(add_days(col("start_date", e), entry.post_observation)
                     <= col("observation_period_end_date", op))
    sel = exp.select(
        col("person_id", e).as_("person_id"), col("event_id", e).as_("event_id"),
        col("start_date", e).as_("start_date"), col("end_date", e).as_("end_date"),
        col("observation_period_start_date", op).as_("op_start"),
        col("observation_period_end_date", op).as_("op_end"),
    ).from_(exp.Subquery(this=union, alias=exp.TableAlias(this=exp.to_identifier(e)))).join(
        exp.to_table("observation_period").as_(op),
        on=exp.and_(exp.EQ(this=col("person_id", op), expression=col("person_id", e)), *conds))
    if (nw := _not_withdrawn(ctx, col("person_id", e))) is not None:
        sel = sel.where(nw)   # in WHERE, not ON: Spark allows no subquery in a join condition
    entry_events = ctx.add("entry", sel)
    if entry.limit == "first":   # each person's earliest, by date then event id
        x = "x"
        carried = [col(c, x).as_(c) for c in ("person_id", "start_date", "end_date",
                                               "op_start", "op_end")]
        first = _first_per_person(ctx)(carried, [col("start_date", x), col("event_id", x)],
                                       exp.to_table(entry_events).as_(x), None)
        entry_events = ctx.add("first_entry", first)
    keep = exp.select(
        exp.Window(this=exp.RowNumber(), order=exp.Order(expressions=[
            exp.Ordered(this=col("person_id")), exp.Ordered(this=col("start_date")),
            exp.Ordered(this=col("end_date")), exp.Ordered(this=col("op_start"))])).as_(
            "event_id"),
        "person_id", "start_date", "end_date", "op_start", "op_end").from_(entry_events)
    return ctx.add("idx", keep, materialized=True)


# --- inclusion rules --------------------------------------------------------------------

@dataclass
class _Rule:
    """What a rule's boolean needs: requirement CTEs to left-join, person tables."""

    joins: dict[str, str] = field(default_factory=dict)   # alias -> cte name
    person: set[str] = field(default_factory=set)
    carriers: dict[str, str] = field(default_factory=dict)  # alias -> cte of person_id


def _window_bounds(idx: str, alias: str, date_col: str, w: m.Window | None,
                   restrict: bool) -> list[exp.Expression]:
    anchor = col("start_date" if w is None or w.anchor == "index_start" else "end_date", idx)
    d = col(date_col, alias)
    conds = []
    if w is not None and w.start is not None:
        conds.append(d >= add_days(anchor, w.start))
    if w is not None and w.end is not None:
        conds.append(d <= add_days(anchor, w.end))
    if restrict:
        conds.append(exp.Between(this=d, low=col("op_start", idx), high=col("op_end", idx)))
    return conds


def _requirement(ctx: _Ctx, req: m.Requirement, idx: str, rule: _Rule,
                 path: str) -> exp.Expression:
    c = req.criterion
    cpath = _join_path(path, "criterion")
    if c.kind in m.EVENT_KINDS or c.kind == "cohort_member":
        if c.kind == "cohort_member":
            rows, _, _ = _definition(ctx, c.cohort, _join_path(cpath, "cohort"))
            src = ctx.add("member", exp.select(
                col("subject_id").as_("person_id"), col("cohort_start_date").as_("start_date"))
                .from_(rows))
        else:
            src = _events(ctx, c, cpath)
        i, e = "i", "e"
        counted = (exp.Count(this=exp.Distinct(expressions=[col("start_date", e)]))
                   if req.occurrence.distinct_dates else exp.Count(this=exp.Star()))
        on = [exp.EQ(this=col("person_id", e), expression=col("person_id", i)),
              *_window_bounds(i, e, "start_date", req.window, req.restrict_to_observation)]
        q = exp.select(col("event_id", i).as_("event_id"), counted.as_("n")).from_(
            exp.to_table(idx).as_(i)).join(exp.to_table(src).as_(e), on=exp.and_(*on)).group_by(
            col("event_id", i))
        alias = f"q{len(rule.joins)}"
        rule.joins[alias] = ctx.add("req", q)
        n = exp.Coalesce(this=col("n", alias), expressions=[lit(0)])
        return compare(n, req.occurrence)
    met = _person_level(ctx, c, idx, rule, cpath, req)
    n = exp.Case(ifs=[exp.If(this=met, true=lit(1))], default=lit(0))
    return compare(n, req.occurrence)


def _person_level(ctx: _Ctx, c, idx: str, rule: _Rule, path: str,
                  req: m.Requirement) -> exp.Expression:
    if isinstance(c, m.GenotypeCriterion):
        alias = f"g{len(rule.carriers)}"
        rule.carriers[alias] = _carriers(ctx, c, path)
        return exp.Not(this=exp.Is(this=col("person_id", alias), expression=exp.Null()))
    ctx.need(_PERSON_TABLES[c.kind], path)
    i = "i"
    if isinstance(c, m.AgeCriterion):
        rule.person.add("person")
        age = exp.Sub(this=exp.Year(this=col("start_date", i)),
                      expression=col("year_of_birth", "p"))
        return in_range(age, c.value) or exp.true()
    if isinstance(c, m.SexCriterion):
        rule.person.add("person")
        return col("gender_concept_id", "p").isin(*[lit(_SEX[s]) for s in c.values])
    if isinstance(c, m.RegionCriterion):
        rule.person.update({"person", "location"})
        return col("state", "loc").isin(*[lit(code) for code in c.codes])
    if isinstance(c, m.RegionIndicatorCriterion):
        rule.person.update({"person", "region_indicator"})
        return exp.Coalesce(this=in_range(col(c.indicator, "ri"), c.value) or exp.true(),
                            expressions=[exp.false()])
    if isinstance(c, m.ConsentCriterion):
        rule.person.add("consent")
        return consented(c.scope, "con")
    if isinstance(c, m.GenomeCriterion):
        rule.person.add("sample_link")
        return exp.Not(this=exp.Is(this=col("person_id", "sl"), expression=exp.Null()))
    if isinstance(c, m.LifelogCriterion):
        return _lifelog(ctx, c, idx, rule, req)
    raise DefinitionError(f"criterion kind {c.kind!r} is not supported here", path=path)


def consented(scope: str, alias: str) -> exp.Expression:
    """Consented to ``scope`` and never withdrawn, over the consent table as ``alias``
    (false for a person without a consent row, as for one without the scope)."""
    return exp.Coalesce(this=exp.and_(col(scope, alias), exp.Is(
        this=col("withdrawal_date", alias), expression=exp.Null())), expressions=[exp.false()])


def _carriers(ctx: _Ctx, c: m.GenotypeCriterion, path: str) -> str:
    """CTE of the persons (person_id, distinct) carrying one of the criterion's variants:
    carrier calls of their linked samples, only for genomic consent not withdrawn."""
    if CARRIERS not in ctx.tables:
        raise DefinitionError(
            "genotype criteria need the carrier table: run `workbench genomics carriers "
            "--release DIR` (once per release)", path=path,
            hint="a release without genotypes (no VCF) has no carriers; "
                 "drop the genotype criterion for such a release")
    for table in ("sample_link", "consent"):
        ctx.need(table, path)
    g, sl, con, v = "g", "sl", "con", "v"
    conds = [consented("genomic", con), col("n_alt", g) >= lit(1) if c.zygosity == "carrier"
             else exp.EQ(this=col("n_alt", g), expression=lit(2))]
    sel = exp.select(col("person_id", sl).as_("person_id")).distinct().from_(
        exp.to_table(CARRIERS).as_(g)).join(
        exp.to_table("sample_link").as_(sl), on=exp.EQ(
            this=col("sample_id", sl), expression=col("sample_id", g))).join(
        exp.to_table("consent").as_(con), on=exp.EQ(
            this=col("person_id", con), expression=col("person_id", sl)))
    if (region := c.parsed_region()) is not None:
        contig, start, end = region
        conds += [exp.EQ(this=col("contig", g), expression=lit(contig)),
                  exp.Between(this=col("position", g), low=lit(start), high=lit(end))]
    else:
        fields = ("contig", "position", "ref", "alt")
        wanted = exp.values([tuple(lit(x) for x in var) for var in
                             dict.fromkeys(c.parsed_variants())], alias=v, columns=fields)
        sel = sel.join(wanted, on=exp.and_(*[exp.EQ(this=col(f, g), expression=col(f, v))
                                             for f in fields]))
    return ctx.add("carriers", sel.where(exp.and_(*conds)))


def _lifelog(ctx: _Ctx, c: m.LifelogCriterion, idx: str, rule: _Rule,
             req: m.Requirement) -> exp.Expression:
    i, w = "i", "w"
    window = req.window or m.Window(start=-365, end=0)
    metric = col(c.metric, w)
    if c.aggregate == "days_meeting":
        meets = in_range(metric, c.day_range) or exp.true()
        value = exp.Sum(this=exp.Case(ifs=[exp.If(this=meets, true=lit(1))], default=lit(0)))
    else:
        fn = {"mean": exp.Avg, "min": exp.Min, "max": exp.Max, "sum": exp.Sum}[c.aggregate]
        value = fn(this=metric)
    on = [exp.EQ(this=col("person_id", w), expression=col("person_id", i)),
          *_window_bounds(i, w, "date", window, False)]
    q = exp.select(col("event_id", i).as_("event_id"), value.as_("v"),
                   exp.Count(this=exp.Star()).as_("days")).from_(
        exp.to_table(idx).as_(i)).join(exp.to_table("wearable_daily").as_(w),
                                       on=exp.and_(*on)).group_by(col("event_id", i))
    alias = f"q{len(rule.joins)}"
    rule.joins[alias] = ctx.add("life", q)
    conds = [col("days", alias) >= lit(c.min_days)]
    if rc := in_range(col("v", alias), c.value):
        conds.append(rc)
    return exp.Coalesce(this=exp.and_(*conds), expressions=[exp.false()])


def _group(ctx: _Ctx, g: m.Group, idx: str, rule: _Rule, path: str) -> exp.Expression:
    parts = []
    for k, item in enumerate(g.items):
        p = _join_path(path, f"items[{k}]")
        parts.append(_group(ctx, item, idx, rule, p) if isinstance(item, m.Group)
                     else _requirement(ctx, item, idx, rule, p))
    if g.mode == "all":
        return exp.and_(*parts)
    if g.mode == "any":
        return exp.or_(*parts)
    total = parts[0]
    total = exp.Case(ifs=[exp.If(this=parts[0], true=lit(1))], default=lit(0))
    for p in parts[1:]:
        total = exp.Add(this=total, expression=exp.Case(ifs=[exp.If(this=p, true=lit(1))],
                                                         default=lit(0)))
    return total >= lit(g.n)


def _flags(ctx: _Ctx, cohort: m.Cohort, idx: str, path: str,
           only: list[int] | None = None) -> tuple[str, list[str]]:
    """CTE: every index event with one boolean column per inclusion rule (or per rule
    numbered in ``only``, 0-based)."""
    rule = _Rule()
    exprs = []
    for k, r in enumerate(cohort.inclusion_rules):
        if only is not None and k not in only:
            continue
        p = _join_path(path, f"inclusion_rules[{k}].group")
        exprs.append(exp.Paren(this=_group(ctx, r.group, idx, rule, p)).as_(f"rule_{k + 1}"))
    i = "i"
    sel = exp.select(col("event_id", i), col("person_id", i), col("start_date", i),
                     col("end_date", i), col("op_start", i), col("op_end", i), *exprs).from_(
        exp.to_table(idx).as_(i))
    for alias, cte in rule.joins.items():
        sel = sel.join(exp.to_table(cte).as_(alias), on=exp.EQ(
            this=col("event_id", alias), expression=col("event_id", i)), join_type="left")
    person_joins = {
        "person": ("person", "p", exp.EQ(this=col("person_id", "p"),
                                         expression=col("person_id", i))),
        "location": ("location", "loc", exp.EQ(this=col("location_id", "loc"),
                                               expression=col("location_id", "p"))),
        "region_indicator": ("region_indicator", "ri", exp.and_(
            exp.EQ(this=col("location_id", "ri"), expression=col("location_id", "p")),
            exp.EQ(this=col("year", "ri"), expression=exp.Year(this=col("start_date", i))))),
        "consent": ("consent", "con", exp.EQ(this=col("person_id", "con"),
                                             expression=col("person_id", i))),
    }
    for key in ("person", "location", "region_indicator", "consent"):
        if key in rule.person:
            table, alias, on = person_joins[key]
            sel = sel.join(exp.to_table(table).as_(alias), on=on, join_type="left")
    if "sample_link" in rule.person:
        linked = exp.select("person_id").distinct().from_("sample_link")
        sel = sel.join(exp.Subquery(this=linked, alias=exp.TableAlias(
            this=exp.to_identifier("sl"))), on=exp.EQ(this=col("person_id", "sl"),
                                                      expression=col("person_id", i)),
            join_type="left")
    for alias, cte in rule.carriers.items():
        sel = sel.join(exp.to_table(cte).as_(alias), on=exp.EQ(
            this=col("person_id", alias), expression=col("person_id", i)), join_type="left")
    steps = ["entry events"] + [r.name for k, r in enumerate(cohort.inclusion_rules)
                                if only is None or k in only]
    return ctx.add("flags", sel, materialized=True), steps


# --- exit, censoring, eras ----------------------------------------------------------------

def _exit_end(ctx: _Ctx, cohort: m.Cohort, path: str) -> tuple[exp.Expression, list]:
    """End-date expression over alias 'f' (flags) plus extra left joins."""
    op_end = col("op_end", "f")
    x = cohort.exit
    if isinstance(x, m.EndOfObservation):
        return op_end, []
    if isinstance(x, m.FixedOffset):
        anchor = col("start_date" if x.anchor == "index_start" else "end_date", "f")
        return exp.Least(this=add_days(anchor, x.days), expressions=[op_end]), []
    eras = _drug_eras(ctx, x, _join_path(path, "exit"))
    on = exp.and_(exp.EQ(this=col("person_id", "x"), expression=col("person_id", "f")),
                  exp.Between(this=col("start_date", "f"), low=col("era_start", "x"),
                              high=col("era_end", "x")))
    # an index in no era exits at the end of observation, as in Circe
    era_end = exp.Coalesce(this=col("era_end", "x"), expressions=[op_end.copy()])
    return exp.Least(this=era_end, expressions=[op_end]), [(eras, "x", on)]


def _islands(ctx: _Ctx, source: str, gap: int) -> str:
    """Gaps and islands: each person's periods (person_id, start_date, end_date) merged
    where one starts within ``gap`` days of the end of any earlier one; CTE of
    (person_id, era_start, era_end)."""
    order = exp.Order(expressions=[exp.Ordered(this=col("start_date")),
                                   exp.Ordered(this=col("end_date"))])
    prev_end = exp.Window(this=exp.Max(this=col("end_date")), partition_by=[col("person_id")],
                          order=order, spec=exp.WindowSpec(
                              kind="ROWS", start="UNBOUNDED", start_side="PRECEDING",
                              end=lit(1), end_side="PRECEDING"))
    # distinct periods first: tied (start, end) rows could be ordered differently by the
    # two window passes below and split or duplicate an era
    periods = ctx.add("periods", exp.select("person_id", "start_date", "end_date").distinct()
                      .from_(source))
    marked = exp.select("person_id", "start_date", "end_date", exp.Case(ifs=[exp.If(
        this=col("start_date") <= add_days(prev_end, gap), true=lit(0))], default=lit(1)).as_(
        "new_era")).from_(periods)
    numbered = exp.select("person_id", "start_date", "end_date", exp.Window(
        this=exp.Sum(this=col("new_era")), partition_by=[col("person_id")], order=order,
        spec=exp.WindowSpec(kind="ROWS", start="UNBOUNDED", start_side="PRECEDING",
                            end="CURRENT ROW")).as_("era")).from_(ctx.add("mark", marked))
    return ctx.add("era", exp.select(
        "person_id", exp.Min(this=col("start_date")).as_("era_start"),
        exp.Max(this=col("end_date")).as_("era_end")).from_(
        ctx.add("num", numbered)).group_by("person_id", "era"))


def _drug_eras(ctx: _Ctx, x: m.DrugExposureEnd, path: str) -> str:
    """Circe's custom era: each exposure (concept or source concept in the set) extended by
    gap + offset days, merged where they touch; era end = merged end - gap (so offset days
    after the last exposure). CTE of (person_id, era_start, era_end)."""
    src, e = _EVENTS["drug"], "e"
    ctx.need(src.table, path)
    ext = add_days(_end_expr(src, e), x.gap_days + x.offset)
    exposures = exp.select(col("person_id", e).as_("person_id"),
                           col(src.start, e).as_("start_date"), ext.as_("end_date")).from_(
        exp.to_table(src.table).as_(e)).where(_codeset_match(
            ctx, src, x.concepts, e, _join_path(path, "concepts"), source_column=True))
    merged = _islands(ctx, ctx.add("drugext", exposures), 0)
    return ctx.add("custom_era", exp.select(
        "person_id", "era_start", add_days(col("era_end"), -x.gap_days).as_("era_end")).from_(
        merged))


def _censored(ctx: _Ctx, cohort: m.Cohort, qualified: str, path: str) -> str:
    """Apply exit, censoring, result limit; CTE of (person_id, start_date, end_date)."""
    end, joins = _exit_end(ctx, cohort, path)
    f = "f"
    sel = exp.select(col("person_id", f).as_("person_id"), col("start_date", f).as_("start_date"),
                     end.as_("end_date")).from_(exp.to_table(qualified).as_(f))
    for cte, alias, on in joins:
        sel = sel.join(exp.to_table(cte).as_(alias), on=on, join_type="left")
    ended = ctx.add("ended", sel)
    if cohort.censoring:
        srcs = [_events(ctx, c, _join_path(path, f"censoring[{k}]"))
                for k, c in enumerate(cohort.censoring)]
        union: exp.Expression = exp.select("person_id", "start_date").from_(srcs[0])
        for s in srcs[1:]:
            union = exp.union(union, exp.select("person_id", "start_date").from_(s),
                              distinct=False)
        cens = exp.select(col("person_id", "d"), col("start_date", "d"), exp.Min(
            this=col("start_date", "c")).as_("censor")).from_(exp.to_table(ended).as_("d")).join(
            exp.Subquery(this=union, alias=exp.TableAlias(this=exp.to_identifier("c"))),
            on=exp.and_(exp.EQ(this=col("person_id", "c"), expression=col("person_id", "d")),
                        exp.Between(this=col("start_date", "c"), low=col("start_date", "d"),
                                    high=col("end_date", "d")))).group_by(
            col("person_id", "d"), col("start_date", "d"))
        cname = ctx.add("cens", cens)
        ended = ctx.add("censored", exp.select(
            col("person_id", "d"), col("start_date", "d"),
            exp.Least(this=col("end_date", "d"), expressions=[exp.Coalesce(
                this=col("censor", "c"), expressions=[col("end_date", "d")])]).as_("end_date"))
            .from_(exp.to_table(ended).as_("d")).join(exp.to_table(cname).as_("c"), on=exp.and_(
                exp.EQ(this=col("person_id", "c"), expression=col("person_id", "d")),
                exp.EQ(this=col("start_date", "c"), expression=col("start_date", "d"))),
                join_type="left"))
    if cohort.result_limit == "first":
        ranked = exp.select("person_id", "start_date", "end_date", exp.Window(
            this=exp.RowNumber(), partition_by=[col("person_id")], order=exp.Order(
                expressions=[exp.Ordered(this=col("start_date")),
                             exp.Ordered(this=col("end_date"))])).as_("rn")).from_(ended)
        ended = ctx.add("first", exp.select("person_id", "start_date", "end_date").from_(
            ctx.add("rank", ranked)).where(exp.EQ(this=col("rn"), expression=lit(1))))
    return ended


def _collapse(ctx: _Ctx, rows: str, pad: int) -> str:
    """Merge each person's overlapping (or within ``pad`` days) periods into cohort rows."""
    return ctx.add("rows", exp.select(
        col("person_id").as_("subject_id"), col("era_start").as_("cohort_start_date"),
        col("era_end").as_("cohort_end_date")).from_(_islands(ctx, rows, pad)))


def _cohort(ctx: _Ctx, cohort: m.Cohort, path: str) -> tuple[str, list[str], str]:
    idx = _index(ctx, cohort.entry, path)
    flags, steps = _flags(ctx, cohort, idx, path)
    rules = [col(f"rule_{k}") for k in range(1, len(steps))]
    qualified = ctx.add("qual", exp.select("*").from_(flags).where(
        exp.and_(*rules) if rules else exp.true()))
    rows = _collapse(ctx, _censored(ctx, cohort, qualified, path), cohort.era_pad_days)
    counts = [exp.Count(this=exp.Distinct(expressions=[col("person_id")])).as_("n_0")]
    for k in range(1, len(steps)):
        cond = exp.and_(*rules[:k])
        counts.append(exp.Count(this=exp.Distinct(expressions=[exp.Case(
            ifs=[exp.If(this=cond, true=col("person_id"))])])).as_(f"n_{k}"))
    attrition = ctx.add("attr", exp.select(*counts).from_(flags))
    return rows, steps, attrition


def _set(ctx: _Ctx, s: m.CohortSet, path: str) -> tuple[str, list[str], str]:
    operands = [_definition(ctx, c, _join_path(path, f"cohorts[{k}]"))[0]
                for k, c in enumerate(s.cohorts)]
    first = operands[0]
    base = exp.select(col("subject_id").as_("person_id"), col("cohort_start_date").as_(
        "start_date"), col("cohort_end_date").as_("end_date"))
    if s.kind == "union":
        body: exp.Expression = base.from_(first)
        for o in operands[1:]:
            body = exp.union(body, base.from_(o), distinct=False)
    else:
        body = base.from_(exp.to_table(first).as_("a"))
        conds = []
        for o in operands[1:]:
            sub = exp.select(lit(1)).from_(exp.to_table(o).as_("b")).where(exp.EQ(
                this=col("subject_id", "b"), expression=col("subject_id", "a")))
            ex = exp.Exists(this=sub)
            conds.append(ex if s.kind == "intersect" else exp.Not(this=ex))
        body = body.where(exp.and_(*conds))
    rows = _collapse(ctx, ctx.add("setrows", body), 0)
    counts = [exp.select(exp.Count(this=exp.Distinct(expressions=[col("subject_id")])).as_(
        "n")).from_(o) for o in [*operands, rows]]
    attr = exp.select(*[exp.Subquery(this=q).as_(f"n_{k}") for k, q in enumerate(counts)])
    steps = [f"{s.kind} operand {k + 1}: {c.name}" for k, c in enumerate(s.cohorts)]
    steps.append(f"{s.kind} result")
    return rows, steps, ctx.add("attr", attr)


def transpile(sql: str, dialect: str) -> str:
    """Re-render DuckDB SQL for another dialect (for display and tests)."""
    return sqlglot.transpile(sql, read="duckdb", write=dialect)[0]
