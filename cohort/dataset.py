"""Dataset builder: a cohort's members plus chosen domains and columns -> Polars frames,
and the Python code that rebuilds them (as the All of Us dataset builder does).

Domains (:data:`DOMAINS`): ``person`` (one row per member: sex, birth year, region,
index date), ``conditions``, ``drugs``, ``measurements``, ``procedures`` (records, with
their concept's code and English/Korean names), ``screening`` (national health
screenings), ``wearable`` (daily wearable summaries), ``genotype`` (one row per member:
has a genome, genomic consent, the sample id when consented). A member's index date is
their first ``cohort_start_date``. Event domains take an optional concept set (its
descendants and mapped codes as the set says) and an optional window of days relative
to the index date, inclusive at both ends.

Persons who withdrew consent never appear, even when a hand-made member list holds them.
Frames are row-level data for analysis inside the controlled environment; aggregates
that leave pass ``cohort.privacy`` as everywhere else.

>>> import tempfile, pathlib
>>> from workbench import catalog
>>> from workbench.synth.build import build_release
>>> from cohort.builder import cohort, condition
>>> rel = pathlib.Path(tempfile.mkdtemp()) / "r"
>>> _ = build_release(rel, persons=500, genotyped=0, variants=0, seed=1, progress=False)
>>> cat = catalog.open(rel)
>>> d = cohort("hypertension").entry(condition("KCD8", "I10")).build()
>>> ds = build_dataset(cat, d, {"person": ["person_id", "sex"], "drugs": None})
>>> ds["person"].columns
['person_id', 'sex']
>>> ds["drugs"].columns[:3]
['person_id', 'drug_exposure_id', 'drug_exposure_start_date']
>>> ns = {}
>>> exec(ds.code, ns)
>>> ns["dataset"]["person"].equals(ds["person"])
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from cohort import governance
from cohort import model as m
from cohort.characterize import members_query
from cohort.concepts import resolve
from cohort.engine import CohortResult, run
from cohort.to_python import expression
from workbench.catalog import Catalog
from workbench.errors import UsageError

__all__ = ["DOMAINS", "Dataset", "build_dataset", "dataset_code"]


@dataclass(frozen=True)
class Domain:
    """One domain: its table (alias ``t``), columns as SQL over ``t``, ``c`` (the
    concept, for event tables), ``p`` (person), ``idx`` (index date); row order."""

    table: str
    columns: dict[str, str]
    order: tuple[str, ...]
    concept_column: str | None = None
    date_column: str | None = None
    joins: str = ""
    needs: tuple[str, ...] = ()


def _event(table: str, ident: str, concept: str, dates: list[str],
           extra: list[str]) -> Domain:
    cols = {"person_id": "t.person_id", ident: f"t.{ident}",
            **{d: f"t.{d}" for d in dates}, "concept_id": f"t.{concept}",
            "vocabulary_id": "c.vocabulary_id", "concept_code": "c.concept_code",
            "concept_name": "c.concept_name", "concept_name_ko": "c.concept_name_ko",
            **{x: f"t.{x}" for x in extra}}
    return Domain(table, cols, ("person_id", dates[0], ident), concept, dates[0],
                  f"left join concept c on c.concept_id = t.{concept}")


SCREENING_COLUMNS = ("height_cm", "weight_kg", "bmi", "waist_cm", "sbp", "dbp",
                     "fasting_glucose", "total_cholesterol", "ldl_cholesterol",
                     "hdl_cholesterol", "triglycerides", "egfr", "smoking_status",
                     "drinking_days_per_week", "exercise_days_per_week")

DOMAINS: dict[str, Domain] = {
    "person": Domain("person", {
        "person_id": "t.person_id", "index_date": "idx.index_date",
        "sex": "case t.gender_concept_id when 8507 then 'male' when 8532 then 'female' end",
        "year_of_birth": "t.year_of_birth", "region": "l.state"},
        ("person_id",), joins="left join location l on l.location_id = t.location_id"),
    "conditions": _event("condition_occurrence", "condition_occurrence_id",
                         "condition_concept_id",
                         ["condition_start_date", "condition_end_date"],
                         ["condition_source_value"]),
    "drugs": _event("drug_exposure", "drug_exposure_id", "drug_concept_id",
                    ["drug_exposure_start_date", "drug_exposure_end_date"],
                    ["days_supply", "quantity", "drug_source_value"]),
    "measurements": _event("measurement", "measurement_id", "measurement_concept_id",
                           ["measurement_date"], ["value_as_number", "unit_source_value"]),
    "procedures": _event("procedure_occurrence", "procedure_occurrence_id",
                         "procedure_concept_id", ["procedure_date"], []),
    "screening": Domain("health_screening", {
        "person_id": "t.person_id", "screening_date": "t.screening_date",
        **{c: f"t.{c}" for c in SCREENING_COLUMNS}}, ("person_id", "screening_date"),
        date_column="screening_date"),
    "wearable": Domain("wearable_daily", {
        "person_id": "t.person_id", "date": "t.date", "steps": "t.steps",
        "sleep_minutes": "t.sleep_minutes", "resting_hr": "t.resting_hr",
        "active_minutes": "t.active_minutes"}, ("person_id", "date"), date_column="date"),
    "genotype": Domain("person", {
        "person_id": "t.person_id",
        "has_genome": "exists (select 1 from sample_link s where s.person_id = t.person_id)",
        "genomic_consent": "coalesce((select bool_or(k.genomic) from consent k "
                           "where k.person_id = t.person_id), false)",
        "sample_id": "(select min(s.sample_id) from sample_link s join consent k using "
                     "(person_id) where s.person_id = t.person_id and k.genomic)"},
        ("person_id",), needs=("sample_link", "consent")),
}


@dataclass
class Dataset:
    """Frames by domain and the code that rebuilds them (``exec`` gives ``dataset``)."""

    frames: dict[str, pl.DataFrame]
    code: str
    persons: int = 0
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, domain: str) -> pl.DataFrame:
        return self.frames[domain]


def _columns(domain: str, chosen: Sequence[str] | None) -> list[str]:
    if domain not in DOMAINS:
        raise UsageError(f"dataset: unknown domain {domain!r}",
                         hint=f"use one of {', '.join(DOMAINS)}")
    available = list(DOMAINS[domain].columns)
    if chosen is None:
        return available
    unknown = [c for c in chosen if c not in available]
    if unknown or not chosen:
        raise UsageError(f"dataset: domain {domain!r} has no column(s) {unknown}" if unknown
                         else f"dataset: choose at least one column of {domain!r}",
                         hint=f"its columns: {', '.join(available)}")
    return list(chosen)


def build_dataset(cat: Catalog, cohort: CohortResult | m.Cohort | m.CohortSet,
                  domains: Mapping[str, Sequence[str] | None], *,
                  concepts: Mapping[str, m.ConceptSet] | None = None,
                  window: m.Window | None = None) -> Dataset:
    """Frames of the cohort's members for each domain in ``domains`` (its columns, or
    None for all). ``concepts``: a concept set per event domain keeps only its records;
    ``window``: days relative to the index date (inclusive) for dated domains.

    The frames are sorted by person, date and record id. Example: module docstring.
    """
    concepts = dict(concepts or {})
    result = cohort if isinstance(cohort, CohortResult) else run(cohort, cat)
    governance.gate("controlled", "dataset frames (row-level)", "dataset.build", result,
                    cat=cat, record=False)
    for name in concepts:
        if DOMAINS.get(name, DOMAINS["person"]).concept_column is None:
            raise UsageError(f"dataset: domain {name!r} takes no concept set",
                             hint="concept sets apply to conditions, drugs, measurements, "
                                  "procedures")
    chosen = {d: _columns(d, cols) for d, cols in domains.items()}
    frames: dict[str, pl.DataFrame] = {}
    notes = []
    with members_query(result, cat, who="dataset") as q:
        idx = q.idx
        persons = int(q.one(f"with {idx} select count(*) from idx")[0])
        for name, cols in chosen.items():
            dom = DOMAINS[name]
            if not all(cat.has(t) for t in (dom.table, *dom.needs)):
                notes.append(f"{name}: not in this release")
                frames[name] = pl.DataFrame()
                continue
            where, params = [], {}
            if name in concepts:
                ids = resolve(cat, concepts[name], path=f"concepts.{name}")
                params["ids"] = list(ids.standard) + list(ids.source)
                where.append(f"list_contains($ids, t.{dom.concept_column})")
            if window is not None and dom.date_column is not None:
                d = f"t.{dom.date_column}"
                if window.start is not None:
                    where.append(f"{d} >= idx.index_date + {int(window.start)}")
                if window.end is not None:
                    where.append(f"{d} <= idx.index_date + {int(window.end)}")
            select = ", ".join(f"{dom.columns[c]} as {c}" for c in cols)
            order = ", ".join(dom.columns[c] for c in dom.order)
            sql = (f"with {idx} select {select} from idx join {dom.table} t "
                   f"on t.person_id = idx.person_id {dom.joins} "
                   f"{'where ' + ' and '.join(where) if where else ''} order by {order}")
            frames[name] = q.frame(sql, params or None)
    code = dataset_code(result.definition, cat.path, chosen, concepts=concepts, window=window)
    governance.record_action("dataset.build", result, cat=cat, tables=[
        t for d in chosen for t in (DOMAINS[d].table, *DOMAINS[d].needs)], sizes={
        "persons": governance.cell(result.policy, persons),
        **{f"rows.{d}": governance.cell(result.policy, f.height) for d, f in frames.items()}})
    return Dataset(frames, code, persons, notes)


def dataset_code(definition: m.Cohort | m.CohortSet, release: Path | str,
                 domains: Mapping[str, Sequence[str] | None], *,
                 concepts: Mapping[str, m.ConceptSet] | None = None,
                 window: m.Window | None = None) -> str:
    """Python code that opens the release, rebuilds the definition and the dataset, and
    binds each domain's frame to a variable of its name.

    >>> from cohort.model import Cohort, Entry, DeathCriterion
    >>> print(dataset_code(Cohort(name="d", entry=Entry(criteria=[DeathCriterion()])),
    ...                    "/data/release", {"person": ["person_id"]}))
    from cohort.builder import cohort, death
    from cohort.dataset import build_dataset
    from workbench import catalog
    <BLANKLINE>
    cat = catalog.open("/data/release")
    definition = cohort("d").entry(death()).build()
    dataset = build_dataset(cat, definition, {"person": ["person_id"]})
    person = dataset["person"]
    """
    imports, expr = expression(definition)
    lines = [imports, "from cohort.dataset import build_dataset",
             "from workbench import catalog", "",
             f"cat = catalog.open({json.dumps(str(release))})",
             f"definition = {expr}"]
    doms = "{" + ", ".join(f"{json.dumps(d)}: " + ("None" if c is None else "[" + ", ".join(
        json.dumps(x) for x in c) + "]") for d, c in domains.items()) + "}"
    extra = ""
    if concepts or window is not None:
        if "from cohort import model as m" not in imports:
            lines.insert(0, "from cohort import model as m")
        if concepts:
            extra += ", concepts={" + ", ".join(
                f'"{d}": {_model_code(cs)}' for d, cs in concepts.items()) + "}"
        if window is not None:
            extra += f", window={_model_code(window)}"
    lines.append(f"dataset = build_dataset(cat, definition, {doms}{extra})")
    lines += [f'{d} = dataset["{d}"]' for d in domains]
    return "\n".join(lines)


def _model_code(obj: m.ConceptSet | m.Window) -> str:
    return f"m.{type(obj).__name__}.model_validate_json({obj.model_dump_json()!r})"
