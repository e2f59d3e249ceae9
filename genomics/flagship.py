"""The flagship study that ``make demo`` runs end to end on a release.

Cohort (adults with a screening LDL, index: the first one; ``examples/ldl_screened.json``)
-> consented genomes -> QC -> PCA -> GWAS of LDL (linear) and of type 2 diabetes
(logistic Wald; cases: anyone with a T2D record, ``examples/t2d_cases.json``), covariates
age, sex and 10 PCs. Each GWAS writes its own folder (``results.parquet``, ``qc.json``,
plots, ``report.html``, see :mod:`genomics.study`); ``flagship.html`` puts the two side by
side and, when the release is synthetic, scores them against the planted truth: how many
causal variants reached p < 5e-8, and whether any hit fell outside their LD blocks.

>>> [s.name for s in STUDIES]
['ldl', 't2d']
"""

from __future__ import annotations

import html
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from cohort.io import load
from cohort.privacy import SmallCellPolicy
from genomics.stats import GENOME_WIDE
from workbench.catalog import Catalog
from workbench.errors import UsageError

if TYPE_CHECKING:
    from genomics.study import Study

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@dataclass(frozen=True)
class FlagshipStudy:
    name: str
    title: str
    trait: str                 # phenotype name, or the case definition's file name
    truth_key: str             # the manifest's truth section for this trait
    cases: str | None = None   # case cohort definition (examples/...) for a binary trait


STUDIES = (FlagshipStudy("ldl", "LDL cholesterol (linear)", "ldl_cholesterol",
                         "ldl_cholesterol"),
           FlagshipStudy("t2d", "Type 2 diabetes (logistic Wald)", "t2d", "t2d",
                         cases="t2d_cases.json"))
COHORT = "ldl_screened.json"
COVARIATES = ["age", "female"]


def _example(name: str):
    path = EXAMPLES / name
    if not path.is_file():
        raise UsageError(f"the flagship study's definition {path} is missing",
                         hint="run the demo from a checkout of the repository")
    return load(path)


@dataclass
class Flagship:
    """The summary written to ``flagship.json`` and each study (by name) as run."""

    summary: dict[str, Any]
    studies: dict[str, Study]


def run_flagship(cat: Catalog, out: Path | str, *, pcs: int = 10,
                 progress: Callable[[str], None] | None = None) -> Flagship:
    """Run both studies into ``out/<name>/``, write ``out/flagship.json`` and
    ``out/flagship.html``."""
    from genomics.study import TraitSpec, json_cell, run_gwas_traits

    say = progress or (lambda _msg: None)
    policy = SmallCellPolicy()
    out = Path(out)
    definition = _example(COHORT)
    truth = cat.manifest.get("truth") or {}
    summary: dict[str, Any] = {"release": cat.release_id, "cohort": definition.name,
                               "definition_hash": definition.content_hash(),
                               "covariates": COVARIATES, "pcs": pcs, "studies": []}
    # one link, QC and PCA for both traits: they depend only on the cohort's samples
    say("; ".join(s.title for s in STUDIES))
    specs = [TraitSpec(s.trait, out / s.name, _example(s.cases) if s.cases else None)
             for s in STUDIES]
    done = run_gwas_traits(definition, cat, specs, covariates=COVARIATES, pcs=pcs,
                           policy=policy, progress=say)
    studies: dict[str, Study] = {}
    for s, study in zip(STUDIES, done, strict=True):
        studies[s.name] = study
        res = study.result
        entry = {"name": s.name, "title": s.title, "model": res.model,
                 "samples_analysed": json_cell(policy, res.n_samples),
                 "variants": res.results.height,
                 "lambda_gc": round(res.lambda_gc, 4),
                 "hits": res.top_hits(1_000_000).height,
                 "report": f"{s.name}/report.html"}
        if s.truth_key in truth:
            entry["truth"] = score(res.results, truth[s.truth_key]["variants"])
        summary["studies"].append(entry)
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / "flagship.json", json.dumps(summary, indent=2) + "\n")
    _write_atomic(out / "flagship.html", _html(summary))
    return Flagship(summary, studies)


def score(results: pl.DataFrame, causal: list[dict[str, Any]]) -> dict[str, int]:
    """Planted causal variants found at p < 5e-8, and hits outside every causal LD block.

    >>> df = pl.DataFrame({"chrom": ["1", "1", "2"], "pos": [10, 500, 7],
    ...                    "p_value": [1e-9, 1e-10, 0.5]})
    >>> score(df, [{"chrom": "1", "pos": 10, "ld_block_start": 1, "ld_block_end": 20}])
    {'planted': 1, 'found': 1, 'hits_outside_blocks': 1}
    """
    hits = results.filter(pl.col("p_value") < GENOME_WIDE)
    found = sum(hits.filter((pl.col("chrom") == v["chrom"]) & (pl.col("pos") == v["pos"]))
                .height > 0 for v in causal)
    inside = pl.lit(False)
    for v in causal:
        inside = inside | ((pl.col("chrom") == v["chrom"])
                           & pl.col("pos").is_between(v["ld_block_start"], v["ld_block_end"]))
    outside = hits.filter(~inside).height if causal else hits.height
    return {"planted": len(causal), "found": int(found), "hits_outside_blocks": outside}


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _html(summary: dict[str, Any]) -> str:
    rows = []
    for s in summary["studies"]:
        t = s.get("truth")
        truth = (f"{t['found']} of {t['planted']} planted; {t['hits_outside_blocks']} hits "
                 "outside their LD blocks" if t else "no planted truth in this release")
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
            s["title"], s["samples_analysed"], f"{s['variants']:,}", s["lambda_gc"], s["hits"],
            truth)) + f"<td><a href='{html.escape(s['report'])}'>report</a></td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("study", "samples", "variants", "lambda GC",
                                              "hits p<5e-8", "planted truth", ""))
    style = ("body{font-family:sans-serif;margin:2em;max-width:1100px}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Flagship study</title>"
            f"<style>{style}</style></head><body><h1>Flagship study</h1>"
            f"<p>Release {html.escape(summary['release'])}; cohort "
            f"<b>{html.escape(summary['cohort'])}</b> (definition "
            f"{html.escape(summary['definition_hash'][:12])}); covariates "
            f"{html.escape(', '.join(summary['covariates']))} and {summary['pcs']} PCs.</p>"
            f"<table><tr>{head}</tr>{''.join(rows)}</table>"
            "<p><a href='../release_report.html'>release report</a></p></body></html>")
