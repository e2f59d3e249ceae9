"""The release report: one self-contained HTML page describing a release (``make demo``).

Every aggregate is computed in DuckDB on the release catalog; only aggregates reach the page.
Person counts (table cells, bar heights, histogram bins) pass the small-cell policy of
:mod:`cohort.privacy`: a suppressed bar is drawn with height 0 and hovers as ``"< k"``, and a
percentage whose numerator is suppressed reads ``"suppressed"``. Person-level sections leave
out persons who withdrew consent. Whole-table row counts are not person counts and are shown
as they are. plotly.js is embedded once, inline; the page needs no network.

>>> import tempfile, pathlib
>>> from workbench.synth.build import build_release
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> _ = build_release(tmp / "r", persons=300, genotyped=0, variants=0, seed=1, progress=False)
>>> write_release_report(tmp / "r", tmp / "report.html").name
'report.html'
"""

from __future__ import annotations

import html
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from cohort.privacy import Cell, SmallCellPolicy, Suppressed
from workbench import catalog
from workbench.errors import UsageError
from workbench.schema import DOMAINS, TABLES

MALE, FEMALE = 8507, 8532
SEXES: tuple[tuple[int, str], ...] = ((MALE, "Male"), (FEMALE, "Female"))
DOMAIN_ORDER = ("clinical", "vocabulary", "public", "lifelog", "governance")
DEFAULT_DATA_CUT = "2024-12-31"
WIDTH = 900

#: KCD8 3-character codes whose descendants (concept_ancestor) define each condition.
DISEASES: tuple[tuple[str, str], ...] = (
    ("E11", "Type 2 diabetes"), ("I10", "Hypertension"), ("E78", "Hyperlipidaemia"),
    ("N18", "Chronic kidney disease"), ("I21", "Myocardial infarction"), ("I63", "Stroke"),
    ("I48", "Atrial fibrillation"), ("C16", "Stomach cancer"), ("C18", "Colon cancer"),
    ("C34", "Lung cancer"), ("C50", "Breast cancer"), ("C73", "Thyroid cancer"),
    ("J45", "Asthma"), ("F32", "Depression"), ("K21", "Reflux disease"),
    ("M17", "Knee osteoarthritis"),
)

#: Screening items: (label, low edge, high edge, bin width). Values outside [low, high)
#: are counted in the end bins, so no extreme value stands alone.
SCREENING: dict[str, tuple[str, float, float, float]] = {
    "bmi": ("BMI (kg/m²)", 14, 40, 1),
    "sbp": ("Systolic blood pressure (mmHg)", 80, 200, 5),
    "fasting_glucose": ("Fasting glucose (mg/dL)", 60, 250, 5),
    "ldl_cholesterol": ("LDL cholesterol (mg/dL)", 20, 240, 5),
    "hdl_cholesterol": ("HDL cholesterol (mg/dL)", 20, 100, 2),
    "triglycerides": ("Triglycerides (mg/dL)", 20, 600, 20),
    "egfr": ("eGFR (mL/min/1.73 m²)", 0, 150, 5),
}
WEAR_DAYS_BINS = (0, 1080, 30)  # days of wearable data per person: low, high, width

# Persons in scope: one row per person with sex, age at the data cut ($cut) and vital status.
_PERSONS = """WITH persons AS (
    SELECT p.person_id, p.gender_concept_id AS sex, d.person_id IS NOT NULL AS dead,
           year(CAST($cut AS DATE)) - p.year_of_birth
             - CASE WHEN month(CAST($cut AS DATE)) * 100 + day(CAST($cut AS DATE))
                         < coalesce(p.month_of_birth, 7) * 100 + coalesce(p.day_of_birth, 1)
                    THEN 1 ELSE 0 END AS age
    FROM person p
    LEFT JOIN (SELECT DISTINCT person_id FROM death WHERE death_date <= CAST($cut AS DATE)) d
        USING (person_id)
"""
_NOT_WITHDRAWN = "WHERE p.person_id NOT IN " \
                 "(SELECT person_id FROM consent WHERE withdrawal_date IS NOT NULL)\n"
_LATEST_SCREENING = """, latest AS (
    SELECT h.* FROM health_screening h JOIN persons USING (person_id)
    WHERE h.screening_date <= CAST($cut AS DATE)
    QUALIFY row_number() OVER (PARTITION BY h.person_id ORDER BY h.screening_date DESC) = 1)
"""

CSS = """
body { font-family: "Noto Sans KR", "Malgun Gothic", system-ui, sans-serif; color: #222;
       margin: 0; background: #fafafa; line-height: 1.45; }
main { max-width: 960px; margin: 0 auto; padding: 1.5em 2em 4em; background: #fff; }
h1 { border-bottom: 3px solid #2a6f97; padding-bottom: .3em; }
h2 { margin-top: 2.2em; border-bottom: 1px solid #ccc; color: #2a6f97; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { padding: .25em .7em; border-bottom: 1px solid #e4e4e4; text-align: left; }
th { background: #f0f4f7; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
nav ol { columns: 2; background: #f0f4f7; padding: .8em 2.5em; }
.note { color: #666; font-size: .9em; }
.absent { color: #a33; font-style: italic; }
"""


@dataclass(frozen=True)
class Section:
    """One section of the page: anchor id, heading and HTML body."""

    anchor: str
    title: str
    body: str


def write_release_report(release_dir: Path | str, out_html: Path | str, *,
                         policy: SmallCellPolicy | None = None) -> Path:
    """Write the release report for ``release_dir`` to ``out_html`` (atomically); return it.

    Sections: release header, contents (row counts, files), age-sex pyramid, disease
    prevalence, screening distributions, lifelog coverage, governance. Sections whose tables
    are absent say "not in this release". ``policy`` defaults to ``SmallCellPolicy()``.

    >>> write_release_report("/no/such/release", "/tmp/r.html")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    workbench.errors.ReleaseError: release directory /no/such/release does not exist...
    """
    policy = policy or SmallCellPolicy()
    out = Path(out_html)
    if out.is_dir():
        raise UsageError(f"write_release_report: out_html {out} is a directory",
                         hint="pass a file name, e.g. report.html")
    with catalog.open(release_dir) as cat:
        params = {"cut": str(cat.manifest.get("data_cut") or DEFAULT_DATA_CUT)}
        sections = [_header(cat.manifest, policy), _contents(cat),
                    _pyramid(cat, policy, params), _prevalence(cat, policy, params),
                    _screening(cat, policy, params), _lifelog(cat, policy, params),
                    _governance(cat, policy)]
        page = _page(cat.manifest, sections)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(out, page)
    return out


# --- privacy helpers -------------------------------------------------------------------------

def count_cells(policy: SmallCellPolicy, counts: Sequence[int]) -> list[tuple[Cell, str]]:
    """A group of counts through the policy, each with its label for the page.

    A count under the threshold reads "< k"; a larger count hidden by complementary
    suppression (so the small one cannot be recovered by subtraction) reads "suppressed".

    >>> [label for _, label in count_cells(SmallCellPolicy(20), [0, 5, 30, 400])]
    ['0', '< 20', 'suppressed', '400']
    """
    return [(c, policy.format(c)) for c in policy.counts([int(v) for v in counts])]


def bar_cells(policy: SmallCellPolicy, counts: Sequence[int]) -> tuple[list[int], list[str]]:
    """Bar heights and hover labels for a group of counts: a suppressed bar has height 0.

    >>> bar_cells(SmallCellPolicy(20), [0, 5, 30, 400])
    ([0, 0, 0, 400], ['0', '< 20', 'suppressed', '400'])
    """
    pairs = count_cells(policy, counts)
    return [0 if isinstance(c, Suppressed) else c for c, _ in pairs], [lbl for _, lbl in pairs]


def percent(cell: Cell, denominator: Cell) -> str:
    """A percentage for the page; "suppressed" when the numerator is suppressed.

    >>> percent(25, 200), percent(Suppressed(20), 200), percent(0, 0)
    ('12.5%', 'suppressed', '–')
    """
    if isinstance(cell, Suppressed):
        return "suppressed"
    if isinstance(denominator, Suppressed) or denominator == 0:
        return "–"
    return f"{100 * cell / denominator:.1f}%"


def _persons_sql(cat: catalog.Catalog) -> str:
    """The persons CTE, leaving out withdrawn persons when the release has consent."""
    return _PERSONS + (_NOT_WITHDRAWN if cat.has("consent") else "") + ")\n"


def _rows(cat: catalog.Catalog, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run a query with named parameters ($cut, $codes); all rows."""
    return cat.sql(sql, params).fetchall()


# --- HTML helpers ----------------------------------------------------------------------------

def _esc(value: object) -> str:
    """Text for HTML ("< 20" becomes "&lt; 20")."""
    return html.escape(str(value))


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]],
           numeric: Sequence[int] = ()) -> str:
    """An HTML table; cells are escaped, columns in ``numeric`` are right-aligned."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="n">{_esc(c)}</td>' if i in numeric else f"<td>{_esc(c)}</td>"
                         for i, c in enumerate(row)) + "</tr>\n" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>\n"


def _figure(fig: go.Figure, div_id: str, height: int = 450) -> str:
    """A figure's div; plotly.js itself is in the page head, once."""
    fig.update_layout(width=WIDTH, height=height, template="plotly_white",
                      margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False})


def _absent(table: str) -> str:
    """The note for a table the release does not have."""
    return f'<p class="absent">{_esc(table)}: not in this release.</p>\n'


def _size(n: int) -> str:
    """Bytes for people: 812 B, 27.6 KB, 1.5 MB."""
    value, unit = float(n), "B"
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            break
        value /= 1024
    return f"{n:,} B" if unit == "B" else f"{value:,.1f} {unit}"


def _nice_step(x: float) -> int:
    """The smallest 1-2-5 step >= x (at least 1)."""
    if x <= 1:
        return 1
    mag = 10 ** math.floor(math.log10(x))
    return next(int(m * mag) for m in (1, 2, 5, 10) if m * mag >= x)


def _bin_edges(low: float, high: float, width: float) -> list[str]:
    """Bin labels; the end bins are open ("< a", "≥ b") as values outside are clamped."""
    edges = [f"{low + i * width:g}" for i in range(round((high - low) / width) + 1)]
    labels = [f"{a}–{b}" for a, b in zip(edges, edges[1:], strict=False)]
    labels[0], labels[-1] = f"< {edges[1]}", f"≥ {edges[-2]}"
    return labels


def _histogram_sql(expr: str, source: str, low: float, high: float, width: float) -> str:
    """SELECT bin, count(*) of ``expr`` over ``source`` in fixed bins (both from this module)."""
    clamp = f"least(greatest({expr}, {low!r}), {high - width / 2!r})"
    return (f"SELECT CAST(floor(({clamp} - {low!r}) / {width!r}) AS INTEGER) AS bin, "
            f"count(*) FROM {source} WHERE {expr} IS NOT NULL GROUP BY 1")


def _bins(rows: list[tuple[Any, ...]], n: int) -> list[int]:
    """(bin, count) rows to a list of n counts, empty bins 0."""
    counts = [0] * n
    for b, c in rows:
        counts[int(b)] = int(c)
    return counts


# --- sections --------------------------------------------------------------------------------

def _header(m: dict[str, Any], policy: SmallCellPolicy) -> Section:
    """Release identity from the manifest."""
    gen = m.get("generator") or {}
    args = ", ".join(f"{k}={v}" for k, v in (gen.get("arguments") or {}).items())
    rows = [("Release id", m.get("release_id")), ("Kind", m.get("kind", "–")),
            ("Seed", m.get("seed", "–")), ("Created", m.get("created", "–")),
            ("Data cut", m.get("data_cut", "–")), ("Schema version", m.get("schema_version")),
            ("Generator", f"{gen.get('name', '–')} {gen.get('version', '')}".strip()),
            ("Generator arguments", args or "–"),
            ("Small-cell threshold", f"counts 1–{policy.threshold - 1} shown as "
                                     f"\"< {policy.threshold}\"")]
    return Section("release", "Release", _table(["Field", "Value"], rows))


def _contents(cat: catalog.Catalog) -> Section:
    """Row counts per table grouped by domain, file sizes, genotype files and summary."""
    tables = cat.manifest["tables"]
    rows = []
    for domain in DOMAIN_ORDER:
        for name in [t for t in TABLES if DOMAINS[t] == domain]:
            if name in tables:
                entry = tables[name]
                rows.append((domain, name, f"{entry['rows']:,}",
                             _size((cat.path / entry["path"]).stat().st_size)))
            else:
                rows.append((domain, name, "not in this release", ""))
    body = "<h3>Tables</h3>\n" + _table(["Domain", "Table", "Rows", "File size"], rows, (2, 3))
    files = cat.manifest.get("files") or {}
    body += "<h3>Genotype files</h3>\n"
    body += _table(["File", "Size"], [(f, _size(e.get("bytes") or (cat.path / f).stat().st_size))
                                      for f, e in files.items()], (1,)) if files \
        else '<p class="absent">No genotype files in this release.</p>\n'
    geno = cat.manifest.get("genotypes")
    if geno:
        body += _table(["Genotypes", ""], [(k, v) for k, v in geno.items()])
    return Section("contents", "Contents", body)


def _pyramid(cat: catalog.Catalog, policy: SmallCellPolicy, params: dict[str, Any]) -> Section:
    """Age-sex pyramid of living persons at the data cut, 5-year bands, males left."""
    sql = _persons_sql(cat) + (
        "SELECT least(age // 5, 18) AS band, sex, count(*) FROM persons "
        f"WHERE NOT dead AND age >= 0 AND sex IN ({MALE}, {FEMALE}) GROUP BY ALL")
    counts = {sex: [0] * 19 for sex, _ in SEXES}
    for band, sex, n in _rows(cat, sql, params):
        counts[sex][band] = n
    labels = [f"{5 * b}–{5 * b + 4}" for b in range(18)] + ["90+"]
    fig = go.Figure()
    peak = 1
    for sex, name in SEXES:
        heights, hover = bar_cells(policy, counts[sex])
        peak = max(peak, *heights)
        sign = -1 if sex == MALE else 1
        fig.add_bar(y=labels, x=[sign * h for h in heights], orientation="h", name=name,
                    customdata=hover, hovertemplate=name + " %{y}: %{customdata}<extra></extra>")
    step = _nice_step(peak / 3)
    ticks = list(range(-3 * step, 3 * step + 1, step))
    fig.update_layout(barmode="relative", bargap=0.08, title="Living persons by age and sex",
                      xaxis={"tickvals": ticks, "ticktext": [f"{abs(t):,}" for t in ticks],
                             "title": "persons"}, yaxis={"title": "age (years)"})
    living = count_cells(policy, [sum(map(sum, counts.values()))])[0][1]
    note = (f'<p class="note">Age at the data cut {_esc(params["cut"])}; persons alive then '
            f"and not withdrawn: {_esc(living)}. Hover a bar for its count.</p>\n")
    return Section("pyramid", "Age and sex", note + _figure(fig, "fig-pyramid", 560))


def _prevalence(cat: catalog.Catalog, policy: SmallCellPolicy, params: dict[str, Any]) -> Section:
    """Persons with any condition under each KCD8 code (with descendants), by sex."""
    codes = [c for c, _ in DISEASES]
    p = {**params, "codes": codes}
    names = {code: (en, ko) for code, en, ko in cat.sql(
        "SELECT concept_code, concept_name, concept_name_ko FROM concept "
        "WHERE vocabulary_id = 'KCD8' AND list_contains($codes, concept_code)",
        {"codes": codes}).fetchall()}
    sql = _persons_sql(cat) + """, targets AS (
        SELECT c.concept_code AS code, ca.descendant_concept_id AS concept_id
        FROM concept c JOIN concept_ancestor ca ON ca.ancestor_concept_id = c.concept_id
        WHERE c.vocabulary_id = 'KCD8' AND list_contains($codes, c.concept_code)
        UNION SELECT concept_code, concept_id FROM concept
        WHERE vocabulary_id = 'KCD8' AND list_contains($codes, concept_code))
    , cases AS (SELECT DISTINCT t.code, co.person_id FROM condition_occurrence co
                JOIN targets t ON co.condition_concept_id = t.concept_id)
    SELECT code, sex, count(*) FROM cases JOIN persons USING (person_id) GROUP BY ALL"""
    cases: dict[str, dict[int, int]] = {c: {} for c in codes}
    for code, sex, n in _rows(cat, sql, p):
        cases[code][sex] = n
    denom = dict(_rows(cat, _persons_sql(cat) + "SELECT sex, count(*) FROM persons GROUP BY 1",
                       params))
    (d_m, d_m_lbl), (d_f, d_f_lbl) = count_cells(policy, [denom.get(MALE, 0),
                                                          denom.get(FEMALE, 0)])
    d_cells = {MALE: d_m, FEMALE: d_f}
    d_all, d_all_lbl = count_cells(policy, [sum(denom.values())])[0]
    rows, pct = [], {sex: [] for sex, _ in SEXES}
    for code, label in DISEASES:
        (m, m_lbl), (f, f_lbl) = count_cells(policy, [cases[code].get(MALE, 0),
                                                      cases[code].get(FEMALE, 0)])
        total, t_lbl = count_cells(policy, [sum(cases[code].values())])[0]
        en, ko = names.get(code, (label, "–"))
        rows.append((code, en, ko, m_lbl, percent(m, d_cells[MALE]), f_lbl,
                     percent(f, d_cells[FEMALE]), t_lbl, percent(total, d_all)))
        pct[MALE].append((m, m_lbl))
        pct[FEMALE].append((f, f_lbl))
    fig = go.Figure()
    for sex, name in SEXES:
        ys = [0.0 if isinstance(c, Suppressed) or not denom.get(sex)
              else round(100 * c / denom[sex], 2) for c, _ in pct[sex]]
        hover = [f"{lbl} persons, {percent(c, d_cells[sex])}" for c, lbl in pct[sex]]
        fig.add_bar(x=[f"{c} {lbl}" for c, lbl in DISEASES], y=ys, name=name, customdata=hover,
                    hovertemplate=name + " %{x}: %{customdata}<extra></extra>")
    fig.update_layout(barmode="group", title="Persons with the condition (% of persons)",
                      yaxis={"title": "% of persons"}, xaxis={"tickangle": -40})
    note = (f'<p class="note">A person counts if any condition_occurrence has a standard '
            f"concept under the KCD8 code (concept_ancestor). Denominators: "
            f"{_esc(d_m_lbl)} males, {_esc(d_f_lbl)} females, {_esc(d_all_lbl)} persons "
            "(withdrawn persons left out).</p>\n")
    table = _table(["Code", "Condition", "국문명", "Male n", "Male %", "Female n", "Female %",
                    "All n", "All %"], rows, (3, 4, 5, 6, 7, 8))
    return Section("prevalence", "Disease prevalence",
                   note + _figure(fig, "fig-prevalence", 500) + table)


def _screening(cat: catalog.Catalog, policy: SmallCellPolicy, params: dict[str, Any]) -> Section:
    """Histograms (binned in SQL) and mean/sd/missing of each person's latest screening."""
    if not cat.has("health_screening"):
        return Section("screening", "Health screening", _absent("health_screening"))
    base = _persons_sql(cat) + _LATEST_SCREENING
    fig = make_subplots(rows=4, cols=2, subplot_titles=[v[0] for v in SCREENING.values()],
                        vertical_spacing=0.07)
    rows = []
    for i, (col, (label, low, high, width)) in enumerate(SCREENING.items()):
        labels = _bin_edges(low, high, width)
        sql = base + _histogram_sql(f'"{col}"', "latest", low, high, width)
        heights, hover = bar_cells(policy, _bins(_rows(cat, sql, params), len(labels)))
        fig.add_bar(x=labels, y=heights, customdata=hover, row=i // 2 + 1, col=i % 2 + 1,
                    marker_color="#2a6f97", showlegend=False,
                    hovertemplate="%{x}: %{customdata}<extra></extra>")
        n, present, mean, sd = _rows(cat, base + f'SELECT count(*), count("{col}"), avg("{col}"),'
                                     f' stddev_samp("{col}") FROM latest', params)[0]
        (shown, shown_lbl), (missing, _) = count_cells(policy, [present, n - present])
        ok = not isinstance(shown, Suppressed) and present > 1
        rows.append((label, shown_lbl, f"{mean:.1f}" if ok else "suppressed",
                     f"{sd:.1f}" if ok else "suppressed", percent(missing, n)))
    fig.update_layout(title="Latest screening per person (persons per bin)", bargap=0.05)
    note = ('<p class="note">One record per person: the most recent screening on or before '
            "the data cut. Bins are computed in the database; values outside the plotted range "
            "are counted in the end bins. Hover a bar for its count.</p>\n")
    table = _table(["Item", "Persons with a value", "Mean", "SD", "Missing"], rows, (1, 2, 3, 4))
    return Section("screening", "Health screening",
                   note + _figure(fig, "fig-screening", 1200) + table)


def _lifelog(cat: catalog.Catalog, policy: SmallCellPolicy, params: dict[str, Any]) -> Section:
    """Wearable coverage, days per person, mean daily steps by age band, intraday subset."""
    if not cat.has("wearable_daily"):
        body = _absent("wearable_daily")
        if not cat.has("wearable_intraday_hr"):
            body += _absent("wearable_intraday_hr")
        return Section("lifelog", "Lifelog", body)
    base = _persons_sql(cat) + """, per_person AS (
        SELECT w.person_id, any_value(p.age) AS age, count(*) AS days, avg(w.steps) AS steps
        FROM wearable_daily w JOIN persons p USING (person_id) GROUP BY 1)
    """
    everyone = _rows(cat, _persons_sql(cat) + "SELECT count(*) FROM persons", params)[0][0]
    with_data = _rows(cat, base + "SELECT count(*) FROM per_person", params)[0][0]
    (yes, yes_lbl), _ = count_cells(policy, [with_data, everyone - with_data])
    body = (f"<p>Persons with any wearable data: <b>{_esc(yes_lbl)}</b> of "
            f"{_esc(count_cells(policy, [everyone])[0][1])} ({percent(yes, everyone)}).</p>\n")
    low, high, width = WEAR_DAYS_BINS
    labels = _bin_edges(low, high, width)
    sql = base + _histogram_sql("days", "per_person", low, high, width)
    heights, hover = bar_cells(policy, _bins(_rows(cat, sql, params), len(labels)))
    fig = go.Figure(go.Bar(x=labels, y=heights, customdata=hover, marker_color="#2a6f97",
                           hovertemplate="%{x} days: %{customdata}<extra></extra>"))
    fig.update_layout(title="Days of wearable data per person", xaxis={"title": "days"},
                      yaxis={"title": "persons"})
    body += _figure(fig, "fig-wear-days", 400)
    bands = [f"{10 * b}–{10 * b + 9}" for b in range(8)] + ["80+"]
    agg = {b: (n, s) for b, n, s in _rows(cat, base + "SELECT least(age // 10, 8), count(*), "
                                          "avg(steps) FROM per_person GROUP BY 1", params)}
    cells = count_cells(policy, [agg.get(b, (0, 0))[0] for b in range(9)])
    shown = [not isinstance(c, Suppressed) and c > 0 for c, _ in cells]
    fig = go.Figure(go.Bar(
        x=bands, y=[round(agg[b][1]) if shown[b] else 0 for b in range(9)],
        customdata=[f"{agg[b][1]:,.0f} steps, {cells[b][1]} persons" if shown[b]
                    else f"suppressed ({cells[b][1]} persons)" for b in range(9)],
        marker_color="#61a5c2", hovertemplate="%{x}: %{customdata}<extra></extra>"))
    fig.update_layout(title="Mean daily steps by age band (mean of person means)",
                      xaxis={"title": "age at the data cut"}, yaxis={"title": "steps"})
    body += _figure(fig, "fig-wear-steps", 400)
    body += _table(["Age band", "Persons", "Mean daily steps"],
                   [(bands[b], cells[b][1],
                     f"{agg[b][1]:,.0f}" if shown[b] else "suppressed") for b in range(9)], (1, 2))
    if cat.has("wearable_intraday_hr"):
        n = _rows(cat, _persons_sql(cat) + "SELECT count(DISTINCT person_id) FROM "
                  "wearable_intraday_hr JOIN persons USING (person_id)", params)[0][0]
        rows = cat.manifest["tables"]["wearable_intraday_hr"]["rows"]
        body += (f"<p>Intraday heart-rate subset: {_esc(count_cells(policy, [n])[0][1])} persons, "
                 f"{rows:,} rows.</p>\n")
    else:
        body += _absent("wearable_intraday_hr")
    return Section("lifelog", "Lifelog", body)


def _governance(cat: catalog.Catalog, policy: SmallCellPolicy) -> Section:
    """Consent scopes, withdrawals and sample links."""
    if not cat.has("consent"):
        return Section("governance", "Governance", _absent("consent"))
    total, withdrawn, *scopes = cat.sql(
        "SELECT count(*), count(withdrawal_date), count(*) FILTER (WHERE clinical), "
        "count(*) FILTER (WHERE public), count(*) FILTER (WHERE lifelog), "
        "count(*) FILTER (WHERE genomic) FROM consent").fetchall()[0]
    rows = []
    for scope, n in zip(("clinical", "public", "lifelog", "genomic"), scopes, strict=True):
        (yes, label), _ = count_cells(policy, [n, total - n])
        rows.append((scope, label, percent(yes, total)))
    body = ('<p class="note">Scopes as recorded for every person in the consent table, '
            "withdrawn or not.</p>\n" + _table(["Consent scope", "Persons", "% of persons"],
                                                rows, (1, 2)))
    body += (f"<p>Persons in the consent table: {_esc(count_cells(policy, [total])[0][1])}; "
             f"withdrawn: <b>{_esc(count_cells(policy, [withdrawn])[0][1])}</b> (left out of every "
             "person-level section above).</p>\n")
    if cat.has("sample_link"):
        body += f"<p>sample_link rows: {cat.manifest['tables']['sample_link']['rows']:,}.</p>\n"
    else:
        body += _absent("sample_link")
    return Section("governance", "Governance", body)


# --- page ------------------------------------------------------------------------------------

def _page(manifest: dict[str, Any], sections: Sequence[Section]) -> str:
    """The whole document: CSS and plotly.js in the head, a table of contents, the sections."""
    title = f"Release report: {manifest.get('release_id', '')}"
    toc = "".join(f'<li><a href="#{s.anchor}">{_esc(s.title)}</a></li>' for s in sections)
    body = "".join(f'<section id="{s.anchor}">\n<h2>{_esc(s.title)}</h2>\n{s.body}</section>\n'
                   for s in sections)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{_esc(title)}</title>\n<style>{CSS}</style>\n"
            f'<script type="text/javascript">{get_plotlyjs()}</script>\n</head>\n<body><main>\n'
            f"<h1>{_esc(title)}</h1>\n<nav><ol>{toc}</ol></nav>\n{body}"
            '<p class="note">Made by workbench.report. Every person count passed the '
            "small-cell policy (cohort.privacy).</p>\n</main></body>\n</html>\n")


def _write_atomic(path: Path, text: str) -> None:
    """Write to a temp file in the same directory, then rename over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
