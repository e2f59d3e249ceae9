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
    import numpy as np
    import polars as pl

    from cohort.engine import run
    from cohort.io import load
    from genomics import plink
    from genomics.assoc import gwas
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
    n_samples, n_variants = analysed.count()
    gwas_times = []
    for _ in range(2):
        t, res = timed(lambda: gwas(analysed, "ldl_cholesterol", covs))
        gwas_times.append(t)
    tmp = work / f"plink-{samples}x{variants}"
    tmp.mkdir(exist_ok=True)
    # plink2 reads its own format: hard calls as bed -> pgen (missing calls stay missing,
    # so p-values agree closely but not exactly; tests/integration compares exactly)
    bed = plink.export_bed(analysed, tmp / "x")
    pheno = tmp / "x.pheno.tsv"
    cols = analysed.cols()
    pl.from_pandas(cols.select(*["ldl_cholesterol", *covs]).to_pandas()).rename(
        {"s": "#IID"}).write_csv(pheno, separator="\t", null_value="NA")
    threads = str(os.cpu_count() or 2)
    make_s, _ = timed(lambda: subprocess.run(
        ["plink2", "--bfile", str(bed.with_suffix("")), "--make-pgen", "--threads", threads,
         "--output-chr", "chrM", "--out", str(tmp / "x")], check=True, capture_output=True))
    glm_times = []
    for _ in range(2):
        t, _ = timed(lambda: subprocess.run(
            ["plink2", "--pfile", str(tmp / "x"), "--pheno", str(pheno), "--pheno-name",
             "ldl_cholesterol", "--covar", str(pheno), "--covar-name", *covs,
             "--covar-variance-standardize", "--glm", "hide-covar", "--threads", threads,
             "--output-chr", "chrM",
             "--out", str(tmp / "glm")], check=True, capture_output=True))
        glm_times.append(t)
    theirs = pl.read_csv(tmp / "glm.ldl_cholesterol.glm.linear", separator="\t",
                         null_values=["NA", "."])
    theirs = theirs.rename({theirs.columns[0]: "chrom"}).select(
        "chrom", pos="POS", ref="REF", alt="ALT", p2="P")
    both = res.results.join(theirs, on=["chrom", "pos", "ref", "alt"])
    lp, lp2 = -np.log10(both["p_value"].to_numpy()), -np.log10(both["p2"].to_numpy())
    gw, pw = min(gwas_times), min(glm_times)
    return {"samples": samples, "variants": variants, "analysed_samples": n_samples,
            "analysed_variants": n_variants, "hail_import_s": round(import_s, 1),
            "hail_qc_s": round(qc_s, 1), "hail_pca_s": round(pca_s, 1),
            "hail_gwas_s": round(gw, 2), "plink2_make_pgen_s": round(make_s, 1),
            "plink2_glm_s": round(pw, 2), "hail_over_plink2": round(gw / pw, 2),
            "r_log10p": round(float(np.corrcoef(lp, lp2)[0, 1]), 5),
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
             "the QC'd MatrixTable (best of 2). plink2: the same QC'd genotypes exported as "
             "bed and converted to pgen (once), --glm (best of 2), same samples and "
             "covariates (hard calls: plink2 drops a missing call, Hail mean-imputes it).", "",
             "| samples x variants | analysed | Hail import | QC | PCA | Hail GWAS "
             "| plink2 make-pgen | plink2 --glm | Hail / plink2 | r(-log10 p) | lambda GC |",
             "|---" * 11 + "|"]
    for r in rows:
        lines.append(
            f"| {r['samples']:,} x {r['variants']:,} | {r['analysed_samples']:,} x "
            f"{r['analysed_variants']:,} | {r['hail_import_s']} s | {r['hail_qc_s']} s | "
            f"{r['hail_pca_s']} s | {r['hail_gwas_s']} s | {r['plink2_make_pgen_s']} s | "
            f"{r['plink2_glm_s']} s | {r['hail_over_plink2']}x | {r['r_log10p']} | "
            f"{r['lambda_gc']} |")
    text = "\n".join(lines) + "\n"
    (out / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
