"""Incremental loads make new release versions: screening extracts with Korean headers and
FHIR batches added to a parent release give version 2 with a parent and a change summary;
bad screening rows are reported with their line numbers; cohort results name the version
they ran on (release_id)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from cohort.builder import cohort, condition
from cohort.engine import run
from workbench import access, catalog
from workbench.errors import ReleaseError, UsageError
from workbench.fhir import systems as S
from workbench.fhir.load import load_fhir
from workbench.schema import TABLES, table_file
from workbench.screening_load import COLUMNS, load_screening, read_screening
from workbench.synth.build import build_release
from workbench.versions import KEYS, new_version

HEADER = "개인일련번호,검진일자,기준년도,신장(5cm단위),체중(5Kg 단위),허리둘레,수축기 혈압," \
         "이완기 혈압,식전혈당(공복혈당),총 콜레스테롤,LDL 콜레스테롤,HDL 콜레스테롤," \
         "트리글리세라이드,흡연상태,주당음주일수"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("versions") / "v1"
    build_release(out, persons=120, genotyped=0, variants=0, seed=4, progress=False)
    return out


def test_every_table_has_a_key() -> None:
    assert set(KEYS) == set(TABLES)
    assert {c for c, *_ in COLUMNS} <= set(TABLES["health_screening"].names)


def test_screening_extract_becomes_version_2(base: Path, tmp_path: Path) -> None:
    csv = tmp_path / "검진_2025.csv"
    csv.write_text("\n".join([
        HEADER,
        "1,20250304,2025,170,70,85,128,82,95,190,110,50,150,1,2",       # line 2: good
        "2,2025-03-05,2025,160,55,70,abc,80,90,180,100,60,100,2,0",     # 3: sbp not a number
        "",                                                             # 4: blank
        "3,2025.03.06,2025,165,60,80,999,80,90,180,100,60,100,3,1",     # 5: sbp out of range
        "4,,2025,165,60,80,120,80,90,180,100,60,100,1,1",               # 6: no date
        "99999,20250307,2025,165,60,80,120,80,90,180,100,60,100,1,1",   # 7: unknown person
        "1,20250304,2025,171,71,85,129,83,96,191,111,51,151,1,2",       # 8: duplicate
        "5,20250308,2025,180,81,90,135,88,101,,,,,9,3",                 # 9: smoking 9
        "6,20250309,2025,175,75,88,122,78,99,,,,,2,8",                  # 10: drinking 8
        "7,20250310,2025,158,52,66,118,76,88,,,,,1,0",                  # 11: good, no lipids
    ]) + "\n", encoding="cp949")
    before = pl.read_parquet(base / table_file("health_screening")).height
    m = load_screening([csv], base, tmp_path / "v2")
    parent = json.loads((base / "manifest.json").read_text())
    assert m["version"] == "2" and m["parent"]["release_id"] == parent["release_id"]
    assert m["release_id"] != parent["release_id"] and parent["kind"] == "synthetic"
    assert m["kind"] == "screening"   # real rows on a synthetic parent: not synthetic
    ch = m["changes"]
    assert ch["tables"]["health_screening"] == {"rows_before": before,
                                                "rows_after": before + 2, "added": 2,
                                                "replaced": 0}
    assert ch["persons_added"] == 0 and ch["persons_withdrawn"] == 0
    report = json.loads((tmp_path / "v2" / "screening_report.json").read_text())
    lines = {r["line"]: r["reason"] for r in report["rejected"]}
    assert lines == {
        3: "수축기 혈압: 'abc' is not a number",
        5: "수축기 혈압: 999 is outside 50-300",
        6: "검진일자: empty, but every row needs it",
        7: f"person_id 99999 is not in release {parent['release_id']}",
        8: "person 1 screened on 2025-03-04 again (first at 검진_2025.csv, line 2)",
        9: "흡연상태: 9 is outside 1-3",
        10: "주당음주일수: 8 is outside 0-7",
    }
    assert report["files"][0]["encoding"] == "cp949"
    assert report["files"][0]["ignored_columns"] == ["기준년도"]
    new = pl.read_parquet(tmp_path / "v2" / table_file("health_screening")).filter(
        pl.col("screening_date") >= dt.date(2025, 1, 1)).sort("person_id")
    assert new["person_id"].to_list() == [1, 7]
    assert new["sbp"].to_list() == [128.0, 118.0] and new["bmi"].to_list() == [24.2, 20.8]
    assert new["ldl_cholesterol"].to_list() == [110.0, None]
    assert new["smoking_status"].to_list() == [1, 1]
    # the parent is untouched and both open; cohort results name the version they ran on
    assert pl.read_parquet(base / table_file("health_screening")).height == before
    t2d = cohort("t2d").entry(condition("KCD8", "E11")).build()
    with access.Session("test", "controlled"), catalog.open(base) as a, \
            catalog.open(tmp_path / "v2") as b:
        ra, rb = run(t2d, a), run(t2d, b)
    assert (ra.release_id, rb.release_id) == (parent["release_id"], m["release_id"])


def test_screening_header_problems(tmp_path: Path, base: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_text("검진일자,신장\n20250101,170\n")
    with pytest.raises(ReleaseError, match="no 개인일련번호 column"):
        read_screening(p)
    p.write_text("개인일련번호,검진일자,수축기혈압,수축기 혈압\n1,20250101,120,121\n")
    with pytest.raises(ReleaseError, match="both give sbp"):
        read_screening(p)
    with pytest.raises(UsageError, match="is the parent release"):
        new_version(base, base, {}, source={})


def test_fhir_batch_adds_a_version(base: Path, tmp_path: Path) -> None:
    consent = pl.read_parquet(base / table_file("consent"))
    stays = consent.filter(pl.col("withdrawal_date").is_null())["person_id"][0]
    batch = [
        {"resourceType": "Patient", "id": "p-new", "gender": "male", "birthDate": "1990-01-02"},
        {"resourceType": "Condition", "id": "c-new", "subject": {"reference": "Patient/p-new"},
         "code": {"coding": [{"system": S.KCD8, "code": "E11.9"}]},
         "onsetDateTime": "2025-02-01"},
        {"resourceType": "Encounter", "id": "e-1", "status": "finished",
         "class": {"system": S.ACT_CODE, "code": "AMB"}, "subject": {"reference": "Patient/1"},
         "period": {"start": "2025-02-03", "end": "2025-02-03"}},
        {"resourceType": "Condition", "id": "c-1", "subject": {"reference": "Patient/1"},
         "encounter": {"reference": "Encounter/e-1"},
         "code": {"coding": [{"system": S.KCD8, "code": "I10"}]}, "onsetDateTime": "2025-02-03"},
        {"resourceType": "Consent", "id": "k", "status": "inactive",
         "patient": {"reference": f"Patient/{stays}"},
         "scope": {"coding": [{"system": S.CONSENT_SCOPE_HL7, "code": "research"}]},
         "category": [{"coding": [{"system": S.LOINC, "code": "59284-0"}]}],
         "dateTime": "2020-01-01", "provision": {
             "type": "permit", "period": {"start": "2020-01-01", "end": "2025-01-31"},
             "provision": [{"type": "permit", "code": [{"coding": [
                 {"system": S.CONSENT_SCOPE, "code": "clinical"}]}]}]}},
    ]
    src = tmp_path / "batch.ndjson"
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in batch) + "\n")
    m = load_fhir(src, tmp_path / "v2", base=base, progress=False)
    ch = m["changes"]
    assert m["version"] == "2" and ch["persons_added"] == 1 and ch["persons_withdrawn"] == 1
    assert ch["tables"]["condition_occurrence"]["added"] == 2
    assert ch["tables"]["condition_occurrence"]["replaced"] == 0
    assert ch["tables"]["consent"] == {**ch["tables"]["consent"], "added": 0, "replaced": 1}
    assert m["source"]["load"]["rejected"] == 0
    person = pl.read_parquet(tmp_path / "v2" / table_file("person"))
    assert person.height == 121 and person["person_id"].max() == 121   # numbered after 120
    cond = pl.read_parquet(tmp_path / "v2" / table_file("condition_occurrence"))
    mine = cond.filter(pl.col("condition_start_date") >= dt.date(2025, 2, 1)).sort("person_id")
    assert mine["person_id"].to_list() == [1, 121]
    visits = pl.read_parquet(tmp_path / "v2" / table_file("visit_occurrence"))
    assert mine["visit_occurrence_id"][0] == visits["visit_occurrence_id"].max()
    periods = pl.read_parquet(tmp_path / "v2" / table_file("observation_period"))
    assert periods["observation_period_id"].n_unique() == periods.height


def test_omop_export_adds_a_version_through_the_cli(base: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from workbench.cli import app

    src = tmp_path / "omop"
    src.mkdir()
    (src / "PERSON.csv").write_text("person_id,gender_concept_id,year_of_birth\n"
                                    "10001,8507,1980\n")
    (src / "OBSERVATION_PERIOD.csv").write_text(
        "observation_period_id,person_id,observation_period_start_date,"
        "observation_period_end_date\n90001,10001,2020-01-01,2024-12-31\n")
    cid = 2000100026   # KCD8 E11.9
    (src / "condition_occurrence.csv").write_text(
        "condition_occurrence_id,person_id,condition_concept_id,condition_start_date\n"
        f"90001,10001,{cid},2021-05-06\n90002,1,{cid},2021-05-07\n")
    r = CliRunner().invoke(app, ["release", "load-omop", str(src), "--base", str(base),
                                 "--out", str(tmp_path / "v2")])
    assert r.exit_code == 0, r.output
    assert "1 persons added" in r.output
    m = json.loads((tmp_path / "v2" / "manifest.json").read_text())
    assert m["version"] == "2" and m["source"]["kind"] == "omop" and m["kind"] == "omop"
    assert m["changes"]["tables"]["condition_occurrence"]["added"] == 2
    assert "concept" not in m["changes"]["tables"]
    assert not any(p.name.startswith(".v2.omop-") for p in tmp_path.iterdir())
