"""The cohort builder widget, driven as a user would: values set, buttons clicked.

Counts and attrition shown must equal ``cohort.engine.run`` and an independent Polars
computation; a stale query's result is never shown; small cells show as "< k"; a widget
made from a definition gives it back; copy-as-Python and save/load give it back too.
"""

from __future__ import annotations

import html
import threading
import time
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from reference.polars_cohort import evaluate
from test_cohort_hypothesis import definitions, with_genotypes

from cohort import io
from cohort import model as m
from cohort.builder import age, cohort, condition, drug, screening, sex
from cohort.describe import describe
from cohort.engine import run
from cohort.privacy import SmallCellPolicy
from cohort.widgets import CohortBuilder, ConceptSearch
from workbench import catalog
from workbench.schema import table_file

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.json"))


@pytest.fixture(scope="module")
def cat(small_release):
    c = catalog.open(small_release)
    yield c
    c.close()


@pytest.fixture
def make(cat):
    """CohortBuilder factory; every builder is closed after the test."""
    made = []

    def _make(definition=None, **kw):
        kw.setdefault("debounce", 0.05)
        w = CohortBuilder(cat, definition, **kw)
        made.append(w)
        return w

    yield _make
    for w in made:
        w.close()


def no_run(definition, cat, *, policy):
    raise RuntimeError("not counted in this test")


def shown_attrition(w: CohortBuilder) -> list[str]:
    return list(w.funnel.data[0].text)


# --- building by clicking ----------------------------------------------------------------

def pick(search: ConceptSearch, text: str, code: str, vocabulary: str | None = None) -> None:
    """Type ``text``, page forward until ``code`` is listed, select it, click add."""
    search.vocabulary.value = vocabulary
    search.text.value = text
    for _ in range(20):
        hit = search.rows.filter(pl.col("concept_code") == code) if search.rows.height else None
        if hit is not None and hit.height:
            search.results.value = hit["concept_id"][0]
            search.add_button.click()
            return
        assert not search.next_button.disabled, f"{code} not found for {text!r}"
        search.next_button.click()
    raise AssertionError(f"{code} not found")


def build_t2d_women(w: CohortBuilder) -> None:
    """T2D (first diagnosis) -> women -> aged 40+ at index, by clicks and typing."""
    w.find("name").widget.value = "T2D women 40+"
    entry = w.find("entry.criteria")
    entry.kind.value = "condition"
    entry.add_button.click()
    pick(entry.items[0].current.fields["concepts"].search, "당뇨", "E11", "KCD8")
    w.find("entry.criteria[0].first_occurrence").widget.value = True
    rules = w.find("inclusion_rules")
    rules.add_button.click()
    w.find("inclusion_rules[0].name").widget.value = "women"
    items = w.find("inclusion_rules[0].group.items")
    items.kind.value = "requirement"
    items.add_button.click()
    w.find("inclusion_rules[0].group.items[0]").current.fields["criterion"].kind.value = "sex"
    w.find("inclusion_rules[0].group.items[0].criterion.values").widget.value = ("female",)
    rules.add_button.click()
    w.find("inclusion_rules[1].name").widget.value = "aged 40+"
    w.find("inclusion_rules[1].group.items").add_button.click()
    w.find("inclusion_rules[1].group.items[0]").current.fields["criterion"].kind.value = "age"
    w.find("inclusion_rules[1].group.items[0].criterion.value").min_box.value = "40"


T2D_WOMEN = (cohort("T2D women 40+").entry(condition("KCD8", "E11", name="Type 2 diabetes "
                                                     "mellitus").first())
             .require("women", sex("female")).require("aged 40+", age(40, None)).build())


def test_building_by_clicks_gives_the_definition(make):
    w = make(runner=no_run)
    with pytest.raises(Exception, match="criteria"):
        _ = w.definition                      # a new cohort has no entry event yet
    build_t2d_women(w)
    assert w.definition == T2D_WOMEN


def hand_polars_t2d_women(release: Path, cat) -> list[int]:
    """Persons per step of T2D_WOMEN, computed by hand on the release's Parquet files."""
    def read(t):
        return pl.read_parquet(release / table_file(t))
    concept = read("concept").filter((pl.col("vocabulary_id") == "KCD8")
                                     & (pl.col("concept_code") == "E11"))
    e11 = concept["concept_id"].item()
    ids = read("concept_ancestor").filter(pl.col("ancestor_concept_id") == e11)[
        "descendant_concept_id"].to_list()
    # condition rows are used only under clinical consent, not withdrawn (the file holds
    # every person's rows; the catalog's view only these)
    clinical = read("consent").filter(pl.col("clinical"), pl.col("withdrawal_date").is_null())
    events = (read("condition_occurrence").join(clinical.select("person_id"), on="person_id",
                                                how="semi")
              .filter(pl.col("condition_concept_id").is_in(ids)))
    # first_occurrence: each person's first E11 event (by date, then id), then it must lie
    # in an observation period; withdrawn persons never count
    first = (events.sort("person_id", "condition_start_date", "condition_occurrence_id")
             .group_by("person_id", maintain_order=True).first())
    op = read("observation_period")
    inside = first.join(op, on="person_id").filter(
        pl.col("condition_start_date").is_between(pl.col("observation_period_start_date"),
                                                  pl.col("observation_period_end_date")))
    withdrawn = read("consent").filter(pl.col("withdrawal_date").is_not_null())[
        "person_id"].to_list()
    index = inside.filter(~pl.col("person_id").is_in(withdrawn)).select(
        "person_id", year=pl.col("condition_start_date").dt.year())
    people = index.join(read("person"), on="person_id")
    women = people.filter(pl.col("gender_concept_id") == 8532)
    aged = women.filter(pl.col("year") - pl.col("year_of_birth") >= 40)
    return [index["person_id"].n_unique(), women["person_id"].n_unique(),
            aged["person_id"].n_unique()]


def test_live_count_and_attrition_equal_engine_and_hand_polars(make, cat, small_release):
    w = make()
    build_t2d_women(w)
    assert w.wait(60) and w.status == "done"
    expected = run(T2D_WOMEN, cat)
    by_hand = hand_polars_t2d_women(small_release, cat)
    assert expected.step_persons == by_hand
    assert by_hand[-1] >= 20 and by_hand[0] > by_hand[1] > by_hand[2]
    assert w.count_text == f"{by_hand[-1]:,}"
    assert list(w.funnel.data[0].x) == by_hand
    assert shown_attrition(w) == [f"{n:,}" for n in by_hand]
    assert list(w.funnel.data[0].y) == expected.steps
    assert w.result.step_persons == by_hand
    # an edit recounts: widen to 30+
    w.find("inclusion_rules[1].group.items[0].criterion.value").min_box.value = "30"
    assert w.wait(60)
    d = w.definition
    assert d.inclusion_rules[1].group.items[0].criterion.value.min == 30.0
    assert w.count_text == SmallCellPolicy().format(run(d, cat).count)
    assert w.count_text != f"{by_hand[-1]:,}"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_count_like_engine_and_reference(make, cat, small_release, path):
    d = io.load(path)
    w = make(d)
    assert w.wait(60) and w.status == "done"
    members, steps = evaluate(d, small_release, cat)
    assert run(d, cat).step_persons == steps
    policy = SmallCellPolicy()
    assert shown_attrition(w) == [policy.format(policy.count(n)) for n in steps]
    assert w.count_text == policy.format(policy.count(members["subject_id"].n_unique()))


def test_live_counts_stay_on_duckdb_when_spark_is_the_default(make, cat, monkeypatch):
    """A cluster deployment sets $WORKBENCH_ENGINE=spark for batch runs; the builder's
    live counts still run on DuckDB (its per-edit cache, interruptible)."""
    monkeypatch.setenv("WORKBENCH_ENGINE", "spark")
    w = make(T2D_WOMEN)
    assert w.wait(60) and w.status == "done"
    assert w.result.engine == "duckdb"
    assert w.result.step_persons == run(T2D_WOMEN, cat, engine="duckdb").step_persons


def test_small_cells_show_as_less_than_k(make, cat):
    policy = SmallCellPolicy(threshold=200)
    d = T2D_WOMEN
    steps = run(d, cat).step_persons
    assert steps[0] >= 200 > steps[-1] > 0          # the last steps are small cells
    w = make(d, policy=policy)
    assert w.wait(60)
    assert w.count_text == "< 200"
    shown = shown_attrition(w)
    assert shown[0] == f"{steps[0]:,}" and shown[-1] == "< 200"
    assert list(w.funnel.data[0].x)[-1] == 0       # a hidden count draws no bar
    page = w.count_label.value + w.attrition_table.value + str(w.funnel.to_dict())
    assert f">{steps[-1]:,}<" not in page and f"'{steps[-1]:,}'" not in page
    assert "&lt; 200" in w.attrition_table.value


def test_a_stale_query_result_is_never_shown(make, cat):
    """The first edit's count is slow; a second edit comes in meanwhile: only the second
    edit's result is ever shown, also after the first one finishes."""
    release_first = threading.Event()
    calls = []

    def slow_first(definition, wcat, *, policy):
        calls.append(definition)
        if len(calls) == 1:
            assert release_first.wait(30)
        return run(definition, wcat, policy=policy)

    first = cohort("a").entry(condition("KCD8", "E11")).build()
    w = make(first, runner=slow_first, debounce=0.01)
    deadline = time.monotonic() + 10
    while w.status != "running" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert w.status == "running" and "counting" in w.spinner.value
    w.find("entry.criteria[0].first_occurrence").widget.value = True     # second edit
    time.sleep(0.1)
    release_first.set()
    assert w.wait(60)
    second = w.definition
    assert second != first
    assert w.result.definition == second
    assert w.shown_generations == [w._generation]
    assert w.count_text == SmallCellPolicy().format(run(second, cat).count)
    assert w.spinner.value == ""
    assert len(calls) == 2


def test_rapid_edits_are_counted_once(make):
    """Edits within the debounce time start one count, of the last edit."""
    calls = []

    def counting(definition, wcat, *, policy):
        calls.append(definition)
        return run(definition, wcat, policy=policy)

    w = make(T2D_WOMEN, runner=counting, debounce=0.5)
    box = w.find("inclusion_rules[1].group.items[0].criterion.value").min_box
    for age_min in ("41", "42", "43", "44", "45"):
        box.value = age_min
    assert w.wait(30) and w.status == "done"
    assert [c.inclusion_rules[1].group.items[0].criterion.value.min for c in calls] == [45.0]


def test_a_running_query_is_interrupted_by_a_new_edit(make):
    """A query of an old edit that would run for minutes is interrupted on the next edit."""
    started = threading.Event()

    def endless_then_engine(definition, wcat, *, policy):
        if definition.name == "slow":
            started.set()
            wcat.sql("select count(*) from range(1000000000000) t(i) where i % 7 = 3").fetchall()
        return run(definition, wcat, policy=policy)

    w = make(cohort("slow").entry(condition("KCD8", "I10")).build(),
             runner=endless_then_engine)
    assert started.wait(10)
    t0 = time.monotonic()
    w.find("name").widget.value = "fast"
    assert w.wait(30) and w.status == "done"
    assert time.monotonic() - t0 < 15
    assert w.result.definition.name == "fast"


def test_an_incomplete_definition_says_what_is_missing(make):
    w = make(T2D_WOMEN, runner=no_run)
    w.find("inclusion_rules[0].group.items[0].criterion.values").widget.value = ()
    assert w.wait(5) and w.status == "incomplete"
    assert "incomplete" in w.count_label.value and "values" in w.count_label.value
    w.find("inclusion_rules[0].group.items[0].criterion.values").widget.value = ("female",)
    assert w.definition == T2D_WOMEN


# --- round trips ------------------------------------------------------------------------

@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_widget_from_example_gives_it_back(make, path):
    d = io.load(path)
    w = make(d, runner=no_run)
    assert w.definition == d


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(d=definitions.filter(lambda d: isinstance(d, m.Cohort)))
def test_widget_from_random_definition_gives_it_back(cat, d):
    w = CohortBuilder(cat, d, debounce=60, runner=no_run)
    try:
        assert w.definition == d
        exec_ns: dict = {}
        exec(w.python.value, exec_ns)  # noqa: S102
        assert exec_ns["definition"] == d
    finally:
        w.close()


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(d=with_genotypes())
def test_widget_from_genotype_definition_gives_it_back(cat, d):
    w = CohortBuilder(cat, d, debounce=60, runner=no_run)
    try:
        assert w.definition == d
    finally:
        w.close()


def test_editing_a_field_and_back_restores_the_definition(make):
    d = io.load(EXAMPLES[-1])
    w = make(d, runner=no_run)
    box = w.find("entry.prior_observation").widget
    old = box.value
    box.value = old + 1
    assert w.definition != d
    box.value = old
    assert w.definition == d


def test_every_criterion_kind_can_be_added_and_edited(make):
    """Each kind of the model's Criterion union appears in the kind dropdown; choosing it
    gives an editor that either is valid already or names what is missing."""
    w = make(T2D_WOMEN, runner=no_run)
    items = w.find("inclusion_rules[0].group.items")
    kinds = w.find("inclusion_rules[0].group.items[0]").current.fields["criterion"].kinds
    assert set(kinds) == {"condition", "drug", "procedure", "measurement", "visit", "death",
                          "observation_period", "screening", "lifelog", "region_indicator",
                          "consent", "has_genome", "age", "sex", "region", "cohort_member",
                          "genotype"}
    fill = {
        "condition": lambda p: pick(w.find(p + ".concepts").search, "I10", "I10"),
        "drug": lambda p: pick(w.find(p + ".concepts").search, "metformin", "A10BA02"),
        "procedure": lambda p: pick(w.find(p + ".concepts").search, "76009000", "76009000"),
        "measurement": lambda p: pick(w.find(p + ".concepts").search, "4548", "4548-4"),
        "region": lambda p: setattr(w.find(p + ".codes").widget, "value", "11, 26"),
        "sex": lambda p: setattr(w.find(p + ".values").widget, "value", ("male",)),
        "cohort_member": lambda p: setattr(w.find(p + ".cohort").widget, "value",
                                           io.dumps(T2D_WOMEN)),
        "genotype": lambda p: setattr(w.find(p + ".variants").widget, "value",
                                      "1:1000:a:g, chr2:5:C:T"),
        "region_indicator": lambda p: setattr(w.find(p + ".value").max_box, "value", "25"),
    }
    for k, kind in enumerate(kinds, start=1):
        items.add_button.click()
        union = w.find(f"inclusion_rules[0].group.items[{k}]").current.fields["criterion"]
        union.kind.value = kind
        path = f"inclusion_rules[0].group.items[{k}].criterion"
        if kind in fill:
            assert union.error or kind == "region_indicator", kind   # needs a value first
            fill[kind](path)
        assert union.error is None, (kind, union.error)
        assert union.value.kind == kind
    d = w.definition
    crit = [i.criterion for i in d.inclusion_rules[0].group.items[1:]]
    assert [c.kind for c in crit] == list(kinds)
    by = {c.kind: c for c in crit}
    assert by["genotype"].variants == ["chr1:1000:A:G", "chr2:5:C:T"]
    assert by["region"].codes == ["11", "26"]
    assert by["cohort_member"].cohort == T2D_WOMEN
    assert by["region_indicator"].value == m.Range(max=25)
    assert by["drug"].concepts.items == [m.ConceptItem(vocabulary="ATC", code="A10BA02")]
    # and removing them again gives the original back
    for _ in kinds:
        items.remove(1)
    assert w.definition == T2D_WOMEN


def test_windows_occurrences_and_exclusions(make):
    w = make(T2D_WOMEN, runner=no_run)
    w.add_exclusion("no insulin before", kind="drug")
    rule = "inclusion_rules[2]"
    pick(w.find(f"{rule}.group.items[0].criterion.concepts").search, "A10A", "A10A", "ATC")
    w.find(f"{rule}.group.items[0].criterion.concepts").name.value = "insulin"
    win = w.find(f"{rule}.group.items[0].window")
    win.enabled.value = True
    win.end_box.value = "-1"
    w.find("entry.prior_observation").widget.value = 365
    w.find("inclusion_rules").add_button.click()
    w.find("inclusion_rules[3].name").widget.value = "2+ metformin within 90 days"
    w.find("inclusion_rules[3].group.items").add_button.click()
    req = "inclusion_rules[3].group.items[0]"
    pick(w.find(f"{req}.criterion.concepts").search, "I10", "I10")
    w.find(f"{req}.criterion").kind.value = "drug"        # a new kind starts afresh
    assert w.find(f"{req}.criterion.concepts").items == []
    pick(w.find(f"{req}.criterion.concepts").search, "metformin", "A10BA02")
    w.find(f"{req}.criterion.concepts").name.value = "metformin"
    w.find(f"{req}.window").enabled.value = True
    w.find(f"{req}.window").start_box.value = "0"
    w.find(f"{req}.window").end_box.value = "90"
    w.find(f"{req}.occurrence.count").widget.value = 2
    w.find(f"{req}.occurrence.distinct_dates").widget.value = True
    w.find("exit").kind.value = "fixed_offset"
    w.find("exit.days").widget.value = 730
    expected = (
        cohort("T2D women 40+")
        .entry(condition("KCD8", "E11", name="Type 2 diabetes mellitus").first(),
               prior_observation=365)
        .require("women", sex("female")).require("aged 40+", age(40, None))
        .exclude("no insulin before", drug("ATC", "A10A", name="insulin").within(None, -1))
        .require("2+ metformin within 90 days", drug("ATC", "A10BA02", name="metformin")
                 .within(0, 90).at_least(2).on_distinct_dates())
        .exit_after(730).build())
    assert w.definition == expected
    win.start_box.value = "5"                              # start after end: an error
    assert "after its end" in (w.editor.error or "")
    win.start_box.value = ""
    assert w.definition == expected


def test_copy_as_python_and_save_load(make, tmp_path):
    w = make(T2D_WOMEN, runner=no_run)
    ns: dict = {}
    exec(w.python.value, ns)  # noqa: S102
    assert ns["definition"] == T2D_WOMEN
    assert "sex(\"female\")" in w.python.value
    assert describe(T2D_WOMEN) in html.unescape(w.description.value)
    path = tmp_path / "t2d.json"
    w.json_path.value = str(path)
    w.save_button.click()
    assert io.load(path) == T2D_WOMEN and "saved" in w.file_message.value
    assert not list(tmp_path.glob("t2d.json.*"))          # no temp file left behind
    other = make(runner=no_run)
    other.json_path.value = str(path)
    other.load_button.click()
    assert other.definition == T2D_WOMEN
    other.json_path.value = str(tmp_path / "missing.json")
    other.load_button.click()
    assert "does not exist" in other.file_message.value
    assert other.definition == T2D_WOMEN


# --- vocabulary search --------------------------------------------------------------------

def test_search_matches_codes_english_and_korean_with_hierarchy(cat):
    picked = []
    s = ConceptSearch(cat, picked.append, page_size=3)
    s.text.value = "E11"
    assert s.rows["concept_code"][0] == "E11"
    line = s.results.options[0][0]
    assert "Type 2 diabetes mellitus" in line and "2형 당뇨병" in line
    assert "3 descendants" in line and "under IV › E10-E14" in line
    s.vocabulary.value = "KCD7"          # source codes: no hierarchy rows, no count shown
    assert s.rows["descendants"].min() == 0
    assert not any("descendant" in label for label, _ in s.results.options)
    s.vocabulary.value = None
    s.text.value = "당뇨"
    assert "E11" in s.rows["concept_code"].to_list() or not s.next_button.disabled
    s.text.value = "diabetes"
    s.vocabulary.value = "KCD8"
    seen = list(s.rows["concept_code"])
    assert s.prev_button.disabled and not s.next_button.disabled and len(seen) == 3
    s.next_button.click()
    assert s.page == 1 and not set(seen) & set(s.rows["concept_code"])
    s.prev_button.click()
    assert list(s.rows["concept_code"]) == seen
    s.results.value = s.rows["concept_id"][0]
    s.add_button.click()
    assert picked[0]["concept_code"] == seen[0]
    s.text.value = "zzzz-no-such"
    assert s.rows.height == 0 and s.page_label.value == "no match"


def test_choosing_a_concept_adds_it_to_the_set(make):
    w = make(T2D_WOMEN, runner=no_run)
    cs = w.find("entry.criteria[0].concepts")
    pick(cs.search, "E10", "E10", "KCD8")
    assert [i.code for i in w.definition.entry.criteria[0].concepts.items] == ["E11", "E10"]
    cs.rows.children[0].children[2].value = True           # exclude E11
    assert w.definition.entry.criteria[0].concepts.items[0].exclude
    cs.remove(0)
    assert [i.code for i in w.definition.entry.criteria[0].concepts.items] == ["E10"]
    cs.remove(0)
    assert "concept" in (w.editor.error or "")


def test_the_builder_edits_cohorts_not_sets(cat):
    s = m.CohortSet(kind="union", name="u", cohorts=[T2D_WOMEN, T2D_WOMEN])
    with pytest.raises(Exception, match="not a set"):
        CohortBuilder(cat, s)


def test_screening_criterion_round_trip(make):
    d = cohort("ldl").entry(screening("ldl_cholesterol", 160, None).first()).build()
    w = make(d, runner=no_run)
    w.find("entry.criteria[0].value").min_box.value = "130"
    assert w.definition.entry.criteria[0].value == m.Range(min=130)


def test_an_engine_error_is_shown_not_raised(make):
    """A concept the release does not have: the engine's message appears in the widget."""
    d = cohort("bad").entry(condition("KCD8", "ZZZ.9")).build()
    w = make(d)
    assert w.wait(30) and w.status == "error"
    assert "unknown concept" in w.count_label.value and "ZZZ.9" in w.count_label.value
    assert w.result is None and w.count_text == ""


def test_genotype_criteria_count_on_the_worker_cursor(small_release, tmp_path, monkeypatch):
    """The carrier table is a temporary view, which a cursor does not see: the builder's
    worker opens it again, so genotype criteria count in the widget as in the engine."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))   # private carrier table
    first = catalog.open(small_release)
    samples = first.sql("select sample_id from sample_link order by sample_id").pl()
    first.close()
    path = catalog.carrier_table_path(catalog.load_manifest(small_release))
    path.parent.mkdir(parents=True)
    n = samples.height // 2
    pq.write_table(pa.table({
        "sample_id": samples["sample_id"][:n].to_list(), "contig": ["chr1"] * n,
        "position": pa.array([1000] * n, pa.int32()), "ref": ["A"] * n, "alt": ["G"] * n,
        "n_alt": pa.array([1 + (k % 2) for k in range(n)], pa.int8())},
        schema=catalog.CARRIER_SCHEMA), path)
    cat = catalog.open(small_release)
    try:
        assert cat.derived == [catalog.CARRIER_TABLE]
        from cohort.builder import carriers, observation_period
        d = (cohort("carriers").entry(observation_period().first())
             .require("carries chr1:1000:A:G", carriers("chr1:1000:A:G")).build())
        w = CohortBuilder(cat, d, debounce=0)
        try:
            assert w.wait(60) and w.status == "done", w.count_label.value
            want = run(d, cat)
            assert w.result.step_persons == want.step_persons
            assert 20 <= want.step_persons[-1] < want.step_persons[0]
            w.find("inclusion_rules[0].group.items[0].criterion.zygosity").widget.value = (
                "homozygous_alt")
            assert w.wait(60) and w.status == "done"
            assert w.result.step_persons == run(w.definition, cat).step_persons
            assert w.result.step_persons[-1] < want.step_persons[-1]
        finally:
            w.close()
    finally:
        cat.close()
