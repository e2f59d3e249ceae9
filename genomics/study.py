"""A whole GWAS from a cohort definition: members -> genomes -> QC -> PCs -> association.

``run_gwas`` is what ``workbench gwas`` runs. It writes into ``out``:

- ``results.parquet``: chrom, pos, ref, alt, n, beta, se, t_stat (linear) or z_stat
  (logistic Wald) or chi_sq_stat (Firth), p_value;
- ``qc.json``: the link report (persons lost per step, small cells suppressed), every QC
  step's removals, the parameters, lambda GC and the top hits;
- ``manhattan.html``, ``qq.html``, ``pca.html`` and ``report.html`` (self-contained).

The trait is a phenotype name (``ldl_cholesterol``, ``bmi``, ``age``...) for a linear
model, or a second cohort definition (a JSON path) whose members are the cases for a
logistic one (everyone else in the study cohort is a control).
"""

from __future__ import annotations

import html
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import polars as pl
from plotly.offline import get_plotlyjs

from cohort import model as m
from cohort.engine import run
from cohort.privacy import SmallCellPolicy
from genomics.assoc import GwasResult, Test, gwas
from genomics.link import Linked, link
from genomics.qc import QCParams, QCResult, pca, pca_scatter, run_qc
from workbench.catalog import Catalog
from workbench.errors import UsageError


@dataclass
class Study:
    """Everything a GWAS run produced (the files are in ``out``)."""

    linked: Linked
    qc: QCResult
    result: GwasResult
    out: Path
    pcs: Any = None           # Hail Table of pc1..pcK keyed by s, when PCs were used


def run_gwas(definition: m.Cohort | m.CohortSet, cat: Catalog, *, trait: str,
             covariates: list[str], pcs: int = 10, out: Path | str,
             cases: m.Cohort | m.CohortSet | None = None, test: Test = "wald",
             qc_params: QCParams | None = None, policy: SmallCellPolicy | None = None,
             progress=None) -> Study:
    """Cohort -> GWAS, files written atomically into ``out`` (see the module docstring)."""
    from genomics.store import release_genotypes

    say = progress or (lambda _msg: None)
    policy = policy or SmallCellPolicy()
    binary = cases is not None
    trait_field = "case" if binary else trait
    say("running the cohort")
    members = run(definition, cat, policy=policy).members
    if members.height == 0:
        raise UsageError("the cohort is empty; there is nobody to analyse")
    case_members = run(cases, cat, policy=policy).members if binary else None
    say("loading genotypes (cached MatrixTable)")
    mt = release_genotypes(cat)
    fields = list(dict.fromkeys([trait_field, "female", *covariates]))
    pheno = [f for f in fields if not f.startswith("pc") or not f[2:].isdigit()]
    say("linking members to consented samples")
    linked = link(members, cat, mt, fields=pheno, cases=case_members, policy=policy)
    say("sample and variant QC")
    qc = run_qc(linked.mt, qc_params)
    analysed = qc.mt
    pc_names: list[str] = []
    scores = None
    if pcs:
        say(f"principal components (k={pcs})")
        scores = pca(analysed, k=pcs)
        analysed = analysed.annotate_cols(**scores[analysed.s])
        pc_names = [f"pc{i + 1}" for i in range(pcs)]
    say("association")
    result = gwas(analysed, trait_field, [*covariates, *[p for p in pc_names
                                                         if p not in covariates]],
                  model="logistic" if binary else "linear", test=test)
    study = Study(linked, qc, result, Path(out), scores)
    say("writing results")
    _write(study, scores, policy)
    return study


def _write(study: Study, scores, policy: SmallCellPolicy) -> None:
    from genomics import plots

    out = study.out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.writing-", dir=out.parent))
    try:
        res = study.result
        res.results.write_parquet(tmp / "results.parquet")
        top = res.top_hits(20)
        qc = {"trait": res.trait, "model": res.model, "covariates": res.covariates,
              "samples_analysed": _cell(policy, res.n_samples),
              "link": study.linked.report.to_dicts(),
              "qc": _suppressed_steps(study.qc.to_json(), policy),
              "lambda_gc": round(res.lambda_gc, 4), "top_hits": top.to_dicts()}
        (tmp / "qc.json").write_text(json.dumps(qc, indent=2, default=str))
        figs = {"manhattan": plots.manhattan(res.results, title=f"{res.trait}: Manhattan"),
                "qq": plots.qq(res.results, title=f"{res.trait}: QQ")}
        if scores is not None:
            sdf = pl.from_pandas(scores.to_pandas())
            figs["pca"] = pca_scatter(sdf, title="PC1 vs PC2 (samples after QC)")
        for name, fig in figs.items():
            fig.write_html(tmp / f"{name}.html", include_plotlyjs=True, full_html=True)
        (tmp / "report.html").write_text(_report_html(qc, figs, top))
        if out.exists():
            shutil.rmtree(out)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _cell(policy: SmallCellPolicy, n: int) -> int | str:
    c = policy.count(n)
    return c if isinstance(c, int) else str(c)


def _suppressed_steps(qc: dict[str, Any], policy: SmallCellPolicy) -> dict[str, Any]:
    """Sample counts are counts of persons: they pass the small-cell policy."""
    steps = []
    for s in qc["steps"]:
        s = dict(s)
        for k in ("samples", "samples_removed"):
            if k in s:
                s[k] = _cell(policy, int(s[k]))
        steps.append(s)
    return {**qc, "steps": steps}


def _report_html(qc: dict[str, Any], figs: dict[str, go.Figure], top: pl.DataFrame) -> str:
    def table(rows: list[dict[str, Any]]) -> str:
        if not rows:
            return "<p>none</p>"
        head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r.values())
                       + "</tr>" for r in rows)
        return f"<table><tr>{head}</tr>{body}</table>"

    parts = [f"<h1>GWAS of {html.escape(qc['trait'])} ({html.escape(qc['model'])})</h1>",
             f"<p>Samples analysed: {qc['samples_analysed']}; covariates: "
             f"{html.escape(', '.join(qc['covariates']))}; lambda GC {qc['lambda_gc']}</p>",
             "<h2>Cohort to genomes</h2>", table(qc["link"]),
             "<h2>Quality control</h2>", table(qc["qc"]["steps"]),
             "<h2>Top hits (p &lt; 5e-8)</h2>", table(top.to_dicts())]
    for name, fig in figs.items():
        parts.append(f"<h2>{name}</h2>" + fig.to_html(full_html=False, include_plotlyjs=False,
                                                       div_id=name))
    style = ("body{font-family:sans-serif;margin:2em;max-width:1200px}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>GWAS</title>"
            f"<style>{style}</style><script>{get_plotlyjs()}</script></head><body>"
            + "".join(parts) + "</body></html>")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
