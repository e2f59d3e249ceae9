"""Loading an OMOP CDM CSV export: a synthetic release exported in many CSV dialects loads
back to the same tables and the same cohorts; the hand-made fixture loads; bad input fails
with a ReleaseError naming file, line and column, bad arguments with a UsageError."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cohort.builder import cohort, condition, drug
from cohort.engine import run
from workbench import access, catalog
from workbench.errors import ReleaseError, UsageError
from workbench.omop_load import LOADABLE, load_omop, table_of
from workbench.schema import TABLES, table_file
from workbench.synth.build import build_release
from workbench.synth.vocabulary import vocabulary_tables

FIXTURE = Path(__file__).parents[1] / "fixtures" / "omop_csv"

# OMOP v5.4 columns the release does not hold, exported as nulls (the loader drops them).
V54_EXTRA: dict[str, list[str]] = {
    "person": ["birth_datetime", "provider_id", "care_site_id", "race_source_value",
               "race_source_concept_id", "ethnicity_source_value", "ethnicity_source_concept_id",
               "gender_source_concept_id"],
    "visit_occurrence": ["visit_start_datetime", "visit_end_datetime", "provider_id",
                         "care_site_id", "visit_source_concept_id", "admitted_from_concept_id",
                         "admitted_from_source_value", "discharged_to_concept_id",
                         "discharged_to_source_value", "preceding_visit_occurrence_id"],
    "measurement": ["measurement_datetime", "measurement_time", "operator_concept_id",
                    "value_as_concept_id", "provider_id", "visit_detail_id",
                    "measurement_source_concept_id", "value_source_value",
                    "unit_source_concept_id", "measurement_event_id",
                    "meas_event_field_concept_id"],
    "condition_occurrence": ["condition_start_datetime", "condition_end_datetime",
                             "condition_status_concept_id", "stop_reason", "provider_id",
                             "visit_detail_id", "condition_status_source_value"],
}
# A v5.3 drug_exposure and location: v5.3 column names, no v5.4-only columns.
V53_EXTRA: dict[str, list[str]] = {
    "drug_exposure": ["drug_exposure_start_datetime", "drug_exposure_end_datetime",
                      "verbatim_end_date", "stop_reason", "refills", "sig",
                      "route_concept_id", "lot_number", "provider_id", "visit_detail_id",
                      "route_source_value", "dose_unit_source_value"],
    "location": ["address_1", "address_2", "zip", "county"],
    "visit_detail": [],
}

# How each table is written: file name, delimiter, extra columns, special formats.
PLAN: dict[str, dict[str, Any]] = {
    "person": {"file": "PERSON.csv", "upper": True, "bom": True},
    "observation_period": {"file": "observation_period.tsv", "sep": "\t"},
    "visit_occurrence": {"file": "VISIT_OCCURRENCE.csv.gz", "upper": True, "gzip": True},
    "condition_occurrence": {"file": "Condition_Occurrence.txt", "sep": "\t",
                             "date_format": "%Y%m%d", "upper": True},
    "drug_exposure": {"file": "drug_exposure.csv", "crlf": True},
    "measurement": {"file": "MEASUREMENT.CSV", "upper": True, "datetime": True},
    "procedure_occurrence": {"file": "procedure_occurrence.csv", "quote_all": True},
    "death": {"file": "death.csv"},
    "location": {"file": "LOCATION.tsv", "sep": "\t", "drop": ["country_source_value"]},
    "concept": {"file": "CONCEPT.csv", "sep": "\t", "date_format": "%Y%m%d", "upper": True,
                "drop": ["concept_name_ko"], "quote_never": True},
    "concept_ancestor": {"file": "CONCEPT_ANCESTOR.csv", "upper": True},
    "concept_relationship": {"file": "concept_relationship.tsv.gz", "sep": "\t",
                             "gzip": True, "date_format": "%Y%m%d"},
}

T2D_METFORMIN = (cohort("t2d").entry(condition("KCD8", "E11"))
                 .require("metformin", drug("ATC", "A10BA02").within(0, 365)).build())


def _release_frame(root: Path, name: str) -> pl.DataFrame:
    return pl.read_parquet(root / table_file(name))


def export_omop(release: Path, out: Path) -> Path:
    """Write a release's clinical and vocabulary tables as an OMOP CSV export (see PLAN)."""
    out.mkdir(parents=True)
    for name, plan in PLAN.items():
        df = _release_frame(release, name).drop(plan.get("drop", []))
        extra = V54_EXTRA.get(name, []) + V53_EXTRA.get(name, [])
        df = df.with_columns(pl.lit(None, pl.String).alias(c) for c in extra)
        if plan.get("datetime"):
            df = df.with_columns(pl.col(c).cast(pl.Datetime) + pl.duration(hours=9, minutes=30)
                                 for c, t in df.schema.items() if t == pl.Date)
        if plan.get("upper"):
            df = df.rename(str.upper)
        kwargs: dict[str, Any] = {"separator": plan.get("sep", ","),
                                  "date_format": plan.get("date_format"),
                                  "datetime_format": "%Y-%m-%d %H:%M:%S",
                                  "include_bom": plan.get("bom", False),
                                  "line_terminator": "\r\n" if plan.get("crlf") else "\n"}
        if plan.get("quote_all"):
            kwargs["quote_style"] = "always"
        if plan.get("quote_never"):
            kwargs["quote_style"] = "never"
        text = df.write_csv(**kwargs)
        path = out / plan["file"]
        if plan.get("gzip"):
            path.write_bytes(gzip.compress(text.encode()))
        else:
            path.write_text(text, encoding="utf-8", newline="")
    (out / "NOTE.csv").write_text("note_id,person_id,note_text\n1,1,\"free text\"\n")
    (out / "export_log.txt").write_text("exported by a test\n")
    (out / "README.md").write_text("an OMOP export\n")
    return out


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("omop-synth")
    build_release(root / "release", persons=1500, genotyped=0, variants=0, seed=2,
                  progress=False)
    return root / "release"


@pytest.fixture(scope="module")
def exported(synthetic: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_omop(synthetic, tmp_path_factory.mktemp("omop-export") / "csv")


@pytest.fixture(scope="module")
def loaded(exported: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("omop-loaded") / "release"
    return out, load_omop(exported, out, progress=False)


# --- the synthetic round trip -----------------------------------------------------------

def test_every_table_keeps_its_rows(synthetic: Path, loaded: tuple[Path, dict]) -> None:
    out, manifest = loaded
    source = catalog.load_manifest(synthetic)
    assert sorted(manifest["tables"]) == sorted(PLAN)
    for name in PLAN:
        assert manifest["tables"][name]["rows"] == source["tables"][name]["rows"] > 0, name
        assert manifest["source"]["files"][name]["rows"] == source["tables"][name]["rows"]


@pytest.mark.parametrize("name", list(PLAN))
def test_tables_equal_the_source(synthetic: Path, loaded: tuple[Path, dict],
                                 name: str) -> None:
    """Every column, after sorting; columns dropped from the export come back null."""
    got = _release_frame(loaded[0], name)
    want = _release_frame(synthetic, name)
    dropped = PLAN[name].get("drop", [])
    for col in dropped:
        assert got[col].null_count() == got.height, col
    keys = [c for c in want.columns if c not in dropped]
    assert_frame_equal(got.drop(dropped).sort(keys), want.drop(dropped).sort(keys))


def test_the_loaded_release_opens_and_gives_the_same_cohort(synthetic: Path,
                                                             loaded: tuple[Path, dict]) -> None:
    """...but for withdrawn persons: OMOP has no consent table, so the loaded release
    keeps them (and its manifest warns). An OMOP load is not marked synthetic, so the
    default session there is public: members need a controlled session."""
    with (access.Session("test", "controlled"), catalog.open(synthetic) as a,
          catalog.open(loaded[0]) as b):
        want, got = run(T2D_METFORMIN, a).members, run(T2D_METFORMIN, b).members
        withdrawn = a.sql("select person_id from consent where withdrawal_date is not null"
                          ).pl()["person_id"]
        assert b.release_id.startswith("omop-") and a.release_id != b.release_id
        assert not b.has("consent")
    assert want.height > 20
    kept = got.filter(pl.col("subject_id").is_in(withdrawn.implode()))
    assert kept.height > 0      # the difference the consent table makes, seen in this data
    assert_frame_equal(got.filter(~pl.col("subject_id").is_in(withdrawn.implode())), want)
    assert any("withdrew consent" in w for w in loaded[1]["warnings"])


def test_manifest_records_the_source(exported: Path, loaded: tuple[Path, dict]) -> None:
    manifest = loaded[1]
    assert manifest["kind"] == "omop" and manifest["vocabulary"] == "export"
    src = manifest["source"]
    assert src["directory"] == str(exported.resolve())
    files = src["files"]
    assert files["person"]["file"] == "PERSON.csv"
    assert files["observation_period"]["delimiter"] == "tab"
    assert files["visit_occurrence"]["compression"] == "gzip"
    assert files["visit_occurrence"]["columns_ignored"] == V54_EXTRA["visit_occurrence"]
    assert files["drug_exposure"]["columns_ignored"] == V53_EXTRA["drug_exposure"]
    assert files["location"]["columns_absent"] == ["country_source_value"]
    assert files["concept"]["columns_absent"] == ["concept_name_ko"]
    assert files["concept"]["quoting"] is True
    assert all(len(f["sha256"]) == 64 for f in files.values())
    assert src["ignored"] == [
        {"file": "NOTE.csv", "reason": "OMOP table the release does not hold"},
        {"file": "README.md", "reason": "not a .csv/.tsv/.txt file"},
        {"file": "export_log.txt", "reason": "not an OMOP CDM table"}]
    assert any("3 file(s) ignored" in w and "NOTE.csv" in w for w in manifest["warnings"])
    assert src["cdm_version"] == "5.4"        # no v5.3-only column in this export
    assert src["cdm_version_evidence"] == (
        "visit_occurrence.admitted_from_concept_id, visit_occurrence.discharged_to_concept_id, "
        "measurement.unit_source_concept_id, measurement.measurement_event_id")
    note = next(n for n in manifest["notes"] if n.startswith("visit_source_value"))
    assert "9201 -> IP" in note and "262 ER+IP -> IP" in note and note.count(" 0 of ") == 1


def test_cdm_version_from_columns(tiny: Callable[..., Path], tmp_path: Path) -> None:
    """Without CDM_SOURCE the version comes from columns only one version has."""
    src = tiny(cdm_source__csv=None)
    m = load_omop(src, tmp_path / "r54", progress=False)
    assert (m["source"]["cdm_version"], m["source"]["cdm_version_evidence"]) == (
        "5.4", "visit_occurrence.admitted_from_concept_id, "
               "visit_occurrence.discharged_to_concept_id")
    assert m["source"]["cdm_source"] is None
    v53 = (pl.read_csv(src / "visit_occurrence.csv", infer_schema=False)
           .rename({"admitted_from_concept_id": "admitting_source_concept_id",
                    "discharged_to_concept_id": "discharge_to_concept_id"}))
    v53.write_csv(src / "visit_occurrence.csv")
    m = load_omop(src, tmp_path / "r53", progress=False)
    assert m["source"]["cdm_version"] == "5.3"
    assert m["tables"]["visit_occurrence"]["rows"] == 4
    rel = tmp_path / "r53"
    assert _release_frame(rel, "visit_occurrence")["visit_source_value"].to_list() == [
        "OP", "IP", "IP", "HOME"]


# --- the hand-made fixture --------------------------------------------------------------

def test_fixture_export_loads(tmp_path: Path) -> None:
    m = load_omop(FIXTURE, tmp_path / "r", progress=False)
    assert {n: e["rows"] for n, e in m["tables"].items()} == {
        "person": 5, "observation_period": 5, "visit_occurrence": 4,
        "condition_occurrence": 4, "concept": 3}
    assert m["vocabulary"] == "export"
    assert m["source"]["cdm_version"] == "5.4"
    assert m["source"]["cdm_source"]["cdm_source_name"] == "Hand-made test export"
    assert m["source"]["ignored"] == [{"file": "README.md",
                                       "reason": "not a .csv/.tsv/.txt file"}]
    assert any("no CONCEPT_ANCESTOR" in w for w in m["warnings"])
    with catalog.open(tmp_path / "r") as cat:
        concept = cat.sql("select * from concept order by concept_id").pl()
        visits = cat.sql("select visit_concept_id, visit_source_value from visit_occurrence "
                         "order by visit_occurrence_id").fetchall()
        person = cat.sql("select * from person where person_id = 3").pl()
        conditions = cat.sql("select condition_concept_id, condition_start_date, "
                             "condition_end_date from condition_occurrence "
                             "where person_id = 3").fetchall()
    assert concept["concept_code"].to_list() == ["44054006", "59621000", "22298006"]
    assert concept["concept_name"].to_list() == [
        "Type 2 diabetes mellitus", "Essential hypertension", "Myocardial infarction, acute"]
    assert concept["concept_name_ko"].null_count() == 3
    assert str(concept["valid_start_date"][0]) == "2002-01-31"
    assert visits == [(9202, "OP"), (9201, "IP"), (262, "IP"), (581476, "HOME")]
    assert person["month_of_birth"].to_list() == [None]
    assert person["person_source_value"].to_list() == ["P0003"]
    assert [(c, str(s), str(e)) for c, s, e in conditions] == [
        (4329847, "2017-08-20", "2017-09-20")]


def test_without_concept_the_workbench_vocabulary_is_used(tmp_path: Path) -> None:
    src = tmp_path / "csv"
    src.mkdir()
    for name in ("person.csv", "observation_period.csv"):
        shutil.copy(FIXTURE / name, src / name)
    (src / "CONCEPT_ANCESTOR.csv").write_text(
        "ancestor_concept_id,descendant_concept_id\n1,1\n")
    m = load_omop(src, tmp_path / "r", progress=False)
    assert m["vocabulary"] == "workbench default"
    assert {"file": "CONCEPT_ANCESTOR.csv",
            "reason": "no CONCEPT file: the workbench vocabulary is used"} in m["source"]["ignored"]
    assert any("no CONCEPT file" in w for w in m["warnings"])
    for name, table in vocabulary_tables().items():
        assert m["tables"][name]["rows"] == table.num_rows
    assert sorted(n for n in m["tables"] if n not in vocabulary_tables()) == [
        "observation_period", "person"]


def test_header_only_file_and_text_values(tiny: Callable[..., Path], tmp_path: Path) -> None:
    """A header-only file gives an empty table; "" and blanks around numbers are handled,
    text is kept as written (Korean included)."""
    src = tiny(death__csv="PERSON_ID,DEATH_DATE,DEATH_DATETIME,DEATH_TYPE_CONCEPT_ID\r\n",
               location__csv='location_id,city,state,zip\n 7 ,"서울, 중구","",04500\n8,,x ,\n')
    m = load_omop(src, tmp_path / "r", progress=False)
    assert m["tables"]["death"]["rows"] == 0
    location = _release_frame(tmp_path / "r", "location")
    assert location.select("location_id", "city", "state").rows() == [
        (7, "서울, 중구", None), (8, None, "x ")]
    assert m["source"]["files"]["location"]["columns_ignored"] == ["zip"]
    assert m["source"]["files"]["location"]["columns_absent"] == [
        "location_source_value", "country_source_value"]


def test_progress_bars_name_each_table(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    load_omop(FIXTURE, tmp_path / "r", progress=True)
    err = capsys.readouterr().err
    for name in ("person (person.csv)", "condition_occurrence (condition_occurrence.csv)"):
        assert name in err


def test_table_names() -> None:
    assert [table_of(Path(n)) for n in ("PERSON.csv", "person.TSV", "Concept.txt.gz",
                                        "measurement.csv.GZ", "x.parquet", ".csv", "death")] \
        == ["person", "person", "concept", "measurement", None, None, None]
    assert set(LOADABLE) == {n for n in TABLES if n in PLAN}


# --- bad input ---------------------------------------------------------------------------

@pytest.fixture
def tiny(tmp_path: Path) -> Callable[..., Path]:
    """A copy of the fixture export with files replaced: tiny(name=text or None)."""
    made = iter(range(100))

    def make(**files: str | None) -> Path:
        src = tmp_path / f"csv{next(made)}"
        shutil.copytree(FIXTURE, src)
        for name, text in files.items():
            path = src / name.replace("__", ".")
            if text is None:
                path.unlink()
            else:
                path.write_text(text, encoding="utf-8", newline="")
        return src
    return make


def _error(src: Path, out: Path, kind: type[Exception] = ReleaseError, **kw: Any) -> str:
    with pytest.raises(kind) as info:
        load_omop(src, out, progress=False, **kw)
    err = info.value
    assert getattr(err, "hint", None), f"no hint: {err}"
    if out.parent.is_dir():     # nothing left behind beside the target
        assert not [p for p in out.parent.iterdir() if ".omop-staging-" in p.name
                    or ".writing-" in p.name]
    return str(err)


def test_missing_person_is_named(tiny: Callable[..., Path], tmp_path: Path) -> None:
    msg = _error(tiny(person__csv=None), tmp_path / "r")
    assert "no person.csv" in msg and "PERSON" in msg and "Hint:" in msg


def test_missing_person_and_observation_period(tiny: Callable[..., Path],
                                               tmp_path: Path) -> None:
    msg = _error(tiny(person__csv=None, observation_period__csv=None), tmp_path / "r")
    assert "no person.csv and observation_period.csv" in msg


CONDITIONS = ("CONDITION_OCCURRENCE_ID,PERSON_ID,CONDITION_CONCEPT_ID,CONDITION_START_DATE\n"
              "1,1,201826,2014-05-02\n{second}\n3,3,4329847,2017-08-20\n")


def test_bad_date_names_file_line_and_column(tiny: Callable[..., Path], tmp_path: Path) -> None:
    src = tiny(condition_occurrence__csv=CONDITIONS.format(second="2,2,320128,2016-02-31"))
    msg = _error(src, tmp_path / "r")
    assert f"{src / 'condition_occurrence.csv'}, line 3, column CONDITION_START_DATE" in msg
    assert "'2016-02-31' is not a date" in msg and "YYYY-MM-DD or YYYYMMDD" in msg


def test_bad_integer_names_file_line_and_column(tiny: Callable[..., Path],
                                                tmp_path: Path) -> None:
    src = tiny(condition_occurrence__csv=CONDITIONS.format(second="2,2,3201.5,2016-02-10"))
    msg = _error(src, tmp_path / "r")
    assert "condition_occurrence.csv, line 3, column CONDITION_CONCEPT_ID: '3201.5' is not a " \
           "whole number" in msg


def test_empty_key_is_an_error(tiny: Callable[..., Path], tmp_path: Path) -> None:
    src = tiny(condition_occurrence__csv=CONDITIONS.format(second="2,,320128,2016-02-10"))
    msg = _error(src, tmp_path / "r")
    assert "line 3, column PERSON_ID: empty" in msg


def test_missing_key_column(tiny: Callable[..., Path], tmp_path: Path) -> None:
    src = tiny(person__csv="person_id,year_of_birth\n1,1970\n")
    msg = _error(src, tmp_path / "r")
    assert "person.csv: no column gender_concept_id" in msg


def test_line_counts_multiline_values_and_blank_lines(tiny: Callable[..., Path],
                                                      tmp_path: Path) -> None:
    text = ("concept_id,concept_name,vocabulary_id,concept_code,valid_start_date\n"
            '1,"two\nlines",SNOMED,1,20020131\n'
            "\n"
            "2,plain,SNOMED,2,2002-01-31\n"
            "3,bad,SNOMED,3,2002-31-01\n")
    msg = _error(tiny(concept__csv=text), tmp_path / "r")
    assert "concept.csv, line 6, column valid_start_date: '2002-31-01'" in msg


def test_first_bad_line_of_a_large_file(tiny: Callable[..., Path], tmp_path: Path) -> None:
    """Many batches, read in parallel: the error is still the first bad line in the file."""
    n = 300_000
    lines = [f"{i},{1 + i % 5},201826,2014-05-02" for i in range(n)]
    lines[250_000] = "250000,1,201826,2014-05-0x"
    lines[260_000] = "260000,1,201826,bad"
    text = "condition_occurrence_id,person_id,condition_concept_id,condition_start_date\n" + \
        "\n".join(lines) + "\n"
    msg = _error(tiny(condition_occurrence__csv=text), tmp_path / "r")
    assert "line 250002, column condition_start_date: '2014-05-0x'" in msg


def test_mixed_delimiters_name_the_line(tiny: Callable[..., Path], tmp_path: Path) -> None:
    rows = "".join(f"{i},{i},320128,2016-02-10\n" for i in range(1, 40))
    text = ("condition_occurrence_id,person_id,condition_concept_id,condition_start_date\n"
            + rows + "40\t4\t320128\t2016-02-10\n")
    msg = _error(tiny(condition_occurrence__csv=text), tmp_path / "r")
    assert "condition_occurrence.csv, line 41: 1 field(s) where the header has 4 " \
           "(comma-delimited)" in msg
    tsv = ("condition_occurrence_id\tperson_id\tcondition_concept_id\tcondition_start_date\n"
           "1\t1\t320128\t2016-02-10\n2,2,320128,2016-02-10\n")
    msg = _error(tiny(condition_occurrence__csv=tsv), tmp_path / "r2")
    assert "line 3: 1 field(s) where the header has 4 (tab-delimited)" in msg


def test_header_with_both_delimiters(tiny: Callable[..., Path], tmp_path: Path) -> None:
    msg = _error(tiny(person__csv="person_id,gender_concept_id\tyear_of_birth\n1,8507\t1970\n"),
                 tmp_path / "r")
    assert "person.csv, line 1: the header mixes tabs (1) and commas (1)" in msg


def test_not_utf8(tiny: Callable[..., Path], tmp_path: Path) -> None:
    src = tiny()
    (src / "concept.csv").write_bytes(
        "concept_id,concept_name,vocabulary_id,concept_code\n1,당뇨병,KCD8,E11\n"
        .encode("cp949"))
    msg = _error(src, tmp_path / "r")
    assert "concept.csv, line 2: the file is not UTF-8" in msg and "iconv" in msg


def test_tsv_with_stray_quotes_loads_unquoted(tiny: Callable[..., Path], tmp_path: Path) -> None:
    """Athena's vocabulary files are tab-delimited with quote characters left as text."""
    src = tiny(concept__csv=None)
    (src / "CONCEPT.csv").write_text(
        "concept_id\tconcept_name\tvocabulary_id\tconcept_code\n"
        '1\t5" x 5" gauze\tSNOMED\t1\n2\t"Quoted" start\tSNOMED\t2\n3\tplain\tSNOMED\t3\n')
    m = load_omop(src, tmp_path / "r", progress=False)
    assert m["source"]["files"]["concept"]["quoting"] is False
    names = _release_frame(tmp_path / "r", "concept")["concept_name"].to_list()
    assert names == ['5" x 5" gauze', '"Quoted" start', "plain"]


def test_two_files_for_one_table(tiny: Callable[..., Path], tmp_path: Path) -> None:
    src = tiny()
    shutil.copy(src / "person.csv", src / "PERSON.tsv")
    msg = _error(src, tmp_path / "r")
    assert "both PERSON.tsv and person.csv hold table person" in msg


# --- arguments ---------------------------------------------------------------------------

def test_existing_out_needs_force(tmp_path: Path) -> None:
    out = tmp_path / "r"
    first = load_omop(FIXTURE, out, progress=False)
    msg = _error(FIXTURE, out, UsageError)
    assert "exists and is not empty\nHint: pass --force" in msg
    assert catalog.load_manifest(out)["release_id"] == first["release_id"]
    again = load_omop(FIXTURE, out, force=True, progress=False)
    assert again["release_id"] == first["release_id"]   # same content, same id


def test_force_does_not_replace_a_non_release(tmp_path: Path) -> None:
    out = tmp_path / "notes"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    msg = _error(FIXTURE, out, UsageError, force=True)
    assert "is not a release" in msg and (out / "keep.txt").read_text() == "mine"


def test_bad_arguments(tmp_path: Path) -> None:
    assert "is not a directory" in _error(tmp_path / "nope", tmp_path / "r", UsageError)
    src = tmp_path / "csv"
    shutil.copytree(FIXTURE, src)
    assert "inside the export directory" in _error(src, src / "release", UsageError)
    assert "inside the export directory" in _error(src, src, UsageError, force=True)
    assert (src / "person.csv").is_file()


def test_failed_load_keeps_the_previous_release(tiny: Callable[..., Path],
                                                tmp_path: Path) -> None:
    out = tmp_path / "r"
    first = load_omop(FIXTURE, out, progress=False)
    src = tiny(condition_occurrence__csv=CONDITIONS.format(second="2,2,320128,yesterday"))
    _error(src, out, force=True)
    assert catalog.open(out).release_id == first["release_id"]
