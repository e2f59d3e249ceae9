"""A Python builder that reads like a study protocol; it produces plain definitions.

>>> from cohort.builder import *
>>> d = (cohort("T2D starting metformin")
...      .entry(condition("KCD8", "E11").first(), prior_observation=365)
...      .require("aged 40-79 at diagnosis", age(40, 79))
...      .require("metformin within 90 days", drug("ATC", "A10BA02").within(0, 90))
...      .exclude("no insulin before", drug("ATC", "A10A").within(None, -1))
...      .exit_after(days=730)
...      .build())
>>> [r.name for r in d.inclusion_rules]
['aged 40-79 at diagnosis', 'metformin within 90 days', 'no insulin before']
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from cohort import model as m

__all__ = ["cohort", "condition", "drug", "procedure", "measurement", "visit", "death",
           "observation_period", "screening", "lifelog", "region_indicator", "consent",
           "has_genome", "carriers", "age", "sex", "region", "member_of", "all_of", "any_of",
           "at_least", "concept_set"]


def concept_set(vocabulary: str, *codes: str, name: str | None = None,
                descendants: bool = True, mapped: bool = False,
                excluding: tuple[str, ...] = ()) -> m.ConceptSet:
    """Codes of one vocabulary (with descendants by default), minus ``excluding``."""
    items = [m.ConceptItem(vocabulary=vocabulary, code=c, include_descendants=descendants,
                           include_mapped=mapped) for c in codes]
    items += [m.ConceptItem(vocabulary=vocabulary, code=c, exclude=True) for c in excluding]
    return m.ConceptSet(name=name or f"{vocabulary} {', '.join(codes)}", items=items)


@dataclass(frozen=True)
class Req:
    """A criterion with its window and occurrence, as used in rules."""

    criterion: m.Criterion
    window: m.Window | None = None
    occurrence: m.Occurrence = m.Occurrence()

    def within(self, start: int | None, end: int | None, *,
               anchor: Literal["index_start", "index_end"] = "index_start") -> Req:
        """Days relative to the index, inclusive; None = unbounded."""
        return replace(self, window=m.Window(start=start, end=end, anchor=anchor))

    def at_least(self, n: int) -> Req:
        return replace(self, occurrence=self.occurrence.model_copy(update={"op": "at_least",
                                                                         "count": n}))

    def at_most(self, n: int) -> Req:
        return replace(self, occurrence=self.occurrence.model_copy(update={"op": "at_most",
                                                                         "count": n}))

    def exactly(self, n: int) -> Req:
        return replace(self, occurrence=self.occurrence.model_copy(update={"op": "exactly",
                                                                         "count": n}))

    def on_distinct_dates(self) -> Req:
        return replace(self, occurrence=self.occurrence.model_copy(
            update={"distinct_dates": True}))

    def first(self) -> Req:
        """Only each person's first such event."""
        return replace(self, criterion=self.criterion.model_copy(
            update={"first_occurrence": True}))

    def requirement(self) -> m.Requirement:
        return m.Requirement(criterion=self.criterion, window=self.window,
                             occurrence=self.occurrence)


def _req(criterion: m.Criterion) -> Req:
    return Req(criterion)


def condition(vocabulary: str, *codes: str, **kw) -> Req:
    return _req(m.ConditionCriterion(concepts=concept_set(vocabulary, *codes, **kw)))


def drug(vocabulary: str, *codes: str, **kw) -> Req:
    return _req(m.DrugCriterion(concepts=concept_set(vocabulary, *codes, **kw)))


def procedure(vocabulary: str, *codes: str, **kw) -> Req:
    return _req(m.ProcedureCriterion(concepts=concept_set(vocabulary, *codes, **kw)))


def measurement(vocabulary: str, *codes: str, min: float | None = None,  # noqa: A002
                max: float | None = None, unit: str | None = None, **kw) -> Req:  # noqa: A002
    value = None if min is None and max is None else m.Range(min=min, max=max)
    return _req(m.MeasurementCriterion(concepts=concept_set(vocabulary, *codes, **kw),
                                       value=value, unit=unit))


def visit(*types: Literal["IP", "OP", "ER"]) -> Req:
    return _req(m.VisitCriterion(visit_types=list(types) or ["IP", "OP", "ER"]))


def death() -> Req:
    return _req(m.DeathCriterion())


def observation_period() -> Req:
    return _req(m.ObservationPeriodCriterion())


def screening(item: str, min: float | None = None, max: float | None = None) -> Req:  # noqa: A002
    return _req(m.ScreeningCriterion(item=item, value=m.Range(min=min, max=max)))


def lifelog(metric: str, aggregate: str = "mean", min: float | None = None,  # noqa: A002
            max: float | None = None, *, min_days: int = 1,  # noqa: A002
            day_min: float | None = None, day_max: float | None = None) -> Req:
    day_range = None if day_min is None and day_max is None else m.Range(min=day_min,
                                                                          max=day_max)
    return _req(m.LifelogCriterion(metric=metric, aggregate=aggregate,
                                   value=m.Range(min=min, max=max), min_days=min_days,
                                   day_range=day_range))


def region_indicator(indicator: str, min: float | None = None,  # noqa: A002
                     max: float | None = None) -> Req:  # noqa: A002
    return _req(m.RegionIndicatorCriterion(indicator=indicator, value=m.Range(min=min,
                                                                              max=max)))


def consent(scope: str) -> Req:
    return _req(m.ConsentCriterion(scope=scope))


def has_genome() -> Req:
    return _req(m.GenomeCriterion())


def carriers(*variants: str, region: str | None = None,
             zygosity: Literal["carrier", "homozygous_alt"] = "carrier") -> Req:
    """Carries any of ``variants`` ("chrom:pos:ref:alt"), or any variant in ``region``
    ("chrom:start-end", inclusive); ``zygosity="homozygous_alt"`` asks for two copies.

    >>> carriers("chr19:44908822:C:T").criterion.variants
    ['chr19:44908822:C:T']
    >>> carriers(region="1:1000-2000", zygosity="homozygous_alt").criterion.region
    'chr1:1000-2000'
    """
    return _req(m.GenotypeCriterion(variants=list(variants) or None, region=region,
                                    zygosity=zygosity))


def age(min: float | None = None, max: float | None = None) -> Req:  # noqa: A002
    return _req(m.AgeCriterion(value=m.Range(min=min, max=max)))


def sex(*values: Literal["male", "female"]) -> Req:
    return _req(m.SexCriterion(values=list(values)))


def region(*codes: str) -> Req:
    return _req(m.RegionCriterion(codes=list(codes)))


def member_of(other: m.Cohort) -> Req:
    return _req(m.CohortMemberCriterion(cohort=other))


def _item(x: Req | m.Group) -> m.Requirement | m.Group:
    return x if isinstance(x, m.Group) else x.requirement()


def all_of(*items: Req | m.Group) -> m.Group:
    return m.Group(mode="all", items=[_item(i) for i in items])


def any_of(*items: Req | m.Group) -> m.Group:
    return m.Group(mode="any", items=[_item(i) for i in items])


def at_least(n: int, *items: Req | m.Group) -> m.Group:
    return m.Group(mode="at_least", n=n, items=[_item(i) for i in items])


@dataclass
class CohortBuilder:
    name: str
    description: str = ""
    _entry: m.Entry | None = None
    _rules: list[m.InclusionRule] = field(default_factory=list)
    _exit: m.EndOfObservation | m.FixedOffset | m.DrugExposureEnd = field(
        default_factory=m.EndOfObservation)
    _censoring: list = field(default_factory=list)
    _limit: Literal["first", "all"] = "all"
    _pad: int = 0

    def entry(self, *events: Req, limit: Literal["first", "all"] = "first",
              prior_observation: int = 0, post_observation: int = 0) -> CohortBuilder:
        """Index events: any of ``events`` (event criteria), first per person or all."""
        self._entry = m.Entry(criteria=[e.criterion for e in events], limit=limit,
                              prior_observation=prior_observation,
                              post_observation=post_observation)
        return self

    def require(self, name: str, *items: Req | m.Group) -> CohortBuilder:
        """A named inclusion rule: all of ``items``."""
        self._rules.append(m.InclusionRule(name=name, group=all_of(*items)))
        return self

    def require_any(self, name: str, *items: Req | m.Group) -> CohortBuilder:
        self._rules.append(m.InclusionRule(name=name, group=any_of(*items)))
        return self

    def exclude(self, name: str, item: Req) -> CohortBuilder:
        """A named rule that the person has none of ``item`` (in its window)."""
        return self.require(name, item.exactly(0))

    def exit_after(self, days: int, *,
                   anchor: Literal["index_start", "index_end"] = "index_start"
                   ) -> CohortBuilder:
        self._exit = m.FixedOffset(days=days, anchor=anchor)
        return self

    def exit_at_drug_end(self, vocabulary: str, *codes: str, gap_days: int = 30,
                         offset: int = 0) -> CohortBuilder:
        self._exit = m.DrugExposureEnd(concepts=concept_set(vocabulary, *codes),
                                       gap_days=gap_days, offset=offset)
        return self

    def censor(self, *events: Req) -> CohortBuilder:
        self._censoring.extend(e.criterion for e in events)
        return self

    def first_result_only(self) -> CohortBuilder:
        self._limit = "first"
        return self

    def collapse(self, pad_days: int) -> CohortBuilder:
        self._pad = pad_days
        return self

    def build(self) -> m.Cohort:
        if self._entry is None:
            raise ValueError("a cohort needs entry events: call .entry(...) first")
        return m.Cohort(name=self.name, description=self.description, entry=self._entry,
                        inclusion_rules=self._rules, exit=self._exit,
                        censoring=self._censoring, result_limit=self._limit,
                        era_pad_days=self._pad)


def cohort(name: str, description: str = "") -> CohortBuilder:
    return CohortBuilder(name, description)
