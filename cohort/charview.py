"""Characterise one cohort, or two side by side: Table 1 and plots, all through the policy.

``CharView(cat, a)`` or ``CharView(cat, a, b)`` (cohort results or definitions) shows
Table 1 (:func:`cohort.characterize.table1`; :func:`cohort.characterize.compare` with
standardized mean differences for two), an age-sex pyramid, and the distribution of a
health-screening item (the latest screening in days -730..0 of the index) and of a
wearable metric (each person's mean over the days in -365..0), item chosen in dropdowns.

The plots' numbers come from :func:`age_sex` and :func:`distribution`: persons per cell,
every group of cells (one cohort's age bands of one sex; one cohort's bins) through
``SmallCellPolicy.counts`` so complementary suppression holds. A suppressed cell draws
no bar and is labelled ``"< k"`` (or ``"suppressed"``); the raw count never reaches the
figure. Bins have fixed edges per item (the first and last are open), so no bin edge
reveals a person's extreme value. Persons who withdrew consent are left out.

>>> import tempfile, pathlib
>>> from workbench import catalog
>>> from workbench.synth.build import build_release
>>> from cohort.builder import cohort, condition
>>> from cohort.engine import run
>>> rel = pathlib.Path(tempfile.mkdtemp()) / "r"
>>> _ = build_release(rel, persons=1000, genotyped=0, variants=0, seed=1, progress=False)
>>> cat = catalog.open(rel)
>>> htn = run(cohort("hypertension").entry(condition("KCD8", "I10")).build(), cat)
>>> pyr = age_sex(htn, cat)
>>> pyr.columns
['band', 'sex', 'n', 'shown', 'suppressed']
>>> distribution(htn, cat, "bmi")["bin"][0]
'< 17.5'
>>> view = CharView(cat, htn)
>>> "hypertension" in view.table.value
True
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as W
import plotly.graph_objects as go
import polars as pl

from cohort import governance
from cohort import model as m
from cohort.characterize import compare, members_query, table1
from cohort.engine import CohortResult, run
from cohort.privacy import SmallCellPolicy, Suppressed
from workbench.catalog import Catalog
from workbench.errors import UsageError

__all__ = ["CharView", "age_sex", "distribution", "SCREENING_BINS", "LIFELOG_BINS"]

# first edge, last edge, width: bins [lo, lo+w), ..., the first "< lo", the last ">= hi"
SCREENING_BINS: dict[str, tuple[float, float, float]] = {
    "bmi": (17.5, 35.0, 2.5), "sbp": (90, 180, 10), "dbp": (60, 110, 5),
    "fasting_glucose": (70, 160, 10), "ldl_cholesterol": (60, 220, 20),
    "hdl_cholesterol": (30, 90, 10), "triglycerides": (50, 350, 50), "egfr": (30, 120, 15),
}
LIFELOG_BINS: dict[str, tuple[float, float, float]] = {
    "steps": (2000, 14000, 1000), "sleep_minutes": (300, 540, 30),
    "resting_hr": (50, 90, 5), "active_minutes": (10, 120, 10),
}
_SEX = {8507: "male", 8532: "female"}


def _frame(result: CohortResult, cat: Catalog, sql: str, params: Any = None) -> pl.DataFrame:
    """Run ``with idx ... sql`` on a private cursor holding the result's members."""
    with members_query(result, cat, who="charview") as q:
        return q.frame(f"with {q.idx} {sql}", params)


def _cells(policy: SmallCellPolicy, counts: list[int]) -> tuple[list[int | None], list[str]]:
    cells = policy.counts(counts)
    return ([None if isinstance(c, Suppressed) else int(c) for c in cells],
            [policy.format(c) for c in cells])


def age_sex(result: CohortResult, cat: Catalog, *,
            policy: SmallCellPolicy | None = None) -> pl.DataFrame:
    """Persons by 10-year age band at index and sex: ``band`` ("40-49"), ``sex``, ``n``
    (null when suppressed), ``shown``, ``suppressed``. Each sex's bands are one group for
    complementary suppression; every band from the youngest to the oldest appears."""
    governance.gate("registered", "the age-sex pyramid", "characterize.age_sex", result,
                    cat=cat, tables=("person", "consent"))
    policy = policy or result.policy
    raw = _frame(result, cat, """
        select cast(floor((year(idx.index_date) - p.year_of_birth) / 10) * 10 as integer)
               as lo, p.gender_concept_id as g, count(*) as n
        from idx join person p using (person_id) group by all""")
    raw = raw.filter(pl.col("g").is_in(list(_SEX)))
    schema = {"band": pl.String, "sex": pl.String, "n": pl.Int64, "shown": pl.String,
              "suppressed": pl.Boolean}
    if raw.is_empty():
        return pl.DataFrame(schema=schema)
    bands = list(range(int(raw["lo"].min()), int(raw["lo"].max()) + 10, 10))
    rows = []
    for g, sex in _SEX.items():
        got = dict(raw.filter(pl.col("g") == g).select("lo", "n").iter_rows())
        n, shown = _cells(policy, [int(got.get(b, 0)) for b in bands])
        rows += [(f"{b}-{b + 9}", sex, v, s, v is None) for b, v, s in
                 zip(bands, n, shown, strict=True)]
    return pl.DataFrame(rows, schema=schema, orient="row")


def _bins(lo: float, hi: float, width: float) -> list[tuple[float | None, float | None]]:
    edges, x = [], lo
    while x < hi - 1e-9:
        edges.append((x, min(x + width, hi)))
        x += width
    return [(None, lo), *edges, (hi, None)]


def _bin_label(a: float | None, b: float | None) -> str:
    if a is None:
        return f"< {b:g}"
    return f">= {a:g}" if b is None else f"{a:g}-{b:g}"


def distribution(result: CohortResult, cat: Catalog, item: str, *,
                 policy: SmallCellPolicy | None = None) -> pl.DataFrame:
    """Persons by bin of a screening item (latest screening in days -730..0 with a value)
    or of a wearable metric (the person's mean over days -365..0): ``bin``, ``lo``,
    ``hi``, ``n`` (null when suppressed), ``shown``, ``suppressed``. Windows are
    inclusive at both ends; the bins of one cohort are one suppression group."""
    table = "health_screening" if item in SCREENING_BINS else "wearable_daily"
    governance.gate("registered", f"the distribution of {item}", "characterize.distribution",
                    result, cat=cat, tables=(table, "consent"), detail={"item": str(item)[:64]})
    policy = policy or result.policy
    if item in SCREENING_BINS:
        values = _frame(result, cat, f"""
            select v from (
              select s.{item} as v, row_number() over (partition by idx.person_id
                     order by s.screening_date desc) as k
              from idx join health_screening s using (person_id)
              where s.screening_date between idx.index_date - 730 and idx.index_date
                and s.{item} is not null) where k = 1""")
        spec = SCREENING_BINS[item]
    elif item in LIFELOG_BINS:
        values = _frame(result, cat, f"""
            select avg(w.{item}) as v from idx join wearable_daily w using (person_id)
            where w.date between idx.index_date - 365 and idx.index_date
              and w.{item} is not null group by idx.person_id""")
        spec = LIFELOG_BINS[item]
    else:
        known = ", ".join([*SCREENING_BINS, *LIFELOG_BINS])
        raise UsageError(f"distribution: unknown item {item!r}", hint=f"use one of {known}")
    bins = _bins(*spec)
    v = values["v"].cast(pl.Float64)
    counts = []
    for a, b in bins:
        keep = v.is_not_null()
        if a is not None:
            keep &= v >= a
        if b is not None:
            keep &= v < b
        counts.append(int(keep.sum()))
    n, shown = _cells(policy, counts)
    return pl.DataFrame({"bin": [_bin_label(a, b) for a, b in bins],
                         "lo": [a for a, _ in bins], "hi": [b for _, b in bins], "n": n,
                         "shown": shown, "suppressed": [x is None for x in n]},
                        schema_overrides={"n": pl.Int64, "lo": pl.Float64, "hi": pl.Float64})


class CharView(W.VBox):
    """Table 1 and plots of one cohort or two side by side (see the module docstring).

    ``cohorts``: :class:`~cohort.engine.CohortResult` s or definitions (run here).
    """

    def __init__(self, cat: Catalog, *cohorts: CohortResult | m.Cohort | m.CohortSet,
                 policy: SmallCellPolicy | None = None, top: int = 10) -> None:
        if not 1 <= len(cohorts) <= 2:
            raise UsageError(f"CharView shows one or two cohorts, got {len(cohorts)}")
        self.cat = cat
        self.results = [c if isinstance(c, CohortResult) else run(c, cat) for c in cohorts]
        self.policy = policy or self.results[0].policy
        self.names = [getattr(r.definition, "name", "cohort") for r in self.results]
        if len(self.results) == 2 and self.names[0] == self.names[1]:
            self.names = [f"{self.names[0]} (A)", f"{self.names[1]} (B)"]
        self.table = W.HTML(self._table(top))
        self.pyramid = self._pyramid()
        self.screening_item = W.Dropdown(options=list(SCREENING_BINS), value="bmi",
                                         description="screening")
        self.lifelog_item = W.Dropdown(options=list(LIFELOG_BINS), value="steps",
                                       description="wearable")
        self.screening = go.FigureWidget()
        self.lifelog = go.FigureWidget()
        self.screening_item.observe(lambda c: self._histogram(self.screening, c["new"]),
                                    "value")
        self.lifelog_item.observe(lambda c: self._histogram(self.lifelog, c["new"]), "value")
        self._histogram(self.screening, self.screening_item.value)
        self._histogram(self.lifelog, self.lifelog_item.value)
        tabs = W.Tab(children=[self.table, self.pyramid,
                               W.VBox([self.screening_item, self.screening]),
                               W.VBox([self.lifelog_item, self.lifelog])])
        for k, t in enumerate(("Table 1", "age and sex", "screening", "wearables")):
            tabs.set_title(k, t)
        super().__init__([tabs])

    def _table(self, top: int) -> str:
        if len(self.results) == 1:
            return table1(self.results[0], self.cat, top=top, policy=self.policy).to_html()
        both = compare(*self.results, self.cat, top=top, policy=self.policy)
        head = "".join(f"<th>{html.escape(h)}</th>" for h in
                       ("section", "variable", "level", *self.names, "SMD"))
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
                r["section"], r["variable"], r["level"], r["shown_a"] or "",
                r["shown_b"] or "", "" if r["smd"] is None else f"{r['smd']:.2f}")) + "</tr>"
            for r in both.iter_rows(named=True))
        return f'<table class="table1"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'

    def _pyramid(self) -> go.FigureWidget:
        traces = []
        for k, (name, res) in enumerate(zip(self.names, self.results, strict=True)):
            t = age_sex(res, self.cat, policy=self.policy)
            for sex, sign in (("male", -1), ("female", 1)):
                part = t.filter(pl.col("sex") == sex)
                traces.append(go.Bar(
                    y=part["band"].to_list(), orientation="h",
                    x=[0 if v is None else sign * v for v in part["n"].to_list()],
                    text=part["shown"].to_list(), textposition="outside",
                    name=f"{name}: {sex}", offsetgroup=str(k),
                    hovertemplate="%{y}: %{text}<extra>" + html.escape(f"{name} {sex}")
                    + "</extra>"))
        return go.FigureWidget(data=traces, layout=go.Layout(
            barmode="overlay" if len(self.results) == 1 else "group", height=420,
            title="persons by age at index (men left, women right)",
            xaxis=dict(title="persons"), margin=dict(l=10, r=10, t=40, b=10)))

    def _histogram(self, fig: go.FigureWidget, item: str) -> None:
        traces = []
        for name, res in zip(self.names, self.results, strict=True):
            d = distribution(res, self.cat, item, policy=self.policy)
            traces.append(go.Bar(x=d["bin"].to_list(), y=d["n"].fill_null(0).to_list(),
                                 text=d["shown"].to_list(), textposition="outside",
                                 name=name, hovertemplate="%{x}: %{text}<extra></extra>"))
        with fig.batch_update():
            fig.data = []
            for t in traces:
                fig.add_trace(t)
            fig.layout.title = f"{item}: persons per bin"
            fig.layout.barmode = "group"
            fig.layout.height = 360
