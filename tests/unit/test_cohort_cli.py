"""`workbench cohort count|members|describe|diff` as a biostatistician runs them."""

from __future__ import annotations

import json

import polars as pl
from typer.testing import CliRunner

from cohort import io
from cohort.builder import age, cohort, condition, drug
from cohort.engine import run
from workbench import catalog
from workbench.cli import app

runner = CliRunner()
DEF = (cohort("t2d on metformin").entry(condition("KCD8", "E11"))
       .require("adult", age(18, None))
       .require("metformin within a year", drug("ATC", "A10BA02").within(0, 365)).build())


def test_count_json_matches_the_library(small_release, tmp_path):
    path = io.save(DEF, tmp_path / "def.json")
    res = runner.invoke(app, ["cohort", "count", str(path), "--release", str(small_release),
                              "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    with catalog.open(small_release) as cat:
        lib = run(DEF, cat)
    assert out["count"] == lib.count and isinstance(out["count"], int) and out["count"] > 20
    assert [a["rule"] for a in out["attrition"]] == ["entry events", "adult",
                                                     "metformin within a year"]
    assert [a["persons"] for a in out["attrition"]] == lib.step_persons


def test_count_text_and_suppression(small_release, tmp_path):
    tiny = cohort("mi in a tiny window").entry(condition("KCD8", "I21")).require(
        "born 1950", age(74, 74)).build()
    path = io.save(tiny, tmp_path / "tiny.json")
    res = runner.invoke(app, ["cohort", "count", str(path), "--release", str(small_release),
                              "--json"])
    out = json.loads(res.stdout)
    with catalog.open(small_release) as cat:
        n = run(tiny, cat).step_persons[-1]
    assert 0 < n < 20, "pick a definition with a small final count"
    assert out["count"] == "< 20" and out["attrition"][-1]["persons"] == "< 20"


def test_members_writes_parquet(small_release, tmp_path):
    path = io.save(DEF, tmp_path / "def.json")
    out = tmp_path / "m.parquet"
    res = runner.invoke(app, ["cohort", "members", str(path), "--release", str(small_release),
                              "-o", str(out)])
    assert res.exit_code == 0, res.output
    with catalog.open(small_release) as cat:
        expected = run(DEF, cat).members
    assert pl.read_parquet(out).equals(expected)


def test_describe_and_diff(tmp_path):
    a = io.save(DEF, tmp_path / "a.json")
    b = io.save(DEF.model_copy(update={"name": "renamed"}), tmp_path / "b.json")
    c_def = DEF.model_copy(update={"entry": DEF.entry.model_copy(update={"limit": "all"})})
    c = io.save(c_def, tmp_path / "c.json")
    res = runner.invoke(app, ["cohort", "describe", str(a)])
    assert res.exit_code == 0 and "metformin within a year" in res.stdout
    assert runner.invoke(app, ["cohort", "diff", str(a), str(b)]).exit_code == 0
    res = runner.invoke(app, ["cohort", "diff", str(a), str(c)])
    assert res.exit_code == 1 and res.stdout.strip() == "entry.limit: 'first' -> 'all'"


def test_bad_definition_names_the_json_path(tmp_path, small_release):
    bad = json.loads(io.dumps(DEF))
    bad["inclusion_rules"][1]["group"]["items"][0]["window"] = {"start": 10, "end": 1}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    res = runner.invoke(app, ["cohort", "count", str(path), "--release", str(small_release)])
    assert res.exit_code == 1
    assert res.stderr.startswith(
        "error: inclusion_rules[1].group.items[0].window: window start 10 is after its end 1")
    assert "Traceback" not in res.output


def test_count_refuses_an_unknown_engine(small_release, tmp_path):
    path = io.save(DEF, tmp_path / "def.json")
    res = runner.invoke(app, ["cohort", "count", str(path), "--release", str(small_release),
                              "--engine", "oracle"])
    assert res.exit_code == 2        # a usage error
    assert "unknown engine 'oracle'" in res.output and "duckdb or spark" in res.output
