"""The rest of the genomics path: the MatrixTable cache, PLINK input, logistic GWAS (Wald
and Firth) against the planted T2D variants, and `workbench gwas` from the shell."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from cohort.io import load
from workbench import catalog
from workbench.cli import app

pytestmark = pytest.mark.java
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def small_cat(small_release):
    with catalog.open(small_release) as c:
        yield c


def test_matrix_table_is_cached_by_content(hail_session, small_cat, small_release):
    from genomics.store import import_vcf, release_genotypes, store_dir

    a = release_genotypes(small_cat)
    entries = sorted(p.name for p in store_dir().glob("*.mt"))
    stamp = {p: (p / "_SUCCESS").stat().st_mtime_ns for p in store_dir().glob("*.mt")}
    b = release_genotypes(small_cat)                   # second call: read, not rewritten
    assert sorted(p.name for p in store_dir().glob("*.mt")) == entries
    assert {p: (p / "_SUCCESS").stat().st_mtime_ns for p in store_dir().glob("*.mt")} == stamp
    assert a.count() == b.count() == (2_000, 600)
    assert list(a.entry) == ["GT"]
    c = import_vcf(small_release / "genotypes/variants.vcf.bgz", partitions=3)
    assert len(list(store_dir().glob("*.mt"))) == len(entries) + 1   # other parameters
    assert c.n_partitions() <= 3 and c.count() == a.count()
    assert not list(store_dir().glob(".*writing*"))


def test_failed_import_leaves_nothing(hail_session, tmp_path):
    from genomics.store import import_vcf, store_dir

    bad = tmp_path / "bad.vcf"
    bad.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\t"
                   "FORMAT\ts1\nchr1\tnotanumber\t.\tA\tC\t.\tPASS\t.\tGT\t0/1\n")
    before = set(store_dir().glob("*"))
    with pytest.raises(Exception):  # noqa: B017 - Hail's own parse error
        import_vcf(bad).count()
    assert set(store_dir().glob("*")) == before


def test_plain_gzip_vcf_warns_and_imports(hail_session, small_release, tmp_path):
    from genomics.store import PlainGzipWarning, import_vcf

    src = small_release / "genotypes/variants.vcf.bgz"
    plain = tmp_path / "plain.vcf.gz"
    with gzip.open(src, "rb") as f, gzip.open(plain, "wb") as g:
        g.write(f.read())
    with pytest.warns(PlainGzipWarning, match="ONE core"):
        mt = import_vcf(plain)
    assert mt.count() == (2_000, 600)


def test_plink_input_gives_the_same_genotypes(hail_session, small_cat, tmp_path):
    import hail as hl

    from genomics.plink import export_bed
    from genomics.store import import_plink, release_genotypes

    mt = release_genotypes(small_cat)
    bed = export_bed(mt, tmp_path / "x")
    back = import_plink(bed)
    assert back.count() == mt.count()
    joined = mt.annotate_entries(back_gt=back[mt.row_key, mt.col_key].GT)
    same = joined.aggregate_entries(hl.agg.all(
        (hl.is_missing(joined.GT) & hl.is_missing(joined.back_gt))
        | (joined.GT.n_alt_alleles() == joined.back_gt.n_alt_alleles())))
    assert same


@pytest.fixture(scope="module")
def t2d_study(hail_session, default_release):
    """Study cohort: everyone with a screening LDL; cases: anyone with a T2D record."""
    from cohort.engine import run
    from genomics.assoc import gwas
    from genomics.link import link
    from genomics.qc import run_qc
    from genomics.store import release_genotypes

    with catalog.open(default_release) as cat:
        members = run(load(ROOT / "examples/ldl_screened.json"), cat).members
        cases = run(load(ROOT / "examples/t2d_cases.json"), cat).members
        linked = link(members, cat, release_genotypes(cat), fields=["age", "female"],
                      cases=cases)
        truth = json.loads((default_release / "manifest.json").read_text())["truth"]["t2d"]
    qc = run_qc(linked.mt)
    return qc.mt, gwas(qc.mt, "case", ["age", "female"], model="logistic"), truth


def test_logistic_wald_finds_the_planted_t2d_variants(t2d_study):
    _, res, truth = t2d_study
    assert res.results.columns == ["chrom", "pos", "ref", "alt", "n", "beta", "se", "z_stat",
                                   "p_value"]
    for v in truth["variants"]:
        row = res.results.filter((pl.col("chrom") == v["chrom"]) & (pl.col("pos") == v["pos"]))
        assert row.height == 1
        assert row["p_value"][0] < 5e-8, v["id"]
        assert (row["beta"][0] > 0) == (v["log_hr"] > 0)       # direction of the hazard
    assert 0.9 <= res.lambda_gc <= 1.8            # no PCs here: stratification inflates


def test_logistic_firth_agrees_with_wald_on_the_t2d_blocks(t2d_study):
    import hail as hl

    from genomics.assoc import gwas

    mt, wald, truth = t2d_study
    blocks = hl.literal([hl.Interval(hl.Locus(v["chrom"], v["ld_block_start"]),
                                     hl.Locus(v["chrom"], v["ld_block_end"] + 1))
                         for v in truth["variants"]])
    sub = mt.filter_rows(blocks.any(lambda i: i.contains(mt.locus)))
    firth = gwas(sub, "case", ["age", "female"], model="logistic", test="firth").results
    assert firth.height > len(truth["variants"])
    assert "chi_sq_stat" in firth.columns and firth["se"].is_null().all()
    both = firth.join(wald.results, on=["chrom", "pos", "ref", "alt"], suffix="_w")
    assert both.height == firth.height
    rel = ((both["beta"] - both["beta_w"]).abs() / both["se_w"]).max()
    assert rel < 0.2                          # common variants, thousands of samples
    assert (both.filter(pl.col("p_value_w") < 1e-10)["p_value"] < 1e-8).all()


def test_gwas_command_writes_results(hail_session, small_release, tmp_path):
    out = tmp_path / "gwas"
    env = {"WORKBENCH_CACHE": os.environ["WORKBENCH_CACHE"]}
    r = CliRunner().invoke(app, ["gwas", str(ROOT / "examples/ldl_screened.json"),
                                 "--release", str(small_release), "--trait", "ldl_cholesterol",
                                 "--covariates", "age,female", "--pcs", "2", "--out",
                                 str(out)], env=env)
    assert r.exit_code == 0, r.output
    assert "lambda GC" in r.output
    res = pl.read_parquet(out / "results.parquet")
    assert res.height > 500 and res["p_value"].is_between(0, 1).all()
    qc = json.loads((out / "qc.json").read_text())
    assert qc["covariates"] == ["age", "female", "pc1", "pc2"]
    assert {"manhattan.html", "qq.html", "pca.html", "report.html"} <= {
        p.name for p in out.iterdir()}


def test_gwas_command_rejects_an_unknown_trait(hail_session, small_release, tmp_path):
    r = CliRunner().invoke(app, ["gwas", str(ROOT / "examples/ldl_screened.json"),
                                 "--release", str(small_release), "--trait", "cholesterolz",
                                 "--out", str(tmp_path / "x")],
                           env={"WORKBENCH_CACHE": os.environ["WORKBENCH_CACHE"]})
    assert r.exit_code == 2
    assert "unknown phenotype or covariate cholesterolz" in r.output
    assert not (tmp_path / "x").exists()


def test_genomics_import_command(hail_session, small_release):
    r = CliRunner().invoke(app, ["genomics", "import", "--release", str(small_release)],
                           env={"WORKBENCH_CACHE": os.environ["WORKBENCH_CACHE"]})
    assert r.exit_code == 0, r.output
    assert "2,000 variants x 600 samples" in r.output
    missing = CliRunner().invoke(app, ["genomics", "import", "/nonexistent.vcf.bgz"])
    assert missing.exit_code == 2 and "does not exist" in missing.output
