"""Code systems, profiles and fixed codes shared by the FHIR loader and exporter: one place.

``CODE_SYSTEMS`` maps a FHIR ``Coding.system`` URI to the release vocabulary
(``concept.vocabulary_id``) its codes are looked up in. The KR Core URIs are those of
the KR Core implementation guide (HL7 Korea, STU1 1.0.2 / STU2 2.0.0): KCD-8 is
``http://www.hl7korea.or.kr/CodeSystem/kostat-kcd-8`` and ATC the WHO's
``http://www.whocc.no/atc``; LOINC, SNOMED CT, UCUM and ICD-10 use their HL7 URIs.
KR Core names no KCD-7 system: ``kostat-kcd-7`` follows its KCD-8 pattern (older
hospital records are coded in KCD-7). ICD-10 codes are looked up as KCD-8 codes of the
same text (KCD-8 is ICD-10 with Korean extensions, so a shared code means the same).

``RECOGNISED_UNMAPPED`` lists KR Core systems the workbench vocabulary has no table for
(HIRA EDI, KPIS drug codes): their codes are kept as source values (concept id 0) and
reported as unmapped, like codes of an unknown system, but named.

>>> vocabulary_of("http://loinc.org"), vocabulary_of("http://loinc.org/"), vocabulary_of("x")
('LOINC', 'LOINC', None)
>>> SYSTEM_URI["KCD8"]
'http://www.hl7korea.or.kr/CodeSystem/kostat-kcd-8'
"""

from __future__ import annotations

KCD8 = "http://www.hl7korea.or.kr/CodeSystem/kostat-kcd-8"
KCD7 = "http://www.hl7korea.or.kr/CodeSystem/kostat-kcd-7"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ATC = "http://www.whocc.no/atc"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"

#: Coding.system URI -> concept.vocabulary_id (the one table of the module docstring).
CODE_SYSTEMS: dict[str, str] = {
    KCD8: "KCD8",
    KCD7: "KCD7",
    ICD10: "KCD8",
    ATC: "ATC",
    LOINC: "LOINC",
    SNOMED: "SNOMED",
    UCUM: "UCUM",
}

#: vocabulary_id -> the URI the exporter writes (the first URI listed above for it).
SYSTEM_URI: dict[str, str] = {}
for _uri, _voc in CODE_SYSTEMS.items():
    SYSTEM_URI.setdefault(_voc, _uri)

_KR = "http://www.hl7korea.or.kr/CodeSystem/"
#: KR Core code systems without a workbench vocabulary: kept as source values, reported.
RECOGNISED_UNMAPPED: dict[str, str] = {
    _KR + "hira-edi-medication": "HIRA EDI medication",
    _KR + "hira-edi-procedure": "HIRA EDI procedure",
    _KR + "hira-edi-material": "HIRA EDI material",
    _KR + "kpis-kdcode": "KPIS Korea drug code",
}

# --- codes the workbench defines (no national system exists for them) -------------------
#: Patient.identifier system of the participant's pseudonymous id (person_source_value).
PARTICIPANT_ID = "urn:workbench:participant-id"
#: Consent.provision.provision.code system: one scope of the release's consent table.
CONSENT_SCOPE = "urn:workbench:consent-scope"
CONSENT_SCOPES = ("clinical", "public", "lifelog", "genomic")

# --- HL7 codes --------------------------------------------------------------------------
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONSENT_SCOPE_HL7 = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_CATEGORY_LOINC = "59284-0"   # LOINC "Consent Document"
#: LOINC of an Observation whose value is the cause of death (a KCD-8 coding).
CAUSE_OF_DEATH = "69453-9"

#: Encounter.class code (v3 ActCode) -> (visit_concept_id, visit_source_value).
VISIT_CLASS: dict[str, tuple[int, str]] = {
    "IMP": (9201, "IP"), "ACUTE": (9201, "IP"), "NONAC": (9201, "IP"),
    "AMB": (9202, "OP"), "EMER": (9203, "ER"),
}
#: visit_source_value -> the class code the exporter writes.
VISIT_CLASS_OF = {"IP": "IMP", "OP": "AMB", "ER": "EMER"}

#: Observation categories loaded into measurement.
MEASUREMENT_CATEGORIES = ("laboratory", "vital-signs")

# --- OMOP type concepts the loader writes (the synthetic release uses the same) ----------
TYPE_CONCEPT: dict[str, int] = {
    "observation_period": 32817,    # EHR
    "visit_occurrence": 32817,      # EHR
    "condition_occurrence": 32817,  # EHR
    "drug_exposure": 32838,         # EHR prescription (MedicationRequest)
    "drug_statement": 32817,        # EHR (MedicationStatement)
    "measurement": 32856,           # Lab (laboratory and vital signs alike)
    "procedure_occurrence": 32817,  # EHR
    "death": 32879,                 # Registry (deaths confirmed against the registry)
}

# --- KR Core-style profiles the exporter declares in meta.profile -------------------------
_SD = "http://www.hl7korea.or.kr/fhir/krcore/StructureDefinition/"
PROFILE: dict[str, str] = {
    "Patient": _SD + "krcore-patient",
    "Encounter": _SD + "krcore-encounter",
    "Condition": _SD + "krcore-condition-encounter-diagnosis",
    "MedicationRequest": _SD + "krcore-medicationrequest",
    "Observation.laboratory": _SD + "krcore-observation-laboratory-result",
    "Observation.vital-signs": _SD + "krcore-vital-signs",
    "Procedure": _SD + "krcore-procedure",
}


def vocabulary_of(system: str | None) -> str | None:
    """The vocabulary_id a Coding.system URI maps to, or None (a trailing slash ignored)."""
    if not system:
        return None
    return CODE_SYSTEMS.get(system) or CODE_SYSTEMS.get(system.rstrip("/"))
