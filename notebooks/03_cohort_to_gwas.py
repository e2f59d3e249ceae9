# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 From a cohort to a GWAS: LDL cholesterol and type 2 diabetes
#
# The flagship study of `make demo`, step by step, sharing one QC and one PCA between the
# two traits: adults with a screening LDL (index: the first one) -> consented genomes ->
# sample and variant QC -> principal components -> GWAS of LDL (linear) and of type 2
# diabetes (logistic Wald; cases: anyone with a T2D record), covariates age, sex and the
# PCs. On the synthetic release the planted causal variants are in the release manifest;
# we check which ones reached genome-wide significance.

# %% tags=["parameters"]
import os

RELEASE = os.environ.get("WORKBENCH_RELEASE", "")
PCS = 10           # principal components as covariates (the tests use fewer)

# %%
import polars as pl

from cohort.engine import run
from cohort.io import load
from genomics import plots
from genomics.assoc import gwas
from genomics.flagship import EXAMPLES
from genomics.link import link
from genomics.qc import pca, run_qc
from genomics.session import init
from genomics.stats import GENOME_WIDE
from genomics.store import release_genotypes
from workbench import catalog, runrecord

release = RELEASE or runrecord.release_path()
cat = catalog.open(release)
rec = runrecord.start(cat)
session = init()                   # one Hail per kernel: local[cores], half the memory
rec.seed("hail_global_seed", 42)   # genomics.session.init's default
print(f"release {cat.release_id}; Hail on {session.master}, driver {session.driver_memory}")

# %% [markdown]
# ## The study cohort and the T2D cases

# %%
study = load(EXAMPLES / "ldl_screened.json")
cases = load(EXAMPLES / "t2d_cases.json")
rec.definition(study, name="study")
rec.definition(cases, name="cases")
members = run(study, cat).members
case_members = run(cases, cat).members
print(f"{run(study, cat).count} persons in the study cohort")

# %% [markdown]
# ## Linked to consented genomes
# Persons lost at each step (withdrawn consent removes a person here too).

# %%
covariates = ["age", "female"]
linked = link(members, cat, release_genotypes(cat),
              fields=["ldl_cholesterol", *covariates], cases=case_members)
runrecord.record("linked_persons", linked.step_persons[-1])
linked.report

# %% [markdown]
# ## QC and principal components (shared by both traits)

# %%
qc = run_qc(linked.mt)
qc_steps = pl.DataFrame([{"step": s["step"], "removed": s.get("samples_removed",
                          s.get("variants_removed"))} for s in qc.steps[:-1]])
n_variants, n_samples = qc.mt.count()
runrecord.record("after_qc", {"samples": n_samples, "variants": n_variants})
scores = pca(qc.mt, k=PCS)
analysed = qc.mt.annotate_cols(**scores[qc.mt.s])
pcs = [f"pc{i + 1}" for i in range(PCS)]
print(f"after QC: {n_samples:,} samples x {n_variants:,} variants; {PCS} PCs")
qc_steps

# %% [markdown]
# ## The two GWAS

# %%
ldl = gwas(analysed, "ldl_cholesterol", [*covariates, *pcs], model="linear")
t2d = gwas(analysed, "case", [*covariates, *pcs], model="logistic", test="wald")
for name, res in (("ldl", ldl), ("t2d", t2d)):
    hits = res.top_hits(10**7).height
    print(f"{name}: {res.n_samples:,} samples, lambda GC {res.lambda_gc:.3f}, "
          f"{hits} variants at p < 5e-8")
    runrecord.record(f"{name}_lambda_gc", round(res.lambda_gc, 4), tolerance=0.002)
    runrecord.record(f"{name}_hits", hits)
_ = runrecord.record("samples_analysed", ldl.n_samples)

# %% [markdown]
# ### Manhattan and QQ plots

# %%
# every variant with p < 1e-5 is drawn; the rest thinned, to keep the notebook small
for res, title in ((ldl, "LDL cholesterol"), (t2d, "Type 2 diabetes")):
    plots.manhattan(res.results, max_points=3_000,
                    title=f"{title}: Manhattan").show(renderer="plotly_mimetype")
    plots.qq(res.results, max_points=1_500, title=f"{title}: QQ").show(renderer="plotly_mimetype")

# %% [markdown]
# ## The planted truth: which causal variants were found?
# A planted variant is found when it reaches p < 5e-8; a hit outside every planted LD
# block would be a false positive.

# %%
truth = cat.manifest["truth"]


def planted(res, key):
    variants = pl.DataFrame(truth[key]["variants"])
    effect = "beta" if "beta" in variants.columns else "log_hr"   # LDL: mg/dL; T2D: log HR
    variants = variants.select("chrom", "pos", "ref", "alt", pl.col(effect).alias("true_effect"),
                               "ld_block_start", "ld_block_end")
    found = variants.join(res.results.select("chrom", "pos", "ref", "alt", "beta", "se",
                                             "p_value"),
                          on=["chrom", "pos", "ref", "alt"], how="left")
    return found.with_columns(found=pl.col("p_value") < GENOME_WIDE).sort("chrom", "pos")


def outside_blocks(res, key):
    hits = res.results.filter(pl.col("p_value") < GENOME_WIDE)
    inside = pl.lit(False)
    for v in truth[key]["variants"]:
        inside = inside | ((pl.col("chrom") == v["chrom"])
                           & pl.col("pos").is_between(v["ld_block_start"], v["ld_block_end"]))
    return hits.filter(~inside).height


summary = []
for name, res, key in (("ldl", ldl, "ldl_cholesterol"), ("t2d", t2d, "t2d")):
    table = planted(res, key)
    runrecord.record(f"{name}_planted", table.select(
        "chrom", "pos", "found", pl.col("beta").round(4),
        (-pl.col("p_value").log10()).round(3).alias("neg_log10_p")), tolerance=0.01)
    summary.append({"trait": name, "planted": table.height,
                    "found": int(table["found"].fill_null(False).sum()),
                    "hits_outside_blocks": outside_blocks(res, key)})
summary = pl.DataFrame(summary)
runrecord.record("truth_found", summary)
summary

# %%
planted(ldl, "ldl_cholesterol").select("chrom", "pos", "true_effect", "beta", "se",
                                       "p_value", "found")

# %%
cat.close()
