"""Sample and variant QC, principal components and (optionally) relatedness, in Hail.

Defaults (every one a keyword argument of :func:`run_qc`):

- samples: call rate >= 0.97; heterozygosity (het/hom-var ratio) within 4 SD of the
  mean; genetic sex (X-chromosome F from ``hl.impute_sex``) agrees with the recorded sex
  (``female`` column field) -- samples of undetermined genetic sex are kept;
- variants (on the samples kept): call rate >= 0.95; minor allele frequency >= 0.01 and
  minor allele count >= 20; Hardy-Weinberg p >= 1e-6 (non-PAR X: females only);
- relatedness (off by default): KING kinship > 0.0884 (third degree) removes a maximal
  independent set's complement.

Each step's removals are counted (``QCResult.steps``) for ``qc.json``.

>>> QCParams().min_sample_call_rate
0.97
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go
import polars as pl

if TYPE_CHECKING:
    import hail as hl


@dataclass(frozen=True)
class QCParams:
    """QC thresholds (see the module docstring)."""

    min_sample_call_rate: float = 0.97
    het_sd: float = 4.0
    sex_check: bool = True
    min_variant_call_rate: float = 0.95
    min_maf: float = 0.01
    min_mac: int = 20
    min_hwe_p: float = 1e-6
    relatedness: bool = False
    max_kinship: float = 0.0884


@dataclass
class QCResult:
    """The MatrixTable after QC and what each step removed."""

    mt: hl.MatrixTable
    steps: list[dict[str, Any]] = field(default_factory=list)
    params: QCParams = field(default_factory=QCParams)

    def to_json(self) -> dict[str, Any]:
        return {"params": asdict(self.params), "steps": self.steps}


def run_qc(mt: hl.MatrixTable, params: QCParams | None = None) -> QCResult:
    """Sample QC, then variant QC on the kept samples (then relatedness, if asked).

    Per-sample and per-variant statistics are computed in one pass each and the filtered
    MatrixTable is checkpointed (Hail temp dir), so PCA and association read it directly.
    """
    import hail as hl

    p = params or QCParams()
    res = QCResult(mt, [], p)
    mt = mt.checkpoint(hl.utils.new_temp_file("qc-input", "mt"))
    n_variants, n_samples = mt.count()
    res.steps.append({"step": "input", "samples": n_samples, "variants": n_variants})

    cols = hl.sample_qc(mt, name="sqc").cols()
    cols = cols.select(call_rate=cols.sqc.call_rate, het=cols.sqc.r_het_hom_var,
                       female=cols.female if "female" in cols.row else hl.missing(hl.tfloat64))
    sq = pl.from_pandas(cols.to_pandas())
    cr_bad = sq["call_rate"] < p.min_sample_call_rate
    res.steps.append({"step": f"sample call rate < {p.min_sample_call_rate}",
                      "samples_removed": int(cr_bad.sum())})
    sq = sq.filter(~cr_bad)
    mean, sd = sq["het"].mean(), sq["het"].std()
    het_bad = (sq["het"] - mean).abs() > p.het_sd * sd
    res.steps.append({"step": f"heterozygosity beyond {p.het_sd} SD",
                      "samples_removed": int(het_bad.sum())})
    sq = sq.filter(~het_bad)
    if p.sex_check and sq["female"].is_not_null().any() and _has_chrx(mt):
        x = mt.filter_rows(mt.locus.in_x_nonpar())
        x = x.filter_cols(hl.literal(set(sq["s"].to_list())).contains(x.s))
        sex = pl.from_pandas(hl.impute_sex(x.GT).select("is_female").to_pandas())
        sq = sq.join(sex, on="s", how="left")
        mismatch = (sq["is_female"].is_not_null() & sq["female"].is_not_null()
                    & (sq["is_female"] != (sq["female"] == 1.0)))
        res.steps.append({"step": "genetic sex differs from recorded sex",
                          "samples_removed": int(mismatch.sum())})
        sq = sq.filter(~mismatch)
    mt = mt.filter_cols(hl.literal(set(sq["s"].to_list())).contains(mt.s))

    mt = hl.variant_qc(mt, name="vqc")
    checks = [(f"variant call rate < {p.min_variant_call_rate}",
               mt.vqc.call_rate >= p.min_variant_call_rate),
              (f"MAF < {p.min_maf} or MAC < {p.min_mac}",
               (hl.min(mt.vqc.AF) >= p.min_maf) & (hl.min(mt.vqc.AC) >= p.min_mac)),
              (f"HWE p < {p.min_hwe_p}", _hwe_p(mt) >= p.min_hwe_p)]
    flags = {f"ok{i}": hl.coalesce(cond, False) for i, (_, cond) in enumerate(checks)}
    rows = mt.select_rows(**flags).rows().checkpoint(hl.utils.new_temp_file("qc-rows", "ht"))
    # sequential counts: each step counts variants failing it among those passing before
    passed = hl.literal(True)
    seq = []
    for i in range(len(checks)):
        seq.append(hl.agg.count_where(passed & ~rows[f"ok{i}"]))
        passed = passed & rows[f"ok{i}"]
    for (name, _), n in zip(checks, rows.aggregate(hl.tuple(seq)), strict=True):
        res.steps.append({"step": name, "variants_removed": n})
    keep = rows.filter(passed)
    mt = mt.drop("vqc")
    mt = mt.semi_join_rows(keep)
    if p.relatedness:
        mt, n_rel = _drop_related(mt, p.max_kinship)
        res.steps.append({"step": f"kinship > {p.max_kinship}", "samples_removed": n_rel})
    mt = mt.checkpoint(hl.utils.new_temp_file("qc-output", "mt"))
    n_variants, n_samples = mt.count()
    res.steps.append({"step": "after QC", "samples": n_samples, "variants": n_variants})
    res.mt = mt
    return res


def _hwe_p(mt: hl.MatrixTable) -> hl.Float64Expression:
    """Hardy-Weinberg exact-test p: all samples on autosomes (and the PARs), females only
    on the non-PAR X (males carry one X; their calls would fail HWE everywhere)."""
    import hail as hl

    every = hl.agg.hardy_weinberg_test(mt.GT).p_value
    if "female" not in mt.col:
        return every
    females = hl.agg.filter(mt.female == 1.0, hl.agg.hardy_weinberg_test(mt.GT)).p_value
    return hl.if_else(mt.locus.in_x_nonpar(), females, every)


def _has_chrx(mt: hl.MatrixTable) -> bool:
    import hail as hl

    return bool(mt.aggregate_rows(hl.agg.any(mt.locus.in_x_nonpar() | mt.locus.in_x_par())))


def _drop_related(mt: hl.MatrixTable, max_kinship: float) -> tuple[hl.MatrixTable, int]:
    import hail as hl

    kin = hl.king(mt.GT)
    pairs = kin.filter_entries((kin.phi > max_kinship) & (kin.s_1 != kin.s)).entries()
    pairs = pairs.select(i=pairs.s_1, j=pairs.s).key_by()
    pairs = pairs.filter(pairs.i < pairs.j)
    drop = hl.maximal_independent_set(pairs.i, pairs.j, keep=False)
    n = drop.count()
    return mt.filter_cols(hl.is_defined(drop.key_by(s=drop.node)[mt.s]), keep=False), n


def pca(mt: hl.MatrixTable, k: int = 10, *, min_maf: float = 0.05,
        max_variants: int = 10_000) -> hl.Table:
    """Top ``k`` principal components (``hl.hwe_normalized_pca``) of common autosomal
    variants, thinned evenly to at most ``max_variants``; a Table keyed by ``s`` with
    fields pc1..pck.

    The PCA input is checkpointed with one partition per core: the eigen-solver makes one
    Spark job per iteration, and on a few cores fewer, larger partitions run 2-4x faster.
    """
    import hail as hl

    from genomics.session import init

    cores = init().cores
    af = hl.agg.mean(mt.GT.n_alt_alleles()) / 2
    common = mt.filter_rows((hl.min(af, 1 - af) >= min_maf) & mt.locus.in_autosome())
    common = common.select_cols().select_rows().add_row_index("wb_i")
    common = common.checkpoint(hl.utils.new_temp_file("pca-common", "mt"))
    n = common.count_rows()
    if n > max_variants:
        step = -(-n // max_variants)
        common = common.filter_rows(common.wb_i % step == 0)
    common = common.naive_coalesce(cores).checkpoint(hl.utils.new_temp_file("pca-input", "mt"))
    _, scores, _ = hl.hwe_normalized_pca(common.GT, k=k, compute_loadings=False)
    return scores.select(**{f"pc{i + 1}": scores.scores[i] for i in range(k)})


def pca_scatter(scores: pl.DataFrame, *, x: str = "pc1", y: str = "pc2",
                color: str | None = None, title: str = "Principal components") -> go.Figure:
    """A plotly scatter of two PCs (one trace per value of ``color``, if given)."""
    fig = go.Figure()
    groups = scores.partition_by(color, as_dict=True) if color else {("all",): scores}
    for key, g in groups.items():
        fig.add_trace(go.Scattergl(x=g[x].to_list(), y=g[y].to_list(), mode="markers",
                                   name=str(key[0]), marker={"size": 4, "opacity": 0.6}))
    fig.update_layout(title=title, xaxis_title=x.upper(), yaxis_title=y.upper(),
                      template="plotly_white", showlegend=color is not None)
    return fig
