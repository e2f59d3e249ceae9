"""Table 1: who a cohort's persons are at their index date, every cell through the policy.

A person's index date is their first ``cohort_start_date``. Windows are in days relative
to the index and inclusive at both ends: conditions, drugs and wearable days -365..0
(the index day included), the latest health screening -730..0. Age at index is the
index year minus the year of birth, as in the cohort compiler's age criterion.

Every number is computed by DuckDB over the release's views, with the members registered
on a private cursor of the catalog's (read-only) connection. Persons who withdrew consent
are left out even if a hand-made member list holds them.

Privacy: counts go through ``SmallCellPolicy.counts`` one group at a time (the levels of
a categorical variable, or ``[yes, no]`` of a binary one, of which only "yes" is shown),
so complementary suppression stops recovery by subtraction. The persons with a value of a
continuous variable are a group within their parent (all persons, those screened, those
with wearable data) and are hidden whenever the parent's count is. A mean, sd, median or
quartile over fewer than ``policy.threshold`` persons is suppressed; a percentage is
suppressed with its count, and with its denominator.

>>> import tempfile, pathlib
>>> from workbench import catalog
>>> from workbench.synth.build import build_release
>>> from cohort.builder import cohort, condition
>>> from cohort.engine import run
>>> rel = pathlib.Path(tempfile.mkdtemp()) / "r"
>>> _ = build_release(rel, persons=1000, genotyped=0, variants=0, seed=1, progress=False)
>>> cat = catalog.open(rel)
>>> htn = run(cohort("hypertension").entry(condition("KCD8", "I10")).build(), cat)
>>> t = table1(htn, cat, top=5)
>>> t.frame.filter(section="cohort")["n"].item() == htn.members["subject_id"].n_unique()
True
>>> t.frame.filter(section="conditions")["level"][0]
'I10 Essential (primary) hypertension (본태성(원발성) 고혈압)'
>>> table1(htn, cat, conditions=["E11", "I10"], drugs=[]).frame.filter(
...     section="conditions")["level"].str.slice(0, 3).to_list()
['I10', 'E11']
>>> t2d = run(cohort("T2D").entry(condition("KCD8", "E11")).build(), cat)
>>> c = compare(t2d, htn, cat, top=3)
>>> c.filter(variable="age at index", level="mean (sd)")["smd"].is_not_null().item()
True
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb
import polars as pl

from cohort import governance
from cohort.engine import CohortResult
from cohort.privacy import Cell, SmallCellPolicy, Suppressed
from workbench.catalog import Catalog
from workbench.errors import AccessDenied, UsageError

HISTORY_DAYS = 365      # conditions, drugs, wearable days: -365..0
SCREENING_DAYS = 730    # latest health screening: -730..0
SCREENING_ITEMS = ("bmi", "sbp", "dbp", "fasting_glucose", "ldl_cholesterol",
                   "hdl_cholesterol", "triglycerides", "egfr")
LIFELOG_ITEMS = ("steps", "sleep_minutes", "resting_hr")
CURRENT_SMOKER = 3      # health_screening.smoking_status: 1 never, 2 former, 3 current
NOT_IN_RELEASE = "not in this release"

SCHEMA = {"section": pl.String, "variable": pl.String, "level": pl.String, "n": pl.Int64,
          "pct": pl.Float64, "value": pl.Float64, "shown": pl.String,
          "suppressed": pl.Boolean}
# A continuous variable gives five rows; "sd", "q1", "q3" are folded into the shown text
# of "mean (sd)" and "median [IQR]" and left out of the display.
STAT_LEVELS = ("mean (sd)", "sd", "median [IQR]", "q1", "q3")
DETAIL_LEVELS = ("sd", "q1", "q3")

_MEMBERS = "_table1_members"
_IDX = (f"idx as (select subject_id as person_id, min(cohort_start_date) as index_date "
        f"from {_MEMBERS} group by subject_id)")
# The same, less anyone who withdrew consent (the engine never returns them; hand-made
# member lists might hold them).
_IDX_CONSENTED = (f"idx as (select subject_id as person_id, min(cohort_start_date) as "
                  f"index_date from {_MEMBERS} m where not exists (select 1 from consent w "
                  f"where w.person_id = m.subject_id and w.withdrawal_date is not null) "
                  f"group by subject_id)")
# (section, table, concept column, date column, vocabulary, concept class of the groups)
_GROUPED = {"conditions": ("condition_occurrence", "condition_concept_id",
                           "condition_start_date", "KCD8", "KCD8 3-char"),
            "drugs": ("drug_exposure", "drug_concept_id", "drug_exposure_start_date",
                      "ATC", "ATC 4th")}

Row = tuple[str, str, str, int | None, float | None, float | None, str, bool]


@dataclass(frozen=True)
class Table1:
    """A cohort's Table 1 as a long frame (see :data:`SCHEMA`), every cell already checked.

    ``frame`` columns: ``section``, ``variable``, ``level``; ``n`` (persons, null when
    suppressed); ``pct`` (percent of the variable's denominator, null when suppressed);
    ``value`` (a mean, sd, median or quartile); ``shown`` (the display text: ``"1,234
    (45.6%)"``, ``"< 20"``, ``"suppressed"``, ``"52.3 (11.2)"``); ``suppressed``.
    """

    frame: pl.DataFrame
    name: str
    release_id: str
    policy: SmallCellPolicy

    @property
    def persons(self) -> str:
        """The cohort's size as shown (``"< 20"`` when small)."""
        return self.frame.filter(pl.col("section") == "cohort")["shown"].item()

    def display(self) -> pl.DataFrame:
        """The rows a reader sees: section, variable, level, shown (no sd/q1/q3 rows)."""
        return (self.frame.filter(~pl.col("level").is_in(DETAIL_LEVELS))
                .select("section", "variable", "level", "shown"))

    def to_html(self) -> str:
        """A plain HTML table (one header row per section); all text escaped."""
        head = f"{html.escape(self.name)} (N = {html.escape(self.persons)})"
        out = ['<table class="table1">',
               f"<thead><tr><th>Variable</th><th>Level</th><th>{head}</th></tr></thead>",
               "<tbody>"]
        section = None
        for sec, var, level, shown in self.display().iter_rows():
            if sec != section:
                out.append(f'<tr class="section"><th colspan="3">{html.escape(sec)}</th></tr>')
                section = sec
            out.append(f"<tr><td>{html.escape(var)}</td><td>{html.escape(level)}</td>"
                       f"<td>{html.escape(shown)}</td></tr>")
        out += ["</tbody>", "</table>"]
        return "\n".join(out)

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return (f"Table1({self.name!r}, persons={self.persons}, rows={self.frame.height}, "
                f"release={self.release_id!r})")


def table1(result: CohortResult, cat: Catalog, *, top: int = 10,
           conditions: Sequence[str] | None = None, drugs: Sequence[str] | None = None,
           policy: SmallCellPolicy | None = None) -> Table1:
    """Characterise a cohort's persons at their first ``cohort_start_date``.

    Sections: ``cohort`` (persons); ``demographics`` (age at index: mean (sd), median
    [IQR], 10-year bands; sex; region as ``location.state`` and its Korean name);
    ``conditions`` (KCD8 3-character groups) and ``drugs`` (ATC 4th level) with a record
    starting in days -365..0, the ``top`` most frequent or exactly the codes given in
    ``conditions``/``drugs``, percent of all persons; ``screening`` (the latest health
    screening in days -730..0: persons screened, mean (sd) of each item in
    :data:`SCREENING_ITEMS` over persons with a value in that record, current smokers in
    percent of those with a smoking status); ``lifelog`` (persons with at least one
    wearable day in -365..0; for them, each person's mean daily steps, sleep minutes and
    resting heart rate, summarised over persons). A section whose tables the release
    lacks has one row, ``not in this release``.

    ``policy`` defaults to the result's. Example (run in the module docstring)::

        t = table1(htn, cat, conditions=["E11", "I10"], drugs=[])
        t.display()        # section, variable, level, shown
        t.to_html()
    """
    if top < 0:
        raise UsageError(f"table1: top must be 0 or more, got {top}")
    governance.gate("registered", "Table 1", "characterize.table1", result, cat=cat,
                    tables=("person", "location", "concept", "consent", "health_screening",
                            "wearable_daily", *(t[0] for t in _GROUPED.values())))
    policy = policy or result.policy
    with members_query(result, cat, who="table1") as q:
        total = int(q.one(f"with {q.idx} select count(*) from idx")[0])
        rows: list[Row] = [_count_row(policy, "cohort", "persons", "",
                                      policy.count(total), None)]
        rows += _demographics(q, policy, total)
        for section, codes in (("conditions", conditions), ("drugs", drugs)):
            rows += _grouped(q, policy, total, section, top, codes)
        rows += _screening(q, policy, total)
        rows += _lifelog(q, policy, total)
    frame = pl.DataFrame(rows, schema=SCHEMA, orient="row")
    name = getattr(result.definition, "name", "cohort")
    return Table1(frame, name, cat.release_id, policy)


def compare(a: CohortResult, b: CohortResult, cat: Catalog, *, top: int = 10,
            policy: SmallCellPolicy | None = None) -> pl.DataFrame:
    """Two Table 1s side by side with standardized mean differences (SMD).

    Conditions and drugs are the union of both cohorts' ``top`` groups, counted in both.
    Columns: section, variable, level, ``shown_a``/``shown_b``, ``n_*``, ``pct_*``,
    ``value_*`` and ``smd``. For a "mean (sd)" row SMD = (mean_a - mean_b) /
    sqrt((sd_a² + sd_b²) / 2); for a count row with proportions p, (p_a - p_b) /
    sqrt((p_a(1 - p_a) + p_b(1 - p_b)) / 2). SMD is null when either side is suppressed
    or has no value, and on rows without one (persons, medians); 0 when both sides are
    equal with a zero denominator. A level present on one side only (an age band, say)
    counts 0 persons on the other. The sd/q1/q3 detail rows are left out.

    Example (run in the module docstring)::

        compare(t2d, htn, cat, top=3).filter(variable="sex")
    """
    first = [table1(r, cat, top=top, policy=policy) for r in (a, b)]
    groups = {s: _codes(first[0], s) + [c for c in _codes(first[1], s)
                                        if c not in _codes(first[0], s)]
              for s in _GROUPED}
    ta, tb = (table1(r, cat, conditions=groups["conditions"], drugs=groups["drugs"],
                     policy=policy) for r in (a, b))
    keys = ["section", "variable", "level"]
    fa, fb = (t.frame.with_row_index("_order") for t in (ta, tb))
    sd = {side: f.filter(pl.col("level") == "sd").select(
        *keys[:2], pl.col("value").alias(f"sd_{side}")) for side, f in (("a", fa), ("b", fb))}
    both = fa.join(fb, on=keys, how="full", coalesce=True, suffix="_b").rename(
        {c: f"{c}_a" for c in ("_order", "n", "pct", "value", "shown", "suppressed")})
    both = both.join(sd["a"], on=keys[:2], how="left").join(sd["b"], on=keys[:2], how="left")
    zero = ~pl.col("level").is_in(STAT_LEVELS) & (pl.col("variable") != NOT_IN_RELEASE)
    fill = []
    for side in ("a", "b"):
        missing = pl.col(f"shown_{side}").is_null() & zero
        fill += [pl.when(missing).then(0).otherwise(pl.col(f"n_{side}")).alias(f"n_{side}"),
                 pl.when(missing).then(0.0).otherwise(pl.col(f"pct_{side}")).alias(f"pct_{side}"),
                 pl.when(missing).then(pl.lit("0")).otherwise(pl.col(f"shown_{side}"))
                 .alias(f"shown_{side}")]
    both = both.with_columns(fill)
    smd = [_smd(r) for r in both.iter_rows(named=True)]
    order = pl.coalesce("_order_a", "_order_b")
    return (both.with_columns(smd=pl.Series(smd, dtype=pl.Float64))
            .sort(order, pl.col("_order_b"), nulls_last=True)
            .filter(~pl.col("level").is_in(DETAIL_LEVELS))
            .select(*keys, "shown_a", "shown_b", "n_a", "n_b", "pct_a", "pct_b", "value_a",
                    "value_b", "smd"))


# --- queries ------------------------------------------------------------------------------

@contextmanager
def members_query(result: CohortResult, cat: Catalog, *, who: str) -> Iterator[_Query]:
    """A ``_Query`` on a private cursor of ``cat`` holding the result's members (its
    ``idx`` CTE: one row per person with the first index date, withdrawn persons left
    out); ``who`` names the caller in the error for a result of another release."""
    if result.release_id != cat.release_id:
        raise UsageError(f"{who}: the cohort was run on release {result.release_id}, "
                         f"the catalog is release {cat.release_id}",
                         hint="characterise a cohort with the catalog it was run on")
    if result.withheld:
        from cohort.disclosure import Withheld

        raise Withheld(f"{who}: not shown: this cohort {result.withheld}, so its "
                       "characterisation could give the difference away",
                       hint="characterise the earlier cohort, or a cohort that differs from "
                            "every one shown by at least the small-cell threshold")
    cur = cat.connection.cursor()
    try:
        cur.register(_MEMBERS, result._members.select(
            pl.col("subject_id").cast(pl.Int64), pl.col("cohort_start_date").cast(pl.Date))
            .to_arrow())
        yield _Query(cur, cat)
    except (duckdb.BinderException, duckdb.CatalogException) as e:
        if cat.project is None:
            raise
        raise AccessDenied(f"{who}: project {cat.project.name!r} is not granted a table or "
                           f"column this needs ({str(e).splitlines()[0]})",
                           hint="ask the data access committee to add it to the project's "
                                "grants") from e
    finally:
        cur.close()


class _Query:
    """Runs SQL on the cursor holding the registered members; knows the release's tables."""

    def __init__(self, cur: duckdb.DuckDBPyConnection, cat: Catalog) -> None:
        self.cur, self.cat = cur, cat
        self.idx = _IDX_CONSENTED if cat.has("consent") else _IDX

    def has(self, *tables: str) -> bool:
        return all(self.cat.has(t) for t in tables)

    def frame(self, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
        return self.cur.sql(sql, params=params).pl()

    def one(self, sql: str, params: dict[str, Any] | None = None) -> tuple:
        rows = self.cur.sql(sql, params=params).fetchall()
        return rows[0] if rows else ()


def _stats_sql(source: str, items: Sequence[str]) -> str:
    """Per item in ``items`` (columns of the CTE ``source``, one row per person): persons
    with a value, mean, sd, median and quartiles. Items and source are module constants."""
    cols = ", ".join(f"cast({i} as double) as {i}" for i in items)
    return (f"long as (unpivot (select {cols} from {source}) on {', '.join(items)} "
            f"into name item value v) "
            f"select item, count(v) as n, avg(v) as mean, stddev_samp(v) as sd, "
            f"quantile_cont(v, 0.5) as median, quantile_cont(v, 0.25) as q1, "
            f"quantile_cont(v, 0.75) as q3 from long group by item")


def _demographics(q: _Query, policy: SmallCellPolicy, total: int) -> list[Row]:
    sec = "demographics"
    if not q.has("person"):
        return [_absent(sec)]
    person = (f"with {q.idx}, p as (select i.person_id, p.location_id, p.gender_concept_id, "
              f"year(i.index_date) - p.year_of_birth as age "
              f"from idx i left join person p on p.person_id = i.person_id)")
    stats = q.frame(f"{person}, {_stats_sql('p', ['age'])}")
    rows = _stat_rows(policy, sec, "age at index", _stats_of(stats, "age"), total,
                      parent_hidden=0 < total < policy.threshold)
    bands = q.frame(f"{person} select least(age // 10, 9) as band, count(*) as persons "
                    f"from p group by band order by band nulls last")
    rows += _group(policy, sec, "age band", [(_band(b), n) for b, n in bands.iter_rows()],
                   total)
    sex = q.frame(f"{person} select case gender_concept_id when 8532 then 'female' "
                  f"when 8507 then 'male' else 'unknown' end as sex, count(*) as persons "
                  f"from p group by sex order by sex")
    rows += _group(policy, sec, "sex", list(sex.iter_rows()), total)
    if not q.has("location"):
        return [*rows, _absent(sec, "region")]
    region = q.frame(
        f"{person}, r as (select l.state, l.location_source_value as name, "
        f"count(p.person_id) as persons from location l "
        f"left join p on p.location_id = l.location_id group by all "
        f"union all select null, null, count(*) from p where p.location_id is null "
        f"or p.location_id not in (select location_id from location) having count(*) > 0) "
        f"select * from r order by state nulls last, name")
    levels = [("unknown" if s is None else f"{s} {nm}", n) for s, nm, n in region.iter_rows()]
    return rows + _group(policy, sec, "region", levels, total)


def _grouped(q: _Query, policy: SmallCellPolicy, total: int, section: str, top: int,
             codes: Sequence[str] | None) -> list[Row]:
    table, concept, date, vocab, cls = _GROUPED[section]
    if not q.has(table, "concept", "concept_ancestor"):
        return [_absent(section)]
    sql = (f"with {q.idx}, hits as (select distinct i.person_id, g.concept_code "
           f"from idx i join {table} e on e.person_id = i.person_id "
           f"and e.{date} between i.index_date - cast($days as integer) and i.index_date "
           f"join concept_ancestor ca on ca.descendant_concept_id = e.{concept} "
           f"join concept g on g.concept_id = ca.ancestor_concept_id "
           f"and g.vocabulary_id = $vocab and g.concept_class_id = $cls), "
           f"counts as (select concept_code, count(*) as persons from hits group by all) "
           f"select g.concept_code, g.concept_name, g.concept_name_ko, "
           f"coalesce(c.persons, 0) as persons "
           f"from concept g left join counts c on c.concept_code = g.concept_code "
           f"where g.vocabulary_id = $vocab and g.concept_class_id = $cls and "
           f"(case when $codes is null then c.persons > 0 "
           f"else list_contains($codes, g.concept_code) end) "
           f"order by persons desc, g.concept_code limit $top")
    params = {"days": HISTORY_DAYS, "vocab": vocab, "cls": cls,
              "codes": None if codes is None else list(codes),
              "top": top if codes is None else len(codes)}
    found = q.frame(sql, params)
    label = "KCD8 3-character group" if section == "conditions" else "ATC 4th level"
    rows: list[Row] = []
    for code, en, ko, n in found.iter_rows():
        level = f"{code} {en} ({ko})" if ko else f"{code} {en}"
        rows.append(_binary(policy, section, label, level, n, total))
    return rows


def _screening(q: _Query, policy: SmallCellPolicy, total: int) -> list[Row]:
    sec = "screening"
    if not q.has("health_screening"):
        return [_absent(sec)]
    latest = (f"with {q.idx}, latest as (select s.* from idx i join health_screening s "
              f"on s.person_id = i.person_id and s.screening_date between "
              f"i.index_date - cast($days as integer) and i.index_date "
              f"qualify row_number() over (partition by s.person_id "
              f"order by s.screening_date desc) = 1)")
    params = {"days": SCREENING_DAYS}
    screened, with_status, current = q.one(
        f"{latest} select count(*), count(smoking_status), "
        f"count(*) filter (where smoking_status = {CURRENT_SMOKER}) from latest", params)
    head = _binary(policy, sec, "screened in 730 days before index", "yes", screened, total)
    rows = [head]
    stats = q.frame(f"{latest}, {_stats_sql('latest', SCREENING_ITEMS)}", params)
    for item in SCREENING_ITEMS:
        rows += _stat_rows(policy, sec, item, _stats_of(stats, item), screened,
                           parent_hidden=head[7])
    # its denominator (persons screened with a status) follows the screened count
    return [*rows, _binary(policy, sec, "current smoker", "yes", current, with_status,
                           parent_hidden=head[7])]


def _lifelog(q: _Query, policy: SmallCellPolicy, total: int) -> list[Row]:
    sec = "lifelog"
    if not q.has("wearable_daily"):
        return [_absent(sec)]
    means = ", ".join(f"avg(w.{i}) as {i}" for i in LIFELOG_ITEMS)
    per = (f"with {q.idx}, per as (select w.person_id, {means} from idx i "
           f"join wearable_daily w on w.person_id = i.person_id and w.date between "
           f"i.index_date - cast($days as integer) and i.index_date group by w.person_id)")
    params = {"days": HISTORY_DAYS}
    covered = int(q.one(f"{per} select count(*) from per", params)[0])
    head = _binary(policy, sec, "wearable data in 365 days before index", "yes", covered,
                   total)
    rows = [head]
    stats = q.frame(f"{per}, {_stats_sql('per', LIFELOG_ITEMS)}", params)
    for item in LIFELOG_ITEMS:
        rows += _stat_rows(policy, sec, f"{item} (person mean per day)",
                           _stats_of(stats, item), covered, parent_hidden=head[7])
    return rows


# --- cells --------------------------------------------------------------------------------

def _absent(section: str, variable: str = NOT_IN_RELEASE) -> Row:
    return (section, variable, "", None, None, None, NOT_IN_RELEASE, False)


def _band(band: int | None) -> str:
    if band is None:
        return "unknown"
    return "90+" if band >= 9 else f"{band * 10}–{band * 10 + 9}"


def _count_row(policy: SmallCellPolicy, section: str, variable: str, level: str,
               cell: Cell, denominator: int | None, *, pct_hidden: bool = False) -> Row:
    if isinstance(cell, Suppressed):
        return (section, variable, level, None, None, None, policy.format(cell), True)
    if not denominator or (pct_hidden and cell):
        return (section, variable, level, cell, None, None, policy.format(cell), False)
    pct = 100.0 * cell / denominator
    return (section, variable, level, cell, pct, None, f"{policy.format(cell)} ({pct:.1f}%)",
            False)


def _group(policy: SmallCellPolicy, section: str, variable: str,
           levels: Sequence[tuple[str, int]], denominator: int) -> list[Row]:
    """The levels of one categorical variable, suppressed together."""
    cells = policy.counts([int(n) for _, n in levels])
    return [_count_row(policy, section, variable, level, cell, denominator)
            for (level, _), cell in zip(levels, cells, strict=True)]


def _binary(policy: SmallCellPolicy, section: str, variable: str, level: str, yes: int,
            denominator: int, *, parent_hidden: bool = False) -> Row:
    """One shown count, suppressed together with its unshown complement (no). When the
    denominator's own cell is suppressed, the percentage (which would reveal it) is not
    shown."""
    cell = policy.counts([int(yes), int(denominator) - int(yes)])[0]
    return _count_row(policy, section, variable, level, cell, denominator,
                      pct_hidden=parent_hidden)


def _stats_of(stats: pl.DataFrame, item: str) -> dict[str, Any]:
    hit = stats.filter(pl.col("item") == item)
    return hit.row(0, named=True) if hit.height else {"n": 0}


def _num(v: float | None) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:,.1f}"


def _stat_rows(policy: SmallCellPolicy, section: str, variable: str, stats: dict[str, Any],
               parent: int, *, parent_hidden: bool) -> list[Row]:
    """mean (sd), sd, median [IQR], q1, q3 of one variable; the values are hidden below
    the threshold. n is the persons with a value, suppressed with its complement within
    ``parent`` (the persons who could have one), and hidden whenever the parent's own count
    is (it would give that count back)."""
    n = int(stats["n"])
    cell = policy.counts([n, parent - n])[0]
    shown_n = None if isinstance(cell, Suppressed) or (parent_hidden and n) else cell
    hide = 0 < n < policy.threshold
    get = {k: (None if n == 0 or hide else stats.get(k)) for k in ("mean", "sd", "median",
                                                                   "q1", "q3")}
    texts = {"mean (sd)": f"{_num(get['mean'])} ({_num(get['sd'])})",
             "sd": _num(get["sd"]),
             "median [IQR]": f"{_num(get['median'])} [{_num(get['q1'])}, {_num(get['q3'])}]",
             "q1": _num(get["q1"]), "q3": _num(get["q3"])}
    values = {"mean (sd)": get["mean"], "sd": get["sd"], "median [IQR]": get["median"],
              "q1": get["q1"], "q3": get["q3"]}
    return [(section, variable, level, shown_n, None, values[level],
             "suppressed" if hide else texts[level], hide) for level in STAT_LEVELS]


# --- comparison ---------------------------------------------------------------------------

def _codes(t: Table1, section: str) -> list[str]:
    return [lv.split(" ", 1)[0]
            for lv in t.frame.filter(pl.col("section") == section)["level"].to_list()
            if lv]


def _smd(r: dict[str, Any]) -> float | None:
    if r["level"] == "mean (sd)":
        ma, mb, sa, sb = r["value_a"], r["value_b"], r["sd_a"], r["sd_b"]
        if None in (ma, mb, sa, sb):
            return None
        return _ratio(ma - mb, math.sqrt((sa ** 2 + sb ** 2) / 2))
    if r["level"] in STAT_LEVELS or r["pct_a"] is None or r["pct_b"] is None:
        return None
    pa_, pb_ = r["pct_a"] / 100.0, r["pct_b"] / 100.0
    return _ratio(pa_ - pb_, math.sqrt((pa_ * (1 - pa_) + pb_ * (1 - pb_)) / 2))


def _ratio(diff: float, scale: float) -> float | None:
    if scale > 0:
        return diff / scale
    return 0.0 if diff == 0 else None
