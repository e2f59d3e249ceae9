"""The release catalog: views match the files, the connection is read-only, and every kind of
damage to a release is caught with a ReleaseError that names the table or file."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workbench import catalog
from workbench.errors import ReleaseError
from workbench.manifest import sha256_file
from workbench.schema import GENOTYPE_INDEX, GENOTYPE_VCF, TABLES, table_file
from workbench.scopes import SCOPE_OF_TABLE


def _manifest(root: Path) -> dict[str, Any]:
    return json.loads((root / "manifest.json").read_text(encoding="utf-8"))


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def _open_error(root: Path, **kwargs: Any) -> ReleaseError:
    """Open a release that must fail; return the ReleaseError (never another type)."""
    with pytest.raises(ReleaseError) as info:
        catalog.open(root, **kwargs)
    err = info.value
    assert err.hint, f"ReleaseError without a hint: {err}"
    return err


def _scalar(cat: catalog.Catalog, query: str, params: Any = None) -> Any:
    rows = cat.sql(query, params).fetchall()
    assert len(rows) == 1 and len(rows[0]) == 1, rows
    return rows[0][0]


def _flip_byte(path: Path, offset: int) -> None:
    """Invert one byte in place (same size)."""
    with path.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def _rewrite_table(root: Path, name: str, change: Callable[[pa.Table], pa.Table]) -> None:
    """Rewrite one table's Parquet file and record its new sha256 (and rows) in the manifest,
    so only the schema check, not the checksum, can notice."""
    path = root / table_file(name)
    table = change(pq.read_table(path))
    pq.write_table(table, path)
    manifest = _manifest(root)
    manifest["tables"][name]["sha256"] = sha256_file(path)
    manifest["tables"][name]["rows"] = table.num_rows
    _write_manifest(root, manifest)


@pytest.fixture(scope="module")
def cat(small_release: Path) -> Iterator[catalog.Catalog]:
    with catalog.open(small_release) as c:
        yield c


@pytest.fixture
def copy(small_release: Path, tmp_path: Path) -> Path:
    """A private copy of the small release, free to corrupt."""
    dst = tmp_path / "release"
    shutil.copytree(small_release, dst)
    return dst


# --- a good release ---------------------------------------------------------------------------

def test_open_lists_every_table(cat: catalog.Catalog, small_release: Path) -> None:
    assert sorted(cat.tables) == sorted(TABLES)
    assert cat.path == small_release.resolve()
    assert cat.release_id == _manifest(small_release)["release_id"]
    assert cat.release_id.startswith("synth-")


@pytest.mark.parametrize("name", sorted(TABLES))
def test_view_count_matches_manifest_and_parquet_footer(cat: catalog.Catalog, small_release: Path,
                                                        name: str) -> None:
    """The manifest's row count is the file's; the view holds them all, except that a
    table of a consent scope holds the rows of persons with that consent, not withdrawn
    (tests/security/test_consent.py checks the rows themselves)."""
    count = _scalar(cat, f"select count(*) from {name}")
    listed = _manifest(small_release)["tables"][name]["rows"]
    footer = pq.read_metadata(small_release / table_file(name)).num_rows
    assert listed == footer
    scope = SCOPE_OF_TABLE.get(name)
    if scope is None:
        assert count == footer
    else:
        import polars as pl

        consent = pl.read_parquet(small_release / table_file("consent"))
        ok = consent.filter(pl.col(scope) & pl.col("withdrawal_date").is_null())["person_id"]
        rows = pl.read_parquet(small_release / table_file(name), columns=["person_id"])
        assert count == rows["person_id"].is_in(ok.implode()).sum() <= footer


def test_view_columns_follow_schema(cat: catalog.Catalog) -> None:
    cols = [r[0] for r in cat.sql("describe person").fetchall()]
    assert cols == TABLES["person"].names


def test_parameterised_query(cat: catalog.Catalog, small_release: Path) -> None:
    first = pq.read_table(small_release / table_file("person"), columns=["person_id"])[0][0]
    assert _scalar(cat, "select count(*) from person where person_id = ?", [first.as_py()]) == 1
    assert _scalar(cat, "select count(*) from person where person_id = ?", [-1]) == 0


@pytest.mark.parametrize("statement", ["create table scratch (a integer)",
                                       "create view scratch as select 1",
                                       "insert into person select * from person limit 1",
                                       "drop view person"])
def test_connection_is_read_only(cat: catalog.Catalog, statement: str) -> None:
    with pytest.raises(duckdb.Error):
        cat.connection.execute(statement)
    assert "scratch" not in {r[0] for r in cat.sql("show tables").fetchall()}
    assert _scalar(cat, "select count(*) from person") == 3_000


def test_file_resolves_vcf_and_index(cat: catalog.Catalog, small_release: Path) -> None:
    vcf = cat.file(GENOTYPE_VCF)
    assert vcf == small_release.resolve() / GENOTYPE_VCF
    assert vcf.is_file()
    assert vcf.read_bytes()[:2] == b"\x1f\x8b"          # BGZF is gzip
    assert cat.file(GENOTYPE_INDEX).is_file()


def test_file_not_in_manifest_is_a_release_error(cat: catalog.Catalog) -> None:
    with pytest.raises(ReleaseError, match="no-such.txt"):
        cat.file("no-such.txt")


def test_second_open_of_a_copy_works(copy: Path) -> None:
    """The checksum memo (first open) and the cached view database (second) agree."""
    for _ in range(2):
        with catalog.open(copy) as c:
            assert _scalar(c, "select count(*) from person") == 3_000
            assert c.path == copy.resolve()


# --- damaged files ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["person", "wearable_intraday_hr", "sample_link"])
def test_missing_parquet(copy: Path, name: str) -> None:
    (copy / table_file(name)).unlink()
    err = _open_error(copy)
    assert repr(name) in err.message
    assert table_file(name) in err.message
    assert "missing" in err.message


@pytest.mark.parametrize("rel", [GENOTYPE_VCF, GENOTYPE_INDEX])
def test_missing_listed_file(copy: Path, rel: str) -> None:
    (copy / rel).unlink()
    err = _open_error(copy)
    assert rel in err.message
    assert "missing" in err.message


def test_flipped_byte_in_parquet_is_checksum_mismatch(copy: Path) -> None:
    path = copy / table_file("measurement")
    _flip_byte(path, path.stat().st_size // 3)      # a data page; the footer still parses
    pq.read_schema(path)                             # precondition: only the checksum can tell
    err = _open_error(copy)
    assert "checksum mismatch" in err.message
    assert "'measurement'" in err.message
    assert table_file("measurement") in err.message


def test_appended_bytes_in_vcf_is_checksum_mismatch(copy: Path) -> None:
    with (copy / GENOTYPE_VCF).open("ab") as f:
        f.write(b"\0" * 16)
    err = _open_error(copy)
    assert "checksum mismatch" in err.message
    assert GENOTYPE_VCF in err.message


def test_appended_bytes_in_parquet_are_caught(copy: Path) -> None:
    with (copy / table_file("person")).open("ab") as f:
        f.write(b"garbage")
    err = _open_error(copy)
    assert "'person'" in err.message


def test_memo_does_not_hide_a_later_change(copy: Path) -> None:
    """verify="cached": a file verified once, then changed, is hashed again and fails."""
    catalog.open(copy).close()
    path = copy / table_file("drug_exposure")
    _flip_byte(path, 200)
    err = _open_error(copy)                          # default verify="cached"
    assert "checksum mismatch" in err.message
    assert "'drug_exposure'" in err.message


def test_memo_does_not_hide_a_later_append(copy: Path) -> None:
    catalog.open(copy).close()
    with (copy / GENOTYPE_INDEX).open("ab") as f:
        f.write(b"x")
    err = _open_error(copy)
    assert "checksum mismatch" in err.message
    assert GENOTYPE_INDEX in err.message


def test_full_catches_change_that_keeps_size_and_mtime(copy: Path) -> None:
    catalog.open(copy).close()
    path = copy / table_file("visit_occurrence")
    st = path.stat()
    _flip_byte(path, 300)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    err = _open_error(copy, verify="full")
    assert "checksum mismatch" in err.message
    assert "'visit_occurrence'" in err.message


def test_verify_none_skips_checksums(copy: Path) -> None:
    path = copy / table_file("measurement")
    _flip_byte(path, path.stat().st_size // 3)
    with catalog.open(copy, verify="none") as c:
        assert _scalar(c, "select count(*) from person") == 3_000
    assert "checksum mismatch" in _open_error(copy, verify="full").message


def test_verify_none_still_checks_schema(copy: Path) -> None:
    path = copy / table_file("person")
    table = pq.read_table(path)
    pq.write_table(table.append_column("nickname", pa.array(["x"] * table.num_rows)), path)
    err = _open_error(copy, verify="none")
    assert "unexpected column" in err.message
    assert "nickname" in err.message


def test_verify_none_still_checks_presence(copy: Path) -> None:
    (copy / table_file("death")).unlink()
    err = _open_error(copy, verify="none")
    assert "'death'" in err.message


# --- schema -----------------------------------------------------------------------------------

def test_extra_column(copy: Path) -> None:
    _rewrite_table(copy, "person", lambda t: t.append_column(
        "nickname", pa.array(["x"] * t.num_rows, pa.string())))
    err = _open_error(copy)
    assert "'person'" in err.message
    assert "unexpected column" in err.message
    assert "nickname" in err.message
    assert "checksum" not in err.message


def test_dropped_column(copy: Path) -> None:
    _rewrite_table(copy, "condition_occurrence",
                   lambda t: t.drop_columns(["condition_source_value"]))
    err = _open_error(copy)
    assert "'condition_occurrence'" in err.message
    assert "missing column" in err.message
    assert "condition_source_value" in err.message


def test_column_of_another_type(copy: Path) -> None:
    def retype(t: pa.Table) -> pa.Table:
        i = t.schema.get_field_index("year_of_birth")
        return t.set_column(i, "year_of_birth", t["year_of_birth"].cast(pa.string()))

    _rewrite_table(copy, "person", retype)
    err = _open_error(copy)
    assert "'person'" in err.message
    assert "year_of_birth" in err.message
    assert "string" in err.message                  # found
    assert "int32" in err.message                   # expected
    assert err.message.index("string") < err.message.index("int32")


def test_unlisted_parquet_file(copy: Path) -> None:
    shutil.copy(copy / table_file("location"), copy / "clinical" / "location_backup.parquet")
    err = _open_error(copy)
    assert "clinical/location_backup.parquet" in err.message


def test_unlisted_parquet_file_in_new_folder(copy: Path) -> None:
    (copy / "scratch").mkdir()
    shutil.copy(copy / table_file("location"), copy / "scratch" / "mine.parquet")
    err = _open_error(copy)
    assert "scratch/mine.parquet" in err.message


# --- the manifest -----------------------------------------------------------------------------

def test_manifest_missing(copy: Path) -> None:
    (copy / "manifest.json").unlink()
    err = _open_error(copy)
    assert "manifest.json" in err.message
    assert str(copy.resolve()) in err.message


@pytest.mark.parametrize("text", ["{not json", "", '{"release_id": "x",'])
def test_manifest_not_json(copy: Path, text: str) -> None:
    (copy / "manifest.json").write_text(text)
    err = _open_error(copy)
    assert "manifest.json" in err.message
    assert "not valid JSON" in err.message


@pytest.mark.parametrize("key", ["tables", "release_id", "schema_version"])
def test_manifest_lacking_key(copy: Path, key: str) -> None:
    manifest = _manifest(copy)
    del manifest[key]
    _write_manifest(copy, manifest)
    err = _open_error(copy)
    assert repr(key) in err.message
    assert "manifest.json" in err.message


def test_schema_version_not_supported(copy: Path) -> None:
    manifest = _manifest(copy)
    manifest["schema_version"] = "9.0"
    _write_manifest(copy, manifest)
    err = _open_error(copy)
    assert "9.0" in err.message
    assert "not supported" in err.message


def test_manifest_lists_unknown_table(copy: Path) -> None:
    manifest = _manifest(copy)
    manifest["tables"]["genome_scores"] = dict(manifest["tables"]["person"])
    _write_manifest(copy, manifest)
    err = _open_error(copy)
    assert "genome_scores" in err.message


def test_release_dir_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    err = _open_error(missing)
    assert str(missing) in err.message
    assert "does not exist" in err.message


def test_release_path_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "release"
    f.write_text("not a directory")
    err = _open_error(f)
    assert str(f) in err.message


# --- manifest structure: each damage is a ReleaseError naming the JSON path -------------------

@pytest.mark.parametrize("damage", [
    pytest.param(lambda m: 42, id="not-an-object"),
    pytest.param(lambda m: {**m, "tables": []}, id="tables-a-list"),
    pytest.param(lambda m: {**m, "files": None}, id="files-null"),
    pytest.param(lambda m: {**m, "tables": {**m["tables"],
                                            "person": {"path": table_file("person")}}},
                 id="entry-without-sha256"),
    pytest.param(lambda m: {**m, "tables": {**m["tables"], "person": {
        **m["tables"]["person"], "path": "../elsewhere/person.parquet"}}}, id="path-escapes"),
])
def test_malformed_manifest_structure(copy: Path, damage: Callable[[Any], Any]) -> None:
    _write_manifest(copy, damage(_manifest(copy)))
    err = _open_error(copy)
    assert "manifest.json" in err.message


def test_catalog_cannot_write_or_read_outside_the_release(small_release: Path,
                                                          tmp_path: Path) -> None:
    target = tmp_path / "leak.csv"
    with catalog.open(small_release) as cat:
        with pytest.raises(duckdb.Error, match="(?i)disabled|permission"):
            cat.connection.execute(f"COPY (SELECT * FROM person) TO '{target}'")
        with pytest.raises(duckdb.Error):
            cat.connection.execute("SET enable_external_access = true")
        assert cat.scalar("select count(*) from person") == 3_000
    assert not target.exists()
