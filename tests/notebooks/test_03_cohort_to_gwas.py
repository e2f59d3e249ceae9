"""03_cohort_to_gwas on the default release (Hail in the notebook's own kernel, a second
JVM; 4 PCs and 3 GB to stay light; with 3, ARPACK does not converge
on this release): the planted loci against the manifest's truth, and
the linked samples against hand-written Polars on the governance tables and VCF header."""

from __future__ import annotations

import json
import re

import nbformat
import polars as pl
import pysam
import pytest
from _nbrun import NOTEBOOKS, check_rerun
from reference.polars_cohort import evaluate

from cohort.io import load
from genomics.flagship import EXAMPLES
from workbench import catalog
from workbench.rerun import publish
from workbench.schema import table_file

pytestmark = [pytest.mark.java, pytest.mark.slow]


@pytest.fixture(scope="module")
def published(default_release, tmp_path_factory):
    out = tmp_path_factory.mktemp("nb03") / "03_cohort_to_gwas.ipynb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_HAIL_MEMORY", "3g")      # the test session's own JVM has 6g
        rec = publish(NOTEBOOKS / "03_cohort_to_gwas.py", out, release=default_release,
                      parameters={"PCS": 4})
    return out, rec


@pytest.fixture(scope="module")
def truth(default_release):
    return json.loads((default_release / "manifest.json").read_text())["truth"]


def test_planted_loci_are_found_where_the_manifest_put_them(published, truth):
    _, rec = published
    for name, key in (("ldl", "ldl_cholesterol"), ("t2d", "t2d")):
        planted = truth[key]["variants"]
        rows = rec.results[f"{name}_planted"]["rows"]
        assert sorted((r[0], r[1]) for r in rows) == sorted((v["chrom"], v["pos"])
                                                            for v in planted)
        effect = {(v["chrom"], v["pos"]): v.get("beta", v.get("log_hr")) for v in planted}
        found = [r for r in rows if r[2]]
        # each found variant has the planted direction of effect
        assert all((r[3] > 0) == (effect[(r[0], r[1])] > 0) for r in found)
        if name == "t2d":
            assert len(found) == len(planted)
        else:
            assert len(found) >= 0.8 * len(planted)
    summary = rec.results["truth_found"]["rows"]
    assert [r[3] for r in summary] == [0, 0]          # no hit outside a planted LD block
    assert [r[2] for r in summary] == [sum(r[2] for r in rec.results[f"{n}_planted"]["rows"])
                                       for n in ("ldl", "t2d")]
    for name in ("ldl", "t2d"):
        assert 0.95 <= rec.results[f"{name}_lambda_gc"]["value"] <= 1.10


def test_linked_samples_match_hand_written_polars(published, default_release):
    _, rec = published
    definition = load(EXAMPLES / "ldl_screened.json")
    assert rec.definitions["study"] == definition.content_hash()
    with catalog.open(default_release) as cat:
        members, _ = evaluate(definition, default_release, cat)
    consent = pl.read_parquet(default_release / table_file("consent"))
    links = pl.read_parquet(default_release / table_file("sample_link"))
    vcf = default_release / "genotypes" / "variants.vcf.bgz"
    with pysam.VariantFile(str(vcf)) as f:
        in_vcf = list(f.header.samples)
    ok = consent.filter(pl.col("genomic").fill_null(False) & pl.col("withdrawal_date").is_null())
    linked = (members.select(person_id="subject_id").unique()
              .join(ok.select("person_id"), on="person_id")
              .join(links.filter(pl.col("sample_id").is_in(in_vcf)), on="person_id")
              ["person_id"].n_unique())
    assert rec.results["linked_persons"]["value"] == linked > 3000
    after = rec.results["after_qc"]["value"]
    assert 0.95 * linked <= after["samples"] == rec.results["samples_analysed"]["value"] <= linked


def test_manhattan_and_qq_are_shown_and_the_notebook_stays_small(published):
    path, _ = published
    nb = nbformat.read(path, as_version=4)
    figs = [o["data"]["application/vnd.plotly.v1+json"] for c in nb.cells
            for o in c.get("outputs", []) if "application/vnd.plotly.v1+json" in o.get("data", {})]
    titles = [f["layout"]["title"]["text"] for f in figs]
    assert [re.search(r": (Manhattan|QQ)\b", t).group(1) for t in titles] == \
        ["Manhattan", "QQ", "Manhattan", "QQ"]
    assert path.stat().st_size < 3_000_000


def test_rerun_passes_and_names_an_altered_number_or_release(published, default_release,
                                                            tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HAIL_MEMORY", "3g")
    check_rerun(published[0], default_release, tmp_path)
