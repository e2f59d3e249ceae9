"""The ``workbench`` command line.

Errors from bad input print one line (``error: ...``, plus a ``hint:`` line where there is
one) and exit with code 2 for bad arguments, 1 for bad data or environment.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from workbench.errors import UsageError, WorkbenchError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Research workbench for the national bio big-data resource.")
release_app = typer.Typer(no_args_is_help=True, help="Build, inspect and report on releases.")
app.add_typer(release_app, name="release")
cohort_app = typer.Typer(no_args_is_help=True,
                         help="Count, list, describe and compare cohort definitions.")
app.add_typer(cohort_app, name="cohort")
genomics_app = typer.Typer(no_args_is_help=True, help="Genotypes on Hail.")
app.add_typer(genomics_app, name="genomics")
audit_app = typer.Typer(no_args_is_help=True,
                        help="The audit trail: verify its hash chain, show its records.")
app.add_typer(audit_app, name="audit")

DEFAULT_RELEASE = Path("releases/default")
DEFAULT_OUTPUTS = Path("outputs")


def _fail(err: WorkbenchError) -> None:
    typer.echo(f"error: {err.message}", err=True)
    if err.hint:
        typer.echo(f"hint: {err.hint}", err=True)
    raise typer.Exit(2 if isinstance(err, UsageError) else 1)


@release_app.command("synth")
def release_synth(
    out: Path = typer.Option(..., "--out", help="Directory to write the release to."),
    persons: int = typer.Option(20_000, help="Number of persons."),
    genotyped: int = typer.Option(5_000, help="Persons with whole genomes (VCF samples)."),
    variants: int = typer.Option(20_000, help="Variants in the VCF."),
    seed: int = typer.Option(42, help="Random seed; same arguments give identical files."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
    lifelog_days: int | None = typer.Option(
        None, "--lifelog-days", help="Dense lifelog: persons wear a device over the last N "
        "days up to the data cut (default: short wear periods of ~30% of persons)."),
    wearers: float | None = typer.Option(
        None, "--wearers", help="With --lifelog-days: the fraction of persons who wear one "
        "(default 1)."),
) -> None:
    """Build a deterministic synthetic national release."""
    from workbench.synth.build import build_release

    try:
        m = build_release(out, persons=persons, genotyped=genotyped, variants=variants,
                          seed=seed, force=force, progress=not quiet and sys.stderr.isatty(),
                          lifelog_days=lifelog_days, wearers=wearers)
    except WorkbenchError as e:
        _fail(e)
    typer.echo(f"release {m['release_id']} written to {out} "
               f"({m['tables']['person']['rows']:,} persons)")


@release_app.command("load-omop")
def release_load_omop(
    csv_dir: Path = typer.Argument(..., help="Directory of the OMOP CDM CSV export."),
    out: Path = typer.Option(..., "--out", help="Directory to write the release to."),
    base: Path | None = typer.Option(None, "--base", help="Release this export adds to: "
                                     "--out becomes its next version."),
    force: bool = typer.Option(False, "--force", help="Replace the release at --out."),
) -> None:
    """Load an OMOP CDM v5.3/v5.4 CSV export (comma or tab, any header case) into a release."""
    import shutil
    import tempfile

    from workbench.omop_load import load_omop
    from workbench.versions import add_release

    tmp = None
    try:
        if base is None:
            m = load_omop(csv_dir, out, force=force, progress=sys.stderr.isatty())
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.omop-", dir=out.parent))
            loaded = load_omop(csv_dir, tmp / "release", progress=sys.stderr.isatty())
            m = add_release(base, tmp / "release", out, force=force)
            m["warnings"], m["vocabulary"] = loaded["warnings"], "base release"
    except WorkbenchError as e:
        _fail(e)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    for w in m["warnings"]:
        typer.echo(f"warning: {w}", err=True)
    typer.echo(f"release {m['release_id']} written to {out} "
               f"({len(m['tables'])} tables, vocabulary: {m['vocabulary']})")
    if base is not None:
        _echo_changes(m)


@release_app.command("load-fhir")
def release_load_fhir(
    source: Path = typer.Argument(..., help="FHIR NDJSON or Bundle JSON file, or a directory "
                                            "of them (searched recursively)."),
    out: Path = typer.Option(..., "--out", help="Directory to write the release to."),
    base: Path | None = typer.Option(None, "--base", help="Release this batch adds to: "
                                     "--out becomes its next version."),
    workers: int = typer.Option(1, "--workers", help="Processes that validate and map "
                                "(pays only on idle cores)."),
    force: bool = typer.Option(False, "--force", help="Replace the release at --out."),
) -> None:
    """Load FHIR R4 (KR Core) resources into a release; rejected resources are reported
    (OUT/load_report.txt and .json), never silently dropped."""
    from workbench.fhir.load import REPORT_TEXT, load_fhir

    try:
        m = load_fhir(source, out, force=force, progress=sys.stderr.isatty(), base=base,
                      workers=workers)
    except WorkbenchError as e:
        _fail(e)
    c = m["load"] if base is None else m["source"]["load"]
    typer.echo(f"release {m['release_id']} written to {out}: {c['loaded']:,} of "
               f"{c['resources_read']:,} resources loaded, {c['rejected']:,} rejected, "
               f"{c['skipped']:,} skipped, {c['unmapped_codes']:,} unmapped codes")
    if base is not None:
        _echo_changes(m)
    if c["rejected"] or c["skipped"] or c["unmapped_codes"]:
        typer.echo(f"report: {out / REPORT_TEXT}", err=True)


def _echo_changes(m: dict) -> None:
    ch = m["changes"]
    typer.echo(f"version {m['version']} of {m['parent']['release_id']} (version "
               f"{m['parent']['version']}): {ch['persons_added']:,} persons added, "
               f"{ch['persons_withdrawn']:,} withdrawn")
    for name, t in ch["tables"].items():
        typer.echo(f"  {name:<24}{t['added']:>10,} added {t['replaced']:>8,} replaced "
                   f"{t['rows_after']:>12,} rows")


@release_app.command("load-screening")
def release_load_screening(
    files: list[Path] = typer.Argument(..., help="Screening extract CSV file(s) with Korean "
                                                 "headers (개인일련번호, 검진일자, ...)."),
    base: Path = typer.Option(..., "--base", help="Release the rows are added to."),
    out: Path = typer.Option(..., "--out", help="Directory of the new release version."),
    encoding: str | None = typer.Option(None, help="Text encoding (default: UTF-8, then "
                                                   "CP949)."),
    force: bool = typer.Option(False, "--force", help="Replace the release at --out."),
) -> None:
    """Add national health-screening extracts to a release as its next version; bad rows
    are reported with their line numbers (OUT/screening_report.txt)."""
    from workbench.screening_load import load_screening

    try:
        m = load_screening(files, base, out, encoding=encoding, force=force)
    except WorkbenchError as e:
        _fail(e)
    c = m["source"]
    typer.echo(f"release {m['release_id']} written to {out}: {c['loaded']:,} of "
               f"{c['rows_read']:,} screening rows loaded, {c['rejected']:,} rejected")
    _echo_changes(m)
    if c["rejected"]:
        typer.echo(f"report: {out / 'screening_report.txt'}", err=True)


@release_app.command("to-fhir")
def release_to_fhir_cmd(
    release: Path = typer.Argument(..., help="Release directory."),
    out: Path = typer.Option(..., "--out", help="Directory to write the FHIR files to."),
    bundle_size: int = typer.Option(500, "--bundle-size", help="Persons per Bundle."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier export at --out."),
) -> None:
    """Write a release's clinical data as FHIR R4 resources (KR Core style): NDJSON per
    resource type and collection Bundles per group of persons."""
    from workbench.fhir.export import release_to_fhir

    try:
        info = release_to_fhir(release, out, bundle_size=bundle_size, force=force,
                               progress=sys.stderr.isatty())
    except WorkbenchError as e:
        _fail(e)
    total = sum(info["resources"].values())
    typer.echo(f"{total:,} resources of {info['persons']:,} persons written to {out} "
               f"(ndjson/ and bundles/)")


@release_app.command("info")
def release_info(
    release: Path = typer.Argument(..., help="Release directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole manifest as JSON."),
    verify: bool = typer.Option(True, help="Verify files and checksums first."),
) -> None:
    """Print a release's manifest (verified against its files)."""
    from workbench import catalog

    try:
        if verify:
            with catalog.open(release) as cat:
                manifest = cat.manifest
        else:
            manifest = catalog.load_manifest(release.resolve())
    except WorkbenchError as e:
        _fail(e)
    if as_json:
        typer.echo(json.dumps(manifest, indent=2, ensure_ascii=False))
        return
    typer.echo(f"release   {manifest['release_id']}  (version {manifest.get('version')}, "
               f"schema {manifest['schema_version']}, {manifest.get('kind', '?')})")
    typer.echo(f"created   {manifest.get('created')}   seed {manifest.get('seed')}   "
               f"data cut {manifest.get('data_cut')}")
    typer.echo(f"{'table':<24}{'domain':<12}{'rows':>14}  sha256")
    for name, t in manifest["tables"].items():
        typer.echo(f"{name:<24}{t.get('domain', ''):<12}{t['rows']:>14,}  {t['sha256'][:16]}")
    for rel, f in manifest.get("files", {}).items():
        typer.echo(f"{rel:<36}{f['bytes']:>14,} B  {f['sha256'][:16]}")
    if manifest.get("truth"):
        typer.echo("truth     planted effects recorded (use --json to see them)")


@release_app.command("cache")
def release_cache(
    release: Path = typer.Argument(DEFAULT_RELEASE, help="Release directory."),
) -> None:
    """Build the DuckDB-native copy of a release in the workbench cache (once per release).

    Cohort queries then scan DuckDB's own storage instead of Parquet (2-3x faster at a
    million persons); results are identical. It costs disk about equal to the release.
    """
    from workbench import catalog

    try:
        root = release.resolve()
        manifest = catalog.load_manifest(root)
        tables = catalog.check_release(root, manifest)
        db = catalog.build_native_database(root, manifest, tables, progress=True)
    except WorkbenchError as e:
        _fail(e)
    typer.echo(f"native copy: {db} ({db.stat().st_size / 1e6:,.0f} MB)")


@release_app.command("report")
def release_report(
    release: Path = typer.Argument(DEFAULT_RELEASE, help="Release directory."),
    out: Path = typer.Option(DEFAULT_OUTPUTS / "release_report.html", "--out", "-o"),
) -> None:
    """Write the release report (HTML with plotly figures)."""
    from workbench.report import write_release_report

    try:
        path = write_release_report(release, out)
    except WorkbenchError as e:
        _fail(e)
    typer.echo(f"report written to {path.resolve()}")


def _definition(path: Path):
    """Our JSON or ATLAS/Circe JSON (detected)."""
    try:
        from cohort.atlas import load_any
    except ImportError:   # pragma: no cover - atlas support not installed
        from cohort.io import load as load_any
    return load_any(path)


def _cell(cell) -> int | str:
    return cell if isinstance(cell, int) else str(cell)


ENGINE_HELP = ("duckdb, or spark: Spark SQL over the release's Parquet, local or on "
               "$WORKBENCH_SPARK_MASTER (spark://host:7077, yarn); same results. "
               "Default: $WORKBENCH_ENGINE, else duckdb.")


@cohort_app.command("count")
def cohort_count(
    definition: Path = typer.Argument(..., help="Definition JSON (ours or ATLAS)."),
    release: Path = typer.Option(DEFAULT_RELEASE, "--release", help="Release directory."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    engine: str = typer.Option(None, "--engine", help=ENGINE_HELP, show_default=False),
) -> None:
    """Persons in the cohort and the attrition by inclusion rule (small cells hidden)."""
    from cohort.engine import run
    from workbench import catalog

    try:
        d = _definition(definition)
        with catalog.open(release) as cat:
            res = run(d, cat, engine=engine)  # type: ignore[arg-type]
            att = res.attrition
    except WorkbenchError as e:
        _fail(e)
    if as_json:
        typer.echo(json.dumps({
            "count": _cell(res.count), "release_id": res.release_id,
            "definition_hash": d.content_hash(),
            "attrition": [{"rule": r["rule"], "persons": r["persons"]
                           if r["persons"] is not None else r["persons_shown"]}
                          for r in att.iter_rows(named=True)]}, ensure_ascii=False))
        return
    typer.echo(f"{d.name}: {res.policy.format(res.count)} persons "
               f"(release {res.release_id})")
    for r in att.iter_rows(named=True):
        lost = f"  (-{r['lost_shown']})" if r["lost_shown"] else ""
        typer.echo(f"  {r['step']:>2}. {r['rule']:<48} {r['persons_shown']:>10}{lost}")


@cohort_app.command("members")
def cohort_members(
    definition: Path = typer.Argument(..., help="Definition JSON (ours or ATLAS)."),
    release: Path = typer.Option(DEFAULT_RELEASE, "--release", help="Release directory."),
    out: Path = typer.Option(..., "-o", "--out", help="Parquet file to write."),
    engine: str = typer.Option(None, "--engine", help=ENGINE_HELP, show_default=False),
) -> None:
    """Write the cohort's rows (subject_id, cohort_start_date, cohort_end_date) to Parquet.

    Row-level data: the controlled tier only (SECURITY.md); the export is audited."""
    from cohort.engine import run
    from cohort.governance import record_action
    from workbench import catalog

    try:
        d = _definition(definition)
        with catalog.open(release) as cat:
            res = run(d, cat, engine=engine)  # type: ignore[arg-type]
            _ = res.members     # the controlled tier only (else AccessDenied, exit 1)
            record_action("export.members", res, cat=cat, detail={"file": str(out.resolve())})
    except WorkbenchError as e:
        _fail(e)
    from workbench.atomic import writing

    with writing(out) as tmp:   # a killed run leaves the previous file, never half of one
        res.members.write_parquet(tmp)
    typer.echo(f"{res.members.height:,} rows written to {out}")


@cohort_app.command("import-atlas")
def cohort_import_atlas(
    atlas_json: Path = typer.Argument(..., help="ATLAS / Circe cohort JSON (or a WebAPI export)."),
    out: Path = typer.Option(..., "-o", "--out", help="Definition JSON to write."),
) -> None:
    """Convert an OHDSI ATLAS definition; unsupported parts are listed with JSON paths."""
    from cohort import io
    from cohort.atlas import from_atlas

    try:
        data = json.loads(atlas_json.read_text(encoding="utf-8"))
        d = from_atlas(data)
    except json.JSONDecodeError as e:
        _fail(UsageError(f"{atlas_json} is not valid JSON: {e.msg} (line {e.lineno})"))
    except OSError as e:
        _fail(UsageError(f"cannot read {atlas_json}: {e.strerror}"))
    except WorkbenchError as e:
        _fail(e)
    io.save(d, out)
    typer.echo(f"{d.name!r}: {len(d.inclusion_rules)} inclusion rules -> {out}")


@cohort_app.command("export-atlas")
def cohort_export_atlas(
    definition: Path = typer.Argument(..., help="Our definition JSON."),
    out: Path = typer.Option(..., "-o", "--out", help="ATLAS JSON to write."),
    release: Path | None = typer.Option(None, "--release",
                                        help="Fill CONCEPT_IDs from this release."),
) -> None:
    """Export to OHDSI ATLAS / Circe JSON (features Circe lacks are refused by path)."""
    from cohort.atlas import to_atlas
    from workbench import catalog

    try:
        d = _definition(definition)
        if release is not None:
            with catalog.open(release) as cat:
                data = to_atlas(d, catalog=cat)
        else:
            data = to_atlas(d)
    except WorkbenchError as e:
        _fail(e)
    from workbench.atomic import write_text

    write_text(out, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    typer.echo(f"written {out}")


@cohort_app.command("describe")
def cohort_describe(definition: Path = typer.Argument(..., help="Definition JSON.")) -> None:
    """The definition in plain words (checks it without running)."""
    from cohort.describe import describe

    try:
        d = _definition(definition)
    except WorkbenchError as e:
        _fail(e)
    typer.echo(describe(d))
    typer.echo(f"(definition hash {d.content_hash()})")


@cohort_app.command("diff")
def cohort_diff(a: Path = typer.Argument(...), b: Path = typer.Argument(...)) -> None:
    """Differences of meaning between two definitions (exit 1 if they differ)."""
    from cohort.describe import diff

    try:
        lines = diff(_definition(a), _definition(b))
    except WorkbenchError as e:
        _fail(e)
    if not lines:
        typer.echo("no difference in meaning")
        return
    for line in lines:
        typer.echo(line)
    raise typer.Exit(1)


@app.command()
def demo(
    release: Path = typer.Option(DEFAULT_RELEASE, help="Release to use (built if absent)."),
    outputs: Path = typer.Option(DEFAULT_OUTPUTS, help="Where reports go."),
    genomics: bool = typer.Option(True, "--genomics/--no-genomics",
                                  help="Run the flagship GWAS study (needs Java)."),
) -> None:
    """The main job: build the default synthetic release if needed, report on it, then run
    the flagship study: adults with a screening LDL -> genomes -> QC -> PCA -> GWAS of LDL
    and of type 2 diabetes -> outputs/flagship/flagship.html."""
    from workbench import catalog
    from workbench.report import write_release_report
    from workbench.synth.build import DEFAULTS, build_release

    say = lambda msg: typer.echo(f"... {msg}", err=True)  # noqa: E731
    try:
        if not (release / "manifest.json").is_file():
            typer.echo(f"building the default synthetic release in {release} "
                       f"({DEFAULTS['persons']:,} persons, {DEFAULTS['genotyped']:,} genomes, "
                       f"{DEFAULTS['variants']:,} variants)...")
            build_release(release, progress=sys.stderr.isatty(), force=True)
        path = write_release_report(release, outputs / "release_report.html")
        typer.echo(f"release report: {path.resolve()}")
        if not genomics:
            return
        from genomics.flagship import run_flagship

        with catalog.open(release) as cat:
            summary = run_flagship(cat, outputs / "flagship", progress=say).summary
    except WorkbenchError as e:
        _fail(e)
    for s in summary["studies"]:
        t = s.get("truth")
        found = f"; planted variants found {t['found']}/{t['planted']}" if t else ""
        typer.echo(f"{s['title']}: {s['samples_analysed']} samples, lambda GC "
                   f"{s['lambda_gc']:.3f}, {s['hits']} hits{found}")
    typer.echo(f"flagship study: {(outputs / 'flagship' / 'flagship.html').resolve()}")


@genomics_app.command("import")
def genomics_import(
    source: Path | None = typer.Argument(None, help="A bgzipped VCF or a PLINK .bed "
                                         "(default: the release's VCF)."),
    release: Path = typer.Option(DEFAULT_RELEASE, "--release", help="Release directory."),
    partitions: int | None = typer.Option(None, help="Partitions (default: from size, cores)."),
    refresh: bool = typer.Option(False, "--refresh", help="Re-import even if cached."),
) -> None:
    """Import genotypes into the MatrixTable cache (once; later runs read the cache)."""
    from genomics import store

    try:
        if source is None:
            from workbench import catalog

            with catalog.open(release) as cat:
                mt = store.release_genotypes(cat, partitions=partitions, refresh=refresh)
        elif source.suffix == ".bed":
            mt = store.import_plink(source, partitions=partitions, refresh=refresh)
        else:
            mt = store.import_vcf(source, partitions=partitions, refresh=refresh)
    except WorkbenchError as e:
        _fail(e)
    variants, samples = mt.count()
    typer.echo(f"{variants:,} variants x {samples:,} samples in {mt.n_partitions()} "
               f"partitions: {store.store_dir()}")


@genomics_app.command("carriers")
def genomics_carriers(
    release: Path = typer.Option(DEFAULT_RELEASE, "--release", help="Release directory."),
    refresh: bool = typer.Option(False, "--refresh", help="Rebuild even if built already."),
) -> None:
    """Build the carrier table (every non-reference call) that cohort genotype criteria
    read, once per release; counting carriers then needs no Hail."""
    import pyarrow.parquet as pq

    from genomics.carriers import build_carriers
    from workbench import catalog

    try:
        with catalog.open(release) as cat:
            path = build_carriers(cat, refresh=refresh,
                                  progress=lambda msg: typer.echo(f"... {msg}", err=True))
    except WorkbenchError as e:
        _fail(e)
    typer.echo(f"{pq.ParquetFile(path).metadata.num_rows:,} carrier calls: {path}")


@app.command("gwas")
def gwas_command(
    definition: Path | None = typer.Argument(
        None, help="Study cohort definition JSON (ours or ATLAS); or use --vcf/--bfile."),
    release: Path = typer.Option(DEFAULT_RELEASE, "--release", help="Release directory."),
    vcf: Path | None = typer.Option(None, "--vcf", help="Your own VCF (bgzip best) instead "
                                    "of a release; needs --phenotypes."),
    bfile: Path | None = typer.Option(None, "--bfile", help="Your own PLINK files (prefix of "
                                      ".bed/.bim/.fam) instead of a release."),
    phenotypes: Path | None = typer.Option(None, "--phenotypes", help="With --vcf/--bfile: "
                                           "phenotype table (.tsv, .csv or .parquet)."),
    sample_column: str | None = typer.Option(None, "--sample-column", help="With "
                                             "--phenotypes: the column of sample ids."),
    trait: str = typer.Option(..., "--trait", help="Phenotype (ldl_cholesterol, bmi, ...) for "
                              "a linear model, or a case-cohort JSON for a logistic one; with "
                              "--phenotypes a column (boolean or 0/1: logistic)."),
    covariates: str | None = typer.Option(
        None, "--covariates", help="Comma-separated covariates (default age,female on a "
        "release; none with --phenotypes). Boolean columns are coded 0/1."),
    pcs: int = typer.Option(10, "--pcs", help="Principal components as covariates (0: none)."),
    test: str = typer.Option("wald", "--test", help="Logistic test: wald or firth."),
    model: str = typer.Option("auto", "--model", help="With --phenotypes: auto (0/1 trait: "
                              "logistic, else linear), linear or logistic."),
    reference: str = typer.Option("GRCh38", "--reference", help="With --vcf/--bfile: "
                                  "GRCh38 or GRCh37."),
    out: Path = typer.Option(..., "--out", help="Directory for results, qc.json, plots."),
) -> None:
    """Cohort -> consented genomes -> QC -> PCA -> GWAS; writes results.parquet, qc.json,
    Manhattan/QQ/PCA plots and report.html into --out.

    Bring your own data instead of a release: --vcf FILE or --bfile PREFIX with
    --phenotypes TABLE --sample-column COL (no DEFINITION)."""
    from genomics.study import plink_bed, run_gwas, run_gwas_on_files
    from workbench import catalog

    say = lambda msg: typer.echo(f"... {msg}", err=True)  # noqa: E731
    warn = lambda msg: typer.echo(f"warning: {msg}", err=True)  # noqa: E731
    try:
        if test not in ("wald", "firth"):
            raise UsageError(f"--test {test!r}: use wald or firth")
        own = vcf is not None or bfile is not None
        if (definition is not None) == own or (vcf is not None and bfile is not None):
            raise UsageError("give exactly one of DEFINITION (a cohort on a release), --vcf "
                             "FILE or --bfile PREFIX",
                             hint="workbench gwas --vcf x.vcf.bgz --phenotypes p.tsv "
                                  "--sample-column IID --trait ldl --out out/")
        if own:
            if phenotypes is None or sample_column is None:
                raise UsageError("--vcf/--bfile need --phenotypes TABLE and --sample-column COL")
            if model not in ("auto", "linear", "logistic"):
                raise UsageError(f"--model {model!r}: use auto, linear or logistic")
            covs = [c.strip() for c in (covariates or "").split(",") if c.strip()]
            study = run_gwas_on_files(vcf=vcf, bfile=bfile, phenotypes=phenotypes,
                                      sample_column=sample_column, trait=trait,
                                      covariates=covs, pcs=pcs, out=out,
                                      model=model, test=test,  # type: ignore[arg-type]
                                      reference=reference, progress=say, warn=warn)
        else:
            if phenotypes is not None or sample_column is not None or model != "auto":
                raise UsageError("--phenotypes, --sample-column and --model go with "
                                 "--vcf/--bfile; on a release the trait names a phenotype")
            d = _definition(definition)
            cases = None
            if trait.endswith(".json") or Path(trait).is_file():
                cases = _definition(Path(trait))
            covs = [c.strip() for c in (covariates or "age,female").split(",") if c.strip()]
            with catalog.open(release) as cat:
                study = run_gwas(d, cat, trait=trait, covariates=covs, pcs=pcs, out=out,
                                 cases=cases, test=test,  # type: ignore[arg-type]
                                 progress=say, warn=warn)
    except WorkbenchError as e:
        _fail(e)
    res = study.result
    _gwas_run_manifest(study, out, release=None if own else release,
                       definitions={"cohort": d, **({"cases": cases} if cases else {})}
                       if not own else {},
                       inputs=[p for p in (vcf, plink_bed(bfile) if bfile else None, phenotypes)
                               if p is not None])
    typer.echo(f"{res.trait} ({res.model}): {res.results.height:,} variants, lambda GC "
               f"{res.lambda_gc:.3f}, {res.top_hits(10_000).height} below 5e-8")
    typer.echo(f"results in {out.resolve()}")


def _gwas_run_manifest(study, out: Path, *, release: Path | None, definitions: dict,
                       inputs: list[Path]) -> Path:
    """``run_manifest.json`` next to the GWAS results: release (or input files' sha256),
    environment, definition hashes, and the key results a rerun checks."""
    from cohort.privacy import SmallCellPolicy
    from workbench import runrecord
    from workbench.manifest import read_manifest, sha256_file

    rec = runrecord.RunRecord(
        release=(runrecord.release_identity(read_manifest(release)) if release is not None
                 else {"release_id": None, "content_id": None, "seed": None, "checksums": {
                     f"file:{p.name}": sha256_file(p) for p in inputs}}),
        environment=runrecord.environment())
    for name, d in definitions.items():
        rec.definition(d, name=name)
    res = study.result
    samples = SmallCellPolicy().count(res.n_samples)
    rec.record("samples_analysed", samples if isinstance(samples, int) else str(samples))
    rec.record("variants", res.results.height)
    rec.record("lambda_gc", round(res.lambda_gc, 4), tolerance=0.002)
    rec.record("hits_5e-8", res.top_hits(10**7).height)
    return rec.write(out / "run_manifest.json")


@app.command("run-notebook")
def run_notebook(
    source: Path = typer.Argument(..., help="Notebook: jupytext .py (notebooks/) or .ipynb."),
    out: Path = typer.Option(..., "--out", help="The published .ipynb to write."),
    release: Path | None = typer.Option(None, "--release", help="Release directory "
                                        "(default: $WORKBENCH_RELEASE, else releases/default)."),
    param: list[str] = typer.Option([], "--param", help="NAME=VALUE overriding the "
                                    "notebook's parameters cell (VALUE as JSON, else text); "
                                    "repeatable. Kept for reruns."),
    timeout: int = typer.Option(1800, "--timeout", help="Seconds per cell."),
) -> None:
    """Execute a notebook top to bottom in a clean kernel and write it with its outputs and
    run record (release, environment, definitions, key results): the notebook a reviewer
    reruns with `workbench rerun`."""
    from workbench.rerun import publish

    try:
        params = {}
        for p in param:
            name, eq, value = p.partition("=")
            if not eq:
                raise UsageError(f"--param {p!r}: use NAME=VALUE", hint="--param PCS=4")
            try:
                params[name.strip()] = json.loads(value)
            except json.JSONDecodeError:
                params[name.strip()] = value
        rec = publish(source, out, release=release, parameters=params, timeout=timeout)
    except WorkbenchError as e:
        _fail(e)
    typer.echo(f"{len(rec.results)} key results recorded on release "
               f"{rec.release.get('release_id')}: {out.resolve()}")


@app.command("rerun")
def rerun_command(
    notebook: Path = typer.Argument(..., help="A published .ipynb (from run-notebook)."),
    release: Path | None = typer.Option(None, "--release", help="Release directory (default: "
                                        "the one recorded, if present; else releases/default)."),
    out: Path | None = typer.Option(None, "--out", help="Keep the rerun notebook here."),
    timeout: int = typer.Option(1800, "--timeout", help="Seconds per cell."),
) -> None:
    """Re-execute a published notebook in a clean kernel and check its recorded results:
    prints pass, or fail naming the first difference and its kind (release, environment,
    definition, result); exit code 1 on fail."""
    from workbench.rerun import rerun

    try:
        report = rerun(notebook, release=release, out=out, timeout=timeout)
    except WorkbenchError as e:
        _fail(e)
    for line in report.lines():
        typer.echo(line)
    typer.echo(f"({report.seconds:.0f} s on release {report.release})", err=True)
    raise typer.Exit(0 if report.passed else 1)


@audit_app.command("verify")
def audit_verify(
    path: Path | None = typer.Argument(None, help="Audit log (default: where this session "
                                       "writes: $WORKBENCH_AUDIT, the project, or ~/.local)."),
    anchor: str | None = typer.Option(None, "--anchor", help="A record hash noted earlier "
                                      "(e.g. a head printed by an earlier verify); it must "
                                      "still be in the log."),
    head_file: bool = typer.Option(True, "--head-file/--no-head-file", help="Check the log "
                                   "against its .head file (catches records deleted from "
                                   "the end)."),
) -> None:
    """Check the hash chain: any edited, deleted, inserted or moved record is found and
    the first bad line named (exit code 1); prints the head hash to anchor elsewhere."""
    from workbench import audit

    try:
        verdict = audit.verify(path or audit.audit_path(_session()), anchor=anchor,
                               head_file=head_file)
    except WorkbenchError as e:
        _fail(e)
    typer.echo(str(verdict), err=not verdict.ok)
    raise typer.Exit(0 if verdict.ok else 1)


@audit_app.command("show")
def audit_show(
    path: Path | None = typer.Argument(None, help="Audit log (default as for verify)."),
    last: int = typer.Option(20, "--last", "-n", help="Show the last N records (0: all)."),
    action: str | None = typer.Option(None, "--action", help="Only this action (prefix)."),
    user: str | None = typer.Option(None, "--user", help="Only this user."),
    as_json: bool = typer.Option(False, "--json", help="Print the records as JSON lines."),
) -> None:
    """List audit records: time, user, tier, action, release, definition, sizes."""
    from workbench import audit

    try:
        path = path or audit.audit_path(_session())
        if not path.is_file():
            raise UsageError(f"no audit log at {path}")
        records = audit.read(path)
    except WorkbenchError as e:
        _fail(e)
    records = [r for r in records if (action is None or str(r.get("action", "")).startswith(
        action)) and (user is None or r.get("user") == user)]
    for r in records[-last:] if last > 0 else records:
        if as_json:
            typer.echo(json.dumps(r, ensure_ascii=False))
        elif "damaged" in r:
            typer.echo(f"{r['seq']:>6}  DAMAGED LINE: {r['damaged']}")
        else:
            sizes = " ".join(f"{k}={v}" for k, v in (r.get("sizes") or {}).items())
            typer.echo(f"{r.get('seq'):>6}  {r.get('time')}  {r.get('user')} "
                       f"({r.get('tier')})  {r.get('action')}  release {r.get('release')}  "
                       f"def {r.get('definition')}  {sizes}")


def _session():
    from workbench import access

    return access.current()


@app.command()
def doctor(
    release: Path = typer.Option(DEFAULT_RELEASE, help="Release to look for."),
    hail: bool = typer.Option(True, help="Run the tiny Hail start-up smoke test."),
) -> None:
    """Check the machine: versions, cores, memory, release, and a Hail smoke test."""
    from workbench.doctor import run_checks

    ok = run_checks(release, hail=hail, echo=typer.echo)
    raise typer.Exit(0 if ok else 1)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
