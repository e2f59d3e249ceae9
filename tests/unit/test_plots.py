"""GWAS plots (genomics.plots) on synthetic results, no Hail.

- a 1,000,000-variant frame (uniform p, 50 planted tiny p-values): the Manhattan plot keeps
  every p < 1e-5 variant, draws at most max_points + that many, orders chromosomes
  1..22, X end to end, and hovers show id, p and beta;
- the QQ plot's lambda GC equals genomics.stats.lambda_gc, the 1,000 smallest p-values are
  drawn exactly and the rest thinned under max_points;
- errors for missing columns and empty frames; NaN p dropped and counted, p = 0 kept.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import polars as pl
import pytest

from genomics.plots import manhattan, qq
from genomics.stats import lambda_gc

N = 1_000_000
CHROMS = [f"chr{i}" for i in range(1, 23)] + ["chrX"]
PLANTED = np.arange(50) * 19_997 + 123          # row numbers of the planted hits


@pytest.fixture(scope="module")
def gwas() -> pl.DataFrame:
    rng = np.random.default_rng(20240611)
    rows = np.arange(N)
    bases = pl.Series(["A", "C", "G", "T"])
    p = rng.uniform(0.0, 1.0, N)
    p[PLANTED] = 10.0 ** -rng.uniform(8, 30, PLANTED.size)
    return pl.DataFrame({
        "chrom": pl.Series(CHROMS).gather(rows % 23),
        "pos": (rows // 23) * 50 + rng.integers(1, 50, N),      # unique per chromosome
        "ref": bases.gather(rng.integers(0, 4, N)),
        "alt": bases.gather(rng.integers(0, 4, N)),
        "beta": rng.normal(0, 0.05, N),
        "p_value": p,
    })


@pytest.fixture(scope="module")
def man(gwas: pl.DataFrame) -> go.Figure:
    return manhattan(gwas, max_points=50_000)


def ids_of(df: pl.DataFrame) -> list[str]:
    return df.select(pl.concat_str(["chrom", pl.col("pos").cast(pl.Utf8), "ref", "alt"],
                                   separator=":")).to_series().to_list()


def points(fig: go.Figure) -> list[tuple[str, float, float, float, float]]:
    """(id, p, beta, x, y) of every marker drawn."""
    out = []
    for tr in fig.data:
        if tr.customdata is not None:
            out += [(c[0], c[1], c[2], x, y)
                    for c, x, y in zip(tr.customdata, tr.x, tr.y, strict=True)]
    return out


def tiny(**cols) -> pl.DataFrame:
    n = len(cols["p_value"])
    base = {"chrom": ["chr1"] * n, "pos": list(range(1, n + 1)), "ref": ["A"] * n,
            "alt": ["G"] * n, "beta": [0.1] * n}
    return pl.DataFrame({**base, **cols})


def test_manhattan_keeps_every_suggestive_variant_and_thins_the_rest(gwas, man):
    sig = gwas.filter(pl.col("p_value") < 1e-5)
    assert sig.height >= PLANTED.size
    drawn = points(man)
    ids = {d[0] for d in drawn}
    assert set(ids_of(sig)) <= ids
    assert len(drawn) == len(ids)                        # no variant drawn twice
    assert len(drawn) <= 50_000 + sig.height
    assert len(drawn) > 10_000                           # thinned, not emptied
    meta = man.layout.meta
    assert meta["n_total"] == N and meta["n_shown"] == len(drawn)
    assert meta["n_suggestive"] == sig.height
    assert meta["n_significant"] == gwas.filter(pl.col("p_value") < 5e-8).height
    assert f"{len(drawn):,} of {N:,} variants shown" in man.layout.title.text


def test_manhattan_thinned_points_span_the_genome_and_the_p_range(man):
    drawn = points(man)
    chroms = {d[0].split(":")[0] for d in drawn}
    assert chroms == set(CHROMS)
    ys = np.array([d[4] for d in drawn if d[1] >= 1e-5])
    assert ys.min() < 0.01 and ys.max() > 4                # bulk and upper tail both drawn


def test_manhattan_orders_chromosomes_end_to_end(man):
    drawn = points(man)
    by_chrom = {c: [d[3] for d in drawn if d[0].startswith(c + ":")] for c in CHROMS}
    for a, b in zip(CHROMS, CHROMS[1:], strict=False):
        assert max(by_chrom[a]) < min(by_chrom[b]), (a, b)
    assert list(man.layout.xaxis.ticktext) == [c.removeprefix("chr") for c in CHROMS]
    ticks = list(man.layout.xaxis.tickvals)
    assert ticks == sorted(ticks)
    for c, t in zip(CHROMS, ticks, strict=True):
        assert min(by_chrom[c]) < t < max(by_chrom[c])


def test_manhattan_alternates_two_colours_by_chromosome(man):
    colours = {}
    for tr in man.data:
        for c in tr.customdata:
            colours.setdefault(c[0].split(":")[0], set()).add(tr.marker.color)
    assert all(len(v) == 1 for v in colours.values())
    seq = [colours[c].pop() for c in CHROMS]
    assert len(set(seq)) == 2 and all(a != b for a, b in zip(seq, seq[1:], strict=False))


def test_manhattan_hover_shows_id_p_and_beta_of_a_planted_variant(gwas, man):
    row = gwas.row(int(PLANTED[7]), named=True)
    vid = f"{row['chrom']}:{row['pos']}:{row['ref']}:{row['alt']}"
    hit = [d for d in points(man) if d[0] == vid]
    assert len(hit) == 1
    _, p, beta, _, y = hit[0]
    assert p == row["p_value"] and beta == row["beta"]
    assert y == pytest.approx(-math.log10(row["p_value"]))
    tmpl = man.data[0].hovertemplate
    assert "%{customdata[0]}" in tmpl
    assert "%{customdata[1]:.2e}" in tmpl and "%{customdata[2]:.3g}" in tmpl


def test_manhattan_threshold_lines():
    fig = manhattan(tiny(p_value=[1e-9, 0.5]), significance=1e-8, suggestive=1e-4)
    lines = {s.line.dash: s.y0 for s in fig.layout.shapes}
    assert lines == {"dash": pytest.approx(8.0), "dot": pytest.approx(4.0)}


def test_manhattan_natural_order_with_mixed_chromosome_names():
    df = tiny(p_value=[0.1] * 6).with_columns(
        chrom=pl.Series(["chrM", "X", "chr10", "2", "chrY", "MT"]))
    fig = manhattan(df)
    assert list(fig.layout.xaxis.ticktext) == ["2", "10", "X", "Y", "M"]
    assert fig.layout.meta["chromosomes"] == ["2", "10", "X", "Y", "M"]


def test_manhattan_is_deterministic_and_keeps_suggestive_beyond_max_points():
    rng = np.random.default_rng(1)
    p = rng.uniform(size=5_000)
    p[:300] = 1e-7
    df = tiny(p_value=p.tolist())
    a, b = manhattan(df, max_points=100), manhattan(df, max_points=100)
    assert [d[0] for d in points(a)] == [d[0] for d in points(b)]
    assert len(points(a)) == 300                         # budget spent on suggestive ones
    assert manhattan(df, max_points=1_000).layout.meta["n_shown"] <= 1_000


def test_nan_and_null_p_dropped_and_counted_zero_p_kept():
    df = tiny(p_value=[0.0, float("nan"), None, 0.3, 1e-12])
    for fig in (manhattan(df), qq(df)):
        meta = fig.layout.meta
        assert meta["n_total"] == 5 and meta["n_shown"] == 3
        assert meta["n_missing_p"] == 2 and meta["n_p_zero"] == 1
        assert "2 without a p-value dropped" in fig.layout.title.text
    ys = {d[0]: d[4] for d in points(manhattan(df))}
    assert ys["chr1:1:A:G"] == pytest.approx(-math.log10(5e-324))
    assert ys["chr1:1:A:G"] > ys["chr1:5:A:G"] == pytest.approx(12.0)


def test_qq_lambda_top_points_and_thinning(gwas):
    fig = qq(gwas, max_points=20_000)
    meta = fig.layout.meta
    assert abs(meta["lambda_gc"] - lambda_gc(gwas["p_value"].to_numpy())) < 1e-9
    assert 0.95 < meta["lambda_gc"] < 1.05
    assert f"{meta['lambda_gc']:.3f}" in fig.layout.title.text
    drawn = points(fig)
    assert len(drawn) == meta["n_shown"] <= 20_000
    top = gwas.sort("p_value").head(1_000)
    drawn_ids = [d[0] for d in drawn]
    assert drawn_ids[:1_000] == ids_of(top)
    ys = np.array([d[4] for d in drawn[:1_000]])
    np.testing.assert_allclose(ys, -np.log10(top["p_value"].to_numpy()))
    xs = np.array([d[3] for d in drawn])
    assert np.all(np.diff(xs) < 0)                       # expected -log10 p, descending
    assert xs[0] == pytest.approx(-math.log10(0.5 / N))
    assert xs[-1] == pytest.approx(-math.log10(1 - 0.5 / N))
    low, mid = ((xs >= 0) & (xs < 1)).sum(), ((xs >= 1) & (xs < 2)).sum()
    assert low > 5_000                                   # ~ (20,000 - 1,000) / 3 per unit
    assert low == pytest.approx(mid, rel=0.05)           # bulk even on the expected scale
    ref = fig.data[0]
    assert list(ref.x) == list(ref.y)                    # the y = x line


def test_qq_small_max_points():
    fig = qq(tiny(p_value=np.linspace(0.001, 1, 50).tolist()), max_points=10)
    assert fig.layout.meta["n_shown"] == 10
    assert [d[1] for d in points(fig)] == pytest.approx(np.linspace(0.001, 1, 50)[:10])


@pytest.mark.parametrize("plot", [manhattan, qq])
def test_missing_columns_and_empty_frames_are_clear_errors(plot):
    name = plot.__name__
    df = tiny(p_value=[0.1]).drop("p_value", "ref")
    msg = (f"{name}: results lack column(s) ref, p_value; "
           "expected chrom, pos, ref, alt, beta, p_value")
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        plot(df)
    with pytest.raises(ValueError, match=f"{name}: nothing to plot, the results frame is empty"):
        plot(tiny(p_value=[0.5]).clear())
    with pytest.raises(ValueError, match="nothing to plot.*no row with a p-value"):
        plot(tiny(p_value=[float("nan"), None]))
    with pytest.raises(ValueError, match="max_points must be at least 1"):
        plot(tiny(p_value=[0.5]), max_points=0)
