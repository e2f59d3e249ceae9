"""A whole GWAS: cohort (or your own files) -> genomes -> QC -> PCs -> association.

Two ways in, one way through. ``run_gwas`` starts from a cohort definition on a release:
members are linked to consented samples of the release's VCF (:mod:`genomics.link`).
``run_gwas_on_files`` starts from your own data, no release needed: a VCF (bgzip) or PLINK
files plus a phenotype table (TSV, CSV or Parquet; :mod:`genomics.phenotypes`). Both then
run the same core, QC -> PCA -> association -> files, and write into ``out``:

- ``results.parquet``: chrom, pos, ref, alt, n, beta, se, t_stat (linear) or z_stat
  (logistic Wald) or chi_sq_stat (Firth), p_value;
- ``qc.json``: how the samples were found (``link``: persons lost per step; or
  ``phenotypes``: rows of the table matched to the genotypes, samples missing the trait),
  every count through the small-cell policy; every QC step's removals, the parameters,
  lambda GC, the top hits and any warnings;
- ``manhattan.html``, ``qq.html``, ``pca.html`` and ``report.html`` (self-contained).

On a release the trait is a phenotype name (``ldl_cholesterol``, ``bmi``, ``age``...) for
a linear model, or a second cohort definition (a JSON path) whose members are the cases
for a logistic one (everyone else in the study cohort is a control). With your own files
the trait is a column: boolean or 0/1 means logistic, any other number linear (``model``
overrides). There, samples missing the trait are dropped before QC.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import plotly.graph_objects as go
import polars as pl
from plotly.offline import get_plotlyjs

from cohort import model as m
from cohort.engine import run
from cohort.governance import cell
from cohort.privacy import SmallCellPolicy
from genomics.assoc import GwasResult, Test, gwas
from genomics.link import Linked, link
from genomics.phenotypes import Model, Phenotypes
from genomics.qc import QCParams, QCResult, pca, pca_scatter, run_qc
from workbench import access, audit
from workbench.catalog import Catalog
from workbench.errors import GenotypeInputError, UsageError

if TYPE_CHECKING:
    import hail as hl

Say = Callable[[str], None]


@dataclass
class Study:
    """Everything a GWAS run produced (the files are in ``out``): how the samples were
    found (``linked`` on a release, ``phenotypes`` with your own files), QC, results."""

    qc: QCResult
    result: GwasResult
    out: Path
    pcs: Any = None           # Hail Table of pc1..pcK keyed by s, when PCs were used
    linked: Linked | None = None
    phenotypes: Phenotypes | None = None
    genotypes: str | None = None             # the VCF / PLINK file, for your own data
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TraitSpec:
    """One GWAS of a shared run (:func:`run_gwas_traits`): a phenotype name (linear), or a
    case cohort (logistic; ``trait`` then only names it), written into ``out``."""

    trait: str
    out: Path | str
    cases: m.Cohort | m.CohortSet | None = None


def run_gwas(definition: m.Cohort | m.CohortSet, cat: Catalog, *, trait: str,
             covariates: list[str], pcs: int = 10, out: Path | str,
             cases: m.Cohort | m.CohortSet | None = None, test: Test = "wald",
             qc_params: QCParams | None = None, policy: SmallCellPolicy | None = None,
             progress: Say | None = None, warn: Say | None = None,
             engine: Literal["duckdb", "spark"] | None = None) -> Study:
    """Cohort -> GWAS, files written atomically into ``out`` (see the module docstring).

    ``warn`` hears warnings as they arise (they are also in ``Study.warnings`` and
    ``qc.json``); counts in them pass the small-cell policy. ``engine`` runs the cohort
    (:func:`cohort.engine.run`; default $WORKBENCH_ENGINE, else duckdb): "spark" runs it in
    Hail's own Spark session (and cluster).
    """
    (study,) = run_gwas_traits(definition, cat, [TraitSpec(trait, out, cases)],
                               covariates=covariates, pcs=pcs, test=test, qc_params=qc_params,
                               policy=policy, progress=progress, warn=warn, engine=engine)
    return study


def run_gwas_traits(definition: m.Cohort | m.CohortSet, cat: Catalog,
                    traits: list[TraitSpec], *, covariates: list[str], pcs: int = 10,
                    test: Test = "wald", qc_params: QCParams | None = None,
                    policy: SmallCellPolicy | None = None, progress: Say | None = None,
                    warn: Say | None = None,
                    engine: Literal["duckdb", "spark"] | None = None) -> list[Study]:
    """Several GWAS of one cohort sharing the link, QC and PCA (which depend only on the
    cohort's samples): one :class:`Study` per trait, each as :func:`run_gwas` gives it.
    At most one trait may be binary (its cases are the linked ``case`` field).
    The controlled tier only (:mod:`workbench.access`); each GWAS is audited."""
    from genomics.store import release_genotypes

    access.require("controlled", "a GWAS on the release's genomes", catalog=cat)
    say = progress or (lambda _msg: None)
    policy = policy or SmallCellPolicy()
    binary = [t for t in traits if t.cases is not None]
    if not traits or len(binary) > 1:
        raise UsageError(f"run_gwas_traits takes one or more traits, at most one of them "
                         f"binary (got {len(traits)}, {len(binary)} binary)",
                         hint="run the other binary traits in their own call")
    say("running the cohort")
    members = run(definition, cat, policy=policy, engine=engine).members
    if members.height == 0:
        raise UsageError("the cohort is empty; there is nobody to analyse")
    case_members = (run(binary[0].cases, cat, policy=policy, engine=engine).members
                    if binary else None)
    say("loading genotypes (cached MatrixTable)")
    mt = release_genotypes(cat)
    fields = list(dict.fromkeys([*("case" if t.cases is not None else t.trait for t in traits),
                                 "female", *covariates]))
    pheno = [f for f in fields if not f.startswith("pc") or not f[2:].isdigit()]
    say("linking members to consented samples")
    linked = link(members, cat, mt, fields=pheno, cases=case_members, policy=policy)
    with_sample, in_vcf = linked.step_persons[-2], linked.step_persons[-1]
    if in_vcf == 0:
        raise GenotypeInputError(
            f"none of the cohort's {_count(policy, with_sample)} consented members with a "
            "linked sample is in the release's VCF",
            hint="the cohort may be too narrow, or the release's sample links and VCF disagree")
    notes = []
    if with_sample > in_vcf:
        notes.append(f"{_count(policy, with_sample - in_vcf)} of the cohort's consented "
                     "members with a linked sample are not in the release's VCF; they are "
                     "left out")
    _warn_all(notes, say, warn)
    prepared = _prepare(linked.mt, pcs=pcs, qc_params=qc_params, say=say)
    studies = [_associate(prepared, trait="case" if t.cases is not None else t.trait,
                          covariates=covariates, logistic=t.cases is not None, test=test,
                          out=t.out, policy=policy, say=say, notes=notes, linked=linked)
               for t in traits]
    for t, s in zip(traits, studies, strict=True):
        audit.record("genomics.gwas", release=cat.manifest, definition=definition,
                     project=cat.project, tables=["consent", "sample_link"], sizes={
                         "samples": cell(policy, s.result.n_samples),
                         "variants": s.result.results.height},
                     detail={"trait": t.trait[:200], "cases": t.cases.content_hash()
                             if t.cases is not None else None, "out": str(s.out)[:400]})
    return studies


def run_gwas_on_files(*, phenotypes: Path | str, sample_column: str, trait: str,
                      covariates: list[str], out: Path | str, vcf: Path | str | None = None,
                      bfile: Path | str | None = None, pcs: int = 10, model: Model = "auto",
                      test: Test = "wald", reference: str = "GRCh38",
                      qc_params: QCParams | None = None, policy: SmallCellPolicy | None = None,
                      progress: Say | None = None, warn: Say | None = None) -> Study:
    """Your own genotypes (``vcf``: a VCF, bgzip best; or ``bfile``: a PLINK prefix) and
    phenotype table -> the same QC, PCA, GWAS and files as ``run_gwas``.

    ``sample_column`` holds the VCF's sample names (or the ``.fam`` IIDs); ``trait`` and
    ``covariates`` are columns (numeric or boolean); a column named ``female`` feeds QC's
    genetic-sex check. See :mod:`genomics.phenotypes` for the checks.
    """
    import hail as hl

    from genomics.phenotypes import load
    from genomics.store import import_plink, import_vcf

    say = progress or (lambda _msg: None)
    policy = policy or SmallCellPolicy()
    if (vcf is None) == (bfile is None):
        raise UsageError("give exactly one of a VCF (vcf=) or a PLINK prefix (bfile=)")
    say("loading genotypes (cached MatrixTable)")
    if vcf is not None:
        source = Path(vcf)
        mt = import_vcf(source, reference=reference)
    else:
        source = plink_bed(bfile)
        mt = import_plink(source, reference=reference)
    say("matching the phenotype table to the genotypes' samples")
    pheno = load(phenotypes, sample_column=sample_column, trait=trait, covariates=covariates,
                 genotype_samples=mt.s.collect(), model=model)
    c = pheno.counts
    notes = list(pheno.notes)
    if c["table_only"]:
        notes.append(f"{_count(policy, c['table_only'])} rows of {pheno.source} are not "
                     f"samples in {source.name}; they are left out")
    if c["missing_trait"]:
        notes.append(f"{_count(policy, c['missing_trait'])} samples in {source.name} lack "
                     f"{trait} in {pheno.source}; they are left out")
    ht = pheno.to_hail()
    mt = mt.filter_cols(hl.is_defined(ht[mt.s]))
    mt = mt.annotate_cols(**ht[mt.s])
    return _analyse(mt, trait=trait, covariates=pheno.covariates, pcs=pcs,
                    logistic=pheno.binary, test=test, qc_params=qc_params, out=out,
                    policy=policy, say=say, warn=warn, notes=notes, phenotypes=pheno,
                    genotypes=source.name)


def plink_bed(bfile: Path | str) -> Path:
    """The ``.bed`` of a PLINK prefix (``data/x`` or ``data/x.bed``).

    >>> plink_bed("data/chr22")
    PosixPath('data/chr22.bed')
    """
    bfile = Path(bfile)
    return bfile if bfile.suffix == ".bed" else bfile.with_name(bfile.name + ".bed")


def _analyse(mt: hl.MatrixTable, *, trait: str, covariates: list[str], pcs: int,
             logistic: bool, test: Test, qc_params: QCParams | None, out: Path | str,
             policy: SmallCellPolicy, say: Say, warn: Say | None, notes: list[str],
             linked: Linked | None = None, phenotypes: Phenotypes | None = None,
             genotypes: str | None = None) -> Study:
    """The core both ways in share: QC -> PCA -> association -> files in ``out``."""
    _warn_all(notes, say, warn)
    return _associate(_prepare(mt, pcs=pcs, qc_params=qc_params, say=say), trait=trait,
                      covariates=covariates, logistic=logistic, test=test, out=out,
                      policy=policy, say=say, notes=notes, linked=linked,
                      phenotypes=phenotypes, genotypes=genotypes)


def _warn_all(notes: list[str], say: Say, warn: Say | None) -> None:
    for note in notes:
        if warn is not None:
            warn(note)
        else:
            say(f"warning: {note}")


@dataclass
class _Prepared:
    """QC'd genotypes with the PCs annotated: what every trait of a cohort shares."""

    qc: QCResult
    mt: hl.MatrixTable
    scores: Any
    pc_names: list[str]


def _prepare(mt: hl.MatrixTable, *, pcs: int, qc_params: QCParams | None,
             say: Say) -> _Prepared:
    say("sample and variant QC")
    qc = run_qc(mt, qc_params)
    analysed = qc.mt
    pc_names: list[str] = []
    scores = None
    if pcs:
        say(f"principal components (k={pcs})")
        scores = pca(analysed, k=pcs)
        analysed = analysed.annotate_cols(**scores[analysed.s])
        pc_names = [f"pc{i + 1}" for i in range(pcs)]
    return _Prepared(qc, analysed, scores, pc_names)


def _associate(prep: _Prepared, *, trait: str, covariates: list[str], logistic: bool,
               test: Test, out: Path | str, policy: SmallCellPolicy, say: Say,
               notes: list[str], linked: Linked | None = None,
               phenotypes: Phenotypes | None = None, genotypes: str | None = None) -> Study:
    say(f"association ({trait})")
    result = gwas(prep.mt, trait, [*covariates, *[p for p in prep.pc_names
                                                  if p not in covariates]],
                  model="logistic" if logistic else "linear", test=test)
    study = Study(prep.qc, result, Path(out), prep.scores, linked=linked,
                  phenotypes=phenotypes, genotypes=genotypes, warnings=list(notes))
    say("writing results")
    _write(study, policy)
    return study


def _write(study: Study, policy: SmallCellPolicy) -> None:
    from genomics import plots

    out = study.out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.writing-", dir=out.parent))
    try:
        res = study.result
        res.results.write_parquet(tmp / "results.parquet")
        top = res.top_hits(20)
        qc: dict[str, Any] = {"trait": res.trait, "model": res.model,
                              "covariates": res.covariates,
                              "samples_analysed": json_cell(policy, res.n_samples)}
        if study.linked is not None:
            qc["link"] = study.linked.report.to_dicts()
        if study.phenotypes is not None:
            qc["genotypes"] = study.genotypes
            qc["phenotypes"] = study.phenotypes.to_json(policy)
        qc |= {"qc": _suppressed_steps(study.qc.to_json(), policy),
               "lambda_gc": round(res.lambda_gc, 4), "top_hits": top.to_dicts(),
               "warnings": study.warnings}
        (tmp / "qc.json").write_text(json.dumps(qc, indent=2, default=str))
        figs = {"manhattan": plots.manhattan(res.results, title=f"{res.trait}: Manhattan"),
                "qq": plots.qq(res.results, title=f"{res.trait}: QQ")}
        if study.pcs is not None:
            sdf = pl.from_pandas(study.pcs.to_pandas())
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


def _count(policy: SmallCellPolicy, n: int) -> str:
    """One count in a sentence; a warning states a single count, never a total beside it
    (that could give a suppressed cell back by subtraction)."""
    return policy.format(policy.count(n))


def json_cell(policy: SmallCellPolicy, n: int) -> int | str:
    """A count as it goes into JSON: the number, or its suppressed form ('< 20')."""
    c = policy.count(n)
    return c if isinstance(c, int) else str(c)


def _suppressed_steps(qc: dict[str, Any], policy: SmallCellPolicy) -> dict[str, Any]:
    """Sample counts are counts of persons: the input, each step's removals and the
    output form an attrition chain (intermediate counts unpublished), suppressed so that
    no small removal can be worked out from the others (``SmallCellPolicy.chain``)."""
    steps = [dict(s) for s in qc["steps"]]
    at = [i for i, s in enumerate(steps) if "samples" in s or "samples_removed" in s]
    if not at or "samples" not in steps[at[0]]:
        return {**qc, "steps": steps}
    persons = [int(steps[at[0]]["samples"])]
    for i in at[1:]:
        if "samples_removed" in steps[i]:
            persons.append(persons[-1] - int(steps[i]["samples_removed"]))
    cells, lost = policy.chain(persons, unpublished=range(1, len(persons) - 1))
    k = 0
    for i in at:
        s = steps[i]
        if "samples_removed" in s:
            k += 1
            s["samples_removed"] = _json(lost[k])
        if "samples" in s:
            s["samples"] = _json(cells[0] if i == at[0] else cells[k])
    return {**qc, "steps": steps}


def _json(cell: Any) -> int | str:
    return cell if isinstance(cell, int) else str(cell)


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
             f"{html.escape(', '.join(qc['covariates']))}; lambda GC {qc['lambda_gc']}</p>"]
    if qc.get("warnings"):
        parts.append("<ul>" + "".join(f"<li>warning: {html.escape(w)}</li>"
                                      for w in qc["warnings"]) + "</ul>")
    if "link" in qc:
        parts += ["<h2>Cohort to genomes</h2>", table(qc["link"])]
    if "phenotypes" in qc:
        p = qc["phenotypes"]
        parts += [f"<h2>Phenotype table to genomes</h2><p>{html.escape(p['source'])} "
                  f"(samples in column {html.escape(p['sample_column'])}) matched to "
                  f"{html.escape(str(qc['genotypes']))}</p>", table(p["steps"])]
    parts += ["<h2>Quality control</h2>", table(qc["qc"]["steps"]),
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
