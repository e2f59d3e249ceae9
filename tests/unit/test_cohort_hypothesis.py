"""Random definitions: the engine's SQL equals the independent Polars reference.

Hypothesis draws cohort definitions (random entry events, 0-3 inclusion rules of random
requirements and nested groups with random windows, occurrences and person-level
criteria, random exit, censoring, limits and era padding; sometimes set operations) and
runs each on a small release with the engine and with ``reference.polars_cohort``. The
members and the attrition must be identical (see TIED_ROWS_BUG for the one known engine
bug). The same definitions must survive a JSON round trip with a stable content hash.

Run time (~3 min for 500 examples on 2 cores) is mostly the engine compiling SQL
(sqlglot), not the release's size; the strategies weight the costly parts (set
operations, drug-era exits, nested cohorts) down rather than cut the example count.
"""

from __future__ import annotations

from collections import Counter

import polars as pl
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from reference.polars_cohort import evaluation

from cohort import io
from cohort import model as m
from cohort.engine import run
from workbench import catalog
from workbench.synth.build import build_release

EXAMPLES = 500

# --- vocabulary of the synthetic release ---------------------------------------------

CONDITIONS = ["J06.9", "K29.7", "M54.5", "I10", "E11", "E11.9", "E78", "N18", "K21", "J06",
              "I21", "I25", "I63", "J45", "C16"]
CONDITION_EXCLUDES = {"E11": "E11.9", "J06": "J06.9", "N18": "N18.9", "E78": "E78.5",
                      "I21": "I21.9", "K21": "K21.9"}
DRUGS = ["J01CA04", "N02BE01", "C09CA01", "C10AA", "C10AA05", "C08CA01", "A10BA02", "A10A",
         "B01AC06", "A02BC01"]
PROCEDURES = ["76009000", "29303009", "73761001", "415070008"]
LABS = {  # LOINC code -> (unit, thresholds)
    "4548-4": ("%", [5.0, 5.7, 6.5, 7.0, 8.0]),
    "13457-7": ("mg/dL", [70.0, 100.0, 130.0, 160.0]),
    "2093-3": ("mg/dL", [150.0, 200.0, 240.0]),
    "62238-1": ("mL/min/{1.73_m2}", [30.0, 45.0, 60.0, 90.0]),
    "8480-6": ("mm[Hg]", [110.0, 120.0, 130.0, 140.0, 160.0]),
}
SCREENING = {
    "height_cm": [150, 160, 170, 180], "weight_kg": [50, 60, 70, 80], "bmi": [18.5, 23, 25, 30],
    "waist_cm": [75, 85, 90, 95], "sbp": [110, 120, 130, 140], "dbp": [70, 80, 90],
    "fasting_glucose": [90, 100, 126], "total_cholesterol": [160, 200, 240],
    "ldl_cholesterol": [85, 100, 130, 160], "hdl_cholesterol": [40, 50, 60],
    "triglycerides": [90, 150, 200], "egfr": [60, 90, 110], "smoking_status": [1, 2, 3],
    "drinking_days_per_week": [0, 1, 3, 7], "exercise_days_per_week": [0, 2, 3, 5],
}
LIFELOG = {"steps": [3000, 5000, 8000, 10000], "sleep_minutes": [300, 400, 450, 500],
           "resting_hr": [55, 60, 66, 70, 80], "active_minutes": [20, 30, 60, 100]}
REGIONS = ["11", "26", "27", "28", "29", "30", "41", "48"]
BOUNDS = [-1095, -730, -365, -180, -90, -30, -7, -1, 0, 1, 7, 30, 90, 180, 365, 730]

# --- strategies ------------------------------------------------------------------------


def weighted(*options: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """One of the strategies, drawn with the given weights (``st.one_of`` draws its
    distinct branches alike); shrinks towards the first."""
    bag = [strategy for weight, strategy in options for _ in range(weight)]
    return st.integers(0, len(bag) - 1).flatmap(lambda k: bag[k])


def ranges(values: list[float]) -> st.SearchStrategy[m.Range]:
    """One- or two-sided closed ranges over plausible thresholds (or anything)."""
    v = st.sampled_from(values)
    two = st.tuples(v, v).map(lambda t: m.Range(min=min(t), max=max(t)))
    return st.one_of(v.map(lambda x: m.Range(min=x)), v.map(lambda x: m.Range(max=x)), two,
                     st.just(m.Range()))


@st.composite
def concept_sets(draw, vocabulary: str, codes: list[str],
                 excludes: dict[str, str] | None = None) -> m.ConceptSet:
    chosen = draw(st.lists(st.sampled_from(codes), min_size=1, max_size=2, unique=True))
    items = [m.ConceptItem(vocabulary=vocabulary, code=c,
                           include_descendants=draw(st.booleans()),
                           include_mapped=draw(st.booleans())) for c in chosen]
    for c in chosen:
        if excludes and c in excludes and draw(st.integers(0, 3)) == 0:
            items.append(m.ConceptItem(vocabulary=vocabulary, code=excludes[c], exclude=True))
    return m.ConceptSet(name=f"{vocabulary} {'/'.join(chosen)}", items=items)


first = st.integers(0, 3).map(lambda k: k == 0)


@st.composite
def measurements(draw) -> m.MeasurementCriterion:
    code = draw(st.sampled_from(list(LABS)))
    unit, values = LABS[code]
    return m.MeasurementCriterion(
        concepts=m.ConceptSet(name=code, items=[m.ConceptItem(vocabulary="LOINC", code=code)]),
        value=draw(st.one_of(st.none(), ranges(values))),
        unit=draw(st.sampled_from([None, None, unit, "mmol/mol"])),
        first_occurrence=draw(first))


@st.composite
def screenings(draw) -> m.ScreeningCriterion:
    item = draw(st.sampled_from(list(SCREENING)))
    return m.ScreeningCriterion(item=item, value=draw(ranges(SCREENING[item])),
                                first_occurrence=draw(first))


def event_criteria() -> st.SearchStrategy:
    """Every event kind; frequent kinds first (they keep cohorts non-empty)."""
    return st.one_of(
        st.builds(m.ConditionCriterion, concepts=concept_sets("KCD8", CONDITIONS,
                                                              CONDITION_EXCLUDES),
                  first_occurrence=first),
        st.builds(m.DrugCriterion, concepts=concept_sets("ATC", DRUGS), first_occurrence=first),
        measurements(),
        screenings(),
        st.builds(m.VisitCriterion, visit_types=st.lists(
            st.sampled_from(["OP", "IP", "ER"]), min_size=1, max_size=3, unique=True),
            first_occurrence=first),
        st.builds(m.ProcedureCriterion, concepts=concept_sets("SNOMED", PROCEDURES),
                  first_occurrence=first),
        st.builds(m.ObservationPeriodCriterion, first_occurrence=first),
        st.builds(m.DeathCriterion, first_occurrence=first),
    )


@st.composite
def lifelogs(draw) -> m.LifelogCriterion:
    metric = draw(st.sampled_from(list(LIFELOG)))
    aggregate = draw(st.sampled_from(["mean", "min", "max", "sum", "days_meeting"]))
    if aggregate == "days_meeting":
        value, day_range = draw(ranges([1, 3, 10, 30])), draw(ranges(LIFELOG[metric]))
    elif aggregate == "sum":
        value, day_range = draw(ranges([v * 30 for v in LIFELOG[metric]])), None
    else:
        value, day_range = draw(ranges(LIFELOG[metric])), None
    return m.LifelogCriterion(metric=metric, aggregate=aggregate, value=value,
                              day_range=day_range, min_days=draw(st.sampled_from([1, 1, 3, 20])))


def person_criteria() -> st.SearchStrategy:
    return st.one_of(
        st.builds(m.AgeCriterion, value=ranges([18, 30, 40, 50, 65, 80])),
        st.builds(m.SexCriterion, values=st.lists(st.sampled_from(["male", "female"]),
                                                  min_size=1, max_size=2, unique=True)),
        st.builds(m.RegionCriterion, codes=st.lists(st.sampled_from(REGIONS), min_size=1,
                                                    max_size=3, unique=True)),
        st.builds(m.RegionIndicatorCriterion, indicator=st.just("deprivation_index"),
                  value=ranges([-1.5, -0.5, 0.0, 0.5, 1.5])),
        st.builds(m.RegionIndicatorCriterion, indicator=st.just("pm25"),
                  value=ranges([18.0, 22.0, 25.0, 30.0])),
        st.builds(m.ConsentCriterion, scope=st.sampled_from(["clinical", "public", "lifelog",
                                                             "genomic"])),
        st.just(m.GenomeCriterion()),
        lifelogs(),
    )


bounds = st.one_of(st.none(), st.sampled_from(BOUNDS), st.integers(-1500, 1500))


@st.composite
def windows(draw) -> m.Window:
    a, b = draw(bounds), draw(bounds)
    if a is not None and b is not None and a > b:
        a, b = b, a
    return m.Window(start=a, end=b, anchor=draw(st.sampled_from(["index_start", "index_end"])))


occurrences = st.builds(m.Occurrence, op=st.sampled_from(["at_least", "at_most", "exactly"]),
                        count=st.sampled_from([1, 1, 0, 2, 3]), distinct_dates=st.booleans())


def requirements(members: bool) -> st.SearchStrategy[m.Requirement]:
    crit = [(2, event_criteria()), (2, person_criteria())]
    if members:
        crit.append((1, st.builds(m.CohortMemberCriterion, cohort=cohorts(nested=False))))
    return st.builds(m.Requirement, criterion=weighted(*crit),
                     window=st.one_of(st.none(), windows()), occurrence=occurrences,
                     restrict_to_observation=st.sampled_from([True, True, False]))


def groups(depth: int, members: bool, max_items: int = 2) -> st.SearchStrategy[m.Group]:
    """Groups of requirements; with depth > 0 some items are nested (smaller) groups."""
    item = requirements(members)
    if depth > 0:
        item = weighted((2, item), (1, groups(depth - 1, members, max_items=2)))
    return st.builds(m.Group, mode=st.sampled_from(["all", "any", "at_least"]),
                     n=st.sampled_from([1, 2, 0]),
                     items=st.lists(item, min_size=1, max_size=max_items))


fixed_offsets = st.builds(m.FixedOffset, days=st.sampled_from([0, 1, 30, 365, 730]),
                          anchor=st.sampled_from(["index_start", "index_end"]))
exits = weighted(  # drug eras cost the engine most: a fifth of the draws
    (2, st.just(m.EndOfObservation())), (2, fixed_offsets),
    (1, st.builds(m.DrugExposureEnd, concepts=concept_sets("ATC", DRUGS),
                  gap_days=st.sampled_from([0, 7, 30, 60]),
                  offset=st.sampled_from([0, 0, 14]))),
)


@st.composite
def cohorts(draw, nested: bool = True) -> m.Cohort:
    """A random cohort; ``nested=False`` gives the simpler cohorts used inside
    cohort_member criteria (no members of their own, at most one rule)."""
    entry = m.Entry(criteria=draw(st.lists(event_criteria(), min_size=1, max_size=2)),
                    limit=draw(st.sampled_from(["first", "all"])),
                    prior_observation=draw(st.sampled_from([0, 0, 30, 365])),
                    post_observation=draw(st.sampled_from([0, 0, 30, 365])))
    rule_groups = draw(st.lists(groups(1, members=True) if nested
                                else groups(0, members=False, max_items=2),
                                max_size=3 if nested else 1))
    return m.Cohort(
        name="random", entry=entry,
        inclusion_rules=[m.InclusionRule(name=f"rule {k + 1}", group=g)
                         for k, g in enumerate(rule_groups)],
        exit=draw(exits),
        censoring=draw(st.one_of(st.just([]), st.lists(event_criteria(), min_size=1,
                                                       max_size=2))),
        result_limit=draw(st.sampled_from(["all", "first"])),
        era_pad_days=draw(st.sampled_from([0, 0, 7, 30, 180])))


cohort_sets = st.builds(m.CohortSet, kind=st.sampled_from(["union", "intersect", "minus"]),
                        name=st.just("set"),
                        cohorts=st.lists(cohorts(nested=False), min_size=2, max_size=3))

definitions = weighted((5, cohorts()), (1, cohort_sets))  # sets cost the engine ~3x

# Genotype criteria, in any spelling the model accepts (contig styles, lower-case alleles,
# commas in regions): JSON round trip only. The engine comparison runs on a release
# without a carrier table; tests/unit/test_genotype_criteria.py checks their results.
contigs = st.sampled_from(["1", "chr1", "CHR2", "x", "chrX", "MT", "chrM", "22", "GL000191.1"])
positions = st.integers(1, 250_000_000)


@st.composite
def variant_texts(draw) -> str:
    ref = draw(st.text("ACGTNacgtn", min_size=1, max_size=3))
    alt = draw(st.text("ACGTNacgtn", min_size=1, max_size=3).filter(
        lambda a: a.upper() != ref.upper()))
    return f"{draw(contigs)}:{draw(positions)}:{ref}:{alt}"


@st.composite
def region_texts(draw) -> str:
    a, b = sorted((draw(positions), draw(positions)))
    return f"{draw(contigs)}:{a:,}-{b:,}" if draw(st.booleans()) else f"{draw(contigs)}:{a}-{b}"


zygosities = st.sampled_from(["carrier", "homozygous_alt"])
genotype_criteria = st.one_of(
    st.builds(m.GenotypeCriterion, variants=st.lists(variant_texts(), min_size=1, max_size=4),
              zygosity=zygosities),
    st.builds(m.GenotypeCriterion, region=region_texts(), zygosity=zygosities))


@st.composite
def with_genotypes(draw) -> m.Cohort:
    """A random cohort with one more rule: a genotype requirement, maybe negated, maybe in
    a group with a random requirement."""
    base = draw(cohorts(nested=False))
    req = m.Requirement(criterion=draw(genotype_criteria), occurrence=draw(occurrences))
    items = [req, *draw(st.lists(requirements(members=False), max_size=1))]
    rule = m.InclusionRule(name="genotype", group=m.Group(
        mode=draw(st.sampled_from(["all", "any"])), items=items))
    return base.model_copy(update={"inclusion_rules": [*base.inclusion_rules, rule]})

# --- tests -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    """A small release (400 persons), built once for this module, and its catalog."""
    out = tmp_path_factory.mktemp("hyp") / "release"
    build_release(out, persons=400, genotyped=60, variants=300, seed=3, progress=False)
    cat = catalog.open(out)
    yield out, cat
    cat.close()


def engine_members(definition: m.Cohort | m.CohortSet, cat) -> tuple[pl.DataFrame, list[int]]:
    got = run(definition, cat)
    members = got.members.select(
        pl.col("subject_id").cast(pl.Int64), pl.col("cohort_start_date").cast(pl.Date),
        pl.col("cohort_end_date").cast(pl.Date)).sort("subject_id", "cohort_start_date")
    return members, got.step_persons


def assert_round_trip(definition: m.Cohort | m.CohortSet) -> None:
    """JSON round trip is lossless and the content hash is stable (and ignores the name)."""
    text = io.dumps(definition)
    back = io.loads(text)
    assert back == definition
    assert io.dumps(back) == text
    assert back.content_hash() == definition.content_hash()
    renamed = definition.model_copy(update={"name": "another name"})
    assert renamed.content_hash() == definition.content_hash()


def assert_covers(engine: pl.DataFrame, reference: pl.DataFrame) -> None:
    """What still holds under the tied-rows bug: same persons, same first start and last
    end per person, and every reference era inside one of the engine's rows."""
    span = [pl.col("cohort_start_date").min(), pl.col("cohort_end_date").max()]
    assert_frame_equal(engine.group_by("subject_id").agg(span).sort("subject_id"),
                       reference.group_by("subject_id").agg(span).sort("subject_id"))
    inside = (reference.with_row_index("era")
              .join(engine, on="subject_id", suffix="_engine")
              .filter((pl.col("cohort_start_date_engine") <= pl.col("cohort_start_date"))
                      & (pl.col("cohort_end_date") <= pl.col("cohort_end_date_engine"))))
    assert inside["era"].n_unique() == reference.height


# A fixed engine bug (test_era_collapse_with_tied_rows below): rows of a person with the
# same (start, end) reaching an era collapse gave duplicate rows and eras stretched over
# gaps. Fixed by collapsing distinct periods; every example is now compared row for row.
TIED_ROWS_BUG = False


@pytest.mark.slow
def test_engine_matches_reference_on_random_definitions(tiny):
    release, cat = tiny
    seen: Counter[str] = Counter()

    @settings(max_examples=EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(definitions)
    def check(definition: m.Cohort | m.CohortSet) -> None:
        note(io.dumps(definition))
        assert_round_trip(definition)
        want = evaluation(definition, release, cat)
        members, steps = engine_members(definition, cat)
        assert steps == want.steps
        if TIED_ROWS_BUG and want.tied_collapses:
            assert_covers(members, want.members)
            seen["tied rows: covered"] += 1
        else:
            assert_frame_equal(members, want.members)
            seen["rows equal"] += 1
        seen["examples"] += 1
        seen["non-empty" if want.members.height else "empty"] += 1

    check()
    print(dict(seen))
    # the comparison means something only if many random cohorts have members
    assert seen["examples"] >= EXAMPLES
    assert seen["non-empty"] >= 0.25 * seen["examples"], seen
    assert seen["rows equal"] >= 0.4 * seen["examples"], seen


LIPID_PANEL_ALL = m.Cohort(name="lipid panel days", entry=m.Entry(criteria=[
    m.MeasurementCriterion(concepts=m.ConceptSet(name=code, items=[
        m.ConceptItem(vocabulary="LOINC", code=code)])) for code in ("2093-3", "13457-7")],
    limit="all"), exit=m.FixedOffset(days=0))
FIRST_URI = m.Cohort(name="first URI", entry=m.Entry(criteria=[m.ConditionCriterion(
    concepts=m.ConceptSet(name="J06.9", items=[m.ConceptItem(vocabulary="KCD8", code="J06.9",
                                                             include_descendants=False)]),
    first_occurrence=True)]))
TIED = {
    # cholesterol and LDL are measured on the same day: each day gives two identical rows
    "lipid panel, all events, exit on the index day": LIPID_PANEL_ALL,
    "union of a cohort with itself": m.CohortSet(kind="union", name="same twice",
                                                 cohorts=[FIRST_URI, FIRST_URI]),
}


def test_tied_rows_cases_do_collapse_tied_rows(tiny):
    """The premise of the xfail below: these definitions collapse identical rows."""
    release, cat = tiny
    for name, definition in TIED.items():
        want = evaluation(definition, release, cat)
        assert want.tied_collapses > 0 and want.members.height > 0, name


def test_era_collapse_with_tied_rows(tiny):
    release, cat = tiny
    wrong = []
    for name, definition in TIED.items():
        want = evaluation(definition, release, cat)
        members, steps = engine_members(definition, cat)
        if steps != want.steps or not members.equals(want.members):
            wrong.append(f"{name}: engine {members.height} rows, reference "
                         f"{want.members.height}")
    assert not wrong, wrong


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(weighted((3, definitions), (1, with_genotypes())))
def test_json_round_trip_and_stable_hash(definition: m.Cohort | m.CohortSet):
    """Also checked for every definition of the comparison above; here without a release."""
    assert_round_trip(definition)
