"""One FHIR resource (validated by ``fhir.resources``) -> the rows it gives release tables.

Each ``map_<Type>`` returns :class:`Record` s: the release table, the row's fields, the
references still to resolve (``person_id`` -> ``"Patient/12"``) and the codes it could not
map. It raises :class:`Rejected` (the resource is wrong: no subject, a date without a
day...) or :class:`Skipped` (a valid resource the release has no place for: an Observation
of another category, an entered-in-error record). Both carry the reason the load report
shows.

Codes: a CodeableConcept's *source* coding is the one marked ``userSelected``, else the
first whose system the workbench knows, else the first; ``<x>_source_value`` is its code
and ``<x>_source_concept_id`` its concept. The standard concept is the source concept's
"Maps to" target (KCD-7 -> KCD-8), else that of another coding of the same concept; a code
without one is kept with concept id 0 and reported as unmapped.

>>> from fhir.resources.R4B.codeableconcept import CodeableConcept
>>> voc = Vocabulary.default()
>>> cc = {"coding": [{"system": "http://www.hl7korea.or.kr/CodeSystem/kostat-kcd-7",
...                   "code": "E11.9", "userSelected": True}]}
>>> c = voc.codes(CodeableConcept.model_validate(cc))
>>> c.source_value, c.source_concept_id == voc.concept("KCD7", "E11.9"), \\
...     c.concept_id == voc.concept("KCD8", "E11.9")
('E11.9', True, True)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

from workbench.fhir import systems as S


class Rejected(Exception):
    """A resource that cannot be loaded; the message says why."""


class Skipped(Exception):
    """A valid resource the release holds nothing of; the message says why."""


@dataclass(slots=True)
class Unmapped:
    """A code kept as a source value without a concept."""

    table: str
    column: str
    system: str | None
    code: str | None
    display: str | None
    why: str


@dataclass(slots=True)
class Record:
    """Rows one resource gives a table, before its references are resolved."""

    table: str
    fields: dict[str, Any]
    refs: dict[str, str] = field(default_factory=dict)   # column -> "Type/id"
    own_id: str | None = None                           # its id column takes this
    unmapped: list[Unmapped] = field(default_factory=list)


@dataclass(slots=True)
class Codes:
    source_value: str | None
    source_concept_id: int
    concept_id: int
    unmapped: Unmapped | None


class Vocabulary:
    """Code lookups in a release vocabulary: (vocabulary_id, code) -> concept id and
    "Maps to" targets."""

    def __init__(self, concept: Any, relationship: Any) -> None:
        self.by_code: dict[tuple[str, str], int] = dict(zip(
            zip(concept["vocabulary_id"].to_pylist(), concept["concept_code"].to_pylist(),
                strict=True), concept["concept_id"].to_pylist(), strict=True))
        rel = relationship.filter(relationship["relationship_id"].to_numpy(
            zero_copy_only=False) == "Maps to")
        self.maps_to: dict[int, int] = {}
        for a, b in zip(rel["concept_id_1"].to_pylist(), rel["concept_id_2"].to_pylist(),
                        strict=True):
            if a not in self.maps_to or a == b:
                self.maps_to[a] = b

    @staticmethod
    @lru_cache(maxsize=1)
    def default() -> Vocabulary:
        """The workbench's own vocabulary (workbench.synth.vocabulary)."""
        from workbench.synth.vocabulary import vocabulary_tables

        t = vocabulary_tables()
        return Vocabulary(t["concept"], t["concept_relationship"])

    def concept(self, vocabulary_id: str, code: str) -> int:
        """The concept id of a code, 0 if the vocabulary has none."""
        return self.by_code.get((vocabulary_id, code), 0)

    def codes(self, cc: Any, *, table: str = "", column: str = "") -> Codes:
        """Source value, source concept and standard concept of a CodeableConcept."""
        codings = [c for c in (cc.coding or []) if c.code]
        if not codings:
            text = cc.text or None
            return Codes(text, 0, 0, Unmapped(table, column, None, None, text,
                                              "no coding, text only"))
        source = next((c for c in codings if c.userSelected), None) or next(
            (c for c in codings if S.vocabulary_of(c.system)), codings[0])
        ids = []
        for c in [source] + [c for c in codings if c is not source]:
            voc = S.vocabulary_of(c.system)
            ids.append(self.concept(voc, c.code) if voc else 0)
        standard = next((self.maps_to[i] for i in ids if i and i in self.maps_to), 0)
        unmapped = None
        if not standard:
            voc = S.vocabulary_of(source.system)
            why = (f"code not in the {voc} vocabulary" if voc else
                   f"{S.RECOGNISED_UNMAPPED[source.system]}: no vocabulary in the release"
                   if source.system in S.RECOGNISED_UNMAPPED else
                   "code system not known" if source.system else "coding without a system")
            unmapped = Unmapped(table, column, source.system, source.code, source.display, why)
        return Codes(source.code, ids[0], standard, unmapped)


# --- small helpers ------------------------------------------------------------------------

def day(value: Any, what: str, *, required: bool = True) -> dt.date | None:
    """A FHIR date/dateTime as the date it was written in (time and zone dropped)."""
    if value is None:
        if required:
            raise Rejected(f"no {what}")
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    raise Rejected(f"{what} {value!r} has no day (a partial date cannot be an event date)")


def ref(reference: Any, what: str, *, required: bool = True) -> str | None:
    """The reference string of a Reference ("Patient/12", a URL or "urn:uuid:...")."""
    text = getattr(reference, "reference", None) if reference is not None else None
    if not text:
        if required:
            raise Rejected(f"no {what} reference")
        return None
    return text


def _num(value: Decimal | float | int | None) -> float | None:
    return None if value is None else float(value)


def _active(res: Any) -> None:
    status = getattr(res, "status", None)
    if status == "entered-in-error":
        raise Skipped("status entered-in-error")


def _codes(voc: Vocabulary, cc: Any, table: str, column: str, what: str) -> Codes:
    if cc is None:
        raise Rejected(f"no {what}")
    return voc.codes(cc, table=table, column=column)


def _record(table: str, res: Any, fields: dict[str, Any], refs: dict[str, str | None],
            unmapped: Sequence[Unmapped | None] = ()) -> Record:
    return Record(table, fields, {k: v for k, v in refs.items() if v}, res.id,
                  [u for u in unmapped if u])


# --- one function per resource type -----------------------------------------------------------

def map_patient(res: Any, voc: Vocabulary) -> list[Record]:
    born = res.birthDate
    if born is None:
        raise Rejected("no birthDate (the person table requires a year of birth)")
    if isinstance(born, dt.date):
        y, m, d = born.year, born.month, born.day
    else:   # a partial date: "1970" or "1970-02"
        parts = [int(p) for p in str(born).split("-")]
        y, m, d = parts[0], parts[1] if len(parts) > 1 else None, None
    gender = res.gender
    concept = {"male": 8507, "female": 8532}.get(gender or "", 0)
    ident = next((i.value for i in res.identifier or [] if i.system == S.PARTICIPANT_ID), None) \
        or next((i.value for i in res.identifier or [] if i.value), None)
    address = next(iter(res.address or []), None)
    fields = {"gender_concept_id": concept, "year_of_birth": y, "month_of_birth": m,
              "day_of_birth": d, "race_concept_id": 0, "ethnicity_concept_id": 0,
              "person_source_value": ident,
              "gender_source_value": {"male": "M", "female": "F"}.get(gender or "", gender),
              "_address": (address.state, address.city, address.district) if address else None}
    out = [Record("person", fields, {}, res.id)]
    died = res.deceasedDateTime
    if died is not None:
        out.append(Record("death", {"death_date": day(died, "deceasedDateTime"),
                                    "death_type_concept_id": S.TYPE_CONCEPT["death"]}))
    return out


def map_encounter(res: Any, voc: Vocabulary) -> list[Record]:
    _active(res)
    period = res.period
    start = day(period.start if period else None, "period.start")
    end = day(period.end if period else None, "period.end", required=False)
    code = res.class_fhir.code if res.class_fhir else None
    concept, source = S.VISIT_CLASS.get(code or "", (0, code))
    return [_record("visit_occurrence", res, {
        "visit_concept_id": concept, "visit_start_date": start, "visit_end_date": end,
        "visit_type_concept_id": S.TYPE_CONCEPT["visit_occurrence"],
        "visit_source_value": source}, {"person_id": ref(res.subject, "subject")},
        [None if concept else Unmapped("visit_occurrence", "visit_concept_id",
                                       res.class_fhir.system if res.class_fhir else None,
                                       code, None, "Encounter.class not IMP/AMB/EMER")])]


def map_condition(res: Any, voc: Vocabulary) -> list[Record]:
    status = res.verificationStatus
    if status and any(c.code == "entered-in-error" for c in status.coding or []):
        raise Skipped("verificationStatus entered-in-error")
    c = _codes(voc, res.code, "condition_occurrence", "condition_concept_id", "code")
    start = day(res.onsetDateTime or res.recordedDate, "onsetDateTime or recordedDate")
    return [_record("condition_occurrence", res, {
        "condition_concept_id": c.concept_id, "condition_start_date": start,
        "condition_end_date": day(res.abatementDateTime, "abatementDateTime", required=False),
        "condition_type_concept_id": S.TYPE_CONCEPT["condition_occurrence"],
        "condition_source_value": c.source_value,
        "condition_source_concept_id": c.source_concept_id},
        {"person_id": ref(res.subject, "subject"),
         "visit_occurrence_id": ref(res.encounter, "encounter", required=False)}, [c.unmapped])]


def _medication(res: Any, voc: Vocabulary, medications: dict[str, Any]) -> Codes:
    cc = res.medicationCodeableConcept
    if cc is None and res.medicationReference is not None:
        key = res.medicationReference.reference or ""
        med = medications.get(key) or medications.get(key.lstrip("#"))
        if med is None:
            for contained in res.contained or []:
                if f"#{contained.id}" == key:
                    med = contained
        if med is None:
            raise Rejected(f"medicationReference {key!r} is neither contained nor a "
                           "Medication in the batch")
        cc = med.code
    return _codes(voc, cc, "drug_exposure", "drug_concept_id", "medication code")


def map_medication_request(res: Any, voc: Vocabulary, medications: dict[str, Any]
                           ) -> list[Record]:
    _active(res)
    c = _medication(res, voc, medications)
    bounds = next((d.timing.repeat.boundsPeriod for d in res.dosageInstruction or []
                   if d.timing and d.timing.repeat and d.timing.repeat.boundsPeriod), None)
    start = day((bounds.start if bounds else None) or res.authoredOn,
                "authoredOn or dosageInstruction.timing.repeat.boundsPeriod.start")
    end = day(bounds.end if bounds else None, "boundsPeriod.end", required=False)
    disp = res.dispenseRequest
    supply = disp.expectedSupplyDuration if disp else None
    days = None
    if supply is not None and supply.value is not None:
        unit = supply.code or supply.unit or "d"
        factor = {"d": 1, "day": 1, "days": 1, "wk": 7, "mo": 30}.get(unit)
        if factor is None:
            raise Rejected(f"dispenseRequest.expectedSupplyDuration unit {unit!r} is not "
                           "d, wk or mo")
        days = int(round(float(supply.value) * factor))
    quantity = _num(disp.quantity.value) if disp and disp.quantity else None
    return [_record("drug_exposure", res, {
        "drug_concept_id": c.concept_id, "drug_exposure_start_date": start,
        "drug_exposure_end_date": end, "days_supply": days, "quantity": quantity,
        "drug_type_concept_id": S.TYPE_CONCEPT["drug_exposure"],
        "drug_source_value": c.source_value, "drug_source_concept_id": c.source_concept_id},
        {"person_id": ref(res.subject, "subject"),
         "visit_occurrence_id": ref(res.encounter, "encounter", required=False)}, [c.unmapped])]


def map_medication_statement(res: Any, voc: Vocabulary, medications: dict[str, Any]
                             ) -> list[Record]:
    _active(res)
    c = _medication(res, voc, medications)
    period = res.effectivePeriod
    start = day(res.effectiveDateTime or (period.start if period else None),
                "effectiveDateTime or effectivePeriod.start")
    end = day(period.end if period else None, "effectivePeriod.end", required=False)
    return [_record("drug_exposure", res, {
        "drug_concept_id": c.concept_id, "drug_exposure_start_date": start,
        "drug_exposure_end_date": end,
        "drug_type_concept_id": S.TYPE_CONCEPT["drug_statement"],
        "drug_source_value": c.source_value, "drug_source_concept_id": c.source_concept_id},
        {"person_id": ref(res.subject, "subject"),
         "visit_occurrence_id": ref(res.context, "context", required=False)}, [c.unmapped])]


def _categories(res: Any) -> set[str]:
    return {c.code for cc in res.category or [] for c in cc.coding or [] if c.code}


def map_observation(res: Any, voc: Vocabulary) -> list[Record]:
    _active(res)
    codes = {(c.system, c.code) for c in res.code.coding or []}
    subject = ref(res.subject, "subject")
    if (S.LOINC, S.CAUSE_OF_DEATH) in codes:
        if res.valueCodeableConcept is None:
            raise Rejected("cause-of-death Observation without valueCodeableConcept")
        c = voc.codes(res.valueCodeableConcept, table="death", column="cause_concept_id")
        return [Record("death_cause", {"cause_concept_id": c.concept_id,
                                       "cause_source_value": c.source_value},
                       {"person_id": subject}, None, [c.unmapped] if c.unmapped else [])]
    categories = _categories(res)
    if categories and not categories & set(S.MEASUREMENT_CATEGORIES):
        raise Skipped(f"Observation category {', '.join(sorted(categories))} is not loaded "
                      f"(loaded: {', '.join(S.MEASUREMENT_CATEGORIES)})")
    when = day(res.effectiveDateTime or (res.effectivePeriod.start if res.effectivePeriod
                                         else None) or res.issued,
               "effectiveDateTime, effectivePeriod.start or issued")
    encounter = ref(res.encounter, "encounter", required=False)
    parts = [(res.code, res.valueQuantity, res.referenceRange, res.id)]
    if res.valueQuantity is None and res.component:   # a panel: one row per component
        parts = [(k.code, k.valueQuantity, k.referenceRange, None) for k in res.component]
    out = []
    for code, quantity, ranges, own in parts:
        c = voc.codes(code, table="measurement", column="measurement_concept_id")
        unit = (quantity.code or quantity.unit) if quantity else None
        unit_id = voc.concept("UCUM", unit) if unit and quantity.system in (S.UCUM, None) \
            else 0
        rng = next(iter(ranges or []), None)
        out.append(Record("measurement", {
            "measurement_concept_id": c.concept_id, "measurement_date": when,
            "measurement_type_concept_id": S.TYPE_CONCEPT["measurement"],
            "value_as_number": _num(quantity.value) if quantity else None,
            "unit_concept_id": unit_id, "unit_source_value": unit,
            "range_low": _num(rng.low.value) if rng and rng.low else None,
            "range_high": _num(rng.high.value) if rng and rng.high else None,
            "measurement_source_value": c.source_value},
            {"person_id": subject, **({"visit_occurrence_id": encounter} if encounter else {})},
            own, [c.unmapped] if c.unmapped else []))
    return out


def map_procedure(res: Any, voc: Vocabulary) -> list[Record]:
    _active(res)
    if res.status in ("not-done", "preparation"):
        raise Skipped(f"status {res.status}: not performed")
    c = _codes(voc, res.code, "procedure_occurrence", "procedure_concept_id", "code")
    period = res.performedPeriod
    when = day(res.performedDateTime or (period.start if period else None),
               "performedDateTime or performedPeriod.start")
    return [_record("procedure_occurrence", res, {
        "procedure_concept_id": c.concept_id, "procedure_date": when,
        "procedure_type_concept_id": S.TYPE_CONCEPT["procedure_occurrence"],
        "procedure_source_value": c.source_value},
        {"person_id": ref(res.subject, "subject"),
         "visit_occurrence_id": ref(res.encounter, "encounter", required=False)}, [c.unmapped])]


def map_consent(res: Any, voc: Vocabulary) -> list[Record]:
    _active(res)
    if res.status in ("draft", "proposed"):
        raise Skipped(f"status {res.status}: not (yet) given")
    patient = ref(res.patient, "patient")
    given = day(res.dateTime, "dateTime (the consent date)")
    top = res.provision
    scopes: dict[str, bool] = dict.fromkeys(S.CONSENT_SCOPES, False)
    seen = False
    for sub in (top.provision or []) if top else []:
        for cc in sub.code or []:
            for c in cc.coding or []:
                if c.system == S.CONSENT_SCOPE and c.code in scopes:
                    scopes[c.code] = sub.type == "permit"
                    seen = True
    if not seen:
        raise Rejected(f"no provision.provision with a code of {S.CONSENT_SCOPE} "
                       f"({', '.join(S.CONSENT_SCOPES)}): which data the consent covers "
                       "is unknown")
    withdrawal = None
    if res.status in ("inactive", "rejected"):
        end = top.period.end if top and top.period else None
        withdrawal = day(end, f"provision.period.end (the withdrawal date of a {res.status} "
                              "Consent)")
    return [Record("consent", {"consent_date": given, **scopes, "withdrawal_date": withdrawal},
                   {"person_id": patient}, None)]


def map_episode_of_care(res: Any, voc: Vocabulary) -> list[Record]:
    _active(res)
    period = res.period
    start = day(period.start if period else None, "period.start")
    end = day(period.end if period else None, "period.end")
    if end < start:
        raise Rejected(f"period.end {end} is before period.start {start}")
    return [_record("observation_period", res, {
        "observation_period_start_date": start, "observation_period_end_date": end,
        "period_type_concept_id": S.TYPE_CONCEPT["observation_period"]},
        {"person_id": ref(res.patient, "patient")})]


#: resourceType -> mapper; Medication is read for medicationReference only.
MAPPERS: dict[str, Callable[..., list[Record]]] = {
    "Patient": map_patient, "Encounter": map_encounter, "Condition": map_condition,
    "MedicationRequest": map_medication_request,
    "MedicationStatement": map_medication_statement, "Observation": map_observation,
    "Procedure": map_procedure, "Consent": map_consent, "EpisodeOfCare": map_episode_of_care,
}
NEEDS_MEDICATIONS = ("MedicationRequest", "MedicationStatement")
#: The table whose id column a resource's own id fills.
ID_COLUMN = {"person": "person_id", "observation_period": "observation_period_id",
             "visit_occurrence": "visit_occurrence_id",
             "condition_occurrence": "condition_occurrence_id",
             "drug_exposure": "drug_exposure_id", "measurement": "measurement_id",
             "procedure_occurrence": "procedure_occurrence_id"}
