"""An independent reference implementation of cohort definitions, in plain Polars.

It reads a release's Parquet files and evaluates a definition step by step, as the
semantics are written (OHDSI Circe): entry events inside an observation period, ordered
inclusion rules (windows inclusive at both ends), exit, censoring, result limit, eras,
and set operations. It shares nothing with ``cohort.compile``; only the concept-set
resolver (``cohort.concepts.resolve``, tested on its own) is reused. Tests compare the
engine's SQL with it.

Where Circe fixes details, they are followed (as the engine does since commit e59290f,
"Follow Circe exactly"):

* missing end dates: a condition ends the day after its start; a drug exposure at start +
  days_supply, else the next day; procedures, measurements, deaths and screenings (no end
  column) end the next day;
* ``first_occurrence`` takes each person's first event of the codeset (concepts; visit
  types; screenings where the item was measured), ties broken by the event id, and only
  then applies attribute filters (measurement value and unit, screening value range);
  entry ``limit="first"`` orders by start date, then event id;
* a concept set is one codeset (standard concepts plus mapped source concepts when
  ``include_mapped``) matched on the concept column; only the drug-era exit also matches
  ``drug_source_concept_id``;
* drug-era exit: exposures end + offset, merged when the next starts at most gap days
  after; the era holding the index start ends the cohort (capped at the observation end);
  an index in no era exits at the end of observation.

Dates are day numbers (days since 1970-01-01, Int32) inside, so windows and offsets are
integer arithmetic; members come out with dates again. Working frames:

* events: ``person_id, start, end, event_id``;
* index events: the same plus ``op_start, op_end`` (their observation period) and
  ``_idx`` (row number 0..n-1, the key every per-index-event result is aligned on);
* rows/eras: ``person_id, start, end``.

Eras collapse when the next start is at most ``pad`` days after the latest end so far:

>>> rows = pl.DataFrame({"person_id": [1, 1, 1, 2], "start": [0, 12, 40, 5],
...                      "end": [10, 20, 45, 5]}, schema_overrides={"start": pl.Int32,
...                                                               "end": pl.Int32})
>>> collapse(rows, pad=2).rows()
[(1, 0, 20), (1, 40, 45), (2, 5, 5)]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from cohort import model as m
from cohort.concepts import resolve
from workbench.catalog import Catalog
from workbench.schema import table_file

PERSON = "person_id"
# Consent scopes, as written in the data-use rules (not taken from workbench.scopes): the
# rows of these tables are used only for persons who consented to the scope.
CONSENT_SCOPE = {"visit_occurrence": "clinical", "condition_occurrence": "clinical",
                 "drug_exposure": "clinical", "measurement": "clinical",
                 "procedure_occurrence": "clinical", "death": "clinical",
                 "health_screening": "public", "death_registry": "public",
                 "wearable_daily": "lifelog", "wearable_intraday_hr": "lifelog",
                 "sample_link": "genomic"}
DAY = pl.Int32
SEX_CONCEPT = {"male": 8507, "female": 8532}
LIFELOG_DEFAULT_WINDOW = m.Window(start=-365, end=0)


@dataclass(frozen=True)
class EventSource:
    """Where a kind of event lives: table, start and end columns (no end column: the
    event ends the next day), event id column, concept column (if any)."""

    table: str
    start: str
    end: str | None = None
    event_id: str | None = None
    concept: str | None = None


EVENT_SOURCES: dict[str, EventSource] = {
    "condition": EventSource("condition_occurrence", "condition_start_date",
                             "condition_end_date", "condition_occurrence_id",
                             "condition_concept_id"),
    "drug": EventSource("drug_exposure", "drug_exposure_start_date", "drug_exposure_end_date",
                        "drug_exposure_id", "drug_concept_id"),
    "procedure": EventSource("procedure_occurrence", "procedure_date", None,
                             "procedure_occurrence_id", "procedure_concept_id"),
    "measurement": EventSource("measurement", "measurement_date", None, "measurement_id",
                               "measurement_concept_id"),
    "visit": EventSource("visit_occurrence", "visit_start_date", "visit_end_date",
                         "visit_occurrence_id"),
    "death": EventSource("death", "death_date"),
    "observation_period": EventSource("observation_period", "observation_period_start_date",
                                      "observation_period_end_date", "observation_period_id"),
    "screening": EventSource("health_screening", "screening_date"),
}


# --- the release ---------------------------------------------------------------------

_TABLES: dict[tuple[str, str], dict[str, pl.DataFrame]] = {}


class Release:
    """One evaluation's view of a release: its tables (read from Parquet once per release
    directory), nested cohorts' rows, and how many era collapses saw tied rows."""

    def __init__(self, path: Path | str, cat: Catalog) -> None:
        self.path = Path(path)
        self.cat = cat
        self._tables = _TABLES.setdefault((str(self.path.resolve()), cat.release_id), {})
        self._cohorts: dict[str, pl.DataFrame] = {}
        self.tied_collapses = 0

    def has(self, name: str) -> bool:
        return (self.path / table_file(name)).is_file()

    def table(self, name: str) -> pl.DataFrame:
        """A table's rows; of a table of person-level data, only the rows of persons who
        consented to its scope and did not withdraw."""
        if name not in self._tables:
            rows = pl.read_parquet(self.path / table_file(name))
            scope = CONSENT_SCOPE.get(name)
            if scope is not None and self.has("consent"):
                consent = pl.read_parquet(self.path / table_file("consent"))
                ok = consent.filter(pl.col(scope) & pl.col("withdrawal_date").is_null())
                rows = rows.filter(pl.col(PERSON).is_in(ok[PERSON].implode()))
            self._tables[name] = rows
        return self._tables[name]

    def eras(self, rows: pl.DataFrame, pad: int) -> pl.DataFrame:
        """:func:`collapse`, counting inputs with identical (person, start, end) rows."""
        if rows.select(PERSON, "start", "end").is_duplicated().any():
            self.tied_collapses += 1
        return collapse(rows, pad)

    def cohort_rows(self, cohort: m.Cohort) -> pl.DataFrame:
        """A nested cohort's rows (for cohort_member), evaluated once."""
        key = cohort.content_hash()
        if key not in self._cohorts:
            self._cohorts[key] = cohort_rows(self, cohort)[0]
        return self._cohorts[key]


def days(column: str) -> pl.Expr:
    """A date column as a day number."""
    return pl.col(column).cast(DAY)


def in_range(x: pl.Expr, rng: m.Range | None) -> pl.Expr:
    """``x`` is not null and within the closed range (open ends unbounded)."""
    cond = x.is_not_null()
    if rng is not None and rng.min is not None:
        cond = cond & (x >= rng.min)
    if rng is not None and rng.max is not None:
        cond = cond & (x <= rng.max)
    return cond


def ids(values) -> pl.Expr:
    """A set of Int64 ids to test membership with ``is_in``."""
    return pl.Series(list(values), dtype=pl.Int64).implode()


def n_persons(frame: pl.DataFrame) -> int:
    return int(frame[PERSON].n_unique())


def first_per_person(frame: pl.DataFrame, then: str = "end") -> pl.DataFrame:
    """Each person's earliest row by start, ties broken by ``then``."""
    return (frame.sort(PERSON, "start", then, nulls_last=True)
            .unique(PERSON, keep="first", maintain_order=True))


def collapse(rows: pl.DataFrame, pad: int) -> pl.DataFrame:
    """Merge a person's rows into eras: sorted by (start, end), a row starts a new era when
    its start is more than ``pad`` days after the latest end so far."""
    ordered = rows.select(PERSON, "start", "end").sort(PERSON, "start", "end")
    ordered = ordered.with_columns(
        latest_end=pl.col("end").cum_max().shift(1).over(PERSON))
    ordered = ordered.with_columns(
        new_era=(pl.col("latest_end").is_null()
                 | (pl.col("start") > pl.col("latest_end") + pad)).cast(pl.Int32))
    ordered = ordered.with_columns(era=pl.col("new_era").cum_sum().over(PERSON))
    return (ordered.group_by(PERSON, "era")
            .agg(pl.col("start").min(), pl.col("end").max())
            .select(PERSON, "start", "end").sort(PERSON, "start"))


# --- events of a criterion -----------------------------------------------------------

def codeset(rel: Release, concepts: m.ConceptSet) -> pl.Expr:
    """The concept ids of a concept set: standard ones plus mapped source ones."""
    resolved = resolve(rel.cat, concepts)
    return ids((*resolved.standard, *resolved.source))


def codeset_filter(rel: Release, crit: m.Criterion, src: EventSource) -> pl.Expr:
    """Rows of the kind's table in the criterion's codeset (concepts, visit types, a
    screening record with the item measured)."""
    if src.concept is not None:
        return pl.col(src.concept).is_in(codeset(rel, crit.concepts)).fill_null(False)
    if isinstance(crit, m.VisitCriterion):
        return pl.col("visit_source_value").is_in(list(crit.visit_types)).fill_null(False)
    if isinstance(crit, m.ScreeningCriterion):  # the item was measured: like a lab's code
        return pl.col(crit.item).is_not_null()
    return pl.lit(True)


def attribute_filter(crit: m.Criterion) -> pl.Expr:
    """Filters applied after first_occurrence: measurement value/unit, screening value."""
    conds = []
    if isinstance(crit, m.MeasurementCriterion):
        if crit.value is not None:
            conds.append(in_range(pl.col("value_as_number"), crit.value))
        if crit.unit is not None:
            conds.append(pl.col("unit_source_value") == crit.unit)
    elif isinstance(crit, m.ScreeningCriterion):
        conds.append(in_range(pl.col(crit.item), crit.value))
    if not conds:  # (a bare literal: fill_null on it breaks broadcasting in Polars 2.1)
        return pl.lit(True)
    return pl.all_horizontal(conds).fill_null(False)


def event_end(src: EventSource) -> pl.Expr:
    """End day: the end column, else start + days_supply (drugs), else the next day."""
    start = days(src.start)
    if src.end is None:
        return start + 1
    if src.table == "drug_exposure":
        return pl.coalesce(days(src.end), start + pl.col("days_supply"), start + 1)
    return pl.coalesce(days(src.end), start + 1)


def criterion_events(rel: Release, crit: m.Criterion) -> pl.DataFrame:
    """Events (person_id, start, end, event_id) of an event criterion: the codeset's rows,
    each person's first if asked, then the attribute filters."""
    src = EVENT_SOURCES[crit.kind]
    rows = rel.table(src.table).filter(codeset_filter(rel, crit, src)).with_columns(
        pl.col(PERSON).cast(pl.Int64), days(src.start).alias("start"),
        event_end(src).alias("end"),
        (pl.col(src.event_id) if src.event_id else pl.lit(None)).cast(pl.Int64)
        .alias("event_id"))
    if crit.first_occurrence:
        rows = first_per_person(rows, then="event_id")
    return rows.filter(attribute_filter(crit)).select(PERSON, "start", "end", "event_id")


def union_events(rel: Release, criteria: list) -> pl.DataFrame:
    return pl.concat([criterion_events(rel, c) for c in criteria])


# --- entry ---------------------------------------------------------------------------

def observation_periods(rel: Release) -> pl.DataFrame:
    return rel.table("observation_period").select(
        pl.col(PERSON).cast(pl.Int64), days("observation_period_start_date").alias("op_start"),
        days("observation_period_end_date").alias("op_end"))


def withdrawn_persons(rel: Release) -> pl.DataFrame:
    """Persons who withdrew consent (none if the release has no consent table)."""
    if not rel.has("consent"):
        return pl.DataFrame({PERSON: []}, schema={PERSON: pl.Int64})
    return (rel.table("consent").filter(pl.col("withdrawal_date").is_not_null())
            .select(pl.col(PERSON).cast(pl.Int64)).unique())


def index_events(rel: Release, entry: m.Entry) -> pl.DataFrame:
    """Entry events inside an observation period with the prior/post observation needed,
    withdrawn persons dropped, first per person if ``limit == "first"``; numbered _idx."""
    events = union_events(rel, entry.criteria).join(observation_periods(rel), on=PERSON)
    events = events.filter(
        (pl.col("start") >= pl.col("op_start")) & (pl.col("start") <= pl.col("op_end"))
        & (pl.col("op_start") + entry.prior_observation <= pl.col("start"))
        & (pl.col("start") + entry.post_observation <= pl.col("op_end")))
    events = events.join(withdrawn_persons(rel), on=PERSON, how="anti")
    if entry.limit == "first":
        events = first_per_person(events, then="event_id")
    return events.sort(PERSON, "start", "end").with_row_index("_idx")


# --- inclusion rules -----------------------------------------------------------------

def per_index(index: pl.DataFrame, values: pl.DataFrame, column: str,
              default: object) -> pl.Series:
    """``values[column]`` aligned on the index events' _idx, ``default`` where missing."""
    aligned = (index.select("_idx").join(values.select("_idx", column), on="_idx",
                                         how="left").sort("_idx")[column])
    return aligned if default is None else aligned.fill_null(default)


def anchor_column(window: m.Window | None) -> str:
    return "end" if window is not None and window.anchor == "index_end" else "start"


def window_filter(at: str, window: m.Window | None) -> pl.Expr:
    """``at`` (a day column) within [anchor + start, anchor + end], None bounds open."""
    cond = pl.lit(True)
    if window is not None and window.start is not None:
        cond = cond & (pl.col(at) >= pl.col("anchor") + window.start)
    if window is not None and window.end is not None:
        cond = cond & (pl.col(at) <= pl.col("anchor") + window.end)
    return cond


def event_count(index: pl.DataFrame, events: pl.DataFrame, req: m.Requirement) -> pl.Series:
    """Per index event: events starting in the window (and in the observation period if
    restricted); distinct start dates if asked."""
    pairs = index.select("_idx", PERSON, pl.col(anchor_column(req.window)).alias("anchor"),
                         "op_start", "op_end").join(
        events.select(PERSON, pl.col("start").alias("event_start")), on=PERSON)
    keep = window_filter("event_start", req.window)
    if req.restrict_to_observation:
        keep = keep & pl.col("event_start").is_between("op_start", "op_end")
    counter = (pl.col("event_start").n_unique() if req.occurrence.distinct_dates
               else pl.len())
    counts = pairs.filter(keep).group_by("_idx").agg(counter.cast(pl.Int64).alias("n"))
    return per_index(index, counts, "n", 0)


def occurrence_holds(n: pl.Series, occ: m.Occurrence) -> pl.Series:
    if occ.op == "at_least":
        return n >= occ.count
    if occ.op == "at_most":
        return n <= occ.count
    return n == occ.count


def lifelog_met(rel: Release, index: pl.DataFrame, req: m.Requirement) -> pl.Series:
    """Days of wearable data in the window (default [-365, 0]) and their aggregate."""
    crit: m.LifelogCriterion = req.criterion
    window = req.window or LIFELOG_DEFAULT_WINDOW
    wear = rel.table("wearable_daily").select(
        pl.col(PERSON).cast(pl.Int64), days("date").alias("day"),
        pl.col(crit.metric).cast(pl.Int64).alias("x"))
    in_window = (index.select("_idx", PERSON, pl.col(anchor_column(window)).alias("anchor"))
                 .join(wear, on=PERSON).filter(window_filter("day", window)))
    if crit.aggregate == "days_meeting":
        value = in_range(pl.col("x"), crit.day_range).sum()
    else:
        value = getattr(pl.col("x"), crit.aggregate)()
    per = in_window.group_by("_idx").agg(pl.len().alias("days"), value.alias("v"))
    per = per.with_columns(met=((pl.col("days") >= crit.min_days)
                                & in_range(pl.col("v"), crit.value)).fill_null(False))
    return per_index(index, per, "met", False)


def persons_of(index: pl.DataFrame, rel: Release) -> pl.DataFrame:
    """Index events with the person row (sex, birth year, location) and index year."""
    person = rel.table("person").select(pl.col(PERSON).cast(pl.Int64), "gender_concept_id",
                                        "year_of_birth", "location_id")
    return index.select("_idx", PERSON, "start").join(person, on=PERSON, how="left").with_columns(
        year=pl.col("start").cast(pl.Date).dt.year())


def person_met(rel: Release, index: pl.DataFrame, crit: m.Criterion) -> pl.Series:
    """Person-level criteria (age, sex, region, region indicator, consent, genome)."""
    people = persons_of(index, rel)
    if isinstance(crit, m.AgeCriterion):
        met = people.with_columns(met=in_range(pl.col("year") - pl.col("year_of_birth"),
                                               crit.value))
    elif isinstance(crit, m.SexCriterion):
        met = people.with_columns(met=pl.col("gender_concept_id").is_in(
            [SEX_CONCEPT[v] for v in crit.values]))
    elif isinstance(crit, m.RegionCriterion):
        loc = rel.table("location").select("location_id", "state")
        met = people.join(loc, on="location_id", how="left").with_columns(
            met=pl.col("state").is_in(list(crit.codes)))
    elif isinstance(crit, m.RegionIndicatorCriterion):
        ind = rel.table("region_indicator").select(
            "location_id", pl.col("year").cast(pl.Int32), pl.col(crit.indicator).alias("v"))
        met = people.join(ind, on=["location_id", "year"], how="left").with_columns(
            met=in_range(pl.col("v"), crit.value))
    elif isinstance(crit, m.ConsentCriterion):
        ok = (rel.table("consent")
              .filter(pl.col(crit.scope).fill_null(False) & pl.col("withdrawal_date").is_null())
              .select(pl.col(PERSON).cast(pl.Int64)).unique())
        met = people.with_columns(met=pl.col(PERSON).is_in(ids(ok[PERSON])))
    elif isinstance(crit, m.GenomeCriterion):
        linked = rel.table("sample_link")[PERSON]
        met = people.with_columns(met=pl.col(PERSON).is_in(ids(linked)))
    else:
        raise TypeError(f"not a person-level criterion: {crit.kind}")
    return per_index(index, met.with_columns(pl.col("met").fill_null(False)), "met", False)


def requirement_met(rel: Release, index: pl.DataFrame, req: m.Requirement) -> pl.Series:
    """Per index event: does the requirement hold (count compared with the occurrence)?"""
    crit = req.criterion
    if crit.kind in m.EVENT_KINDS:
        n = event_count(index, criterion_events(rel, crit), req)
    elif isinstance(crit, m.CohortMemberCriterion):
        n = event_count(index, rel.cohort_rows(crit.cohort), req)
    elif isinstance(crit, m.LifelogCriterion):
        n = lifelog_met(rel, index, req).cast(pl.Int64)
    else:
        n = person_met(rel, index, crit).cast(pl.Int64)
    return occurrence_holds(n, req.occurrence)


def group_met(rel: Release, index: pl.DataFrame, group: m.Group) -> pl.Series:
    """ALL / ANY / AT_LEAST n of the items, nested groups recursively."""
    hits = pl.Series("hits", [0] * index.height, dtype=pl.Int64)
    for item in group.items:
        met = (group_met(rel, index, item) if isinstance(item, m.Group)
               else requirement_met(rel, index, item))
        hits = hits + met.cast(pl.Int64)
    if group.mode == "all":
        return hits == len(group.items)
    if group.mode == "any":
        return hits >= 1
    return hits >= group.n


# --- exit, censoring, result ---------------------------------------------------------

def with_exit(rel: Release, qualified: pl.DataFrame, exit_: m.Exit) -> pl.DataFrame:
    """Add ``exit``: the cohort end date from the exit strategy."""
    if isinstance(exit_, m.EndOfObservation):
        return qualified.with_columns(exit=pl.col("op_end"))
    if isinstance(exit_, m.FixedOffset):
        anchor = pl.col("start" if exit_.anchor == "index_start" else "end")
        return qualified.with_columns(exit=pl.min_horizontal(anchor + exit_.days, "op_end"))
    return with_drug_era_exit(rel, qualified, exit_)


def drug_eras(rel: Release, exit_: m.DrugExposureEnd) -> pl.DataFrame:
    """Eras of the exit's drugs (concept or source concept in the codeset): exposures end
    + offset, merged when the next starts at most gap_days after the latest end."""
    src = EVENT_SOURCES["drug"]
    ids_ = codeset(rel, exit_.concepts)
    exposures = rel.table("drug_exposure").filter(
        (pl.col("drug_concept_id").is_in(ids_) | pl.col("drug_source_concept_id").is_in(ids_))
        .fill_null(False)).select(pl.col(PERSON).cast(pl.Int64), days(src.start).alias("start"),
                                  (event_end(src) + exit_.offset).alias("end"))
    return rel.eras(exposures, exit_.gap_days).rename({"start": "era_start", "end": "era_end"})


def with_drug_era_exit(rel: Release, qualified: pl.DataFrame,
                       exit_: m.DrugExposureEnd) -> pl.DataFrame:
    """Exit at the end of the era holding the index start, else at observation end."""
    era_of_index = (qualified.select("_idx", PERSON, "start").join(drug_eras(rel, exit_),
                                                                   on=PERSON)
                    .filter((pl.col("era_start") <= pl.col("start"))
                            & (pl.col("start") <= pl.col("era_end"))))
    era_end = per_index(qualified, era_of_index, "era_end", None)
    return qualified.with_columns(era_end=era_end).with_columns(
        exit=pl.min_horizontal(pl.coalesce("era_end", "op_end"), "op_end"))


def with_censoring(rel: Release, qualified: pl.DataFrame,
                   criteria: list) -> pl.DataFrame:
    """End at the earliest censoring event starting in [index start, exit]."""
    if not criteria:
        return qualified
    events = union_events(rel, criteria).select(PERSON, pl.col("start").alias("censor"))
    first = (qualified.select("_idx", PERSON, "start", "exit").join(events, on=PERSON)
             .filter(pl.col("censor").is_between("start", "exit"))
             .group_by("_idx").agg(pl.col("censor").min()))
    censor = per_index(qualified, first, "censor", None)
    return qualified.with_columns(exit=pl.min_horizontal("exit", censor))


def cohort_rows(rel: Release, cohort: m.Cohort) -> tuple[pl.DataFrame, list[int]]:
    """A cohort's eras (person_id, start, end in days) and its attrition."""
    index = index_events(rel, cohort.entry)
    ok = pl.Series("ok", [True] * index.height, dtype=pl.Boolean)
    steps = [n_persons(index)]
    for rule in cohort.inclusion_rules:
        ok = ok & group_met(rel, index, rule.group)
        steps.append(n_persons(index.filter(ok)))
    qualified = index.filter(ok).sort("_idx").drop("_idx").with_row_index("_idx")
    qualified = with_exit(rel, qualified, cohort.exit)
    qualified = with_censoring(rel, qualified, cohort.censoring)
    rows = qualified.select(PERSON, "start", pl.col("exit").alias("end"))
    if cohort.result_limit == "first":
        rows = first_per_person(rows)
    return rel.eras(rows, cohort.era_pad_days), steps


def set_rows(rel: Release, cohort_set: m.CohortSet) -> tuple[pl.DataFrame, list[int]]:
    """Union / intersect / minus of the operands' rows, then eras (no padding).

    Attrition: persons of each operand, then persons of the result."""
    parts = [definition_rows(rel, d)[0] for d in cohort_set.cohorts]
    if cohort_set.kind == "union":
        rows = pl.concat(parts)
    else:
        how = "semi" if cohort_set.kind == "intersect" else "anti"
        rows = parts[0]
        for other in parts[1:]:
            rows = rows.join(other.select(PERSON).unique(), on=PERSON, how=how)
    eras = rel.eras(rows, 0)
    return eras, [n_persons(p) for p in parts] + [n_persons(eras)]


def definition_rows(rel: Release, definition: m.Cohort | m.CohortSet
                    ) -> tuple[pl.DataFrame, list[int]]:
    if isinstance(definition, m.CohortSet):
        return set_rows(rel, definition)
    return cohort_rows(rel, definition)


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluation` gives: members, attrition, and how many era collapses
    (cohort rows, drug eras, set results) had identical (person, start, end) rows."""

    members: pl.DataFrame
    steps: list[int]
    tied_collapses: int


def evaluate(definition: m.Cohort | m.CohortSet, release_dir: Path | str,
             cat: Catalog) -> tuple[pl.DataFrame, list[int]]:
    """Members (subject_id Int64, cohort_start_date, cohort_end_date as dates; sorted by
    subject_id, cohort_start_date) and the attrition (persons per step)."""
    result = evaluation(definition, release_dir, cat)
    return result.members, result.steps


def evaluation(definition: m.Cohort | m.CohortSet, release_dir: Path | str,
               cat: Catalog) -> Evaluation:
    """:func:`evaluate` with diagnostics."""
    rel = Release(release_dir, cat)
    rows, steps = definition_rows(rel, definition)
    members = rows.select(
        pl.col(PERSON).cast(pl.Int64).alias("subject_id"),
        pl.col("start").cast(pl.Date).alias("cohort_start_date"),
        pl.col("end").cast(pl.Date).alias("cohort_end_date"),
    ).sort("subject_id", "cohort_start_date")
    return Evaluation(members, steps, rel.tied_collapses)
