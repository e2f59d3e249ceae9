"""Release versions: an incremental load writes a new release beside its parent.

:func:`new_version` takes a release and new rows for some of its tables and writes a new
release (never changing the parent): a row replaces the parent's row with the same key
(``KEYS``: the id column, or person and date) and other rows are appended. The manifest
says ``version`` (the parent's plus one), ``parent`` (release id, version, content id) and
``changes``: per table rows before and after, added and replaced, and the persons added
(new person ids) and withdrawn (a withdrawal date where the parent had none). Files such
as the VCF are hard-linked from the parent. The new release id is a content id, so a
cohort result's ``release_id`` names the version it ran on.

>>> import tempfile, pathlib, datetime as dt
>>> from workbench.synth.build import build_release
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> base = build_release(tmp / "v1", persons=100, genotyped=0, variants=0, seed=2,
...                      progress=False)
>>> rows = [{"person_id": 1, "screening_date": dt.date(2025, 3, 4), "sbp": 131.0}]
>>> m = new_version(tmp / "v1", tmp / "v2", {"health_screening": rows},
...                 source={"format": "example"})
>>> m["version"], m["parent"]["release_id"] == base["release_id"], m["release_id"][:6]
('2', True, 'synth-')
>>> m["changes"]["tables"]["health_screening"]["added"]
1
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from workbench.errors import ReleaseError, UsageError
from workbench.manifest import MANIFEST, content_id, read_manifest
from workbench.release_io import TableData, conform, write_release

#: The key of each table: a new row with a parent row's key replaces it.
KEYS: dict[str, tuple[str, ...]] = {
    "person": ("person_id",), "observation_period": ("observation_period_id",),
    "visit_occurrence": ("visit_occurrence_id",),
    "condition_occurrence": ("condition_occurrence_id",),
    "drug_exposure": ("drug_exposure_id",), "measurement": ("measurement_id",),
    "procedure_occurrence": ("procedure_occurrence_id",), "death": ("person_id",),
    "location": ("location_id",), "concept": ("concept_id",),
    "concept_ancestor": ("ancestor_concept_id", "descendant_concept_id"),
    "concept_relationship": ("concept_id_1", "concept_id_2", "relationship_id"),
    "health_screening": ("person_id", "screening_date"),
    "death_registry": ("person_id",), "region_indicator": ("location_id", "year"),
    "wearable_daily": ("person_id", "date"), "wearable_intraday_hr": ("person_id", "ts"),
    "consent": ("person_id",), "sample_link": ("person_id", "sample_id"),
}
_OWN = ("release_id", "version", "created", "generator", "tables", "files", "kind",
        "schema_version", "parent", "changes", "load", "report", "source", "notes",
        "warnings")


def parent_tables(base: Path) -> tuple[dict[str, Any], dict[str, pa.Table]]:
    """The parent's manifest and tables (raises ReleaseError if it is not a release)."""
    if not (base / MANIFEST).is_file():
        raise UsageError(f"--base {base} is not a release (no {MANIFEST})",
                         hint="give the directory of the release this load adds to")
    manifest = read_manifest(base)
    tables = {}
    for name, entry in manifest["tables"].items():
        path = base / entry["path"]
        if not path.is_file():
            raise ReleaseError(f"--base {base}: table {name} ({entry['path']}) is missing",
                               hint="restore or rebuild the parent release")
        tables[name] = pq.read_table(path)
    return manifest, tables


def new_version(base: Path | str, out: Path | str, changes: Mapping[str, TableData], *,
                source: Mapping[str, Any], force: bool = False,
                files: Mapping[str, bytes] | None = None,
                data_kind: str | None = None) -> dict[str, Any]:
    """Write ``base`` plus ``changes`` (table -> new rows) as a new version at ``out``;
    return its manifest (see the module docstring).

    ``data_kind`` is what the new rows are ("fhir", "screening", "omop"): a synthetic
    parent plus rows that are not synthetic gives a version of that kind, so access rules
    never treat real rows as synthetic (``workbench.access.SYNTHETIC_KINDS``).
    """
    from workbench.access import SYNTHETIC_KINDS

    base, out = Path(base), Path(out)
    if out.resolve() == base.resolve():
        raise UsageError(f"--out {out} is the parent release",
                         hint="a new version goes to a new directory; the parent stays as it "
                              "was (reviewers cite it)")
    manifest, parent = parent_tables(base)
    tables: dict[str, pa.Table] = dict(parent)
    summary: dict[str, dict[str, int]] = {}
    for name, rows in changes.items():
        new = conform(name, rows)
        old = parent.get(name)
        if old is None:
            tables[name] = new
            summary[name] = {"rows_before": 0, "rows_after": new.num_rows,
                             "added": new.num_rows, "replaced": 0}
            continue
        merged, replaced = _upsert(name, old, new)
        tables[name] = merged
        summary[name] = {"rows_before": old.num_rows, "rows_after": merged.num_rows,
                         "added": new.num_rows - replaced, "replaced": replaced}
    persons_added = _new_ids(parent.get("person"), tables.get("person"))
    withdrawn = _withdrawn(parent.get("consent"), tables.get("consent"))
    version = int(manifest.get("version") or 1) + 1
    extra = {k: v for k, v in manifest.items() if k not in _OWN}
    extra.update({
        "version": str(version),
        "parent": {"release_id": manifest["release_id"], "version": manifest.get("version"),
                   "content_id": content_id(manifest), "path": str(base.resolve())},
        "changes": {"tables": summary, "persons_added": persons_added,
                    "persons_withdrawn": withdrawn},
        "source": dict(source),
    })
    links = {rel: base / rel for rel in manifest.get("files", {})
             if not (files and rel in files)}
    prefix = str(manifest["release_id"]).rpartition("-")[0] or None   # synth-..., fhir-...
    kind = manifest.get("kind", "release")
    if kind in SYNTHETIC_KINDS and data_kind and data_kind not in SYNTHETIC_KINDS:
        kind = data_kind
    return write_release(out, tables, kind=kind, vocabulary=False,
                         force=force, extra=extra, files=files, link_files=links,
                         id_prefix=prefix)


def _upsert(name: str, old: pa.Table, new: pa.Table) -> tuple[pa.Table, int]:
    keys = list(KEYS[name])
    o, n = pl.from_arrow(old), pl.from_arrow(new)
    n = n.unique(subset=keys, keep="last", maintain_order=True)
    kept = o.join(n.select(keys), on=keys, how="anti", nulls_equal=True)
    merged = pl.concat([kept, n], how="vertical_relaxed").sort(keys, nulls_last=True)
    return conform(name, merged.to_arrow()), o.height - kept.height


def _new_ids(old: pa.Table | None, new: pa.Table | None) -> int:
    if new is None:
        return 0
    before = set(old["person_id"].to_pylist()) if old is not None else set()
    return len(set(new["person_id"].to_pylist()) - before)


def _withdrawn(old: pa.Table | None, new: pa.Table | None) -> int:
    if new is None:
        return 0
    was = set()
    if old is not None:
        o = pl.from_arrow(old)
        was = set(o.filter(pl.col("withdrawal_date").is_not_null())["person_id"].to_list())
    n = pl.from_arrow(new)
    now = set(n.filter(pl.col("withdrawal_date").is_not_null())["person_id"].to_list())
    return len(now - was)



def add_release(base: Path | str, loaded: Path | str, out: Path | str, *,
                force: bool = False) -> dict[str, Any]:
    """A release a loader just wrote (``loaded``: OMOP CSV, FHIR) added to ``base`` as its
    next version at ``out``; its vocabulary and location tables are not taken (the base
    keeps its own), its other files (load reports) are."""
    loaded = Path(loaded)
    lm, lt = parent_tables(loaded)
    changes = {n: t for n, t in lt.items()
               if n not in ("concept", "concept_ancestor", "concept_relationship", "location")}
    source = {k: lm[k] for k in ("kind", "source", "notes", "warnings", "load") if k in lm}
    source["loaded_release_id"] = lm["release_id"]
    files = {rel: (loaded / rel).read_bytes() for rel in lm.get("files", {})}
    return new_version(base, out, changes, source=source, force=force, files=files,
                       data_kind=lm.get("kind"))
