"""GWAS on Hail against the planted truth and against plink2, on the default release.

The study cohort is everyone with a screening LDL (index: the first one), the trait that
LDL value; covariates age, sex and 10 PCs. The truth (manifest) lists the causal
variants, their LD blocks and their expected power.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from workbench import catalog
from workbench.schema import table_file

pytestmark = pytest.mark.java
ROOT = Path(__file__).resolve().parents[2]
GW = 5e-8


@pytest.fixture(scope="module")
def cat(default_release):
    with catalog.open(default_release) as c:
        yield c


@pytest.fixture(scope="module")
def truth(default_release):
    return json.loads((default_release / "manifest.json").read_text())["truth"]


@pytest.fixture(scope="module")
def flagship(hail_session, cat, tmp_path_factory):
    """What `make demo` runs: the LDL cohort, GWAS of LDL and of T2D, 10 PCs."""
    from genomics.flagship import run_flagship

    return run_flagship(cat, tmp_path_factory.mktemp("flagship"))


@pytest.fixture(scope="module")
def study(flagship):
    return flagship.studies["ldl"]


def test_flagship_study_recovers_the_truth_for_both_traits(flagship, truth):
    """The demo's summary: every planted T2D variant and >= 80% of LDL's found, nothing
    outside their LD blocks, lambda GC in range with PCs; the page links both reports."""
    by_name = {s["name"]: s for s in flagship.summary["studies"]}
    assert by_name["ldl"]["truth"]["planted"] == len(truth["ldl_cholesterol"]["variants"])
    assert by_name["ldl"]["truth"]["found"] >= 0.8 * by_name["ldl"]["truth"]["planted"]
    assert by_name["ldl"]["truth"]["hits_outside_blocks"] == 0
    t2d = flagship.studies["t2d"].result
    assert t2d.model == "wald" and by_name["t2d"]["hits"] == t2d.top_hits(10**6).height
    assert by_name["t2d"]["truth"] == {"planted": len(truth["t2d"]["variants"]),
                                       "found": len(truth["t2d"]["variants"]),
                                       "hits_outside_blocks": 0}
    for s in by_name.values():
        assert 0.95 <= s["lambda_gc"] <= 1.10
    out = flagship.studies["ldl"].out.parent
    page = (out / "flagship.html").read_text()
    assert "ldl/report.html" in page and "t2d/report.html" in page
    assert json.loads((out / "flagship.json").read_text()) == flagship.summary


def _in_blocks(df: pl.DataFrame, variants: list[dict]) -> pl.Series:
    inside = pl.lit(False)
    for v in variants:
        inside = inside | ((pl.col("chrom") == v["chrom"])
                           & pl.col("pos").is_between(v["ld_block_start"], v["ld_block_end"]))
    return df.select(inside.alias("x"))["x"]


def test_planted_ldl_variants_reach_genome_wide_significance(study, truth):
    res = study.result.results
    causal = truth["ldl_cholesterol"]["variants"]
    found = 0
    for v in causal:
        row = res.filter((pl.col("chrom") == v["chrom"]) & (pl.col("pos") == v["pos"]))
        assert row.height == 1, f"{v['id']} missing after QC"
        found += row["p_value"][0] < GW
        # effect direction and size: statin users' LDL is lowered, so betas run low
        assert np.sign(row["beta"][0]) == np.sign(v["beta"])
        assert 0.5 <= row["beta"][0] / v["beta"] <= 1.3
    expected = truth["ldl_cholesterol"]["expected_discoveries"]
    assert found >= 0.8 * len(causal)
    assert found >= expected - 2          # the rate the truth's power implies


def test_no_null_variant_outside_causal_blocks(study, truth):
    res = study.result.results
    hits = res.filter(pl.col("p_value") < GW)
    outside = hits.filter(~_in_blocks(hits, truth["ldl_cholesterol"]["variants"]))
    assert outside.height == 0, outside


def test_lambda_gc_with_and_without_pcs(study):
    from genomics.assoc import gwas

    assert 0.95 <= study.result.lambda_gc <= 1.10
    no_pcs = gwas(study.qc.mt, "ldl_cholesterol", ["age", "female"])
    assert no_pcs.lambda_gc > 1.3            # the planted stratification shows


def test_qc_removes_the_planted_failures(study, truth):
    steps = {s["step"]: s for s in study.qc.steps}
    kept = set(study.qc.mt.s.collect())
    analysed = set(study.linked.samples["sample_id"])
    q = truth["qc"]
    for key in ("low_call_rate_samples", "sex_mismatch_samples"):
        planted = set(q[key]) & analysed
        assert planted, key
        assert not planted & kept, f"{key} survived QC"
    rows = study.qc.mt.rows().select().collect()
    ids = {f"{r.locus.contig}:{r.locus.position}:{r.alleles[0]}:{r.alleles[1]}" for r in rows}
    for key in ("low_call_rate_variants", "hwe_fail_variants"):
        assert q[key] and not set(q[key]) & ids, f"{key} survived QC"
    assert steps["genetic sex differs from recorded sex"]["samples_removed"] >= 1
    # QC removes little else
    assert len(kept) >= 0.95 * len(analysed)


def test_output_files(study):
    out = study.out
    res = pl.read_parquet(out / "results.parquet")
    assert res.columns == ["chrom", "pos", "ref", "alt", "n", "beta", "se", "t_stat",
                           "p_value"]
    assert res.height == study.qc.mt.count_rows()
    assert res["n"].max() == study.result.n_samples
    qc = json.loads((out / "qc.json").read_text())
    assert [s["step"] for s in qc["link"]][:2] == ["cohort members",
                                                   "genomic consent (not withdrawn)"]
    assert qc["lambda_gc"] == pytest.approx(study.result.lambda_gc, abs=1e-3)
    assert len(qc["top_hits"]) >= 8
    for name in ("manhattan.html", "qq.html", "pca.html", "report.html"):
        text = (out / name).read_text()
        assert "plotly" in text.lower() and len(text) > 10_000
    assert "ldl_cholesterol" in (out / "report.html").read_text()


def test_matches_plink2(study, tmp_path):
    """Same samples, autosomal variants, covariates (PCs included) and genotype values:
    plink2 --glm agrees with Hail to 1% of a standard error."""
    from genomics import plink

    if shutil.which("plink2") is None:
        pytest.skip("plink2 not installed (make test installs it as root)")
    mt = study.qc.mt
    scores = study.pcs
    mt = mt.annotate_cols(**scores[mt.s])
    covs = ["age", "female", *[f"pc{i}" for i in range(1, 11)]]
    vcf, pheno = plink.export_for_plink2(mt, "ldl_cholesterol", covs, tmp_path / "x")
    theirs = plink.glm(vcf, pheno, "ldl_cholesterol", covs, tmp_path / "out")
    ours = study.result.results.filter(pl.col("chrom").str.contains(r"^chr\d+$"))
    assert ours.height >= 0.9 * study.result.results.height      # autosomes: plink2 codes X by sex
    both = ours.join(theirs, on=["chrom", "pos", "ref", "alt"], suffix="_p2")
    assert both.height == ours.height == theirs.height
    assert (both["n"] == both["n_p2"]).all()
    lp = -np.log10(both["p_value"].to_numpy())
    lp2 = -np.log10(both["p_value_p2"].to_numpy())
    assert np.corrcoef(lp, lp2)[0, 1] >= 0.999
    diff = (both["beta"] - both["beta_p2"]).abs() / both["se"]
    assert diff.max() <= 0.01


def test_withdrawn_participant_never_reaches_a_matrix_table(hail_session, cat):
    """Give link() every linked person as 'members', withdrawn ones included: none of
    their samples, nor those without genomic consent, is in the MatrixTable."""
    from genomics.link import link
    from genomics.store import release_genotypes

    # from the release's files: the catalog's sample_link view already holds only
    # genomic-consented, not withdrawn persons (tests/security/test_consent.py)
    people = (pl.read_parquet(cat.path / table_file("sample_link"))
              .join(pl.read_parquet(cat.path / table_file("consent")), on="person_id")
              .select("person_id", "sample_id", "genomic", "withdrawal_date"))
    withdrawn = people.filter(pl.col("withdrawal_date").is_not_null())
    no_consent = people.filter(~pl.col("genomic") & pl.col("withdrawal_date").is_null())
    assert withdrawn.height > 0 and no_consent.height > 0
    mt = release_genotypes(cat)
    in_vcf = set(mt.s.collect())
    assert set(withdrawn["sample_id"]) & in_vcf, "the release should genotype someone who withdrew"
    members = people.select(subject_id="person_id",
                            cohort_start_date=pl.lit(np.datetime64("2020-01-01")).cast(pl.Date))
    linked = link(members, cat, mt)
    samples = set(linked.mt.s.collect())
    assert not samples & set(withdrawn["sample_id"])
    assert not samples & set(no_consent["sample_id"])
    expected = set(people.filter(pl.col("genomic") & pl.col("withdrawal_date").is_null())
                   ["sample_id"]) & in_vcf
    assert samples == expected
    persons = linked.step_persons
    assert persons[0] - persons[1] == withdrawn["person_id"].n_unique() + \
        no_consent["person_id"].n_unique()
