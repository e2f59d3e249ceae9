"""Load FHIR R4 resources (NDJSON or Bundles, KR Core) into a release: ``release load-fhir``.

Every resource is validated with ``fhir.resources`` (R4 models, as ``fhir.resources.R4B``),
mapped by :mod:`workbench.fhir.mapping` and its references resolved; a resource that
cannot be loaded is *rejected* and one the release has no place for is *skipped*, each
with its file, line or Bundle entry, resource type, id and reason in the load report.
Neither stops the batch. The report (``load_report.json`` and a readable
``load_report.txt``) is written inside the release and listed in its manifest.

Tables: Patient -> person (and death, from ``deceasedDateTime``), Encounter ->
visit_occurrence, Condition -> condition_occurrence, MedicationRequest and
MedicationStatement -> drug_exposure, Observation (laboratory, vital-signs) -> measurement
(a panel gives one row per component), the cause-of-death Observation (LOINC 69453-9) ->
death.cause, Procedure -> procedure_occurrence, Consent -> consent (one per person: the
latest), EpisodeOfCare -> observation_period. A person without an EpisodeOfCare gets one
observation period from their first to their last event. ``location`` is the workbench's
regions, matched on ``Patient.address.state`` (code, Korean or English name).

Ids: a table keeps the resources' ids when all are whole numbers ("12") and unique in
it; otherwise its rows are numbered 1, 2, ... in input order (the manifest notes it).

>>> import tempfile, pathlib, json
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> rows = [{"resourceType": "Patient", "id": "7", "gender": "female", "birthDate": "1970"},
...         {"resourceType": "Condition", "id": "1", "subject": {"reference": "Patient/7"},
...          "code": {"coding": [{"system": "http://www.hl7korea.or.kr/CodeSystem/kostat-kcd-8",
...                               "code": "I10"}]}, "onsetDateTime": "2020-01-02"},
...         {"resourceType": "Condition", "id": "2", "subject": {"reference": "Patient/8"},
...          "code": {"text": "cough"}, "onsetDateTime": "2020-01-02"}]
>>> _ = (d / "in.ndjson").write_text("\\n".join(json.dumps(r) for r in rows))
>>> m = load_fhir(d / "in.ndjson", d / "release", progress=False)
>>> m["tables"]["condition_occurrence"]["rows"], m["load"]["rejected"]
(1, 1)
>>> [r["reason"] for r in json.loads((d / "release/load_report.json").read_text())["rejected"]]
['subject Patient/8 is not in the batch']
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from tqdm import tqdm

from workbench.errors import ReleaseError, UsageError
from workbench.fhir import mapping as M
from workbench.fhir.read import Where, read_file, source_files
from workbench.manifest import sha256_file
from workbench.release_io import check_release_out, write_release

#: Tables a FHIR load writes (always, empty when nothing maps to them).
TABLES_WRITTEN = ("person", "observation_period", "visit_occurrence", "condition_occurrence",
                  "drug_exposure", "measurement", "procedure_occurrence", "death", "location",
                  "consent")
REPORT_JSON, REPORT_TEXT = "load_report.json", "load_report.txt"
_EXAMPLES = 5


@dataclass(slots=True)
class _Entry:
    where: Where
    rtype: str
    rid: str | None
    record: M.Record


@dataclass
class Report:
    """What happened to every resource read: counts, rejections, skips, unmapped codes."""

    read: Counter = field(default_factory=Counter)        # resourceType -> resources read
    loaded: set[tuple[Where, str]] = field(default_factory=set)   # resources with a row
    rejected: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, dict[str, Any]] = field(default_factory=dict)   # reason -> count, ...
    unmapped: dict[tuple, dict[str, Any]] = field(default_factory=dict)
    warnings: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejected_at: dict[str, Where] = field(default_factory=dict)   # "Type/id" -> where
    _rejected: set[tuple] = field(default_factory=set)

    def reject(self, where: Where, rtype: str | None, rid: str | None, reason: str) -> None:
        if (where, rtype, rid) in self._rejected:   # a panel's rows share one rejection
            return
        self._rejected.add((where, rtype, rid))
        self.rejected.append({**where.as_dict(), "resourceType": rtype, "id": rid,
                              "reason": reason})
        if rtype and rid:
            self.rejected_at.setdefault(f"{rtype}/{rid}", where)

    def skip(self, where: Where, rtype: str | None, rid: str | None, reason: str) -> None:
        _tally(self.skipped, reason, where, rtype, rid)

    def warn(self, what: str, where: Where, rtype: str | None, rid: str | None) -> None:
        _tally(self.warnings, what, where, rtype, rid)

    def unmap(self, u: M.Unmapped) -> None:
        key = (u.table, u.column, u.system, u.code)
        entry = self.unmapped.setdefault(key, {"table": u.table, "column": u.column,
                                               "system": u.system, "code": u.code,
                                               "display": u.display, "why": u.why,
                                               "rows": 0})
        entry["rows"] += 1

    def as_dict(self) -> dict[str, Any]:
        types = sorted(self.read)
        rejected_by = Counter(r["resourceType"] for r in self.rejected)
        skipped_by: Counter = Counter()
        for s in self.skipped.values():
            skipped_by.update(s["by_type"])
        loaded = Counter(t for _, t in self.loaded)
        return {
            "resources": {t: {"read": self.read[t], "loaded": loaded[t],
                              "rejected": rejected_by[t], "skipped": skipped_by[t]}
                          for t in types},
            "unreadable": sum(1 for r in self.rejected if r["resourceType"] is None),
            "rejected": self.rejected,
            "skipped": [{"reason": k, **v} for k, v in sorted(self.skipped.items())],
            "unmapped_codes": sorted(self.unmapped.values(),
                                     key=lambda u: (-u["rows"], u["table"], str(u["code"]))),
            "warnings": [{"warning": k, **v} for k, v in sorted(self.warnings.items())],
        }


def _tally(into: dict[str, dict[str, Any]], reason: str, where: Where, rtype: str | None,
           rid: str | None) -> None:
    entry = into.setdefault(reason, {"count": 0, "by_type": Counter(), "examples": []})
    entry["count"] += 1
    entry["by_type"][rtype] += 1
    if len(entry["examples"]) < _EXAMPLES:
        entry["examples"].append({**where.as_dict(), "resourceType": rtype, "id": rid})


def load_fhir(source: Path | str, out: Path | str, *, force: bool = False,
              progress: bool = True, base: Path | str | None = None,
              workers: int = 1) -> dict[str, Any]:
    """Load the FHIR resources of ``source`` (a file or a directory) into a release at
    ``out``; return its manifest, whose ``load`` section counts what was loaded, rejected
    and skipped (the whole report is ``out/load_report.json``).

    With ``base`` (a release) the load is incremental: references may name the base's
    persons and visits by their ids ("Patient/12"), rows numbered by the loader continue
    after the base's ids, and the result is a new version of ``base``
    (:func:`workbench.versions.new_version`: same keys replace, others are added).

    ``workers`` > 1 validates and maps in that many processes (spawned; batches of 1,000
    resources, applied in input order, so the result does not depend on it). It pays only
    on idle cores: see benchmarks/results/ingest_*.md.

    Raises :class:`UsageError` for bad arguments and :class:`ReleaseError` when no
    Patient could be loaded (the report's first reasons are in the message).
    """
    source, out = Path(source), Path(out)
    _check_arguments(source, out, force)
    files, ignored = source_files(source)
    known: dict[str, set[int]] = {}
    if base is not None:
        from workbench.versions import parent_tables

        _, parent = parent_tables(Path(base))
        known = {t: set(parent[t][M.ID_COLUMN[t]].to_pylist())
                 for t in ("person", "visit_occurrence", *M.ID_COLUMN) if t in parent}
    report = Report()
    entries, file_info = _read_all(source, files, report, progress, max(1, workers))
    tables, notes = _resolve(entries, report, known)
    if not tables["person"] and base is None:
        reasons = "; ".join(f"{r['file']}: {r['reason']}" for r in report.rejected[:3])
        raise ReleaseError(f"{source}: no Patient could be loaded"
                           + (f" ({reasons})" if reasons else ""),
                           hint="every other resource refers to a Patient; check the files "
                                "hold Patient resources with a birthDate")
    body = report.as_dict()
    counts = {"resources_read": sum(report.read.values()) + body["unreadable"],
              "loaded": len(report.loaded), "rejected": len(report.rejected),
              "skipped": sum(s["count"] for s in report.skipped.values()),
              "unmapped_codes": len(report.unmapped),
              "unmapped_rows": sum(u["rows"] for u in report.unmapped.values())}
    body = {"source": str(source), "counts": counts, **body}
    text = summary(body)
    extra = {"source": {"format": "FHIR R4 (NDJSON or Bundle JSON)", "path": str(
        source.resolve()), "files": file_info, "ignored": ignored},
        "load": counts, "notes": notes,
        "report": {"json": REPORT_JSON, "text": REPORT_TEXT}}
    blob = json.dumps(body, indent=1, ensure_ascii=False, default=_jsonable).encode()
    if base is not None:
        from workbench.versions import new_version

        changes = {t: rows for t, rows in tables.items() if t != "location"}
        return new_version(base, out, changes, source={**extra["source"], "load": counts},
                           force=force, data_kind="fhir", files={REPORT_JSON: blob + b"\n",
                                               REPORT_TEXT: text.encode()})
    return write_release(out, tables, kind="fhir", force=force, extra=extra,
                         files={REPORT_JSON: blob + b"\n", REPORT_TEXT: text.encode()})


def _jsonable(value: Any) -> Any:
    return dict(value) if isinstance(value, Counter) else str(value)


def _check_arguments(source: Path, out: Path, force: bool) -> None:
    if not source.exists():
        raise UsageError(f"{source} does not exist",
                         hint="give an NDJSON or Bundle JSON file, or a directory of them")
    src, dst = source.resolve(), out.resolve()
    if dst == src or dst.is_relative_to(src):
        raise UsageError(f"--out {out} is inside the source {source}",
                         hint="write the release to a directory outside the FHIR files")
    check_release_out(out, force)


# --- pass 1: read, validate, map ---------------------------------------------------------

def _read_all(source: Path, files: list[Path], report: Report, progress: bool,
              workers: int) -> tuple[list[_Entry], list[dict[str, Any]]]:
    """Read, validate and map every resource; ``workers`` processes validate and map
    (pydantic validation is most of the time), results are applied in input order."""
    entries: list[_Entry] = []
    deferred: list[tuple[Where, str, dict[str, Any]]] = []
    medications: dict[str, Any] = {}
    seen: dict[str, Where] = {}
    info = []
    bar = tqdm(desc="FHIR resources", unit=" res", unit_scale=True, disable=not progress,
               leave=False, file=sys.stderr)

    def apply(outcomes: list[tuple], *, first: bool = True) -> None:
        for kind, where, rtype, rid, payload, validated in outcomes:
            if first:
                bar.update(1)
                if rtype is not None:
                    report.read[rtype] += 1
            if validated and rid is not None:
                key = f"{rtype}/{rid}"
                if key in seen:
                    report.reject(where, rtype, rid, f"duplicate id: {key} was read first at "
                                                     f"{seen[key]}")
                    continue
                seen[key] = where
            if kind == "reject":
                report.reject(where, rtype, rid, payload)
            elif kind == "skip":
                report.skip(where, rtype, rid, payload)
            elif kind == "rows":
                entries.extend(_Entry(where, rtype, rid, rec) for rec in payload)
            elif kind == "medication":
                res = _model(rtype).model_validate(payload)
                for k in (f"Medication/{rid}", where.full_url):
                    if k:
                        medications[k] = res
                report.loaded.add((where, rtype))
            else:   # "deferred": needs the batch's Medications
                deferred.append((where, rtype, payload))

    pool = None
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        pending: list[Any] = []
        for path in files:
            name = path.name if source.is_file() else str(path.relative_to(source))
            n = 0
            batch: list[tuple] = []
            for item in read_file(path, name):
                n += 1
                batch.append(item)
                if len(batch) == _BATCH:
                    pending.append(pool.submit(_process_batch, batch) if pool else batch)
                    batch = []
                    while pending and (pool is None or len(pending) > 4 * workers):
                        done = pending.pop(0)
                        apply(done.result() if pool else _process_batch(done))
            if batch:
                pending.append(pool.submit(_process_batch, batch) if pool else batch)
            info.append({"file": name, "sha256": sha256_file(path), "resources": n})
        for done in pending:
            apply(done.result() if pool else _process_batch(done))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    voc = M.Vocabulary.default()
    for where, rtype, raw in deferred:   # Medications may come after their requests
        outcome = _map(where, rtype, _model(rtype).model_validate(raw), voc, medications)
        apply([(*outcome, False)], first=False)
    bar.close()
    return entries, info


_BATCH = 1000


def _model(rtype: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(rtype)


def _process_batch(items: list[tuple]) -> list[tuple]:
    """Validate and map a batch of read items (runs in a worker process)."""
    voc = M.Vocabulary.default()
    return [_process(where, raw, problem, voc) for where, raw, problem in items]


def _process(where: Where, raw: dict[str, Any] | None, problem: str | None,
             voc: M.Vocabulary) -> tuple:
    """(kind, where, resourceType, id, payload, validated) for one read item."""
    if problem is not None:
        return ("reject", where, None, None, problem, False)
    rtype, rid = raw.get("resourceType"), raw.get("id")
    rid = rid if isinstance(rid, str) else None if rid is None else str(rid)
    if not isinstance(rtype, str) or not rtype:
        return ("reject", where, None, rid, "no resourceType", False)
    try:
        model_class = _model(rtype)
    except (ValueError, KeyError):
        return ("reject", where, rtype, rid, f"resourceType {rtype!r} is not a FHIR R4 "
                                             "resource type", False)
    if rtype not in M.MAPPERS and rtype != "Medication":
        return ("skip", where, rtype, rid, f"{rtype} is not loaded (loaded: "
                                           f"{', '.join(M.MAPPERS)}, Medication)", False)
    try:
        res = model_class.model_validate(raw)
    except ValidationError as e:
        return ("reject", where, rtype, rid, _validation_reason(e), False)
    if rtype == "Medication":
        return ("medication", where, rtype, rid, raw, True)
    if rtype in M.NEEDS_MEDICATIONS and res.medicationReference is not None:
        return ("deferred", where, rtype, rid, raw, True)
    return (*_map(where, rtype, res, voc, {}), True)


def _map(where: Where, rtype: str, res: Any, voc: M.Vocabulary,
         medications: dict[str, Any]) -> tuple:
    fn = M.MAPPERS[rtype]
    try:
        records = fn(res, voc, medications) if rtype in M.NEEDS_MEDICATIONS else fn(res, voc)
    except M.Rejected as e:
        return ("reject", where, rtype, res.id, str(e))
    except M.Skipped as e:
        return ("skip", where, rtype, res.id, str(e))
    return ("rows", where, rtype, res.id, records)


def _validation_reason(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "(resource)"
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        shown = f" (got {value!r})" if isinstance(value, str | int | float) else ""
        parts.append(f"{loc}: {msg}{shown}")
    more = len(e.errors()) - 3
    return "invalid FHIR: " + "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


# --- pass 2: references, ids, tables ----------------------------------------------------

_URL_REF = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


def _key(reference: str, aliases: dict[str, str]) -> str:
    if reference in aliases:
        return aliases[reference]
    m = _URL_REF.search(reference)
    return f"{m.group(1)}/{m.group(2)}" if m else reference


def _resolve(entries: list[_Entry], report: Report, known: dict[str, set[int]]
             ) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    from workbench.synth.public import location_table

    by_table: dict[str, list[_Entry]] = defaultdict(list)
    aliases: dict[str, str] = {}
    for e in entries:
        by_table[e.record.table].append(e)
        if e.where.full_url and e.rid:
            aliases[e.where.full_url] = f"{e.rtype}/{e.rid}"
    entries.clear()   # by_table holds them now; each table's are dropped once it is built
    notes: list[str] = []
    ids: dict[str, dict[str, int]] = {}   # table -> "Type/id" -> row id
    tables: dict[str, list[dict[str, Any]]] = {}

    # persons first: everything else refers to them
    persons = by_table.get("person", [])
    person_ids = _assign_ids("person", persons, notes, known.get("person"))
    ids["person"] = {f"Patient/{e.rid}": i for e, i in zip(persons, person_ids, strict=True)
                     if e.rid}
    for e, pid in zip(persons, person_ids, strict=True):
        if e.where.full_url:
            ids["person"][e.where.full_url] = pid
    loc = location_table()
    places = {}
    for lid, state, city, name in zip(*(loc[c].to_pylist() for c in (
            "location_id", "state", "city", "location_source_value")), strict=True):
        for k in (state, city, name):
            places[k.casefold()] = lid
    rows = []
    for e, pid in zip(persons, person_ids, strict=True):
        f = dict(e.record.fields)
        address = f.pop("_address")
        lid = None
        if address:
            lid = next((places[v.casefold()] for v in address if v and v.casefold() in places),
                       None)
            if lid is None:
                report.warn("Patient.address.state matches no region of the location table: "
                            "location_id left empty", e.where, e.rtype, e.rid)
        rows.append({"person_id": pid, **f, "location_id": lid})
        report.loaded.add((e.where, e.rtype))
    tables["person"] = rows
    tables["location"] = loc

    def person_of(e: _Entry) -> int | None:
        target = e.record.refs.get("person_id")
        if target is None:
            report.reject(e.where, e.rtype, e.rid, "no subject/patient reference")
            return None
        key = _key(target, aliases)
        pid = ids["person"].get(target) or ids["person"].get(key) or _known(
            key, "Patient", known.get("person"))
        if pid is None:
            was = report.rejected_at.get(key)
            report.reject(e.where, e.rtype, e.rid,
                          f"subject {target} was rejected (at {was})" if was else
                          f"subject {target} is not in the batch"
                          if key.startswith("Patient/") else
                          f"subject {target} is not a Patient")
        return pid

    # visits next: events refer to them
    order = ["visit_occurrence", "observation_period", "condition_occurrence", "drug_exposure",
             "measurement", "procedure_occurrence"]
    for table in order:
        kept = [(e, pid) for e in by_table.get(table, []) if (pid := person_of(e)) is not None]
        row_ids = _assign_ids(table, [e for e, _ in kept], notes, known.get(table))
        id_col = M.ID_COLUMN[table]
        visit_ids = ids.get("visit_occurrence", {})
        rows = []
        for (e, pid), rid in zip(kept, row_ids, strict=True):
            f = e.record.fields   # the row, in place (no copy of every row)
            f[id_col], f["person_id"] = rid, pid
            visit = e.record.refs.get("visit_occurrence_id")
            if visit is not None:
                vid = visit_ids.get(visit) or visit_ids.get(_key(visit, aliases)) or \
                    _known(_key(visit, aliases), "Encounter", known.get("visit_occurrence"))
                if vid is None:
                    report.warn("encounter reference not in the batch: visit_occurrence_id "
                                "left empty", e.where, e.rtype, e.rid)
                f["visit_occurrence_id"] = vid
            for u in e.record.unmapped:
                report.unmap(u)
            rows.append(f)
            report.loaded.add((e.where, e.rtype))
        if table == "visit_occurrence":
            ids[table] = {}
            for (e, _), rid in zip(kept, row_ids, strict=True):
                if e.rid:
                    ids[table][f"Encounter/{e.rid}"] = rid
                if e.where.full_url:
                    ids[table][e.where.full_url] = rid
        tables[table] = rows
        del kept
        by_table.pop(table, None)
    person_at = {e.where: pid for e, pid in zip(persons, person_ids, strict=True)}
    tables["death"] = _deaths(by_table, report, person_of, person_at)
    tables["consent"] = _consents(by_table, report, person_of)
    derived = _derive_periods(tables, known.get("person", set()),
                              known.get("observation_period", set()))
    if derived:
        notes.append(f"{derived} person(s) without an EpisodeOfCare: one observation period "
                     "each, from their first to their last event")
    return tables, notes


def _known(key: str, rtype: str, ids: set[int] | None) -> int | None:
    """The id of a base release's row a reference names ("Patient/12"), or None."""
    prefix = f"{rtype}/"
    if ids and key.startswith(prefix) and key[len(prefix):].isdigit():
        n = int(key[len(prefix):])
        return n if n in ids else None
    return None


def _assign_ids(table: str, entries: list[_Entry], notes: list[str],
                taken: set[int] | None = None) -> list[int]:
    own = [e.record.own_id for e in entries]
    numeric = [int(x) if x and x.isdigit() and str(int(x)) == x else None for x in own]
    if all(n is not None for n in numeric) and len(set(numeric)) == len(numeric):
        return numeric   # type: ignore[return-value]
    first = max(taken or (), default=0) + 1
    if entries:
        notes.append(f"{table}: resource ids are not all unique whole numbers; rows numbered "
                     f"{first}..{first + len(entries) - 1} in input order")
    return list(range(first, first + len(entries)))


def _deaths(by_table, report: Report, person_of, person_at: dict[Where, int]
            ) -> list[dict[str, Any]]:
    deaths: dict[int, dict[str, Any]] = {}
    for e in by_table.get("death", []):   # from its own Patient (which may have no id)
        pid = person_at.get(e.where)
        if pid is not None:
            deaths[pid] = {"person_id": pid, **e.record.fields, "cause_concept_id": None,
                           "cause_source_value": None}
    for e in by_table.get("death_cause", []):
        pid = person_of(e)
        if pid is None:
            continue
        if pid not in deaths:
            report.skip(e.where, e.rtype, e.rid, "cause of death of a Patient without "
                                                 "deceasedDateTime")
            continue
        deaths[pid].update(e.record.fields)
        for u in e.record.unmapped:
            report.unmap(u)
        report.loaded.add((e.where, e.rtype))
    return [deaths[p] for p in sorted(deaths)]


def _consents(by_table, report: Report, person_of) -> list[dict[str, Any]]:
    latest: dict[int, _Entry] = {}
    for e in by_table.get("consent", []):
        pid = person_of(e)
        if pid is None:
            continue
        prev = latest.get(pid)
        if prev is not None and prev.record.fields["consent_date"] > e.record.fields[
                "consent_date"]:
            e, prev = prev, e
        if prev is not None:
            report.skip(prev.where, prev.rtype, prev.rid, "superseded by a later Consent of "
                                                          "the same patient")
            report.loaded.discard((prev.where, prev.rtype))
        latest[pid] = e
        report.loaded.add((e.where, e.rtype))
    return [{"person_id": p, **latest[p].record.fields} for p in sorted(latest)]


_EVENT_DATES = {"visit_occurrence": ("visit_start_date", "visit_end_date"),
                "condition_occurrence": ("condition_start_date", "condition_end_date"),
                "drug_exposure": ("drug_exposure_start_date", "drug_exposure_end_date"),
                "measurement": ("measurement_date",),
                "procedure_occurrence": ("procedure_date",), "death": ("death_date",)}


def _derive_periods(tables: dict[str, list[dict[str, Any]]], known: set[int],
                    taken: set[int]) -> int:
    have = {r["person_id"] for r in tables["observation_period"]} | known
    span: dict[int, list] = {}
    for table, cols in _EVENT_DATES.items():
        for r in tables[table]:
            pid = r["person_id"]
            if pid in have:
                continue
            for c in cols:
                d = r.get(c)
                if d is not None:
                    lo_hi = span.setdefault(pid, [d, d])
                    lo_hi[0], lo_hi[1] = min(lo_hi[0], d), max(lo_hi[1], d)
    next_id = max([r["observation_period_id"] for r in tables["observation_period"]]
                  + [max(taken, default=0)], default=0) + 1
    for k, pid in enumerate(sorted(span)):
        tables["observation_period"].append({
            "observation_period_id": next_id + k, "person_id": pid,
            "observation_period_start_date": span[pid][0],
            "observation_period_end_date": span[pid][1], "period_type_concept_id": 32817})
    return len(span)


# --- the readable summary ------------------------------------------------------------------

def summary(body: dict[str, Any], *, limit: int = 50) -> str:
    """The load report as text: counts per type, then every rejection (up to ``limit``),
    skips, unmapped codes and warnings."""
    c = body["counts"]
    lines = [f"FHIR load of {body['source']}",
             f"{c['resources_read']:,} resources read: {c['loaded']:,} loaded, "
             f"{c['rejected']:,} rejected, {c['skipped']:,} skipped; "
             f"{c['unmapped_codes']:,} unmapped codes on {c['unmapped_rows']:,} rows", "",
             f"{'resourceType':<22}{'read':>10}{'loaded':>10}{'rejected':>10}{'skipped':>10}"]
    for t, n in body["resources"].items():
        lines.append(f"{t:<22}{n['read']:>10,}{n['loaded']:>10,}{n['rejected']:>10,}"
                     f"{n['skipped']:>10,}")
    if body["rejected"]:
        lines += ["", f"Rejected ({len(body['rejected'])}):"]
        for r in body["rejected"][:limit]:
            where = str(Where(r["file"], r["line"], r["entry"]))
            what = f"{r['resourceType'] or '?'}/{r['id'] or '?'}"
            lines.append(f"  {where}: {what}: {r['reason']}")
        if len(body["rejected"]) > limit:
            lines.append(f"  ... and {len(body['rejected']) - limit} more in load_report.json")
    for title, key, label in (("Skipped", "skipped", "reason"),
                              ("Warnings", "warnings", "warning")):
        if body[key]:
            lines += ["", f"{title}:"]
            for s in body[key]:
                ex = s["examples"][0]
                lines.append(f"  {s['count']:>8,}  {s[label]} (e.g. "
                             f"{Where(ex['file'], ex['line'], ex['entry'])})")
    if body["unmapped_codes"]:
        lines += ["", "Unmapped codes (kept as source values, concept id 0):"]
        for u in body["unmapped_codes"][:limit]:
            lines.append(f"  {u['rows']:>8,}  {u['table']}.{u['column']}: {u['system']} "
                         f"{u['code']!r} ({u['why']})")
    return "\n".join(lines) + "\n"

