"""The release catalog: a read-only DuckDB connection with one view per table, verified.

``open(release_dir)`` checks the release against its ``manifest.json`` before any query:
every listed file is present with the recorded sha256, every table's Parquet schema has
exactly the expected columns and types, no unlisted Parquet file lies in the release. Each
failure is a :class:`~workbench.errors.ReleaseError` naming the table or file and what to
do. Checksums of unchanged files (same size and mtime) are remembered in the workbench
cache so later opens are instant.

>>> import tempfile, pathlib
>>> from workbench.synth.build import build_release
>>> rel = pathlib.Path(tempfile.mkdtemp()) / "r"
>>> _ = build_release(rel, persons=200, genotyped=0, variants=0, seed=3, progress=False)
>>> with open(rel) as cat:
...     cat.scalar("select count(*) from person")
200
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from workbench.atomic import recover_dir, remove_dead_temps, temp_name
from workbench.errors import ReleaseError
from workbench.manifest import MANIFEST, read_manifest, sha256_file
from workbench.schema import GENOTYPE_VCF, SCHEMA_VERSION, TABLES
from workbench.scopes import RAW_PREFIX, SCOPE_OF_TABLE, scoped_select

if TYPE_CHECKING:
    import polars as pl

    from workbench.project import Project

Verify = Literal["cached", "full", "none"]
Storage = Literal["auto", "parquet", "native"]

# The carrier table: every non-reference call of the release's VCF, one row per (sample,
# variant), built with Hail by genomics.carriers; opened as the view CARRIER_TABLE.
CARRIER_TABLE = "genotype_carrier"
CARRIER_SCHEMA = pa.schema([("sample_id", pa.string()), ("contig", pa.string()),
                            ("position", pa.int32()), ("ref", pa.string()),
                            ("alt", pa.string()), ("n_alt", pa.int8())])
CARRIERS_VERSION = "1"
VIEWS_VERSION = "2"      # 2: tables of a consent scope are views of consented rows


def cache_dir() -> Path:
    """The workbench cache: $WORKBENCH_CACHE, else ~/.cache/biobank-workbench."""
    root = os.environ.get("WORKBENCH_CACHE") or Path.home() / ".cache" / "biobank-workbench"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Catalog:
    """An opened, verified release. Use as a context manager or call ``close()``."""

    path: Path
    manifest: dict[str, Any]
    connection: duckdb.DuckDBPyConnection
    tables: list[str] = field(default_factory=list)
    derived: list[str] = field(default_factory=list)   # views of workbench-built tables
    project: Project | None = None     # an Open Lab project: only its granted views

    @property
    def release_id(self) -> str:
        return self.manifest["release_id"]

    def sql(self, query: str, params: Any = None) -> duckdb.DuckDBPyRelation:
        """A (lazy) relation over the release's views; values travel as ``params``."""
        return self.connection.sql(query, params=params)

    def scalar(self, query: str, params: Any = None) -> Any:
        """The first column of the first row of a query (None if no row)."""
        rows = self.sql(query, params).fetchall()
        return rows[0][0] if rows else None

    def has(self, table: str) -> bool:
        return table in self.tables or table in self.derived

    def frame(self, query: str, params: Any = None) -> pl.DataFrame:
        """A query's result as a Polars frame; a damaged release file is a ReleaseError
        naming it (see :meth:`reading`)."""
        with self.reading():
            return self.sql(query, params).pl()

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """DuckDB's failure to read one of the release's files (damaged after ``open``
        verified it, or opened with ``verify="none"``) as a ReleaseError naming the file.

        >>> import tempfile, pathlib
        >>> from workbench.synth.build import build_release
        >>> rel = pathlib.Path(tempfile.mkdtemp()) / "r"
        >>> _ = build_release(rel, persons=100, genotyped=0, variants=0, seed=3, progress=False)
        >>> cat = open(rel)
        >>> _ = (rel / "clinical" / "person.parquet").write_bytes(b"PAR1 no longer")
        >>> try:
        ...     with cat.reading():
        ...         cat.scalar("select count(*) from person")
        ... except ReleaseError as e:
        ...     print(e.message[:60])
        release file clinical/person.parquet cannot be read: Invalid
        """
        try:
            yield
        except duckdb.Error as e:
            text = str(e)
            root = str(self.path) + os.sep
            named = [f[len(root):] for f in re.findall(r"""["']([^"']+)["']""", text)
                     if f.startswith(root)]
            # DuckDB does not always say which file ("Corrupted file?"): the ones that
            # differ from the manifest are the suspects (hashed only on this error path)
            files = named[:1] or self.changed_files()
            if not files:
                raise
            raise ReleaseError(
                f"release file {', '.join(files)} cannot be read: "
                f"{text.splitlines()[0][:300]}",
                hint="the file is damaged or changed since the release was built; "
                     "`workbench release info` checks every file against the manifest; "
                     "restore or rebuild the release") from e

    def changed_files(self) -> builtins.list[str]:
        """The release's files (relative paths) whose sha256 is not the manifest's."""
        want = {e["path"]: e["sha256"] for e in self.manifest["tables"].values()}
        want |= {rel: e["sha256"] for rel, e in self.manifest.get("files", {}).items()}
        return [rel for rel, sha in want.items() if not (self.path / rel).is_file()
                or sha256_file(self.path / rel) != sha]

    def file(self, rel: str) -> Path:
        """Absolute path of a non-table file listed in the manifest (e.g. the VCF)."""
        if rel not in self.manifest.get("files", {}):
            raise ReleaseError(f"release {self.path} has no file {rel!r}",
                               hint="this release was built without genotypes")
        return self.path / rel

    def cursor(self) -> Catalog:
        """The catalog on a private cursor of its connection, for use on another thread.

        A DuckDB connection must not run two queries at once; a cursor is a connection of
        its own to the same database. Temporary views (the carrier table) are per
        connection, so they are opened on the cursor again. Close the returned catalog
        after use (the original stays open).
        """
        cur = self.connection.cursor()
        derived = (_carrier_view(cur, carrier_table_path(self.manifest))
                   if self.derived else [])
        return replace(self, connection=cur, derived=derived)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open(release_dir: Path | str, *, verify: Verify = "cached",  # noqa: A001
         storage: Storage | None = None,
         project: Project | Path | str | None = None) -> Catalog:
    """Verify a release against its manifest and open it read-only (see module docstring).

    ``verify``: "cached" (default) re-hashes only files whose size or mtime changed since
    they were last verified; "full" re-hashes everything; "none" skips checksums (schemas
    and presence are always checked).

    ``storage``: "parquet" queries the release's Parquet files through views; "native"
    queries a DuckDB-native copy in the workbench cache, built on first use (once per
    release: about 45 s and 2 GB per million persons; 2-3x faster scans, like indexes on
    a server); "auto" (default, or $WORKBENCH_STORAGE) uses the native copy when it was
    built already (``workbench release cache DIR``), else Parquet. Results are identical.

    ``project`` (a :class:`~workbench.project.Project`, or its folder or file; default:
    the session's, see :mod:`workbench.access`): the catalog has views of the project's
    granted tables only, each with its granted columns only (always over Parquet), and
    the project's tier caps the session's.
    """
    root = Path(release_dir).resolve()
    manifest = load_manifest(root)
    tables = check_release(root, manifest, verify=verify)
    grant = _project(project, manifest)
    if grant is not None:
        return _open_project(root, manifest, tables, grant)
    storage = storage or os.environ.get("WORKBENCH_STORAGE") or "auto"   # type: ignore[assignment]
    if storage not in ("auto", "parquet", "native"):
        raise ReleaseError(f"unknown storage {storage!r}",
                           hint="use auto, parquet or native ($WORKBENCH_STORAGE)")
    native = native_database_path(root, manifest, tables)
    if storage == "native" or (storage == "auto" and native.exists()):
        db = build_native_database(root, manifest, tables)
    else:
        db = _view_database(root, manifest, tables)
    con, derived = _connect(db, root, carrier_table_path(manifest))
    return Catalog(root, manifest, con, tables, derived)


def _connect(db: Path, root: Path, carriers: Path | None
             ) -> tuple[duckdb.DuckDBPyConnection, builtins.list[str]]:
    """The view database opened read-only, with the carrier view (when built) and the
    connection locked down to the release; (connection, derived view names)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        derived = _carrier_view(con, carriers)
        _lock_down(con, root, [carriers] if carriers else [])
    except BaseException:
        con.close()
        raise
    return con, derived


def _project(project: Project | Path | str | None, manifest: dict[str, Any]) -> Project | None:
    from workbench import access
    from workbench.project import Project, load_project

    session = access.current(manifest)
    if project is None:
        return access.project_of(session)
    grant = project if isinstance(project, Project) else load_project(project)
    return access.check_member(session, grant)


def _open_project(root: Path, manifest: dict[str, Any], tables: builtins.list[str],
                  grant: Project) -> Catalog:
    """The release as the project sees it: a view per granted table, of granted columns."""
    columns = {t: cols for t in tables if (cols := grant.columns(t)) is not None}
    carriers = carrier_table_path(manifest) if grant.columns(CARRIER_TABLE) else None
    con, derived = _connect(_view_database(root, manifest, tables, columns), root, carriers)
    return Catalog(root, manifest, con, builtins.list(columns), derived, grant)


def carrier_table_path(manifest: dict[str, Any]) -> Path | None:
    """Where the release's carrier table lives (or will, once built) in the workbench
    cache, keyed by the VCF's checksum; None for a release without genotypes.

    >>> carrier_table_path({"files": {}}) is None
    True
    >>> carrier_table_path({"files": {GENOTYPE_VCF: {"sha256": "ab12"}}}).parent.name
    'carriers'
    """
    vcf = manifest.get("files", {}).get(GENOTYPE_VCF)
    if vcf is None:
        return None
    key = hashlib.sha256(f"carriers|{CARRIERS_VERSION}|{vcf['sha256']}".encode()).hexdigest()
    return cache_dir() / "genomics" / "carriers" / f"{key[:20]}.parquet"


def _carrier_view(con: duckdb.DuckDBPyConnection, path: Path | None) -> builtins.list[str]:
    """A temporary view of the carrier table when it was built; its name, or nothing."""
    if path is None or not path.is_file():
        return []
    try:
        found = pq.read_schema(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise ReleaseError(f"carrier table {path} is not a readable Parquet file ({e})",
                           hint="rebuild it: `workbench genomics carriers --refresh`") from e
    kinds = [(f.name, pa.string() if f.type == pa.large_string() else f.type) for f in found]
    if kinds != [(f.name, f.type) for f in CARRIER_SCHEMA]:
        want = ", ".join(f"{f.name} {f.type}" for f in CARRIER_SCHEMA)
        raise ReleaseError(f"carrier table {path} has columns {found.names}, expected {want}",
                           hint="rebuild it: `workbench genomics carriers --refresh`")
    con.execute(_view_sql(CARRIER_TABLE, path, temporary=True))
    return [CARRIER_TABLE]


def _lock_down(con: duckdb.DuckDBPyConnection, root: Path, files: Sequence[Path] = ()) -> None:
    """Reads only inside the release (and the workbench-built ``files`` derived from it,
    such as the carrier table); no COPY TO, no other files, so results leave through the
    workbench's checked paths only. DuckDB cannot switch this back on once off.

    Connections to the same view file in one process share a DuckDB instance, which a
    previous ``open`` may already have locked to this release: that is accepted.
    """
    if con.sql("select current_setting('enable_external_access')").fetchall()[0][0]:
        con.execute("SET allowed_directories = ?", [[str(root) + os.sep]])
        if files:
            con.execute("SET allowed_paths = ?", [[str(f) for f in files]])
        con.execute("SET enable_external_access = false")
        return
    allowed = con.sql("select current_setting('allowed_directories')").fetchall()[0][0]
    paths = con.sql("select current_setting('allowed_paths')").fetchall()[0][0]
    if str(root) + os.sep not in allowed or any(str(f) not in paths for f in files):
        raise ReleaseError(f"catalog for {root} is locked to other directories {allowed} "
                           f"and files {paths}",
                           hint="close other catalogs of this release and open it again")


def load_manifest(root: Path) -> dict[str, Any]:
    if not root.is_dir() and root.parent.is_dir():
        # a release build killed while swapping releases (where the two cannot be
        # exchanged in one step) left the previous release beside: put it back
        recover_dir(root)
    if not root.is_dir():
        raise ReleaseError(f"release directory {root} does not exist",
                           hint="build one with `workbench release synth --out DIR`")
    if not (root / MANIFEST).is_file():
        raise ReleaseError(f"{root} has no {MANIFEST}; it is not a release directory",
                           hint="point at the directory that `workbench release synth` wrote")
    try:
        manifest = read_manifest(root)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ReleaseError(f"{root / MANIFEST} is not valid JSON ({e})",
                           hint="the manifest is corrupt; rebuild or restore the release") from e
    _check_manifest_shape(root / MANIFEST, manifest)
    major = str(manifest["schema_version"]).split(".")[0]
    if major != SCHEMA_VERSION.split(".")[0]:
        raise ReleaseError(
            f"release schema version {manifest['schema_version']} is not supported "
            f"(this workbench reads {SCHEMA_VERSION})",
            hint="rebuild the release with this workbench version")
    return manifest


_RELEASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _check_manifest_shape(path: Path, manifest: Any) -> None:
    """Structure of manifest.json, each problem named by its JSON path."""
    def bad(where: str, what: str) -> ReleaseError:
        return ReleaseError(f"{path}: {where} {what}",
                            hint="the manifest is damaged or incomplete; rebuild the release")

    if not isinstance(manifest, dict):
        raise bad("the top level", f"is a {type(manifest).__name__}, expected an object")
    for key in ("release_id", "schema_version", "tables"):
        if key not in manifest:
            raise bad("the top level", f"lacks the key {key!r}")
    rid = manifest["release_id"]
    if not isinstance(rid, str) or not _RELEASE_ID.fullmatch(rid):
        # it names cache files and a PostgreSQL schema: nothing else may ride in on it
        raise bad("release_id", f"{str(rid)[:80]!r} is not a release id (letters, digits, "
                                "'.', '_', '-'; at most 100)")
    for key in ("tables", "files"):
        if key in manifest and not isinstance(manifest[key], dict):
            raise bad(key, f"is a {type(manifest[key]).__name__}, expected an object")
    for section in ("tables", "files"):
        for name, entry in manifest.get(section, {}).items():
            keys = ("path", "sha256", "rows") if section == "tables" else ("sha256",)
            if not isinstance(entry, dict):
                raise bad(f"{section}.{name}", "is not an object")
            for key in keys:
                want = int if key == "rows" else str
                if not isinstance(entry.get(key), want):
                    raise bad(f"{section}.{name}", f"lacks a valid {key!r}")
            rel = Path(entry.get("path", name))
            if rel.is_absolute() or ".." in rel.parts:
                raise bad(f"{section}.{name}.path", f"{str(rel)!r} points outside the release")


def check_release(root: Path, manifest: dict[str, Any], *, verify: Verify = "cached") -> list[str]:
    """All checks of the module docstring; returns the names of the tables present."""
    listed = manifest["tables"]
    unknown = sorted(set(listed) - set(TABLES))
    if unknown:
        raise ReleaseError(f"manifest lists unknown table(s) {', '.join(unknown)}",
                           hint="the release was made by a newer workbench; upgrade")
    for name, entry in listed.items():
        path = root / entry["path"]
        if not path.is_file():
            raise ReleaseError(f"table {name!r}: file {entry['path']} is missing from {root}",
                               hint="the release is incomplete; rebuild or restore it")
        _check_schema(name, path)
    for rel in manifest.get("files", {}):
        if not (root / rel).is_file():
            raise ReleaseError(f"file {rel} listed in the manifest is missing from {root}",
                               hint="the release is incomplete; rebuild or restore it")
    expected = {e["path"] for e in listed.values()}
    extra = sorted(str(p.relative_to(root)) for p in root.rglob("*.parquet")
                   if str(p.relative_to(root)) not in expected)
    if extra:
        raise ReleaseError(f"{root} holds Parquet file(s) not in its manifest: {', '.join(extra)}",
                           hint="remove them, or rebuild the release so the manifest lists them")
    if verify != "none":
        _check_checksums(root, manifest, full=verify == "full")
    return sorted(listed)


def _check_schema(name: str, path: Path) -> None:
    try:
        found = pq.read_schema(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise ReleaseError(f"table {name!r}: {path} is not a readable Parquet file ({e})",
                           hint="the file is damaged; rebuild or restore the release") from e
    want = TABLES[name]
    missing = [f.name for f in want if f.name not in found.names]
    extra = [n for n in found.names if n not in want.names]
    wrong = [f"{f.name} is {found.field(f.name).type}, expected {f.type}" for f in want
             if f.name in found.names and found.field(f.name).type != f.type]
    problems = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + \
               ([f"unexpected column(s) {', '.join(extra)}"] if extra else []) + wrong
    if problems:
        raise ReleaseError(f"table {name!r} ({path.name}): " + "; ".join(problems),
                           hint="the file does not match schema "
                                f"{SCHEMA_VERSION}; rebuild the release or fix the loader")


def _check_checksums(root: Path, manifest: dict[str, Any], *, full: bool) -> None:
    entries = [(f"table {n!r}", e["path"], e["sha256"]) for n, e in manifest["tables"].items()]
    entries += [(f"file {rel}", rel, e["sha256"]) for rel, e in manifest.get("files", {}).items()]
    memo_path = cache_dir() / "verified-checksums.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, json.JSONDecodeError):
        memo = {}
    changed = False
    for what, rel, want in entries:
        path = root / rel
        st = path.stat()
        key = f"{path}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}"
        got = memo.get(key) if not full else None
        if got is None:
            got = sha256_file(path)
            memo[key] = got
            changed = True
        if got != want:
            raise ReleaseError(
                f"{what}: checksum mismatch for {rel} (manifest {want[:12]}..., "
                f"file {got[:12]}...)",
                hint="the file changed after the release was built; restore it or rebuild")
    if changed:
        _write_atomic(memo_path, json.dumps(memo))


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _catalog_key(root: Path, manifest: dict[str, Any], tables: builtins.list[str]) -> str:
    """Cache key of a release's catalog files: its path, release id and tables (and the
    version of how views are made: consent-scoped since v2)."""
    key = f"{root}|{manifest['release_id']}|{tables}|{VIEWS_VERSION}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _view_database(root: Path, manifest: dict[str, Any], tables: builtins.list[str],
                   columns: dict[str, tuple[str, ...]] | None = None) -> Path:
    """A small DuckDB file holding only views over the release's Parquet files; with
    ``columns``, of those tables only and those columns only (a project's grants)."""
    key = _catalog_key(root, manifest, tables)
    if columns is not None:
        grant = json.dumps(sorted(columns.items()))
        key = f"project-{hashlib.sha256(f'{key}|{grant}'.encode()).hexdigest()[:16]}"
    db = cache_dir() / "catalogs" / f"{key}.duckdb"
    if db.exists():
        return db
    db.parent.mkdir(parents=True, exist_ok=True)
    tmp = db.with_name(f"{db.stem}.{os.getpid()}.tmp.duckdb")
    con = duckdb.connect(str(tmp))
    consent = _consent_path(root, manifest, tables)
    try:
        for name in tables if columns is None else columns:
            path = root / manifest["tables"][name]["path"]
            con.execute(_view_sql(name, path, columns=None if columns is None
                                  else columns[name], consent=consent))
    finally:
        con.close()
    os.replace(tmp, db)
    return db


def native_database_path(root: Path, manifest: dict[str, Any],
                         tables: builtins.list[str]) -> Path:
    return cache_dir() / "catalogs" / f"native-{_catalog_key(root, manifest, tables)}.duckdb"


def build_native_database(root: Path, manifest: dict[str, Any], tables: builtins.list[str],
                          *, progress: bool = False) -> Path:
    """A DuckDB-native copy of the release's tables (same rows, same order), in the cache.

    Built once per release into a temp file and renamed into place, so a killed build
    leaves nothing half-written; later opens reuse it. The release's row order (event
    tables clustered by concept) is kept, so DuckDB's zone maps skip unrelated rows.
    """
    db = native_database_path(root, manifest, tables)
    if db.exists():
        return db
    from tqdm import tqdm

    db.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temps(db)    # a copy killed half-way is as large as the release
    tmp = db.with_name(f"{temp_name(db)}tmp.duckdb")
    con = duckdb.connect(str(tmp), config={"preserve_insertion_order": True})
    try:
        consent = _consent_path(root, manifest, tables)
        for name in tqdm(tables, desc="native copy of the release", disable=not progress,
                         leave=False):
            path = root / manifest["tables"][name]["path"]
            select = exp.select("*").from_(exp.func("read_parquet",
                                                    exp.Literal.string(str(path))))
            scoped = consent is not None and name in SCOPE_OF_TABLE
            stored = f"{RAW_PREFIX}{name}" if scoped else name
            con.execute(exp.Create(this=exp.to_table(stored), kind="TABLE",
                                   expression=select).sql("duckdb"))
        for name in tables:       # views of consented rows over the scoped tables
            if consent is not None and name in SCOPE_OF_TABLE:
                view = scoped_select(name, exp.to_table(f"{RAW_PREFIX}{name}"),
                                     exp.to_table("consent"))
                con.execute(exp.Create(this=exp.to_table(name), kind="VIEW",
                                       expression=view).sql("duckdb"))
        con.execute("CHECKPOINT")
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        raise
    con.close()
    os.replace(tmp, db)
    return db


def _consent_path(root: Path, manifest: dict[str, Any],
                  tables: builtins.list[str]) -> Path | None:
    """The release's consent table file (None without one: nothing to scope by)."""
    return root / manifest["tables"]["consent"]["path"] if "consent" in tables else None


def _view_sql(name: str, path: Path, *, temporary: bool = False,
              columns: Sequence[str] | None = None, consent: Path | None = None) -> str:
    """CREATE VIEW name AS SELECT * (or ``columns``) FROM read_parquet('path'), built with
    sqlglot; with ``consent`` (its Parquet file), a table of a consent scope keeps only the
    rows of persons who consented to it and did not withdraw (:mod:`workbench.scopes`).

    >>> _view_sql("person", Path("/r/it's/person.parquet"))
    "CREATE VIEW person AS SELECT * FROM READ_PARQUET('/r/it''s/person.parquet')"
    >>> _view_sql("person", Path("/r/person.parquet"), columns=["person_id"])
    "CREATE VIEW person AS SELECT person_id FROM READ_PARQUET('/r/person.parquet')"
    """
    source = exp.func("read_parquet", exp.Literal.string(str(path)))
    if consent is not None and name in SCOPE_OF_TABLE:
        select = scoped_select(name, source, exp.func(
            "read_parquet", exp.Literal.string(str(consent))), columns)
    else:
        cols = [exp.column(c) for c in columns] if columns is not None else ["*"]
        select = exp.select(*cols).from_(source)
    props = exp.Properties(expressions=[exp.TemporaryProperty()]) if temporary else None
    return exp.Create(this=exp.to_table(name), kind="VIEW", expression=select,
                      properties=props).sql("duckdb")
