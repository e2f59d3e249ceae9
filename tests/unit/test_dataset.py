"""The dataset builder: frames equal hand-written Polars on the release's Parquet files,
withdrawn persons never appear, and the generated code rebuilds the same frames."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cohort import model as m
from cohort.builder import age, cohort, concept_set, condition
from cohort.dataset import DOMAINS, build_dataset
from cohort.engine import CohortResult, run
from cohort.widgets import CohortBuilder, DatasetBuilder
from workbench import catalog
from workbench.schema import table_file

T2D = (cohort("T2D 40+").entry(condition("KCD8", "E11").first())
       .require("40+", age(40, None)).build())


@pytest.fixture(scope="module")
def cat(small_release):
    c = catalog.open(small_release)
    yield c
    c.close()


@pytest.fixture(scope="module")
def result(cat):
    return run(T2D, cat)


def read(release: Path, table: str, scope: str | None = None) -> pl.DataFrame:
    """A table's rows from the release's file; with ``scope``, only those of persons who
    consented to it and have not withdrawn (the consent rule, applied by hand: the file
    holds every person's rows)."""
    rows = pl.read_parquet(release / table_file(table))
    if scope is None:
        return rows
    ok = read(release, "consent").filter(pl.col(scope), pl.col("withdrawal_date").is_null())
    return rows.join(ok.select("person_id"), on="person_id", how="semi")


def withdrawn(release: Path) -> list[int]:
    return read(release, "consent").filter(pl.col("withdrawal_date").is_not_null())[
        "person_id"].to_list()


def index_of(members: pl.DataFrame, release: Path) -> pl.DataFrame:
    return (members.group_by("subject_id").agg(index_date=pl.col("cohort_start_date").min())
            .rename({"subject_id": "person_id"})
            .filter(~pl.col("person_id").is_in(withdrawn(release))))


def hand_events(release: Path, idx: pl.DataFrame, table: str, ident: str, concept: str,
                dates: list[str], extra: list[str], scope: str = "clinical") -> pl.DataFrame:
    c = read(release, "concept").select("concept_id", "vocabulary_id", "concept_code",
                                        "concept_name", "concept_name_ko")
    return (read(release, table, scope).join(idx.select("person_id"), on="person_id")
            .join(c, left_on=concept, right_on="concept_id", how="left")
            .with_columns(pl.col(concept).alias("concept_id"))
            .select("person_id", ident, *dates, "concept_id", "vocabulary_id",
                    "concept_code", "concept_name", "concept_name_ko", *extra)
            .sort("person_id", dates[0], ident))


def test_every_domain_equals_hand_polars(cat, result, small_release):
    ds = build_dataset(cat, result, dict.fromkeys(DOMAINS))
    idx = index_of(result.members, small_release)
    assert ds.persons == idx.height > 100
    person = (read(small_release, "person").join(idx, on="person_id")
              .join(read(small_release, "location"), on="location_id", how="left")
              .select("person_id", "index_date",
                      sex=pl.col("gender_concept_id").replace_strict(
                          {8507: "male", 8532: "female"}, default=None),
                      year_of_birth="year_of_birth", region="state").sort("person_id"))
    assert_frame_equal(ds["person"], person, check_dtypes=False)
    assert_frame_equal(ds["conditions"], hand_events(
        small_release, idx, "condition_occurrence", "condition_occurrence_id",
        "condition_concept_id", ["condition_start_date", "condition_end_date"],
        ["condition_source_value"]), check_dtypes=False)
    assert_frame_equal(ds["drugs"], hand_events(
        small_release, idx, "drug_exposure", "drug_exposure_id", "drug_concept_id",
        ["drug_exposure_start_date", "drug_exposure_end_date"],
        ["days_supply", "quantity", "drug_source_value"]), check_dtypes=False)
    assert_frame_equal(ds["measurements"], hand_events(
        small_release, idx, "measurement", "measurement_id", "measurement_concept_id",
        ["measurement_date"], ["value_as_number", "unit_source_value"]), check_dtypes=False)
    assert_frame_equal(ds["procedures"], hand_events(
        small_release, idx, "procedure_occurrence", "procedure_occurrence_id",
        "procedure_concept_id", ["procedure_date"], []), check_dtypes=False)
    scr = read(small_release, "health_screening", "public").join(idx.select("person_id"),
                                                                 on="person_id")
    assert_frame_equal(ds["screening"], scr.sort("person_id", "screening_date"),
                       check_dtypes=False)
    wear = read(small_release, "wearable_daily", "lifelog").join(idx.select("person_id"),
                                                                 on="person_id")
    assert_frame_equal(ds["wearable"], wear.sort("person_id", "date"), check_dtypes=False)
    for name in ("conditions", "drugs", "measurements", "screening", "wearable"):
        assert ds[name].height > 0, name
    links = read(small_release, "sample_link", "genomic")    # a genome counts with consent
    consent = read(small_release, "consent")
    genomic = consent.filter(pl.col("genomic"))["person_id"].to_list()
    geno = idx.select("person_id").sort("person_id").with_columns(
        has_genome=pl.col("person_id").is_in(links["person_id"].to_list()),
        genomic_consent=pl.col("person_id").is_in(genomic))
    geno = geno.join(links, on="person_id", how="left").with_columns(
        sample_id=pl.when(pl.col("genomic_consent")).then(pl.col("sample_id")))
    assert_frame_equal(ds["genotype"], geno, check_dtypes=False)
    assert ds["genotype"]["has_genome"].any() and not ds["genotype"]["has_genome"].all()


def test_withdrawn_persons_never_appear(cat, result, small_release):
    gone = withdrawn(small_release)
    assert gone
    hand_made = result.members.vstack(pl.DataFrame({
        "subject_id": gone[:5], "cohort_start_date": result.members["cohort_start_date"][:5],
        "cohort_end_date": result.members["cohort_end_date"][:5]}).cast(
        result.members.schema))
    fake = CohortResult(T2D, cat.release_id, result.steps, hand_made, result.step_persons)
    ds = build_dataset(cat, fake, dict.fromkeys(DOMAINS))
    for name, frame in ds.frames.items():
        assert not frame.filter(pl.col("person_id").is_in(gone)).height, name
    assert ds.persons == build_dataset(cat, result, {"person": None}).persons


def test_concept_sets_and_window(cat, result, small_release):
    e11 = concept_set("KCD8", "E11")
    window = m.Window(start=-365, end=0)
    ds = build_dataset(cat, result, {"conditions": ["person_id", "condition_start_date",
                                                    "concept_code"]},
                       concepts={"conditions": e11}, window=window)
    got = ds["conditions"]
    assert got.columns == ["person_id", "condition_start_date", "concept_code"]
    assert set(got["concept_code"]) <= {"E11", "E11.2", "E11.3", "E11.9"}
    idx = index_of(result.members, small_release)
    ids = read(small_release, "concept").filter(
        pl.col("concept_code").is_in(["E11", "E11.2", "E11.3", "E11.9"])
        & (pl.col("vocabulary_id") == "KCD8"))["concept_id"].to_list()
    want = (read(small_release, "condition_occurrence").join(idx, on="person_id")
            .filter(pl.col("condition_concept_id").is_in(ids)
                    & pl.col("condition_start_date").is_between(
                        pl.col("index_date") - pl.duration(days=365), pl.col("index_date")))
            .sort("person_id", "condition_start_date", "condition_occurrence_id"))
    assert got.height == want.height > 0
    assert got["person_id"].to_list() == want["person_id"].to_list()
    # every member has their index event (day 0 is inside the inclusive window)
    assert got["person_id"].n_unique() == idx.height
    ns: dict = {}
    exec(ds.code, ns)  # noqa: S102
    assert_frame_equal(ns["conditions"], got)


def test_generated_code_rebuilds_the_frames(cat, result):
    ds = build_dataset(cat, result, {"person": None, "screening": ["person_id", "bmi"]})
    assert "build_dataset(cat, definition" in ds.code and "age(40, None)" in ds.code
    ns: dict = {}
    exec(ds.code, ns)  # noqa: S102
    try:
        assert ns["definition"] == T2D
        for name in ("person", "screening"):
            assert_frame_equal(ns[name], ds[name])
    finally:
        ns["cat"].close()


def test_bad_requests_say_what_to_do(cat, result):
    with pytest.raises(Exception, match="unknown domain 'labs'"):
        build_dataset(cat, result, {"labs": None})
    with pytest.raises(Exception, match="no column"):
        build_dataset(cat, result, {"person": ["ssn"]})
    with pytest.raises(Exception, match="takes no concept set"):
        build_dataset(cat, result, {"person": None}, concepts={"person": concept_set(
            "KCD8", "E11")})


def test_dataset_builder_widget(cat, result):
    cb = CohortBuilder(cat, T2D, debounce=60)
    w = DatasetBuilder(cat, cb)
    try:
        w.include["drugs"].value = True
        w.columns["drugs"].value = ("person_id", "concept_code")
        w.window.enabled.value = True
        w.window.start_box.value = "0"
        w.window.end_box.value = "90"
        w.build_button.click()
        assert w.dataset is not None
        want = build_dataset(cat, T2D, {"person": None, "drugs": ["person_id", "concept_code"]},
                             window=m.Window(start=0, end=90))
        for name in ("person", "drugs"):
            assert_frame_equal(w.dataset[name], want[name])
        assert w.code.value == want.code
        assert f"{want.persons:,} persons" in w.summary.value
        w.include["conditions"].value = True
        search = w.concepts["conditions"].search
        search.text.value = "E11"
        search.results.value = search.rows["concept_id"][0]
        search.add_button.click()
        w.build_button.click()
        want = build_dataset(cat, T2D, {"person": None, "drugs": ["person_id", "concept_code"],
                                        "conditions": None},
                             concepts={"conditions": w.concepts["conditions"].value},
                             window=m.Window(start=0, end=90))
        assert w.concepts["conditions"].value.items == [m.ConceptItem(vocabulary="KCD8",
                                                                      code="E11")]
        for name in ("person", "drugs", "conditions"):
            assert_frame_equal(w.dataset[name], want[name])
        assert set(w.dataset["conditions"]["concept_code"]) <= {"E11", "E11.2", "E11.3",
                                                                 "E11.9"}
        assert w.dataset["conditions"].height > 0
        w.columns["person"].value = ()
        w.build_button.click()
        assert "at least one column" in w.summary.value
    finally:
        w.close()
        cb.close()
