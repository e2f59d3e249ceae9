"""Load an OMOP CDM v5.3/v5.4 CSV export into a release (``workbench release load-omop``).

Each file of the export directory whose name is an OMOP table the release holds (clinical
and vocabulary tables: ``person.csv``, ``PERSON.csv``, ``person.tsv``, ``CONCEPT.txt.gz``...;
names and headers in any case, ``.csv``/``.tsv``/``.txt``, optionally gzipped) is read by
DuckDB as text and cast to the release schema in SQL. Columns the release does not hold
(v5.3 and v5.4 have many more) are dropped; columns it holds but the file lacks become null.

- Delimiter: taken from the header line (tab or comma); every line must use it.
- Values: empty strings are null; ids and concept ids are whole numbers ("12" or "12.0");
  dates are YYYY-MM-DD or YYYYMMDD, and a datetime keeps its date (time and zone dropped).
- A value that does not parse, or an empty key (ids, start dates), is a
  :class:`~workbench.errors.ReleaseError` naming the file, the line (1-based, the header is
  line 1, a quoted multi-line value counts all its lines) and the column as in the header.
- ``visit_source_value`` holds "IP"/"OP"/"ER" in a release: it is derived from
  ``visit_concept_id`` (9201 IP, 9202 OP, 9203 ER, 262 ER+IP -> IP); other visit concepts
  keep the exported value. The manifest's ``notes`` say so.
- ``person`` and ``observation_period`` are required. Other tables absent from the export
  are absent from the release. The vocabulary is the export's when it has a CONCEPT file
  (``concept_name_ko`` is null unless the file has that column), else the workbench's own
  (manifest ``"vocabulary": "workbench default"``).
- Files that are not tables of the release are listed in ``source.ignored`` and in
  ``warnings``; they are not an error.

Rows stream from DuckDB as Arrow batches into memory-mapped staging files beside ``out``,
so an export larger than memory loads; the release is written atomically by
:func:`workbench.release_io.write_release`.

>>> import tempfile, pathlib
>>> src = pathlib.Path(tempfile.mkdtemp())
>>> _ = (src / "PERSON.csv").write_text(
...     "PERSON_ID,GENDER_CONCEPT_ID,YEAR_OF_BIRTH,RACE_CONCEPT_ID\\n1,8532,1970,0\\n")
>>> _ = (src / "observation_period.tsv").write_text(
...     "observation_period_id\\tperson_id\\tobservation_period_start_date\\t"
...     "observation_period_end_date\\n1\\t1\\t20100101\\t2020-12-31 00:00:00\\n")
>>> m = load_omop(src, src.parent / (src.name + "-release"), progress=False)
>>> m["kind"], m["tables"]["person"]["rows"], m["vocabulary"]
('omop', 1, 'workbench default')
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
from tqdm import tqdm

from workbench.errors import ReleaseError, UsageError
from workbench.manifest import sha256_file
from workbench.release_io import check_release_out, write_release
from workbench.schema import DOMAINS, TABLES

#: Tables an OMOP export can fill: the release's clinical and vocabulary tables.
LOADABLE: tuple[str, ...] = tuple(n for n, d in DOMAINS.items() if d in ("clinical",
                                                                         "vocabulary"))
REQUIRED: tuple[str, ...] = ("person", "observation_period")
VOCABULARY: tuple[str, ...] = ("concept", "concept_ancestor", "concept_relationship")

#: Columns each file must have, with a value on every line (OMOP requires them too).
KEYS: dict[str, tuple[str, ...]] = {
    "person": ("person_id", "gender_concept_id", "year_of_birth"),
    "observation_period": ("person_id", "observation_period_start_date",
                           "observation_period_end_date"),
    "visit_occurrence": ("visit_occurrence_id", "person_id", "visit_concept_id",
                         "visit_start_date"),
    "condition_occurrence": ("condition_occurrence_id", "person_id", "condition_concept_id",
                             "condition_start_date"),
    "drug_exposure": ("drug_exposure_id", "person_id", "drug_concept_id",
                      "drug_exposure_start_date"),
    "measurement": ("measurement_id", "person_id", "measurement_concept_id", "measurement_date"),
    "procedure_occurrence": ("procedure_occurrence_id", "person_id", "procedure_concept_id",
                             "procedure_date"),
    "death": ("person_id", "death_date"),
    "location": ("location_id",),
    "concept": ("concept_id", "vocabulary_id", "concept_code"),
    "concept_ancestor": ("ancestor_concept_id", "descendant_concept_id"),
    "concept_relationship": ("concept_id_1", "concept_id_2", "relationship_id"),
}

#: visit_concept_id -> the release's visit_source_value.
VISIT_SOURCE: dict[int, str] = {9201: "IP", 9202: "OP", 9203: "ER", 262: "IP"}

#: Every OMOP CDM v5.3/v5.4 table: a file named after one the release does not hold is
#: ignored as "not used", any other file as "not an OMOP table".
OMOP_TABLES = frozenset(LOADABLE) | {
    "visit_detail", "device_exposure", "observation", "note", "note_nlp", "specimen",
    "fact_relationship", "care_site", "provider", "payer_plan_period", "cost", "drug_era",
    "dose_era", "condition_era", "episode", "episode_event", "metadata", "cdm_source",
    "vocabulary", "domain", "concept_class", "relationship", "concept_synonym",
    "drug_strength", "source_to_concept_map", "cohort", "cohort_definition",
    "attribute_definition", "survey_conduct", "location_history"}

# Columns only one CDM version has: evidence for the version when there is no CDM_SOURCE.
_V54_ONLY = {"visit_occurrence": ("admitted_from_concept_id", "discharged_to_concept_id"),
             "procedure_occurrence": ("procedure_end_date",),
             "measurement": ("unit_source_concept_id", "measurement_event_id"),
             "location": ("country_concept_id", "latitude")}
_V53_ONLY = {"visit_occurrence": ("admitting_source_concept_id", "discharge_to_concept_id")}

_SUFFIXES = (".csv", ".tsv", ".txt")
_BATCH = 1 << 17
_DELIMITER_NAME = {",": "comma", "\t": "tab"}
_SQL_TYPE = {pa.int64(): "BIGINT", pa.int32(): "INTEGER", pa.float64(): "DOUBLE",
             pa.date32(): "DATE", pa.string(): "VARCHAR"}
_KIND = {"BIGINT": "a whole number", "INTEGER": "a whole number (32-bit)",
         "DOUBLE": "a number", "DATE": "a date"}
_HINT = {
    "BIGINT": "ids, concept ids and counts must be whole numbers (e.g. 42 or 42.0)",
    "INTEGER": "this column holds whole numbers below 2,147,483,648 (e.g. a year or days)",
    "DOUBLE": "write numbers with a dot as decimal mark and no thousands separator",
    "DATE": "write dates as YYYY-MM-DD or YYYYMMDD (a time after the date is ignored)",
}


@dataclass
class _SourceFile:
    """One CSV file of the export and how it was read."""

    path: Path
    table: str
    delimiter: str = ","
    header: list[str] = field(default_factory=list)   # as in the file
    quoted: bool = True

    @property
    def columns(self) -> list[str]:
        """Header names, normalised: lower case, no surrounding blanks."""
        return [h.strip().lower() for h in self.header]


def load_omop(csv_dir: Path | str, out: Path | str, *, force: bool = False,
              progress: bool = True) -> dict[str, Any]:
    """Load the OMOP CDM CSV export in ``csv_dir`` into a release at ``out``; return its
    manifest (see the module docstring for the rules).

    Besides the usual release fields the manifest records ``kind: "omop"``, ``vocabulary``
    ("export" or "workbench default"), ``notes`` (choices made), ``warnings`` (ignored
    files, missing vocabulary tables) and ``source``: the directory, the CDM version and
    what gave it away, ``cdm_source`` (first row of CDM_SOURCE, if exported), per table the
    file read (name, sha256, delimiter, quoting, rows, columns ignored and absent), and the
    files ignored with the reason.

    Raises :class:`UsageError` for bad arguments (``out`` not empty without ``force``) and
    :class:`ReleaseError` for bad input (missing PERSON, unparseable value, wrong delimiter).

    >>> import tempfile, pathlib
    >>> src = pathlib.Path(tempfile.mkdtemp())
    >>> load_omop(src, src / "release", progress=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    workbench.errors.UsageError: --out ... is inside the export directory ...
    """
    csv_dir, out = Path(csv_dir), Path(out)
    _check_arguments(csv_dir, out, force)
    sources, ignored = _find_tables(csv_dir)
    warnings: list[str] = []
    missing = [t for t in REQUIRED if t not in sources]
    if missing:
        names = " and ".join(f"{t}.csv" for t in missing)
        raise ReleaseError(
            f"{csv_dir}: no {names} (required; the table name, any case, with .csv, .tsv or "
            ".txt, optionally .gz)",
            hint="export the OMOP tables PERSON and OBSERVATION_PERIOD into this directory, "
                 "or point at the directory that holds them")
    has_vocabulary = "concept" in sources
    if has_vocabulary:
        warnings += [f"the export has CONCEPT but no {t.upper()}: the release has no {t} "
                     "table, so concept sets that need it fail"
                     for t in VOCABULARY[1:] if t not in sources]
    else:   # the workbench's vocabulary whole: never mixed with parts of the export's
        ignored += [{"file": sources.pop(t).path.name,
                     "reason": "no CONCEPT file: the workbench vocabulary is used"}
                    for t in VOCABULARY if t in sources]
        warnings.append("the export has no CONCEPT file: the release uses the workbench's own "
                        "vocabulary, whose concept ids match only data coded with it")
    warnings.append("OMOP has no consent table, so neither has this release: cohorts on it "
                    "cannot remove persons who withdrew consent")
    if ignored:
        warnings.append(f"{len(ignored)} file(s) ignored: " + ", ".join(
            f"{i['file']} ({i['reason']})" for i in ignored))

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.omop-staging-", dir=out.parent))
    con = duckdb.connect(config={"preserve_insertion_order": True,
                                 "temp_directory": str(staging / "duckdb")})
    con.execute("SET enable_progress_bar = false")   # ours is tqdm
    tables: dict[str, pa.Table] = {}
    try:
        files: dict[str, dict[str, Any]] = {}
        for name in [t for t in LOADABLE if t in sources]:
            src = sources[name]
            tables[name] = _load_table(con, src, staging, progress)
            files[name] = _file_entry(src, tables[name])
        notes = _notes(tables)
        source = {"format": "OMOP CDM CSV export", "directory": str(csv_dir.resolve()),
                  **_cdm_version(con, csv_dir, sources), "files": files, "ignored": ignored}
        extra = {"vocabulary": "export" if has_vocabulary else "workbench default",
                 "notes": notes, "warnings": warnings, "source": source}
        manifest = write_release(out, tables, kind="omop", vocabulary=not has_vocabulary,
                                 force=force, extra=extra)
    finally:
        con.close()
        tables.clear()   # unmap the staging files before removing them
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


# --- arguments and files ---------------------------------------------------------------

def _check_arguments(csv_dir: Path, out: Path, force: bool) -> None:
    if not csv_dir.is_dir():
        raise UsageError(f"CSV_DIR {csv_dir} is not a directory",
                         hint="give the directory that holds the exported OMOP CSV files")
    src, dst = csv_dir.resolve(), out.resolve()
    if dst == src or dst.is_relative_to(src) or src.is_relative_to(dst):
        raise UsageError(f"--out {out} is inside the export directory {csv_dir} (or holds it)",
                         hint="write the release to a directory outside the export")
    check_release_out(out, force, force_hint="pass --force (force=True)")


def table_of(path: Path) -> str | None:
    """The table a file name stands for, or None if it is not a CSV/TSV name.

    >>> table_of(Path("PERSON.csv")), table_of(Path("concept.TSV.gz")), table_of(Path("a.md"))
    ('person', 'concept', None)
    """
    name = path.name.lower().removesuffix(".gz")
    stem, dot, suffix = name.rpartition(".")
    return stem if dot and f".{suffix}" in _SUFFIXES and stem else None


def _find_tables(csv_dir: Path) -> tuple[dict[str, _SourceFile], list[dict[str, str]]]:
    """The loadable files by table, and the other files with why they are ignored."""
    sources: dict[str, _SourceFile] = {}
    ignored: list[dict[str, str]] = []
    for path in sorted(csv_dir.iterdir()):
        if path.name.startswith("."):
            continue
        table = table_of(path) if path.is_file() else None
        if table in LOADABLE:
            if table in sources:
                raise ReleaseError(
                    f"{csv_dir}: both {sources[table].path.name} and {path.name} hold table "
                    f"{table}", hint="keep one file per table in the export directory")
            sources[table] = _SourceFile(path, table)
        elif table == "cdm_source":
            continue
        else:
            reason = ("a directory" if path.is_dir() else
                      "not a .csv/.tsv/.txt file" if table is None else
                      "OMOP table the release does not hold" if table in OMOP_TABLES else
                      "not an OMOP CDM table")
            ignored.append({"file": path.name, "reason": reason})
    return sources, ignored


def _open_text(path: Path) -> IO[str]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    return opener(path, "rt", encoding="utf-8-sig", newline="")   # type: ignore[operator]


def _read_header(src: _SourceFile) -> None:
    """Set the delimiter (tab if the header has a tab, else comma) and the header names."""
    opener = gzip.open if src.path.name.lower().endswith(".gz") else open
    try:
        with opener(src.path, "rb") as f:   # type: ignore[operator]
            line = f.readline().decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise _not_utf8(src.path, 1) from e
    except (OSError, EOFError) as e:
        raise ReleaseError(f"{src.path}: cannot read the file ({e})",
                           hint="check that it is a complete, readable (gzip) file") from e
    if not line.strip():
        raise ReleaseError(f"{src.path}, line 1: no header line",
                           hint="the first line must name the columns, e.g. person_id,...")
    tabs, commas = line.count("\t"), line.count(",")
    if tabs and commas:
        raise ReleaseError(
            f"{src.path}, line 1: the header mixes tabs ({tabs}) and commas ({commas})",
            hint="separate all fields with one delimiter, tab or comma")
    if not tabs and not commas:
        raise ReleaseError(f"{src.path}, line 1: the header has no tab or comma delimiter",
                           hint="export comma- or tab-delimited text with a header line")
    src.delimiter = "\t" if tabs else ","
    src.header = next(csv.reader([line], delimiter=src.delimiter))
    seen: dict[str, str] = {}
    for h in src.header:
        key = h.strip().lower()
        if key and key in seen:
            raise ReleaseError(f"{src.path}, line 1: column {key} appears twice "
                               f"({seen[key]!r} and {h!r})", hint="remove one of them")
        seen[key] = h


def _not_utf8(path: Path, line: int | None) -> ReleaseError:
    where = f"{path}, line {line}" if line else str(path)
    return ReleaseError(f"{where}: the file is not UTF-8 text",
                        hint="Korean exports are often CP949/EUC-KR: convert with "
                             "`iconv -f CP949 -t UTF-8 IN > OUT` and load again")


# --- one table ---------------------------------------------------------------------------

def _load_table(con: duckdb.DuckDBPyConnection, src: _SourceFile, staging: Path,
                progress: bool) -> pa.Table:
    """Read one file into a memory-mapped Arrow table of the release's columns."""
    _read_header(src)
    cols = src.columns
    absent = [k for k in KEYS[src.table] if k not in cols]
    if absent:
        raise ReleaseError(
            f"{src.path}: no column {', '.join(absent)} (header: {', '.join(src.header)})",
            hint=f"OMOP table {src.table.upper()} requires it; check the header line")
    target = staging / f"{src.table}.arrow"
    attempts = [True, False] if src.delimiter == "\t" else [True]   # TSV: quotes optional
    failure: ReleaseError | None = None
    for quoted in attempts:
        src.quoted = quoted
        try:
            _stage(con, src, target, progress)
            break
        except duckdb.Error as e:
            err = _csv_error(src, e)
            if failure is None or _line_of(err) > _line_of(failure):
                failure = err
    else:
        assert failure is not None
        raise failure
    return ipc.open_file(pa.memory_map(str(target))).read_all()


def _relation(con: duckdb.DuckDBPyConnection, src: _SourceFile) -> duckdb.DuckDBPyRelation:
    """The file as text columns c0, c1, ... (one per header field) with the release's
    columns cast, plus ``__problem``/``__value`` naming the first bad value of a line.

    SQL is assembled from the schema's column names and c<i> only; the path travels as an
    argument of ``read_csv``.
    """
    quote = '"' if src.quoted else ""
    raw = con.read_csv(str(src.path), header=True, delimiter=src.delimiter, quotechar=quote,
                       escapechar=quote, auto_detect=False, strict_mode=True, comment="",
                       columns={f"c{i}": "VARCHAR" for i in range(len(src.header))})
    schema, where = TABLES[src.table], {c: i for i, c in enumerate(src.columns) if c}
    present = [f for f in schema if f.name in where]
    text = [f"nullif({'' if f.type == pa.string() else 'trim'}(c{where[f.name]}), '') "
            f"AS __raw_{f.name}" for f in present]
    cast = [f"__raw_{f.name}, {_cast(f'__raw_{f.name}', _SQL_TYPE[f.type])} AS {f.name}"
            for f in present]
    checks = [(f.name, f"__raw_{f.name} IS NOT NULL AND {f.name} IS NULL")
              for f in present if f.type != pa.string()]
    checks += [(k, f"__raw_{k} IS NULL") for k in KEYS[src.table]]
    problem = " ".join(f"WHEN {cond} THEN '{name}'" for name, cond in checks)
    value = " ".join(f"WHEN {cond} THEN __raw_{name}" for name, cond in checks)
    names = [f.name for f in present]
    if src.table == "visit_occurrence":
        kept = "visit_source_value" if "visit_source_value" in where else "NULL"
        whens = " ".join(f"WHEN {k} THEN '{v}'" for k, v in VISIT_SOURCE.items())
        derived = f"CASE visit_concept_id {whens} ELSE {kept} END AS visit_source_value"
        names = [n for n in names if n != "visit_source_value"] + [derived]
    return (raw.select(", ".join(text)).select(", ".join(cast))
            .select(", ".join(names) + f", CASE {problem} END AS __problem, "
                    f"CASE {value} END AS __value"))


def _cast(col: str, sql_type: str) -> str:
    """SQL casting a trimmed text column; NULL where the text does not parse.

    Whole numbers: DuckDB would round "1.5" to 2, so a value with a dot must be integral.
    Dates: DuckDB's cast takes YYYY-MM-DD with an optional time; YYYYMMDD is tried after.
    """
    if sql_type in ("BIGINT", "INTEGER"):
        return (f"CASE WHEN NOT contains({col}, '.') THEN try_cast({col} AS {sql_type}) "
                f"WHEN regexp_full_match({col}, '[+-]?[0-9]+[.]0*') "
                f"THEN try_cast(split_part({col}, '.', 1) AS {sql_type}) END")
    if sql_type == "DATE":
        return (f"coalesce(try_cast({col} AS DATE), CASE WHEN length({col}) = 8 "
                f"THEN CAST(try_strptime({col}, '%Y%m%d') AS DATE) END)")
    if sql_type == "DOUBLE":
        return f"try_cast({col} AS DOUBLE)"
    return col


def _stage(con: duckdb.DuckDBPyConnection, src: _SourceFile, target: Path,
           progress: bool) -> None:
    """Stream the cast rows into an Arrow IPC file; stop at the first bad value."""
    rel = _relation(con, src)
    out_schema: pa.Schema | None = None
    seen = 0
    label = f"{src.table} ({src.path.name})"
    with tqdm(desc=label, unit=" rows", unit_scale=True, disable=not progress, leave=False,
              file=sys.stderr) as bar, contextlib.ExitStack() as stack:
        writer: ipc.RecordBatchFileWriter | None = None
        for batch in _batches(rel):
            bad = batch.column("__problem")
            if bad.null_count < batch.num_rows:
                i = pc.index(pc.is_valid(bad), True).as_py()
                raise _value_error(src, seen + i, bad[i].as_py(),
                                   batch.column("__value")[i].as_py())
            batch = batch.drop_columns(["__problem", "__value"])
            if writer is None:
                out_schema = batch.schema
                writer = stack.enter_context(ipc.new_file(str(target), out_schema))
            writer.write_batch(batch)
            seen += batch.num_rows
            bar.update(batch.num_rows)
        if writer is None:   # no rows: an empty file with the columns
            names = [c for c in rel.columns if not c.startswith("__")]
            empty = pa.schema([TABLES[src.table].field(n) for n in names])
            with ipc.new_file(str(target), empty):
                pass


def _batches(rel: duckdb.DuckDBPyRelation) -> Iterator[pa.RecordBatch]:
    reader = rel.to_arrow_reader(_BATCH)
    while True:
        try:
            yield reader.read_next_batch()
        except StopIteration:
            return


# --- errors with file, line and column ---------------------------------------------------

def _value_error(src: _SourceFile, row: int, column: str, value: str | None) -> ReleaseError:
    """The error for data row ``row`` (0-based, blank lines skipped as DuckDB does)."""
    line = _physical_line(src, row + 2, count_blank=False)
    header = src.header[src.columns.index(column)].strip()
    where = f"{src.path}, line {line}, column {header}"
    if value is None:
        return ReleaseError(f"{where}: empty, but OMOP requires a value",
                            hint=f"fill {header} on every line (or remove the line)")
    sql_type = _SQL_TYPE[TABLES[src.table].field(column).type]
    return ReleaseError(f"{where}: {value!r} is not {_KIND[sql_type]}",
                        hint=f"{_HINT[sql_type]}; fix the value and load again")


_CSV_LINE = re.compile(r"CSV Error on Line: (\d+)")


def _csv_error(src: _SourceFile, e: duckdb.Error) -> ReleaseError:
    """A DuckDB CSV error as a ReleaseError with the physical line and a hint."""
    text = str(e)
    m = _CSV_LINE.search(text)
    line = _physical_line(src, int(m.group(1)), count_blank=True) if m else None
    where = f"{src.path}, line {line}" if line else str(src.path)
    if "Invalid unicode" in text or "not utf-8" in text:
        return _not_utf8(src.path, line)
    found = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
    delim = _DELIMITER_NAME[src.delimiter]
    if found:
        return ReleaseError(
            f"{where}: {found.group(2)} field(s) where the header has {found.group(1)} "
            f"({delim}-delimited)",
            hint=f"every line must use the header's delimiter ({delim}) and have as many "
                 "fields; quote values that contain the delimiter")
    if "unterminated quote" in text:
        return ReleaseError(f"{where}: a quoted value is not closed",
                            hint='close the quote, or double quotes inside a quoted value ("")')
    reason = next((ln.strip() for ln in text.splitlines()[1:] if ln.strip()
                   and not ln.startswith("Original Line")), text.splitlines()[0])
    return ReleaseError(f"{where}: cannot be read as {delim}-delimited text ({reason})",
                        hint="check the file is complete, UTF-8 and delimited like its header")


def _line_of(err: ReleaseError) -> int:
    m = re.search(r", line (\d+)", err.message)
    return int(m.group(1)) if m else 0


def _physical_line(src: _SourceFile, record: int, *, count_blank: bool) -> int:
    """The first physical line (1-based) of CSV record ``record`` (1 = the header)."""
    csv.field_size_limit(sys.maxsize)
    quoting = csv.QUOTE_MINIMAL if src.quoted else csv.QUOTE_NONE
    k, start = 0, 1
    try:
        with _open_text(src.path) as f:
            reader = csv.reader(f, delimiter=src.delimiter, quoting=quoting)
            for fields in reader:
                if fields or count_blank:
                    k += 1
                    if k == record:
                        return start
                start = reader.line_num + 1
    except (csv.Error, UnicodeDecodeError, OSError, EOFError):
        pass
    return record   # the file is too damaged to count lines: DuckDB's record number


# --- manifest ------------------------------------------------------------------------------

def _file_entry(src: _SourceFile, table: pa.Table) -> dict[str, Any]:
    ours = set(TABLES[src.table].names)
    return {
        "file": src.path.name, "sha256": sha256_file(src.path),
        "delimiter": _DELIMITER_NAME[src.delimiter],
        "compression": "gzip" if src.path.name.lower().endswith(".gz") else None,
        "quoting": src.quoted, "rows": table.num_rows,
        "columns_ignored": [c for c in src.columns if c not in ours],
        "columns_absent": [c for c in TABLES[src.table].names if c not in src.columns
                           and not (src.table == "visit_occurrence"
                                    and c == "visit_source_value")],
    }


def _notes(tables: dict[str, pa.Table]) -> list[str]:
    notes = ["empty strings are null; dates parsed from YYYY-MM-DD or YYYYMMDD, datetimes "
             "keep their date (time and time zone dropped); extra OMOP columns dropped, "
             "absent release columns null"]
    if "visit_occurrence" in tables:
        concept = tables["visit_occurrence"]["visit_concept_id"]
        other = concept.length() - pc.sum(pc.is_in(
            concept, value_set=pa.array(list(VISIT_SOURCE), pa.int64()))).as_py() \
            if concept.length() else 0
        notes.append("visit_source_value derived from visit_concept_id (9201 -> IP, "
                     "9202 -> OP, 9203 -> ER, 262 ER+IP -> IP); "
                     f"{other} of {concept.length()} visits have another visit concept and "
                     "keep the exported visit_source_value")
    return notes


def _cdm_version(con: duckdb.DuckDBPyConnection, csv_dir: Path,
                 sources: dict[str, _SourceFile]) -> dict[str, Any]:
    """CDM version from CDM_SOURCE if exported, else from version-specific columns."""
    info: dict[str, Any] = {"cdm_version": None, "cdm_version_evidence": None,
                            "cdm_source": None}
    for path in sorted(csv_dir.iterdir()):
        if table_of(path) == "cdm_source" and path.is_file():
            info["cdm_source"] = _first_row(con, _SourceFile(path, "cdm_source"))
            break
    version = (info["cdm_source"] or {}).get("cdm_version")
    if version:
        info["cdm_version"] = version.strip().lstrip("vV")
        info["cdm_version_evidence"] = "cdm_source.cdm_version"
        return info

    def found(only: dict[str, tuple[str, ...]]) -> list[str]:
        return [f"{t}.{c}" for t, cols in only.items() if t in sources
                for c in cols if c in sources[t].columns]

    v54, v53 = found(_V54_ONLY), found(_V53_ONLY)
    if v54 and not v53:
        info["cdm_version"], info["cdm_version_evidence"] = "5.4", ", ".join(v54)
    elif v53 and not v54:
        info["cdm_version"], info["cdm_version_evidence"] = "5.3", ", ".join(v53)
    elif v53 and v54:
        info["cdm_version_evidence"] = f"columns of both 5.3 ({', '.join(v53)}) and 5.4 " \
                                       f"({', '.join(v54)})"
    return info


def _first_row(con: duckdb.DuckDBPyConnection, src: _SourceFile) -> dict[str, Any] | None:
    """The first line of a small metadata file as text, or None if it cannot be read."""
    try:
        _read_header(src)
        rel = con.read_csv(str(src.path), header=True, delimiter=src.delimiter,
                           quotechar='"', escapechar='"', auto_detect=False, comment="",
                           columns={f"c{i}": "VARCHAR" for i in range(len(src.header))})
        rows = rel.limit(1).fetchall()
    except (ReleaseError, duckdb.Error):
        return None
    if not rows:
        return None
    return {c: v for c, v in zip(src.columns, rows[0], strict=True) if c and v not in (None, "")}
