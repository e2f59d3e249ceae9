"""Copy as Python: exec of the generated code gives back an equal definition.

Checked on the shipped examples, on hand-made definitions that need the model's
constructors (what the builder cannot say), and on random definitions drawn with the
strategies of test_cohort_hypothesis (cohorts, set operations, genotype criteria).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from test_cohort_hypothesis import definitions, with_genotypes

from cohort import io
from cohort import model as m
from cohort.builder import age, cohort, condition, drug, lifelog, measurement, sex, visit
from cohort.to_python import to_python

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.json"))


def rebuilt(definition: m.Cohort | m.CohortSet):
    code = to_python(definition)
    namespace: dict = {}
    exec(compile(code, "<copy as python>", "exec"), namespace)  # noqa: S102
    return code, namespace["definition"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_rebuild_with_the_builder(path: Path):
    definition = io.load(path)
    code, back = rebuilt(definition)
    assert back == definition
    assert io.dumps(back) == io.dumps(definition)
    assert "m." not in code, code          # the examples need no model constructors
    assert "from cohort.builder import" in code


def test_examples_exist():
    assert len(EXAMPLES) >= 3


BUILDER_ONLY = [
    cohort("a").entry(condition("KCD8", "E11", "E10", descendants=False).first(),
                      prior_observation=365, post_observation=30, limit="all")
    .require("women 40-79", sex("female"), age(40, 79))
    .require_any("either", drug("ATC", "A10BA02").within(-30, 0).at_least(2)
                 .on_distinct_dates(), visit("IP", "ER").within(None, -1, anchor="index_end"))
    .exclude("no insulin", drug("ATC", "A10A", excluding=("A10AB",)).within(None, -1))
    .exit_at_drug_end("ATC", "A10BA02", gap_days=60, offset=7)
    .censor(condition("KCD8", "I21")).first_result_only().collapse(30).build(),
    cohort("b", "with a description").entry(measurement("LOINC", "4548-4", min=6.5,
                                                        unit="%"))
    .require("active", lifelog("steps", "days_meeting", 10, None, min_days=20, day_min=8000))
    .exit_after(365, anchor="index_end").build(),
]


@pytest.mark.parametrize("definition", BUILDER_ONLY, ids=["a", "b"])
def test_builder_definitions_round_trip_in_builder_form(definition):
    code, back = rebuilt(definition)
    assert back == definition
    assert "m." not in code, code


def test_what_the_builder_cannot_say_falls_back_to_the_model():
    base = cohort("c").entry(condition("KCD8", "E11")).require("adults", age(18, None)).build()
    rule = base.inclusion_rules[0]
    outside = m.Requirement(criterion=m.AgeCriterion(value=m.Range(min=18)),
                            restrict_to_observation=False)
    odd = base.model_copy(update={"inclusion_rules": [
        rule.model_copy(update={"description": "18 or older"}),
        m.InclusionRule(name="two of", group=m.Group(mode="at_least", n=2, items=[
            outside, outside])),
    ], "entry": m.Entry(criteria=[m.MeasurementCriterion(
        concepts=m.ConceptSet(name="by id", items=[m.ConceptItem(concept_id=3004410)]),
        value=m.Range())])})
    code, back = rebuilt(odd)
    assert back == odd
    assert "m.Cohort(" in code and "m.InclusionRule(" in code
    assert 'description="18 or older"' in code
    assert "age(18, None).criterion" in code      # criteria keep their builder form


def test_nested_cohort_member_and_sets():
    inner = cohort("inner").entry(condition("KCD8", "I10")).build()
    from cohort.builder import member_of
    outer = cohort("outer").entry(condition("KCD8", "E11")).require(
        "hypertensive before", member_of(inner).within(None, 0)).build()
    code, back = rebuilt(outer)
    assert back == outer and "member_of(" in code
    s = m.CohortSet(kind="minus", name="diff", cohorts=[outer, inner])
    code, back = rebuilt(s)
    assert back == s and "m.CohortSet(" in code


def test_a_wrong_rendering_would_be_caught():
    """The check is not vacuous: a definition changed after rendering differs."""
    d = BUILDER_ONLY[0]
    code = to_python(d).replace("365", "366")
    ns: dict = {}
    exec(code, ns)  # noqa: S102
    assert ns["definition"] != d


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definitions)
def test_random_definitions_round_trip(definition):
    code, back = rebuilt(definition)
    assert back == definition, code
    assert back.content_hash() == definition.content_hash()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(with_genotypes())
def test_random_genotype_definitions_round_trip(definition):
    code, back = rebuilt(definition)
    assert back == definition, code
