"""Consent scopes and withdrawal (issue 7, item 2): a person's rows of a table are used only
under the consent that covers the table, and a withdrawn person is in no new result.

The release's own Parquet files hold rows of persons without the scope (the synthetic
generator writes them, as a hospital extract would): the ground truth here is computed
from those files with Polars, by the written rule (clinical records need ``clinical``,
screening and the death registry ``public``, wearables ``lifelog``, sample links
``genomic``; nobody withdrawn), and compared with what every way of reading the release
gives: the catalog's views (Parquet and DuckDB-native), a project's catalog, cohorts,
Table 1, distributions, datasets and the genomics phenotypes.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from reference.polars_cohort import evaluate

from cohort.builder import cohort, condition, lifelog, observation_period, screening
from cohort.characterize import table1
from cohort.charview import distribution
from cohort.dataset import build_dataset
from cohort.engine import clear_cache, run
from cohort.privacy import SmallCellPolicy
from genomics.link import phenotypes
from workbench import catalog
from workbench.project import Project
from workbench.schema import table_file

RULE = {"visit_occurrence": "clinical", "condition_occurrence": "clinical",
        "drug_exposure": "clinical", "measurement": "clinical",
        "procedure_occurrence": "clinical", "death": "clinical",
        "health_screening": "public", "death_registry": "public",
        "wearable_daily": "lifelog", "wearable_intraday_hr": "lifelog",
        "sample_link": "genomic"}
EXACT = SmallCellPolicy(threshold=1)


def _raw(release: Path, table: str) -> pl.DataFrame:
    return pl.read_parquet(release / table_file(table))


def _allowed(release: Path, scope: str) -> set[int]:
    c = _raw(release, "consent")
    return set(c.filter(pl.col(scope) & pl.col("withdrawal_date").is_null())["person_id"])


def _not_allowed(release: Path, table: str) -> set[int]:
    """Persons with rows in the file but without the table's scope (or withdrawn)."""
    return set(_raw(release, table)["person_id"]) - _allowed(release, RULE[table])


@pytest.fixture(autouse=True)
def _fresh():
    clear_cache()


def test_the_release_holds_rows_the_rule_must_hide(small_release):
    for table in ("condition_occurrence", "health_screening", "wearable_daily",
                  "death_registry", "sample_link"):
        assert _not_allowed(small_release, table), table
    assert _raw(small_release, "consent")["withdrawal_date"].is_not_null().sum() > 0


@pytest.mark.parametrize("storage", ["parquet", "native"])
def test_every_scoped_view_holds_exactly_the_consented_rows(small_release, storage):
    with catalog.open(small_release, storage=storage) as cat:
        for table, scope in RULE.items():
            raw = _raw(small_release, table)
            want = raw.filter(pl.col("person_id").is_in(list(_allowed(small_release, scope))))
            got = cat.frame(f"select * from {table}")
            assert got.height == want.height, table
            assert got.sort(got.columns).equals(want.sort(want.columns)), table
        # enrolment tables are whole
        for table in ("person", "observation_period", "consent"):
            assert cat.scalar(f"select count(*) from {table}") == _raw(small_release,
                                                                         table).height


def test_a_project_catalog_is_scoped_too(small_release):
    grant = Project.model_validate({"name": "p", "tier": "controlled", "tables": {
        "person": "*", "observation_period": "*",
        "health_screening": ["screening_date", "ldl_cholesterol"]}})
    with catalog.open(small_release, project=grant) as cat:
        n = cat.scalar("select count(*) from health_screening")
    raw = _raw(small_release, "health_screening")
    assert n == raw.filter(pl.col("person_id").is_in(
        list(_allowed(small_release, "public")))).height < raw.height


@pytest.mark.parametrize("criterion,table", [
    (condition("KCD8", "I10"), "condition_occurrence"),
    (screening("ldl_cholesterol"), "health_screening"),
    (lifelog("steps", min=0).within(-30, 0), "wearable_daily"),
])
def test_cohorts_never_use_rows_without_the_scope(small_release, criterion, table):
    hidden = _not_allowed(small_release, table)
    if table == "wearable_daily":
        d = cohort("with steps").entry(observation_period()).require("steps",
                                                                     criterion).build()
    else:
        d = cohort("by scope").entry(criterion).build()
    with catalog.open(small_release) as cat:
        members = set(run(d, cat).members["subject_id"])
        ref, _ = evaluate(d, small_release, cat)       # the hand-written Polars reference
    assert members and not members & hidden
    assert members == set(ref["subject_id"])


def test_characterisation_datasets_and_phenotypes_leave_them_out(small_release):
    no_public = _not_allowed(small_release, "health_screening")
    no_clinical = _not_allowed(small_release, "condition_occurrence")
    everyone = cohort("everyone").entry(observation_period()).build()
    with catalog.open(small_release) as cat:
        res = run(everyone, cat, policy=EXACT)
        members = set(res.members["subject_id"])
        assert no_public & members and no_clinical & members
        ds = build_dataset(cat, res, {"screening": None, "conditions": None})
        assert not set(ds["screening"]["person_id"]) & no_public
        assert not set(ds["conditions"]["person_id"]) & no_clinical
        # the distribution of BMI counts consented persons only
        bins = distribution(res, cat, "bmi", policy=EXACT)
        idx = res.members.group_by("subject_id").agg(pl.col("cohort_start_date").min())
        scr = (_raw(small_release, "health_screening")
               .filter(pl.col("person_id").is_in(list(_allowed(small_release, "public"))))
               .join(idx, left_on="person_id", right_on="subject_id")
               .filter(pl.col("bmi").is_not_null(),
                       (pl.col("screening_date") - pl.col("cohort_start_date")).dt.total_days()
                       .is_between(-730, 0)))
        assert int(bins["n"].fill_null(0).sum()) == scr["person_id"].n_unique()
        # Table 1's condition rows: consented records only
        t1 = table1(res, cat, conditions=["I10"], policy=EXACT).frame
        shown = t1.filter(pl.col("section") == "conditions",
                          pl.col("level").str.starts_with("I10"))["n"].item()
        cond = (_raw(small_release, "condition_occurrence")
                .filter(pl.col("person_id").is_in(list(_allowed(small_release, "clinical"))),
                        pl.col("condition_source_value").str.starts_with("I10"))
                .join(idx, left_on="person_id", right_on="subject_id")
                .filter((pl.col("condition_start_date") - pl.col("cohort_start_date"))
                        .dt.total_days().is_between(-365, 0)))
        assert shown == cond["person_id"].n_unique() > 0
        # phenotypes for the GWAS: a screening value only with public consent
        persons = (res.members.group_by("subject_id").agg(pl.col("cohort_start_date").min())
                   .rename({"subject_id": "person_id", "cohort_start_date": "index_date"}))
        ph = phenotypes(cat, persons, ["ldl_cholesterol"])
        with_value = set(ph.filter(pl.col("ldl_cholesterol").is_not_null())["person_id"])
        assert with_value and not with_value & no_public


def test_withdrawn_persons_are_in_no_view_and_no_result(small_release):
    c = _raw(small_release, "consent")
    gone = set(c.filter(pl.col("withdrawal_date").is_not_null())["person_id"])
    assert gone
    with catalog.open(small_release) as cat:
        for table in RULE:
            ids = set(cat.frame(f"select distinct person_id from {table}")["person_id"])
            assert not ids & gone, table
        res = run(cohort("everyone").entry(observation_period()).build(), cat)
        assert not set(res.members["subject_id"]) & gone
