"""The same definitions give identical members and attrition on DuckDB, Spark SQL
(local pyspark, through ``run(..., engine="spark")`` in Hail's Spark session) and
PostgreSQL (a server the tests start). tests/cluster does the same on a Spark
standalone cluster."""

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
    yield cat, pg
    pg.close()
    cat.close()


def agree(d, cat, spark, pg) -> None:
    duck = run(d, cat, cache="refresh")
    on_spark = run(d, cat, engine="spark", spark=spark, cache="refresh")
    assert_frame_equal(on_spark.members, duck.members, check_dtypes=False)
    assert on_spark.step_persons == duck.step_persons
    assert on_spark.steps == duck.steps
    assert (on_spark.engine, duck.engine) == ("spark", "duckdb")
    members, persons = run_on(pg, d, cat)
    assert_frame_equal(members, duck.members, check_dtypes=False)
    assert persons == duck.step_persons


@pytest.mark.parametrize("name", list(REALISTIC))
def test_realistic_definitions_agree(backends, spark, name):
    cat, pg = backends
    assert run(REALISTIC[name], cat).members.height > 0
    agree(REALISTIC[name], cat, spark, pg)


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_result_cases_agree(c, tmp_path, spark, postgres_dsn):
    write_release(tmp_path / "r", c.prep, kind="fixture")
    with catalog.open(tmp_path / "r") as cat:
        pg = PostgresBackend.for_release(cat, postgres_dsn)
        try:
            agree(c.definition, cat, spark, pg)
        finally:
            pg.close()


def test_spark_backends_of_two_releases_and_a_data_url(small_release, spark, tmp_path):
    """Two releases in one Spark context: each backend keeps its own views (a session
    each), so running on the first after the second was set up still reads the first;
    with ``data_url`` the executors read the Parquet there (a file:// URL of a copy)."""
    import shutil

    case = CASES[0]
    write_release(tmp_path / "case", case.prep, kind="fixture")
    copy = tmp_path / "bucket" / "release"
    shutil.copytree(small_release, copy)
    d = REALISTIC["t2d metformin, LDL, walking"]
    with catalog.open(tmp_path / "case") as small, catalog.open(small_release) as cat:
        first = run(case.definition, small, engine="spark", spark=spark, cache="refresh")
        big = run(d, cat, engine="spark", spark=spark, cache="refresh")
        again = run(case.definition, small, engine="spark", spark=spark, cache="refresh")
        assert again.step_persons == first.step_persons == run(case.definition,
                                                               small).step_persons
        assert big.step_persons == run(d, cat).step_persons
        be = SparkBackend.for_release(cat, spark=spark, data_url=copy.as_uri() + "/")
        files = be.spark.table("_rows_condition_occurrence").inputFiles()
        assert files and all(f.startswith(copy.as_uri()) for f in files), files
        remote = run(d, cat, engine="spark", spark=be, cache="refresh")
        assert_frame_equal(remote.members, run(d, cat).members, check_dtypes=False)


def test_cli_count_and_members_on_spark(small_release, spark, tmp_path):
    """`workbench cohort count/members --engine spark` as a user runs them (in this
    process, so on the Spark session Hail already runs): the same JSON and rows."""
    import json

    import polars as pl
    from typer.testing import CliRunner

    from cohort import io
    from workbench.cli import app

    d = REALISTIC["hypertension, any of labs, censored at stroke"]
    path = io.save(d, tmp_path / "d.json")
    runner = CliRunner()
    outs = {}
    for engine in ("duckdb", "spark"):
        res = runner.invoke(app, ["cohort", "count", str(path), "--release", str(small_release),
                                  "--json", "--engine", engine])
        assert res.exit_code == 0, res.output
        outs[engine] = json.loads(res.stdout)
        res = runner.invoke(app, ["cohort", "members", str(path), "--release",
                                  str(small_release), "--engine", engine,
                                  "-o", str(tmp_path / f"{engine}.parquet")])
        assert res.exit_code == 0, res.output
    assert outs["spark"] == outs["duckdb"] and outs["duckdb"]["attrition"][0]["persons"] > 100
    assert pl.read_parquet(tmp_path / "spark.parquet").equals(
        pl.read_parquet(tmp_path / "duckdb.parquet"))


def test_workbench_engine_sets_the_default(small_release, spark, monkeypatch):
    """A deployment sets $WORKBENCH_ENGINE=spark; notebooks calling ``run(d, cat)`` then
    run on Spark, unchanged."""
    d = REALISTIC["nested any of at least"]
    with catalog.open(small_release) as cat:
        duck = run(d, cat, cache="refresh")
        monkeypatch.setenv("WORKBENCH_ENGINE", "spark")
        res = run(d, cat, cache="refresh")
    assert (res.engine, duck.engine) == ("spark", "duckdb")
    assert_frame_equal(res.members, duck.members, check_dtypes=False)
