"""A cohort in parts (cohort.incremental): the single query's results after every edit,
and what an edit did not change is not computed again."""

from __future__ import annotations

from collections import Counter

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cohort import incremental
from cohort import model as m
from cohort.builder import (
    age,
    cohort,
    condition,
    consent,
    drug,
    lifelog,
    measurement,
    screening,
    sex,
)
from cohort.engine import _members, compile_for, split_result
from workbench import catalog
from workbench.release_io import write_release
from workbench.synth.vocabulary import concept_id


@pytest.fixture(scope="module")
def cat(small_release):
    c = catalog.open(small_release)
    yield c
    c.close()


@pytest.fixture(autouse=True)
def _forget():
    incremental.clear_parts()
    yield
    incremental.clear_parts()


def single(d: m.Cohort, cat) -> tuple[pl.DataFrame, list[int]]:
    """Members and attrition from the single compiled query."""
    return split_result(cat.sql(compile_for(d, cat).sql()).pl())


def in_parts(d: m.Cohort, cat) -> tuple[pl.DataFrame, list[int]]:
    out = incremental.evaluate_in_parts(d, cat)
    assert out is not None
    rows, persons, steps = out
    assert steps == ["entry events"] + [r.name for r in d.inclusion_rules]
    return _members(rows), persons


def base() -> m.Cohort:
    return (cohort("T2D").entry(condition("KCD8", "E11").first(), prior_observation=365)
            .require("aged 40-79", age(40, 79))
            .require("HbA1c >= 6.5", measurement("LOINC", "4548-4", min=6.5).within(-365, 0))
            .exclude("no insulin", drug("ATC", "A10A").within(-365, -1))
            .require("LDL >= 100", screening("ldl_cholesterol", min=100).within(-730, 0))
            .build())


def with_rule(d: m.Cohort, k: int, req, name: str | None = None) -> m.Cohort:
    rules = list(d.inclusion_rules)
    rules[k] = m.InclusionRule(name=name or rules[k].name,
                               group=m.Group(items=[req.requirement()]))
    return d.model_copy(update={"inclusion_rules": rules})


def with_entry(d: m.Cohort, **update) -> m.Cohort:
    return d.model_copy(update={"entry": d.entry.model_copy(update=update)})


def edits() -> list[tuple[str, m.Cohort]]:
    """A session of edits, each from the one before."""
    out = [("base", base())]

    def edit(name: str, fn) -> None:
        out.append((name, fn(out[-1][1])))

    edit("age max", lambda d: with_rule(d, 0, age(40, 70)))
    edit("HbA1c threshold", lambda d: with_rule(d, 1, measurement("LOINC", "4548-4", min=7)
                                                .within(-365, 0)))
    edit("HbA1c twice (distinct days)", lambda d: with_rule(d, 1, measurement(
        "LOINC", "4548-4", min=6.5).within(None, 0).at_least(2).on_distinct_dates()))
    edit("HbA1c once in 2 years", lambda d: with_rule(d, 1, measurement(
        "LOINC", "4548-4", min=7).within(-730, 0)))
    edit("a rule renamed", lambda d: with_rule(d, 3, screening("ldl_cholesterol", min=100)
                                               .within(-730, 0), name="LDL"))
    edit("prior observation 730", lambda d: with_entry(d, prior_observation=730))
    edit("prior observation 0", lambda d: with_entry(d, prior_observation=0))
    edit("post observation 180", lambda d: with_entry(d, post_observation=180))
    edit("all events of the first diagnosis", lambda d: with_entry(d, limit="all"))
    edit("every diagnosis, all events", lambda d: with_entry(
        d, criteria=[condition("KCD8", "E11").criterion]))
    edit("every diagnosis, first event", lambda d: with_entry(d, limit="first"))
    edit("two entry criteria", lambda d: with_entry(d, criteria=[
        *d.entry.criteria, drug("ATC", "A10BA").criterion]))
    edit("a rule added", lambda d: d.model_copy(update={"inclusion_rules": [
        *d.inclusion_rules, m.InclusionRule(name="women", group=m.Group(
            items=[sex("female").requirement()]))]}))
    edit("rules reordered", lambda d: d.model_copy(update={
        "inclusion_rules": d.inclusion_rules[::-1]}))
    edit("a rule removed", lambda d: d.model_copy(update={
        "inclusion_rules": d.inclusion_rules[1:]}))
    edit("steps rule", lambda d: d.model_copy(update={"inclusion_rules": [
        *d.inclusion_rules, m.InclusionRule(name="steps", group=m.Group(items=[
            lifelog("steps", "mean", max=12000, min_days=3).within(-365, 0).requirement()]))]}))
    edit("steps rule removed", lambda d: d.model_copy(update={
        "inclusion_rules": d.inclusion_rules[:-1]}))
    edit("exit 365 days after the index", lambda d: d.model_copy(update={
        "exit": m.FixedOffset(days=365)}))
    edit("exit at the end of metformin", lambda d: d.model_copy(update={
        "exit": m.DrugExposureEnd(concepts=drug("ATC", "A10BA").criterion.concepts)}))
    edit("censored at insulin", lambda d: d.model_copy(update={
        "censoring": [drug("ATC", "A10A").criterion]}))
    edit("first result only, eras padded", lambda d: d.model_copy(update={
        "result_limit": "first", "era_pad_days": 30}))
    edit("no rules", lambda d: d.model_copy(update={"inclusion_rules": []}))
    edit("no one", lambda d: with_rule(base(), 0, age(200, None)))
    return out


def test_every_edit_gives_the_single_query_results(cat):
    shown = 0
    for name, d in edits():
        want_members, want_steps = single(d, cat)
        got_members, got_steps = in_parts(d, cat)
        assert got_steps == want_steps, name
        assert_frame_equal(got_members, want_members)
        shown += want_members.height > 0
    assert shown >= 15      # the comparisons are not of empty cohorts


def test_the_same_from_a_cold_start_after_every_edit(cat):
    """Kept parts never change a result: each edited cohort, computed with everything
    that came before kept, equals it computed from nothing."""
    warm = {}
    for name, d in edits():
        warm[name] = in_parts(d, cat)
    for name, d in edits():
        incremental.clear_parts()
        cold = in_parts(d, cat)
        assert cold[1] == warm[name][1], name
        assert_frame_equal(cold[0], warm[name][0])


@pytest.fixture
def computed(monkeypatch) -> Counter:
    """What evaluate_in_parts compiles: entry events, index events, rules by number."""
    seen: Counter = Counter()

    def spy(name, fn, note):
        def wrapped(*args, **kw):
            note(*args, **kw)
            return fn(*args, **kw)
        monkeypatch.setattr(incremental, name, wrapped)

    spy("compile_entry_events", incremental.compile_entry_events,
        lambda *a, **k: seen.update(["entry events"]))
    spy("compile_index", incremental.compile_index, lambda *a, **k: seen.update(["index"]))
    spy("compile_rules", incremental.compile_rules,
        lambda d, rules, *a, **k: seen.update(f"rule {r}" for r in rules))
    return seen


def test_an_edit_recomputes_only_what_it_changed(cat, computed):
    d = base()
    in_parts(d, cat)
    assert computed == Counter({"entry events": 1, "index": 1, "rule 0": 1, "rule 1": 1,
                                "rule 2": 1, "rule 3": 1})

    def after(edited: m.Cohort) -> Counter:
        computed.clear()
        in_parts(edited, cat)
        return Counter(computed)

    # a threshold: that rule only
    assert after(with_rule(d, 3, screening("ldl_cholesterol", min=130).within(-730, 0))) \
        == Counter({"rule 3": 1})
    # a rule renamed, rules reordered, a rule removed: nothing but counting
    assert after(with_rule(d, 0, age(40, 79), name="adults")) == Counter()
    assert after(d.model_copy(update={"inclusion_rules": d.inclusion_rules[::-1]})) \
        == Counter()
    assert after(d.model_copy(update={"inclusion_rules": d.inclusion_rules[:2]})) \
        == Counter()
    # a longer prior observation: index events again from the kept entry events, and
    # (first diagnoses: a subset of the index events seen) no rule runs
    assert after(with_entry(d, prior_observation=730)) == Counter({"index": 1})
    # back to an entry seen before: nothing at all
    assert after(d) == Counter()
    # another entry criterion: its events, and the rules on the new index events only
    other = with_entry(d, criteria=[condition("KCD8", "I10").first().criterion])
    assert after(other) == Counter({"entry events": 1, "index": 1, "rule 0": 1, "rule 1": 1,
                                    "rule 2": 1, "rule 3": 1})


def test_a_person_level_table_with_two_rows_for_a_person_falls_back(tmp_path):
    """Two consent rows for one person: the single query counts that index event once
    per row; the parts cannot, so they give None and the engine runs the single query."""
    from cohort.engine import run

    e11 = concept_id("KCD8", "E11.9")
    persons = [{"person_id": i, "gender_concept_id": 8532, "year_of_birth": 1960,
                "location_id": 1} for i in (1, 2)]
    write_release(tmp_path / "r", {
        "person": persons,
        "observation_period": [{"observation_period_id": i, "person_id": i,
                                "observation_period_start_date": "2010-01-01",
                                "observation_period_end_date": "2020-12-31"} for i in (1, 2)],
        "condition_occurrence": [{"condition_occurrence_id": i, "person_id": i,
                                  "condition_concept_id": e11,
                                  "condition_start_date": "2015-01-01"} for i in (1, 2)],
        "consent": [{"person_id": 1, "consent_date": "2012-01-01", "clinical": True,
                     "genomic": True},
                    {"person_id": 1, "consent_date": "2014-01-01", "clinical": True,
                     "genomic": False},
                    {"person_id": 2, "consent_date": "2012-01-01", "clinical": True,
                     "genomic": False}]},
        kind="fixture")
    d = (cohort("t2d").entry(condition("KCD8", "E11")).require("genomic", consent("genomic"))
         .require("women", sex("female")).build())
    with catalog.open(tmp_path / "r") as c:
        assert incremental.evaluate_in_parts(d, c) is None
        assert run(d, c).step_persons == single(d, c)[1] == [2, 1, 1]
