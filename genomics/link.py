"""Cohort members -> consented genome samples, with phenotypes and covariates attached.

``link(members, cat, mt)`` follows each member to a sample: withdrawn participants and
those without genomic consent are dropped first (whatever list the members came from),
then those with no linked sample and those whose sample is not in the call set. The
report says how many were lost at each step (every count through the small-cell policy).
Phenotypes and covariates come from the release through DuckDB and Arrow, never as
Python rows:

- ``age``: age at the index date (cohort start), in years;
- ``female``: 1.0 for female, 0.0 for male;
- any screening item (``ldl_cholesterol``, ``bmi``, ``sbp``, ...): the value measured
  nearest the index date (the earlier one on a tie), missing when never measured;
- ``case`` (when ``cases`` is given): 1.0 for members also in the case cohort, else 0.0.

>>> phenotype_names()[:4]
['age', 'female', 'height_cm', 'weight_kg']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa
from sqlglot import exp

from cohort import governance
from cohort.compile import col
from cohort.compile import consented as consented_to
from cohort.privacy import SmallCellPolicy
from workbench import access, audit
from workbench.catalog import Catalog
from workbench.errors import UsageError
from workbench.schema import TABLES

if TYPE_CHECKING:
    import hail as hl

_NOT_ITEMS = {"person_id", "screening_date", "smoking_status"}
STEPS = ["cohort members", "genomic consent (not withdrawn)", "linked to a sample",
         "sample in the call set"]


def screening_items() -> list[str]:
    """Numeric screening items usable as traits or covariates."""
    schema = TABLES["health_screening"]
    return [f.name for f in schema if f.name not in _NOT_ITEMS
            and (pa.types.is_floating(f.type) or pa.types.is_integer(f.type))]


def phenotype_names() -> list[str]:
    """Every name ``phenotypes`` accepts (besides ``case`` and ``pc1``.. after PCA)."""
    return ["age", "female", *screening_items()]


@dataclass
class Linked:
    """The cohort on the genomes: ``mt`` (cols keyed by sample ``s``, with ``person_id``
    and one field per phenotype), the per-person table, and who was lost at each step."""

    mt: hl.MatrixTable
    samples: pl.DataFrame          # sample_id, person_id, index_date, phenotypes...
    step_persons: list[int]
    policy: SmallCellPolicy

    @property
    def report(self) -> pl.DataFrame:
        """step, persons remaining, persons lost (small cells suppressed)."""
        return loss_report(STEPS, self.step_persons, self.policy)


def loss_report(steps: list[str], persons: list[int], policy: SmallCellPolicy) -> pl.DataFrame:
    """A table of persons remaining and lost per step, suppressed as an attrition chain
    (no hidden small cell can be worked out by subtraction: ``SmallCellPolicy.chain``)."""
    shown, lost_shown = policy.chain(persons)
    return pl.DataFrame({"step": steps, "persons": [policy.format(c) for c in shown],
                         "lost": ["" if c is None else policy.format(c) for c in lost_shown]})


def members_index(members: pl.DataFrame) -> pl.DataFrame:
    """One row per person: person_id and index_date (their first cohort start)."""
    need = {"subject_id", "cohort_start_date"}
    if not need <= set(members.columns):
        raise UsageError(f"members lack column(s) {', '.join(sorted(need - set(members.columns)))}",
                         hint="pass CohortResult.members (subject_id, cohort_start_date, ...)")
    return (members.group_by("subject_id").agg(pl.col("cohort_start_date").min())
            .rename({"subject_id": "person_id", "cohort_start_date": "index_date"})
            .sort("person_id"))


def consented_samples(cat: Catalog, persons: pl.DataFrame) -> tuple[pl.DataFrame, list[int]]:
    """Persons with genomic consent (not withdrawn) and a linked sample: person_id,
    index_date, sample_id; and the persons left after each of the first three steps.
    Controlled tier (row-level)."""
    access.require("controlled", "consented samples of persons (row-level)", catalog=cat)
    for table in ("consent", "sample_link"):
        if not cat.has(table):
            raise UsageError(f"this release has no {table} table; genomes cannot be linked",
                             hint="use a release with governance tables (consent, sample_link)")
    cat.connection.register("wb_link_persons", persons.select("person_id", "index_date")
                            .to_arrow())
    try:
        q = exp.select(col("person_id", "m"), col("index_date", "m"), col("sample_id", "l"),
                       consented_to("genomic", "c").as_("consented")).from_(
            exp.to_table("wb_link_persons").as_("m")).join(
            exp.to_table("consent").as_("c"), on=exp.EQ(this=col("person_id", "c"),
                                                        expression=col("person_id", "m")),
            join_type="left").join(
            exp.to_table("sample_link").as_("l"), on=exp.EQ(this=col("person_id", "l"),
                                                            expression=col("person_id", "m")),
            join_type="left")
        rows = cat.sql(q.sql("duckdb")).pl()
    finally:
        cat.connection.unregister("wb_link_persons")
    consented = rows.filter(pl.col("consented"))
    linked = consented.drop_nulls("sample_id")
    # a person with several samples (re-sequenced) keeps the first sample id
    linked = linked.sort("person_id", "sample_id").unique("person_id", keep="first",
                                                          maintain_order=True)
    counts = [persons["person_id"].n_unique(), consented["person_id"].n_unique(),
              linked.height]
    return linked.select("person_id", "index_date", "sample_id"), counts


def phenotypes(cat: Catalog, persons: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """person_id plus one Float64 column per name (see the module docstring); controlled
    tier (row-level)."""
    access.require("controlled", "phenotypes of persons (row-level)", catalog=cat)
    unknown = [n for n in names if n not in phenotype_names()]
    if unknown:
        raise UsageError(f"unknown phenotype or covariate {', '.join(unknown)}",
                         hint="choose from " + ", ".join(phenotype_names()) + " (and case, "
                              "pc1..pcN after PCA)")
    out = persons.select("person_id", "index_date")
    cat.connection.register("wb_pheno_persons", out.to_arrow())
    try:
        for name in dict.fromkeys(names):
            out = out.join(_one_phenotype(cat, name), on="person_id", how="left")
    finally:
        cat.connection.unregister("wb_pheno_persons")
    return out.select("person_id", *[pl.col(n).cast(pl.Float64) for n in dict.fromkeys(names)])


def _one_phenotype(cat: Catalog, name: str) -> pl.DataFrame:
    m = exp.to_table("wb_pheno_persons").as_("m")
    on_person = lambda t: exp.EQ(this=col("person_id", t), expression=col("person_id", "m"))  # noqa: E731
    if name in ("age", "female"):
        value: exp.Expression = (
            exp.Sub(this=exp.Year(this=col("index_date", "m")),
                    expression=col("year_of_birth", "p")) if name == "age" else
            exp.Case(ifs=[exp.If(this=exp.EQ(this=col("gender_concept_id", "p"),
                                             expression=exp.Literal.number(8532)),
                                 true=exp.Literal.number(1.0))], default=exp.Literal.number(0.0)))
        q = exp.select(col("person_id", "m"), exp.cast(value, "DOUBLE").as_(name)).from_(m).join(
            exp.to_table("person").as_("p"), on=on_person("p"))
        return cat.sql(q.sql("duckdb")).pl()
    distance = exp.Abs(this=exp.DateDiff(this=col("screening_date", "s"),
                                         expression=col("index_date", "m"), unit=exp.var("DAY")))
    value = exp.ArgMin(this=col(name, "s"), expression=exp.Struct(expressions=[
        exp.PropertyEQ(this=exp.to_identifier("d"), expression=distance),
        exp.PropertyEQ(this=exp.to_identifier("t"), expression=col("screening_date", "s"))]))
    q = (exp.select(col("person_id", "m"), exp.cast(value, "DOUBLE").as_(name)).from_(m)
         .join(exp.to_table("health_screening").as_("s"), on=exp.and_(
             on_person("s"), exp.Not(this=exp.Is(this=col(name, "s"), expression=exp.Null()))))
         .group_by(col("person_id", "m")))
    return cat.sql(q.sql("duckdb")).pl()


def link(members: pl.DataFrame, cat: Catalog, mt: hl.MatrixTable, *,
         fields: list[str] | None = None, cases: pl.DataFrame | None = None,
         policy: SmallCellPolicy | None = None) -> Linked:
    """Members (``CohortResult.members``) -> the MatrixTable's consented samples, with
    phenotype/covariate fields (default age and female) annotated on the columns.
    Controlled tier; audited (persons per step, through the policy)."""
    access.require("controlled", "the genomics link (row-level genotypes)", catalog=cat)
    import hail as hl

    policy = policy or SmallCellPolicy()
    fields = list(dict.fromkeys(fields if fields is not None else ["age", "female"]))
    persons = members_index(members)
    linked, counts = consented_samples(cat, persons)
    in_vcf = set(mt.s.collect())
    linked = linked.filter(pl.col("sample_id").is_in(list(in_vcf)))
    counts.append(linked.height)
    table = linked.join(phenotypes(cat, linked, [f for f in fields if f != "case"]),
                        on="person_id", how="left")
    if "case" in fields or cases is not None:
        case_ids = (members_index(cases)["person_id"] if cases is not None
                    else pl.Series([], dtype=pl.Int64))
        table = table.with_columns(case=pl.col("person_id").is_in(case_ids.implode())
                                   .cast(pl.Float64))
    ht = _to_hail(table)
    out = mt.filter_cols(hl.is_defined(ht[mt.s]))
    out = out.annotate_cols(**ht[out.s])
    audit.record("genomics.link", release=cat.manifest, project=cat.project,
                 tables=[t for t in ("consent", "sample_link", "person", "health_screening")
                         if cat.has(t)],
                 sizes={step: governance.cell(policy, n) for step, n in zip(STEPS, counts,
                                                                            strict=True)},
                 detail={"fields": ",".join(fields)[:500]})
    return Linked(out, table, counts, policy)


def _to_hail(table: pl.DataFrame) -> hl.Table:
    """Per-sample table -> Hail Table keyed by ``s`` (through Arrow and pandas); a missing
    phenotype is missing in Hail, not NaN."""
    import hail as hl

    df = table.rename({"sample_id": "s"}).with_columns(pl.col("index_date").cast(pl.Utf8))
    ht = hl.Table.from_pandas(df.to_pandas(), key="s")
    floats = [c for c in df.columns if df[c].dtype == pl.Float64]
    return ht.annotate(**{c: hl.or_missing(~hl.is_nan(hl.float64(ht[c])), hl.float64(ht[c]))
                          for c in floats})
