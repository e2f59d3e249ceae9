"""The engine's SQL against an independent Polars reference, on the default release.

Each definition below is realistic (a protocol someone could write) and together they
cover every criterion kind, windows on both anchors with open, negative and positive
bounds, every occurrence operator (and distinct dates), nested any/all/at-least groups,
first occurrence, entry limit first/all, prior/post observation, every exit strategy,
censoring, result limit, era padding, cohort membership and the set operations. Members
and attrition must be identical; most cohorts must be non-empty so the test can fail.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from reference.polars_cohort import evaluate

from cohort import model as m
from cohort.builder import (
    Req,
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
    observation_period,
    procedure,
    region,
    region_indicator,
    screening,
    sex,
    visit,
)
from cohort.engine import run
from workbench import catalog

pytestmark = pytest.mark.slow

T2D = condition("KCD8", "E11")
HTN = condition("KCD8", "I10")
LIPID = condition("KCD8", "E78")
CKD = condition("KCD8", "N18")
MI = condition("KCD8", "I21")
STROKE = condition("KCD8", "I63")
URI = condition("KCD8", "J06.9")
GERD = condition("KCD8", "K21")
METFORMIN = drug("ATC", "A10BA02")
INSULIN = drug("ATC", "A10A")
STATIN = drug("ATC", "C10AA")
LOSARTAN = drug("ATC", "C09CA01")
ASPIRIN = drug("ATC", "B01AC06")
AMOXICILLIN = drug("ATC", "J01CA04")
HBA1C = "4548-4"
LDL = "13457-7"
EGFR = "62238-1"
SBP = "8480-6"
EGD, PCI = "76009000", "415070008"


def unrestricted(r: Req) -> m.Requirement:
    """A requirement whose events may lie outside the index's observation period."""
    return m.Requirement(criterion=r.criterion, window=r.window, occurrence=r.occurrence,
                         restrict_to_observation=False)


def rule(name: str, *items: Req | m.Group | m.Requirement, mode: str = "all",
         n: int = 1) -> m.InclusionRule:
    its = [i.requirement() if isinstance(i, Req) else i for i in items]
    return m.InclusionRule(name=name, group=m.Group(mode=mode, n=n, items=its))


def with_rules(c: m.Cohort, *rules: m.InclusionRule) -> m.Cohort:
    return c.model_copy(update={"inclusion_rules": [*c.inclusion_rules, *rules]})


@dataclass(frozen=True)
class Case:
    name: str
    definition: m.Cohort | m.CohortSet
    nonempty: bool = True


URI_COHORT = cohort("URI").entry(URI, limit="all").exit_after(7).build()
T2D_COHORT = cohort("T2D").entry(T2D).build()
HTN_COHORT = cohort("HTN").entry(HTN).build()
CKD_COHORT = cohort("CKD").entry(CKD).build()
METFORMIN_USERS = (cohort("metformin users").entry(METFORMIN, limit="all")
                   .exit_at_drug_end("ATC", "A10BA02", gap_days=30).build())

CASES = [
    Case("t2d new metformin users, 40-79, no prior insulin", (
        cohort("t2d metformin").entry(T2D.first(), prior_observation=365)
        .require("aged 40-79 at diagnosis", age(40, 79))
        .require("metformin within 90 days", METFORMIN.within(0, 90))
        .exclude("no insulin before", INSULIN.within(None, -1))
        .exit_after(730).build())),
    Case("hypertension all events, lab evidence, women in Seoul/Busan, censor stroke", (
        cohort("htn labs").entry(HTN, limit="all")
        .require_any("lab evidence",
                     measurement("LOINC", SBP, min=140).within(-30, 30),
                     measurement("LOINC", HBA1C, min=6.5).within(-365, 0))
        .require("women in Seoul or Busan", sex("female"), region("11", "26"))
        .censor(STROKE).collapse(30).build())),
    Case("screened wearers with low steps, genome and consent, exit at ARB end", (
        cohort("steps").entry(screening("bmi"), limit="all")
        .require("low steps", lifelog("steps", "mean", max=6000, min_days=20).within(-90, -1))
        .require("genome and consent", has_genome(), consent("genomic"))
        .exit_at_drug_end("ATC", "C09CA01").first_result_only().build())),
    Case("MI with diabetes or repeated statins, exit 365 after index end", (
        cohort("mi").entry(MI)
        .require("risk", any_of(T2D.within(None, 0), STATIN.within(-365, 0).at_least(2)))
        .exit_after(365, anchor="index_end").build())),
    Case("low eGFR twice on distinct dates 90+ days apart (CKD by labs)", (
        cohort("ckd labs").entry(measurement("LOINC", EGFR, max=60, unit="mL/min/{1.73_m2}"),
                                 limit="all")
        .require("another low eGFR 90-365 days before",
                 measurement("LOINC", EGFR, max=60).within(-365, -90).on_distinct_dates())
        .first_result_only().build())),
    Case("statin new users, exposure era exit, censored at death", (
        cohort("statin").entry(STATIN, prior_observation=365)
        .exclude("no statin in the prior year", STATIN.within(-365, -1))
        .exit_at_drug_end("ATC", "C10AA", gap_days=30)
        .censor(death()).build())),
    Case("all losartan exposures, gap 0, offset 7, exit at exposure end", (
        cohort("losartan").entry(LOSARTAN, limit="all")
        .exit_at_drug_end("ATC", "C09CA01", gap_days=0, offset=7).build())),
    Case("deaths at 70+ with hypertension before (unbounded past)", (
        cohort("deaths").entry(death())
        .require("70 or older", age(70, None))
        .require("hypertension ever before", HTN.within(None, -1))
        .build())),
    Case("observation start, overweight at a screening in the first two years", (
        cohort("op").entry(observation_period())
        .require("BMI >= 25 within 2 years", screening("bmi", min=25).within(0, 730))
        .exit_after(365).build())),
    Case("high screening SBP, no hypertension diagnosis before, first only", (
        cohort("undiagnosed").entry(screening("sbp", min=140), limit="all")
        .exclude("no I10 up to index", HTN.within(None, 0))
        .exit_after(30).first_result_only().build())),
    Case("endoscopies (all) with reflux or gastritis in the 180 days before", (
        cohort("egd").entry(procedure("SNOMED", EGD), limit="all")
        .require_any("indication", GERD.within(-180, 0),
                     condition("KCD8", "K29").within(-180, 0))
        .exit_after(0).build())),
    Case("PCI or coronary angiography after MI or chronic IHD within 30 days", (
        cohort("pci").entry(procedure("SNOMED", PCI), procedure("SNOMED", "33367005"))
        .require_any("ischaemic heart disease", MI.within(-30, 0),
                     condition("KCD8", "I25").within(-30, 0))
        .exit_after(90).build())),
    Case("first URI treated with amoxicillin within 7 days", (
        cohort("uri abx").entry(URI.first())
        .require("amoxicillin in [0, 7]", AMOXICILLIN.within(0, 7))
        .exit_after(7).build())),
    Case("T2D with metformin up to 30 days after the diagnosis end (index_end anchor)", (
        cohort("t2d met").entry(T2D, limit="all")
        .require("metformin by index end + 30", METFORMIN.within(None, 30, anchor="index_end"))
        .exit_after(0, anchor="index_end").collapse(0).build())),
    Case("hypertension with at most 3 outpatient visits in the next year", (
        cohort("htn few visits").entry(HTN.first())
        .require("<= 3 OP visits", visit("OP").within(1, 365).at_most(3))
        .build())),
    Case("T2D with exactly one HbA1c around the diagnosis", (
        cohort("t2d one a1c").entry(T2D)
        .require("exactly one HbA1c in [-90, 90]", measurement("LOINC", HBA1C)
                 .within(-90, 90).exactly(1))
        .exit_after(180).build())),
    Case("gastritis visits with 3+ URI dates in the past year", (
        cohort("k29 uri").entry(condition("KCD8", "K29.7"), limit="all")
        .require("3 URI dates", URI.within(-365, 0).at_least(3).on_distinct_dates())
        .exit_after(30).collapse(60).build())),
    Case("hypertension with at least 2 of 5 risk factors", with_rules(
        cohort("htn risk").entry(HTN.first()).exit_after(365).build(),
        rule("2 of 5 risk factors", LIPID.within(None, 0), T2D.within(None, 0),
             CKD.within(None, 0), age(60, None), sex("male"), mode="at_least", n=2))),
    Case("nested groups: (diabetes and (metformin or insulin)) or (CKD and low eGFR)", (
        cohort("nested").entry(visit("IP", "ER"))
        .require("treated diabetes or confirmed CKD", any_of(
            all_of(T2D.within(None, 0), any_of(METFORMIN.within(-180, 0),
                                               INSULIN.within(-180, 0))),
            all_of(CKD.within(None, 0), measurement("LOINC", EGFR, max=60).within(-365, 0))))
        .exit_after(0, anchor="index_end").build())),
    Case("T2D: any of (at least 2 of 3 abnormal labs) or (insulin and CKD)", (
        cohort("t2d severe").entry(T2D.first(), prior_observation=180)
        .require("severity", any_of(
            at_least(2, measurement("LOINC", HBA1C, min=8).within(-180, 30),
                     measurement("LOINC", LDL, min=130).within(-365, 30),
                     measurement("LOINC", SBP, min=140).within(-90, 30)),
            all_of(INSULIN.within(-365, 0), CKD.within(None, 0))))
        .exit_after(365).build())),
    Case("hypertension with a first-ever T2D diagnosis in the prior year", (
        cohort("htn new t2d").entry(HTN.first())
        .require("first T2D in [-365, 0]", T2D.first().within(-365, 0))
        .exit_after(365).build())),
    Case("MI with aspirin at any time, observation not required", with_rules(
        cohort("mi aspirin").entry(MI.first()).exit_after(180).build(),
        rule("aspirin ever (outside observation too)", unrestricted(ASPIRIN)))),
    Case("diabetes in deprived, polluted regions in the index year", (
        cohort("t2d deprived").entry(T2D)
        .require("deprived", region_indicator("deprivation_index", min=0.5))
        .require("PM2.5 <= 30", region_indicator("pm25", max=30))
        .build())),
    Case("screened with lifelog consent and 10+ days of 10k steps in 180 days", (
        cohort("active").entry(screening("bmi", min=18.5), limit="all")
        .require("lifelog consent", consent("lifelog"))
        .require("10 days >= 10,000 steps", lifelog("steps", "days_meeting", min=10,
                                                     day_min=10_000).within(-180, 0))
        .first_result_only().build())),
    Case("wearers: min sleep, max resting HR, summed active minutes (default window)", (
        cohort("sleep").entry(URI, limit="all")
        .require("sleep >= 240 every day", lifelog("sleep_minutes", "min", min=240))
        .require("resting HR never above 80", lifelog("resting_hr", "max", max=80, min_days=7))
        .require("1000+ active minutes", lifelog("active_minutes", "sum", min=1000))
        .exit_after(0).build())),
    Case("T2D after a URI cohort entry in the 90 days before", (
        cohort("t2d after uri").entry(T2D)
        .require("URI cohort in [-90, -1]", member_of(URI_COHORT).within(-90, -1))
        .exit_after(0).build())),
    Case("hypertension, not in the metformin-user cohort around index end", (
        cohort("htn no met").entry(HTN)
        .exclude("no metformin era start in [-30, 30] of index end",
                 member_of(METFORMIN_USERS).within(-30, 30, anchor="index_end"))
        .build())),
    Case("lipid disorder with 180 days prior and 365 days post observation", (
        cohort("lipid").entry(LIPID.first(), prior_observation=180, post_observation=365)
        .build())),
    Case("hypertension censored at MI, stroke or death", (
        cohort("htn censored").entry(HTN.first()).censor(MI, STROKE, death()).build())),
    Case("URI episodes: all events, 14-day exit, eras padded 30 days", (
        cohort("uri episodes").entry(URI, limit="all").exit_after(14).collapse(30).build())),
    Case("first qualifying T2D event with an LDL >= 160 mg/dL within 1 year", (
        cohort("t2d ldl").entry(T2D, limit="all")
        .require("LDL >= 160 mg/dL", measurement("LOINC", LDL, min=160, unit="mg/dL")
                 .within(-365, 365))
        .exit_after(365).first_result_only().build())),
    Case("URI with mapped KCD7 codes (matched on the concept column, as Circe)", (
        cohort("uri mapped").entry(condition("KCD8", "J06", mapped=True), limit="all")
        .exclude("no mapped-only URI code (KCD8 J06.9 excluded) in the year before",
                 condition("KCD8", "J06", mapped=True, excluding=("J06.9",)).within(-365, -1))
        .exit_after(0).build())),
    Case("cardiovascular entry by diagnosis, procedure or aspirin; older men", (
        cohort("cv").entry(MI, procedure("SNOMED", PCI), ASPIRIN, prior_observation=30)
        .require("men 50+", sex("male"), age(50, None))
        .exit_after(30).build())),
    Case("inpatient/ER stays, 30 days post observation, exit 30 after discharge", (
        cohort("ip").entry(visit("IP", "ER"), limit="all", post_observation=30)
        .require("no URI in the 7 days after admission", URI.within(0, 7).exactly(0))
        .exit_after(30, anchor="index_end").collapse(7).build())),
    Case("screening with normal LDL and smoking, exercise items", (
        cohort("screen").entry(screening("ldl_cholesterol", max=130), limit="all")
        .require("current smoker at a screening within 2 years",
                 screening("smoking_status", min=3, max=3).within(-730, 730))
        .require("exercises >= 3 days/week", screening("exercise_days_per_week", min=3)
                 .within(0, 0))
        .first_result_only().build())),
    Case("union: diabetes, hypertension or CKD",
         m.CohortSet(kind="union", name="cardiometabolic",
                     cohorts=[T2D_COHORT, HTN_COHORT, CKD_COHORT])),
    Case("intersect: diabetes and hypertension and metformin use",
         m.CohortSet(kind="intersect", name="t2d htn met",
                     cohorts=[T2D_COHORT, HTN_COHORT, METFORMIN_USERS])),
    Case("minus: hypertension minus diabetes minus CKD",
         m.CohortSet(kind="minus", name="htn only",
                     cohorts=[HTN_COHORT, T2D_COHORT, CKD_COHORT])),
    Case("nested sets: (URI episodes minus T2D) union (T2D and HTN)",
         m.CohortSet(kind="union", name="nested", cohorts=[
             m.CohortSet(kind="minus", name="uri no t2d", cohorts=[
                 cohort("uri").entry(URI, limit="all").exit_after(14).collapse(30).build(),
                 T2D_COHORT]),
             m.CohortSet(kind="intersect", name="t2d htn", cohorts=[
                 cohort("t2d 1y").entry(T2D).exit_after(365).build(), HTN_COHORT])])),
    Case("asthma or GERD in Seoul with public consent, at least 1 of 0 groups", with_rules(
        cohort("asthma").entry(condition("KCD8", "J45"), GERD).exit_after(90).build(),
        rule("public consent in Seoul", consent("public"), region("11")),
        rule("trivially true (at least 0)", sex("female"), mode="at_least", n=0))),
    Case("cancer (stomach or lung) with CT or EGD before, exit end of observation", (
        cohort("cancer").entry(condition("KCD8", "C16", "C34"))
        .require_any("workup", procedure("SNOMED", EGD).within(-90, 0),
                     procedure("SNOMED", "169069000").within(-90, 0))
        .build())),
    Case("no death in observation: death exactly 0 anytime after index", (
        cohort("alive").entry(CKD.first())
        .exclude("did not die", death().within(0, None))
        .require("at least one eGFR ever", measurement("LOINC", EGFR))
        .exit_after(1000).build())),
]


@pytest.fixture(scope="module")
def cat(default_release):
    c = catalog.open(default_release)
    yield c
    c.close()


def test_cases_are_many_and_distinct():
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)
    assert len({c.definition.content_hash() for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_engine_matches_reference(case: Case, cat, default_release):
    got = run(case.definition, cat)
    want_members, want_steps = evaluate(case.definition, default_release, cat)
    members = got.members.select(
        pl.col("subject_id").cast(pl.Int64), pl.col("cohort_start_date").cast(pl.Date),
        pl.col("cohort_end_date").cast(pl.Date)).sort("subject_id", "cohort_start_date")
    assert_frame_equal(members, want_members)
    assert got.step_persons == want_steps
    if case.nonempty:
        assert want_members.height > 0, "the cohort is empty: the comparison proves little"
