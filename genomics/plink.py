"""plink2 on exactly the data a Hail GWAS saw: the cross-check and the benchmark peer.

``export_for_plink2`` writes the analysed MatrixTable as a dosage VCF (DS = alternate
allele count, a missing call replaced by the variant's mean, which is what Hail's
regression uses) with the phenotype and covariates as a plink2 ``--pheno``/``--covar``
file; ``glm`` runs ``plink2 --glm`` and returns its results with our column names.
``export_bed`` writes hard calls as PLINK 1 bed/bim/fam for timing plink2 on its native
format.

>>> glm_command(Path("in.vcf.bgz"), Path("p.tsv"), "y", ["age"], Path("o"), threads=2)[:3]
['plink2', '--vcf', 'in.vcf.bgz']
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from workbench.errors import EnvironmentProblem

if TYPE_CHECKING:
    import hail as hl


def plink2_path() -> str:
    path = shutil.which("plink2")
    if path is None:
        raise EnvironmentProblem("plink2 is not installed",
                                 hint="apt-get install -y plink2 (make test does this as root)")
    return path


def export_for_plink2(mt: hl.MatrixTable, trait: str, covariates: list[str],
                      out: Path) -> tuple[Path, Path]:
    """``out``.vcf.bgz (DS dosages, mean-imputed) and ``out``.pheno.tsv (#IID, trait,
    covariates). Samples missing the trait or a covariate are left out, as in Hail.

    Autosomes only: plink2 codes X dosages by sex (males 0..1), where Hail regresses the
    allele count as called, so the two are not the same model on X.
    """
    import hail as hl

    mt = mt.filter_rows(mt.locus.in_autosome())
    complete = hl.is_defined(mt[trait])
    for c in covariates:
        complete &= hl.is_defined(mt[c])
    mt = mt.filter_cols(complete)
    mt = mt.annotate_rows(wb_mean=hl.agg.mean(mt.GT.n_alt_alleles()))
    mt = mt.select_entries(DS=hl.coalesce(hl.float64(mt.GT.n_alt_alleles()), mt.wb_mean))
    mt = mt.select_rows(rsid=hl.missing(hl.tstr), qual=hl.missing(hl.tfloat64),
                        filters=hl.empty_set(hl.tstr), info=hl.struct())
    vcf = out.parent / f"{out.name}.vcf.bgz"
    hl.export_vcf(mt.select_cols(), str(vcf), tabix=False)
    cols = mt.cols()
    pheno = cols.select(**{trait: cols[trait], **{c: cols[c] for c in covariates}})
    tsv = out.parent / f"{out.name}.pheno.tsv"
    df = pl.from_pandas(pheno.to_pandas()).rename({"s": "#IID"})
    df.write_csv(tsv, separator="\t", null_value="NA")
    return vcf, tsv


def export_bed(mt: hl.MatrixTable, out: Path) -> Path:
    """Hard calls as ``out``.bed/.bim/.fam (IID = sample id); returns the .bed path."""
    import hail as hl

    mt = mt.select_cols().select_rows()
    hl.export_plink(mt, str(out), ind_id=mt.s)
    return out.with_suffix(".bed")


def glm_command(genotypes: Path, pheno: Path, trait: str, covariates: list[str], out: Path,
                *, threads: int, bed: bool = False) -> list[str]:
    """The plink2 --glm command line (linear for a quantitative trait)."""
    source = (["--bfile", str(genotypes.with_suffix(""))] if bed else
              ["--vcf", str(genotypes), "dosage=DS"])
    cmd = ["plink2", *source, "--pheno", str(pheno), "--pheno-name", trait]
    if covariates:
        cmd += ["--covar", str(pheno), "--covar-name", *covariates,
                "--covar-variance-standardize"]
    cmd += ["--glm", "hide-covar", "allow-no-covars", "--output-chr", "chrM",
            "--threads", str(threads),
            "--out", str(out)]
    if bed:
        cmd += ["--allow-extra-chr"]
    return cmd


def glm(genotypes: Path, pheno: Path, trait: str, covariates: list[str], out: Path, *,
        threads: int = 2, bed: bool = False) -> pl.DataFrame:
    """Run plink2 --glm; results as chrom, pos, ref, alt, n, beta, se, t_stat, p_value
    (beta per ALT allele)."""
    cmd = glm_command(genotypes, pheno, trait, covariates, out, threads=threads, bed=bed)
    cmd[0] = plink2_path()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise EnvironmentProblem(f"plink2 failed ({proc.returncode}): "
                                 f"{(proc.stderr or proc.stdout).strip()[-500:]}",
                                 hint=f"see {out}.log")
    result = next(out.parent.glob(f"{out.name}.{trait}.glm.linear"))
    df = pl.read_csv(result, separator="\t", null_values=["NA", "."],
                     infer_schema_length=10_000)
    df = df.rename({df.columns[0]: "CHROM"})
    flip = pl.col("A1") != pl.col("ALT")          # beta counted on the REF allele
    return df.select(
        pl.col("CHROM").cast(pl.Utf8).alias("chrom"), pl.col("POS").alias("pos"),
        pl.col("REF").alias("ref"), pl.col("ALT").alias("alt"),
        pl.col("OBS_CT").alias("n"),
        pl.when(flip).then(-pl.col("BETA")).otherwise(pl.col("BETA")).alias("beta"),
        pl.col("SE").alias("se"),
        pl.when(flip).then(-pl.col("T_STAT")).otherwise(pl.col("T_STAT")).alias("t_stat"),
        pl.col("P").alias("p_value"))
