"""Cohort definitions as plain, versioned data (pydantic v2), JSON round-trip lossless.

A :class:`Cohort` has entry events (the index), ordered named inclusion rules (they make
the attrition), an exit strategy and censoring events. Criteria are a tagged union on
``kind``; an inclusion rule holds a :class:`Group` of :class:`Requirement` (a criterion, a
window relative to the index, an occurrence count) and nested groups.

Windows are in days relative to the index date, **inclusive at both ends**; ``None``
means unbounded. ``Window(start=-365, end=0)`` is "in the year up to and including the
index day". Day counts lie within ``MAX_DAYS`` (100,000, about 273 years) either way.

>>> c = Cohort(name="t2d", entry=Entry(criteria=[ConditionCriterion(
...     concepts=ConceptSet(name="T2D", items=[ConceptItem(vocabulary="KCD8", code="E11")]))]))
>>> Cohort.model_validate_json(c.model_dump_json()) == c
True
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = "1.0"
MAX_DAYS = 100_000   # about 273 years: any real window, and date arithmetic every engine does
Days = Annotated[int, Field(ge=-MAX_DAYS, le=MAX_DAYS)]
Span = Annotated[int, Field(ge=0, le=MAX_DAYS)]   # a non-negative number of days
ConceptId = Annotated[int, Field(ge=0, le=2**63 - 1)]   # OMOP concept ids are BIGINT


class _Model(BaseModel):
    # NaN and infinities are not values a range can hold (JSON's NaN/Infinity included)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Range(_Model):
    """A closed numeric range; either end may be open (None)."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"range min {self.min} is greater than max {self.max}")
        return self


class Window(_Model):
    """Days relative to the index, inclusive at both ends; None = unbounded.

    ``anchor`` picks the index start or end date as day 0.
    """

    start: Days | None = None
    end: Days | None = None
    anchor: Literal["index_start", "index_end"] = "index_start"

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"window start {self.start} is after its end {self.end}")
        return self


class Occurrence(_Model):
    """How many matching events: at least / at most / exactly ``count``."""

    op: Literal["at_least", "at_most", "exactly"] = "at_least"
    count: int = Field(1, ge=0)
    distinct_dates: bool = False


class ConceptItem(_Model):
    """One concept of a set, by vocabulary and code (e.g. KCD8 E11) or by concept_id."""

    vocabulary: str | None = None
    code: str | None = None
    concept_id: ConceptId | None = None
    include_descendants: bool = True
    exclude: bool = False
    include_mapped: bool = False

    @model_validator(mode="after")
    def _identified(self) -> ConceptItem:
        if self.concept_id is None and (self.vocabulary is None or self.code is None):
            raise ValueError("a concept needs a concept_id, or a vocabulary and a code")
        return self


class ConceptSet(_Model):
    name: str
    items: list[ConceptItem] = Field(min_length=1)


# --- criteria ------------------------------------------------------------------------

class _Event(_Model):
    """Criteria on dated events; ``first_occurrence`` keeps each person's earliest only."""

    first_occurrence: bool = False


class ConditionCriterion(_Event):
    kind: Literal["condition"] = "condition"
    concepts: ConceptSet


class DrugCriterion(_Event):
    kind: Literal["drug"] = "drug"
    concepts: ConceptSet


class ProcedureCriterion(_Event):
    kind: Literal["procedure"] = "procedure"
    concepts: ConceptSet


class MeasurementCriterion(_Event):
    kind: Literal["measurement"] = "measurement"
    concepts: ConceptSet
    value: Range | None = None
    unit: str | None = None          # UCUM code as in measurement.unit_source_value


class VisitCriterion(_Event):
    kind: Literal["visit"] = "visit"
    visit_types: list[Literal["IP", "OP", "ER"]] = Field(default_factory=lambda: ["IP", "OP",
                                                                                  "ER"])


class DeathCriterion(_Event):
    kind: Literal["death"] = "death"


class ObservationPeriodCriterion(_Event):
    kind: Literal["observation_period"] = "observation_period"


SCREENING_ITEMS = ("height_cm", "weight_kg", "bmi", "waist_cm", "sbp", "dbp", "fasting_glucose",
                   "total_cholesterol", "ldl_cholesterol", "hdl_cholesterol", "triglycerides",
                   "egfr", "smoking_status", "drinking_days_per_week", "exercise_days_per_week")


class ScreeningCriterion(_Event):
    """A national health-screening record whose ``item`` lies in ``value``."""

    kind: Literal["screening"] = "screening"
    item: Literal[SCREENING_ITEMS]  # type: ignore[valid-type]
    value: Range = Range()


class LifelogCriterion(_Model):
    """An aggregate of a daily wearable metric over the requirement's window.

    ``aggregate``: mean/min/max/sum of the metric, or ``days_meeting`` = number of days
    whose value lies in ``day_range``. Needs at least ``min_days`` days with data in the
    window, else the person does not meet it.
    """

    kind: Literal["lifelog"] = "lifelog"
    metric: Literal["steps", "sleep_minutes", "resting_hr", "active_minutes"]
    aggregate: Literal["mean", "min", "max", "sum", "days_meeting"] = "mean"
    value: Range = Range()
    day_range: Range | None = None
    min_days: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _day_range(self) -> LifelogCriterion:
        if self.aggregate == "days_meeting" and self.day_range is None:
            raise ValueError("aggregate 'days_meeting' needs a day_range")
        return self


class RegionIndicatorCriterion(_Model):
    """The regional indicator of the person's region in the index year lies in ``value``."""

    kind: Literal["region_indicator"] = "region_indicator"
    indicator: Literal["deprivation_index", "pm25"]
    value: Range


class ConsentCriterion(_Model):
    """Consented to ``scope`` and not withdrawn by the index date."""

    kind: Literal["consent"] = "consent"
    scope: Literal["clinical", "public", "lifelog", "genomic"]


class GenomeCriterion(_Model):
    """Has a genome (a sample in sample_link)."""

    kind: Literal["has_genome"] = "has_genome"


_PRIMARY_CONTIG = re.compile(r"(?:chr)?([0-9]{1,2}|X|Y|M|MT)", re.IGNORECASE)
_CONTIG = re.compile(r"[A-Za-z0-9_.\-]+")
_ALLELE = re.compile(r"[ACGTN]+", re.IGNORECASE)
_VARIANT_EXAMPLE = "chrom:pos:ref:alt, e.g. chr1:12345:A:G"


def normalise_contig(name: str) -> str:
    """A contig name as variants and the carrier table spell it: primary chromosomes with
    the ``chr`` prefix (GRCh38 style) whatever the input, other contigs unchanged.

    >>> [normalise_contig(c) for c in ("1", "chr1", "CHR22", "x", "MT", "chrM", "GL000191.1")]
    ['chr1', 'chr1', 'chr22', 'chrX', 'chrM', 'chrM', 'GL000191.1']
    """
    if (hit := _PRIMARY_CONTIG.fullmatch(name)) is None:
        return name
    core = hit.group(1).upper()
    return "chrM" if core in ("M", "MT") else f"chr{core.lstrip('0') or '0'}"


def parse_variant(text: str) -> tuple[str, int, str, str]:
    """"chrom:pos:ref:alt" -> (contig, 1-based position, ref, alt), normalised.

    >>> parse_variant("1:12345:a:g")
    ('chr1', 12345, 'A', 'G')
    """
    parts = text.strip().split(":")
    if len(parts) != 4:
        raise ValueError(f"variant {text!r} is not {_VARIANT_EXAMPLE}")
    contig, pos, ref, alt = parts
    if not _CONTIG.fullmatch(contig):
        raise ValueError(f"variant {text!r}: contig {contig!r} is not a contig name "
                         f"({_VARIANT_EXAMPLE})")
    if not pos.isdigit() or int(pos) < 1:
        raise ValueError(f"variant {text!r}: position {pos!r} is not a whole number >= 1 "
                         f"({_VARIANT_EXAMPLE})")
    for what, allele in (("ref", ref), ("alt", alt)):
        if not _ALLELE.fullmatch(allele):
            raise ValueError(f"variant {text!r}: {what} allele {allele!r} is not a sequence "
                             f"of A, C, G, T, N ({_VARIANT_EXAMPLE})")
    if ref.upper() == alt.upper():
        raise ValueError(f"variant {text!r}: the alt allele equals the ref allele")
    return normalise_contig(contig), int(pos), ref.upper(), alt.upper()


def parse_region(text: str) -> tuple[str, int, int]:
    """"chrom:start-end" (1-based, inclusive; commas allowed) -> (contig, start, end).

    >>> parse_region("chr1:1,000-2,000")
    ('chr1', 1000, 2000)
    """
    head, sep, span = text.strip().rpartition(":")
    start, dash, end = span.replace(",", "").partition("-")
    example = "chrom:start-end, e.g. chr1:1000-2000"
    if not sep or not dash or not _CONTIG.fullmatch(head):
        raise ValueError(f"region {text!r} is not {example}")
    if not (start.isdigit() and end.isdigit()) or int(start) < 1:
        raise ValueError(f"region {text!r}: start and end must be whole numbers >= 1 "
                         f"({example})")
    if int(start) > int(end):
        raise ValueError(f"region {text!r}: start {int(start)} is after end {int(end)}")
    return normalise_contig(head), int(start), int(end)


def _variant(text: str) -> str:
    return ":".join(str(x) for x in parse_variant(text))


def _region(text: str) -> str:
    contig, start, end = parse_region(text)
    return f"{contig}:{start}-{end}"


class GenotypeCriterion(_Model):
    """Carries a variant: any of ``variants`` ("chrom:pos:ref:alt"), or any variant whose
    position lies in ``region`` ("chrom:start-end", 1-based, inclusive); exactly one of
    the two. ``zygosity``: "carrier" is at least one alt allele, "homozygous_alt" two
    (a hemizygous chrX call in a male has one). Contigs are normalised to GRCh38 style
    (``1`` -> ``chr1``) as in the carrier table; alleles to upper case.

    Only persons with genomic consent who have not withdrawn, with a sample in the call
    set, can carry anything; it needs the release's carrier table (``workbench genomics
    carriers``).

    >>> GenotypeCriterion(variants=["1:1000:a:g"]).variants
    ['chr1:1000:A:G']
    """

    kind: Literal["genotype"] = "genotype"
    variants: list[Annotated[str, AfterValidator(_variant)]] | None = None
    region: Annotated[str, AfterValidator(_region)] | None = None
    zygosity: Literal["carrier", "homozygous_alt"] = "carrier"

    @field_validator("variants")
    @classmethod
    def _some(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise ValueError("give at least one variant (chrom:pos:ref:alt), or a region")
        return v

    @model_validator(mode="after")
    def _one_of(self) -> GenotypeCriterion:
        if (self.variants is None) == (self.region is None):
            raise ValueError("a genotype criterion needs exactly one of variants "
                             "(a list of chrom:pos:ref:alt) and region (chrom:start-end)")
        return self

    def parsed_variants(self) -> list[tuple[str, int, str, str]]:
        """The variants as (contig, position, ref, alt); empty for a region."""
        return [parse_variant(v) for v in self.variants or []]

    def parsed_region(self) -> tuple[str, int, int] | None:
        """The region as (contig, start, end), or None."""
        return None if self.region is None else parse_region(self.region)


class AgeCriterion(_Model):
    """Age in whole years at the index date."""

    kind: Literal["age"] = "age"
    value: Range


class SexCriterion(_Model):
    kind: Literal["sex"] = "sex"
    values: list[Literal["male", "female"]] = Field(min_length=1)


class RegionCriterion(_Model):
    """Region (시도) codes of the person's location, e.g. "11" Seoul."""

    kind: Literal["region"] = "region"
    codes: list[str] = Field(min_length=1)


class CohortMemberCriterion(_Model):
    """Entry into another cohort (its cohort_start_date) within the requirement's window."""

    kind: Literal["cohort_member"] = "cohort_member"
    cohort: Cohort


EventCriterion = Annotated[
    ConditionCriterion | DrugCriterion | ProcedureCriterion | MeasurementCriterion
    | VisitCriterion | DeathCriterion | ObservationPeriodCriterion | ScreeningCriterion,
    Field(discriminator="kind"),
]
Criterion = Annotated[
    ConditionCriterion | DrugCriterion | ProcedureCriterion | MeasurementCriterion
    | VisitCriterion | DeathCriterion | ObservationPeriodCriterion | ScreeningCriterion
    | LifelogCriterion | RegionIndicatorCriterion | ConsentCriterion | GenomeCriterion
    | AgeCriterion | SexCriterion | RegionCriterion | CohortMemberCriterion | GenotypeCriterion,
    Field(discriminator="kind"),
]
EVENT_KINDS = ("condition", "drug", "procedure", "measurement", "visit", "death",
               "observation_period", "screening")
WINDOWED_KINDS = (*EVENT_KINDS, "lifelog", "cohort_member")


class Requirement(_Model):
    """A criterion evaluated relative to the index: window and occurrence.

    For event criteria the window bounds the event start date and ``occurrence`` counts
    events; lifelog aggregates use the window as the aggregation period (default: the
    year before the index); person-level criteria (age, sex, consent...) ignore both.
    """

    kind: Literal["requirement"] = "requirement"
    criterion: Criterion
    window: Window | None = None
    occurrence: Occurrence = Occurrence()
    restrict_to_observation: bool = True


class Group(_Model):
    """ALL / ANY / AT_LEAST n of its items (requirements or nested groups)."""

    kind: Literal["group"] = "group"
    mode: Literal["all", "any", "at_least"] = "all"
    n: int = Field(1, ge=0)
    items: list[Annotated[Requirement | Group, Field(discriminator="kind")]] = Field(
        min_length=1)


class InclusionRule(_Model):
    name: str
    description: str = ""
    group: Group


class Entry(_Model):
    """The index events: any of ``criteria``; first per person or all; observation needs."""

    criteria: list[EventCriterion] = Field(min_length=1)
    limit: Literal["first", "all"] = "first"
    prior_observation: Span = 0
    post_observation: Span = 0


class EndOfObservation(_Model):
    kind: Literal["end_of_observation"] = "end_of_observation"


class FixedOffset(_Model):
    """Exit ``days`` after the index start (or end), capped at the end of observation."""

    kind: Literal["fixed_offset"] = "fixed_offset"
    days: Span
    anchor: Literal["index_start", "index_end"] = "index_start"


class DrugExposureEnd(_Model):
    """Exit at the end of continuous exposure to ``concepts`` (gaps up to ``gap_days``
    bridged) plus ``offset`` days, capped at the end of observation."""

    kind: Literal["drug_exposure_end"] = "drug_exposure_end"
    concepts: ConceptSet
    gap_days: Span = 30
    offset: Span = 0


Exit = Annotated[EndOfObservation | FixedOffset | DrugExposureEnd, Field(discriminator="kind")]


class Cohort(_Model):
    """A cohort definition (see the module docstring)."""

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    kind: Literal["cohort"] = "cohort"
    name: str
    description: str = ""
    entry: Entry
    inclusion_rules: list[InclusionRule] = Field(default_factory=list)
    exit: Exit = EndOfObservation()
    censoring: list[EventCriterion] = Field(default_factory=list)
    result_limit: Literal["first", "all"] = "all"
    era_pad_days: Span = 0

    def content_hash(self) -> str:
        """Stable hash of the definition's meaning-bearing content (not name/description).

        >>> a = Cohort(name="a", entry=Entry(criteria=[DeathCriterion()]))
        >>> a.content_hash() == a.model_copy(update={"name": "b"}).content_hash()
        True
        """
        data = self.model_dump(mode="json", exclude={"name", "description"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def to_json(self, **kw: Any) -> str:
        return self.model_dump_json(indent=2, **kw)


class CohortSet(_Model):
    """Set operations over cohorts' members: union, intersect, minus (first minus rest)."""

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    kind: Literal["union", "intersect", "minus"]
    name: str
    cohorts: list[Annotated[Cohort | CohortSet, Field(discriminator="kind")]] = Field(
        min_length=2)

    def content_hash(self) -> str:
        data = self.model_dump(mode="json", exclude={"name"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


CohortMemberCriterion.model_rebuild()
Definition = Annotated[Cohort | CohortSet, Field(discriminator="kind")]
