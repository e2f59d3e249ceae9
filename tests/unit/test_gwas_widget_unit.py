"""The GWAS widget's pure parts (locus view, variant ids, QC boxes) and its run/cancel
logic with a stand-in for run_gwas: no Java.

The locus view is checked against a hand-written Polars filter on random results,
including variants exactly at the window's edges and on other chromosomes.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cohort.builder import age, cohort, screening
from genomics.qc import QCParams
from genomics.widgets import (
    STEPS,
    GwasWidget,
    locus_figure,
    locus_view,
    parse_variant,
    qc_params_from,
    step_of,
)
from workbench import catalog
from workbench.errors import UsageError


def random_results(seed: int, n: int = 3_000) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "chrom": rng.choice(["chr1", "chr2", "chrX"], n).tolist(),
        "pos": rng.integers(1, 2_000_000, n),
        "ref": ["A"] * n, "alt": ["G"] * n, "n": [500] * n,
        "beta": rng.normal(size=n), "se": rng.uniform(0.1, 1, n),
        "t_stat": rng.normal(size=n), "p_value": rng.uniform(0, 1, n)})


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("window_kb", [0, 1, 37.5, 250])
def test_locus_view_equals_a_hand_written_filter(seed, window_kb):
    res = random_results(seed)
    rng = np.random.default_rng(100 + seed)
    for row in rng.choice(res.height, 5, replace=False):
        chrom, pos = res["chrom"][int(row)], int(res["pos"][int(row)])
        got = locus_view(res, chrom, pos, window_kb=window_kb)
        lo, hi = pos - window_kb * 1000, pos + window_kb * 1000
        want = res.filter((pl.col("chrom") == chrom) & (pl.col("pos") >= lo)
                          & (pl.col("pos") <= hi)).sort("pos")
        assert_frame_equal(got, want)
        assert got.height >= 1 and pos in got["pos"].to_list()


def test_locus_view_edges_are_inclusive_and_other_chromosomes_excluded():
    res = pl.DataFrame({"chrom": ["chr1"] * 5 + ["chr2"],
                        "pos": [49_999, 50_000, 100_000, 150_000, 150_001, 100_000],
                        "p_value": [0.1] * 6})
    got = locus_view(res, "chr1", 100_000, window_kb=50)
    assert got["pos"].to_list() == [50_000, 100_000, 150_000]
    assert got["chrom"].unique().to_list() == ["chr1"]
    assert locus_view(res, "chr3", 100_000, window_kb=50).height == 0


def test_locus_view_rejects_bad_input():
    res = random_results(0, 10)
    with pytest.raises(UsageError, match="window_kb must be >= 0"):
        locus_view(res, "chr1", 1, window_kb=-1)
    with pytest.raises(UsageError, match="lack column.*pos"):
        locus_view(res.drop("pos"), "chr1", 1, window_kb=1)


def test_locus_figure_marks_the_clicked_variant():
    res = random_results(1)
    chrom, pos = res["chrom"][0], int(res["pos"][0])
    locus = locus_view(res, chrom, pos, window_kb=100)
    fig = locus_figure(locus, chrom, pos, window_kb=100)
    rest, centre = fig.data
    assert list(centre.x) == [pos] * locus.filter(pl.col("pos") == pos).height
    assert len(rest.x) + len(centre.x) == locus.height
    assert fig.layout.meta["n"] == locus.height
    assert tuple(fig.layout.xaxis.range) == (pos - 100_000, pos + 100_000)
    assert centre.customdata[0][0].startswith(f"{chrom}:{pos}:")


def test_parse_variant_and_steps():
    assert parse_variant("chrX:155:A:AT") == ("chrX", 155)
    with pytest.raises(UsageError, match="not chrom:pos:ref:alt"):
        parse_variant("chr1-155")
    assert step_of("loading genotypes (cached MatrixTable)") == 1
    assert step_of("warning: something") is None
    assert [step_of(s) for s in STEPS] == list(range(len(STEPS)))


def test_qc_params_from_fields_and_unknown_names():
    assert qc_params_from({}) == QCParams()
    assert qc_params_from({"min_mac": 5, "relatedness": True}) == QCParams(
        min_mac=5, relatedness=True)
    with pytest.raises(UsageError, match="unknown QC parameter.*min_mag"):
        qc_params_from({"min_mag": 1})


# ---- the widget with a stand-in for run_gwas -------------------------------------------


@pytest.fixture(scope="module")
def cat(small_release):
    c = catalog.open(small_release)
    yield c
    c.close()


DEFINITION = cohort("adults with LDL").entry(screening("ldl_cholesterol", 0, None)).require(
    "adults", age(18, None)).build()


class FakeRun:
    """Walks run_gwas's steps, writing nothing; can block at a step until released."""

    def __init__(self, results: pl.DataFrame, *, block_at: str | None = None,
                 error: Exception | None = None):
        self.results, self.block_at, self.error = results, block_at, error
        self.at_block, self.release = threading.Event(), threading.Event()
        self.calls: list[dict] = []

    def __call__(self, definition, cat, *, progress, warn, **kw):
        self.calls.append(kw)
        for step in STEPS:
            progress(step)
            if step == self.block_at:
                self.at_block.set()
                self.release.wait(10)
            if self.error is not None and step == STEPS[2]:
                raise self.error
        warn("< 20 members lack a sample")
        result = SimpleNamespace(results=self.results, trait=kw["trait"], lambda_gc=1.01,
                                 top_hits=lambda n: self.results.filter(
                                     pl.col("p_value") < 5e-8).head(n))
        return SimpleNamespace(result=result, out=kw["out"])


def test_widget_passes_its_settings_and_shows_results(cat, tmp_path):
    res = random_results(2)
    fake = FakeRun(res)
    w = GwasWidget(cat, DEFINITION, out=tmp_path / "g", runner=fake)
    w.trait.value = "bmi"
    w.covariates.value = ("age",)
    w.pcs.value = 3
    w.qc_controls["min_maf"].value = 0.05
    w.qc_controls["sex_check"].value = False
    assert len(w.qc_controls) == len(dataclasses.fields(QCParams))
    w.run_button.click()
    assert w.wait(10) and w.state == "done", w.message.value
    assert fake.calls == [{"trait": "bmi", "covariates": ["age"], "pcs": 3,
                           "out": tmp_path / "g", "cases": None,
                           "qc_params": QCParams(min_maf=0.05, sex_check=False)}]
    assert w.progress.value == len(STEPS) and "λGC = 1.010" in w.lambda_label.value
    assert "warning: &lt; 20 members lack a sample" in w.warnings.value
    assert w.manhattan is not None and w.qq is not None


def test_widget_cancel_stops_before_the_next_step(cat, tmp_path):
    fake = FakeRun(random_results(3), block_at="sample and variant QC")
    w = GwasWidget(cat, DEFINITION, out=tmp_path / "g", runner=fake)
    w.run_button.click()
    assert fake.at_block.wait(10)
    assert w.state == "running" and w.run_button.disabled and not w.cancel_button.disabled
    w.cancel_button.click()
    fake.release.set()
    assert w.wait(10)
    assert w.state == "cancelled" and w.status.value == "cancelled"
    assert w.study is None and w.progress.value == STEPS.index("sample and variant QC")
    assert not w.run_button.disabled and w.cancel_button.disabled


def test_widget_shows_errors_as_messages(cat, tmp_path):
    fake = FakeRun(random_results(4), error=UsageError("unknown phenotype x", hint="pick y"))
    w = GwasWidget(cat, DEFINITION, out=tmp_path / "g", runner=fake)
    w.run_button.click()
    assert w.wait(10) and w.state == "error"
    assert "unknown phenotype x<br>Hint: pick y" in w.message.value
    assert "Traceback" not in w.message.value
    w.out.value = " "
    w.run_button.click()                 # refused before any thread starts
    assert w.state == "error" and "no output folder" in w.message.value
    assert len(fake.calls) == 1
    w.out.value = str(tmp_path / "h")
    w.trait_kind.value = "cases"
    w.cases_file.value = str(tmp_path / "missing.json")
    w.run_button.click()
    assert w.state == "error" and "missing.json" in w.message.value


def test_case_cohort_passed_in_becomes_the_binary_trait(cat, tmp_path):
    cases = cohort("diabetes").entry(screening("fasting_glucose", 7.0, None)).build()
    fake = FakeRun(random_results(5))
    w = GwasWidget(cat, DEFINITION, cases=[cases], out=Path(tmp_path / "g"), runner=fake)
    w.trait_kind.value = "cases"
    assert w.cases in w._trait_box.children and w.trait not in w._trait_box.children
    w.run_button.click()
    assert w.wait(10) and w.state == "done", w.message.value
    assert fake.calls[0]["cases"] == cases and fake.calls[0]["trait"] == "diabetes"
