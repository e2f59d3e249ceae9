"""FHIR ingest: each resource type and code system maps to the release rows it should, and
malformed or partial resources are rejected with file, line/entry, id and reason while the
rest of the batch loads."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from workbench import catalog
from workbench.errors import ReleaseError, UsageError
from workbench.fhir import systems as S
from workbench.fhir.load import REPORT_JSON, REPORT_TEXT, load_fhir
from workbench.schema import table_file
from workbench.synth.vocabulary import concept_id

KCD8, KCD7, ATC, LOINC = S.KCD8, S.KCD7, S.ATC, S.LOINC
HIRA_MED = "http://www.hl7korea.or.kr/CodeSystem/hira-edi-medication"


def patient(pid: str = "1", **kw: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "gender": "female",
            "birthDate": "1960-04-05",
            "identifier": [{"system": S.PARTICIPANT_ID, "value": f"KB-{pid}"}],
            "address": [{"state": "부산광역시", "country": "KR"}], **kw}


def subject(pid: str = "1") -> dict[str, str]:
    return {"reference": f"Patient/{pid}"}


def coded(system: str | None, code: str, **kw: Any) -> dict[str, Any]:
    c = {"code": code, **kw}
    if system:
        c["system"] = system
    return {"coding": [c]}


def condition(rid: str, code: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"resourceType": "Condition", "id": rid, "subject": subject(), "code": code,
            "onsetDateTime": "2020-03-04T09:30:00+09:00", **kw}


def write_ndjson(path: Path, resources: list[dict[str, Any] | str]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)
                              for r in resources) + "\n", encoding="utf-8")
    return path


def load(tmp_path: Path, resources: list[dict[str, Any] | str]
         ) -> tuple[dict[str, Any], dict[str, pl.DataFrame], dict[str, Any]]:
    src = write_ndjson(tmp_path / "in.ndjson", resources)
    out = tmp_path / "release"
    m = load_fhir(src, out, progress=False)
    tables = {n: pl.read_parquet(out / table_file(n)) for n in m["tables"]}
    return m, tables, json.loads((out / REPORT_JSON).read_text())


def test_each_resource_type_maps_to_its_table(tmp_path: Path) -> None:
    resources = [
        patient("1", deceasedDateTime="2023-05-06"),
        {"resourceType": "Encounter", "id": "10", "status": "finished", "subject": subject(),
         "class": {"system": S.ACT_CODE, "code": "IMP"},
         "period": {"start": "2020-03-04", "end": "2020-03-09"}},
        condition("20", coded(KCD8, "E11.9"), encounter={"reference": "Encounter/10"},
                  abatementDateTime="2020-04-01"),
        {"resourceType": "MedicationRequest", "id": "30", "status": "completed",
         "intent": "order", "subject": subject(), "encounter": {"reference": "Encounter/10"},
         "medicationCodeableConcept": coded(ATC, "A10BA02"), "authoredOn": "2020-03-04",
         "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {
             "start": "2020-03-04", "end": "2020-04-02"}}}}],
         "dispenseRequest": {"quantity": {"value": 60},
                             "expectedSupplyDuration": {"value": 30, "code": "d"}}},
        {"resourceType": "MedicationStatement", "id": "31", "status": "active",
         "subject": subject(), "medicationCodeableConcept": coded(ATC, "C10AA05"),
         "effectivePeriod": {"start": "2019-01-01"}},
        {"resourceType": "Observation", "id": "40", "status": "final", "subject": subject(),
         "category": [{"coding": [{"system": S.OBSERVATION_CATEGORY, "code": "laboratory"}]}],
         "code": coded(LOINC, "4548-4"), "effectiveDateTime": "2020-03-04",
         "valueQuantity": {"value": 7.2, "unit": "%", "system": S.UCUM, "code": "%"},
         "referenceRange": [{"low": {"value": 4.0}, "high": {"value": 5.6}}]},
        {"resourceType": "Observation", "id": "41", "status": "final", "subject": subject(),
         "category": [{"coding": [{"system": S.OBSERVATION_CATEGORY, "code": "vital-signs"}]}],
         "code": coded(LOINC, "85354-9"), "effectiveDateTime": "2020-03-05",
         "component": [
             {"code": coded(LOINC, "8480-6"),
              "valueQuantity": {"value": 141, "system": S.UCUM, "code": "mm[Hg]"}},
             {"code": coded(LOINC, "8462-4"),
              "valueQuantity": {"value": 91, "system": S.UCUM, "code": "mm[Hg]"}}]},
        {"resourceType": "Observation", "id": "d1", "status": "final", "subject": subject(),
         "code": coded(LOINC, S.CAUSE_OF_DEATH), "valueCodeableConcept": coded(KCD8, "I21.9")},
        {"resourceType": "Procedure", "id": "50", "status": "completed", "subject": subject(),
         "code": coded(S.SNOMED, "76009000"), "performedDateTime": "2020-03-06"},
        {"resourceType": "Consent", "id": "c1", "status": "inactive", "patient": subject(),
         "scope": coded(S.CONSENT_SCOPE_HL7, "research"),
         "category": [coded(LOINC, "59284-0")], "dateTime": "2019-06-01",
         "provision": {"type": "permit", "period": {"start": "2019-06-01", "end": "2022-01-31"},
                       "provision": [
                           {"type": "permit", "code": [coded(S.CONSENT_SCOPE, "clinical")]},
                           {"type": "deny", "code": [coded(S.CONSENT_SCOPE, "genomic")]}]}},
        {"resourceType": "EpisodeOfCare", "id": "60", "status": "finished",
         "patient": subject(), "period": {"start": "2010-01-01", "end": "2023-05-06"}},
    ]
    m, t, report = load(tmp_path, resources)
    assert report["rejected"] == [] and report["skipped"] == [], report
    assert m["kind"] == "fhir" and m["load"]["loaded"] == len(resources)
    p = t["person"].row(0, named=True)
    assert (p["person_id"], p["gender_concept_id"], p["year_of_birth"], p["month_of_birth"],
            p["day_of_birth"], p["person_source_value"], p["gender_source_value"],
            p["location_id"]) == (1, 8532, 1960, 4, 5, "KB-1", "F", 2)   # Busan is region 2
    v = t["visit_occurrence"].row(0, named=True)
    assert (v["visit_occurrence_id"], v["visit_concept_id"], v["visit_source_value"],
            v["visit_start_date"], v["visit_end_date"]) == (10, 9201, "IP", dt.date(2020, 3, 4),
                                                            dt.date(2020, 3, 9))
    c = t["condition_occurrence"].row(0, named=True)
    assert (c["condition_concept_id"], c["condition_source_value"], c["visit_occurrence_id"],
            c["condition_start_date"], c["condition_end_date"]) == (
        concept_id("KCD8", "E11.9"), "E11.9", 10, dt.date(2020, 3, 4), dt.date(2020, 4, 1))
    d = t["drug_exposure"].sort("drug_exposure_id")
    assert d["drug_concept_id"].to_list() == [concept_id("ATC", "A10BA02"),
                                              concept_id("ATC", "C10AA05")]
    assert d["days_supply"].to_list() == [30, None] and d["quantity"].to_list() == [60.0, None]
    assert d["drug_type_concept_id"].to_list() == [32838, 32817]
    assert d["drug_exposure_end_date"].to_list() == [dt.date(2020, 4, 2), None]
    ms = t["measurement"].sort("measurement_date", "measurement_source_value")
    assert ms["measurement_source_value"].to_list() == ["4548-4", "8462-4", "8480-6"]
    assert ms["value_as_number"].to_list() == [7.2, 91.0, 141.0]
    assert ms["unit_concept_id"].to_list() == [8554, 8876, 8876]
    assert ms["range_low"].to_list() == [4.0, None, None]
    death = t["death"].row(0, named=True)
    assert (death["death_date"], death["cause_concept_id"], death["cause_source_value"]) == (
        dt.date(2023, 5, 6), concept_id("KCD8", "I21.9"), "I21.9")
    assert t["procedure_occurrence"]["procedure_concept_id"].to_list() == [
        concept_id("SNOMED", "76009000")]
    k = t["consent"].row(0, named=True)
    assert (k["clinical"], k["genomic"], k["public"], k["lifelog"], k["consent_date"],
            k["withdrawal_date"]) == (True, False, False, False, dt.date(2019, 6, 1),
                                      dt.date(2022, 1, 31))
    op = t["observation_period"].row(0, named=True)
    assert (op["observation_period_id"], op["observation_period_start_date"]) == (
        60, dt.date(2010, 1, 1))
    with catalog.open(tmp_path / "release") as cat:   # a valid release the catalog opens
        assert cat.sql("select count(*) from person").fetchall() == [(1,)]


def test_code_systems_kcd7_icd10_unmapped_and_unknown(tmp_path: Path) -> None:
    resources = [
        patient(),
        condition("1", {"coding": [{"system": KCD7, "code": "I10", "userSelected": True},
                                   {"system": KCD8, "code": "I10"}]}),
        condition("2", coded(S.ICD10, "E78.5")),
        condition("3", coded(KCD8, "Z99.9")),                       # not in the vocabulary
        condition("4", coded("http://example.org/local-dx", "X1")),   # unknown system
        condition("5", {"text": "chest pain"}),                     # no coding at all
        {"resourceType": "MedicationRequest", "id": "6", "status": "active", "intent": "order",
         "subject": subject(), "authoredOn": "2021-01-01",
         "medicationCodeableConcept": coded(HIRA_MED, "644501240")},
    ]
    m, t, report = load(tmp_path, resources)
    c = t["condition_occurrence"].sort("condition_occurrence_id")
    assert c["condition_concept_id"].to_list() == [
        concept_id("KCD8", "I10"), concept_id("KCD8", "E78.5"), 0, 0, 0]
    assert c["condition_source_concept_id"].to_list() == [
        concept_id("KCD7", "I10"), concept_id("KCD8", "E78.5"), 0, 0, 0]
    assert c["condition_source_value"].to_list() == ["I10", "E78.5", "Z99.9", "X1",
                                                     "chest pain"]
    why = {(u["system"], u["code"]): u["why"] for u in report["unmapped_codes"]}
    assert why == {(KCD8, "Z99.9"): "code not in the KCD8 vocabulary",
                   ("http://example.org/local-dx", "X1"): "code system not known",
                   (None, None): "no coding, text only",
                   (HIRA_MED, "644501240"): "HIRA EDI medication: no vocabulary in the release"}
    assert t["drug_exposure"]["drug_source_value"].to_list() == ["644501240"]
    assert m["load"]["unmapped_rows"] == 4 and m["load"]["rejected"] == 0
    assert "Unmapped codes" in (tmp_path / "release" / REPORT_TEXT).read_text()


def test_malformed_and_partial_resources_are_reported_not_fatal(tmp_path: Path) -> None:
    good = condition("9", coded(KCD8, "E11.9"))
    resources: list[dict[str, Any] | str] = [
        patient("1"),
        condition("2", coded(KCD8, "I10"), subject=None),                      # line 2
        condition("3", coded(KCD8, "I10"), subject={"reference": "Patient/404"}),
        condition("4", coded(KCD8, "I10"), onsetDateTime="2020-02-30"),        # line 4
        condition("5", coded(KCD8, "I10"), onsetDateTime="2020-02"),           # partial
        {**condition("6", coded(KCD8, "I10")), "resourceType": "Conditon"},    # line 6
        '{"resourceType": "Condition", "id": "7", "subject": {"refer',          # truncated
        good,                                                                  # line 8
        condition("9", coded(KCD8, "J06.9")),                                  # duplicate
        {"id": "10", "code": {"text": "x"}},                                   # no type
        patient("11", birthDate=None),                                         # no birthDate
        {"resourceType": "Practitioner", "id": "12"},                          # not loaded
        {"resourceType": "Observation", "id": "13", "status": "final", "subject": subject(),
         "category": [coded(S.OBSERVATION_CATEGORY, "social-history")],
         "code": coded(LOINC, "72166-2"), "effectiveDateTime": "2020-01-01"},
        condition("14", coded(KCD8, "I10"), subject={"reference": "Patient/11"}),
        condition("15", coded(KCD8, "I10"), unknownField=1),
        {"resourceType": "Observation", "id": "16", "status": "final",                # line 16
         "subject": {"reference": "Patient/404"}, "code": coded(LOINC, "85354-9"),
         "effectiveDateTime": "2020-01-01", "component": [
             {"code": coded(LOINC, "8480-6"), "valueQuantity": {"value": 120}},
             {"code": coded(LOINC, "8462-4"), "valueQuantity": {"value": 80}}]},
    ]
    resources[1] = {k: v for k, v in resources[1].items() if v is not None}
    resources[10] = {k: v for k, v in resources[10].items() if v is not None}
    m, t, report = load(tmp_path, resources)
    reasons = {r["line"]: (r["resourceType"], r["id"], r["reason"]) for r in report["rejected"]}
    assert reasons[2] == ("Condition", "2", "invalid FHIR: subject: Field required")
    assert reasons[3] == ("Condition", "3", "subject Patient/404 is not in the batch")
    assert reasons[4][2].startswith("invalid FHIR: onsetDateTime") and "2020-02-30" in \
        reasons[4][2]
    assert reasons[5][2] == ("onsetDateTime or recordedDate '2020-02' has no day (a partial "
                             "date cannot be an event date)")
    assert reasons[6] == ("Conditon", "6", "resourceType 'Conditon' is not a FHIR R4 "
                                           "resource type")
    assert reasons[7][0] is None and reasons[7][2].startswith("line is not valid JSON")
    assert reasons[9] == ("Condition", "9", "duplicate id: Condition/9 was read first at "
                                            "in.ndjson, line 8")
    assert reasons[10] == (None, "10", "no resourceType")
    assert reasons[11][2].startswith("no birthDate")
    assert reasons[14] == ("Condition", "14", "subject Patient/11 was rejected (at in.ndjson, "
                                              "line 11)")
    assert "unknownField" in reasons[15][2] and "Extra inputs" in reasons[15][2]
    assert all(r["file"] == "in.ndjson" for r in report["rejected"])
    assert reasons[16] == ("Observation", "16", "subject Patient/404 is not in the batch")
    assert len(report["rejected"]) == 12   # the panel's two rows: one rejection
    skipped = {s["reason"]: s["count"] for s in report["skipped"]}
    assert skipped == {
        "Observation category social-history is not loaded (loaded: laboratory, vital-signs)": 1,
        "Practitioner is not loaded (loaded: Patient, Encounter, Condition, MedicationRequest, "
        "MedicationStatement, Observation, Procedure, Consent, EpisodeOfCare, Medication)": 1}
    # nothing silently dropped: every line is loaded, rejected or skipped
    c = m["load"]
    assert c["loaded"] + c["rejected"] + c["skipped"] == c["resources_read"] == len(resources)
    assert t["condition_occurrence"]["condition_occurrence_id"].to_list() == [9]
    text = (tmp_path / "release" / REPORT_TEXT).read_text()
    assert "in.ndjson, line 3: Condition/3: subject Patient/404 is not in the batch" in text


def test_bundles_fullurl_references_and_a_broken_file(tmp_path: Path) -> None:
    src = tmp_path / "bundles"
    src.mkdir()
    pat = {"fullUrl": "urn:uuid:0f1e2d3c-0000-4000-8000-000000000001",
           "resource": {k: v for k, v in patient("p-a", deceasedDateTime="2024-01-02").items()
                        if k != "id"}}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        pat,
        {"resource": condition("c-1", coded(KCD8, "I10"),
                               subject={"reference": pat["fullUrl"]})},
        {"request": {"method": "DELETE", "url": "Patient/9"}},               # no resource
    ]}
    (src / "a.json").write_text(json.dumps(bundle))
    (src / "b.json").write_text('{"resourceType": "Bundle", "entry": [')    # truncated file
    (src / "notes.txt").write_text("not FHIR")
    m = load_fhir(src, tmp_path / "release", progress=False)
    report = json.loads((tmp_path / "release" / REPORT_JSON).read_text())
    assert m["tables"]["condition_occurrence"]["rows"] == 1
    assert m["tables"]["death"]["rows"] == 1   # a Patient without an id still has its death
    assert [n.split(":")[0] for n in m["notes"]] == [
        "person", "condition_occurrence", "1 person(s) without an EpisodeOfCare"]
    assert [(r["file"], r["entry"]) for r in report["rejected"]] == [("a.json", 2), ("b.json",
                                                                                    None)]
    assert report["rejected"][1]["reason"].startswith("the file is not valid JSON")
    assert m["source"]["ignored"] == ["notes.txt"]


def test_no_patient_and_bad_arguments(tmp_path: Path) -> None:
    src = write_ndjson(tmp_path / "x.ndjson", [condition("1", coded(KCD8, "I10"))])
    with pytest.raises(ReleaseError, match="no Patient could be loaded"):
        load_fhir(src, tmp_path / "r", progress=False)
    with pytest.raises(UsageError, match="does not exist"):
        load_fhir(tmp_path / "missing", tmp_path / "r", progress=False)
    with pytest.raises(UsageError, match="inside the source"):
        load_fhir(tmp_path, tmp_path / "r", progress=False)


def test_worker_processes_give_the_same_release(tmp_path: Path) -> None:
    resources = [patient("1"), patient("2", gender="male"),
                 *[condition(str(i), coded(KCD8, "I10"), subject=subject(str(1 + i % 2)))
                   for i in range(1, 2500)],
                 condition("2499", coded(KCD8, "E11.9")), '{"truncated": ']
    src = write_ndjson(tmp_path / "in.ndjson", resources)
    one = load_fhir(src, tmp_path / "one", progress=False)
    two = load_fhir(src, tmp_path / "two", progress=False, workers=2)
    assert one["tables"] == two["tables"] and one["files"] == two["files"]
    assert one["load"]["rejected"] == 2   # the duplicate Condition/2499 and the bad line
