"""GWAS result plots with plotly, with no Hail: a Manhattan plot and a QQ plot.

Both take a Polars frame with columns chrom, pos, ref, alt, beta, p_value (as
``genomics.assoc`` writes them) and downsample millions of variants to tens of thousands
of points; how many were shown, dropped (missing p) or underflowed (p = 0) is in
``fig.layout.meta`` and in the subtitle.

>>> df = pl.DataFrame({"chrom": ["chr1", "chr2", "X"], "pos": [10, 20, 30],
...                    "ref": ["A", "C", "G"], "alt": ["G", "T", "A"],
...                    "beta": [0.2, -0.1, 0.05], "p_value": [1e-9, 0.4, 0.7]})
>>> manhattan(df).layout.meta["n_shown"]
3
>>> qq(df).layout.meta["n_shown"]
3
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import polars as pl

from genomics.stats import GENOME_WIDE, SUGGESTIVE, expected_p, lambda_gc
from workbench.errors import UsageError

REQUIRED = ("chrom", "pos", "ref", "alt", "beta", "p_value")
COLOURS = ("#1f4e79", "#6fa8dc")
_ORDER = {**{str(i): i for i in range(1, 23)}, "X": 23, "Y": 24, "M": 25}
_TINY = float(np.nextafter(0.0, 1.0))        # p = 0 (underflow) is drawn here: y ~ 323.3
_HOVER = ("%{customdata[0]}<br>p = %{customdata[1]:.2e}<br>beta = %{customdata[2]:.3g}"
          "<extra></extra>")


class PlotInputError(UsageError, ValueError):
    """Results a plot cannot be drawn from (missing columns, no rows with a p-value)."""


def _valid(results: pl.DataFrame, fn: str) -> tuple[pl.DataFrame, int]:
    """The rows with a p-value (NaN and null dropped) and how many were dropped."""
    missing = [c for c in REQUIRED if c not in results.columns]
    if missing:
        raise PlotInputError(f"{fn}: results lack column(s) {', '.join(missing)}; "
                             f"expected {', '.join(REQUIRED)}",
                             hint="pass the frame genomics.assoc returns (GwasResult.results)")
    df = results.select(REQUIRED).filter(pl.col("p_value").cast(pl.Float64).fill_nan(None)
                                         .is_not_null())
    if df.is_empty():
        what = "is empty" if results.is_empty() else "has no row with a p-value"
        raise PlotInputError(f"{fn}: nothing to plot, the results frame {what}",
                             hint="check the association ran and returned variants")
    return df, results.height - df.height


def _neg_log10(p: np.ndarray) -> np.ndarray:
    """-log10 p, with p = 0 drawn at the smallest positive float64."""
    return -np.log10(np.maximum(p, _TINY))


def _hover(df: pl.DataFrame) -> np.ndarray:
    """customdata rows [chrom:pos:ref:alt, p, beta] for the hover template."""
    ids = df.select(pl.concat_str([pl.col("chrom").cast(pl.Utf8), pl.col("pos").cast(pl.Utf8),
                                   "ref", "alt"], separator=":")).to_series().to_list()
    cols = [ids, df["p_value"].to_list(), df["beta"].to_list()]
    return np.array(list(zip(*cols, strict=True)), dtype=object).reshape(-1, 3)


def _chromosomes(labels: pl.Series) -> list[str]:
    """Chromosome labels in natural order: 1..22, X, Y, M, then any other contig by name."""
    return sorted(labels.unique().to_list(), key=lambda c: (_ORDER.get(c, 26), c))


def _thin(x: np.ndarray, y: np.ndarray, budget: int) -> np.ndarray:
    """Indices of at most budget points, one per cell of an x by y grid (deterministic)."""
    if x.size <= budget:
        return np.arange(x.size)
    if budget < 1:
        return np.arange(0)
    span_x, span_y = np.ptp(x) or 1.0, np.ptp(y) or 1.0
    for cells in (8 * budget, 4 * budget, 2 * budget, budget):   # finest grid that fits
        ny = max(1, min(100, int(np.sqrt(cells / 10))))
        nx = max(1, cells // ny)
        bx = np.minimum(((x - x.min()) / span_x * nx).astype(np.int64), nx - 1)
        by = np.minimum(((y - y.min()) / span_y * ny).astype(np.int64), ny - 1)
        _, first = np.unique(bx * ny + by, return_index=True)
        if first.size <= budget:
            return np.sort(first)
    raise AssertionError("unreachable: a grid of budget cells keeps at most budget points")


def _subtitle(title: str, meta: dict) -> str:
    note = f"{meta['n_shown']:,} of {meta['n_total']:,} variants shown"
    if meta["n_missing_p"]:
        note += f"; {meta['n_missing_p']:,} without a p-value dropped"
    if meta["n_p_zero"]:
        note += f"; {meta['n_p_zero']:,} with p = 0 drawn at 1e-323"
    return f"{title}<br><sup>{note}</sup>"


def _check_max_points(fn: str, max_points: int) -> None:
    if max_points < 1:
        raise PlotInputError(f"{fn}: max_points must be at least 1, got {max_points}")


def manhattan(results: pl.DataFrame, *, max_points: int = 50_000,
              significance: float = GENOME_WIDE, suggestive: float = SUGGESTIVE,
              title: str | None = None) -> go.Figure:
    """Manhattan plot: -log10 p by genome position, chromosomes 1..22, X, Y, M end to end.

    Every variant with p < suggestive is drawn; the others are thinned to one per cell of
    a position by -log10 p grid so that at most max_points points are drawn in all (more
    only when more than max_points variants are suggestive). Rows without a p-value are
    dropped and counted; p = 0 is drawn at the smallest positive float64 (y ~ 323.3).
    Dashed line: significance; dotted line: suggestive. Raises ValueError (PlotInputError)
    on missing columns or nothing to plot.

    Examples:
    >>> df = pl.DataFrame({"chrom": ["2", "chr1", "chr1"], "pos": [5, 100, 50],
    ...                    "ref": ["A", "C", "G"], "alt": ["G", "T", "A"],
    ...                    "beta": [0.5, 0.1, None], "p_value": [0.0, 2e-9, float("nan")]})
    >>> fig = manhattan(df)
    >>> {k: fig.layout.meta[k] for k in ("n_total", "n_shown", "n_missing_p", "n_p_zero")}
    {'n_total': 3, 'n_shown': 2, 'n_missing_p': 1, 'n_p_zero': 1}
    >>> list(fig.layout.xaxis.ticktext)
    ['1', '2']
    """
    _check_max_points("manhattan", max_points)
    df, n_missing = _valid(results, "manhattan")
    label = (pl.col("chrom").cast(pl.Utf8).str.replace(r"^(?i)chr", "").str.to_uppercase()
             .replace({"MT": "M"}))
    df = df.with_columns(label.alias("_label"))
    order = _chromosomes(df["_label"])
    ends = df.group_by("_label").agg(pl.col("pos").max()).rows()
    length = dict(ends)
    offsets = np.cumsum([0] + [length[c] for c in order])
    rank = {c: i for i, c in enumerate(order)}
    df = df.with_columns(pl.col("_label").replace_strict(rank, return_dtype=pl.Int64)
                         .alias("_rank")).sort("_rank", "pos")
    p = df["p_value"].cast(pl.Float64).to_numpy()
    x = df["pos"].cast(pl.Float64).to_numpy() + offsets[df["_rank"].to_numpy()]
    y = _neg_log10(p)
    keep_all = p < suggestive
    rest = np.flatnonzero(~keep_all)
    thinned = rest[_thin(x[rest], y[rest], max_points - int(keep_all.sum()))]
    shown = np.sort(np.concatenate([np.flatnonzero(keep_all), thinned]))
    sub = df[shown]
    fig = go.Figure()
    for parity in (0, 1):
        part = np.flatnonzero(sub["_rank"].to_numpy() % 2 == parity)
        fig.add_trace(go.Scattergl(
            x=x[shown][part], y=y[shown][part], mode="markers", showlegend=False,
            marker={"color": COLOURS[parity], "size": 4}, customdata=_hover(sub[part]),
            hovertemplate=_HOVER, name=f"chromosomes {'odd' if parity == 0 else 'even'}"))
    fig.add_hline(y=-np.log10(significance), line_dash="dash", line_color="#c0392b")
    fig.add_hline(y=-np.log10(suggestive), line_dash="dot", line_color="#7f8c8d")
    meta = {"n_total": results.height, "n_shown": int(shown.size), "n_missing_p": n_missing,
            "n_p_zero": int((p == 0).sum()), "n_suggestive": int(keep_all.sum()),
            "n_significant": int((p < significance).sum()), "chromosomes": order}
    centres = (offsets[:-1] + offsets[1:]) / 2
    fig.update_layout(
        meta=meta, title=_subtitle(title or "Manhattan plot", meta), template="plotly_white",
        xaxis={"title": "chromosome", "tickvals": centres.tolist(), "ticktext": order,
               "showgrid": False},
        yaxis={"title": "-log10 p", "rangemode": "tozero"})
    return fig


def qq(results: pl.DataFrame, *, max_points: int = 20_000,
       title: str | None = None) -> go.Figure:
    """QQ plot: observed against expected -log10 p, with a y = x line and lambda GC.

    The 1,000 smallest p-values (fewer if max_points is smaller) are drawn exactly; the
    bulk is thinned to points evenly spaced on the expected -log10 p scale, at most
    max_points in all. lambda GC (genomics.stats.lambda_gc of the input p-values) is in
    the title and in ``fig.layout.meta["lambda_gc"]``.

    Examples:
    >>> df = pl.DataFrame({"chrom": ["chr1"] * 4, "pos": [1, 2, 3, 4],
    ...                    "ref": ["A"] * 4, "alt": ["G"] * 4, "beta": [0.1] * 4,
    ...                    "p_value": [0.125, 0.375, 0.625, 0.875]})
    >>> fig = qq(df)
    >>> round(fig.layout.meta["lambda_gc"], 3), fig.layout.meta["n_shown"]
    (1.0, 4)
    """
    _check_max_points("qq", max_points)
    df, n_missing = _valid(results, "qq")
    p_all = results["p_value"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
    lam = lambda_gc(p_all) if (p_all > 0).any() else float("nan")   # all p = 0: undefined
    df = df.sort("p_value")
    n = df.height
    observed = _neg_log10(df["p_value"].cast(pl.Float64).to_numpy())
    expected = -np.log10(expected_p(n))
    n_top = min(1_000, max_points, n)
    bulk = np.arange(0)
    if n > n_top and max_points > n_top:
        # targets evenly spaced on the expected scale; x_i = -log10((i + 0.5) / n)
        targets = np.linspace(expected[n_top], expected[-1], max_points - n_top)
        idx = np.clip(np.rint(n * 10.0 ** -targets - 0.5).astype(np.int64), n_top, n - 1)
        bulk = np.unique(idx)
    shown = np.concatenate([np.arange(n_top), bulk])
    top = float(max(expected[0], observed[0]))
    fig = go.Figure([
        go.Scatter(x=[0, top], y=[0, top], mode="lines", name="y = x",
                   line={"dash": "dash", "color": "#7f8c8d"}, hoverinfo="skip"),
        go.Scattergl(x=expected[shown], y=observed[shown], mode="markers", name="variants",
                     marker={"color": COLOURS[0], "size": 4},
                     customdata=_hover(df[shown]), hovertemplate=_HOVER)])
    meta = {"n_total": results.height, "n_shown": int(shown.size), "n_missing_p": n_missing,
            "n_p_zero": int((df["p_value"] == 0).sum()), "n_top_exact": n_top,
            "lambda_gc": lam}
    fig.update_layout(
        meta=meta, template="plotly_white", showlegend=False,
        title=_subtitle(f"{title or 'QQ plot'} (λGC = {lam:.3f})", meta),
        xaxis={"title": "expected -log10 p"}, yaxis={"title": "observed -log10 p"})
    return fig
