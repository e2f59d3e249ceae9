"""Bring your own data: `workbench gwas --vcf/--bfile --phenotypes` against the release path,
and bad genotype input that gets past the pre-check but not past Hail."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from cohort.io import load
from workbench import catalog
from workbench.cli import app
from workbench.errors import GenotypeInputError, WorkbenchError

pytestmark = pytest.mark.java
ROOT = Path(__file__).resolve().parents[2]
KEY = ["chrom", "pos", "ref", "alt"]


@pytest.fixture(scope="module")
def release_study(hail_session, small_release, tmp_path_factory):
    """The release path on the small release: LDL in the screened cohort, age, sex, 2 PCs."""
    from genomics.study import run_gwas

    with catalog.open(small_release) as cat:
        return run_gwas(load(ROOT / "examples/ldl_screened.json"), cat,
                        trait="ldl_cholesterol", covariates=["age", "female"], pcs=2,
                        out=tmp_path_factory.mktemp("release") / "gwas")


@pytest.fixture(scope="module")
def pheno(release_study, tmp_path_factory):
    """The linked samples' phenotypes as your own table: TSV (female as TRUE/False text,
    a boolean covariate), the same as Parquet (typed), plus 3 rows for samples no VCF has."""
    d = tmp_path_factory.mktemp("pheno")
    s = release_study.linked.samples
    assert s["ldl_cholesterol"].null_count() == 0
    df = s.select(IID="sample_id", ldl_cholesterol="ldl_cholesterol", age="age",
                  female=pl.col("female") == 1.0,
                  older=pl.col("age") >= pl.col("age").median())
    ghosts = pl.DataFrame({"IID": ["ghost1", "ghost2", "ghost3"], "ldl_cholesterol": 3.0,
                           "age": 50.0, "female": True, "older": False})
    df = pl.concat([df, ghosts.cast(df.schema)])
    df.write_parquet(d / "pheno.parquet")
    text = df.with_columns(
        female=pl.when(pl.col("female")).then(pl.lit("TRUE")).otherwise(pl.lit("False")),
        older=pl.when(pl.col("older")).then(pl.lit("true")).otherwise(pl.lit("FALSE")),
        older01=pl.col("older").cast(pl.Int8))
    text.write_csv(d / "pheno.tsv", separator="\t")
    return d


@pytest.fixture(scope="module")
def vcf_study(release_study, pheno, small_release, tmp_path_factory):
    from genomics.study import run_gwas_on_files

    heard = []
    study = run_gwas_on_files(vcf=small_release / "genotypes/variants.vcf.bgz",
                              phenotypes=pheno / "pheno.tsv", sample_column="IID",
                              trait="ldl_cholesterol", covariates=["age", "female"], pcs=2,
                              out=tmp_path_factory.mktemp("byod") / "vcf", warn=heard.append)
    return study, heard


def _max_log10p_diff(a: pl.DataFrame, b: pl.DataFrame) -> float:
    both = a.join(b, on=KEY, suffix="_b")
    assert both.height == a.height == b.height
    assert (both["n"] == both["n_b"]).all()
    lp = -np.log10(both["p_value"].to_numpy())
    lp_b = -np.log10(both["p_value_b"].to_numpy())
    return float(np.nanmax(np.abs(lp - lp_b)))


def test_own_vcf_and_tsv_give_the_release_paths_p_values(release_study, vcf_study):
    study, _ = vcf_study
    assert study.result.model == "linear" and study.result.n_samples == \
        release_study.result.n_samples
    assert study.qc.steps == release_study.qc.steps
    diff = _max_log10p_diff(release_study.result.results, study.result.results)
    print(f"max |-log10 p| difference, own VCF + TSV vs release: {diff:.2e}")
    assert diff < 1e-6


def test_release_path_warns_of_members_not_in_the_vcf(release_study):
    """One linked member of the small release has no column in its VCF: a warning with a
    suppressed count, in Study.warnings and qc.json."""
    persons = release_study.linked.step_persons
    assert persons[-2] - persons[-1] == 1
    note = ("< 20 of the cohort's consented members with a linked sample are not in the "
            "release's VCF; they are left out")
    assert release_study.warnings == [note]
    qc = json.loads((release_study.out / "qc.json").read_text())
    assert qc["warnings"] == [note] and "phenotypes" not in qc and qc["link"]


def test_qc_json_reports_the_match_through_the_small_cell_policy(release_study, vcf_study):
    study, heard = vcf_study
    qc = json.loads((study.out / "qc.json").read_text())
    assert "link" not in qc and qc["genotypes"] == "variants.vcf.bgz"
    p = qc["phenotypes"]
    linked = release_study.linked.samples.height
    assert p["source"] == "pheno.tsv" and p["sample_column"] == "IID"
    c = p["counts"]
    assert c["table_rows"] == linked + 3 and c["matched"] == linked
    assert c["table_only"] == "< 20"                      # the 3 ghosts, suppressed
    # complementary suppression: the smallest other count (600 - linked) is hidden too
    assert c["genotype_samples"] == 600 and c["genotype_only"] == "suppressed"
    assert c["missing_trait"] == 0 and c["analysed"] == linked
    assert [s["step"] for s in p["steps"]] == ["rows in the phenotype table",
                                               "sample in the genotypes", "trait not missing"]
    assert heard == ["< 20 rows of pheno.tsv are not samples in variants.vcf.bgz; they are "
                     "left out"]
    assert qc["warnings"] == heard
    for name in ("results.parquet", "manhattan.html", "qq.html", "pca.html", "report.html"):
        assert (study.out / name).is_file()
    assert "Phenotype table to genomes" in (study.out / "report.html").read_text()


def test_plink_files_and_parquet_give_the_same_results_as_the_vcf(vcf_study, pheno,
                                                                  small_release, tmp_path):
    from genomics.plink import export_bed
    from genomics.store import import_vcf
    from genomics.study import run_gwas_on_files

    bed = export_bed(import_vcf(small_release / "genotypes/variants.vcf.bgz"), tmp_path / "g")
    study = run_gwas_on_files(bfile=bed.with_suffix(""), phenotypes=pheno / "pheno.parquet",
                              sample_column="IID", trait="ldl_cholesterol",
                              covariates=["age", "female"], pcs=2, out=tmp_path / "bfile")
    diff = _max_log10p_diff(vcf_study[0].result.results, study.result.results)
    print(f"max |-log10 p| difference, PLINK + Parquet vs VCF + TSV: {diff:.2e}")
    assert diff < 1e-6
    assert json.loads((tmp_path / "bfile/qc.json").read_text())["genotypes"] == "g.bed"


def test_cli_with_a_boolean_covariate_equals_its_0_1_coding(hail_session, pheno, small_release,
                                                           tmp_path):
    """`workbench gwas --vcf` writes the files; 'older' as true/FALSE text equals 0/1."""
    from genomics.study import run_gwas_on_files

    vcf = small_release / "genotypes/variants.vcf.bgz"
    out = tmp_path / "cli"
    r = CliRunner().invoke(app, ["gwas", "--vcf", str(vcf), "--phenotypes",
                                 str(pheno / "pheno.tsv"), "--sample-column", "IID",
                                 "--trait", "ldl_cholesterol", "--covariates", "age,older",
                                 "--pcs", "0", "--out", str(out)],
                           env={"WORKBENCH_CACHE": os.environ["WORKBENCH_CACHE"]})
    assert r.exit_code == 0, r.output
    assert "ldl_cholesterol (linear)" in r.output and "lambda GC" in r.output
    assert "warning: < 20 rows of pheno.tsv are not samples" in r.output
    assert {"results.parquet", "qc.json", "manhattan.html", "qq.html", "report.html"} <= {
        p.name for p in out.iterdir()}
    qc = json.loads((out / "qc.json").read_text())
    assert qc["covariates"] == ["age", "older"]
    numeric = run_gwas_on_files(vcf=vcf, phenotypes=pheno / "pheno.tsv", sample_column="IID",
                                trait="ldl_cholesterol", covariates=["age", "older01"], pcs=0,
                                out=tmp_path / "numeric")
    ours = pl.read_parquet(out / "results.parquet")
    diff = _max_log10p_diff(ours, numeric.result.results)
    print(f"max |-log10 p| difference, boolean vs 0/1 covariate: {diff:.2e}")
    assert diff < 1e-9


@pytest.mark.parametrize("args,message", [
    ([], "give exactly one of DEFINITION"),
    (["examples/ldl_screened.json", "--vcf", "x.vcf.bgz"], "give exactly one of DEFINITION"),
    (["--vcf", "x.vcf.bgz", "--bfile", "x"], "give exactly one of DEFINITION"),
    (["--vcf", "x.vcf.bgz"], "need --phenotypes TABLE and --sample-column"),
    (["examples/ldl_screened.json", "--sample-column", "IID"], "go with --vcf/--bfile"),
])
def test_cli_refuses_unclear_inputs(args, message, tmp_path):
    r = CliRunner().invoke(app, ["gwas", *args, "--trait", "ldl", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and message in r.output, r.output
    assert not (tmp_path / "o").exists()


def test_cli_names_a_missing_column(hail_session, pheno, small_release, tmp_path):
    r = CliRunner().invoke(app, ["gwas", "--vcf",
                                 str(small_release / "genotypes/variants.vcf.bgz"),
                                 "--phenotypes", str(pheno / "pheno.tsv"), "--sample-column",
                                 "IID", "--trait", "hdl", "--out", str(tmp_path / "o")],
                           env={"WORKBENCH_CACHE": os.environ["WORKBENCH_CACHE"]})
    assert r.exit_code == 2
    assert "error: pheno.tsv has no column 'hdl'" in r.output
    assert "hint: columns there: IID, ldl_cholesterol, age, female, older" in r.output


def test_bad_line_deep_in_a_vcf_names_the_file_not_a_jvm_trace(hail_session, tmp_path):
    """QUAL 'abc' on line 1,504: the pre-check reads 1,000 lines, Hail finds it."""
    from genomics.store import import_vcf, store_dir

    lines = ["##fileformat=VCFv4.2", "##FORMAT=<ID=GT,Number=1,Type=String,Description=\"GT\">",
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ts1\ts2"]
    for i in range(1_500):
        qual = "abc" if i == 1_500 - 1 else "."
        lines.append(f"chr1\t{100 + i}\t.\tA\tC\t{qual}\tPASS\t.\tGT\t0/1\t1/1")
    vcf = tmp_path / "deep_bad.vcf"
    vcf.write_text("\n".join(lines) + "\n")
    before = set(store_dir().glob("*"))
    with pytest.raises(GenotypeInputError) as info:
        import_vcf(vcf)
    err = info.value
    assert isinstance(err, WorkbenchError)
    assert "Hail could not import deep_bad.vcf" in err.message
    assert 'For input string: "abc"' in err.message
    assert "offending line" in err.message and "chr1 1599 . A C abc" in err.message
    assert "Java stack trace" not in str(err) and "\tat " not in str(err)
    assert type(err.__cause__).__name__ == "FatalError"
    assert set(store_dir().glob("*")) == before          # nothing half-written is left
