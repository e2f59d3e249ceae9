"""ATLAS/Circe import and export (cohort.atlas).

- real published definitions (OHDSI PhenotypeLibrary) import with the right structure,
  round-trip, or report their unsupported parts by JSON path;
- circe-be's own result tests (definition, _PREP rows, _VERIFY cohort rows) run through
  from_atlas and our engine give Circe's rows (missing end dates, custom eras included);
- hand-written ATLAS definitions in our release's codes give the same members as the
  same definitions written with cohort.builder;
- mapping edges (windows, numeric ops, occurrences, limits), errors listing every path,
  export errors, and a hypothesis round trip from_atlas(to_atlas(c)) == c.
Fixture sources: tests/fixtures/atlas/SOURCES.md.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from cohort import io
from cohort import model as m
from cohort.atlas import (
    AtlasApproximationWarning,
    AtlasUnsupportedError,
    from_atlas,
    is_atlas,
    load_any,
    to_atlas,
)
from cohort.builder import (
    age,
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
    screening,
    sex,
    visit,
)
from cohort.engine import run
from cohort.errors import DefinitionError
from workbench import catalog
from workbench.release_io import write_release
from workbench.schema import TABLES
from workbench.synth.build import build_release
from workbench.synth.vocabulary import concept_id

FIX = Path(__file__).parents[1] / "fixtures" / "atlas"
PL, CIRCE = FIX / "phenotype_library", FIX / "circe"


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def cset(cid: int, name: str, *items: tuple[str, str], descendants: bool = True) -> dict:
    """A Circe concept set of (vocabulary, code) in our release (ids as the release's)."""
    return {"id": cid, "name": name, "expression": {"items": [
        {"concept": {"CONCEPT_ID": concept_id(v, c), "CONCEPT_CODE": c, "VOCABULARY_ID": v},
         "isExcluded": False, "includeDescendants": descendants, "includeMapped": False}
        for v, c in items]}}


def corr(criteria: dict, start=(None, -1), end=(None, 1), occ=(2, 1), **kw) -> dict:
    """A correlated criterion: StartWindow endpoints as (Days, Coeff), Occurrence (Type, Count)."""
    return {"Criteria": criteria, "Occurrence": {"Type": occ[0], "Count": occ[1]},
            "StartWindow": {"Start": {"Days": start[0], "Coeff": start[1]},
                            "End": {"Days": end[0], "Coeff": end[1]}}, **kw}


def group(*criteria: dict, type: str = "ALL", count: int | None = None, demo=(), groups=()):  # noqa: A002
    return {"Type": type, "Count": count, "CriteriaList": list(criteria),
            "DemographicCriteriaList": list(demo), "Groups": list(groups)}


def expr(*rules: dict, primary: list | None = None, limit: str = "All", **top) -> dict:
    """A minimal Circe expression: T2D (E11) conditions as entry, ``rules`` as rules."""
    return {"ConceptSets": [cset(0, "T2D", ("KCD8", "E11"))],
            "PrimaryCriteria": {"CriteriaList": primary or [{"ConditionOccurrence":
                                                             {"CodesetId": 0}}],
                                "ObservationWindow": {"PriorDays": 0, "PostDays": 0},
                                "PrimaryCriteriaLimit": {"Type": limit}},
            "InclusionRules": [{"name": f"rule {k}", "expression": g}
                               for k, g in enumerate(rules)], **top}


T2D = {"ConditionOccurrence": {"CodesetId": 0}}


def problems(data: dict) -> list[str]:
    with pytest.raises(AtlasUnsupportedError) as err:
        from_atlas(data)
    return [p for p, _ in err.value.problems]


# --- real published definitions -----------------------------------------------------------

def test_phenotype_library_t2d_957_structure_and_round_trip():
    c = from_atlas(load(PL / "957.json"), name="T2D 957")
    [entry] = c.entry.criteria
    assert entry.kind == "condition" and entry.first_occurrence and c.entry.limit == "first"
    assert entry.concepts.name == "[LEGEND HTN] Type 2 Diabetes Mellitus"
    assert entry.concepts.items[0].vocabulary == "SNOMED" and entry.concepts.items[0].code
    assert entry.concepts.items[0].concept_id is None
    [rule] = c.inclusion_rules     # AdditionalCriteria became the leading rule
    assert rule.name == "ATLAS additional criteria" and rule.group.mode == "any"
    later, drugs, hba1c = rule.group.items
    assert (later.criterion.kind, later.window, later.occurrence.count) == (
        "condition", m.Window(start=1, end=None), 1)
    assert (drugs.criterion.kind, drugs.window, drugs.occurrence.count) == (
        "drug", m.Window(start=0, end=None), 2)
    assert hba1c.criterion.value == m.Range(min=6.5, max=30) and hba1c.criterion.unit == "%"
    assert hba1c.window == m.Window(start=-7, end=None) and hba1c.occurrence.op == "at_least"
    assert isinstance(c.exit, m.EndOfObservation) and c.result_limit == "first"
    assert from_atlas(to_atlas(c)) == c


def test_phenotype_library_new_users_1046_custom_era_exit():
    c = from_atlas(load(PL / "1046.json"))
    assert c.entry.prior_observation == 365 and c.entry.criteria[0].first_occurrence
    [rule] = c.inclusion_rules
    assert rule.name == "nested in essential hypertension"
    [req] = rule.group.items
    assert req.criterion.concepts.name == "Essential hypertension"
    assert req.window == m.Window(start=None, end=0) and req.restrict_to_observation
    assert isinstance(c.exit, m.DrugExposureEnd) and (c.exit.gap_days, c.exit.offset) == (90, 0)
    assert c.exit.concepts == c.entry.criteria[0].concepts
    assert from_atlas(to_atlas(c), name=c.name) == c


def test_phenotype_library_aesi_1086_clean_window_outside_observation():
    c = from_atlas(load(PL / "1086.json"))
    assert c.entry.limit == "all" and c.result_limit == "all"
    [req] = c.inclusion_rules[0].group.items
    assert req.window == m.Window(start=-365, end=-1)
    assert req.occurrence == m.Occurrence(op="exactly", count=0)
    assert req.restrict_to_observation is False      # IgnoreObservationPeriod
    assert c.exit == m.FixedOffset(days=1, anchor="index_start")
    assert from_atlas(to_atlas(c), name=c.name) == c


def test_phenotype_library_aesi_1080_reports_every_unsupported_part():
    data = load(PL / "1080.json")
    with pytest.raises(AtlasUnsupportedError) as err:
        from_atlas(data)
    paths = [p for p, _ in err.value.problems]
    assert paths == [
        "AdditionalCriteria.CriteriaList[0].EndWindow",
        "ConceptSets[1].expression.items[0]",      # visit concept 262 (ER and inpatient)
        "InclusionRules[0].expression.CriteriaList[0].Criteria.ConditionOccurrence"
        ".CorrelatedCriteria"]
    assert isinstance(err.value, DefinitionError) and err.value.path == paths[0]
    assert all(p in str(err.value) for p in paths) and "262" in str(err.value)


def test_every_fixture_is_detected_as_atlas_and_ours_is_not(tmp_path):
    assert all(is_atlas(load(p)) for p in PL.glob("*.json"))
    ours = cohort("x").entry(condition("KCD8", "E11")).build()
    assert not is_atlas(json.loads(io.dumps(ours)))


# --- circe-be's result tests --------------------------------------------------------------

def _set(path: str, value) -> Callable[[dict], None]:
    def apply(d: dict) -> None:
        node, keys = d, path.split(".")
        for k in keys[:-1]:
            node = node[int(k)] if k.isdigit() else node[k]
        node[keys[-1]] = value
    return apply


# (expression, prep/verify stem, cohort_definition_id, cumulative edits as circe-be's tests
#  make them, expectation: None = Circe's rows, a path = unsupported, "xfail: ..." )
CIRCE_CASES = [
    ("limits/limitExpression", "limits/limitTest", 1, [], None),
    ("limits/limitExpression", "limits/limitTest", 2, [_set("ExpressionLimit.Type", "first")],
     None),
    ("limits/limitExpression", "limits/limitTest", 3, [
        _set("ExpressionLimit.Type", "first"), _set("QualifiedLimit.Type", "first")], None),
    ("limits/limitExpression", "limits/limitTest", 4, [
        _set("ExpressionLimit.Type", "first"), _set("QualifiedLimit.Type", "first"),
        _set("PrimaryCriteria.PrimaryCriteriaLimit.Type", "first")], None),
    ("limits/limitExpression", "limits/limitTest", 5, [
        _set("PrimaryCriteria.PrimaryCriteriaLimit.Type", "last")],
     "PrimaryCriteria.PrimaryCriteriaLimit.Type"),
    ("correlatedCriteria/countsExpression", "correlatedCriteria/countsTest", 1, [], None),
    ("correlatedCriteria/countsExpression", "correlatedCriteria/countsTest", 2, [
        _set("AdditionalCriteria.CriteriaList.0.Occurrence", {"Type": 2, "Count": 1})], None),
    ("correlatedCriteria/countsExpression", "correlatedCriteria/countsTest", 3, [
        _set("AdditionalCriteria.CriteriaList.0.Occurrence", {"Type": 1, "Count": 0})], None),
    ("correlatedCriteria/groupExpression", "correlatedCriteria/groupTest", 1, [], None),
    ("correlatedCriteria/groupExpression", "correlatedCriteria/groupTest", 2, [
        _set("AdditionalCriteria.Type", "AT_LEAST"), _set("AdditionalCriteria.Count", 2)], None),
    ("correlatedCriteria/groupExpression", "correlatedCriteria/groupTest", 3, [
        _set("AdditionalCriteria.Type", "AT_MOST"), _set("AdditionalCriteria.Count", 2)], None),
    ("correlatedCriteria/groupExpression", "correlatedCriteria/groupTest", 4, [
        _set("AdditionalCriteria.Type", "ALL"), _set("AdditionalCriteria.Groups.0.Type", "AT_MOST"),
        _set("AdditionalCriteria.Groups.0.Count", 0)], None),
    ("correlatedCriteria/groupExpression", "correlatedCriteria/groupTest", 5, [
        _set("AdditionalCriteria.Type", "ALL"), _set("AdditionalCriteria.Groups", [])], None),
    ("inclusionRules/simpleInclusionRule", "inclusionRules/simpleInclusionRule", 1, [], None),
    ("exits/fixedOffsetCensorExpression", "exits/fixedOffsetCensor", 1, [], None),
    ("exits/continuousExposureCensorExpression", "exits/continuousExposureCensor", 1, [], None),
    ("exits/fixedOffsetExpression", "exits/fixedOffset", 1, [], None),
    ("exits/continuousExposureExpression", "exits/continuousExposure", 1, [], None),
    ("exits/censorEventExpression", "exits/censorEvent", 1, [],
     "CensoringCriteria[0].ProcedureOccurrence.CodesetId"),
]


def _circe_release(tmp_path: Path, stem: str) -> Path:
    tables: dict[str, list[dict]] = {}
    for f in (CIRCE / "vocabulary.json", CIRCE / f"{stem}_PREP.json"):
        for key, rows in load(f).items():
            name = key.split(".", 1)[1]
            cols = set(TABLES[name].names)   # circe's CDM has columns our schema drops
            tables.setdefault(name, []).extend({k: v for k, v in r.items() if k in cols}
                                               for r in rows)
    write_release(tmp_path / "r", tables, kind="fixture", vocabulary=False)
    return tmp_path / "r"


@pytest.mark.parametrize(
    ("expression", "stem", "cohort_id", "edits", "expect"),
    [pytest.param(*c, id=f"{c[1].split('/')[1]}-{c[2]}", marks=pytest.mark.xfail(
        reason=c[4][7:], strict=True) if (c[4] or "").startswith("xfail") else ())
     for c in CIRCE_CASES])
def test_circe_result_tests(expression, stem, cohort_id, edits, expect, tmp_path):
    data = load(CIRCE / f"{expression}.json")
    for edit in edits:
        edit(data)
    if expect and not expect.startswith("xfail"):
        assert expect in problems(data)
        return
    verify = next(rows for t, rows in load(CIRCE / f"{stem}_VERIFY.json").items()
                  if t.endswith(".cohort"))
    expected = [(r["subject_id"], r["cohort_start_date"], r["cohort_end_date"])
                for r in verify if r["cohort_definition_id"] == cohort_id]
    with catalog.open(_circe_release(tmp_path, stem)) as cat:
        rows = run(from_atlas(data), cat).members.iter_rows()
        assert [(s, str(a), str(b)) for s, a, b in rows] == expected


def test_custom_era_exit_as_circe_computes_it(tmp_path):
    data = expr(EndStrategy={"CustomEra": {"DrugCodesetId": 1, "GapDays": 30, "Offset": 15}})
    data["ConceptSets"].append(cset(1, "metformin", ("ATC", "A10BA02")))
    e11, met = concept_id("KCD8", "E11.9"), concept_id("ATC", "A10BA02")
    prep = {"person": [{"person_id": p, "gender_concept_id": 8532, "year_of_birth": 1960}
                       for p in (1, 2)],
            "observation_period": [{"observation_period_id": p, "person_id": p,
                                    "observation_period_start_date": "2010-01-01",
                                    "observation_period_end_date": "2020-12-31"} for p in (1, 2)],
            "condition_occurrence": [
                {"condition_occurrence_id": k, "person_id": p, "condition_concept_id": e11,
                 "condition_start_date": d} for k, (p, d) in enumerate(
                    [(1, "2015-01-01"), (1, "2015-02-20"), (2, "2015-06-01")])],
            "drug_exposure": [
                {"drug_exposure_id": k, "person_id": 1, "drug_concept_id": met,
                 "drug_exposure_start_date": a, "drug_exposure_end_date": b} for k, (a, b) in
                enumerate([("2015-01-01", "2015-01-10"), ("2015-02-20", "2015-02-28")])]}
    write_release(tmp_path / "r", prep, kind="fixture")
    # Circe: ends + 45 overlap (01-10 + 45 >= 02-20): one era to 02-28 + 15; person 2 has
    # no era, so only the observation end remains
    expected = [(1, "2015-01-01", "2015-03-15"), (2, "2015-06-01", "2020-12-31")]
    with catalog.open(tmp_path / "r") as cat:
        rows = run(from_atlas(data), cat).members.iter_rows()
        assert [(s, str(a), str(b)) for s, a, b in rows] == expected


# --- the same members as builder definitions on a synthetic release -------------------------

@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("atlas") / "release"
    build_release(out, persons=2000, genotyped=0, variants=0, seed=1, progress=False)
    return out


T2D_METFORMIN = {   # the builder module's example, as ATLAS would save it
    "ConceptSets": [cset(0, "T2D", ("KCD8", "E11")), cset(1, "metformin", ("ATC", "A10BA02")),
                    cset(2, "insulins", ("ATC", "A10A"))],
    "PrimaryCriteria": {"CriteriaList": [{"ConditionOccurrence": {"CodesetId": 0, "First": True}}],
                        "ObservationWindow": {"PriorDays": 365, "PostDays": 0},
                        "PrimaryCriteriaLimit": {"Type": "First"}},
    "QualifiedLimit": {"Type": "First"}, "ExpressionLimit": {"Type": "First"},
    "InclusionRules": [
        {"name": "aged 40-79 at diagnosis",
         "expression": group(demo=[{"Age": {"Value": 40, "Extent": 79, "Op": "bt"}}])},
        {"name": "metformin within 90 days", "expression": group(corr(
            {"DrugExposure": {"CodesetId": 1}}, start=(0, 1), end=(90, 1)))},
        {"name": "no insulin before", "expression": group(corr(
            {"DrugExposure": {"CodesetId": 2}}, start=(None, -1), end=(1, -1), occ=(0, 0)))}],
    "EndStrategy": {"DateOffset": {"DateField": "StartDate", "Offset": 730}},
    "CensoringCriteria": [], "CollapseSettings": {"CollapseType": "ERA", "EraPad": 0},
    "CensorWindow": {}}

HIGH_HBA1C = {
    "ConceptSets": [cset(0, "HbA1c", ("LOINC", "4548-4")),
                    {"id": 1, "name": "inpatient", "expression": {"items": [{"concept": {
                        "CONCEPT_ID": 9201, "CONCEPT_CODE": "IP", "VOCABULARY_ID": "Visit"},
                        "includeDescendants": True}]}}],
    "PrimaryCriteria": {"CriteriaList": [{"Measurement": {
        "CodesetId": 0, "ValueAsNumber": {"Value": 6.5, "Op": "gte"},
        "Unit": [{"CONCEPT_ID": 8554, "CONCEPT_CODE": "%", "VOCABULARY_ID": "UCUM"}]}}],
        "ObservationWindow": {"PriorDays": 0, "PostDays": 0},
        "PrimaryCriteriaLimit": {"Type": "All"}},
    "QualifiedLimit": {"Type": "First"}, "ExpressionLimit": {"Type": "All"},
    "InclusionRules": [
        {"name": "women 50-69", "expression": group(demo=[{
            "Age": {"Value": 49, "Op": "gt"}, "Gender": [{"CONCEPT_ID": 8532}]},
            {"Age": {"Value": 70, "Op": "lt"}}])},
        {"name": "high before or admitted around", "expression": group(
            corr({"Measurement": {"CodesetId": 0, "ValueAsNumber": {"Value": 7, "Op": "gte"}}},
                 start=(365, -1), end=(1, -1)),
            corr({"VisitOccurrence": {"CodesetId": 1}}, start=(30, -1), end=(30, 1)),
            type="ANY")}],
    "EndStrategy": {"DateOffset": {"DateField": "StartDate", "Offset": 180}},
    "CensoringCriteria": [{"Death": {}}],
    "CollapseSettings": {"CollapseType": "ERA", "EraPad": 30}, "CensorWindow": {}}

NEW_METFORMIN = {
    "ConceptSets": [cset(0, "metformin", ("ATC", "A10BA02")), cset(1, "HbA1c", ("LOINC", "4548-4")),
                    cset(2, "insulins", ("ATC", "A10A")), cset(3, "hypertension", ("KCD8", "I10")),
                    cset(4, "statins", ("ATC", "C10AA"))],
    "PrimaryCriteria": {"CriteriaList": [{"DrugExposure": {"CodesetId": 0, "First": True}}],
                        "ObservationWindow": {"PriorDays": 365, "PostDays": 0},
                        "PrimaryCriteriaLimit": {"Type": "First"}},
    "AdditionalCriteria": group(corr({"Measurement": {"CodesetId": 1, "ValueAsNumber": {
        "Value": 6.5, "Op": "gte"}}}, start=(90, -1), end=(0, 1))),
    "QualifiedLimit": {"Type": "First"}, "ExpressionLimit": {"Type": "First"},
    "InclusionRules": [{"name": "at most one of insulin, hypertension, statin before",
                        "expression": group(
                            corr({"DrugExposure": {"CodesetId": 2}}, end=(1, -1)),
                            corr({"ConditionOccurrence": {"CodesetId": 3}}, end=(0, 1)),
                            corr({"DrugExposure": {"CodesetId": 4}}, end=(1, -1)),
                            type="AT_MOST", count=1)}],
    "EndStrategy": {"CustomEra": {"DrugCodesetId": 0, "GapDays": 30, "Offset": 0}},
    "CollapseSettings": {"CollapseType": "ERA", "EraPad": 0}}

BUILDER_EQUIVALENTS = {
    "t2d-metformin": (T2D_METFORMIN, lambda: (
        cohort("T2D starting metformin")
        .entry(condition("KCD8", "E11").first(), prior_observation=365)
        .require("aged 40-79 at diagnosis", age(40, 79))
        .require("metformin within 90 days", drug("ATC", "A10BA02").within(0, 90))
        .exclude("no insulin before", drug("ATC", "A10A").within(None, -1))
        .exit_after(days=730).build())),
    "high-hba1c": (HIGH_HBA1C, lambda: (
        cohort("high HbA1c")
        .entry(measurement("LOINC", "4548-4", min=6.5, unit="%"), limit="all")
        .require("women 50-69", age(50, 69), sex("female"))
        .require_any("high before or admitted around",
                     measurement("LOINC", "4548-4", min=7).within(-365, -1),
                     visit("IP").within(-30, 30))
        .exit_after(days=180).censor(death()).collapse(30).build())),
    "new-metformin": (NEW_METFORMIN, lambda: (
        cohort("new metformin users with high HbA1c")
        .entry(drug("ATC", "A10BA02").first(), prior_observation=365)
        .require("HbA1c >= 6.5 in the 90 days up to start",
                 measurement("LOINC", "4548-4", min=6.5).within(-90, 0))
        .require("at most one of", at_least(   # at most 1 of 3 met = at least 2 not met
            2, drug("ATC", "A10A").within(None, -1).exactly(0),
            condition("KCD8", "I10").within(None, 0).exactly(0),
            drug("ATC", "C10AA").within(None, -1).exactly(0)))
        .exit_at_drug_end("ATC", "A10BA02", gap_days=30).first_result_only().build())),
    "young-or-female": (expr(group(demo=[{"Age": {"Value": 65, "Op": "gte"}},
                                         {"Gender": [{"CONCEPT_ID": 8507}]}],
                                   type="AT_MOST", count=0), limit="First"), lambda: (
        cohort("T2D, under 65 and not male")
        .entry(condition("KCD8", "E11"))
        .require("neither 65+ nor male", age(None, 64), sex("female")).build())),
}


@pytest.mark.parametrize("key", BUILDER_EQUIVALENTS)
def test_atlas_definitions_give_the_builders_members(key, release):
    data, build = BUILDER_EQUIVALENTS[key]
    with catalog.open(release) as cat:
        ours, theirs = run(from_atlas(data), cat), run(build(), cat)
        # a real check: non-empty, and the rules remove persons
        assert theirs.members.height > 20 and ours.step_persons[-1] < ours.step_persons[0]
        assert_frame_equal(ours.members, theirs.members)


def test_export_with_a_catalog_fills_the_release_concept_ids(release):
    c = BUILDER_EQUIVALENTS["t2d-metformin"][1]()
    with catalog.open(release) as cat:
        out = to_atlas(c, catalog=cat)
    rec = out["ConceptSets"][0]["expression"]["items"][0]["concept"]
    assert rec["CONCEPT_ID"] == concept_id("KCD8", "E11") and rec["VOCABULARY_ID"] == "KCD8"
    assert rec["CONCEPT_NAME"] and json.loads(json.dumps(out)) == out
    assert from_atlas(out, name=c.name) == c


# --- unsupported elements, errors -----------------------------------------------------------

def test_several_unsupported_elements_give_one_error_listing_each_path():
    data = expr(
        group(corr({"Observation": {"CodesetId": 0}}),
              corr({"Measurement": {"CodesetId": 0, "ValueAsNumber": {"Value": 6.5,
                                                                      "Op": "gt"}}})),
        primary=[{"ConditionOccurrence": {"CodesetId": 0, "ConditionType": [{"CONCEPT_ID": 1}],
                                          "Age": {"Value": 18, "Op": "gte"}}}],
        AdditionalCriteria=group(corr({"VisitOccurrence": {}}, EndWindow={
            "Start": {"Days": 0, "Coeff": -1}, "End": {"Coeff": 1}, "UseEventEnd": True})),
        CensorWindow={"StartDate": "2010-01-01", "EndDate": None},
        QualifiedLimit={"Type": "All"})     # Circe's default is First
    with pytest.raises(DefinitionError) as err:
        from_atlas(data)
    expected = ["PrimaryCriteria.CriteriaList[0].ConditionOccurrence.ConditionType",
                "PrimaryCriteria.CriteriaList[0].ConditionOccurrence.Age",
                "AdditionalCriteria.CriteriaList[0].EndWindow",
                "InclusionRules[0].expression.CriteriaList[0].Criteria.Observation",
                "InclusionRules[0].expression.CriteriaList[1].Criteria.Measurement"
                ".ValueAsNumber.Op",
                "CensorWindow"]
    assert [p for p, _ in err.value.problems] == expected
    assert err.value.path == expected[0]
    assert str(err.value).count(" unsupported: ") == 1
    assert all(p in str(err.value) for p in expected) and "Hint:" in str(err.value)


def test_export_names_every_part_circe_lacks():
    other = cohort("other").entry(condition("KCD8", "I10")).build()
    c = (cohort("x").entry(condition("KCD8", "E11"), screening("bmi", min=30))
         .require("lifelog", lifelog("steps", min=5000)).require("region", region("11"))
         .require("consent", consent("genomic"), has_genome())
         .require("member", member_of(other)).build())
    with pytest.raises(AtlasUnsupportedError) as err:
        to_atlas(c)
    assert [p for p, _ in err.value.problems] == [
        "entry.criteria[1]", "inclusion_rules[0].group.items[0].criterion",
        "inclusion_rules[1].group.items[0].criterion",
        "inclusion_rules[2].group.items[0].criterion",
        "inclusion_rules[2].group.items[1].criterion",
        "inclusion_rules[3].group.items[0].criterion"]
    assert "lifelog" in str(err.value) and "has_genome" in str(err.value)
    union = m.CohortSet(kind="union", name="u", cohorts=[c, other])
    with pytest.raises(DefinitionError, match="union"):
        to_atlas(union)


@pytest.mark.parametrize(("c", "path"), [
    (cohort("x").entry(condition("KCD8", "E11")).require("a", age(40.5)).build(),
     "inclusion_rules[0].group.items[0].criterion.value"),
    (cohort("x").entry(measurement("LOINC", "4548-4", min=6.54321)).build(),
     "entry.criteria[0].value"),
    (cohort("x").entry(death().first()).build(), "entry.criteria[0].first_occurrence"),
    (cohort("x").entry(death()).require("not old", age(80).exactly(0)).build(),
     "inclusion_rules[0].group.items[0]"),
])
def test_export_refuses_what_circe_would_compute_differently(c, path):
    with pytest.raises(AtlasUnsupportedError) as err:
        to_atlas(c)
    assert err.value.path == path


# --- mapping edges --------------------------------------------------------------------------

@pytest.mark.parametrize(("start", "end", "ignore", "window"), [
    ((None, -1), (None, 1), False, None),
    ((30, -1), (0, -1), False, m.Window(start=-30, end=0)),
    ((0, 1), (90, 1), False, m.Window(start=0, end=90)),
    ((None, 1), (None, 1), True, None),            # no observation bound: null is open
    ((None, 1), (10, 1), False, "StartWindow.Start"),   # Circe: on/after the period end
    ((None, -1), (None, -1), False, "StartWindow.End"),
    ((5, 1), (1, 1), False, "StartWindow"),          # start after end
])
def test_window_endpoints(start, end, ignore, window):
    data = expr(group(corr(T2D, start=start, end=end, IgnoreObservationPeriod=ignore)))
    if isinstance(window, str):
        assert problems(data) == [f"InclusionRules[0].expression.CriteriaList[0].{window}"]
    else:
        req = from_atlas(data).inclusion_rules[0].group.items[0]
        assert req.window == window and req.restrict_to_observation is not ignore


def test_index_end_anchor():
    sw = corr(T2D, start=(0, 1), end=(10, 1))
    sw["StartWindow"]["UseIndexEnd"] = True
    req = from_atlas(expr(group(sw))).inclusion_rules[0].group.items[0]
    assert req.window == m.Window(start=0, end=10, anchor="index_end")


@pytest.mark.parametrize(("rng", "expected"), [
    ({"Op": "gt", "Value": 17.9}, m.Range(min=18)),     # Java intValue truncates first
    ({"Op": "gte", "Value": 18}, m.Range(min=18)),
    ({"Op": "lt", "Value": 65}, m.Range(max=64)),
    ({"Op": "lte", "Value": 64.5}, m.Range(max=64)),
    ({"Op": "eq", "Value": 40}, m.Range(min=40, max=40)),
    ({"Op": "bt", "Value": 40, "Extent": 79}, m.Range(min=40, max=79)),
    ({"Op": "!bt", "Value": 40, "Extent": 79}, None),
])
def test_age_ops_on_whole_years(rng, expected):
    data = expr(group(demo=[{"Age": rng}]))
    if expected is None:
        assert problems(data) == ["InclusionRules[0].expression.DemographicCriteriaList[0]"
                                  ".Age.Op"]
    else:
        assert from_atlas(data).inclusion_rules[0].group.items[0].criterion.value == expected


@pytest.mark.parametrize(("rng", "expected"), [
    ({"Op": "gte", "Value": 6.5}, m.Range(min=6.5)),
    ({"Op": "bt", "Value": 6.5, "Extent": 30}, m.Range(min=6.5, max=30)),
    ({"Op": "eq", "Value": 7}, m.Range(min=7, max=7)),
    ({"Op": "lte", "Value": 6.12345}, m.Range(max=6.1235)),   # Circe writes %.4f
    ({"Op": "gt", "Value": 6.5}, None),        # strict bound on a real value: no inclusive one
    ({"Op": "lt", "Value": 6.5}, None),
    ({"Op": "!eq", "Value": 6.5}, None),
])
def test_measurement_value_ops(rng, expected):
    data = expr(primary=[{"Measurement": {"CodesetId": 0, "ValueAsNumber": rng}}])
    if expected is None:
        assert problems(data) == ["PrimaryCriteria.CriteriaList[0].Measurement.ValueAsNumber.Op"]
    else:
        assert from_atlas(data).entry.criteria[0].value == expected


@pytest.mark.parametrize(("occ", "expected"), [
    ({"Type": 0, "Count": 0}, m.Occurrence(op="exactly", count=0)),
    ({"Type": 1, "Count": 2}, m.Occurrence(op="at_most", count=2)),
    ({"Type": 2, "Count": 3, "IsDistinct": True, "CountColumn": "START_DATE"},
     m.Occurrence(op="at_least", count=3, distinct_dates=True)),
    ({"Type": 2, "Count": 2, "IsDistinct": True}, "Occurrence.CountColumn"),  # distinct concepts
    ({"Type": 7, "Count": 1}, "Occurrence"),
])
def test_occurrence(occ, expected):
    c = corr(T2D)
    c["Occurrence"] = occ
    if isinstance(expected, str):
        assert problems(expr(group(c))) == [f"InclusionRules[0].expression.CriteriaList[0]."
                                            f"{expected}"]
    else:
        assert from_atlas(expr(group(c))).inclusion_rules[0].group.items[0].occurrence == expected


def test_qualified_limit_counts_only_with_additional_criteria():
    plain = from_atlas(expr(QualifiedLimit={"Type": "First"}, ExpressionLimit={"Type": "All"}))
    assert (plain.entry.limit, plain.result_limit, plain.inclusion_rules) == ("all", "all", [])
    empty_ac = from_atlas(expr(AdditionalCriteria=group(), QualifiedLimit={"Type": "First"}))
    assert empty_ac.entry.limit == "first" and empty_ac.inclusion_rules == []
    ac_no_rules = from_atlas(expr(AdditionalCriteria=group(corr(T2D, end=(1, -1))),
                                  QualifiedLimit={"Type": "First"},
                                  ExpressionLimit={"Type": "All"}))
    assert ac_no_rules.result_limit == "first"
    assert [r.name for r in ac_no_rules.inclusion_rules] == ["ATLAS additional criteria"]
    assert problems(expr(group(corr(T2D)), AdditionalCriteria=group(corr(T2D)),
                         QualifiedLimit={"Type": "First"})) == ["QualifiedLimit"]


def test_correlated_criteria_on_the_only_entry_criterion_become_a_leading_rule():
    nested = {"ConditionOccurrence": {"CodesetId": 0, "CorrelatedCriteria": group(
        corr(T2D, end=(1, -1)))}}
    c = from_atlas(expr(group(demo=[{"Age": {"Op": "gte", "Value": 18}}]), primary=[nested]))
    assert [r.name for r in c.inclusion_rules] == ["ATLAS entry-event criteria", "rule 0"]
    path = "PrimaryCriteria.CriteriaList[0].ConditionOccurrence.CorrelatedCriteria"
    assert problems(expr(primary=[nested], limit="First")) == [path]
    assert problems(expr(primary=[nested, T2D])) == [path]


def test_visit_concepts_become_visit_types():
    visits = {"id": 1, "name": "IP or ER", "expression": {"items": [
        {"concept": {"CONCEPT_ID": cid}, "includeDescendants": True} for cid in (9201, 9203)]}}
    data = expr(primary=[{"VisitOccurrence": {"CodesetId": 1}}, {"VisitOccurrence": {}}])
    data["ConceptSets"].append(visits)
    first, anyv = from_atlas(data).entry.criteria
    assert first.visit_types == ["IP", "ER"] and anyv.visit_types == ["IP", "OP", "ER"]
    visits["expression"]["items"].append({"concept": {"CONCEPT_ID": 262}})
    assert problems(data) == ["ConceptSets[1].expression.items[2]"]


def test_concept_records_prefer_vocabulary_and_code():
    data = expr()
    data["ConceptSets"][0]["expression"]["items"].append(
        {"concept": {"CONCEPT_ID": 201826}, "isExcluded": True, "includeMapped": True})
    code, by_id = from_atlas(data).entry.criteria[0].concepts.items
    assert (code.vocabulary, code.code, code.concept_id) == ("KCD8", "E11", None)
    assert code.include_descendants and not code.exclude
    assert (by_id.concept_id, by_id.exclude, by_id.include_mapped, by_id.include_descendants) \
        == (201826, True, True, False)


def test_gender_and_drug_era():
    data = expr(group(demo=[{"Gender": [{"CONCEPT_ID": 8507}, {"CONCEPT_ID": 8507}]}]),
                primary=[{"DrugEra": {"CodesetId": 0, "First": True}}])
    with pytest.warns(AtlasApproximationWarning, match=r"CriteriaList\[0\].DrugEra"):
        c = from_atlas(data)
    assert c.entry.criteria[0] == m.DrugCriterion(concepts=c.entry.criteria[0].concepts,
                                                  first_occurrence=True)
    assert c.inclusion_rules[0].group.items[0].criterion == m.SexCriterion(values=["male"])
    data["InclusionRules"][0]["expression"]["DemographicCriteriaList"][0]["Gender"] = [
        {"CONCEPT_ID": 8551}]
    assert problems(data) == ["InclusionRules[0].expression.DemographicCriteriaList[0]"
                              ".Gender[0]"]


def test_webapi_export_wrapper_and_load_any(tmp_path):
    wrapped = {"name": "T2D (ATLAS)", "description": "from WebAPI",
               "expression": json.dumps(expr())}
    assert is_atlas(wrapped)
    c = from_atlas(wrapped)
    assert (c.name, c.description) == ("T2D (ATLAS)", "from WebAPI")
    (tmp_path / "atlas.json").write_text(json.dumps(expr()))
    assert load_any(tmp_path / "atlas.json").name == "atlas"
    ours = cohort("mine").entry(condition("KCD8", "E11")).build()
    io.save(ours, tmp_path / "ours.json")
    assert load_any(tmp_path / "ours.json") == ours
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DefinitionError, match="not valid JSON"):
        load_any(tmp_path / "bad.json")
    with pytest.raises(DefinitionError, match="does not exist"):
        load_any(tmp_path / "missing.json")


# --- round trip ------------------------------------------------------------------------------

_items = st.one_of(
    st.builds(m.ConceptItem, vocabulary=st.sampled_from(["KCD8", "ATC", "SNOMED"]),
              code=st.sampled_from(["E11", "I10", "A10BA02", "4548-4"]),
              include_descendants=st.booleans(), exclude=st.booleans(),
              include_mapped=st.booleans()),
    st.builds(m.ConceptItem, concept_id=st.integers(1, 3_000_000_000),
              include_descendants=st.booleans()))
_sets = st.builds(m.ConceptSet, name=st.sampled_from(["T2D", "metformin", "한글 이름"]),
                  items=st.lists(_items, min_size=1, max_size=3))
_days = st.one_of(st.none(), st.integers(-800, 800))
_value = st.integers(-10**6, 10**6).map(lambda v: v / 1000)


def _ordered(r: tuple) -> tuple:
    return r if None in r else (min(r), max(r))


_ranges = st.tuples(st.one_of(st.none(), _value), st.one_of(st.none(), _value)).filter(
    lambda r: r != (None, None)).map(lambda r: m.Range(min=_ordered(r)[0], max=_ordered(r)[1]))
_events = st.one_of(
    st.builds(m.ConditionCriterion, concepts=_sets, first_occurrence=st.booleans()),
    st.builds(m.DrugCriterion, concepts=_sets, first_occurrence=st.booleans()),
    st.builds(m.ProcedureCriterion, concepts=_sets, first_occurrence=st.booleans()),
    st.builds(m.MeasurementCriterion, concepts=_sets, value=st.one_of(st.none(), _ranges),
              unit=st.sampled_from([None, "%", "mg/dL"])),
    st.builds(m.MeasurementCriterion, concepts=_sets, first_occurrence=st.just(True)),
    st.builds(m.VisitCriterion, visit_types=st.lists(st.sampled_from(["IP", "OP", "ER"]),
                                                     min_size=1, max_size=3, unique=True)),
    st.builds(m.DeathCriterion),
    st.builds(m.ObservationPeriodCriterion, first_occurrence=st.booleans()))
_windows = st.one_of(st.none(), st.builds(
    lambda r, anchor: m.Window(start=_ordered(r)[0], end=_ordered(r)[1], anchor=anchor),
    st.tuples(_days, _days), st.sampled_from(["index_start", "index_end"]))).filter(
    lambda w: w != m.Window())
_event_reqs = st.builds(
    m.Requirement, criterion=_events, window=_windows,
    occurrence=st.builds(m.Occurrence, op=st.sampled_from(["at_least", "at_most", "exactly"]),
                         count=st.integers(0, 3), distinct_dates=st.booleans()),
    restrict_to_observation=st.booleans())
_ages = st.tuples(st.one_of(st.none(), st.integers(0, 120)),
                  st.one_of(st.none(), st.integers(0, 120))).filter(
    lambda r: r != (None, None)).map(lambda r: m.Range(min=_ordered(r)[0], max=_ordered(r)[1]))
_person_reqs = st.one_of(
    st.builds(lambda r: m.Requirement(criterion=m.AgeCriterion(value=r)), _ages),
    st.builds(lambda v: m.Requirement(criterion=m.SexCriterion(values=v)),
              st.lists(st.sampled_from(["male", "female"]), min_size=1, max_size=2,
                       unique=True)))


def _group(children: st.SearchStrategy) -> st.SearchStrategy:
    """Groups with items in Circe's order: criteria, demographics, subgroups."""
    parts = st.tuples(st.lists(_event_reqs, max_size=2), st.lists(_person_reqs, max_size=2),
                      st.lists(children, max_size=2), st.sampled_from(["all", "any", "at_least"]),
                      st.integers(0, 3)).filter(lambda t: t[0] or t[1] or t[2])
    return parts.map(lambda t: m.Group(mode=t[3], n=t[4] if t[3] == "at_least" else 1,
                                       items=[*t[0], *t[1], *t[2]]))


_groups = st.recursive(st.builds(lambda r: m.Group(items=[r]), _event_reqs), _group,
                       max_leaves=6)
_cohorts = st.builds(
    m.Cohort, name=st.text(min_size=1, max_size=12),
    entry=st.builds(m.Entry, criteria=st.lists(_events, min_size=1, max_size=3),
                    limit=st.sampled_from(["first", "all"]),
                    prior_observation=st.integers(0, 730), post_observation=st.integers(0, 30)),
    inclusion_rules=st.lists(st.builds(m.InclusionRule, name=st.text(min_size=1, max_size=10),
                                       description=st.text(max_size=10), group=_groups),
                             max_size=3),
    exit=st.one_of(st.builds(m.EndOfObservation),
                   st.builds(m.FixedOffset, days=st.integers(0, 3650),
                             anchor=st.sampled_from(["index_start", "index_end"])),
                   st.builds(m.DrugExposureEnd, concepts=_sets, gap_days=st.integers(0, 90),
                             offset=st.integers(0, 30))),
    censoring=st.lists(_events, max_size=2), result_limit=st.sampled_from(["first", "all"]),
    era_pad_days=st.integers(0, 60))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cohorts)
def test_round_trip_within_the_supported_subset(c):
    data = to_atlas(c)
    assert is_atlas(data) and json.loads(json.dumps(data)) == data
    assert from_atlas(copy.deepcopy(data), name=c.name, description=c.description) == c


def test_first_measurement_with_a_value_round_trips():
    """Both take each person's first measurement, then filter its value (Circe's order)."""
    c = cohort("x").entry(measurement("LOINC", "4548-4", min=6.5).first()).build()
    assert from_atlas(to_atlas(c), name="x") == c
