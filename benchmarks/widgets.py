"""Benchmark: the cohort builder widget, edit -> updated count, at 100k persons.

A real :class:`cohort.widgets.CohortBuilder` is driven as a user would: editor values set
through ``.find(path)`` (boxes typed into, ticks, dropdowns), concepts picked from the
vocabulary search's rows, rules added and removed with the list editors' add/remove.
The study is typical: first type 2 diabetes diagnosis with prior observation, an age
range, HbA1c in a window, no insulin before the index (an exclusion), a screening LDL,
mean daily steps (lifelog), a rule added and removed again, the entry limit toggled.

Each edit is timed from the value change to the count and attrition shown (``wait()``
returns when the latest edit is counted). The measurement uses ``debounce=0``; the
default debounce (0.4 s, the quiet time before counting starts) is measured in a
separate pass and reported on its own. Edits that leave the definition incomplete (a
criterion with no concept yet) show a message at once and are not counts; they are
listed but left out of the percentiles.

Peers, in the same run, on the same release and storage, for every definition the
widget counted: the bare engine (``cohort.engine.run(..., cache="refresh")`` on the
main thread: compile + run, nothing reused) and the hand-written Polars reference
(``tests/reference/polars_cohort.py`` ``evaluate``, tables held in memory). Every
attrition shown must equal both.

    .venv/bin/python benchmarks/widgets.py --release /tmp/rel100k [--storage parquet]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from reference.polars_cohort import evaluate  # noqa: E402

from cohort import engine  # noqa: E402
from cohort import model as m  # noqa: E402
from cohort.builder import age, lifelog, measurement, screening, sex  # noqa: E402
from cohort.concepts import search  # noqa: E402
from cohort.widgets import CohortBuilder  # noqa: E402
from workbench import catalog  # noqa: E402

HBA1C = "inclusion_rules[1].group.items[0]"
INSULIN = "inclusion_rules[2].group.items[0]"
LDL = "inclusion_rules[3].group.items[0]"
STEPS = "inclusion_rules[4].group.items[0]"


def _concept(w: CohortBuilder, vocabulary: str, code: str) -> dict:
    """The vocabulary search's row for a code, as the search's add button gives it."""
    rows = search(w.cat, code, vocabulary=vocabulary)
    return rows.filter(rows["concept_code"] == code).row(0, named=True)


def _rule(name: str, req) -> m.InclusionRule:
    return m.InclusionRule(name=name, group=m.Group(items=[req.requirement()]))


def _type(w: CohortBuilder, path: str, box: str, text: str) -> None:
    """Type into a box of the editor at ``path`` (a Text commits on enter/blur)."""
    ed = w.find(path)
    getattr(ed, box).value = text


def _set(w: CohortBuilder, path: str, value: object) -> None:
    w.find(path).widget.value = value


def _tick(w: CohortBuilder, path: str, on: bool) -> None:
    """Tick or untick a window (unticked = no window)."""
    w.find(path).enabled.value = on


def _add_entry(w: CohortBuilder) -> None:
    crit = w.find("entry.criteria").add("condition")
    crit.find("concepts").add(_concept(w, "KCD8", "E11"))


# (what the user does, the action); ~35 edits, a few of them back to an earlier value
EDITS: list[tuple[str, Callable[[CohortBuilder], None]]] = [
    ("entry: T2D diagnosis (concept picked)", _add_entry),
    ("entry: first occurrence only", lambda w: _set(w, "entry.criteria[0].first_occurrence",
                                                    True)),
    ("entry: prior observation 365 d", lambda w: _set(w, "entry.prior_observation", 365)),
    ("add rule: aged 40-79", lambda w: w.find("inclusion_rules").add(
        None, _rule("aged 40-79", age(40, 79)))),
    ("age max 74", lambda w: _type(w, "inclusion_rules[0].group.items[0].criterion.value",
                                   "max_box", "74")),
    ("age min 45", lambda w: _type(w, "inclusion_rules[0].group.items[0].criterion.value",
                                   "min_box", "45")),
    ("age max 79", lambda w: _type(w, "inclusion_rules[0].group.items[0].criterion.value",
                                   "max_box", "79")),
    ("age min 40", lambda w: _type(w, "inclusion_rules[0].group.items[0].criterion.value",
                                   "min_box", "40")),
    ("add rule: HbA1c >= 6.5 in the year before", lambda w: w.find("inclusion_rules").add(
        None, _rule("HbA1c >= 6.5", measurement("LOINC", "4548-4", min=6.5).within(-365, 0)))),
    ("HbA1c min 7", lambda w: _type(w, f"{HBA1C}.criterion.value", "min_box", "7")),
    ("HbA1c window from -730", lambda w: _type(w, f"{HBA1C}.window", "start_box", "-730")),
    ("HbA1c at least 2", lambda w: _set(w, f"{HBA1C}.occurrence.count", 2)),
    ("HbA1c at least 1", lambda w: _set(w, f"{HBA1C}.occurrence.count", 1)),
    ("HbA1c min 6.5", lambda w: _type(w, f"{HBA1C}.criterion.value", "min_box", "6.5")),
    ("add exclusion: drug (no concept yet)", lambda w: w.add_exclusion("no insulin", "drug")),
    ("exclusion: insulin picked (ATC A10A)", lambda w: w.find(
        f"{INSULIN}.criterion.concepts").add(_concept(w, "ATC", "A10A"))),
    ("exclusion: window ticked", lambda w: _tick(w, f"{INSULIN}.window", True)),
    ("exclusion window from -365", lambda w: _type(w, f"{INSULIN}.window", "start_box",
                                                   "-365")),
    ("exclusion window to -1", lambda w: _type(w, f"{INSULIN}.window", "end_box", "-1")),
    ("add rule: screening LDL >= 100 in 2 years", lambda w: w.find("inclusion_rules").add(
        None, _rule("LDL >= 100", screening("ldl_cholesterol", min=100).within(-730, 0)))),
    ("LDL min 130", lambda w: _type(w, f"{LDL}.criterion.value", "min_box", "130")),
    ("LDL min 160", lambda w: _type(w, f"{LDL}.criterion.value", "min_box", "160")),
    ("LDL min 100", lambda w: _type(w, f"{LDL}.criterion.value", "min_box", "100")),
    ("add rule: mean steps <= 8000 (>= 7 days)", lambda w: w.find("inclusion_rules").add(
        None, _rule("low steps", lifelog("steps", "mean", max=8000, min_days=7)
                    .within(-365, 0)))),
    ("steps max 6000", lambda w: _type(w, f"{STEPS}.criterion.value", "max_box", "6000")),
    ("steps: at least 14 days", lambda w: _set(w, f"{STEPS}.criterion.min_days", 14)),
    ("steps max 8000", lambda w: _type(w, f"{STEPS}.criterion.value", "max_box", "8000")),
    ("add rule: women", lambda w: w.find("inclusion_rules").add(
        None, _rule("women", sex("female")))),
    ("remove rule: women", lambda w: w.find("inclusion_rules").remove(5)),
    ("entry: prior observation 730 d", lambda w: _set(w, "entry.prior_observation", 730)),
    ("entry: prior observation 365 d", lambda w: _set(w, "entry.prior_observation", 365)),
    ("entry: all events", lambda w: _set(w, "entry.limit", "all")),
    ("entry: first event", lambda w: _set(w, "entry.limit", "first")),
    ("exclusion: window unticked (any time)", lambda w: _tick(w, f"{INSULIN}.window",
                                                              False)),
    ("remove rule: steps", lambda w: w.find("inclusion_rules").remove(4)),
]


@dataclass
class Edit:
    label: str
    seconds: float
    status: str                 # done | incomplete | error
    shown: str                  # the count as shown
    steps: list[int] | None     # attrition (persons per step), when counted
    definition: m.Cohort | None


def drive(cat: catalog.Catalog, debounce: float) -> list[Edit]:
    """One pass of EDITS through a new builder; each edit timed until its count shows."""
    out = []
    w = CohortBuilder(cat, None, debounce=debounce)
    try:
        assert w.wait(), "the empty builder did not settle"
        before = None
        for label, action in EDITS:
            t0 = time.perf_counter()
            action(w)
            assert w.wait(60), f"{label}: not counted within 60 s"
            seconds = time.perf_counter() - t0
            done = w.status == "done"
            assert not done or w.definition != before, f"{label}: the edit changed nothing"
            before = w.definition if done else None
            out.append(Edit(label, seconds, w.status, w.count_text,
                            w.result.step_persons if done else None,
                            w.definition if done else None))
            assert w.status in ("done", "incomplete"), f"{label}: {w.count_label.value}"
    finally:
        w.close()
    return out


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def percentiles(xs: list[float]) -> dict[str, float]:
    q = statistics.quantiles(xs, n=20, method="inclusive")
    return {"p50": round(statistics.median(xs), 3), "p95": round(q[18], 3),
            "max": round(max(xs), 3), "n": len(xs)}


def bench(release: Path, storage: str, repeat: int, default_debounce: bool) -> dict:
    cat = catalog.open(release, storage=storage)
    load = [os.getloadavg()[0]]
    # warm the OS file cache and the Polars reference's tables once (not measured)
    warm = drive(cat, 0)
    final = [e.definition for e in warm if e.definition is not None][-1]
    evaluate(final, release, cat)
    widget, bare, ref, passes = [], [], [], []
    for _ in range(repeat):
        engine.clear_cache()
        edits = drive(cat, 0)
        passes.append(edits)
        load.append(os.getloadavg()[0])
        for e in edits:
            if e.status != "done":
                continue
            widget.append(e.seconds)
            t, res = _timed(lambda e=e: engine.run(e.definition, cat, cache="refresh"))
            bare.append(t)
            t, (_, steps) = _timed(lambda e=e: evaluate(e.definition, release, cat))
            ref.append(t)
            assert e.steps == res.step_persons == steps, (
                f"{e.label}: widget {e.steps}, engine {res.step_persons}, Polars {steps}")
        load.append(os.getloadavg()[0])
    last = passes[-1]
    row = {"persons": cat.scalar("select count(*) from person"), "storage": storage,
           "release_id": cat.release_id, "edits": len(EDITS), "passes": repeat,
           "counted_edits": sum(e.status == "done" for e in last),
           "incomplete_edits": [e.label for e in last if e.status == "incomplete"],
           "final_attrition": [e.steps for e in last if e.steps][-1],
           "widget_debounce0": percentiles(widget), "engine_refresh": percentiles(bare),
           "polars_reference": percentiles(ref),
           "per_edit_median_s": [
               [e.label, round(statistics.median(p[k].seconds for p in passes), 3), e.status,
                e.shown] for k, e in enumerate(last)],
           "load_1min": [round(x, 2) for x in load]}
    for peer in ("engine_refresh", "polars_reference"):
        row[f"widget_over_{peer}"] = {k: round(row["widget_debounce0"][k] / row[peer][k], 2)
                                      for k in ("p50", "p95")}
    if default_debounce:
        engine.clear_cache()
        d = CohortBuilder.__init__.__kwdefaults__["debounce"]
        slow = [e.seconds for e in drive(cat, d) if e.status == "done"]
        row["default_debounce_s"] = d
        row["widget_default_debounce"] = percentiles(slow)
    cat.close()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--release", type=Path, help="a built release (else one is built)")
    ap.add_argument("--persons", type=int, default=100_000,
                    help="persons of the release built when --release is not given")
    ap.add_argument("--work", type=Path, default=HERE / "work")
    ap.add_argument("--storage", choices=["parquet", "native"], action="append")
    ap.add_argument("--repeat", type=int, default=3, help="passes of the edit sequence")
    ap.add_argument("--no-default-debounce", action="store_true",
                    help="skip the pass with the default debounce")
    args = ap.parse_args()
    release = args.release
    if release is None:
        from workbench.synth.build import build_release

        release = args.work / f"widgets-{args.persons}"
        if not (release / "manifest.json").exists():
            build_release(release, persons=args.persons, genotyped=0, variants=0, seed=42,
                          force=True, progress=False)
    rows = [bench(release.resolve(), s, args.repeat, not args.no_default_debounce)
            for s in (args.storage or ["parquet", "native"])]
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stem = f"widgets_{rows[0]['persons']}"
    (out / f"{stem}.json").write_text(json.dumps(rows, indent=2) + "\n")
    r0 = rows[0]
    lines = [f"# Cohort builder: edit -> updated count ({dt.date.today()}, "
             f"{os.cpu_count()} cores)", "",
             f"{r0['edits']} edits of a typical study ({r0['counted_edits']} give a count; "
             f"edits leaving the definition incomplete, {len(r0['incomplete_edits'])}, are "
             f"not timed), {r0['passes']} passes, each from a new builder with the engine's "
             "caches cleared. Widget: a real CohortBuilder with debounce=0, timed from the "
             "value change to the count shown. Peers on the same definitions in the same "
             "run: the bare engine (run, cache='refresh': compile + run, nothing reused) "
             "and the hand-written Polars reference (evaluate, tables in memory). Target: "
             "widget p95 < 300 ms.", "",
             "| persons | storage | widget p50 | widget p95 | widget max | engine p50 "
             "| engine p95 | Polars p50 | Polars p95 | widget/engine p95 "
             "| widget/Polars p95 | with default debounce p50 / p95 | load (1 min) |",
             "|---" * 13 + "|"]
    for r in rows:
        wd, en, po = r["widget_debounce0"], r["engine_refresh"], r["polars_reference"]
        deb = r.get("widget_default_debounce")
        lines.append(
            f"| {r['persons']:,} | {r['storage']} | {wd['p50']} s | {wd['p95']} s | "
            f"{wd['max']} s | {en['p50']} s | {en['p95']} s | {po['p50']} s | {po['p95']} s "
            f"| {r['widget_over_engine_refresh']['p95']}x "
            f"| {r['widget_over_polars_reference']['p95']}x | "
            + (f"{deb['p50']} s / {deb['p95']} s (debounce {r['default_debounce_s']} s)"
               if deb else "not measured")
            + f" | {min(r['load_1min'])}-{max(r['load_1min'])} |")
    lines += ["", f"Per edit ({r0['storage']}, median of the passes):", "",
              "| edit | seconds | shown |", "|---|---|---|"]
    for label, s, status, shown in r0["per_edit_median_s"]:
        lines.append(f"| {label} | {s if status == 'done' else status} | {shown} |")
    text = "\n".join(lines) + "\n"
    (out / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
