"""Benchmark: cohort latency vs persons and vs lifelog rows, on DuckDB and on local Spark.

Releases (built under benchmarks/work, reused if present, no genomes):

* persons series: 100k, 300k, 1M persons with the default lifelog (short wear periods of
  ~30% of persons);
* lifelog series: dense lifelog (every person wears a device over the last N days up to
  the data cut, ``build_release(lifelog_days=N)``): 300k x 365, 300k x 730, 1M x 730 days.

Queries: ``6-criterion`` is cohort_bench's definition (T2D, age, HbA1c, no insulin, LDL,
mean steps); ``lifelog-only`` enters at each person's first observation period and keeps
those with mean daily steps <= 6000 over >= 20 days in the last 90 days of it
(days -90..-1 before the period's end); ``characterize`` is Table 1 (with its lifelog
section) of the lifelog-only cohort, DuckDB only.

Every measurement runs in its own process, capped at --timeout seconds ("timeout" then):
DuckDB (catalog over the Parquet files) gives a cold time (new process: import, open,
compile, run) and the median of --repeat warm runs with ``cache="refresh"``, and its peak
RSS; Spark (local[2], driver memory 8g, one session per process) gives its first run and
the median of --repeat warm runs, and the peak RSS of its JVM. Spark and DuckDB must give
the same attrition. Results: benchmarks/results/scale.json, scale.md, scale.png.

    .venv/bin/python benchmarks/scale.py                      # the full run
    .venv/bin/python benchmarks/scale.py --persons 20000 --lifelog 20000x365 --stem scale_smoke
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

QUERIES = ("6-criterion", "lifelog-only")
SPARK_WARM_BUDGET = 300.0   # s of Spark warm runs per measurement (at least one run)


# --- the queries ----------------------------------------------------------------------

def lifelog_only() -> object:
    from cohort.builder import cohort, lifelog, observation_period

    return (cohort("Low steps at the end of follow-up")
            .entry(observation_period().first())
            .require("mean steps <= 6000 (>= 20 days) in the last 90 days",
                     lifelog("steps", "mean", max=6000, min_days=20)
                     .within(-90, -1, anchor="index_end"))
            .build())


def definition(query: str) -> object:
    if query == "6-criterion":
        from cohort_bench import DEFINITION

        return DEFINITION
    return lifelog_only()


# --- releases -------------------------------------------------------------------------

def release_dir(work: Path, persons: int, days: int | None) -> Path:
    return work / f"scale-{persons}-{days or 'default'}"


def _build_child(out: str, persons: int, days: int | None) -> None:
    import resource

    from workbench.synth.build import build_release

    t0 = time.perf_counter()
    build_release(out, persons=persons, genotyped=0, variants=0, seed=42, force=True,
                  progress=False, lifelog_days=days)
    print(json.dumps({"build_s": round(time.perf_counter() - t0, 1),
                      "build_peak_rss_gb": round(resource.getrusage(
                          resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}))


def ensure_release(work: Path, persons: int, days: int | None) -> tuple[Path, dict]:
    """Build the release unless present; its build time and peak RSS (a new process)."""
    rel = release_dir(work, persons, days)
    info = rel.with_name(rel.name + ".build.json")
    if not (rel / "manifest.json").exists():
        work.mkdir(parents=True, exist_ok=True)
        print(f"building {rel.name} ...", flush=True)
        out = subprocess.run([sys.executable, __file__, "--_build", str(rel), str(persons),
                              str(days or 0)], capture_output=True, text=True, check=True,
                             cwd=ROOT)
        info.write_text(out.stdout.strip().splitlines()[-1] + "\n")
    built = json.loads(info.read_text()) if info.exists() else {}
    return rel, built


def release_facts(rel: Path) -> dict:
    m = json.loads((rel / "manifest.json").read_text())
    size = sum(p.stat().st_size for p in rel.rglob("*.parquet"))
    daily = rel / m["tables"]["wearable_daily"]["path"]
    return {"release_id": m["release_id"], "persons": m["tables"]["person"]["rows"],
            "lifelog_days": m["generator"]["arguments"].get("lifelog_days"),
            "wearable_daily_rows": m["tables"]["wearable_daily"]["rows"],
            "intraday_hr_rows": m["tables"]["wearable_intraday_hr"]["rows"],
            "disk_gib": round(size / 2**30, 2),
            "wearable_daily_gib": round(daily.stat().st_size / 2**30, 2)}


# --- measurements (each in its own process) --------------------------------------------

def _rss_gb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def _runs(fn, repeat: int, budget: float) -> list[float]:
    """Up to ``repeat`` timed runs; fewer when they would not fit in ``budget`` seconds."""
    times: list[float] = []
    spent = 0.0
    for _ in range(repeat):
        if times and spent + times[-1] > budget:
            break
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        spent += times[-1]
    return times


def _measure_duckdb(rel: str, query: str, repeat: int, budget: float, t_start: float) -> dict:
    from cohort.engine import run
    from workbench import catalog

    cat = catalog.open(rel, storage="parquet", verify="none")
    d = definition(query)
    res = run(d, cat, cache="refresh")
    steps = list(res.step_persons)
    cold = time.perf_counter() - t_start
    out = {"cold_s": cold, "attrition": steps}
    warm = _runs(lambda: run(d, cat, cache="refresh").step_persons, repeat, budget - cold)
    out.update(warm_s=statistics.median(warm), warm_runs=len(warm))
    if query == "lifelog-only":
        from cohort.characterize import table1

        t = _runs(lambda: table1(run(d, cat), cat), repeat, budget - cold - sum(warm))
        out.update(characterize_s=statistics.median(t))
    out["peak_rss_gb"] = _rss_gb()
    return out


class _JvmWatch:
    """Peak RSS of this process's child processes (the Spark JVM), sampled every 0.2 s."""

    def __init__(self) -> None:
        import psutil

        self.me, self.peak, self.stop = psutil.Process(), 0, threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.wait(0.2):
            try:
                rss = sum(c.memory_info().rss for c in self.me.children(recursive=True))
            except Exception:   # a child went away between listing and reading
                continue
            self.peak = max(self.peak, rss)

    def close(self) -> float:
        self.stop.set()
        self.thread.join()
        return round(self.peak / 2**30, 2)


def _measure_spark(rel: str, query: str, repeat: int, budget: float, t_start: float) -> dict:
    from pyspark.sql import SparkSession

    from cohort.backends import SparkBackend, run_on
    from workbench import catalog

    watch = _JvmWatch()
    spark = (SparkSession.builder.master("local[2]").appName("workbench-scale")
             .config("spark.ui.enabled", "false")
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.sql.shuffle.partitions", "4")
             .config("spark.sql.execution.arrow.pyspark.enabled", "true")
             .config("spark.driver.memory", "8g").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    try:
        cat = catalog.open(rel, storage="parquet", verify="none")
        t0 = time.perf_counter()
        be = SparkBackend.for_release(cat, spark=spark)
        setup = time.perf_counter() - t0
        d = definition(query)
        t0 = time.perf_counter()
        _, persons = run_on(be, d, cat)
        first = time.perf_counter() - t0
        left = budget - (time.perf_counter() - t_start)
        warm = _runs(lambda: run_on(be, d, cat), repeat, min(left, SPARK_WARM_BUDGET))
    finally:
        spark.stop()
    return {"setup_s": setup, "first_s": first, "warm_s": statistics.median(warm),
            "warm_runs": len(warm), "attrition": list(persons), "jvm_peak_rss_gb": watch.close()}


def measure(engine: str, rel: Path, query: str, repeat: int, timeout: float) -> dict:
    """Run one measurement in a new process (its own session), killed after ``timeout``."""
    cmd = [sys.executable, __file__, "--_measure", engine, str(rel), query, str(repeat),
           str(timeout)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)     # the process and its JVM
        proc.communicate()
        return {"status": "timeout", "wall_s": round(time.perf_counter() - t0, 1)}
    if proc.returncode != 0:
        tail = stderr.strip().splitlines()[-3:]
        oom = proc.returncode == -signal.SIGKILL or "OutOfMemory" in stderr
        return {"status": "oom" if oom else "error", "returncode": proc.returncode,
                "error": " | ".join(tail)}
    out = json.loads(stdout.strip().splitlines()[-1])
    out = {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}
    return {"status": "ok", "wall_s": round(time.perf_counter() - t0, 1), **out}


def _child_measure(engine: str, rel: str, query: str, repeat: int, timeout: float,
                   t_start: float) -> None:
    budget = 0.8 * timeout
    fn = _measure_duckdb if engine == "duckdb" else _measure_spark
    print(json.dumps(fn(rel, query, repeat, budget, t_start)))


# --- the run --------------------------------------------------------------------------

def bench_release(work: Path, persons: int, days: int | None, series: str, repeat: int,
                  timeout: float, spark: bool) -> dict:
    rel, built = ensure_release(work, persons, days)
    row = {"series": series, **release_facts(rel), **built}
    for q in QUERIES:
        print(f"  {rel.name} {q}: duckdb", flush=True)
        row[f"duckdb {q}"] = measure("duckdb", rel, q, repeat, timeout)
        if spark:
            print(f"  {rel.name} {q}: spark", flush=True)
            row[f"spark {q}"] = measure("spark", rel, q, repeat, timeout)
            a, b = row[f"duckdb {q}"], row[f"spark {q}"]
            if a["status"] == b["status"] == "ok":
                assert a["attrition"] == b["attrition"], \
                    f"{rel.name} {q}: spark attrition {b['attrition']} != duckdb {a['attrition']}"
    print(json.dumps(row), flush=True)
    return row


def _cell(m: dict | None, key: str = "warm_s") -> str:
    if m is None:
        return "-"
    if m["status"] != "ok":
        return m["status"]
    return f"{m[key]:.3g} s" if key in m else "-"


def _ratio(a: dict | None, b: dict | None) -> str:
    if not a or not b or a["status"] != "ok" or b["status"] != "ok":
        return "-"
    return f"{b['warm_s'] / a['warm_s']:.1f}x"


def table(rows: list[dict], meta: dict) -> str:
    lines = [f"# Cohort latency vs persons and lifelog rows, DuckDB and local Spark "
             f"({meta['date']}, {meta['cores']} cores, {meta['ram_gib']} GiB RAM)", "",
             "Queries: **6-criterion** = cohort_bench's definition (T2D, aged 40-79, HbA1c, no "
             "insulin, screening LDL, mean steps <= 8000 over >= 7 days in the year before); "
             "**lifelog-only** = first observation period, mean steps <= 6000 over >= 20 days "
             "in days -90..-1 before its end; **Table 1** = `cohort.characterize.table1` of "
             "the lifelog-only cohort (with its lifelog section). DuckDB reads the release's "
             "Parquet files (`catalog.open(storage=\"parquet\")`); Spark 3.5 local[2], driver "
             "memory 8g, temp views over the same files. Warm = median of up to "
             f"{meta['repeat']} runs with `cache=\"refresh\"` (fewer when one run is long: "
             "see scale.json; Spark's stop after 300 s, at least one); DuckDB cold = a new "
             "process (import, open, compile, run); "
             "Spark first = first query of a session already started. Each measurement in "
             f"its own process, capped at {meta['timeout']:.0f} s. Both engines give the same "
             "attrition wherever both finished.", "",
             "| series | persons | lifelog days | wearable_daily rows | on disk | build "
             "| build peak RSS | query | DuckDB cold | DuckDB warm | DuckDB peak RSS "
             "| Spark first | Spark warm | Spark JVM peak RSS | Spark / DuckDB | Table 1 (DuckDB) "
             "| final persons |", "|---" * 17 + "|"]
    for r in rows:
        for q in QUERIES:
            d, s = r.get(f"duckdb {q}"), r.get(f"spark {q}")
            att = next((m["attrition"] for m in (d, s) if m and m["status"] == "ok"), None)
            lines.append(
                f"| {r['series']} | {r['persons']:,} | {r['lifelog_days'] or 'default'} "
                f"| {r['wearable_daily_rows']:,} | {r['disk_gib']} GiB "
                f"| {r.get('build_s', '-')} s | {r.get('build_peak_rss_gb', '-')} GB | {q} "
                f"| {_cell(d, 'cold_s')} | {_cell(d)} "
                f"| {d['peak_rss_gb'] if d and d['status'] == 'ok' else '-'} GB "
                f"| {_cell(s, 'first_s')} | {_cell(s)} "
                f"| {s['jvm_peak_rss_gb'] if s and s['status'] == 'ok' else '-'} GB "
                f"| {_ratio(d, s)} | {_cell(d, 'characterize_s') if q == 'lifelog-only' else ''} "
                f"| {f'{att[-1]:,}' if att else '-'} |")
    notes = [f"Note: {n}" for n in meta.get("notes", [])]
    return "\n".join(lines + ["", *notes, *[""] * bool(notes), *closing_note(rows, meta)]) \
        + "\n"


def _short(r: dict) -> str:
    n = r["persons"]
    who = f"{n / 1e6:g}M" if n >= 1e6 else f"{n / 1e3:g}k"
    return f"{who} x {r['lifelog_days'] or 'default'} ({r['wearable_daily_rows'] / 1e6:,.0f}M rows)"


def _size(r: dict) -> str:
    days = f"{r['lifelog_days']} days" if r["lifelog_days"] else "default lifelog"
    return f"{r['persons']:,} persons x {days} ({r['wearable_daily_rows'] / 1e6:,.0f}M rows)"


def closing_note(rows: list[dict], meta: dict) -> list[str]:
    """Where DuckDB stops being enough, from the rows: interactive (a count in < 1 s, the
    cohort builder), batch (< 60 s), no out-of-memory or timeout; RSS against the RAM."""
    out = ["## Where DuckDB stops being enough (measured)", "",
           "Enough = interactive: warm count < 1 s (the cohort builder's edit -> count); "
           "batch: any query, Table 1 included, < 60 s; and no out-of-memory or timeout. "
           "Sizes: persons x lifelog days (wearable_daily rows).", ""]
    ordered = sorted(rows, key=lambda r: (r["wearable_daily_rows"], r["persons"]))
    for q, key in (("6-criterion", "warm_s"), ("lifelog-only", "warm_s"),
                   ("lifelog-only", "characterize_s")):
        label = "Table 1 of lifelog-only" if key == "characterize_s" else q
        ok = [(r, r[f"duckdb {q}"]) for r in ordered if r[f"duckdb {q}"]["status"] == "ok"]
        failed = [r for r in ordered if r[f"duckdb {q}"]["status"] != "ok"]
        fast = ", ".join(_short(r) for r, m in ok if m[key] < 1) or "none"
        slow = ", ".join(f"{_short(r)} ({m[key]:.2g} s)" for r, m in ok if m[key] >= 1) or "none"
        over = [r for r, m in ok if m[key] >= 60]
        text = f"- **{label}**: < 1 s at {fast}; >= 1 s at {slow}; "
        text += (f">= 60 s at {', '.join(_short(r) for r in over)}" if over
                 else "under 60 s at every size measured")
        if failed:
            text += "; " + ", ".join(f"{r[f'duckdb {q}']['status']} at {_short(r)}"
                                     for r in failed)
        out.append(text + ".")
    rss = [(m["peak_rss_gb"], r) for r in rows for q in QUERIES
           if (m := r[f"duckdb {q}"])["status"] == "ok"]
    if rss:
        top, r = max(rss, key=lambda x: x[0])
        out.append(f"- **Memory**: DuckDB's peak RSS at most {top} GB ({_size(r)}) of "
                   f"{meta['ram_gib']} GiB; builds at most "
                   f"{max(r.get('build_peak_rss_gb', 0) for r in rows)} GB.")
    ratios = [r[f"spark {q}"]["warm_s"] / r[f"duckdb {q}"]["warm_s"] for r in rows
              for q in QUERIES if r.get(f"spark {q}") and r[f"spark {q}"]["status"] == "ok"
              and r[f"duckdb {q}"]["status"] == "ok"]
    if ratios:
        out.append(f"- **Spark local[2]** is {min(ratios):.1f}x to {max(ratios):.0f}x slower "
                   "than DuckDB on the same files and machine (never faster).")
    return out


def plot(rows: list[dict], html: Path, png: Path) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "vs persons (default lifelog)", "vs wearable_daily rows"))
    styles = {"duckdb": ("#1f77b4", "DuckDB"), "spark": ("#d62728", "Spark local[2]")}
    dashes = {"6-criterion": "solid", "lifelog-only": "dash", "Table 1": "dot"}
    for col, series, xkey in ((1, "persons", "persons"),
                              (2, "lifelog", "wearable_daily_rows")):
        rs = sorted((r for r in rows if r["series"] == series or
                     (series == "lifelog" and r["series"] == "persons"
                      and r["persons"] == 300_000)), key=lambda r: r[xkey])
        for engine, (color, label) in styles.items():
            for q in (*QUERIES, "Table 1"):
                if q == "Table 1" and engine == "spark":
                    continue
                key, mkey = (f"{engine} lifelog-only", "characterize_s") if q == "Table 1" \
                    else (f"{engine} {q}", "warm_s")
                pts = [(r[xkey], r[key][mkey]) for r in rs
                       if r.get(key) and r[key]["status"] == "ok" and mkey in r[key]]
                if not pts:
                    continue
                labelled = engine == "duckdb" and q == "6-criterion"   # sizes under it
                fig.add_trace(go.Scatter(
                    x=[p[0] for p in pts], y=[p[1] for p in pts],
                    mode="lines+markers+text" if labelled else "lines+markers",
                    text=[_short(r).split(" (")[0] for r in rs
                          if r.get(key) and r[key]["status"] == "ok" and mkey in r[key]],
                    textposition="bottom center", textfont={"size": 11}, cliponaxis=False,
                    name=f"{label}: {q}", legendgroup=f"{engine}{q}", showlegend=col == 1,
                    line={"color": color, "dash": dashes[q]}), row=1, col=col)
    ys = [y for t in fig.data for y in t.y] + [1, 60]
    xs = {col: [x for t in fig.data if t.xaxis == ("x" if col == 1 else "x2") for x in t.x]
          for col in (1, 2)}
    for col, title in ((1, "persons"), (2, "wearable_daily rows")):
        if xs[col]:   # guide lines: interactive (1 s) and batch (60 s)
            for y, text in ((1, "1 s"), (60, "60 s")):
                fig.add_trace(go.Scatter(
                    x=[min(xs[col]), max(xs[col])], y=[y, y], mode="lines+text",
                    text=["", text], textposition="top left", showlegend=False,
                    hoverinfo="skip", line={"color": "grey", "dash": "dot", "width": 1}),
                    row=1, col=col)
        fig.update_xaxes(type="log", title_text=title, row=1, col=col, range=[
            math.log10(min(xs[col]) / 1.5), math.log10(max(xs[col]) * 1.5)] if xs[col] else None)
        fig.update_yaxes(type="log", title_text="warm latency (s)", row=1, col=col,
                         range=[math.log10(min(ys) / 2), math.log10(max(ys) * 2)])
    fig.update_layout(width=1400, height=600, template="plotly_white",
                      title="Cohort latency: DuckDB over Parquet vs Spark local[2] "
                            "(2 cores, 24 GiB)", legend={"font": {"size": 12}})
    html.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(html, include_plotlyjs=True, full_html=True)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update"])
        page = browser.new_page(viewport={"width": 1420, "height": 620})
        page.goto(html.resolve().as_uri())
        page.wait_for_selector(".main-svg")
        page.wait_for_timeout(500)
        page.screenshot(path=str(png), full_page=True)
        browser.close()


def _lifelog_arg(s: str) -> tuple[int, int]:
    p, d = s.lower().split("x")
    return int(p), int(d)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--_build":
        _build_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) or None)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--_measure":
        t_start = time.perf_counter()
        _child_measure(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]),
                       float(sys.argv[6]), t_start)
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, action="append",
                    help="persons series, default lifelog (default 100000 300000 1000000)")
    ap.add_argument("--lifelog", type=_lifelog_arg, action="append", metavar="PERSONSxDAYS",
                    help="lifelog series (default 300000x365 300000x730 1000000x730)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--no-spark", action="store_true")
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--work", type=Path, default=HERE / "work")
    ap.add_argument("--stem", default="scale")
    ap.add_argument("--series", choices=("both", "persons", "lifelog"), default="both",
                    help="run only one series")
    ap.add_argument("--note", action="append", default=[],
                    help="a line for the table's notes (kept in the json's meta)")
    ap.add_argument("--render", action="store_true",
                    help="only redraw results/STEM.md and .png from results/STEM.json")
    ap.add_argument("--append", action="store_true",
                    help="add to (or replace releases in) the existing results/STEM.json")
    args = ap.parse_args()
    persons = args.persons or [100_000, 300_000, 1_000_000]
    dense = args.lifelog or [(300_000, 365), (300_000, 730), (1_000_000, 730)]
    plan = ([(n, None, "persons") for n in persons] * (args.series != "lifelog")
            + [(n, d, "lifelog") for n, d in dense] * (args.series != "persons"))
    t0 = time.perf_counter()
    if args.render:
        res = json.loads((HERE / "results" / f"{args.stem}.json").read_text())
        if args.note:
            res["meta"]["notes"] = [*res["meta"].get("notes", []), *args.note]
            (HERE / "results" / f"{args.stem}.json").write_text(json.dumps(res, indent=2)
                                                                 + "\n")
        (HERE / "results" / f"{args.stem}.md").write_text(table(res["rows"], res["meta"]))
        plot(res["rows"], args.work / f"{args.stem}.html", HERE / "results" / f"{args.stem}.png")
        return
    if args.build_only:
        for n, d, _ in plan:
            print(ensure_release(args.work, n, d), flush=True)
        return
    import psutil

    meta = {"date": str(dt.date.today()), "cores": os.cpu_count(),
            "ram_gib": round(psutil.virtual_memory().total / 2**30), "repeat": args.repeat,
            "timeout": args.timeout, "spark_warm_budget_s": SPARK_WARM_BUDGET,
            "machine": platform.machine()}
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    rows: list[dict] = []
    if args.append:
        old = json.loads((out / f"{args.stem}.json").read_text())
        runs = old["meta"].get("runs") or [{k: old["meta"][k] for k in ("date", "run_s")}]
        meta = {**old["meta"], "runs": runs}
        done = {(n, d) for n, d, _ in plan}
        rows = [r for r in old["rows"] if (r["persons"], r["lifelog_days"]) not in done]
    for n, d, s in plan:    # the json and table are rewritten after each release
        rows.append(bench_release(args.work, n, d, s, args.repeat, args.timeout,
                                  not args.no_spark))
        rows.sort(key=lambda r: (r["series"] != "persons", r["persons"],
                                 r["lifelog_days"] or 0))
        if args.append:
            meta["runs"] = [*runs, {"date": str(dt.date.today()),
                                    "run_s": round(time.perf_counter() - t0, 1),
                                    "releases": [f"{n}x{d or 'default'}" for n, d, _ in plan]}]
        else:
            meta["run_s"] = round(time.perf_counter() - t0, 1)
        (out / f"{args.stem}.json").write_text(json.dumps({"meta": meta, "rows": rows},
                                                          indent=2) + "\n")
        text = table(rows, meta)
        (out / f"{args.stem}.md").write_text(text)
    plot(rows, args.work / f"{args.stem}.html", out / f"{args.stem}.png")
    print(text)


if __name__ == "__main__":
    main()
