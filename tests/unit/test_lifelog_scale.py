"""Dense lifelog for scale releases (build_release(lifelog_days=..., wearers=...)): every
person (or a fraction) wears a device over the last N days of observation; the default
build is unchanged to the byte."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

import workbench.synth.build as build_mod
from workbench.errors import UsageError
from workbench.synth.build import build_release

CUT = dt.date(2024, 12, 31)
DAYS = 60
PERSONS = 400

# Table checksums of the default build (300 persons, seed 42, no genomes) as they were
# before the dense option existed: the default must not move.
DEFAULT_SHA = {
    "wearable_daily": "48b3a3ad8f0a6e79a527005120f545d7f5a835ee257cb0d161ac15620d204d67",
    "wearable_intraday_hr": "6de59e7e70d703fd18c5234c1c3279bec4e8f2501482a47f8df2c986ccd6829d",
    "consent": "3facb510092935751db75a270f560a6f37270a99bda7deb9a801995bc31ce356",
    "person": "b1e4d33cea878c5e48be21b783da0460ff1893180b8df2619967ca946a4ae819",
}


@pytest.fixture(scope="module")
def dense(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("dense") / "release"
    m = build_release(out, persons=PERSONS, genotyped=0, variants=0, seed=5, progress=False,
                      lifelog_days=DAYS)
    return out, m


def _sql(rel: Path, query: str) -> list[tuple]:
    con = duckdb.connect()
    for t in ("wearable_daily", "wearable_intraday_hr", "observation_period", "death", "person"):
        path = next(rel.glob(f"*/{t}.parquet"))
        con.execute(f"create view {t} as select * from read_parquet('{path}')")
    return con.execute(query).fetchall()


def test_default_build_is_unchanged(tmp_path: Path) -> None:
    m = build_release(tmp_path / "r", persons=300, genotyped=0, variants=0, seed=42,
                      progress=False)
    assert {t: m["tables"][t]["sha256"] for t in DEFAULT_SHA} == DEFAULT_SHA
    assert set(m["generator"]["arguments"]) == {"persons", "genotyped", "variants", "seed"}


def test_dense_rows_are_persons_x_observed_days_x_wear_probability(dense) -> None:
    rel, m = dense
    # observed days of the window: observation periods cut to the window and to death
    (observed,) = _sql(rel, f"""
        select sum(greatest(0, datediff('day',
                   greatest(o.observation_period_start_date, date '{CUT}' - {DAYS - 1}),
                   least(o.observation_period_end_date, coalesce(d.death_date, date '{CUT}'),
                         date '{CUT}')) + 1))
        from observation_period o left join death d using (person_id)""")[0]
    rows = m["tables"]["wearable_daily"]["rows"]
    assert PERSONS * DAYS * 0.7 < observed <= PERSONS * DAYS
    assert 0.76 < rows / observed < 0.84          # Beta(8, 2) wear probability, mean 0.8
    assert m["generator"]["arguments"]["lifelog_days"] == DAYS
    assert m["generator"]["arguments"]["wearers"] == 1.0


def test_dense_dates_lie_in_the_window_and_in_observation(dense) -> None:
    rel, _ = dense
    lo, hi, outside = _sql(rel, """
        select min(date), max(date), count(*) filter (where not exists (
            select 1 from observation_period o where o.person_id = w.person_id
            and w.date between o.observation_period_start_date
                           and o.observation_period_end_date)
            or w.date > (select min(death_date) from death d where d.person_id = w.person_id))
        from wearable_daily w""")[0]
    assert lo >= CUT - dt.timedelta(days=DAYS - 1) and hi == CUT
    assert outside == 0


def test_dense_rows_are_person_major_and_date_ordered(dense) -> None:
    rel, _ = dense
    t = pq.read_table(next(rel.glob("*/wearable_daily.parquet")), columns=["person_id", "date"])
    p = t["person_id"].to_numpy()
    d = t["date"].to_numpy().astype("datetime64[D]").astype(np.int64)
    assert np.all((np.diff(p) > 0) | ((np.diff(p) == 0) & (np.diff(d) > 0)))


def test_dense_physiology_still_holds(dense) -> None:
    """Steps fall with age: the young wear more steps than the old, as in the default."""
    rel, _ = dense
    young, old = _sql(rel, """
        select avg(steps) filter (where year(date) - p.year_of_birth < 40),
               avg(steps) filter (where year(date) - p.year_of_birth >= 70)
        from wearable_daily join person p using (person_id)""")[0]
    assert young > old * 1.15


def test_dense_intraday_is_a_week_for_about_one_percent(dense) -> None:
    rel, _ = dense
    per = _sql(rel, """
        select person_id, count(*), min(ts), max(ts) from wearable_intraday_hr
        group by person_id""")
    wearers = _sql(rel, "select count(distinct person_id) from wearable_daily")[0][0]
    assert 1 <= len(per) <= max(2, wearers // 100 + 1)
    for _, n, first, last in per:
        assert n == 7 * 1440
        assert first.date() >= CUT - dt.timedelta(days=DAYS - 1) and last.date() <= CUT


def test_wearers_fraction(tmp_path: Path, dense) -> None:
    m = build_release(tmp_path / "half", persons=PERSONS, genotyped=0, variants=0, seed=5,
                      progress=False, lifelog_days=DAYS, wearers=0.5)
    full = dense[1]["tables"]["wearable_daily"]["rows"]
    assert 0.35 < m["tables"]["wearable_daily"]["rows"] / full < 0.65
    assert m["release_id"] != dense[1]["release_id"]
    assert json.loads((tmp_path / "half" / "manifest.json").read_text())["generator"][
        "arguments"]["wearers"] == 0.5


def test_dense_row_groups_are_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_mod, "ROW_GROUP", 1000)
    out = tmp_path / "r"
    m = build_release(out, persons=300, genotyped=0, variants=0, seed=3, progress=False,
                      lifelog_days=30)
    md = pq.ParquetFile(next(out.glob("*/wearable_daily.parquet"))).metadata
    sizes = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
    assert sizes[:-1] == [1000] * (len(sizes) - 1) and 0 < sizes[-1] <= 1000
    assert sum(sizes) == m["tables"]["wearable_daily"]["rows"]


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"lifelog_days": 0}, "--lifelog-days"),
    ({"wearers": 0.5}, "--wearers needs --lifelog-days"),
    ({"lifelog_days": 30, "wearers": 0.0}, "--wearers must be"),
    ({"lifelog_days": 30, "wearers": 1.5}, "--wearers must be"),
])
def test_bad_dense_options(tmp_path: Path, kwargs: dict, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        build_release(tmp_path / "r", persons=300, genotyped=0, variants=0, progress=False,
                      **kwargs)


def test_cli_flags(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from workbench.cli import app

    base = ["release", "synth", "--persons", "300", "--genotyped", "0", "--variants", "0",
            "--quiet"]
    ok = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "a"), "--lifelog-days", "30",
                                  "--wearers", "0.5"])
    assert ok.exit_code == 0, ok.output
    args = json.loads((tmp_path / "a" / "manifest.json").read_text())["generator"]["arguments"]
    assert args["lifelog_days"] == 30 and args["wearers"] == 0.5
    bad = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "b"), "--wearers", "0.5"])
    assert bad.exit_code == 2 and "--wearers needs --lifelog-days" in bad.output
