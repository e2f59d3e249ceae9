"""02_lifelog_study on the default release, against hand-written Polars on the Parquet files:
the cohort, the hypertension incidence, the mean steps and the odds ratio (refitted with
scipy's optimiser instead of the notebook's Newton iterations)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from _nbrun import check_rerun, outputs_text, publish_notebook
from scipy.optimize import minimize

from workbench.schema import table_file

FOLLOW_UP = 730


def _read(release: Path, table: str, scope: str | None = None) -> pl.DataFrame:
    """A table's rows; with ``scope``, only those of persons who gave that consent and did
    not withdraw (clinical records, public-agency screening and lifelog data each need
    their own)."""
    rows = pl.read_parquet(release / table_file(table))
    if scope is None:
        return rows
    ok = _read(release, "consent").filter(pl.col(scope), pl.col("withdrawal_date").is_null())
    return rows.join(ok.select("person_id"), on="person_id", how="semi")


def expected(release: Path) -> pl.DataFrame:
    """The study by hand: one row per person (index date, covariates, steps, outcome)."""
    days = pl.duration(days=1)
    withdrawn = _read(release, "consent").filter(pl.col("withdrawal_date").is_not_null())
    htn = (_read(release, "condition_occurrence", "clinical")
           .filter(pl.col("condition_source_value").str.starts_with("I10"))
           .select("person_id", d=pl.col("condition_start_date")))
    events = (_read(release, "health_screening", "public").filter(pl.col("sbp").is_not_null())
              .select("person_id", "bmi", "sbp", date=pl.col("screening_date"))
              .join(_read(release, "observation_period"), on="person_id")
              .filter(pl.col("date") >= pl.col("observation_period_start_date") + 365 * days,
                      pl.col("date") + FOLLOW_UP * days <= pl.col("observation_period_end_date"))
              .join(_read(release, "person"), on="person_id")
              .with_columns(age=pl.col("date").dt.year() - pl.col("year_of_birth"),
                            female=(pl.col("gender_concept_id") == 8532).cast(pl.Int64))
              .filter(pl.col("age").is_between(40, 79)))
    wear = (events.select("person_id", "date").unique()
            .join(_read(release, "wearable_daily", "lifelog").select("person_id", w=pl.col("date"),
                                                          steps="steps"), on="person_id")
            .filter(pl.col("w").is_between(pl.col("date") - 365 * days, pl.col("date")))
            .group_by("person_id", "date").agg(days=pl.len(), mean_steps=pl.col("steps").mean()))
    before = (events.select("person_id", "date").unique().join(htn, on="person_id")
              .filter(pl.col("d") <= pl.col("date")).select("person_id", "date").unique())
    first = (events.join(wear.filter(pl.col("days") >= 30), on=["person_id", "date"])
             .join(before, on=["person_id", "date"], how="anti")
             .join(withdrawn, on="person_id", how="anti")
             .sort("person_id", "date", "sbp")
             .group_by("person_id", maintain_order=True).first())
    cases = (first.select("person_id", "date").join(htn, on="person_id")
             .filter(pl.col("d").is_between(pl.col("date") + days,
                                            pl.col("date") + FOLLOW_UP * days))
             .select("person_id").unique())
    return first.with_columns(hypertension=pl.col("person_id").is_in(
        cases["person_id"].implode()).cast(pl.Int64))


@pytest.fixture(scope="module")
def published(default_release, tmp_path_factory):
    return publish_notebook("02_lifelog_study", default_release, tmp_path_factory.mktemp("nb02"))


@pytest.fixture(scope="module")
def truth(default_release):
    return expected(default_release)


def test_cohort_and_incidence_match_hand_written_polars(published, truth):
    _, rec = published
    r = rec.results
    assert r["persons"]["value"] == truth.height > 200
    assert r["attrition"]["rows"][-1][1] == f"{truth.height:,}"
    n_cases = int(truth["hypertension"].sum())
    assert n_cases >= 20 and r["cases"]["value"] == n_cases
    assert r["mean_steps"]["value"] == pytest.approx(truth["mean_steps"].mean(), rel=1e-9)


def test_odds_ratio_matches_an_independent_fit(published, truth):
    _, rec = published
    d = truth.drop_nulls(["bmi", "sbp"])
    X = np.column_stack([np.ones(d.height), d["mean_steps"].to_numpy() / 1000,
                         d["age"].to_numpy(), d["female"].to_numpy(), d["bmi"].to_numpy(),
                         d["sbp"].to_numpy()]).astype(float)
    y = d["hypertension"].to_numpy().astype(float)
    scale = X.std(axis=0)
    scale[0] = 1.0

    def nll(b):                     # on standardised columns, for a well-conditioned fit
        z = (X / scale) @ b
        return float(np.sum(np.logaddexp(0, z) - y * z))

    fit = minimize(nll, np.zeros(X.shape[1]), method="BFGS", options={"gtol": 1e-9})
    odds = float(np.exp(fit.x[1] / scale[1]))
    assert rec.results["model_persons"]["value"] == d.height
    assert rec.results["odds_ratio_per_1000_steps"]["value"] == pytest.approx(odds, rel=1e-4)
    # walking more goes with less hypertension (planted); the estimate is below 1
    assert odds < 1


def test_small_cells_are_suppressed_in_what_a_reader_sees(published):
    path, rec = published
    rows = rec.results["incidence_by_steps_third"]["rows"]
    assert [r[0] for r in rows] == ["low", "middle", "high"]
    for _, persons, cases, *_rest in rows:
        assert cases == "< 20" or int(cases.replace(",", "")) >= 20
        assert persons == "< 20" or int(persons.replace(",", "")) >= 20
    assert "Wearers at a screening" in outputs_text(path)


def test_rerun_passes_and_names_an_altered_number_or_release(published, default_release,
                                                            tmp_path):
    check_rerun(published[0], default_release, tmp_path)
