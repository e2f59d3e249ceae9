"""Result tests in circe-be's style: a definition, input rows, the expected cohort rows.

Each case writes a tiny release from hand-written rows (``prep``), runs the definition,
and compares the cohort rows and the attrition with what the semantics say (``verify``),
worked out by hand. Edges: window ends, first vs all, observation-period edges.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import polars as pl
import pytest

from cohort import model as m
from cohort.builder import (
    age,
    all_of,
    any_of,
    at_least,
    cohort,
    condition,
    consent,
    death,
    drug,
    has_genome,
    lifelog,
    measurement,
    member_of,
    region,
    region_indicator,
    screening,
    sex,
    visit,
)
from cohort.engine import run
from workbench import catalog
from workbench.release_io import write_release
from workbench.synth.vocabulary import concept_id

D = dt.date.fromisoformat
E11, I10, J06 = (concept_id("KCD8", c) for c in ("E11.9", "I10", "J06.9"))
MET, INS = concept_id("ATC", "A10BA02"), concept_id("ATC", "A10AE04")
HBA1C = concept_id("LOINC", "4548-4")


def persons(n: int = 5, **over) -> list[dict]:
    rows = [{"person_id": i, "gender_concept_id": 8507 if i % 2 else 8532,
             "year_of_birth": 1960, "location_id": 1} for i in range(1, n + 1)]
    for pid, fields in over.items():
        rows[int(pid[1:]) - 1].update(fields)
    return rows


def periods(n: int = 5, start: str = "2010-01-01", end: str = "2020-12-31") -> list[dict]:
    return [{"observation_period_id": i, "person_id": i, "observation_period_start_date": start,
             "observation_period_end_date": end} for i in range(1, n + 1)]


def cond(pid: int, start: str, concept: int = E11, end: str | None = None) -> dict:
    return {"condition_occurrence_id": hash((pid, start, concept)) % 10**9, "person_id": pid,
            "condition_concept_id": concept, "condition_start_date": start,
            "condition_end_date": end}


def rx(pid: int, start: str, end: str, concept: int = MET) -> dict:
    return {"drug_exposure_id": hash((pid, start, concept)) % 10**9, "person_id": pid,
            "drug_concept_id": concept, "drug_exposure_start_date": start,
            "drug_exposure_end_date": end}


@dataclass
class Case:
    name: str
    definition: m.Cohort | m.CohortSet
    prep: dict[str, list[dict]]
    verify: list[tuple[int, str, str]]
    attrition: list[int] | None = None
    extra: dict = field(default_factory=dict)


T2D = condition("KCD8", "E11")
BASE = {"person": persons(), "observation_period": periods()}


def case(name, definition, prep, verify, attrition=None) -> Case:
    return Case(name, definition, {**BASE, **prep}, verify, attrition)


CASES = [
    case("entry inside observation: both edges in, outside out",
         cohort("t2d").entry(T2D).exit_after(0).build(),
         {"condition_occurrence": [cond(1, "2010-01-01"), cond(2, "2020-12-31"),
                                   cond(3, "2009-12-31"), cond(4, "2021-01-01")]},
         [(1, "2010-01-01", "2010-01-01"), (2, "2020-12-31", "2020-12-31")], [2]),
    case("prior observation 365 days: day 364 out, day 365 in",
         cohort("t2d").entry(T2D, prior_observation=365).exit_after(0).build(),
         {"condition_occurrence": [cond(1, "2010-12-31"), cond(2, "2011-01-01")]},
         [(2, "2011-01-01", "2011-01-01")]),
    case("post observation 30 days",
         cohort("t2d").entry(T2D, post_observation=30).exit_after(0).build(),
         {"condition_occurrence": [cond(1, "2020-12-01"), cond(2, "2020-12-02")]},
         [(1, "2020-12-01", "2020-12-01")]),
    case("first event per person vs all events",
         cohort("t2d").entry(T2D, limit="all").exit_after(0).build(),
         {"condition_occurrence": [cond(1, "2012-01-01"), cond(1, "2013-01-01"),
                                   cond(1, "2014-01-01")]},
         [(1, "2012-01-01", "2012-01-01"), (1, "2013-01-01", "2013-01-01"),
          (1, "2014-01-01", "2014-01-01")]),
    case("limit first keeps the earliest",
         cohort("t2d").entry(T2D).exit_after(0).build(),
         {"condition_occurrence": [cond(1, "2013-01-01"), cond(1, "2012-01-01")]},
         [(1, "2012-01-01", "2012-01-01")]),
    case("window [-30, 0] is inclusive at both ends",
         cohort("t2d").entry(T2D).exit_after(0)
         .require("metformin in the 30 days up to index", drug("ATC", "A10BA02").within(-30, 0))
         .build(),
         {"condition_occurrence": [cond(i, "2015-03-01") for i in (1, 2, 3, 4)],
          "drug_exposure": [rx(1, "2015-01-30", "2015-02-28"), rx(2, "2015-01-29", "2015-02-27"),
                            rx(3, "2015-03-01", "2015-03-30"), rx(4, "2015-03-02", "2015-04-01")]},
         [(1, "2015-01-30", "2015-01-30")][:0] + [(1, "2015-03-01", "2015-03-01"),
                                                   (3, "2015-03-01", "2015-03-01")], [4, 2]),
    case("window anchored on the index end",
         cohort("t2d").entry(T2D).exit_after(0)
         .require("metformin within 10 days after the index end",
                  drug("ATC", "A10BA02").within(0, 10, anchor="index_end")).build(),
         {"condition_occurrence": [cond(1, "2015-03-01", end="2015-03-20"),
                                   cond(2, "2015-03-01", end="2015-03-20")],
          "drug_exposure": [rx(1, "2015-03-30", "2015-04-30"), rx(2, "2015-03-31", "2015-04-30")]},
         [(1, "2015-03-01", "2015-03-01")]),
    case("occurrence: at least 2, on distinct dates",
         cohort("t2d").entry(T2D).exit_after(0)
         .require("two metformin dates in the year after",
                  drug("ATC", "A10BA02").within(0, 365).at_least(2).on_distinct_dates()).build(),
         {"condition_occurrence": [cond(1, "2015-01-01"), cond(2, "2015-01-01")],
          "drug_exposure": [rx(1, "2015-02-01", "2015-03-01"), rx(1, "2015-05-01", "2015-06-01"),
                            rx(2, "2015-02-01", "2015-03-01"),
                            rx(2, "2015-02-01", "2015-03-01", concept=MET) | {
                                "drug_exposure_id": 77}]},
         [(1, "2015-01-01", "2015-01-01")]),
    case("exclusion = exactly 0; at most 1",
         cohort("t2d").entry(T2D).exit_after(0)
         .exclude("no insulin ever before", drug("ATC", "A10A").within(None, -1))
         .require("at most one metformin", drug("ATC", "A10BA02").at_most(1)).build(),
         {"condition_occurrence": [cond(i, "2015-01-01") for i in (1, 2, 3)],
          "drug_exposure": [rx(2, "2014-01-01", "2014-02-01", INS),
                            rx(3, "2015-01-02", "2015-02-01"), rx(3, "2015-03-02", "2015-04-01")]},
         [(1, "2015-01-01", "2015-01-01")], [3, 2, 1]),
    case("restrict to observation: events outside the period do not count",
         cohort("t2d").entry(T2D).exit_after(0)
         .require("metformin any time", drug("ATC", "A10BA02")).build(),
         {"condition_occurrence": [cond(1, "2015-01-01"), cond(2, "2015-01-01")],
          "drug_exposure": [rx(1, "2009-06-01", "2009-07-01"), rx(2, "2016-06-01", "2016-07-01")]},
         [(2, "2015-01-01", "2015-01-01")]),
    case("groups: any, all, at least 2 of 3",
         cohort("t2d").entry(T2D).exit_after(0)
         .require("2 of: male, born <= 1960, in Seoul",
                  at_least(2, sex("male"), age(55, None), region("11"))).build(),
         {"person": persons(3, p1={"location_id": 2}, p2={"location_id": 1},
                            p3={"year_of_birth": 1990, "location_id": 2}),
          "observation_period": periods(3), "location": [
              {"location_id": 1, "state": "11"}, {"location_id": 2, "state": "26"}],
          "condition_occurrence": [cond(i, "2016-01-01") for i in (1, 2, 3)]},
         [(1, "2016-01-01", "2016-01-01"), (2, "2016-01-01", "2016-01-01")]),
    case("measurement value range inclusive, unit required",
         cohort("hba1c").entry(measurement("LOINC", "4548-4", min=6.5, unit="%")).exit_after(0)
         .build(),
         {"measurement": [
             {"measurement_id": 1, "person_id": 1, "measurement_concept_id": HBA1C,
              "measurement_date": "2015-01-01", "value_as_number": 6.5, "unit_source_value": "%"},
             {"measurement_id": 2, "person_id": 2, "measurement_concept_id": HBA1C,
              "measurement_date": "2015-01-01", "value_as_number": 6.4, "unit_source_value": "%"},
             {"measurement_id": 3, "person_id": 3, "measurement_concept_id": HBA1C,
              "measurement_date": "2015-01-01", "value_as_number": 7.0,
              "unit_source_value": "mmol/mol"}]},
         [(1, "2015-01-01", "2015-01-01")]),
    case("visit types and a nested any-of-all group",
         cohort("inpatient").entry(visit("IP")).exit_after(0)
         .require("diabetes or (hypertension and metformin)", any_of(
             T2D.within(None, 0), all_of(condition("KCD8", "I10").within(None, 0),
                                         drug("ATC", "A10BA02").within(None, 0)))).build(),
         {"visit_occurrence": [{"visit_occurrence_id": i, "person_id": i,
                                "visit_start_date": "2016-01-01", "visit_end_date": "2016-01-05",
                                "visit_source_value": t}
                               for i, t in ((1, "IP"), (2, "IP"), (3, "IP"), (4, "OP"))],
          "condition_occurrence": [cond(1, "2015-01-01"), cond(2, "2015-01-01", I10),
                                   cond(3, "2015-01-01", I10), cond(4, "2015-01-01")],
          "drug_exposure": [rx(2, "2015-02-01", "2015-03-01")]},
         [(1, "2016-01-01", "2016-01-01"), (2, "2016-01-01", "2016-01-01")], [3, 2]),
    case("exit: fixed offset capped at observation end; end of observation",
         cohort("t2d").entry(T2D).exit_after(365).build(),
         {"condition_occurrence": [cond(1, "2015-01-01"), cond(2, "2020-06-01")]},
         [(1, "2015-01-01", "2016-01-01"), (2, "2020-06-01", "2020-12-31")]),
    case("exit at the end of the drug era (gaps up to 30 days bridged)",
         cohort("met").entry(drug("ATC", "A10BA02")).exit_at_drug_end("ATC", "A10BA02",
                                                                       gap_days=30).build(),
         {"drug_exposure": [rx(1, "2015-01-01", "2015-01-30"), rx(1, "2015-03-01", "2015-03-30"),
                            rx(1, "2015-05-01", "2015-05-30"), rx(2, "2015-01-01",
                                                                  "2015-01-30")]},
         [(1, "2015-01-01", "2015-03-30"), (2, "2015-01-01", "2015-01-30")]),
    case("censoring by the first censoring event on or after the index",
         cohort("t2d").entry(T2D).censor(condition("KCD8", "I10")).build(),
         {"condition_occurrence": [cond(1, "2015-01-01"), cond(1, "2017-05-05", I10),
                                   cond(1, "2018-01-01", I10), cond(2, "2015-01-01"),
                                   cond(2, "2014-01-01", I10)]},
         [(1, "2015-01-01", "2017-05-05"), (2, "2015-01-01", "2020-12-31")]),
    case("censoring by death",
         cohort("t2d").entry(T2D).censor(death()).build(),
         {"condition_occurrence": [cond(1, "2015-01-01")],
          "death": [{"person_id": 1, "death_date": "2016-02-02"}]},
         [(1, "2015-01-01", "2016-02-02")]),
    case("all events and era collapse with padding: a gap of exactly pad days merges",
         cohort("t2d").entry(T2D, limit="all").exit_after(10).collapse(20).build(),
         {"condition_occurrence": [cond(1, "2015-01-01"), cond(1, "2015-01-31"),
                                   cond(1, "2015-03-03"), cond(2, "2015-01-01"),
                                   cond(2, "2015-02-01")]},
         [(1, "2015-01-01", "2015-02-10"), (1, "2015-03-03", "2015-03-13"),
          (2, "2015-01-01", "2015-01-11"), (2, "2015-02-01", "2015-02-11")]),
    case("first measurement, then its value (Circe order): a later high value does not count",
         cohort("hba1c").entry(measurement("LOINC", "4548-4", min=6.5).first()).exit_after(0)
         .build(),
         {"measurement": [
             {"measurement_id": 1, "person_id": 1, "measurement_concept_id": HBA1C,
              "measurement_date": "2015-01-01", "value_as_number": 6.0},
             {"measurement_id": 2, "person_id": 1, "measurement_concept_id": HBA1C,
              "measurement_date": "2016-01-01", "value_as_number": 7.0},
             {"measurement_id": 3, "person_id": 2, "measurement_concept_id": HBA1C,
              "measurement_date": "2015-01-01", "value_as_number": 7.0}]},
         [(2, "2015-01-01", "2015-01-01")]),
    case("missing end dates as Circe: condition +1 day, drug + days_supply",
         cohort("t2d or metformin").entry(T2D, drug("ATC", "A10BA02"))
         .exit_after(0, anchor="index_end").build(),
         {"condition_occurrence": [cond(1, "2015-01-01")],
          "drug_exposure": [{"drug_exposure_id": 5, "person_id": 2, "drug_concept_id": MET,
                             "drug_exposure_start_date": "2015-01-01", "days_supply": 30},
                            {"drug_exposure_id": 6, "person_id": 3, "drug_concept_id": MET,
                             "drug_exposure_start_date": "2015-01-01"}]},
         [(1, "2015-01-01", "2015-01-02"), (2, "2015-01-01", "2015-01-31"),
          (3, "2015-01-01", "2015-01-02")]),
    case("first result only",
         cohort("t2d").entry(T2D, limit="all").exit_after(10).first_result_only().build(),
         {"condition_occurrence": [cond(1, "2015-03-03"), cond(1, "2015-01-31")]},
         [(1, "2015-01-31", "2015-02-10")]),
    case("screening item within a range in the two years before",
         cohort("t2d").entry(T2D).exit_after(0)
         .require("screening LDL >= 160", screening("ldl_cholesterol", min=160).within(-730, 0))
         .build(),
         {"condition_occurrence": [cond(1, "2015-01-01"), cond(2, "2015-01-01"),
                                   cond(3, "2015-01-01")],
          "health_screening": [
              {"person_id": 1, "screening_date": "2013-01-01", "ldl_cholesterol": 170.0},
              {"person_id": 2, "screening_date": "2014-06-01", "ldl_cholesterol": 150.0},
              {"person_id": 3, "screening_date": "2014-06-01", "ldl_cholesterol": None}]},
         [(1, "2015-01-01", "2015-01-01")]),   # 2013-01-01 is exactly index - 730
    case("lifelog: mean steps and days meeting a threshold, with minimum coverage",
         cohort("t2d").entry(T2D).exit_after(0)
         .require("mean steps < 5000 over 30 days, >= 3 days",
                  lifelog("steps", "mean", max=4999, min_days=3).within(-30, -1))
         .require("at least 2 days with >= 3000 steps",
                  lifelog("steps", "days_meeting", min=2, day_min=3000).within(-30, -1))
         .build(),
         {"condition_occurrence": [cond(i, "2019-02-01") for i in (1, 2, 3)],
          "wearable_daily": [{"person_id": p, "date": d, "steps": s} for p, d, s in (
              (1, "2019-01-10", 3000), (1, "2019-01-11", 3500), (1, "2019-01-12", 1000),
              (2, "2019-01-10", 3000), (2, "2019-01-11", 3500),
              (3, "2019-01-10", 9000), (3, "2019-01-11", 9000), (3, "2019-01-12", 9000))]},
         [(1, "2019-02-01", "2019-02-01")], [3, 1, 1]),
    case("consent scope, genome, region indicator in the index year",
         cohort("t2d").entry(T2D).exit_after(0)
         .require("genomic consent", consent("genomic"))
         .require("has a genome", has_genome())
         .require("deprived region", region_indicator("deprivation_index", min=0.5)).build(),
         {"condition_occurrence": [cond(i, "2016-01-01") for i in (1, 2, 3, 4)],
          "consent": [{"person_id": i, "consent_date": "2020-01-01", "clinical": True,
                       "genomic": g}
                      for i, g in ((1, True), (2, True), (3, False), (4, True))],
          "sample_link": [{"person_id": i, "sample_id": f"S{i}"} for i in (1, 2, 3)],
          "region_indicator": [{"location_id": 1, "year": 2016, "deprivation_index": 0.7},
                               {"location_id": 1, "year": 2015, "deprivation_index": 0.1}],
          "person": persons(4)},
         [(1, "2016-01-01", "2016-01-01"), (2, "2016-01-01", "2016-01-01")], [4, 3, 2, 2]),
    case("a withdrawn participant never appears",
         cohort("t2d").entry(T2D).exit_after(0).build(),
         {"condition_occurrence": [cond(1, "2016-01-01"), cond(2, "2016-01-01")],
          "consent": [{"person_id": 1, "consent_date": "2020-01-01", "clinical": True},
                      {"person_id": 2, "consent_date": "2020-01-01", "clinical": True,
                       "withdrawal_date": "2021-01-01"}]},
         [(1, "2016-01-01", "2016-01-01")], [1]),
    case("clinical records are used only with clinical consent",
         cohort("t2d").entry(T2D).exit_after(0).build(),
         {"condition_occurrence": [cond(1, "2016-01-01"), cond(2, "2016-01-01"),
                                   cond(3, "2016-01-01")],
          "consent": [{"person_id": 1, "consent_date": "2020-01-01", "clinical": True},
                      {"person_id": 2, "consent_date": "2020-01-01", "clinical": False,
                       "public": True}]},
         [(1, "2016-01-01", "2016-01-01")], [1]),        # 3: no consent row, no consent
    case("member of another cohort within a window",
         cohort("t2d after URI").entry(T2D).exit_after(0)
         .require("URI cohort entry in the 90 days before",
                  member_of(cohort("uri").entry(condition("KCD8", "J06.9")).exit_after(0)
                            .build()).within(-90, -1)).build(),
         {"condition_occurrence": [cond(1, "2016-01-01"), cond(1, "2015-11-01", J06),
                                   cond(2, "2016-01-01"), cond(2, "2015-06-01", J06)]},
         [(1, "2016-01-01", "2016-01-01")]),
    case("two observation periods: the window does not reach into the earlier one",
         cohort("t2d").entry(T2D).exit_after(0)
         .require("metformin in the year before", drug("ATC", "A10BA02").within(-365, 0))
         .build(),
         {"observation_period": [
             {"observation_period_id": 1, "person_id": 1,
              "observation_period_start_date": "2010-01-01",
              "observation_period_end_date": "2014-12-31"},
             {"observation_period_id": 2, "person_id": 1,
              "observation_period_start_date": "2015-06-01",
              "observation_period_end_date": "2020-12-31"}],
          "person": persons(1),
          "condition_occurrence": [cond(1, "2015-07-01")],
          "drug_exposure": [rx(1, "2014-12-01", "2014-12-30")]},
         [], [1, 0]),
]


def _set_case() -> Case:
    a = cohort("t2d").entry(T2D).exit_after(0).build()
    b = cohort("htn").entry(condition("KCD8", "I10")).exit_after(0).build()
    prep = {**BASE, "condition_occurrence": [cond(1, "2015-01-01"), cond(2, "2015-01-01"),
                                             cond(2, "2016-01-01", I10),
                                             cond(3, "2016-01-01", I10)]}
    return prep, a, b


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_case(c: Case, tmp_path):
    write_release(tmp_path / "r", c.prep, kind="fixture")
    with catalog.open(tmp_path / "r") as cat:
        res = run(c.definition, cat)
    got = [(r["subject_id"], r["cohort_start_date"].isoformat(), r["cohort_end_date"].isoformat())
           for r in res.members.iter_rows(named=True)]
    assert got == sorted(c.verify)
    if c.attrition is not None:
        assert res.step_persons == c.attrition


@pytest.mark.parametrize(("kind", "expected"), [
    ("union", [1, 2, 3]), ("intersect", [2]), ("minus", [1])])
def test_set_operations(kind, expected, tmp_path):
    prep, a, b = _set_case()
    write_release(tmp_path / "r", prep, kind="fixture")
    with catalog.open(tmp_path / "r") as cat:
        res = run(m.CohortSet(kind=kind, name=kind, cohorts=[a, b]), cat)
    assert res.members["subject_id"].unique().sort().to_list() == expected


def test_criterion_on_an_absent_table_is_a_definition_error(tmp_path):
    from cohort.errors import DefinitionError

    write_release(tmp_path / "r", {**BASE, "condition_occurrence": [cond(1, "2015-01-01")]},
                  kind="fixture")
    d = (cohort("t2d").entry(T2D)
         .require("walks", lifelog("steps", "mean", min=1000)).build())
    with catalog.open(tmp_path / "r") as cat, pytest.raises(DefinitionError) as err:
        run(d, cat)
    assert err.value.path == "inclusion_rules[0].group.items[0].criterion"
    assert "wearable_daily" in err.value.message


def test_unknown_concept_is_a_definition_error_with_its_path(tmp_path):
    from cohort.errors import DefinitionError

    write_release(tmp_path / "r", {**BASE, "condition_occurrence": [cond(1, "2015-01-01")]},
                  kind="fixture")
    d = cohort("x").entry(condition("KCD8", "E11"), condition("KCD8", "Z99.99")).build()
    with catalog.open(tmp_path / "r") as cat, pytest.raises(DefinitionError) as err:
        run(d, cat)
    assert err.value.path == "entry.criteria[1].concepts.items[0]"
    assert "Z99.99" in err.value.message


def test_small_counts_are_suppressed_in_count_and_attrition(tmp_path):
    write_release(tmp_path / "r", {**BASE, "condition_occurrence": [
        cond(i, "2015-01-01") for i in (1, 2, 3)]}, kind="fixture")
    with catalog.open(tmp_path / "r") as cat:
        res = run(cohort("t2d").entry(T2D).build(), cat)
    assert str(res.count) == "< 20"
    att = res.attrition
    assert att["persons"].to_list() == [None] and att["suppressed"].to_list() == [True]
    assert att["persons_shown"].to_list() == ["< 20"]
    assert res.members.height == 3 and isinstance(res.to_table().num_rows, int)
    assert pl.Series(res.to_table()["subject_id"].to_pylist()).to_list() == [1, 2, 3]
