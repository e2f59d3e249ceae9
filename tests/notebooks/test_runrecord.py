"""Run records on their own (no kernel): what is recorded, what compares, and the
run_manifest.json that `workbench gwas` writes next to its results."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from cohort.builder import age, cohort, condition
from workbench import runrecord
from workbench.cli import _gwas_run_manifest
from workbench.errors import UsageError
from workbench.manifest import read_manifest


def _rec(**results):
    rec = runrecord.RunRecord(release={"release_id": "r", "content_id": "c", "checksums": {}},
                              environment=runrecord.environment())
    for k, v in results.items():
        rec.record(k, v)
    return rec


def test_numbers_compare_within_tolerance_and_tables_by_cell():
    a, b = _rec(), _rec()
    a.record("x", 1.0, tolerance=0.1)
    b.record("x", 1.09, tolerance=0.1)
    assert runrecord.compare(a, b) == []
    b.record("x", 1.11, tolerance=0.1)
    assert [d.kind for d in runrecord.compare(a, b)] == ["result"]
    a.record("x", np.float64(2.0))            # numpy scalars are plain numbers
    b.record("x", 2.0 + 1e-12)
    assert runrecord.compare(a, b) == []
    a.record("t", pl.DataFrame({"g": ["a", "b"], "n": [1, 2]}))
    b.record("t", pl.DataFrame({"g": ["a", "b"], "n": [1, 3]}))
    (d,) = runrecord.compare(a, b)
    assert str(d) == "result t: row 1, column n: recorded 2, rerun 3"


def test_missing_and_extra_results_and_definitions_are_named():
    d1 = cohort("a").entry(condition("KCD8", "I10")).require("old", age(60)).build()
    d2 = cohort("a").entry(condition("KCD8", "I10")).require("old", age(61)).build()
    a, b = _rec(n=1), _rec(m=2)
    a.definition(d1)
    b.definition(d2)
    got = [str(d) for d in runrecord.compare(a, b)]
    assert got[0].startswith("definition a: hash recorded ")
    assert got[1:] == ["result n: recorded, but the rerun did not record it",
                       "result m: not recorded in the published run"]


def test_record_refuses_what_it_cannot_compare():
    rec = _rec()
    with pytest.raises(UsageError, match="too big"):
        rec.record("big", pl.DataFrame({"x": range(500)}))
    with pytest.raises(UsageError, match="cannot record a object"):
        rec.record("o", object())
    with pytest.raises(UsageError, match="tolerance"):
        rec.record("n", 1, tolerance=-1)


def test_record_writes_through_to_the_runner_file(tmp_path, monkeypatch, small_release):
    from workbench import catalog

    monkeypatch.setattr(runrecord, "_current", None)   # restored afterwards
    target = tmp_path / "rec.json"
    monkeypatch.setenv(runrecord.ENV_RECORD, str(target))
    with catalog.open(small_release) as cat:
        runrecord.start(cat)
    runrecord.record("n", 3)
    back = runrecord.read(target)
    assert back.results["n"]["value"] == 3
    assert back.release["release_id"] == read_manifest(small_release)["release_id"]
    assert back.environment["lock_sha256"] == runrecord.lock_sha256()


def test_gwas_run_manifest_holds_release_definitions_and_results(small_release, tmp_path):
    res = SimpleNamespace(n_samples=512, lambda_gc=1.01234,
                          results=pl.DataFrame({"p_value": [1e-9, 0.5, 1e-10]}),
                          top_hits=lambda n: pl.DataFrame({"p_value": [1e-10, 1e-9]}))
    d = cohort("x").entry(condition("KCD8", "E11")).build()
    path = _gwas_run_manifest(SimpleNamespace(result=res), tmp_path, release=small_release,
                              definitions={"cohort": d}, inputs=[])
    data = json.loads(path.read_text())
    assert path.name == "run_manifest.json"
    assert data["release"]["release_id"] == read_manifest(small_release)["release_id"]
    assert data["definitions"] == {"cohort": d.content_hash()}
    assert {k: v["value"] for k, v in data["results"].items()} == {
        "samples_analysed": 512, "variants": 3, "lambda_gc": 1.0123, "hits_5e-8": 2}
    own = _gwas_run_manifest(SimpleNamespace(result=res), tmp_path / "own", release=None,
                             definitions={}, inputs=[path])
    assert list(json.loads(own.read_text())["release"]["checksums"]) == \
        ["file:run_manifest.json"]
