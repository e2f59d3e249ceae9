"""The same definitions give identical members and attrition on DuckDB, Spark SQL
(local pyspark) and PostgreSQL (a server the tests start)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from cohort import model as m
from cohort.backends import PostgresBackend, SparkBackend, run_on
from cohort.builder import (
    age,
    any_of,
    cohort,
    condition,
    consent,
    drug,
    has_genome,
    lifelog,
    measurement,
    region,
    screening,
    sex,
    visit,
)
from cohort.engine import run
from workbench import catalog
from workbench.release_io import write_release

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
from test_cohort_cases import CASES  # noqa: E402

pytestmark = pytest.mark.java

REALISTIC = {
    "t2d metformin, LDL, walking": (
        cohort("t2d").entry(condition("KCD8", "E11").first(), prior_observation=365)
        .require("40-79", age(40, 79))
        .require("metformin within 90 days", drug("ATC", "A10BA02").within(0, 90))
        .exclude("no insulin before", drug("ATC", "A10A").within(None, -1))
        .require("screening LDL", screening("ldl_cholesterol", min=0).within(-730, 0))
        .exit_after(730).build()),
    "hypertension, any of labs, censored at stroke": (
        cohort("htn").entry(condition("KCD8", "I10"), limit="all")
        .require_any("lab evidence", measurement("LOINC", "8480-6", min=140).within(-30, 30),
                     measurement("LOINC", "4548-4", min=6.5).within(-365, 0))
        .require("women in Seoul or Busan", sex("female"), region("11", "26"))
        .censor(condition("KCD8", "I63")).collapse(30).build()),
    "wearers with low steps and genomic consent": (
        cohort("steps").entry(visit("OP"), limit="all")
        .require("low steps", lifelog("steps", "mean", max=6000, min_days=20).within(-90, -1))
        .require("genome and consent", has_genome(), consent("genomic"))
        .exit_at_drug_end("ATC", "C09CA01").first_result_only().build()),
    "set: t2d minus ckd": m.CohortSet(kind="minus", name="t2d-ckd", cohorts=[
        cohort("t2d").entry(condition("KCD8", "E11")).build(),
        cohort("ckd").entry(condition("KCD8", "N18")).build()]),
    "nested any of at least": (
        cohort("mi").entry(condition("KCD8", "I21"))
        .require("risk", any_of(condition("KCD8", "E11").within(None, 0),
                                drug("ATC", "C10AA").within(-365, 0).at_least(2)))
        .exit_after(365, anchor="index_end").build()),
}


@pytest.fixture(scope="module")
def backends(small_release, spark, postgres_dsn):
    cat = catalog.open(small_release)
    pg = PostgresBackend.for_release(cat, postgres_dsn)
    yield cat, SparkBackend.for_release(cat, spark=spark), pg
    pg.close()
    cat.close()


@pytest.mark.parametrize("name", list(REALISTIC))
def test_realistic_definitions_agree(backends, name):
    cat, spark_be, pg_be = backends
    d = REALISTIC[name]
    duck = run(d, cat)
    assert duck.members.height > 0
    for be in (spark_be, pg_be):
        members, persons = run_on(be, d, cat)
        assert_frame_equal(members, duck.members, check_dtypes=False)
        assert persons == duck.step_persons, be.dialect


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_result_cases_agree(c, tmp_path, spark, postgres_dsn):
    write_release(tmp_path / "r", c.prep, kind="fixture")
    with catalog.open(tmp_path / "r") as cat:
        duck = run(c.definition, cat)
        pg = PostgresBackend.for_release(cat, postgres_dsn)
        try:
            for be in (SparkBackend.for_release(cat, spark=spark), pg):
                members, persons = run_on(be, c.definition, cat)
                assert_frame_equal(members, duck.members, check_dtypes=False)
                assert persons == duck.step_persons, be.dialect
        finally:
            pg.close()
