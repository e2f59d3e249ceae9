"""Write a release from in-memory tables: for loaders (OMOP CSV, FHIR) and test fixtures.

Tables are cast to the release schema (absent columns become nulls, extra columns are an
error), written as zstd Parquet into a temp directory beside ``out`` and renamed into
place with a manifest listing rows and checksums. Tables not given are absent from the
release (criteria on them fail clearly), except the vocabulary, which defaults to the
workbench's own.

>>> import tempfile, pathlib, datetime as dt
>>> out = pathlib.Path(tempfile.mkdtemp()) / "fx"
>>> m = write_release(out, {"person": [{"person_id": 1, "gender_concept_id": 8532,
...                                     "year_of_birth": 1970}],
...                         "observation_period": [{"observation_period_id": 1, "person_id": 1,
...     "observation_period_start_date": dt.date(2010, 1, 1),
...     "observation_period_end_date": dt.date(2020, 12, 31)}]}, kind="fixture")
>>> m["tables"]["person"]["rows"], "wearable_daily" in m["tables"]
(1, False)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

import workbench
from workbench.atomic import recover_dir, replace_dir
from workbench.errors import UsageError
from workbench.manifest import MANIFEST, content_id, created_timestamp, sha256_file, write_manifest
from workbench.schema import CLUSTER_BY, SCHEMA_VERSION, TABLES, table_file

TableData = pa.Table | Sequence[Mapping[str, Any]]


def conform(name: str, data: TableData) -> pa.Table:
    """Cast rows or a table to the schema of ``name``: missing columns become null."""
    if name not in TABLES:
        raise UsageError(f"unknown table {name!r}; known: {', '.join(TABLES)}")
    schema = TABLES[name]
    if isinstance(data, pa.Table):
        table = data
    else:   # every key of every row (from_pylist would take the first row's keys only)
        rows = list(data)
        keys = list(dict.fromkeys(k for row in rows for k in row))
        table = pa.table({k: pa.array([row.get(k) for row in rows]) for k in keys}) if keys \
            else pa.table({})
    extra = [c for c in table.column_names if c not in schema.names]
    if extra:
        raise UsageError(f"table {name!r}: unknown column(s) {', '.join(extra)}")
    cols = []
    for f in schema:
        if f.name in table.column_names:
            cols.append(table[f.name].cast(f.type))
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def cluster(name: str, table: pa.Table) -> pa.Table:
    """Rows in the release's physical order (``schema.CLUSTER_BY``); others unchanged."""
    keys = CLUSTER_BY.get(name)
    return table.sort_by([(k, "ascending") for k in keys]) if keys else table


def cluster_file(name: str, path: Path, *, spill: Path, memory_limit: str = "2GB",
                 row_group_size: int = 1 << 20) -> None:
    """Rewrite a large table file in the release's physical order, in bounded memory.

    DuckDB sorts (spilling to ``spill``); pyarrow writes, as for every release file, so
    the bytes depend only on the rows.
    """
    keys = CLUSTER_BY.get(name)
    if not keys:
        return
    import duckdb
    from sqlglot import exp

    sorted_path = path.with_name(path.name + ".sorting")
    spill.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config={"memory_limit": memory_limit,
                                 "temp_directory": str(spill), "threads": 2})
    con.execute("SET enable_progress_bar = false")
    try:
        query = exp.select("*").from_(exp.func("read_parquet", exp.Literal.string(
            str(path)))).order_by(*[exp.column(k) for k in keys]).sql("duckdb")
        reader = con.sql(query).to_arrow_reader(row_group_size)
        with pq.ParquetWriter(sorted_path, TABLES[name], compression="zstd",
                              compression_level=3) as writer:
            for batch in reader:
                writer.write_table(pa.Table.from_batches([batch]).cast(TABLES[name]),
                                   row_group_size=row_group_size)
    finally:
        con.close()
    sorted_path.replace(path)


def write_release(out: Path | str, tables: Mapping[str, TableData], *, kind: str,
                  vocabulary: bool = True, force: bool = False,
                  extra: Mapping[str, Any] | None = None,
                  files: Mapping[str, bytes] | None = None,
                  link_files: Mapping[str, Path] | None = None,
                  id_prefix: str | None = None) -> dict[str, Any]:
    """Write ``tables`` as a release at ``out`` and return its manifest.

    ``files`` are other files of the release (relative path -> bytes, e.g. a loader's
    report) and ``link_files`` files taken from elsewhere (relative path -> existing file,
    hard-linked where possible, else copied: a new version's VCF): both are listed in the
    manifest's ``files`` with checksums. The release id is ``<id_prefix or kind>-<content
    id>``.
    """
    out = Path(out)
    if out.parent.is_dir():
        recover_dir(out)   # after a writer killed with SIGKILL (see workbench.atomic)
    if out.exists() and any(out.iterdir()) and not force:
        raise UsageError(f"{out} exists and is not empty; pass force=True to replace it")
    data = dict(tables)
    if vocabulary:
        from workbench.synth.vocabulary import vocabulary_tables

        for name, table in vocabulary_tables().items():
            data.setdefault(name, table)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.writing-{os.getpid()}-", dir=out.parent))
    try:
        entries = {}
        for name, rows in data.items():
            table = cluster(name, conform(name, rows))
            path = tmp / table_file(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path, compression="zstd")
            entries[name] = {"path": table_file(name), "domain": table_file(name).split("/")[0],
                             "rows": table.num_rows, "sha256": sha256_file(path)}
        listed = {}
        for rel, blob in (files or {}).items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blob)
            listed[rel] = {"sha256": sha256_file(path), "bytes": len(blob)}
        for rel, src in (link_files or {}).items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, path)
            except OSError:
                shutil.copy2(src, path)
            listed[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        manifest: dict[str, Any] = {
            "release_id": "", "version": "1", "schema_version": SCHEMA_VERSION, "kind": kind,
            "created": created_timestamp(),
            "generator": {"name": "workbench.release_io", "version": workbench.__version__},
            "tables": entries, "files": listed, "truth": None, **(extra or {}),
        }
        manifest["release_id"] = f"{id_prefix or kind}-{content_id(manifest)}"
        write_manifest(tmp, manifest)
        replace_dir(tmp, out)   # never a moment without a whole release at ``out``
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def check_release_out(out: Path, force: bool, *, force_hint: str = "pass --force") -> None:
    """A loader's ``--out``: new, empty, or (with ``force``) a release to replace; anything
    else is a UsageError saying what to do (``force_hint`` names the caller's switch)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory",
                         hint="choose a new or empty directory for the release")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise UsageError(f"--out {out} exists and is not empty",
                             hint=f"{force_hint} to replace the release there, or choose a "
                                  "new directory")
        if not (out / MANIFEST).is_file():
            raise UsageError(f"--out {out} is not empty and is not a release",
                             hint="--force only replaces a release; choose an empty or new "
                                  "directory")
