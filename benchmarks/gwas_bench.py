"""Benchmark: import + QC + linear GWAS on Hail vs plink2, on the same data, same run.

For each size (samples x variants) a synthetic release is built (once, in
benchmarks/work/), then:

1. Hail: VCF -> cached MatrixTable (``genomics.store``), QC (``genomics.qc``), and the
   linear GWAS of screening LDL on age, sex and 10 PCs on the QC'd MatrixTable;
2. plink2 (Debian's, same 2 cores): VCF -> pgen, then ``--glm`` on the same samples,
   variants, phenotype and covariates (exported from the QC'd MatrixTable).

The target: the Hail GWAS step within 3x plink2's ``--glm`` wall time.

    .venv/bin/python benchmarks/gwas_bench.py --size 5000x100000 --size 20000x100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench(samples: int, variants: int, work: Path) -> dict:
    import hail as hl
    import polars as pl

    from cohort.engine import run
    from cohort.io import load
    from genomics.link import link
    from genomics.qc import pca, run_qc
    from genomics.store import release_genotypes
    from workbench import catalog
    from workbench.synth.build import build_release

    rel = work / f"gwas-{samples}x{variants}"
    if not (rel / "manifest.json").exists():
        build_release(rel, persons=max(20_000, samples * 2), genotyped=samples,
                      variants=variants, seed=42, force=True, progress=True)
    cat = catalog.open(rel)
    import_s, mt = timed(lambda: release_genotypes(cat, refresh=True).count() and
                         release_genotypes(cat))
    members = run(load(HERE.parent / "examples/ldl_screened.json"), cat).members
    linked = link(members, cat, mt, fields=["ldl_cholesterol", "age", "female"])
    qc_s, qc = timed(lambda: run_qc(linked.mt))
    pca_s, scores = timed(lambda: pca(qc.mt, k=10))
    analysed = qc.mt.annotate_cols(**scores[qc.mt.s])
    covs = ["age", "female", *[f"pc{i}" for i in range(1, 11)]]
    analysed = analysed.checkpoint(hl.utils.new_temp_file("bench", "mt"))
    n_variants, n_samples = analysed.count()
    tmp = work / f"plink-{samples}x{variants}"
    tmp.mkdir(exist_ok=True)
    pheno = tmp / "x.pheno.tsv"
    cols = analysed.cols()
    pl.from_pandas(cols.select(*["ldl_cholesterol", *covs]).to_pandas()).rename(
        {"s": "#IID"}).write_csv(pheno, separator="\t", null_value="NA")
    # every missing call filled with the variant's rounded mean: plink2's fast path needs
    # complete genotypes (with missing calls it re-solves the covariates per variant)
    mean = hl.agg.mean(analysed.GT.n_alt_alleles())
    filled = analysed.annotate_rows(wb_k=hl.int(mean + 0.5))
    filled = filled.annotate_entries(GT=hl.coalesce(
        filled.GT, hl.unphased_diploid_gt_index_call(filled.wb_k))).drop("wb_k")
    filled = filled.checkpoint(hl.utils.new_temp_file("bench-filled", "mt"))
    row = {"samples": samples, "variants": variants, "analysed_samples": n_samples,
           "analysed_variants": n_variants, "hail_import_s": round(import_s, 1),
           "hail_qc_s": round(qc_s, 1), "hail_pca_s": round(pca_s, 1)}
    for tag, data in (("missing", analysed), ("complete", filled)):
        row |= {f"{k}_{tag}": v for k, v in _versus_plink2(data, covs, pheno, tmp, tag).items()}
    return row


def _versus_plink2(mt, covs: list[str], pheno: Path, tmp: Path, tag: str) -> dict:
    """Hail GWAS on ``mt`` (best of 2) vs plink2 --glm on the same calls (best of 2)."""
    import numpy as np
    import polars as pl

    from genomics import plink
    from genomics.assoc import gwas

    gwas_times = []
    for _ in range(2):
        t, res = timed(lambda: gwas(mt, "ldl_cholesterol", covs))
        gwas_times.append(t)
    bed = plink.export_bed(mt, tmp / tag)
    threads = str(os.cpu_count() or 2)
    make_s, _ = timed(lambda: subprocess.run(
        ["plink2", "--bfile", str(bed.with_suffix("")), "--make-pgen", "--threads", threads,
         "--output-chr", "chrM", "--out", str(tmp / tag)], check=True, capture_output=True))
    glm_times = []
    for _ in range(2):
        t, _ = timed(lambda: subprocess.run(
            ["plink2", "--pfile", str(tmp / tag), "--pheno", str(pheno), "--pheno-name",
             "ldl_cholesterol", "--covar", str(pheno), "--covar-name", *covs,
             "--covar-variance-standardize", "--glm", "hide-covar", "--threads", threads,
             "--output-chr", "chrM", "--out", str(tmp / f"glm-{tag}")],
            check=True, capture_output=True))
        glm_times.append(t)
    theirs = pl.read_csv(tmp / f"glm-{tag}.ldl_cholesterol.glm.linear", separator="\t",
                         null_values=["NA", "."])
    theirs = theirs.rename({theirs.columns[0]: "chrom"}).select(
        "chrom", pos="POS", ref="REF", alt="ALT", p2="P")
    both = res.results.join(theirs, on=["chrom", "pos", "ref", "alt"])
    lp, lp2 = -np.log10(both["p_value"].to_numpy()), -np.log10(both["p2"].to_numpy())
    gw, pw = min(gwas_times), min(glm_times)
    return {"hail_gwas_s": round(gw, 2), "plink2_make_pgen_s": round(make_s, 1),
            "plink2_glm_s": round(pw, 2), "hail_over_plink2": round(gw / pw, 2),
            "r_log10p": round(float(np.corrcoef(lp, lp2)[0, 1]), 6),
            "variants_compared": both.height, "lambda_gc": round(res.lambda_gc, 3)}


def main() -> None:
    from genomics.session import init

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", action="append", help="SAMPLESxVARIANTS, e.g. 5000x100000")
    ap.add_argument("--work", type=Path, default=HERE / "work")
    args = ap.parse_args()
    init()
    sizes = [tuple(int(v) for v in s.split("x")) for s in (args.size or ["5000x100000"])]
    rows = [bench(n, v, args.work) for n, v in sizes]
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stem = "gwas_" + "_".join(f"{r['samples']}x{r['variants']}" for r in rows)
    (out / f"{stem}.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [f"# Linear GWAS: Hail vs plink2 ({dt.date.today()}, {os.cpu_count()} cores)", "",
             "Trait: screening LDL; covariates age, sex, 10 PCs. Hail times: import = VCF to "
             "cached MatrixTable (once per release), QC, PCA, GWAS = linear_regression_rows on "
             "the QC'd MatrixTable (best of 2). plink2: the same QC'd calls exported as bed and "
             "converted to pgen (once), --glm (best of 2), same samples and covariates. "
             "'missing': the calls as QC left them (plink2 drops a missing call per "
             "variant, Hail mean-imputes it; plink2 then re-solves per variant); "
             "'complete': missing calls filled with the rounded mean, given to both.", "",
             "| samples x variants | analysed (samples x variants) | Hail import | QC | PCA "
             "| calls | Hail GWAS | plink2 --glm | Hail / plink2 | r(-log10 p) | lambda GC |",
             "|---" * 11 + "|"]
    for r in rows:
        for tag in ("missing", "complete"):
            lines.append(
                f"| {r['samples']:,} x {r['variants']:,} | {r['analysed_samples']:,} x "
                f"{r['analysed_variants']:,} | {r['hail_import_s']} s | {r['hail_qc_s']} s | "
                f"{r['hail_pca_s']} s | {tag} | {r['hail_gwas_s_' + tag]} s | "
                f"{r['plink2_glm_s_' + tag]} s | {r['hail_over_plink2_' + tag]}x | "
                f"{r['r_log10p_' + tag]} | {r['lambda_gc_' + tag]} |")
    text = "\n".join(lines) + "\n"
    (out / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
