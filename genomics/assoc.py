"""Association tests in Hail: linear (quantitative) and logistic, Wald or Firth (binary).

``gwas(mt, trait, covariates)`` regresses the trait (a column field) on each variant's
alternate-allele count with an intercept and the covariates (column fields, e.g. age,
female, pc1..pc10). Samples missing the trait or any covariate are left out; a missing
genotype is replaced by the variant's mean (Hail's rule). The result holds the Hail
Table and a Polars DataFrame with the columns of ``RESULT_COLUMNS`` (``t_stat`` for
linear, ``z_stat`` for logistic Wald, ``chi_sq_stat`` for Firth), lambda GC and the top
hits.

>>> RESULT_COLUMNS["linear"][-2:]
['t_stat', 'p_value']
"""

from __future__ import annotations

import gzip
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import polars as pl

from genomics.stats import GENOME_WIDE, lambda_gc
from workbench.errors import UsageError

if TYPE_CHECKING:
    import hail as hl

Model = Literal["linear", "logistic"]
Test = Literal["wald", "firth"]
_BASE = ["chrom", "pos", "ref", "alt", "n", "beta", "se"]
RESULT_COLUMNS = {"linear": [*_BASE, "t_stat", "p_value"],
                  "wald": [*_BASE, "z_stat", "p_value"],
                  "firth": [*_BASE, "chi_sq_stat", "p_value"]}


@dataclass
class GwasResult:
    """Per-variant results (Hail and Polars), the model, and the genomic inflation."""

    ht: hl.Table
    results: pl.DataFrame
    model: str
    trait: str
    covariates: list[str]
    n_samples: int

    @property
    def lambda_gc(self) -> float:
        return lambda_gc(self.results["p_value"].to_numpy())

    def top_hits(self, n: int = 20, *, threshold: float | None = GENOME_WIDE) -> pl.DataFrame:
        """The ``n`` smallest p-values (below ``threshold`` when given)."""
        df = self.results.drop_nulls("p_value").sort("p_value")
        if threshold is not None:
            df = df.filter(pl.col("p_value") < threshold)
        return df.head(n)


def gwas(mt: hl.MatrixTable, trait: str, covariates: list[str], *,
         model: Model = "linear", test: Test = "wald", block_size: int = 16) -> GwasResult:
    """Association of ``trait`` with each variant (see the module docstring)."""
    import hail as hl

    missing = [f for f in [trait, *covariates] if f not in mt.col]
    if missing:
        raise UsageError(f"gwas: no column field(s) {', '.join(missing)} on the MatrixTable",
                         hint=f"fields present: {', '.join(mt.col)}; link phenotypes with "
                              "genomics.link.link(fields=...) and PCs with genomics.qc.pca")
    complete = hl.is_defined(mt[trait])
    for c in covariates:
        complete &= hl.is_defined(mt[c])
    mt = mt.filter_cols(complete)
    n_samples = mt.count_cols()
    if n_samples <= len(covariates) + 2:
        raise UsageError(f"gwas: only {n_samples} samples have {trait} and every covariate",
                         hint="check the trait name and the cohort size")
    x = mt.GT.n_alt_alleles()
    covs = [1.0, *[mt[c] for c in covariates]]
    if model == "linear":
        ht = hl.linear_regression_rows(y=mt[trait], x=x, covariates=covs,
                                       block_size=block_size, pass_through=[])
        ht = ht.select(n=ht.n, beta=ht.beta, se=ht.standard_error, t_stat=ht.t_stat,
                       p_value=ht.p_value)
        kind = "linear"
    elif model == "logistic":
        values = mt.aggregate_cols(hl.agg.collect_as_set(mt[trait]))
        if not values <= {0.0, 1.0} or len(values) < 2:
            raise UsageError(f"gwas: logistic regression needs a 0/1 trait; {trait} has "
                             f"values {sorted(values)[:5]}",
                             hint="use model='linear' for a quantitative trait")
        n_called = mt.annotate_rows(n=hl.agg.count_where(hl.is_defined(mt.GT))).rows()
        ht = hl.logistic_regression_rows(test=test, y=mt[trait], x=x, covariates=covs,
                                         pass_through=[])
        ht = ht.annotate(n=n_called[ht.key].n)
        if test == "wald":
            ht = ht.select(n=ht.n, beta=ht.beta, se=ht.standard_error, z_stat=ht.z_stat,
                           p_value=ht.p_value)
        else:
            ht = ht.select(n=ht.n, beta=ht.beta, se=hl.missing(hl.tfloat64),
                           chi_sq_stat=ht.chi_sq_stat, p_value=ht.p_value)
        kind = test
    else:
        raise UsageError(f"gwas: unknown model {model!r}", hint="use 'linear' or 'logistic'")
    return GwasResult(ht, to_polars(ht, kind), kind, trait, list(covariates), n_samples)


def to_polars(ht: hl.Table, kind: str) -> pl.DataFrame:
    """Results with the columns of ``RESULT_COLUMNS[kind]``, through a bgzipped TSV."""
    flat = ht.key_by()
    flat = flat.select(
        chrom=flat.locus.contig, pos=flat.locus.position, ref=flat.alleles[0],
        alt=flat.alleles[1], **{c: flat[c] for c in RESULT_COLUMNS[kind][4:]})
    with tempfile.TemporaryDirectory(prefix="wb-gwas-") as tmp:
        path = str(Path(tmp) / "results.tsv.bgz")
        flat.export(path)
        schema = {"chrom": pl.Utf8, "pos": pl.Int64, "ref": pl.Utf8, "alt": pl.Utf8,
                  "n": pl.Int64, **{c: pl.Float64 for c in RESULT_COLUMNS[kind][5:]}}
        with gzip.open(path, "rb") as f:
            return pl.read_csv(f.read(), separator="\t", schema=schema, null_values=["NA"])
