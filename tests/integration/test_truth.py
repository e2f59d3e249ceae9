"""Planted genetics: the manifest's truth is recorded, present in the VCF, and recoverable.

An independent least-squares scan in numpy (not the generator's code, not Hail) over the
VCF and the screening table recovers the planted LDL variants at genome-wide
significance, finds nothing outside their LD blocks, and shows the planted ancestry
stratification: lambda GC inflated without principal components, ~1 with them.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pysam
import pytest
from _vcf import read_gt
from scipy import stats

GW = 5e-8


@pytest.fixture(scope="module")
def manifest(default_release):
    return json.loads((default_release / "manifest.json").read_text())


@pytest.fixture(scope="module")
def genotypes(default_release):
    return read_gt(default_release / "genotypes" / "variants.vcf.bgz")


@pytest.fixture(scope="module")
def ldl_scan(default_release, genotypes):
    """First screening LDL of each linked genotyped person, age and sex, genotypes imputed."""
    ids, samples, g = genotypes
    link = pl.read_parquet(default_release / "governance/sample_link.parquet")
    first_ldl = (pl.read_parquet(default_release / "public/health_screening.parquet")
                 .drop_nulls("ldl_cholesterol").sort("screening_date")
                 .group_by("person_id").first())
    person = pl.read_parquet(default_release / "clinical/person.parquet")
    df = (pl.DataFrame({"sample_id": samples, "col": np.arange(len(samples))})
          .join(link, on="sample_id").join(first_ldl, on="person_id").join(person, on="person_id")
          .sort("col"))
    y = df["ldl_cholesterol"].to_numpy().astype(float)
    age = (df["screening_date"].dt.year() - df["year_of_birth"]).to_numpy().astype(float)
    male = (df["gender_concept_id"] == 8507).to_numpy().astype(float)
    x = g[:, df["col"].to_numpy()].astype(float)
    x[x < 0] = np.nan
    mean = np.nanmean(x, axis=1)
    x = np.where(np.isnan(x), mean[:, None], x)
    maf = np.minimum(mean / 2, 1 - mean / 2)
    keep = maf >= 0.01
    return ids[keep], x[keep], y, np.column_stack([np.ones(len(y)), age, male])


def _scan(x: np.ndarray, y: np.ndarray, covars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q, _ = np.linalg.qr(covars)
    ry = y - q @ (q.T @ y)
    rx = x - (x @ q) @ q.T
    sxx = (rx ** 2).sum(axis=1)
    beta = rx @ ry / sxx
    dof = len(y) - covars.shape[1] - 1
    resid = (ry ** 2).sum() - beta ** 2 * sxx
    se = np.sqrt(resid / dof / sxx)
    return beta, 2 * stats.t.sf(np.abs(beta / se), dof)


@pytest.fixture(scope="module")
def pcs(ldl_scan) -> np.ndarray:
    """Top 10 principal components of the genotypes (every third common variant)."""
    return _pcs(ldl_scan[1][::3])


def _pcs(x: np.ndarray, k: int = 10) -> np.ndarray:
    p = x.mean(axis=1, keepdims=True) / 2
    z = (x - 2 * p) / np.sqrt(2 * p * (1 - p))
    w, v = np.linalg.eigh(z.T @ z)
    return v[:, ::-1][:, :k]


def _lambda_gc(p: np.ndarray) -> float:
    return float(np.median(stats.chi2.isf(p, 1)) / stats.chi2.ppf(0.5, 1))


def test_truth_is_recorded_with_power(manifest):
    truth = manifest["truth"]
    ldl, t2d = truth["ldl_cholesterol"]["variants"], truth["t2d"]["variants"]
    assert len(ldl) == 10 and len(t2d) == 5
    assert len({v["id"] for v in ldl + t2d}) == 15
    for v in ldl:
        assert v["power_at_5e-8"] >= 0.8, v
        assert v["ld_block_start"] <= v["pos"] <= v["ld_block_end"]
    assert truth["ldl_cholesterol"]["n_genotyped_with_ldl"] > 3000
    assert set(truth["qc"]) >= {"low_call_rate_samples", "sex_mismatch_samples",
                                "low_call_rate_variants", "hwe_fail_variants"}


def test_truth_never_appears_in_the_tables(default_release, manifest):
    ids = {v["id"] for v in manifest["truth"]["ldl_cholesterol"]["variants"]}
    for path in default_release.rglob("*.parquet"):
        schema = pl.read_parquet_schema(path)
        assert not any("beta" in c or "causal" in c or "ancestry" in c for c in schema), path
    text = b"".join(p.read_bytes() for p in default_release.rglob("*.parquet"))
    assert not any(i.encode() in text for i in ids)


def test_causal_variants_are_in_the_vcf_with_their_alleles(default_release, manifest):
    vcf = pysam.VariantFile(str(default_release / "genotypes" / "variants.vcf.bgz"))
    for v in (manifest["truth"]["ldl_cholesterol"]["variants"]
              + manifest["truth"]["t2d"]["variants"]):
        recs = list(vcf.fetch(v["chrom"], v["pos"] - 1, v["pos"]))   # tabix index works
        assert [(r.ref, r.alts[0]) for r in recs] == [(v["ref"], v["alt"])]


def test_planted_ldl_variants_are_recovered(manifest, ldl_scan, pcs):
    ids, x, y, covars = ldl_scan
    beta, p = _scan(x, y, np.column_stack([covars, pcs]))
    truth = manifest["truth"]["ldl_cholesterol"]["variants"]
    expected = manifest["truth"]["ldl_cholesterol"]["expected_discoveries"]
    found = 0
    for v in truth:
        j = np.flatnonzero(ids == v["id"])[0]
        found += p[j] < GW
        assert np.sign(beta[j]) == np.sign(v["beta"])
        # statin users' LDL is lowered, which attenuates estimates a little; never inflates
        assert 0.5 * abs(v["beta"]) < abs(beta[j]) < 1.3 * abs(v["beta"])
    assert found >= max(8, int(np.floor(expected - 2)))
    # nothing reaches genome-wide significance outside the causal LD blocks
    blocks = [(v["chrom"], v["ld_block_start"], v["ld_block_end"]) for v in truth]
    for vid in ids[p < GW]:
        chrom, pos = vid.split(":")[0], int(vid.split(":")[1])
        assert any(c == chrom and lo <= pos <= hi for c, lo, hi in blocks), vid


def test_stratification_inflates_lambda_without_pcs(ldl_scan, pcs):
    ids, x, y, covars = ldl_scan
    _, p_raw = _scan(x, y, covars)
    _, p_pcs = _scan(x, y, np.column_stack([covars, pcs]))
    assert _lambda_gc(p_raw) > 1.2
    assert 0.95 <= _lambda_gc(p_pcs) <= 1.10


def test_qc_artefacts_are_what_the_truth_says(manifest, genotypes):
    ids, samples, g = genotypes
    qc = manifest["truth"]["qc"]
    call_rate = (g >= 0).mean(axis=0)
    bad = np.isin(samples, qc["low_call_rate_samples"])
    assert bad.any() and call_rate[bad].max() < 0.95 < call_rate[~bad].min()
    vcall = (g >= 0).mean(axis=1)
    badv = np.isin(ids, qc["low_call_rate_variants"])
    assert badv.any() and vcall[badv].max() < 0.95 < vcall[~badv].min()
    # HWE artefacts (heterozygote excess) fail a chi-square test of Hardy-Weinberg
    auto = ~np.char.startswith(ids.astype(str), "chrX:")
    obs = np.stack([(g[auto] == k).sum(axis=1) for k in (0, 1, 2)], axis=1).astype(float)
    n = obs.sum(axis=1, keepdims=True)
    p = (obs[:, 1:2] + 2 * obs[:, 2:3]) / (2 * n)
    exp = n * np.hstack([(1 - p) ** 2, 2 * p * (1 - p), p ** 2])
    chi2 = np.where(exp > 0, (obs - exp) ** 2 / np.maximum(exp, 1e-12), 0).sum(axis=1)
    p_hwe = stats.chi2.sf(chi2, 1)
    hwe = np.isin(ids[auto], qc["hwe_fail_variants"])
    assert hwe.any() and p_hwe[hwe].max() < 1e-6
    assert (p_hwe[~hwe] < 1e-6).mean() < 0.02


def test_chrx_heterozygosity_reveals_genetic_sex(default_release, manifest, genotypes):
    ids, samples, g = genotypes
    x = np.char.startswith(ids.astype(str), "chrX:")
    het_x = (g[x] == 1).mean(axis=0)     # males: only genotyping artefacts are heterozygous
    link = pl.read_parquet(default_release / "governance/sample_link.parquet")
    person = pl.read_parquet(default_release / "clinical/person.parquet")
    sex = (pl.DataFrame({"sample_id": samples}).join(link, on="sample_id", how="left")
           .join(person, on="person_id", how="left")["gender_concept_id"].to_numpy())
    looks_male = het_x < 0.02
    assert np.median(het_x[~looks_male]) > 0.05
    recorded_male = sex == 8507
    linked = ~np.isnan(sex.astype(float))
    mismatch = set(samples[linked & (looks_male != recorded_male)])
    assert mismatch == set(manifest["truth"]["qc"]["sex_mismatch_samples"]) & set(samples[linked])
