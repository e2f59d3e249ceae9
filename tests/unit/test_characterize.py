"""Table 1 and cohort comparison, checked against hand-written Polars over the Parquet files.

One small synthetic release (3,000 persons) per module; T2D and hypertension cohorts from
the engine; a few hand-made member lists for window edges and suppression.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from cohort.builder import cohort, condition
from cohort.characterize import NOT_IN_RELEASE, Table1, compare, table1
from cohort.engine import CohortResult, run
from cohort.privacy import SmallCellPolicy
from workbench import catalog
from workbench.errors import UsageError
from workbench.release_io import write_release
from workbench.synth.build import build_release

EXACT = SmallCellPolicy(threshold=1)      # nothing suppressed: compare raw numbers
DEFAULT = SmallCellPolicy(threshold=20)
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("r") / "r"
    build_release(out, persons=3000, genotyped=0, variants=0, seed=4, progress=False)
    return out


@pytest.fixture(scope="module")
def cat(release: Path) -> Iterator[catalog.Catalog]:
    with catalog.open(release) as c:
        yield c


@pytest.fixture(scope="module")
def t2d(cat: catalog.Catalog) -> CohortResult:
    return run(cohort("T2D").entry(condition("KCD8", "E11")).build(), cat, policy=DEFAULT)


@pytest.fixture(scope="module")
def htn(cat: catalog.Catalog) -> CohortResult:
    return run(cohort("hypertension").entry(condition("KCD8", "I10")).build(), cat,
               policy=DEFAULT)


def read(release: Path, domain: str, table: str) -> pl.DataFrame:
    return pl.read_parquet(release / domain / f"{table}.parquet")


def index_dates(res: CohortResult) -> pl.DataFrame:
    return (res.members.group_by("subject_id")
            .agg(index_date=pl.col("cohort_start_date").min())
            .rename({"subject_id": "person_id"}))


def in_window(date: str, days: int) -> pl.Expr:
    return pl.col(date).is_between(pl.col("index_date") - pl.duration(days=days),
                                   pl.col("index_date"), closed="both")


def consented(release: Path, frame: pl.DataFrame) -> pl.DataFrame:
    """Rows of persons who have not withdrawn consent (hand-made cohorts use only them)."""
    gone = read(release, "governance", "consent").filter(pl.col("withdrawal_date").is_not_null())
    return frame.join(gone.select("person_id"), on="person_id", how="anti")


def scoped(release: Path, frame: pl.DataFrame, scope: str) -> pl.DataFrame:
    """Rows of persons who consented to ``scope`` and have not withdrawn: the consent rule
    (clinical records need ``clinical``, screenings ``public``, wearables ``lifelog``),
    applied here by hand to the release's files, which hold every person's rows."""
    ok = read(release, "governance", "consent").filter(pl.col(scope),
                                                       pl.col("withdrawal_date").is_null())
    return frame.join(ok.select("person_id"), on="person_id", how="semi")


def hand_ages(release: Path, res: CohortResult) -> pl.DataFrame:
    return (index_dates(res).join(read(release, "clinical", "person"), on="person_id")
            .with_columns(age=pl.col("index_date").dt.year() - pl.col("year_of_birth")))


def member_list(rows: list[tuple[int, dt.date]]) -> pl.DataFrame:
    return pl.DataFrame({"subject_id": [p for p, _ in rows],
                         "cohort_start_date": [d for _, d in rows],
                         "cohort_end_date": [d for _, d in rows]},
                        schema={"subject_id": pl.Int64, "cohort_start_date": pl.Date,
                                "cohort_end_date": pl.Date})


def made(base: CohortResult, rows: list[tuple[int, dt.date]],
         policy: SmallCellPolicy = DEFAULT) -> CohortResult:
    """A cohort with exactly these (person, index date) members."""
    return replace(base, members=member_list(rows), step_persons=[len(rows)], policy=policy)


def cell(t: Table1, section: str, variable: str | None = None, level: str | None = None,
         *, starts: str | None = None) -> dict:
    f = t.frame.filter(pl.col("section") == section)
    if variable is not None:
        f = f.filter(pl.col("variable") == variable)
    if level is not None:
        f = f.filter(pl.col("level") == level)
    if starts is not None:
        f = f.filter(pl.col("level").str.starts_with(starts))
    assert f.height == 1, f
    return f.row(0, named=True)


# --- numbers against hand-written Polars ---------------------------------------------------

@pytest.mark.parametrize("which", ["t2d", "htn"])
def test_persons_age_and_sex(which: str, request: pytest.FixtureRequest, release: Path,
                             cat: catalog.Catalog) -> None:
    res = request.getfixturevalue(which)
    t = table1(res, cat)
    ages = hand_ages(release, res)
    assert cell(t, "cohort")["n"] == ages.height == res.members["subject_id"].n_unique()
    mean = cell(t, "demographics", "age at index", "mean (sd)")
    assert mean["value"] == pytest.approx(ages["age"].mean())
    assert cell(t, "demographics", "age at index", "sd")["value"] == pytest.approx(
        ages["age"].std())
    assert mean["shown"] == f"{ages['age'].mean():.1f} ({ages['age'].std():.1f})"
    for level, concept in (("female", 8532), ("male", 8507)):
        n = ages.filter(pl.col("gender_concept_id") == concept).height
        got = cell(t, "demographics", "sex", level)
        assert got["n"] == n
        assert got["shown"] == f"{n:,} ({100 * n / ages.height:.1f}%)"
    bands = ages.with_columns(band=(pl.col("age") // 10).clip(upper_bound=9))
    shown_bands = t.frame.filter(variable="age band")
    assert shown_bands.height == bands["band"].n_unique()
    n_50s = bands.filter(pl.col("band") == 5).height
    assert cell(t, "demographics", "age band", "50–59")["n"] == n_50s


@pytest.mark.parametrize("which", ["t2d", "htn"])
def test_top_condition_group(which: str, request: pytest.FixtureRequest, release: Path,
                             cat: catalog.Catalog) -> None:
    res = request.getfixturevalue(which)
    codes = read(release, "vocabulary", "concept").select(
        pl.col("concept_id").alias("condition_concept_id"), "concept_code")
    hits = (read(release, "clinical", "condition_occurrence")
            .join(index_dates(res), on="person_id")
            .filter(in_window("condition_start_date", 365))
            .join(codes, on="condition_concept_id")
            .select("person_id", group=pl.col("concept_code").str.slice(0, 3)).unique()
            .group_by("group").len().sort(["len", "group"], descending=[True, False]))
    t = table1(res, cat, top=5)
    rows = t.frame.filter(section="conditions")
    assert rows.height == 5
    assert rows["level"].str.slice(0, 3).to_list()[:1] == hits["group"].to_list()[:1]
    assert rows["n"][0] == hits["len"][0]
    # the entry condition is recorded on the index day, so everyone has it
    entry = "E11" if which == "t2d" else "I10"
    assert cell(t, "conditions", starts=entry)["n"] == cell(t, "cohort")["n"]


def test_drugs_are_atc_4th_level(release: Path, cat: catalog.Catalog,
                                 htn: CohortResult) -> None:
    codes = read(release, "vocabulary", "concept").select(
        pl.col("concept_id").alias("drug_concept_id"), "concept_code")
    hits = (read(release, "clinical", "drug_exposure").join(index_dates(htn), on="person_id")
            .filter(in_window("drug_exposure_start_date", 365))
            .join(codes, on="drug_concept_id")
            .select("person_id", group=pl.col("concept_code").str.slice(0, 5)).unique()
            .group_by("group").len())
    t = table1(htn, cat, top=50, policy=EXACT)
    got = {lv.split(" ")[0]: n for lv, n in t.frame.filter(section="drugs")
           .select("level", "n").iter_rows()}
    assert got == dict(hits.iter_rows())


def test_latest_screening_in_two_years(release: Path, cat: catalog.Catalog,
                                       t2d: CohortResult) -> None:
    latest = (scoped(release, read(release, "public", "health_screening"), "public")
              .join(index_dates(t2d), on="person_id")
              .filter(in_window("screening_date", 730))
              .sort("screening_date").group_by("person_id").last())
    t = table1(t2d, cat)
    assert cell(t, "screening", "screened in 730 days before index")["n"] == latest.height
    ldl = latest["ldl_cholesterol"].drop_nulls()
    got = cell(t, "screening", "ldl_cholesterol", "mean (sd)")
    assert got["n"] == ldl.len()
    assert got["value"] == pytest.approx(ldl.mean())
    status = latest["smoking_status"].drop_nulls()
    smoker = cell(t, "screening", "current smoker", "yes")
    assert smoker["n"] == (status == 3).sum()
    assert smoker["pct"] == pytest.approx(100 * (status == 3).sum() / status.len())


@pytest.mark.parametrize("which", ["t2d", "htn"])
def test_lifelog_coverage_and_steps(which: str, request: pytest.FixtureRequest, release: Path,
                                    cat: catalog.Catalog) -> None:
    res = request.getfixturevalue(which)
    per = (scoped(release, read(release, "lifelog", "wearable_daily"), "lifelog")
           .join(index_dates(res), on="person_id")
           .filter(in_window("date", 365))
           .group_by("person_id").agg(pl.col("steps").mean()))
    n = res.members["subject_id"].n_unique()
    t = table1(res, cat, policy=EXACT)
    cover = cell(t, "lifelog", "wearable data in 365 days before index", "yes")
    assert cover["n"] == per.height
    assert cover["pct"] == pytest.approx(100 * per.height / n)
    steps = cell(t, "lifelog", "steps (person mean per day)", "mean (sd)")
    assert steps["value"] == (pytest.approx(per["steps"].mean()) if per.height else None)
    # under the default policy the same cell is shown or wholly suppressed
    shown = cell(table1(res, cat), "lifelog", "wearable data in 365 days before index", "yes")
    assert shown["pct"] in (None, cover["pct"])
    assert shown["suppressed"] == (shown["n"] is None)


def test_compare_smd_for_age_and_female(release: Path, cat: catalog.Catalog,
                                        t2d: CohortResult, htn: CohortResult) -> None:
    a, b = hand_ages(release, t2d), hand_ages(release, htn)
    c = compare(t2d, htn, cat)
    smd_age = (a["age"].mean() - b["age"].mean()) / math.sqrt(
        (a["age"].std() ** 2 + b["age"].std() ** 2) / 2)
    got = c.filter(variable="age at index", level="mean (sd)")
    assert got["smd"].item() == pytest.approx(smd_age)
    pa_, pb_ = ((f["gender_concept_id"] == 8532).mean() for f in (a, b))
    smd_f = (pa_ - pb_) / math.sqrt((pa_ * (1 - pa_) + pb_ * (1 - pb_)) / 2)
    assert c.filter(variable="sex", level="female")["smd"].item() == pytest.approx(smd_f)
    # suppressed on either side -> no SMD; both sides' condition groups are listed
    hidden = c.filter(pl.col("shown_a").is_in(["< 20", "suppressed"])
                      | pl.col("shown_b").is_in(["< 20", "suppressed"]))
    assert hidden.height and hidden["smd"].is_null().all()
    conds = c.filter(section="conditions")["level"].str.slice(0, 3).to_list()
    assert {"E11", "I10"} <= set(conds)
    assert not c.filter(section="conditions")["shown_b"].is_null().any()
    assert "sd" not in c["level"].to_list()


# --- windows: inclusive at both ends --------------------------------------------------------

def test_window_edges(release: Path, cat: catalog.Catalog, t2d: CohortResult) -> None:
    co = read(release, "clinical", "condition_occurrence")
    codes = read(release, "vocabulary", "concept").select(
        pl.col("concept_id").alias("condition_concept_id"), "concept_code")
    once = (scoped(release, co, "clinical").join(codes, on="condition_concept_id")
            .with_columns(group=pl.col("concept_code").str.slice(0, 3))
            .filter(pl.len().over("person_id", "group") == 1).sort("person_id").row(0, named=True))
    pid, group, day = once["person_id"], once["group"], once["condition_start_date"]
    expect = {day - DAY: 0, day: 1, day + 365 * DAY: 1, day + 366 * DAY: 0}
    for index, n in expect.items():
        t = table1(made(t2d, [(pid, index)], EXACT), cat, conditions=[group], drugs=[])
        assert cell(t, "conditions", starts=group)["n"] == n, index

    scr = scoped(release, read(release, "public", "health_screening"), "public")
    last = scr.sort("screening_date").group_by("person_id").last().sort("person_id").row(
        0, named=True)
    for offset, n in ((730, 1), (731, 0), (0, 1)):
        t = table1(made(t2d, [(last["person_id"], last["screening_date"] + offset * DAY)],
                        EXACT), cat)
        assert cell(t, "screening", "screened in 730 days before index")["n"] == n, offset

    wd = scoped(release, read(release, "lifelog", "wearable_daily"), "lifelog")
    lastw = wd.group_by("person_id").agg(pl.col("date").max()).sort("person_id").row(
        0, named=True)
    for offset, n in ((365, 1), (366, 0)):
        t = table1(made(t2d, [(lastw["person_id"], lastw["date"] + offset * DAY)], EXACT), cat)
        assert cell(t, "lifelog", "wearable data in 365 days before index")["n"] == n, offset


def test_first_start_date_is_the_index(release: Path, cat: catalog.Catalog,
                                       t2d: CohortResult) -> None:
    person = consented(release, read(release, "clinical", "person")).row(0, named=True)
    first = dt.date(person["year_of_birth"] + 40, 6, 1)
    t = table1(made(t2d, [(person["person_id"], first + 3650 * DAY),
                          (person["person_id"], first)], EXACT), cat)
    assert cell(t, "cohort")["n"] == 1
    assert cell(t, "demographics", "age at index", "mean (sd)")["value"] == 40


# --- privacy ----------------------------------------------------------------------------------

def test_huge_threshold_hides_every_count(release: Path, cat: catalog.Catalog,
                                          t2d: CohortResult) -> None:
    t = table1(t2d, cat, policy=SmallCellPolicy(threshold=10**6))
    f = t.frame
    counts = f.filter(pl.col("value").is_null() & (pl.col("variable") != NOT_IN_RELEASE)
                      & ~pl.col("level").is_in(["mean (sd)", "sd", "median [IQR]", "q1", "q3"]))
    assert (counts["n"].drop_nulls() == 0).all() and counts["suppressed"].sum() > 20
    assert f["value"].is_null().all()
    assert f.filter(pl.col("n").is_null() | (pl.col("n") > 0))["pct"].is_null().all()
    allowed = {"< 1000000", "suppressed", "0", "0 (0.0%)"}
    assert set(f["shown"].to_list()) <= allowed
    ages = hand_ages(release, t2d)
    truths = {ages.height, ages.filter(pl.col("gender_concept_id") == 8532).height,
              ages.filter(pl.col("gender_concept_id") == 8507).height}
    page = t.to_html()
    shown_cells = re.findall(r"<td>[^<]*</td><td>[^<]*</td><td>([^<]*)</td>", page)
    assert shown_cells and {html.unescape(s) for s in shown_cells} <= allowed
    for n in truths:
        assert f"N = {n:,}" not in page and f"{n:,}" not in repr(t)
    assert "N = &lt; 1000000" in page


def test_complementary_suppression(release: Path, cat: catalog.Catalog,
                                   t2d: CohortResult) -> None:
    """25 women with wearable data before their index, 5 men without: the small male cell
    takes the female cell with it; 5 uncovered persons hide the 25 covered ones."""
    person = consented(release, read(release, "clinical", "person"))
    wear = (read(release, "lifelog", "wearable_daily").group_by("person_id")
            .agg(first=pl.col("date").min()))
    women = (wear.join(person, on="person_id").filter(pl.col("gender_concept_id") == 8532)
             .sort("person_id").head(25))
    men = (person.filter(pl.col("gender_concept_id") == 8507)
           .join(wear, on="person_id", how="anti").sort("person_id").head(5))
    rows = [(p, d) for p, d in women.select("person_id", "first").iter_rows()]
    rows += [(p, dt.date(2020, 1, 1)) for p in men["person_id"]]
    res = made(t2d, rows)
    t = table1(res, cat)
    assert cell(t, "cohort")["shown"] == "30"
    assert cell(t, "demographics", "sex", "male")["shown"] == "< 20"
    female = cell(t, "demographics", "sex", "female")
    assert female["shown"] == "suppressed" and female["n"] is None and female["suppressed"]
    covered = cell(t, "lifelog", "wearable data in 365 days before index", "yes")
    assert covered["shown"] == "suppressed" and covered["pct"] is None
    # 25 covered persons are enough for a mean, though their count is hidden
    steps = cell(t, "lifelog", "steps (person mean per day)", "mean (sd)")
    assert steps["value"] is not None and steps["n"] is None
    # every group with exactly one primary cell has a complementary one
    for _, g in t.frame.filter(pl.col("variable").is_in(["age band", "sex", "region"])) \
            .group_by("variable"):
        primary = (g["shown"] == "< 20").sum()
        assert (g["shown"] == "suppressed").sum() == (1 if primary == 1 else 0)
    # with a threshold above 25, the lifelog means are hidden too
    t30 = table1(res, cat, policy=SmallCellPolicy(threshold=30))
    steps = cell(t30, "lifelog", "steps (person mean per day)", "mean (sd)")
    assert steps["shown"] == "suppressed" and steps["value"] is None and steps["suppressed"]


# --- releases without public or lifelog tables; API edges ------------------------------------

def test_absent_tables_say_not_in_this_release(release: Path, tmp_path: Path,
                                               t2d: CohortResult) -> None:
    clinical = ["person", "observation_period", "condition_occurrence", "drug_exposure",
                "location"]
    write_release(tmp_path / "c", {n: read(release, "clinical", n).to_arrow() for n in clinical},
                  kind="fixture")
    with catalog.open(tmp_path / "c") as cc:
        res = run(t2d.definition, cc)
        t = table1(res, cc)
    assert cell(t, "cohort")["n"] == res.members["subject_id"].n_unique() > 0
    for section in ("screening", "lifelog"):
        row = cell(t, section)
        assert row["shown"] == NOT_IN_RELEASE and row["variable"] == NOT_IN_RELEASE
    assert NOT_IN_RELEASE in t.to_html()


def test_api_edges(cat: catalog.Catalog, t2d: CohortResult) -> None:
    t = table1(t2d, cat, top=0, conditions=["E11", "C16"])
    assert t.frame.filter(section="drugs").is_empty()
    assert cell(t, "conditions", starts="C16")["shown"] in ("0 (0.0%)", "< 20")
    assert repr(t).startswith("Table1('T2D', persons=")
    assert dict(t.frame.schema) == {"section": pl.String, "variable": pl.String,
                                    "level": pl.String, "n": pl.Int64, "pct": pl.Float64,
                                    "value": pl.Float64, "shown": pl.String,
                                    "suppressed": pl.Boolean}
    with pytest.raises(UsageError, match="top must be"):
        table1(t2d, cat, top=-1)
    with pytest.raises(UsageError, match="release"):
        table1(replace(t2d, release_id="other"), cat)
    empty = table1(made(t2d, []), cat)
    assert cell(empty, "cohort")["shown"] == "0"
    assert cell(empty, "demographics", "age at index", "mean (sd)")["shown"] == "– (–)"


def test_withdrawn_persons_are_left_out(release: Path, cat: catalog.Catalog,
                                        t2d: CohortResult) -> None:
    consent = read(release, "governance", "consent")
    gone = consent.filter(pl.col("withdrawal_date").is_not_null())["person_id"].head(3)
    kept = consented(release, consent)["person_id"].head(4)
    rows = [(int(p), dt.date(2020, 1, 1)) for p in [*gone, *kept]]
    t = table1(made(t2d, rows, EXACT), cat)
    assert len(gone) == 3 and cell(t, "cohort")["n"] == 4
