"""OHDSI ATLAS / Circe cohort definitions (JSON) to our definitions and back.

ATLAS stores a cohort as a Circe ``CohortExpression``: concept sets, primary criteria (the
entry events), additional criteria, inclusion rules, an end strategy, censoring criteria
and era collapsing. :func:`from_atlas` maps the part our model can say *with the same
meaning* (as circe-be's SQL builders compute it) and reports everything else at once, each
element with its JSON path. :func:`to_atlas` is the inverse; ``from_atlas(to_atlas(c))``
gives ``c`` back for definitions inside the mapped subset (items of a group in the order
criteria, then age/sex, then subgroups, which is how Circe keeps them).

Mapping (Circe -> ours):

- ConceptSets items -> ConceptItem by VOCABULARY_ID + CONCEPT_CODE (portable), by
  CONCEPT_ID only when the record has no code; flags one to one.
- PrimaryCriteria -> ``entry`` (ObservationWindow, PrimaryCriteriaLimit First/All).
  Criteria ConditionOccurrence, DrugExposure, ProcedureOccurrence, Measurement
  (ValueAsNumber, one UCUM Unit), VisitOccurrence (concepts 9201/9202/9203 -> IP/OP/ER),
  Death, ObservationPeriod, with CodesetId and First. DrugEra becomes drug exposures and
  warns (:class:`AtlasApproximationWarning`): windows and counts then apply to exposures.
- Correlated criteria -> Requirement: StartWindow (Days x Coeff, inclusive; null Days
  unbounded; UseIndexEnd -> ``index_end``), Occurrence (0 exactly, 1 at most, 2 at least;
  IsDistinct by START_DATE), IgnoreObservationPeriod. DemographicCriteria Age/Gender ->
  age/sex. Groups ALL/ANY/AT_LEAST; AT_MOST n of k is AT_LEAST k-n of the negated items.
- AdditionalCriteria, and CorrelatedCriteria of the only primary criterion when all events
  are kept, become leading inclusion rules (same members, one more attrition step).
  QualifiedLimit counts only where Circe applies it (with AdditionalCriteria).
- ExpressionLimit -> ``result_limit``; DateOffset -> FixedOffset; CustomEra ->
  DrugExposureEnd; CensoringCriteria -> ``censoring``; EraPad -> ``era_pad_days``.

Numbers: Circe truncates age bounds to whole years (Java ``intValue``), so age ``gt 17``
is exactly ``min 18``; measurement values are written with 4 decimals, and a strict
``gt``/``lt`` on a real value has no inclusive bound of the same meaning: reported, not
nudged by an epsilon.

>>> data = {"ConceptSets": [{"id": 0, "name": "T2D", "expression": {"items": [
...     {"concept": {"CONCEPT_ID": 1, "CONCEPT_CODE": "E11", "VOCABULARY_ID": "KCD8"},
...      "includeDescendants": True}]}}],
...     "PrimaryCriteria": {"CriteriaList": [{"ConditionOccurrence": {"CodesetId": 0}}],
...         "ObservationWindow": {"PriorDays": 365, "PostDays": 0},
...         "PrimaryCriteriaLimit": {"Type": "First"}}}
>>> c = from_atlas(data, name="t2d")
>>> c.entry.criteria[0].concepts.items[0].code, c.entry.prior_observation
('E11', 365)
>>> from_atlas(to_atlas(c)) == c
True
"""

from __future__ import annotations

import json
import warnings
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cohort import io
from cohort import model as m
from cohort.errors import DefinitionError

__all__ = ["AtlasApproximationWarning", "AtlasUnsupportedError", "from_atlas", "is_atlas",
           "load_any", "to_atlas"]

_TOP_KEYS = {"cdmVersionRange", "Title", "PrimaryCriteria", "AdditionalCriteria", "ConceptSets",
             "QualifiedLimit", "ExpressionLimit", "InclusionRules", "EndStrategy",
             "CensoringCriteria", "CollapseSettings", "CensorWindow"}
_VISITS = {9201: "IP", 9202: "OP", 9203: "ER"}
_VISIT_IDS = {v: k for k, v in _VISITS.items()}
_SEX = {8507: "male", 8532: "female"}
_SEX_RECORDS = {"male": (8507, "M", "MALE"), "female": (8532, "F", "FEMALE")}
_OCCURRENCE = {0: "exactly", 1: "at_most", 2: "at_least"}
_OCCURRENCE_TYPE = {v: k for k, v in _OCCURRENCE.items()}

# Circe criterion type -> (our criterion class, the attributes we map)
_CRITERIA: dict[str, tuple[type, frozenset[str]]] = {
    "ConditionOccurrence": (m.ConditionCriterion, frozenset({"CodesetId", "First"})),
    "DrugExposure": (m.DrugCriterion, frozenset({"CodesetId", "First"})),
    "DrugEra": (m.DrugCriterion, frozenset({"CodesetId", "First"})),
    "ProcedureOccurrence": (m.ProcedureCriterion, frozenset({"CodesetId", "First"})),
    "Measurement": (m.MeasurementCriterion,
                    frozenset({"CodesetId", "First", "ValueAsNumber", "Unit"})),
    "VisitOccurrence": (m.VisitCriterion, frozenset({"CodesetId", "First"})),
    "Death": (m.DeathCriterion, frozenset()),
    "ObservationPeriod": (m.ObservationPeriodCriterion, frozenset({"First"})),
}
_CIRCE_NAME = {"condition": "ConditionOccurrence", "drug": "DrugExposure",
               "procedure": "ProcedureOccurrence", "measurement": "Measurement",
               "visit": "VisitOccurrence", "death": "Death",
               "observation_period": "ObservationPeriod"}

# why an element has no equivalent (by attribute name; the default says just that)
_WHY = {
    "Age": "age at this event: our event criteria have no age filter (an age demographic "
           "criterion in an inclusion rule is age at the index)",
    **dict.fromkeys(("Gender", "GenderCS"), "our event criteria have no sex filter (use a "
                                            "demographic criterion)"),
    **dict.fromkeys(("OccurrenceStartDate", "OccurrenceEndDate"),
                    "our criteria have no calendar-date filter"),
    **dict.fromkeys(("ConditionSourceConcept", "ProcedureSourceConcept", "DrugSourceConcept",
                     "MeasurementSourceConcept"), "a second concept set on source concepts"),
    **dict.fromkeys(("ProviderSpecialty", "ProviderSpecialtyCS"), "our releases have no "
                                                                  "provider table"),
    "CorrelatedCriteria": "criteria nested under an event criterion",
    "DateAdjustment": "our criteria do not shift event dates",
    "VisitType": "filter on the visit of the event", "VisitTypeCS": "filter on the visit type",
    "EndWindow": "a window on the event end date (ours bound the event start only)",
    "RestrictVisit": "requiring the same visit as the index event",
    "ValueAsConcept": "our measurement criterion has no categorical value filter",
    "EraLength": "era lengths (drug eras are approximated by exposures)",
    "OccurrenceCount": "era exposure counts (drug eras are approximated by exposures)",
    "CensorWindow": "a calendar censor window", "DaysSupplyOverride": "a fixed days supply",
    "Race": "our releases record no race", "Ethnicity": "our releases record no ethnicity",
}
_TYPE_FILTERS = ("ConditionType", "DrugType", "ProcedureType", "MeasurementType", "DeathType",
                 "PeriodType", "ConditionStatus")


class AtlasUnsupportedError(DefinitionError):
    """A definition with elements the other side cannot express; ``problems`` lists each
    as (JSON path, reason); ``path`` is the first."""

    def __init__(self, problems: list[tuple[str, str]], *, side: str, hint: str) -> None:
        self.problems = problems
        listing = "; ".join(f"{p} ({why})" for p, why in problems)
        super().__init__(f"{len(problems)} element(s) have no {side} equivalent - "
                         f"unsupported: {listing}", path=problems[0][0], hint=hint)


class AtlasApproximationWarning(UserWarning):
    """An ATLAS element imported with a close but not identical meaning (DrugEra)."""


def _absent(v: Any) -> bool:
    """Circe's defaults: null, false, empty list or object, empty string."""
    return v is None or v is False or v == [] or v == {} or v == ""


def _group_empty(g: dict) -> bool:
    return not (g.get("CriteriaList") or g.get("DemographicCriteriaList") or g.get("Groups"))


def _four(v: float) -> float:
    """A value as Circe writes it into SQL: ``%.4f``, half up."""
    return float(Decimal(repr(v)).quantize(Decimal("0.0001"), ROUND_HALF_UP))


def _fixed(c: dict, ids: dict[int, str], vocabulary: str, codes: dict[str, str]) -> str | None:
    """A fixed OMOP concept (visit, gender) by CONCEPT_ID, else by vocabulary and code."""
    by_code = codes.get(c.get("CONCEPT_CODE")) if c.get("VOCABULARY_ID") == vocabulary else None
    return ids.get(c.get("CONCEPT_ID") or 0) or by_code


def _limit(node: Any, default: str = "first") -> str:
    t = (node or {}).get("Type") if isinstance(node, dict) else None
    return str(t).lower() if t else default


def _negate(item: m.Requirement | m.Group) -> m.Requirement | m.Group | None:
    """The requirement/group met exactly when ``item`` is not (None: never met)."""
    if isinstance(item, m.Group):
        neg = [_negate(i) for i in item.items]
        if any(n is None for n in neg):
            return None
        k = len(item.items)
        if item.mode == "all":
            return m.Group(mode="any", items=neg)
        if item.mode == "any":
            return m.Group(mode="all", items=neg)
        return m.Group(mode="at_least", n=k - item.n + 1, items=neg)   # not (>= n of k met)
    occ = item.occurrence

    def with_occ(op: str, count: int) -> m.Requirement:
        return item.model_copy(update={"occurrence": occ.model_copy(update={"op": op,
                                                                          "count": count})})
    if occ.op == "at_least":
        return None if occ.count == 0 else with_occ("at_most", occ.count - 1)
    if occ.op == "at_most":
        return with_occ("at_least", occ.count + 1)
    if occ.count == 0:
        return with_occ("at_least", 1)
    return m.Group(mode="any", items=[with_occ("at_most", occ.count - 1),
                                      with_occ("at_least", occ.count + 1)])


# --- import ------------------------------------------------------------------------------

class _Importer:
    """One pass over a Circe expression; every problem is collected, none raised early."""

    def __init__(self, data: dict) -> None:
        self.data = data
        self.problems: list[tuple[str, str]] = []
        self.approximations: list[str] = []
        self.sets = {cs.get("id"): (k, cs) for k, cs in enumerate(data.get("ConceptSets") or [])
                     if isinstance(cs, dict)}
        self._memo: dict[Any, m.ConceptSet | None] = {}

    def bad(self, path: str, why: str) -> None:
        if (path, why) not in self.problems:
            self.problems.append((path, why))

    def make(self, cls: type, path: str, **kw: Any) -> Any:
        try:
            return cls(**kw)
        except ValidationError as e:
            self.bad(path, e.errors()[0]["msg"].removeprefix("Value error, "))
            return None

    def unknown_keys(self, node: dict, known: set[str] | frozenset[str], path: str,
                     kind: str = "") -> None:
        for key, v in node.items():
            if key in known or _absent(v):
                continue
            if kind == "Death" and key == "CodesetId":
                why = "a cause-of-death concept set: our death criterion has no cause filter"
            elif key.removesuffix("CS").removesuffix("Exclude") in _TYPE_FILTERS:
                why = "a record-type/status filter: our criteria have none"
            else:
                why = _WHY.get(key, "no equivalent in our definitions")
            self.bad(f"{path}.{key}" if path else key, why)

    # concept sets
    def concept_set(self, cid: Any, path: str) -> m.ConceptSet | None:
        if cid not in self.sets:
            self.bad(path, f"no concept set with id {cid}")
            return None
        if cid in self._memo:
            return self._memo[cid]
        k, cs = self.sets[cid]
        items = []
        for j, it in enumerate((cs.get("expression") or {}).get("items") or []):
            c = it.get("concept") or {}
            flags = {"include_descendants": bool(it.get("includeDescendants")),
                     "exclude": bool(it.get("isExcluded")),
                     "include_mapped": bool(it.get("includeMapped"))}
            if c.get("CONCEPT_CODE") and c.get("VOCABULARY_ID"):
                items.append(m.ConceptItem(vocabulary=str(c["VOCABULARY_ID"]),
                                           code=str(c["CONCEPT_CODE"]), **flags))
            elif c.get("CONCEPT_ID") is not None:
                items.append(m.ConceptItem(concept_id=int(c["CONCEPT_ID"]), **flags))
            else:
                self.bad(f"ConceptSets[{k}].expression.items[{j}].concept",
                         "a concept needs CONCEPT_ID, or CONCEPT_CODE and VOCABULARY_ID")
        out = self.make(m.ConceptSet, f"ConceptSets[{k}].expression.items",
                        name=str(cs.get("name") or f"concept set {cid}"), items=items)
        self._memo[cid] = out
        return out

    def visit_types(self, cid: Any, path: str) -> list[str]:
        """A visit concept set as IP/OP/ER (Circe matches visit_concept_id; our releases
        hold exactly 9201/9202/9203, so descendants add nothing)."""
        if cid is None:
            return ["IP", "OP", "ER"]
        if cid not in self.sets:
            self.bad(path, f"no concept set with id {cid}")
            return []
        k, cs = self.sets[cid]
        types: list[str] = []
        for j, it in enumerate((cs.get("expression") or {}).get("items") or []):
            c, ipath = it.get("concept") or {}, f"ConceptSets[{k}].expression.items[{j}]"
            t = _fixed(c, _VISITS, "Visit", {v: v for v in _VISIT_IDS})
            if it.get("isExcluded") or it.get("includeMapped"):
                self.bad(ipath, "excluded or mapped visit concepts")
            elif t is None:
                self.bad(ipath, f"visit concept {c.get('CONCEPT_ID')} is not one of 9201 IP, "
                                "9202 OP, 9203 ER")
            elif t not in types:
                types.append(t)
        return types

    # values
    def range(self, r: Any, path: str, *, integral: bool) -> m.Range | None:
        if not isinstance(r, dict) or r.get("Value") is None:
            self.bad(path, "a numeric range needs Op and Value")
            return None
        op, v, e = str(r.get("Op") or ""), r["Value"], r.get("Extent")
        if op.endswith("bt") and e is None:
            self.bad(path, "a between range needs Extent")
            return None
        # Circe: ages as Java intValue (truncated), values written with %.4f
        v, e = (int(v), None if e is None else int(e)) if integral else (
            _four(v), None if e is None else _four(e))
        bounds = {"gte": (v, None), "lte": (None, v), "eq": (v, v), "bt": (v, e)}
        if integral:
            bounds |= {"gt": (v + 1, None), "lt": (None, v - 1)}
        if op not in bounds:
            self.bad(f"{path}.Op", f"'{op}' on a real-valued column has no inclusive range of "
                     "the same meaning" if op in ("gt", "lt") else f"'{op}' excludes a range")
            return None
        return self.make(m.Range, path, min=bounds[op][0], max=bounds[op][1])

    def unit(self, units: list, path: str) -> str | None:
        c = units[0] if len(units) == 1 else {}
        if c.get("VOCABULARY_ID") == "UCUM" and c.get("CONCEPT_CODE"):
            return str(c["CONCEPT_CODE"])
        self.bad(path, "only one UCUM unit (our unit is unit_source_value, one UCUM code)")
        return None

    # criteria
    def criterion(self, wrapper: Any, path: str, *, nested_ok: bool = False
                  ) -> tuple[m.EventCriterion | None, dict | None]:
        """A Circe criterion ({"Type": {...}}) and its non-empty CorrelatedCriteria."""
        if not isinstance(wrapper, dict) or len(wrapper) != 1:
            self.bad(path, "a criterion is an object with one key naming its type")
            return None, None
        ((kind, body),) = wrapper.items()
        body, path, before = body or {}, f"{path}.{kind}", len(self.problems)
        if kind not in _CRITERIA:
            self.bad(path, f"{kind} criteria: our releases and model have no such domain")
            return None, None
        cls, mapped = _CRITERIA[kind]
        cc = body.get("CorrelatedCriteria")
        cc = None if not isinstance(cc, dict) or _group_empty(cc) else cc
        self.unknown_keys({k: v for k, v in body.items()
                           if k != "CorrelatedCriteria" or (cc and not nested_ok)},
                          mapped, path, kind)
        kw: dict[str, Any] = {"first_occurrence": True} if body.get("First") else {}
        if kind == "VisitOccurrence":
            kw["visit_types"] = self.visit_types(body.get("CodesetId"), f"{path}.CodesetId")
        elif "CodesetId" in mapped and body.get("CodesetId") is None:
            self.bad(f"{path}.CodesetId", "no concept set means any record of the domain; "
                                          "our criteria need a concept set")
        elif "CodesetId" in mapped:
            kw["concepts"] = self.concept_set(body["CodesetId"], f"{path}.CodesetId")
        if body.get("ValueAsNumber"):
            kw["value"] = self.range(body["ValueAsNumber"], f"{path}.ValueAsNumber",
                                     integral=False)
        if body.get("Unit"):
            kw["unit"] = self.unit(body["Unit"], f"{path}.Unit")
        if len(self.problems) > before:
            return None, cc
        if kind == "DrugEra":
            self.approximations.append(path)
        return self.make(cls, path, **kw), cc

    def window(self, w: Any, path: str, *, restrict: bool) -> m.Window | None:
        if not isinstance(w, dict):
            self.bad(path, "a correlated criterion needs a StartWindow")
            return None
        if w.get("UseEventEnd"):
            self.bad(f"{path}.UseEventEnd", "our windows bound the event start date")
        bounds = []
        for side, open_coeff in (("Start", -1), ("End", 1)):
            ep = w.get(side) or {}
            days, coeff = ep.get("Days"), ep.get("Coeff", 0)
            if days is not None:
                bounds.append(int(days) * int(coeff))
            elif not restrict or coeff == open_coeff:
                bounds.append(None)   # bounded by the observation period we keep anyway
            else:
                bounds.append(None)
                self.bad(f"{path}.{side}", f"unbounded with Coeff {coeff}: Circe then bounds "
                         "at the observation period's " + ("end" if coeff == 1 else "start"))
        anchor = "index_end" if w.get("UseIndexEnd") else "index_start"
        if bounds == [None, None] and anchor == "index_start":
            return None
        return self.make(m.Window, path, start=bounds[0], end=bounds[1], anchor=anchor)

    def occurrence(self, o: Any, path: str) -> m.Occurrence | None:
        if not isinstance(o, dict) or o.get("Type", 0) not in _OCCURRENCE:
            self.bad(path, "Occurrence needs Type 0 (exactly), 1 (at most) or 2 (at least)")
            return None
        distinct = bool(o.get("IsDistinct"))
        if distinct and o.get("CountColumn") != "START_DATE":
            self.bad(f"{path}.CountColumn", "distinct counts of concepts (Circe's default) or "
                     f"{o.get('CountColumn')}; ours count distinct start dates only")
        return self.make(m.Occurrence, path, op=_OCCURRENCE[o.get("Type", 0)],
                         count=o.get("Count", 0), distinct_dates=distinct)

    def correlated(self, cc: dict, path: str) -> m.Requirement | None:
        before = len(self.problems)
        self.unknown_keys(cc, {"Criteria", "StartWindow", "Occurrence", "IgnoreObservationPeriod"},
                          path)
        restrict = not cc.get("IgnoreObservationPeriod", False)
        crit, _ = self.criterion(cc.get("Criteria"), f"{path}.Criteria")
        win = self.window(cc.get("StartWindow"), f"{path}.StartWindow", restrict=restrict)
        occ = self.occurrence(cc.get("Occurrence"), f"{path}.Occurrence")
        if len(self.problems) > before:
            return None
        return self.make(m.Requirement, path, criterion=crit, window=win, occurrence=occ,
                         restrict_to_observation=restrict)

    def demographic(self, d: dict, path: str) -> m.Requirement | m.Group | None:
        before, parts = len(self.problems), []
        self.unknown_keys(d, {"Age", "Gender"}, path)
        if not _absent(d.get("Age")):
            age = self.range(d["Age"], f"{path}.Age", integral=True)
            parts.append(m.Requirement(criterion=m.AgeCriterion(value=age)) if age else None)
        if not _absent(d.get("Gender")):
            sexes = []
            for j, c in enumerate(d["Gender"]):
                s = _fixed(c, _SEX, "Gender", {"M": "male", "F": "female"})
                if s is None:
                    self.bad(f"{path}.Gender[{j}]", "only 8507 male and 8532 female")
                elif s not in sexes:
                    sexes.append(s)
            parts.append(m.Requirement(criterion=m.SexCriterion(values=sexes)) if sexes else None)
        if not parts and len(self.problems) == before:
            self.bad(path, "an empty demographic criterion")
        if len(self.problems) > before:
            return None
        return parts[0] if len(parts) == 1 else m.Group(mode="all", items=parts)

    def group(self, g: Any, path: str) -> m.Group | None:
        if not isinstance(g, dict) or _group_empty(g):
            self.bad(path, "an empty group (always met in Circe); our groups need an item")
            return None
        before = len(self.problems)
        self.unknown_keys(g, {"Type", "Count", "CriteriaList", "DemographicCriteriaList",
                              "Groups"}, path)
        items = ([self.correlated(c, f"{path}.CriteriaList[{i}]")
                  for i, c in enumerate(g.get("CriteriaList") or [])]
                 + [self.demographic(d, f"{path}.DemographicCriteriaList[{i}]")
                    for i, d in enumerate(g.get("DemographicCriteriaList") or [])]
                 + [self.group(s, f"{path}.Groups[{i}]") for i, s in enumerate(g.get("Groups")
                                                                              or [])])
        typ, count = str(g.get("Type") or "").upper(), g.get("Count")
        if typ not in ("ALL", "ANY", "AT_LEAST", "AT_MOST"):
            self.bad(f"{path}.Type", f"unknown group type {typ!r}")
        elif typ.startswith("AT_") and not isinstance(count, int):
            self.bad(f"{path}.Count", f"{typ} needs a Count")
        if len(self.problems) > before:
            return None
        if typ == "AT_MOST":   # at most n of k met = at least k-n of k not met
            neg = [_negate(i) for i in items]
            if any(n is None for n in neg):
                self.bad(path, "AT_MOST over an item that is always met")
                return None
            return self.make(m.Group, path, mode="at_least", n=max(0, len(items) - count),
                             items=neg)
        mode = {"ALL": "all", "ANY": "any", "AT_LEAST": "at_least"}[typ]
        return self.make(m.Group, path, mode=mode, n=count if typ == "AT_LEAST" else 1,
                         items=items)

    # the whole expression
    def cohort(self, name: str, description: str) -> m.Cohort | None:
        d = self.data
        self.unknown_keys(d, _TOP_KEYS, "")
        pc = d.get("PrimaryCriteria") or {}
        self.unknown_keys(pc, {"CriteriaList", "ObservationWindow", "PrimaryCriteriaLimit"},
                          "PrimaryCriteria")
        p_limit = _limit(pc.get("PrimaryCriteriaLimit"))
        entry, lead = [], []
        crits = pc.get("CriteriaList") or []
        if not crits:
            self.bad("PrimaryCriteria.CriteriaList", "no entry events")
        for i, w in enumerate(crits):
            path = f"PrimaryCriteria.CriteriaList[{i}]"
            c, cc = self.criterion(w, path, nested_ok=True)
            entry.append(c)
            if cc is not None and len(crits) == 1 and p_limit == "all":
                g = self.group(cc, f"{path}.{next(iter(w))}.CorrelatedCriteria")
                lead.append(m.InclusionRule(name="ATLAS entry-event criteria",
                                            description=f"{path} CorrelatedCriteria",
                                            group=g) if g else None)
            elif cc is not None:
                self.bad(f"{path}.{next(iter(w))}.CorrelatedCriteria", "criteria nested under "
                         "an entry event: an inclusion rule only when it is the only entry "
                         "criterion and PrimaryCriteriaLimit is All")
        ac = d.get("AdditionalCriteria")
        if isinstance(ac, dict) and not _group_empty(ac):
            g = self.group(ac, "AdditionalCriteria")
            lead.append(m.InclusionRule(name="ATLAS additional criteria",
                                        description="AdditionalCriteria (restrict initial "
                                                    "events)", group=g) if g else None)
        rules = []
        for k, r in enumerate(d.get("InclusionRules") or []):
            g = self.group(r.get("expression"), f"InclusionRules[{k}].expression")
            rules.append(g and m.InclusionRule(name=str(r.get("name") or f"rule {k + 1}"),
                                               description=str(r.get("description") or ""),
                                               group=g))
        q_limit, result_limit = _limit(d.get("QualifiedLimit")), _limit(d.get("ExpressionLimit"))
        for path, lim in (("PrimaryCriteria.PrimaryCriteriaLimit", p_limit),
                          ("QualifiedLimit", q_limit), ("ExpressionLimit", result_limit)):
            if lim not in ("first", "all"):
                self.bad(f"{path}.Type", f"limit {lim!r}: ours keep the first or all")
        entry_limit = p_limit
        # Circe applies QualifiedLimit only with AdditionalCriteria, after them, before rules
        if ac is not None and q_limit == "first" and p_limit == "all":
            if not lead:
                entry_limit = "first"    # first primary event, then the rules
            elif not rules:
                result_limit = "first"   # first event meeting the leading rules
            else:
                self.bad("QualifiedLimit", "first qualifying event, then inclusion rules: ours "
                         "limit the entry events or the final result only")
        ow = pc.get("ObservationWindow") or {}
        censoring = [self.criterion(w, f"CensoringCriteria[{k}]")[0]
                     for k, w in enumerate(d.get("CensoringCriteria") or [])]
        exit_ = self.exit(d.get("EndStrategy"))
        collapse = d.get("CollapseSettings") or {}
        self.unknown_keys(collapse, {"CollapseType", "EraPad"}, "CollapseSettings")
        if collapse.get("CollapseType", "ERA") != "ERA":
            self.bad("CollapseSettings.CollapseType", "only ERA")
        if any(not _absent(v) for v in (d.get("CensorWindow") or {}).values()):
            self.bad("CensorWindow", _WHY["CensorWindow"])
        entry_ = None if self.problems else self.make(
            m.Entry, "PrimaryCriteria.ObservationWindow", criteria=entry, limit=entry_limit,
            prior_observation=ow.get("PriorDays", 0), post_observation=ow.get("PostDays", 0))
        if self.problems:
            return None
        return self.make(
            m.Cohort, "(top level)", name=name, description=description, entry=entry_,
            inclusion_rules=lead + rules, exit=exit_, censoring=censoring,
            result_limit=result_limit, era_pad_days=collapse.get("EraPad", 0))

    def exit(self, es: Any) -> Any:
        if _absent(es):
            return m.EndOfObservation()
        if "DateOffset" in es:
            do = es["DateOffset"] or {}
            self.unknown_keys(do, {"DateField", "Offset"}, "EndStrategy.DateOffset")
            anchor = "index_end" if do.get("DateField") == "EndDate" else "index_start"
            return self.make(m.FixedOffset, "EndStrategy.DateOffset.Offset",
                             days=do.get("Offset", 0), anchor=anchor)
        if "CustomEra" in es:
            ce = es["CustomEra"] or {}
            self.unknown_keys(ce, {"DrugCodesetId", "GapDays", "Offset"}, "EndStrategy.CustomEra")
            if ce.get("DrugCodesetId") is None:
                self.bad("EndStrategy.CustomEra.DrugCodesetId", "missing")
                return None
            cs = self.concept_set(ce["DrugCodesetId"], "EndStrategy.CustomEra.DrugCodesetId")
            return cs and self.make(m.DrugExposureEnd, "EndStrategy.CustomEra", concepts=cs,
                                    gap_days=ce.get("GapDays", 0), offset=ce.get("Offset", 0))
        self.bad("EndStrategy", f"unknown end strategy {', '.join(es)}")
        return None


def _unwrap(data: dict) -> tuple[dict, dict]:
    """A WebAPI/ATLAS export {"name", "expression": {...} or "..."} -> (expression, wrapper)."""
    if "PrimaryCriteria" not in data and "expression" in data:
        expr = data["expression"]
        if isinstance(expr, str):
            try:
                expr = json.loads(expr)
            except json.JSONDecodeError:
                return data, {}
        if isinstance(expr, dict):
            return expr, data
    return data, {}


def is_atlas(data: Any) -> bool:
    """Whether parsed JSON is a Circe cohort expression (or an ATLAS export holding one).

    >>> is_atlas({"ConceptSets": [], "PrimaryCriteria": {}}), is_atlas({"kind": "cohort"})
    (True, False)
    """
    if not isinstance(data, dict):
        return False
    expr, _ = _unwrap(data)
    return "PrimaryCriteria" in expr or "ConceptSets" in expr


def from_atlas(data: dict, *, name: str | None = None, description: str = "") -> m.Cohort:
    """An ATLAS/Circe cohort expression as our :class:`~cohort.model.Cohort`.

    ``name`` defaults to the export's name, else the expression's Title, else "imported".
    Raises :class:`AtlasUnsupportedError` (a DefinitionError) listing every element with
    no equal-meaning equivalent, by JSON path; warns for approximations (DrugEra).

    >>> try:
    ...     from_atlas({"PrimaryCriteria": {"CriteriaList": [{"Observation": {}}]},
    ...                 "CensorWindow": {"StartDate": "2010-01-01"}})
    ... except AtlasUnsupportedError as e:
    ...     print(e.path, len(e.problems))
    PrimaryCriteria.CriteriaList[0].Observation 2
    """
    if not isinstance(data, dict):
        raise DefinitionError("an ATLAS definition is a JSON object", path="(top level)")
    expr, wrapper = _unwrap(data)
    name = name or wrapper.get("name") or expr.get("Title") or "imported"
    imp = _Importer(expr)
    try:
        cohort = imp.cohort(str(name), description or str(wrapper.get("description") or ""))
    except (AttributeError, KeyError, TypeError, ValueError) as e:   # wrong JSON shapes
        raise DefinitionError(f"not a Circe cohort expression ({type(e).__name__}: {e})",
                              path="(top level)", hint="export the definition from ATLAS "
                              "(Export > JSON) and load that file") from None
    if imp.problems or cohort is None:
        raise AtlasUnsupportedError(imp.problems, side="cohort.model", hint=(
            "remove these in ATLAS, or write the definition with cohort.builder; "
            "see cohort.atlas for what maps"))
    for path in imp.approximations:
        warnings.warn(f"{path}: DrugEra imported as drug exposures of the same concepts "
                      "(windows and counts then apply to exposures, not eras)",
                      AtlasApproximationWarning, stacklevel=2)
    return cohort


# --- export ------------------------------------------------------------------------------

class _Exporter:
    def __init__(self, catalog: Any = None) -> None:
        self.cat = catalog
        self.sets: list[dict] = []
        self.ids: dict[str, int] = {}
        self.problems: list[tuple[str, str]] = []

    def bad(self, path: str, why: str) -> None:
        self.problems.append((path, why))

    def record(self, vocabulary: str | None, code: str | None, concept_id: int | None,
               path: str) -> dict:
        rec: dict[str, Any] = {"CONCEPT_ID": concept_id}
        if vocabulary is not None:
            rec |= {"CONCEPT_CODE": code, "VOCABULARY_ID": vocabulary}
        if self.cat is None:
            return rec
        by_id = concept_id is not None   # fill the id and names from the release's vocabulary
        rows = self.cat.sql("select concept_id, concept_name, standard_concept, domain_id, "
                            "concept_class_id from concept where " + (
                                "concept_id = ?" if by_id else
                                "vocabulary_id = ? and concept_code = ?"),
                            [concept_id] if by_id else [vocabulary, code]).fetchall()
        if not rows:
            self.bad(path, "not in the release's vocabulary")
            return rec
        return rec | dict(zip(("CONCEPT_ID", "CONCEPT_NAME", "STANDARD_CONCEPT", "DOMAIN_ID",
                               "CONCEPT_CLASS_ID"), rows[0], strict=True))

    def codeset(self, name: str, items: list[dict]) -> int:
        key = json.dumps([name, items], sort_keys=True)
        if key not in self.ids:
            self.ids[key] = len(self.sets)
            self.sets.append({"id": len(self.sets), "name": name, "expression": {"items": items}})
        return self.ids[key]

    def concept_set(self, cs: m.ConceptSet, path: str) -> int:
        return self.codeset(cs.name, [
            {"concept": self.record(i.vocabulary, i.code, i.concept_id, f"{path}.items[{k}]"),
             "isExcluded": i.exclude, "includeDescendants": i.include_descendants,
             "includeMapped": i.include_mapped} for k, i in enumerate(cs.items)])

    def numeric(self, r: m.Range, path: str, *, integral: bool) -> dict | None:
        lo, hi = (None if v is None else int(v) if v == int(v) else v for v in (r.min, r.max))
        if integral and any(isinstance(v, float) for v in (lo, hi)):
            self.bad(path, "Circe truncates age bounds to whole years: use whole numbers")
        elif any(v is not None and _four(v) != v for v in (lo, hi)):
            self.bad(path, "Circe compares values written with 4 decimals")
        if lo is not None and hi is not None:
            return {"Value": lo, "Op": "eq"} if lo == hi else {"Value": lo, "Extent": hi,
                                                               "Op": "bt"}
        if lo is None and hi is None:
            self.bad(path, "an unbounded range: leave the value out instead")
            return None
        return {"Value": lo, "Op": "gte"} if hi is None else {"Value": hi, "Op": "lte"}

    def criterion(self, c: Any, path: str) -> dict | None:
        if isinstance(c, m.GenotypeCriterion):
            self.bad(path, "genotype criteria (variant carriers) have no Circe equivalent: "
                           "OMOP and ATLAS hold no genotypes")
            return None
        if c.kind not in _CIRCE_NAME:
            self.bad(path, f"{c.kind} criteria have no Circe equivalent")
            return None
        body: dict[str, Any] = {}
        if isinstance(c, m.VisitCriterion):
            body["CodesetId"] = self.codeset(f"Visits: {', '.join(c.visit_types)}", [
                {"concept": {"CONCEPT_ID": _VISIT_IDS[t], "CONCEPT_CODE": t,
                             "VOCABULARY_ID": "Visit", "DOMAIN_ID": "Visit"},
                 "isExcluded": False, "includeDescendants": False, "includeMapped": False}
                for t in c.visit_types])
        elif hasattr(c, "concepts"):
            body["CodesetId"] = self.concept_set(c.concepts, f"{path}.concepts")
        if c.first_occurrence and c.kind == "death":
            self.bad(f"{path}.first_occurrence", "Circe's Death has no First (one per person)")
        elif c.first_occurrence:
            body["First"] = True
        if isinstance(c, m.MeasurementCriterion) and c.value is not None:
            body["ValueAsNumber"] = self.numeric(c.value, f"{path}.value", integral=False)
        if isinstance(c, m.MeasurementCriterion) and c.unit is not None:
            body["Unit"] = [self.record("UCUM", c.unit, None, f"{path}.unit")]
        return {_CIRCE_NAME[c.kind]: body}

    def requirement(self, r: m.Requirement, path: str) -> tuple[str, dict | None]:
        c = r.criterion
        if c.kind in ("age", "sex"):
            if r.window is not None or r.occurrence != m.Occurrence() \
                    or not r.restrict_to_observation:
                self.bad(path, "Circe's demographic criteria have no window, occurrence or "
                               "observation restriction")
            if isinstance(c, m.AgeCriterion):
                return "DemographicCriteriaList", {"Age": self.numeric(
                    c.value, f"{path}.criterion.value", integral=True)}
            return "DemographicCriteriaList", {"Gender": [
                {"CONCEPT_ID": _SEX_RECORDS[s][0], "CONCEPT_CODE": _SEX_RECORDS[s][1],
                 "CONCEPT_NAME": _SEX_RECORDS[s][2], "VOCABULARY_ID": "Gender",
                 "DOMAIN_ID": "Gender"} for s in c.values]}
        w, o = r.window or m.Window(), r.occurrence

        def endpoint(days: int | None, open_coeff: int) -> dict:
            return ({"Days": None, "Coeff": open_coeff} if days is None else
                    {"Days": abs(days), "Coeff": -1 if days < 0 else 1})
        return "CriteriaList", {
            "Criteria": self.criterion(c, f"{path}.criterion"),
            "StartWindow": {"Start": endpoint(w.start, -1), "End": endpoint(w.end, 1),
                            "UseIndexEnd": w.anchor == "index_end", "UseEventEnd": False},
            "Occurrence": {"Type": _OCCURRENCE_TYPE[o.op], "Count": o.count,
                           "IsDistinct": o.distinct_dates,
                           **({"CountColumn": "START_DATE"} if o.distinct_dates else {})},
            "RestrictVisit": False, "IgnoreObservationPeriod": not r.restrict_to_observation}

    def group(self, g: m.Group, path: str) -> dict:
        out: dict[str, Any] = {"Type": g.mode.upper(), "Count": g.n if g.mode == "at_least"
                               else None, "CriteriaList": [], "DemographicCriteriaList": [],
                               "Groups": []}
        for k, item in enumerate(g.items):
            p = f"{path}.items[{k}]"
            if isinstance(item, m.Group):
                out["Groups"].append(self.group(item, p))
            else:
                key, node = self.requirement(item, p)
                out[key].append(node)
        return out

    def cohort(self, c: m.Cohort) -> dict:
        crits = [self.criterion(x, f"entry.criteria[{k}]") for k, x in enumerate(c.entry.criteria)]
        rules = [{"name": r.name, "description": r.description,
                  "expression": self.group(r.group, f"inclusion_rules[{k}].group")}
                 for k, r in enumerate(c.inclusion_rules)]
        end: dict | None = None
        if isinstance(c.exit, m.FixedOffset):
            end = {"DateOffset": {"DateField": "EndDate" if c.exit.anchor == "index_end"
                                  else "StartDate", "Offset": c.exit.days}}
        elif isinstance(c.exit, m.DrugExposureEnd):
            end = {"CustomEra": {"DrugCodesetId": self.concept_set(c.exit.concepts,
                                                                   "exit.concepts"),
                                 "GapDays": c.exit.gap_days, "Offset": c.exit.offset}}
        censoring = [self.criterion(x, f"censoring[{k}]") for k, x in enumerate(c.censoring)]
        limit = {"Type": c.result_limit.capitalize()}
        return {"cdmVersionRange": ">=5.0.0", "Title": c.name, "ConceptSets": self.sets,
                "PrimaryCriteria": {
                    "CriteriaList": crits,
                    "ObservationWindow": {"PriorDays": c.entry.prior_observation,
                                          "PostDays": c.entry.post_observation},
                    "PrimaryCriteriaLimit": {"Type": c.entry.limit.capitalize()}},
                "QualifiedLimit": limit, "ExpressionLimit": dict(limit),
                "InclusionRules": rules, "EndStrategy": end, "CensoringCriteria": censoring,
                "CollapseSettings": {"CollapseType": "ERA", "EraPad": c.era_pad_days},
                "CensorWindow": {}}


def to_atlas(cohort: m.Cohort, *, catalog: Any = None) -> dict:
    """Our definition as a Circe cohort expression (a JSON-ready dict).

    Concept records carry VOCABULARY_ID and CONCEPT_CODE (or CONCEPT_ID); pass a release's
    ``catalog`` to fill CONCEPT_ID and names from its vocabulary, which Circe needs to
    generate SQL. The description has no place in a Circe expression and is dropped.
    Raises :class:`AtlasUnsupportedError` naming the path of every part Circe lacks
    (lifelog, screening, region, consent, has_genome, genotype, cohort membership, set
    operations).

    >>> from cohort.builder import cohort, condition, age
    >>> c = cohort("t2d").entry(condition("KCD8", "E11")).require("adult", age(18)).build()
    >>> to_atlas(c)["InclusionRules"][0]["expression"]["DemographicCriteriaList"]
    [{'Age': {'Value': 18, 'Op': 'gte'}}]
    """
    if not isinstance(cohort, m.Cohort):
        raise DefinitionError(f"Circe has no {getattr(cohort, 'kind', 'such')} definitions: "
                              "export each cohort of a set on its own", path="(top level)")
    ex = _Exporter(catalog)
    out = ex.cohort(cohort)
    if ex.problems:
        raise AtlasUnsupportedError(ex.problems, side="Circe", hint=(
            "drop these parts for ATLAS, or run the definition here"))
    return out


def load_any(path: Path | str) -> m.Cohort | m.CohortSet:
    """Read our JSON definition or an ATLAS/Circe one (detected by :func:`is_atlas`).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "deaths.json"
    >>> _ = p.write_text(json.dumps({"PrimaryCriteria": {"CriteriaList": [{"Death": {}}]}}))
    >>> load_any(p).name, load_any(p).entry.criteria[0].kind
    ('deaths', 'death')
    """
    p = Path(path)
    data = io.parse_json(io.read_definition_bytes(p), source=p.name)
    try:
        if is_atlas(data):
            expr, wrapper = _unwrap(data)
            return from_atlas(data, name=wrapper.get("name") or expr.get("Title") or p.stem)
        return io.from_data(data)
    except RecursionError:
        raise DefinitionError("the definition nests groups or cohorts too deeply",
                              path="(top level)") from None
