"""kill -9 while a cohort is materialised on disk: `workbench cohort members --out` (the
members Parquet file) and `workbench release cache` (the DuckDB-native copy queries run
on). The previous file stays byte for byte, a killed writer's temp file is never read as
the output, and the next run cleans up and writes a whole one.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import polars as pl
import pytest
from _proc import digest, hidden, kill_after, run, script, self_kill_code, start
from polars.testing import assert_frame_equal

from cohort import io
from cohort.builder import age, cohort, condition, drug
from cohort.engine import run as run_cohort
from workbench import catalog

A = cohort("t2d").entry(condition("KCD8", "E11")).require("adult", age(18, None)).build()
B = (cohort("hypertension on statins").entry(condition("KCD8", "I10"))
     .require("statin", drug("ATC", "C10AA").within(-365, 365)).build())


@pytest.fixture
def definitions(tmp_path: Path) -> tuple[Path, Path]:
    return io.save(A, tmp_path / "a.json"), io.save(B, tmp_path / "b.json")


def _members(definition: Path, release: Path, out: Path) -> list[str]:
    return ["-m", "workbench.cli", "cohort", "members", str(definition), "--release",
            str(release), "--out", str(out)]


def test_kill_during_cohort_members_keeps_the_previous_file(
        small_release: Path, tmp_path: Path, definitions, rng: random.Random,
        survived) -> None:
    a_json, b_json = definitions
    out = tmp_path / "members.parquet"
    env = {**os.environ, "WORKBENCH_TIER": "controlled"}
    run(_members(a_json, small_release, out), env=env)
    before = digest(out)
    with catalog.open(small_release) as cat:
        want_a, want_b = run_cohort(A, cat).members, run_cohort(B, cat).members
    assert_frame_equal(pl.read_parquet(out), want_a)
    t0 = time.monotonic()
    run(_members(b_json, small_release, tmp_path / "timing.parquet"), env=env)
    full = time.monotonic() - t0
    states = []
    for _ in range(4):
        delay = rng.uniform(0.2 * full, 1.05 * full)
        killed = kill_after(start(_members(b_json, small_release, out), env=env), delay)
        got = pl.read_parquet(out)       # always a whole Parquet file: A's or B's
        if digest(out) == before:
            assert_frame_equal(got, want_a)
            states.append((round(delay, 2), killed, "previous"))
        else:
            assert_frame_equal(got, want_b)
            states.append((round(delay, 2), killed, "new"))
            run(_members(a_json, small_release, out), env=env)
            before = digest(out)
        if killed:
            survived.append(f"cohort members: random kill {delay:.2f} s in")
    print(f"cohort members kills (full run {full:.1f} s):", states)

    # halfway through the Parquet bytes
    code = self_kill_code() + f"""
import sys
import polars as pl
def write_parquet(self, path, *a, **k):
    open(path, "wb").write(b"PAR1" + b"\\0" * 100)
    die()
pl.DataFrame.write_parquet = write_parquet
from workbench.cli import app
sys.argv = ["workbench"] + {_members(b_json, small_release, out)[2:]!r}
app()
"""
    proc = start(script(code), env=env)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -9, err.decode()[-2000:]
    survived.append("cohort members: injected kill halfway through the Parquet file")
    assert digest(out) == before
    litter = hidden(tmp_path, out.name)
    assert litter and all(n.endswith(".tmp") for n in litter), litter
    run(_members(b_json, small_release, out), env=env)     # the next run
    assert_frame_equal(pl.read_parquet(out), want_b)
    assert hidden(tmp_path, out.name) == []


def test_kill_during_the_native_copy(small_release: Path, tmp_path: Path,
                                     rng: random.Random, survived) -> None:
    """A killed `workbench release cache` leaves no native copy that a query would use;
    queries fall back to Parquet with the same results, and the next run builds it."""
    cache = tmp_path / "cache"
    env = {**os.environ, "WORKBENCH_CACHE": str(cache)}
    code = self_kill_code() + f"""
import sys, types
import duckdb
from workbench import catalog
class Connection:
    n = 0
    def __init__(self, con):
        self.con = con
    def execute(self, sql, *a, **k):
        if sql.startswith("CREATE TABLE"):
            Connection.n += 1
            if Connection.n == {rng.randint(2, 12)}:
                die()
        return self.con.execute(sql, *a, **k)
    def __getattr__(self, name):
        return getattr(self.con, name)
catalog.duckdb = types.SimpleNamespace(
    connect=lambda *a, **k: Connection(duckdb.connect(*a, **k)))
from workbench.cli import app
sys.argv = ["workbench", "release", "cache", {str(small_release)!r}]
app()
"""
    proc = start(script(code), env=env)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -9, err.decode()[-2000:]
    survived.append("native copy: injected kill between two tables")
    catalogs = cache / "catalogs"
    assert not list(catalogs.glob("native-*")), "a partial native copy looks whole"
    assert list(catalogs.glob(".native-*tmp.duckdb*")), "no temp file: killed too late?"
    code = f"""
import json, sys
from workbench import catalog
from cohort.engine import run
from cohort import io
with catalog.open({str(small_release)!r}, storage=sys.argv[1]) as cat:
    r = run(io.loads({B.model_dump_json()!r}), cat)
    print(json.dumps([r.members.height, r.step_persons]))
"""
    fallback = run(script(code, "auto"), env=env).stdout
    native = run(script(code, "native"), env=env).stdout      # the next run builds it
    assert fallback == native
    assert len(list(catalogs.glob("native-*.duckdb"))) == 1
    assert not list(catalogs.glob(".native-*")), "the next run left the dead copy's temp"
