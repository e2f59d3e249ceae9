"""A release's clinical data as FHIR R4 resources in KR Core style: ``release to-fhir``.

Writes ``OUT/ndjson/<resourceType>.ndjson`` (one resource a line, as a bulk export) and
``OUT/bundles/bundle-00001.json``... (``collection`` Bundles of ``bundle_size`` persons
with all their resources), plus ``OUT/export.json`` naming the release, the counts and the
files' checksums. The directory appears whole (written beside, then renamed).

Rows become: person -> Patient (death date as ``deceasedDateTime``, region as
``address.state``), visit_occurrence -> Encounter, condition_occurrence -> Condition
(KCD-8 coding; a KCD-7 source code first, marked ``userSelected``), drug_exposure ->
MedicationRequest (type 32838) or MedicationStatement (others), measurement -> Observation
(category vital-signs or laboratory, UCUM quantities), procedure_occurrence -> Procedure
(SNOMED CT), death cause -> Observation (LOINC 69453-9), consent -> Consent (one nested
provision per scope), observation_period -> EpisodeOfCare. :func:`workbench.fhir.load.
load_fhir` reads them back into the same rows (tests/integration/test_fhir_roundtrip.py).

>>> import tempfile, pathlib
>>> from workbench.synth.build import build_release
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> _ = build_release(tmp / "rel", persons=100, genotyped=0, variants=0, seed=3,
...                   progress=False)
>>> info = release_to_fhir(tmp / "rel", tmp / "fhir", progress=False)
>>> info["resources"]["Patient"], sorted(p.name for p in (tmp / "fhir").iterdir())
(100, ['bundles', 'export.json', 'ndjson'])
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from tqdm import tqdm

from workbench.atomic import recover_dir, replace_dir
from workbench.errors import ReleaseError, UsageError
from workbench.fhir import systems as S
from workbench.manifest import MANIFEST, read_manifest, sha256_file

VITAL_SIGNS = frozenset({"8480-6", "8462-4", "39156-5", "29463-7", "8302-2", "8867-4",
                         "9279-1", "8310-5", "59408-5", "85354-9"})
_NS = uuid.UUID("6f1c1a52-8f3e-4b59-9a53-2f3c8e7d0a11")   # fullUrl uuids: uuid5(_NS, key)


def release_to_fhir(release: Path | str, out: Path | str, *, bundle_size: int = 500,
                    force: bool = False, progress: bool = True) -> dict[str, Any]:
    """Write the clinical tables of ``release`` as FHIR NDJSON and Bundles into ``out``;
    return the export summary (also ``out/export.json``). See the module docstring.

    Raises :class:`UsageError` for bad arguments and :class:`ReleaseError` when the
    release has no person table.
    """
    release, out = Path(release), Path(out)
    if bundle_size < 1:
        raise UsageError(f"--bundle-size must be at least 1, got {bundle_size}")
    if not (release / MANIFEST).is_file():
        raise UsageError(f"{release} is not a release (no {MANIFEST})",
                         hint="give the directory of a release (workbench release info)")
    if out.exists() and any(out.iterdir()) and not (force and (out / "export.json").is_file()):
        raise UsageError(f"--out {out} exists and is not empty",
                         hint="pass --force to replace an earlier export, or choose a new "
                              "directory")
    manifest = read_manifest(release)
    tables = manifest["tables"]
    if "person" not in tables:
        raise ReleaseError(f"{release}: the release has no person table",
                           hint="only releases with clinical tables can be exported to FHIR")

    def read(name: str) -> list[dict[str, Any]]:
        if name not in tables:
            return []
        return pq.read_table(release / tables[name]["path"]).to_pylist()

    concepts = {r["concept_id"]: (r["vocabulary_id"], r["concept_code"], r["concept_name"])
                for r in read("concept")}
    w = _Writer(concepts)
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    person_of: dict[int, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    deaths = {r["person_id"]: r for r in read("death")}
    places = {r["location_id"]: r for r in read("location")}
    steps = [("person", lambda r: w.patient(r, deaths.get(r["person_id"]), places)),
             ("observation_period", w.episode), ("visit_occurrence", w.encounter),
             ("condition_occurrence", w.condition), ("drug_exposure", w.drug),
             ("measurement", w.observation), ("procedure_occurrence", w.procedure),
             ("death", w.cause_of_death), ("consent", w.consent)]
    for name, make in tqdm(steps, desc="to FHIR", disable=not progress, leave=False):
        for row in read(name):
            res = make(row)
            if res is None:
                continue
            by_type[res["resourceType"]].append(res)
            person_of[row["person_id"]].append((res["resourceType"], res))
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.parent.is_dir():
        recover_dir(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-{os.getpid()}-", dir=out.parent))
    try:
        files = _write(tmp, by_type, person_of, bundle_size)
        info = {"release_id": manifest.get("release_id"), "release_version":
                manifest.get("version"), "fhir_version": "4.0.1", "style": "KR Core",
                "resources": {t: len(v) for t, v in sorted(by_type.items())},
                "persons": len(person_of), "bundle_size": bundle_size, "files": files}
        (tmp / "export.json").write_text(json.dumps(info, indent=1) + "\n")
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def _write(root: Path, by_type: dict[str, list[dict[str, Any]]],
           person_of: dict[int, list[tuple[str, dict[str, Any]]]], size: int
           ) -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    (root / "ndjson").mkdir()
    for rtype, resources in sorted(by_type.items()):
        path = root / "ndjson" / f"{rtype}.ndjson"
        with open(path, "w", encoding="utf-8") as f:
            for res in resources:
                f.write(json.dumps(res, ensure_ascii=False, separators=(",", ":")) + "\n")
        files[f"ndjson/{path.name}"] = {"resources": len(resources),
                                        "sha256": sha256_file(path)}
    (root / "bundles").mkdir()
    persons = sorted(person_of)
    for k, lo in enumerate(range(0, len(persons), size), start=1):
        entries = [{"fullUrl": _full_url(rtype, res["id"]), "resource": res}
                   for pid in persons[lo:lo + size] for rtype, res in person_of[pid]]
        bundle = {"resourceType": "Bundle", "id": f"bundle-{k:05d}", "type": "collection",
                  "entry": entries}
        path = root / "bundles" / f"bundle-{k:05d}.json"
        path.write_text(json.dumps(bundle, ensure_ascii=False, separators=(",", ":")),
                        encoding="utf-8")
        files[f"bundles/{path.name}"] = {"resources": len(entries),
                                         "sha256": sha256_file(path)}
    return files


def _full_url(rtype: str, rid: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NS, f'{rtype}/{rid}')}"


def _d(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop keys whose value is None or empty (FHIR has no nulls)."""
    return {k: v for k, v in obj.items() if v is not None and v != [] and v != {}}


def _ref(rtype: str, rid: Any) -> dict[str, str] | None:
    return None if rid is None else {"reference": f"{rtype}/{rid}"}


class _Writer:
    """Release rows -> FHIR resource dicts (the concept table gives systems and codes)."""

    def __init__(self, concepts: dict[int, tuple[str, str, str]]) -> None:
        self.concepts = concepts

    def coding(self, concept_id: int | None, source_value: str | None = None,
               **extra: Any) -> dict[str, Any] | None:
        c = self.concepts.get(concept_id or 0)
        if c is None or c[0] not in S.SYSTEM_URI:
            return _clean({"code": source_value, **extra}) if source_value else None
        return _clean({"system": S.SYSTEM_URI[c[0]], "code": c[1], "display": c[2], **extra})

    def codeable(self, concept_id: int | None, source_concept_id: int | None,
                 source_value: str | None) -> dict[str, Any]:
        """The standard coding, preceded by the source coding when it is another concept."""
        standard = self.coding(concept_id, source_value if not concept_id else None)
        if source_concept_id and concept_id and source_concept_id != concept_id:
            source = self.coding(source_concept_id, userSelected=True)
            return {"coding": [c for c in (source, standard) if c]}
        if not concept_id and not standard:
            return {"text": source_value or "unknown"}
        return {"coding": [standard] if standard else []}

    def patient(self, r: dict[str, Any], death: dict[str, Any] | None,
                places: dict[int, dict[str, Any]]) -> dict[str, Any]:
        y, m, d = r["year_of_birth"], r["month_of_birth"], r["day_of_birth"]
        born = f"{y:04d}" + (f"-{m:02d}" if m else "") + (f"-{d:02d}" if m and d else "")
        place = places.get(r["location_id"]) if r["location_id"] is not None else None
        gender = {8507: "male", 8532: "female"}.get(r["gender_concept_id"])
        return _clean({
            "resourceType": "Patient", "id": str(r["person_id"]),
            "meta": {"profile": [S.PROFILE["Patient"]]},
            "identifier": [{"system": S.PARTICIPANT_ID, "value": r["person_source_value"]}]
            if r["person_source_value"] else None,
            "gender": gender or (r["gender_source_value"]
                                 if r["gender_source_value"] in ("other", "unknown")
                                 else "unknown"),
            "birthDate": born,
            "address": [_clean({"state": place["location_source_value"], "city": place["city"],
                                "country": "KR"})] if place else None,
            "deceasedDateTime": _d(death["death_date"]) if death else None,
        })

    def episode(self, r: dict[str, Any]) -> dict[str, Any]:
        return {"resourceType": "EpisodeOfCare", "id": str(r["observation_period_id"]),
                "status": "finished", "patient": _ref("Patient", r["person_id"]),
                "period": _clean({"start": _d(r["observation_period_start_date"]),
                                  "end": _d(r["observation_period_end_date"])})}

    def encounter(self, r: dict[str, Any]) -> dict[str, Any]:
        source = r["visit_source_value"]
        cls = S.VISIT_CLASS_OF.get(source or "")
        return _clean({
            "resourceType": "Encounter", "id": str(r["visit_occurrence_id"]),
            "meta": {"profile": [S.PROFILE["Encounter"]]}, "status": "finished",
            "class": {"system": S.ACT_CODE, "code": cls} if cls else {"code": source or "UNK"},
            "subject": _ref("Patient", r["person_id"]),
            "period": _clean({"start": _d(r["visit_start_date"]),
                              "end": _d(r["visit_end_date"])})})

    def condition(self, r: dict[str, Any]) -> dict[str, Any]:
        end = r["condition_end_date"]
        status = "resolved" if end is not None else "active"
        return _clean({
            "resourceType": "Condition", "id": str(r["condition_occurrence_id"]),
            "meta": {"profile": [S.PROFILE["Condition"]]},
            "clinicalStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": status}]},
            "category": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                "code": "encounter-diagnosis"}]}],
            "code": self.codeable(r["condition_concept_id"], r["condition_source_concept_id"],
                                  r["condition_source_value"]),
            "subject": _ref("Patient", r["person_id"]),
            "encounter": _ref("Encounter", r["visit_occurrence_id"]),
            "onsetDateTime": _d(r["condition_start_date"]),
            "recordedDate": _d(r["condition_start_date"]), "abatementDateTime": _d(end)})

    def drug(self, r: dict[str, Any]) -> dict[str, Any]:
        med = self.codeable(r["drug_concept_id"], r["drug_source_concept_id"],
                            r["drug_source_value"])
        period = _clean({"start": _d(r["drug_exposure_start_date"]),
                         "end": _d(r["drug_exposure_end_date"])})
        if r["drug_type_concept_id"] != S.TYPE_CONCEPT["drug_exposure"]:
            return _clean({
                "resourceType": "MedicationStatement", "id": str(r["drug_exposure_id"]),
                "status": "completed", "medicationCodeableConcept": med,
                "subject": _ref("Patient", r["person_id"]),
                "context": _ref("Encounter", r["visit_occurrence_id"]),
                "effectivePeriod": period})
        supply = None if r["days_supply"] is None else {
            "value": r["days_supply"], "unit": "days", "system": S.UCUM, "code": "d"}
        return _clean({
            "resourceType": "MedicationRequest", "id": str(r["drug_exposure_id"]),
            "meta": {"profile": [S.PROFILE["MedicationRequest"]]}, "status": "completed",
            "intent": "order", "medicationCodeableConcept": med,
            "subject": _ref("Patient", r["person_id"]),
            "encounter": _ref("Encounter", r["visit_occurrence_id"]),
            "authoredOn": _d(r["drug_exposure_start_date"]),
            "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": period}}}],
            "dispenseRequest": _clean({
                "quantity": None if r["quantity"] is None else {"value": r["quantity"]},
                "expectedSupplyDuration": supply})})

    def observation(self, r: dict[str, Any]) -> dict[str, Any]:
        code = self.codeable(r["measurement_concept_id"], None, r["measurement_source_value"])
        loinc = self.concepts.get(r["measurement_concept_id"] or 0, ("", "", ""))[1]
        category = "vital-signs" if loinc in VITAL_SIGNS else "laboratory"
        unit = r["unit_source_value"]
        quantity = None if r["value_as_number"] is None else _clean({
            "value": r["value_as_number"], "unit": unit,
            "system": S.UCUM if unit else None, "code": unit})
        rng = _clean({"low": None if r["range_low"] is None else {"value": r["range_low"]},
                      "high": None if r["range_high"] is None else {"value": r["range_high"]}})
        return _clean({
            "resourceType": "Observation", "id": str(r["measurement_id"]),
            "meta": {"profile": [S.PROFILE[f"Observation.{category}"]]}, "status": "final",
            "category": [{"coding": [{"system": S.OBSERVATION_CATEGORY, "code": category}]}],
            "code": code, "subject": _ref("Patient", r["person_id"]),
            "encounter": _ref("Encounter", r["visit_occurrence_id"]),
            "effectiveDateTime": _d(r["measurement_date"]), "valueQuantity": quantity,
            "referenceRange": [rng] if rng else None})

    def procedure(self, r: dict[str, Any]) -> dict[str, Any]:
        return _clean({
            "resourceType": "Procedure", "id": str(r["procedure_occurrence_id"]),
            "meta": {"profile": [S.PROFILE["Procedure"]]}, "status": "completed",
            "code": self.codeable(r["procedure_concept_id"], None, r["procedure_source_value"]),
            "subject": _ref("Patient", r["person_id"]),
            "encounter": _ref("Encounter", r["visit_occurrence_id"]),
            "performedDateTime": _d(r["procedure_date"])})

    def cause_of_death(self, r: dict[str, Any]) -> dict[str, Any] | None:
        if r["cause_concept_id"] is None and r["cause_source_value"] is None:
            return None
        return _clean({
            "resourceType": "Observation", "id": f"death-{r['person_id']}", "status": "final",
            "code": {"coding": [{"system": S.LOINC, "code": S.CAUSE_OF_DEATH,
                                 "display": "Cause of death"}]},
            "subject": _ref("Patient", r["person_id"]),
            "effectiveDateTime": _d(r["death_date"]),
            "valueCodeableConcept": self.codeable(r["cause_concept_id"], None,
                                                  r["cause_source_value"])})

    def consent(self, r: dict[str, Any]) -> dict[str, Any]:
        withdrawn = r["withdrawal_date"]
        scopes = [{"type": "permit" if r[s] else "deny",
                   "code": [{"coding": [{"system": S.CONSENT_SCOPE, "code": s}]}]}
                  for s in S.CONSENT_SCOPES if r[s] is not None]
        return _clean({
            "resourceType": "Consent", "id": f"consent-{r['person_id']}",
            "status": "inactive" if withdrawn else "active",
            "scope": {"coding": [{"system": S.CONSENT_SCOPE_HL7, "code": "research"}]},
            "category": [{"coding": [{"system": S.LOINC, "code": S.CONSENT_CATEGORY_LOINC}]}],
            "patient": _ref("Patient", r["person_id"]), "dateTime": _d(r["consent_date"]),
            "provision": _clean({"type": "permit", "period": _clean({
                "start": _d(r["consent_date"]), "end": _d(withdrawn)}),
                "provision": scopes})})


def iter_ndjson(directory: Path) -> Iterator[dict[str, Any]]:
    """Every resource of an export's ``ndjson/`` files (for tests and benchmarks)."""
    for path in sorted((directory / "ndjson").glob("*.ndjson")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)
