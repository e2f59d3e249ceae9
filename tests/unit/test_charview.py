"""The characterisation view: Table 1 and plots of one or two cohorts, all through the
small-cell policy; the plotted counts equal hand-written Polars on the release files."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from cohort.builder import cohort, condition
from cohort.characterize import table1
from cohort.charview import LIFELOG_BINS, SCREENING_BINS, CharView, age_sex, distribution
from cohort.engine import run
from cohort.privacy import SmallCellPolicy
from workbench import catalog
from workbench.schema import table_file


@pytest.fixture(scope="module")
def cat(small_release):
    c = catalog.open(small_release)
    yield c
    c.close()


@pytest.fixture(scope="module")
def htn(cat):
    return run(cohort("hypertension").entry(condition("KCD8", "I10")).build(), cat)


@pytest.fixture(scope="module")
def t2d(cat):
    return run(cohort("T2D").entry(condition("KCD8", "E11")).build(), cat)


def read(release: Path, table: str, scope: str | None = None) -> pl.DataFrame:
    """A table's rows from the release's file; with ``scope``, only those of persons who
    consented to it and have not withdrawn (the consent rule, applied by hand: the file
    holds every person's rows)."""
    rows = pl.read_parquet(release / table_file(table))
    if scope is None:
        return rows
    ok = read(release, "consent").filter(pl.col(scope), pl.col("withdrawal_date").is_null())
    return rows.join(ok.select("person_id"), on="person_id", how="semi")


def index_dates(result, release: Path) -> pl.DataFrame:
    withdrawn = read(release, "consent").filter(pl.col("withdrawal_date").is_not_null())
    return (result.members.group_by("subject_id").agg(pl.col("cohort_start_date").min())
            .rename({"subject_id": "person_id", "cohort_start_date": "index_date"})
            .filter(~pl.col("person_id").is_in(withdrawn["person_id"].to_list())))


def test_age_sex_equals_hand_polars(htn, cat, small_release):
    got = age_sex(htn, cat, policy=SmallCellPolicy(threshold=1))
    people = index_dates(htn, small_release).join(read(small_release, "person"), on="person_id")
    want = (people.with_columns(
        band=((pl.col("index_date").dt.year() - pl.col("year_of_birth")) // 10 * 10),
        sex=pl.col("gender_concept_id").replace_strict({8507: "male", 8532: "female"}))
        .group_by("band", "sex").len())
    for band, sex, n in want.iter_rows():
        row = got.filter((pl.col("band") == f"{band}-{band + 9}") & (pl.col("sex") == sex))
        assert row["n"].item() == n
    assert got["n"].sum() == people.height == want["len"].sum()


@pytest.mark.parametrize("item", ["bmi", "ldl_cholesterol", "steps", "resting_hr"])
def test_distribution_equals_hand_polars(htn, cat, small_release, item):
    got = distribution(htn, cat, item, policy=SmallCellPolicy(threshold=1))
    idx = index_dates(htn, small_release)
    if item in SCREENING_BINS:
        s = read(small_release, "health_screening", "public").join(idx, on="person_id").filter(
            pl.col("screening_date").is_between(pl.col("index_date") - pl.duration(days=730),
                                                pl.col("index_date"))
            & pl.col(item).is_not_null())
        values = s.sort("screening_date").group_by("person_id").last()[item]
        lo, hi, _ = SCREENING_BINS[item]
    else:
        w = read(small_release, "wearable_daily", "lifelog").join(idx, on="person_id").filter(
            pl.col("date").is_between(pl.col("index_date") - pl.duration(days=365),
                                      pl.col("index_date")) & pl.col(item).is_not_null())
        values = w.group_by("person_id").agg(pl.col(item).mean())[item]
        lo, hi, _ = LIFELOG_BINS[item]
    assert values.len() > (50 if item in SCREENING_BINS else 10)
    assert got["n"].sum() == values.len()
    assert got["n"][0] == (values < lo).sum() and got["n"][-1] == (values >= hi).sum()
    for row in got.slice(1, got.height - 2).iter_rows(named=True):
        assert row["n"] == ((values >= row["lo"]) & (values < row["hi"])).sum(), row


def test_small_cells_are_hidden_in_every_plot(htn, t2d, cat):
    policy = SmallCellPolicy(threshold=40)
    pyr = age_sex(htn, cat, policy=policy)
    raw = age_sex(htn, cat, policy=SmallCellPolicy(threshold=1))
    small = raw.filter(pl.col("n").is_between(1, 39))
    assert small.height > 0
    hidden = pyr.join(small.select("band", "sex"), on=["band", "sex"])
    assert hidden["suppressed"].all() and set(hidden["shown"]) <= {"< 40", "suppressed"}
    for sex in ("male", "female"):                      # complementary suppression
        assert pyr.filter(sex=sex)["suppressed"].sum() != 1
    view = CharView(cat, htn, t2d, policy=policy)
    try:
        assert len(view.pyramid.data) == 4
        for fig in (view.pyramid, view.screening, view.lifelog):
            for trace in fig.data:
                xs = trace.x if fig is view.pyramid else trace.y
                for v, text in zip(xs, trace.text, strict=True):
                    if text in ("< 40", "suppressed"):
                        assert v == 0
                    else:
                        assert abs(v) == 0 or abs(v) >= 40
                        assert text == f"{abs(v):,}"
    finally:
        view.close()


def test_one_cohort_table1_and_dropdowns(htn, cat):
    view = CharView(cat, htn)
    try:
        assert view.table.value == table1(htn, cat).to_html()
        view.screening_item.value = "sbp"
        assert view.screening.layout.title.text == "sbp: persons per bin"
        want = distribution(htn, cat, "sbp")
        assert list(view.screening.data[0].text) == want["shown"].to_list()
        view.lifelog_item.value = "sleep_minutes"
        assert list(view.lifelog.data[0].text) == distribution(
            htn, cat, "sleep_minutes")["shown"].to_list()
    finally:
        view.close()


def test_two_cohorts_side_by_side(htn, t2d, cat):
    view = CharView(cat, htn, t2d.definition)         # a definition is run here
    try:
        assert "hypertension" in view.table.value and "T2D" in view.table.value
        assert "SMD" in view.table.value
        assert [t.name for t in view.screening.data] == ["hypertension", "T2D"]
    finally:
        view.close()
    with pytest.raises(Exception, match="one or two"):
        CharView(cat, htn, htn, htn)
