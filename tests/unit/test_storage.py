"""Physical layout and storage: event tables clustered by concept in every writer, and the
DuckDB-native copy of a release gives exactly the rows of the Parquet views."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from cohort.builder import age, cohort, condition, drug, lifelog, measurement, screening
from cohort.engine import run
from workbench import catalog
from workbench.errors import ReleaseError
from workbench.release_io import write_release
from workbench.schema import CLUSTER_BY, table_file

DEFINITION = (
    cohort("T2D with glycaemia, LDL and steps")
    .entry(condition("KCD8", "E11").first(), prior_observation=365)
    .require("aged 40-79", age(40, 79))
    .require("HbA1c", measurement("LOINC", "4548-4", min=6.5).within(-365, 0))
    .exclude("insulin", drug("ATC", "A10A").within(-365, -1))
    .require("LDL", screening("ldl_cholesterol", min=100).within(-730, 0))
    .require("steps", lifelog("steps", "mean", max=9000, min_days=3).within(-365, 0))
    .build())


@pytest.mark.parametrize("name", sorted(CLUSTER_BY))
def test_synthetic_event_tables_are_clustered(small_release: Path, name: str) -> None:
    df = pl.read_parquet(small_release / table_file(name))
    keys = list(CLUSTER_BY[name])
    assert df.height > 0
    assert df.equals(df.sort(keys)), f"{name} is not in {keys} order"
    # ids are unique, so the order is total and the file deterministic
    assert df[keys[-1]].n_unique() == df.height


def test_concept_filter_reads_few_row_groups(small_release: Path) -> None:
    """The point of clustering: one concept's rows lie in a narrow band of row groups."""
    meta = pq.ParquetFile(small_release / table_file("condition_occurrence")).metadata
    col = meta.schema.names.index("condition_concept_id")
    spans = [(meta.row_group(i).column(col).statistics.min,
              meta.row_group(i).column(col).statistics.max) for i in range(meta.num_row_groups)]
    assert spans == sorted(spans)
    assert all(a <= b for a, b in spans)


def test_write_release_clusters_rows(tmp_path: Path) -> None:
    rows = [{"condition_occurrence_id": i, "person_id": p, "condition_concept_id": c,
             "condition_start_date": dt.date(2020, 1, d)}
            for i, (p, c, d) in enumerate([(2, 9, 1), (1, 9, 2), (1, 3, 3), (3, 3, 1)], 1)]
    write_release(tmp_path / "r", {"condition_occurrence": rows}, kind="fixture")
    got = pl.read_parquet(tmp_path / "r" / table_file("condition_occurrence"))
    assert got.select("condition_concept_id", "person_id").rows() == [(3, 1), (3, 3), (9, 1),
                                                                      (9, 2)]


@pytest.fixture(scope="module")
def native_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("native-cache")


def test_native_storage_gives_identical_results(small_release: Path, native_cache: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_CACHE", str(native_cache))
    with catalog.open(small_release, storage="parquet") as a:
        assert a.scalar("select count(*) from duckdb_views() where not internal") > 0
        pq_res = run(DEFINITION, a, cache="refresh")
        cond = a.sql("select * from condition_occurrence").pl()
    with catalog.open(small_release, storage="native") as b:
        assert b.scalar("select count(*) from duckdb_tables()") == len(b.tables)
        nat_res = run(DEFINITION, b, cache="refresh")
        assert b.sql("select * from condition_occurrence").pl().equals(cond)   # same order
    assert nat_res.step_persons == pq_res.step_persons
    assert nat_res.members.equals(pq_res.members)
    assert pq_res.step_persons[-1] > 0 and len(set(pq_res.step_persons)) > 2


def test_auto_uses_the_native_copy_once_built(small_release: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    with catalog.open(small_release) as c:     # no native copy yet: views
        assert c.scalar("select count(*) from duckdb_tables()") == 0
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "release", "cache",
                          str(small_release)], capture_output=True, text=True,
                         env={**os.environ, "WORKBENCH_CACHE": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert "native copy" in out.stdout
    with catalog.open(small_release) as c:
        assert c.scalar("select count(*) from duckdb_tables()") == len(c.tables)
    with catalog.open(small_release, storage="parquet") as c:
        assert c.scalar("select count(*) from duckdb_tables()") == 0


def test_native_copy_is_read_only_and_locked(small_release: Path, native_cache: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKBENCH_CACHE", str(native_cache))
    with catalog.open(small_release, storage="native") as c:
        with pytest.raises(Exception, match="read-only|Permission|disabled"):
            c.sql("delete from person")
        with pytest.raises(Exception, match="Permission|disabled|external"):
            c.sql("copy person to '/tmp/leak.csv'")


def test_unknown_storage_is_a_release_error(small_release: Path) -> None:
    with pytest.raises(ReleaseError, match="unknown storage"):
        catalog.open(small_release, storage="memory")  # type: ignore[arg-type]
