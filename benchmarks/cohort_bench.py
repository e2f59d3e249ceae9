"""Benchmark: a realistic 6-criterion cohort, count + attrition, on DuckDB vs peers.

Definition: first type 2 diabetes record (KCD8 E11 and descendants, 365 days prior
observation); aged 40-79; HbA1c >= 6.5 in the year before; no insulin in the year before;
screening LDL >= 100 in the two years before; mean daily steps <= 8000 over >= 7 days in
the year before. Peers, in the same run and on the same release: the same compiled SQL on
PostgreSQL 15 (tables indexed on person_id), a hand-written Polars implementation, and a
hand-written pandas one. Every engine must give the same attrition.

    .venv/bin/python benchmarks/cohort_bench.py --persons 100000 [--persons 1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))

from cohort.builder import age, cohort, condition, drug, lifelog, measurement, screening  # noqa: E402
from cohort.concepts import resolve  # noqa: E402


def definition(ldl_min: float = 100) -> object:
    return (
        cohort("T2D, glycaemia, no insulin, LDL, low steps")
        .entry(condition("KCD8", "E11").first(), prior_observation=365)
        .require("aged 40-79", age(40, 79))
        .require("HbA1c >= 6.5 in the year before", measurement("LOINC", "4548-4", min=6.5)
                 .within(-365, 0))
        .exclude("no insulin in the year before", drug("ATC", "A10A").within(-365, -1))
        .require(f"screening LDL >= {ldl_min:g} in 2 years",
                 screening("ldl_cholesterol", min=ldl_min).within(-730, 0))
        .require("mean steps <= 8000 (>= 7 days)",
                 lifelog("steps", "mean", max=8000, min_days=7).within(-365, 0))
        .build())


DEFINITION = definition()
EDITED = definition(110)   # "after an edit": one threshold changed, nothing cached for it


def timed(fn, repeat: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def ids(cat, vocab: str, code: str) -> list[int]:
    from cohort.builder import concept_set

    return list(resolve(cat, concept_set(vocab, code)).standard)


# --- hand-written Polars ----------------------------------------------------------------

def polars_attrition(rel: Path, c: dict[str, list[int]]) -> list[int]:
    def scan(t: str) -> pl.LazyFrame:
        return pl.scan_parquet(next(rel.glob(f"*/{t}.parquet")))

    op = scan("observation_period")
    withdrawn = scan("consent").filter(pl.col("withdrawal_date").is_not_null()).select(
        "person_id")
    first = (scan("condition_occurrence").filter(pl.col("condition_concept_id").is_in(c["t2d"]))
             .group_by("person_id").agg(pl.col("condition_start_date").min().alias("d")))
    idx = (first.join(op, on="person_id")
           .filter(pl.col("d").is_between(pl.col("observation_period_start_date"),
                                          pl.col("observation_period_end_date"))
                   & (pl.col("observation_period_start_date") + pl.duration(days=365)
                      <= pl.col("d")))
           .join(withdrawn, on="person_id", how="anti")
           .select("person_id", "d", op_start="observation_period_start_date",
                   op_end="observation_period_end_date"))

    def window_hits(events: pl.LazyFrame, date: str, lo: int, hi: int, obs: bool) -> pl.LazyFrame:
        j = idx.join(events, on="person_id").filter(
            pl.col(date).is_between(pl.col("d") + pl.duration(days=lo),
                                    pl.col("d") + pl.duration(days=hi)))
        if obs:
            j = j.filter(pl.col(date).is_between(pl.col("op_start"), pl.col("op_end")))
        return j.select("person_id").unique()

    person = scan("person").select("person_id", "year_of_birth")
    r1 = idx.join(person, on="person_id").filter(
        (pl.col("d").dt.year() - pl.col("year_of_birth")).is_between(40, 79)).select("person_id")
    r2 = window_hits(scan("measurement").filter(
        pl.col("measurement_concept_id").is_in(c["hba1c"]) & (pl.col("value_as_number") >= 6.5)),
        "measurement_date", -365, 0, True)
    ins = window_hits(scan("drug_exposure").filter(pl.col("drug_concept_id").is_in(c["insulin"])),
                      "drug_exposure_start_date", -365, -1, True)
    r3 = idx.select("person_id").join(ins, on="person_id", how="anti")
    r4 = window_hits(scan("health_screening").filter(pl.col("ldl_cholesterol") >= 100),
                     "screening_date", -730, 0, True)
    steps = (idx.join(scan("wearable_daily"), on="person_id")
             .filter(pl.col("date").is_between(pl.col("d") - pl.duration(days=365), pl.col("d")))
             .group_by("person_id").agg(pl.col("steps").mean().alias("v"), pl.len().alias("n"))
             .filter((pl.col("n") >= 7) & (pl.col("v") <= 8000)).select("person_id"))
    frames = pl.collect_all([idx.select("person_id"), r1, r2, r3, r4, steps])
    remaining = set(frames[0]["person_id"].to_list())
    out = [len(remaining)]
    for f in frames[1:]:
        remaining &= set(f["person_id"].to_list())
        out.append(len(remaining))
    return out


# --- hand-written pandas --------------------------------------------------------------

def pandas_attrition(rel: Path, c: dict[str, list[int]]) -> list[int]:
    def read(t: str, cols: list[str]) -> pd.DataFrame:
        df = pd.read_parquet(next(rel.glob(f"*/{t}.parquet")), columns=cols)
        for col in cols:   # Arrow dates arrive as Python objects; make them datetime64
            if "date" in col:
                df[col] = pd.to_datetime(df[col])
        return df

    op = read("observation_period", ["person_id", "observation_period_start_date",
                                     "observation_period_end_date"])
    cons = read("consent", ["person_id", "withdrawal_date"])
    withdrawn = set(cons.loc[cons.withdrawal_date.notna(), "person_id"])
    co = read("condition_occurrence", ["person_id", "condition_concept_id",
                                       "condition_start_date"])
    first = (co[co.condition_concept_id.isin(c["t2d"])].groupby("person_id")
             .condition_start_date.min().rename("d").reset_index())
    idx = first.merge(op, on="person_id")
    idx = idx[(idx.d >= idx.observation_period_start_date)
              & (idx.d <= idx.observation_period_end_date)
              & (idx.observation_period_start_date + pd.Timedelta(days=365) <= idx.d)
              & ~idx.person_id.isin(withdrawn)]
    idx = idx.rename(columns={"observation_period_start_date": "op_start",
                              "observation_period_end_date": "op_end"})

    def hits(ev: pd.DataFrame, date: str, lo: int, hi: int) -> set:
        j = idx.merge(ev, on="person_id")
        m = ((j[date] >= j.d + pd.Timedelta(days=lo)) & (j[date] <= j.d + pd.Timedelta(days=hi))
             & (j[date] >= j.op_start) & (j[date] <= j.op_end))
        return set(j.loc[m, "person_id"])

    person = read("person", ["person_id", "year_of_birth"])
    a = idx.merge(person, on="person_id")
    age_ok = set(a.loc[(a.d.dt.year - a.year_of_birth).between(40, 79), "person_id"])
    meas = read("measurement", ["person_id", "measurement_concept_id", "measurement_date",
                                "value_as_number"])
    hb = hits(meas[meas.measurement_concept_id.isin(c["hba1c"]) & (meas.value_as_number >= 6.5)],
              "measurement_date", -365, 0)
    dr = read("drug_exposure", ["person_id", "drug_concept_id", "drug_exposure_start_date"])
    ins = hits(dr[dr.drug_concept_id.isin(c["insulin"])], "drug_exposure_start_date", -365, -1)
    scr = read("health_screening", ["person_id", "screening_date", "ldl_cholesterol"])
    ldl = hits(scr[scr.ldl_cholesterol >= 100], "screening_date", -730, 0)
    w = read("wearable_daily", ["person_id", "date", "steps"]).merge(idx[["person_id", "d"]],
                                                                     on="person_id")
    w = w[(w.date >= w.d - pd.Timedelta(days=365)) & (w.date <= w.d)]
    g = w.groupby("person_id").steps.agg(["mean", "size"])
    steps = set(g[(g["size"] >= 7) & (g["mean"] <= 8000)].index)
    remaining = set(idx.person_id)
    out = [len(remaining)]
    for s in (age_ok, hb, None, ldl, steps):
        remaining = remaining - ins if s is None else remaining & s
        out.append(len(remaining))
    return out




def _cold_duckdb(rel: Path, storage: str) -> float:
    """A new process: import, open the release, compile, run, attrition."""
    code = ("import time,sys;sys.path.insert(0,'benchmarks');t=time.perf_counter();"
            "from workbench import catalog;from cohort.engine import run;"
            "from cohort_bench import DEFINITION;"
            f"c=catalog.open({str(rel)!r},verify='none',storage={storage!r});"
            "r=run(DEFINITION,c);r.attrition;print(time.perf_counter()-t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=HERE.parent)
    return float(out.stdout.strip().splitlines()[-1])


def bench(persons: int, work: Path, repeat: int) -> dict:
    from _pg import start_postgres

    from cohort.backends import PostgresBackend, run_on
    from cohort.engine import compile_for, run
    from workbench import catalog
    from workbench.synth.build import build_release

    rel = work / f"cohort-{persons}"
    if not (rel / "manifest.json").exists():
        build_release(rel, persons=persons, genotyped=0, variants=0, seed=42, force=True,
                      progress=False)
    cold = _cold_duckdb(rel, "parquet")
    manifest = catalog.load_manifest(rel.resolve())
    tables = sorted(manifest["tables"])
    catalog.native_database_path(rel.resolve(), manifest, tables).unlink(missing_ok=True)
    t0 = time.perf_counter()
    catalog.build_native_database(rel.resolve(), manifest, tables)
    native_build = time.perf_counter() - t0
    cold_native = _cold_duckdb(rel, "native")
    cat = catalog.open(rel, storage="parquet")
    c = {"t2d": ids(cat, "KCD8", "E11"), "hba1c": ids(cat, "LOINC", "4548-4"),
         "insulin": ids(cat, "ATC", "A10A")}
    duck_t, res = timed(lambda: run(DEFINITION, cat, cache="refresh"), repeat)
    expected = res.step_persons
    ncat = catalog.open(rel, storage="native")
    native_t, nres = timed(lambda: run(DEFINITION, ncat, cache="refresh"), repeat)
    assert nres.step_persons == expected and nres.members.equals(res.members)
    edit_t, _ = timed(lambda: run(EDITED, ncat, cache="refresh"), repeat)
    cached_t, _ = timed(lambda: run(DEFINITION, ncat), repeat)
    ncat.close()
    pl_t, pl_out = timed(lambda: polars_attrition(rel, c), repeat)
    pd_t, pd_out = timed(lambda: pandas_attrition(rel, c), max(1, repeat // 2))
    dsn, stop = start_postgres()
    try:
        t0 = time.perf_counter()
        pg = PostgresBackend.for_release(cat, dsn)
        load_s = time.perf_counter() - t0
        pg_t, pg_out = timed(lambda: run_on(pg, DEFINITION, cat), max(1, repeat // 2))
        pg.close()
    finally:
        stop()
    for name, out in (("polars", pl_out), ("pandas", pd_out), ("postgres", pg_out[1])):
        assert out == expected, f"{name} attrition {out} != duckdb {expected}"
    med = statistics.median
    return {"persons": persons, "attrition": expected,
            "sql_chars": len(compile_for(DEFINITION, cat).sql()),
            "duckdb_cold_s": round(cold, 3), "duckdb_warm_s": round(med(duck_t), 3),
            "native_build_s": round(native_build, 1), "native_cold_s": round(cold_native, 3),
            "native_warm_s": round(med(native_t), 3), "native_edit_s": round(med(edit_t), 3),
            "duckdb_cached_s": round(med(cached_t), 4), "polars_s": round(med(pl_t), 3),
            "pandas_s": round(med(pd_t), 3), "postgres_s": round(med(pg_t), 3),
            "postgres_load_s": round(load_s, 1),
            "postgres_over_native": round(med(pg_t) / med(native_t), 1),
            "polars_over_native": round(med(pl_t) / med(native_t), 2),
            "polars_over_parquet": round(med(pl_t) / med(duck_t), 2),
            "pandas_over_native": round(med(pd_t) / med(native_t), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, action="append")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--work", type=Path, default=HERE / "work")
    args = ap.parse_args()
    rows = [bench(n, args.work, args.repeat) for n in (args.persons or [100_000])]
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stem = "cohort_" + "_".join(str(r["persons"]) for r in rows)
    (out / f"{stem}.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [f"# Cohort count + attrition, 6 criteria ({dt.date.today()}, "
             f"{os.cpu_count()} cores)", "", f"Definition: {DEFINITION.name}", "",
             "Workbench on DuckDB: over the release's Parquet files, and over the native copy "
             "(`workbench release cache`, built once per release). Peers read the same "
             "release: Polars and pandas its Parquet files, PostgreSQL its own tables "
             "(loaded, indexed on person_id). Times are medians; cold = a new process "
             "(import, open, compile, run).", "",
             "| persons | Parquet cold | Parquet warm | native copy (once) | native cold "
             "| native warm | after an edit | cached | Polars | pandas | PostgreSQL 15 "
             "| PG / native | Polars / native | Polars / Parquet | final persons |",
             "|---" * 15 + "|"]
    for r in rows:
        lines.append(
            f"| {r['persons']:,} | {r['duckdb_cold_s']} s | {r['duckdb_warm_s']} s | "
            f"{r['native_build_s']} s | {r['native_cold_s']} s | {r['native_warm_s']} s | "
            f"{r['native_edit_s']} s | {r['duckdb_cached_s']} s | {r['polars_s']} s | "
            f"{r['pandas_s']} s | {r['postgres_s']} s | {r['postgres_over_native']}x | "
            f"{r['polars_over_native']}x | {r['polars_over_parquet']}x | "
            f"{r['attrition'][-1]:,} |")
    text = "\n".join(lines) + "\n"
    (out / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
