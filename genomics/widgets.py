"""The GWAS widget for JupyterLab (ipywidgets 8, plotly FigureWidget).

``GwasWidget(cat, definition)`` sets up :func:`genomics.study.run_gwas` for a cohort: the
trait (a screening or measurement value from :func:`genomics.link.phenotype_names`, or
membership of a case cohort: one passed in, or a definition JSON file), covariates, the
number of PCs, the QC thresholds (one box per field of :class:`genomics.qc.QCParams`,
with its default) and the output folder. "Run" runs the study on a background thread; a
label and a progress bar follow its steps. "Cancel" stops it: the next step does not
start, and the running Spark jobs (or DuckDB query) are interrupted; the widget ends in
the ``cancelled`` state with no output folder (``run_gwas`` writes atomically). Errors
show as a message in the widget, never as a traceback.

Results: an interactive Manhattan plot (hover: variant, p, beta) and a QQ plot with
lambda GC. Clicking a point of the Manhattan plot shows its locus: every variant within
``window`` kb of it (:func:`locus_view`), as a plot and a table.

The logic lives in pure functions that need neither Hail nor a front end:

>>> import polars as pl
>>> res = pl.DataFrame({"chrom": ["chr1", "chr1", "chr1", "chr2"],
...                     "pos": [1_000, 51_000, 51_001, 1_000], "ref": ["A"] * 4,
...                     "alt": ["G"] * 4, "beta": [0.1, 0.2, 0.3, 0.4],
...                     "p_value": [1e-3, 0.5, 0.2, 1e-9]})
>>> locus_view(res, "chr1", 1_000, window_kb=50)["pos"].to_list()
[1000, 51000]
>>> parse_variant("chr1:51000:A:G")
('chr1', 51000)
>>> step_of("principal components (k=10)")
4
>>> qc_params_from({"min_maf": 0.05}).min_maf
0.05
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import html
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
import polars as pl

from cohort import io
from cohort import model as m
from genomics import plots
from genomics.link import phenotype_names
from genomics.qc import QCParams
from workbench.catalog import Catalog
from workbench.errors import UsageError, WorkbenchError

__all__ = ["GwasCancelled", "GwasWidget", "locus_figure", "locus_view", "parse_variant",
           "qc_params_from", "step_of"]

# the messages run_gwas reports, in order (matched by prefix)
STEPS = ("running the cohort", "loading genotypes", "linking members",
         "sample and variant QC", "principal components", "association", "writing results")
State = Literal["idle", "running", "done", "error", "cancelled"]
LOCUS_COLUMNS = ("chrom", "pos", "ref", "alt", "beta", "se", "p_value")


class GwasCancelled(WorkbenchError):
    """The run was cancelled from the widget before it finished."""


def step_of(message: str) -> int | None:
    """The index in ``STEPS`` of a progress message of ``run_gwas`` (None: not a step)."""
    for i, step in enumerate(STEPS):
        if message.startswith(step):
            return i
    return None


def parse_variant(variant: str) -> tuple[str, int]:
    """Chromosome and position of a ``chrom:pos:ref:alt`` id (the plots' hover id)."""
    try:
        chrom, pos, _ref, _alt = variant.rsplit(":", 3)
        return chrom, int(pos)
    except ValueError:
        raise UsageError(f"parse_variant: {variant!r} is not chrom:pos:ref:alt") from None


def locus_view(results: pl.DataFrame, chrom: str, pos: int, *,
               window_kb: float) -> pl.DataFrame:
    """The variants of ``results`` on ``chrom`` within ``window_kb`` kilobases of ``pos``
    (both ends inclusive: ``pos - 1000 * window_kb <= position <= pos + 1000 * window_kb``),
    sorted by position. Raises UsageError for a negative window or missing columns."""
    if window_kb < 0:
        raise UsageError(f"locus_view: window_kb must be >= 0, got {window_kb}")
    missing = [c for c in ("chrom", "pos") if c not in results.columns]
    if missing:
        raise UsageError(f"locus_view: results lack column(s) {', '.join(missing)}",
                         hint="pass GwasResult.results (chrom, pos, ref, alt, ..., p_value)")
    half = 1000 * window_kb
    return (results.filter((pl.col("chrom") == chrom)
                           & (pl.col("pos") >= pos - half) & (pl.col("pos") <= pos + half))
            .sort("pos"))


def locus_figure(locus: pl.DataFrame, chrom: str, pos: int, *, window_kb: float) -> go.Figure:
    """-log10 p by position around ``chrom:pos`` (that variant in red), same hover as the
    Manhattan plot; ``fig.layout.meta`` holds the centre, the window and the count."""
    centre = locus.filter(pl.col("pos") == pos)
    rest = locus.filter(pl.col("pos") != pos)
    fig = go.Figure()
    for part, colour, name in ((rest, plots.COLOURS[0], "variants"),
                               (centre, "#c0392b", "clicked")):
        p = part["p_value"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
        fig.add_trace(go.Scatter(
            x=part["pos"].to_list(), y=(-np.log10(np.maximum(p, plots._TINY))).tolist(),
            mode="markers", name=name, marker={"color": colour, "size": 7},
            customdata=plots._hover(part) if part.height else None,
            hovertemplate=plots._HOVER))
    half = 1000 * window_kb
    fig.add_hline(y=-np.log10(plots.GENOME_WIDE), line_dash="dash", line_color="#c0392b")
    fig.update_layout(
        meta={"chrom": chrom, "pos": pos, "window_kb": window_kb, "n": locus.height},
        title=f"{chrom}:{pos:,} ± {window_kb:g} kb ({locus.height} variants)",
        template="plotly_white", showlegend=False,
        xaxis={"title": f"position on {chrom}", "range": [pos - half, pos + half]},
        yaxis={"title": "-log10 p", "rangemode": "tozero"})
    return fig


def qc_params_from(values: Mapping[str, Any]) -> QCParams:
    """QCParams with the given fields set (the others at their defaults); unknown names
    raise UsageError."""
    names = {f.name for f in dataclasses.fields(QCParams)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise UsageError(f"unknown QC parameter(s) {', '.join(unknown)}",
                         hint="choose from " + ", ".join(sorted(names)))
    return QCParams(**values)


def _qc_control(f: dataclasses.Field) -> W.Widget:
    """A box for one QCParams field, from the type of its default."""
    label = f.name.replace("_", " ")
    style = {"description_width": "160px"}
    if isinstance(f.default, bool):
        return W.Checkbox(value=f.default, description=label, style=style, indent=False)
    if isinstance(f.default, int):
        return W.IntText(value=f.default, description=label, style=style)
    return W.FloatText(value=f.default, description=label, style=style)


def _html_table(df: pl.DataFrame, limit: int = 200) -> str:
    cols = [c for c in LOCUS_COLUMNS if c in df.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row)
                   + "</tr>" for row in df.select(cols).head(limit).iter_rows())
    more = f"<p>{df.height - limit} more not shown</p>" if df.height > limit else ""
    return f"<table class='wb-locus'><tr>{head}</tr>{body}</table>{more}"


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _message(e: BaseException) -> str:
    """What a user reads: a WorkbenchError's message and hint; the type and first line of
    anything else."""
    if isinstance(e, WorkbenchError):
        text = e.message + (f"\nHint: {e.hint}" if e.hint else "")
    else:
        first = (str(e).strip().splitlines() or [""])[0][:500]
        text = f"unexpected error ({type(e).__name__}): {first}"
    return html.escape(text).replace("\n", "<br>")


class GwasWidget(W.VBox):
    """Set up, run, cancel and explore a GWAS of ``definition`` (a Cohort, CohortSet or a
    definition JSON file) on the release ``cat``.

    ``cases``: case cohorts to offer as binary traits (a list of Cohorts, or a mapping
    from a label to a Cohort); any definition JSON file can be given in the widget too.
    ``runner`` replaces :func:`genomics.study.run_gwas` (for tests). After a run,
    ``state`` is ``done`` (``study`` holds the result), ``error`` (``error`` holds the
    exception) or ``cancelled``; ``wait()`` blocks until the run ends.
    """

    def __init__(self, cat: Catalog, definition: m.Cohort | m.CohortSet | str | Path, *,
                 cases: Sequence[m.Cohort] | Mapping[str, m.Cohort] = (),
                 trait: str = "ldl_cholesterol", covariates: Sequence[str] = ("age", "female"),
                 pcs: int = 10, out: str | Path = "outputs/gwas", window_kb: float = 250,
                 runner: Callable[..., Any] | None = None) -> None:
        self.cat = cat
        self.definition = (io.load(definition) if isinstance(definition, str | Path)
                           else definition)
        self.state: State = "idle"
        self.study: Any = None
        self.error: BaseException | None = None
        self.locus: pl.DataFrame | None = None
        self.interrupted = False     # cancelled inside a step (a Spark job or query stopped)
        self._runner = runner
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._finished.set()
        self._thread: threading.Thread | None = None
        self._worker_cat: Catalog | None = None
        self._lock = threading.Lock()

        names = phenotype_names()
        case_map = dict(cases) if isinstance(cases, Mapping) else {c.name: c for c in cases}
        wide = {"description_width": "120px"}
        self.trait_kind = W.ToggleButtons(
            options=[("measurement", "phenotype"), ("case cohort", "cases")],
            value="phenotype", description="trait is a", style=wide)
        self.trait = W.Combobox(value=trait, options=names, ensure_option=False,
                                description="trait", style=wide,
                                placeholder="a screening or measurement value")
        self.cases = W.Dropdown(options=[*case_map.items(), ("definition JSON file…", None)],
                                description="cases", style=wide)
        self.cases_file = W.Text(description="case JSON", style=wide,
                                 placeholder="path to a case cohort definition (.json)")
        self.covariates = W.SelectMultiple(options=names, value=tuple(covariates), rows=6,
                                           description="covariates", style=wide)
        self.pcs = W.BoundedIntText(value=pcs, min=0, max=50, description="PCs", style=wide)
        self.qc_controls = {f.name: _qc_control(f) for f in dataclasses.fields(QCParams)}
        self.out = W.Text(value=str(out), description="output folder", style=wide,
                          layout={"width": "480px"})
        self.run_button = W.Button(description="Run", button_style="primary", icon="play")
        self.cancel_button = W.Button(description="Cancel", icon="stop", disabled=True)
        self.progress = W.IntProgress(value=0, min=0, max=len(STEPS), description="progress")
        self.status = W.HTML("ready")
        self.message = W.HTML("")
        self.warnings = W.HTML("")
        self.lambda_label = W.HTML("")
        self.window = W.BoundedFloatText(value=window_kb, min=0, max=10_000, step=50,
                                         description="locus ± kb", style=wide)
        self.manhattan: go.FigureWidget | None = None
        self.qq: go.FigureWidget | None = None
        self.locus_fig: go.FigureWidget | None = None
        self.locus_table = W.HTML("<i>click a point of the Manhattan plot</i>")
        self.results_box = W.VBox([])

        self.trait_kind.observe(lambda _c: self._show_trait_controls(), "value")
        self.run_button.on_click(lambda _b: self.run())
        self.cancel_button.on_click(lambda _b: self.cancel())
        self._trait_box = W.VBox([])
        self._show_trait_controls()
        qc = W.Accordion([W.VBox(list(self.qc_controls.values()))], titles=("QC thresholds",))
        super().__init__([
            W.HTML(f"<b>GWAS of</b> {html.escape(self.definition.name)}"),
            self.trait_kind, self._trait_box, self.covariates, self.pcs, qc, self.out,
            W.HBox([self.run_button, self.cancel_button]),
            W.HBox([self.progress, self.status]), self.message, self.warnings,
            self.results_box])

    # ---- settings ---------------------------------------------------------------------

    def _show_trait_controls(self) -> None:
        binary = self.trait_kind.value == "cases"
        self._trait_box.children = [self.cases, self.cases_file] if binary else [self.trait]

    def qc_params(self) -> QCParams:
        """The QC thresholds as set in the boxes."""
        return qc_params_from({k: w.value for k, w in self.qc_controls.items()})

    def settings(self) -> dict[str, Any]:
        """The keyword arguments of ``run_gwas`` as set in the widget (raises
        WorkbenchError for what cannot be run: no output folder, no case definition)."""
        out = self.out.value.strip()
        if not out:
            raise UsageError("no output folder", hint="type a folder for the results")
        cases = None
        trait = self.trait.value.strip()
        if self.trait_kind.value == "cases":
            cases = self.cases.value
            if cases is None:
                path = self.cases_file.value.strip()
                if not path:
                    raise UsageError("no case cohort chosen",
                                     hint="pick one, or type the path of a definition JSON")
                cases = io.load(path)
            trait = cases.name
        elif not trait:
            raise UsageError("no trait chosen", hint="choose one of " +
                             ", ".join(phenotype_names()))
        return {"trait": trait, "covariates": list(self.covariates.value),
                "pcs": self.pcs.value, "out": Path(out), "cases": cases,
                "qc_params": self.qc_params()}

    # ---- running ----------------------------------------------------------------------

    def run(self) -> None:
        """Start the run on a background thread (what the Run button does)."""
        if self.state == "running":
            return
        self.error = None
        self.message.value = self.warnings.value = ""
        try:
            kwargs = self.settings()
        except WorkbenchError as e:
            self._fail(e)
            return
        self._cancel = threading.Event()      # fresh per run: an old run's helpers keep theirs
        self._finished = threading.Event()
        self.interrupted = False
        self.study = None
        self.locus = None
        self.results_box.children = []
        self._set_state("running", "starting")
        self.progress.value = 0
        self.progress.bar_style = "info"
        # the run's thread gets this context (the access session, workbench.access)
        self._thread = threading.Thread(target=contextvars.copy_context().run,
                                        args=(self._work, kwargs, self._finished),
                                        daemon=True, name="gwas-run")
        self._thread.start()

    def cancel(self) -> None:
        """Stop the run (what the Cancel button does): no further step starts, and the
        running DuckDB query and Spark jobs are interrupted -- every Spark job of this
        process until the run has stopped, so other Hail work in the same kernel at that
        moment is cancelled too."""
        if self.state != "running":
            return
        self._cancel.set()
        self.status.value = "cancelling…"
        with self._lock:
            if self._worker_cat is not None:
                self._worker_cat.connection.interrupt()
        from genomics.session import current

        if current() is not None:       # Hail (and Spark) run in this process
            threading.Thread(target=self._cancel_spark_jobs, args=(self._finished,),
                             daemon=True, name="gwas-cancel").start()

    def _cancel_spark_jobs(self, finished: threading.Event) -> None:
        """Cancel Spark's jobs until the run ends: a step runs several jobs, and one that
        starts just after a cancel would otherwise run to the end of the step."""
        import hail as hl

        sc = hl.spark_context()
        while True:
            sc.cancelAllJobs()
            if finished.wait(0.5):
                return

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run ends; False if it is still running after ``timeout`` s."""
        return self._finished.wait(timeout)

    def _work(self, kwargs: dict[str, Any], finished: threading.Event) -> None:
        # Hail makes an event loop for a thread that has none and never closes it; give it
        # this one, closed when the run ends
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            with self._lock:
                self._worker_cat = self.cat.cursor()
            runner = self._runner
            if runner is None:
                from genomics.study import run_gwas as runner
            study = runner(self.definition, self._worker_cat, progress=self._progress,
                           warn=self._warn, **kwargs)
        except BaseException as e:       # shown in the widget, never raised
            if self._cancel.is_set() or isinstance(e, GwasCancelled):
                self.interrupted = not isinstance(e, GwasCancelled)
                self._set_state("cancelled", "cancelled")
                self.progress.bar_style = "warning"
            else:
                self._fail(e)
        else:
            try:
                self._show_results(study)
            except Exception as e:
                self._fail(e)
            else:
                self.study = study
                self.progress.value = len(STEPS)
                self.progress.bar_style = "success"
                self._set_state("done", f"done: {html.escape(str(study.out))}")
        finally:
            with self._lock:
                if self._worker_cat is not None:
                    self._worker_cat.connection.close()
                    self._worker_cat = None
            asyncio.set_event_loop(None)
            loop.close()
            finished.set()

    def _progress(self, msg: str) -> None:
        if self._cancel.is_set():
            raise GwasCancelled("the GWAS was cancelled")
        i = step_of(msg)
        if i is not None:
            self.progress.value = i
        self.status.value = html.escape(msg)

    def _warn(self, msg: str) -> None:
        self.warnings.value += f"<div>warning: {html.escape(msg)}</div>"

    def _set_state(self, state: State, text: str) -> None:
        self.state = state
        self.status.value = text
        self.run_button.disabled = state == "running"
        self.cancel_button.disabled = state != "running"

    def _fail(self, e: BaseException) -> None:
        self.error = e
        self.message.value = f"<div style='color:#c0392b'>{_message(e)}</div>"
        self.progress.bar_style = "danger"
        self._set_state("error", "failed")

    # ---- results ----------------------------------------------------------------------

    def _show_results(self, study: Any) -> None:
        res = study.result
        self.manhattan = go.FigureWidget(plots.manhattan(res.results,
                                                         title=f"{res.trait}: Manhattan"))
        for trace in self.manhattan.data:
            if trace.customdata is not None:
                trace.on_click(self._clicked)
        self.qq = go.FigureWidget(plots.qq(res.results, title=f"{res.trait}: QQ"))
        self.lambda_label.value = (f"<b>λGC = {res.lambda_gc:.3f}</b>; "
                                   f"{res.results.height:,} variants, "
                                   f"{res.top_hits(10**9).height} with p &lt; 5e-8")
        self.locus_fig = go.FigureWidget()
        self.results_box.children = [self.lambda_label, self.manhattan, self.window,
                                     self.locus_fig, self.locus_table, self.qq]

    def _clicked(self, trace: Any, points: Any, _state: Any) -> None:
        if not points.point_inds:       # plotly calls every trace; only one was clicked
            return
        chrom, pos = parse_variant(str(trace.customdata[points.point_inds[0]][0]))
        try:
            self.show_locus(chrom, pos)
        except WorkbenchError as e:
            self._fail(e)

    def show_locus(self, chrom: str, pos: int) -> pl.DataFrame:
        """Show (and return) the variants within the window around ``chrom:pos``."""
        if self.study is None:
            raise UsageError("no results yet", hint="run the GWAS first")
        window = self.window.value
        self.locus = locus_view(self.study.result.results, chrom, pos, window_kb=window)
        fig = locus_figure(self.locus, chrom, pos, window_kb=window)
        assert self.locus_fig is not None
        with self.locus_fig.batch_update():
            self.locus_fig.data = []
            self.locus_fig.add_traces(list(fig.data))
            self.locus_fig.layout = fig.layout
        self.locus_table.value = _html_table(self.locus)
        return self.locus
