"""The GWAS widget driven as a user would, on the small release (600 genomes, 2,000
variants): values set in its boxes, Run clicked, the Manhattan plot clicked, Cancel clicked.

The widget's results must equal ``run_gwas`` called directly with the same settings; a
click on a Manhattan point must show exactly the variants a hand-written Polars filter
finds around it; a cancelled run must leave no output folder; a bad trait must give a
readable message in the widget.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from genomics.widgets import STEPS, GwasWidget
from workbench import catalog

pytestmark = pytest.mark.java
DEFINITION = Path(__file__).resolve().parents[2] / "examples/ldl_screened.json"
TIMEOUT = 900          # seconds; one run takes ~1-2 min on 2 busy cores


@pytest.fixture(scope="module")
def cat(small_release):
    with catalog.open(small_release) as c:
        yield c


def set_up(w: GwasWidget) -> None:
    """What the user picks: LDL, age + sex, 2 PCs, MAF >= 0.02 (not the default)."""
    w.trait_kind.value = "phenotype"
    w.trait.value = "ldl_cholesterol"
    w.covariates.value = ("age", "female")
    w.pcs.value = 2
    w.qc_controls["min_maf"].value = 0.02


@pytest.fixture(scope="module")
def clicked_run(hail_session, cat, tmp_path_factory):
    out = tmp_path_factory.mktemp("widget") / "ldl"
    w = GwasWidget(cat, DEFINITION, out=out, window_kb=250)
    set_up(w)
    seen: list[str] = []
    w.status.observe(lambda c: seen.append(c.new), "value")
    start = time.perf_counter()
    w.run_button.click()
    assert w.wait(TIMEOUT), "the widget's run did not finish"
    print(f"widget run: {time.perf_counter() - start:.1f} s")
    return w, seen


@pytest.fixture(scope="module")
def direct(small_ldl_gwas):
    """``run_gwas`` with the widget's settings (tests/conftest.py: shared with the
    cluster test)."""
    return small_ldl_gwas


def test_widget_results_equal_run_gwas(clicked_run, direct):
    w, seen = clicked_run
    assert w.state == "done", w.message.value
    got, want = w.study.result.results, direct.result.results
    assert got.height > 500
    assert_frame_equal(got, want)
    assert w.study.result.lambda_gc == direct.result.lambda_gc
    assert w.study.qc.steps == direct.qc.steps
    assert f"λGC = {direct.result.lambda_gc:.3f}" in w.lambda_label.value
    # the progress label went through run_gwas's steps in order, then "done"
    steps = [next(i for i, s in enumerate(STEPS) if m.startswith(s)) for m in seen
             if any(m.startswith(s) for s in STEPS)]
    assert steps == list(range(len(STEPS)))
    assert seen[-1].startswith("done") and w.progress.value == len(STEPS)
    assert {"results.parquet", "qc.json", "report.html"} <= {p.name for p in w.study.out.iterdir()}
    assert_frame_equal(pl.read_parquet(w.study.out / "results.parquet"), want)


def click(fig, trace_index: int, point_index: int) -> None:
    """What the plotly front end sends when a point is clicked."""
    trace = fig.data[trace_index]
    fig._js2py_pointsCallback = {
        "event_type": "plotly_click",
        "points": {"trace_indexes": [trace_index], "point_indexes": [point_index],
                   "xs": [trace.x[point_index]], "ys": [trace.y[point_index]]},
        "device_state": {"button": 0, "buttons": 1}, "selector": None}


def point_of(fig, variant: str) -> tuple[int, int]:
    for ti, trace in enumerate(fig.data):
        if trace.customdata is None:
            continue
        for pi, row in enumerate(trace.customdata):
            if row[0] == variant:
                return ti, pi
    raise AssertionError(f"{variant} is not drawn")


def hand_locus(results: pl.DataFrame, chrom: str, pos: int, kb: float) -> pl.DataFrame:
    return results.filter((pl.col("chrom") == chrom)
                          & ((pl.col("pos") - pos).abs() <= kb * 1000)).sort("pos")


@pytest.mark.parametrize(("which", "kb"), [("top", 250), ("last", 40)])
def test_click_on_manhattan_shows_the_locus(clicked_run, direct, which, kb):
    w, _ = clicked_run
    res = direct.result.results
    row = res.sort("p_value").row(0, named=True) if which == "top" else \
        res.sort("chrom", "pos").row(-1, named=True)
    variant = f"{row['chrom']}:{row['pos']}:{row['ref']}:{row['alt']}"
    w.window.value = kb
    ti, pi = point_of(w.manhattan, variant)
    click(w.manhattan, ti, pi)
    want = hand_locus(res, row["chrom"], row["pos"], kb)
    assert want.height >= 2                   # more than the clicked variant itself
    assert_frame_equal(w.locus, want)
    shown = sorted(x for t in w.locus_fig.data for x in t.x)
    assert shown == want["pos"].to_list()
    assert w.locus_fig.layout.meta["pos"] == row["pos"]
    assert w.locus_table.value.count("<tr>") == want.height + 1


def test_cancel_leaves_the_widget_cancelled_and_no_output(hail_session, cat, tmp_path):
    import hail as hl

    out = tmp_path / "cancelled"
    w = GwasWidget(cat, DEFINITION, out=out)
    set_up(w)
    in_qc = threading.Event()
    w.status.observe(lambda c: c.new.startswith("sample and variant QC") and in_qc.set(),
                     "value")
    w.run_button.click()
    assert in_qc.wait(TIMEOUT)
    time.sleep(1.0)                           # QC's Spark jobs are running
    start = time.perf_counter()
    w.cancel_button.click()
    assert w.wait(120), "cancel did not stop the run"
    took = time.perf_counter() - start
    print(f"cancel took effect in {took:.1f} s")
    assert w.state == "cancelled" and w.status.value == "cancelled", w.message.value
    assert w.interrupted                      # stopped inside QC, not at the next step
    assert w.study is None and w.error is None and w.message.value == ""
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []     # no half-written temp folder either
    assert not w.run_button.disabled and w.cancel_button.disabled
    assert hl.utils.range_table(10).count() == 10     # Hail still works afterwards


def test_bad_trait_is_a_readable_message(hail_session, cat, tmp_path):
    w = GwasWidget(cat, DEFINITION, out=tmp_path / "bad")
    set_up(w)
    w.trait.value = "cholesterolz"          # typed into the combobox: not a phenotype
    w.run_button.click()
    assert w.wait(TIMEOUT)
    assert w.state == "error" and w.status.value == "failed"
    assert "unknown phenotype or covariate cholesterolz" in w.message.value
    assert "Hint: choose from age, female" in w.message.value
    assert "Traceback" not in w.message.value and "File " not in w.message.value
    assert not (tmp_path / "bad").exists()
