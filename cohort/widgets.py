"""The cohort builder widget for JupyterLab (ipywidgets 8, plotly FigureWidget).

``CohortBuilder(cat, definition)`` is made from a definition and gives one back
(``.definition``), so rerunning a notebook cell restores what was built. Its editors are
generated from the pydantic model (:mod:`cohort.model`): a ``Literal`` becomes a
dropdown, a number a box, a :class:`~cohort.model.Range` two boxes (empty = open), a
:class:`~cohort.model.Window` two day boxes and an anchor, a
:class:`~cohort.model.ConceptSet` the vocabulary search, a tagged union (criteria,
exits, requirement-or-group) a kind dropdown, a list of models a list of cards with add
and remove buttons. A criterion kind added to the model needs no new UI code.

After every edit the person count and the attrition funnel are recomputed: debounced
(``debounce`` seconds), off the kernel's main thread on a private DuckDB cursor, the
query of an older edit interrupted and its result never shown (a generation counter),
every count through the small-cell policy (``"< k"``). ``wait()`` blocks until the
latest edit is counted (for scripts and tests).

>>> import tempfile, pathlib
>>> from workbench import catalog
>>> from workbench.synth.build import build_release
>>> from cohort.builder import cohort, condition, age
>>> rel = pathlib.Path(tempfile.mkdtemp()) / "r"
>>> _ = build_release(rel, persons=300, genotyped=0, variants=0, seed=1, progress=False)
>>> cat = catalog.open(rel)
>>> d = cohort("htn").entry(condition("KCD8", "I10")).require("adults", age(18, None)).build()
>>> w = CohortBuilder(cat, d, debounce=0)
>>> w.definition == d
True
>>> w.find("inclusion_rules[0].group.items[0].criterion.value").min_box.value = "65"
>>> w.wait()
True
>>> w.definition.inclusion_rules[0].group.items[0].criterion.value.min
65.0
>>> w.close()
"""

from __future__ import annotations

import contextvars
import functools
import html
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import ipywidgets as W
import plotly.graph_objects as go

from cohort import io
from cohort import model as m
from cohort.dataset import DOMAINS, Dataset, build_dataset
from cohort.describe import describe
from cohort.editors import (
    MISSING,
    ConceptSearch,
    ConceptSetEditor,
    Editor,
    ModelEditor,
    WindowEditor,
)
from cohort.engine import CohortResult, run
from cohort.errors import DefinitionError
from cohort.privacy import SmallCellPolicy
from cohort.to_python import to_python
from workbench.catalog import Catalog
from workbench.errors import WorkbenchError

__all__ = ["CohortBuilder", "ConceptSearch", "DatasetBuilder"]

def _close_tree(widget: W.Widget) -> None:
    """Close a widget and every widget inside it (a box's close leaves its children)."""
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()


# --- the builder ------------------------------------------------------------------------

class CohortBuilder(W.VBox):
    """Build a cohort in JupyterLab; see the module docstring.

    ``runner(definition, cat, policy=...)`` computes a result (default
    :func:`cohort.engine.run` on DuckDB, whatever ``$WORKBENCH_ENGINE`` says: live counts
    need its per-edit cache and interrupts); ``debounce`` is the quiet time in seconds
    after an edit before counting starts.
    """

    def __init__(self, cat: Catalog, definition: m.Cohort | None = None, *,
                 policy: SmallCellPolicy | None = None, debounce: float = 0.4,
                 runner: Callable[..., CohortResult] | None = None) -> None:
        self.cat, self.policy = cat, policy or SmallCellPolicy()
        self.debounce = debounce
        self.runner = runner or functools.partial(run, engine="duckdb")
        self.result: CohortResult | None = None
        self.shown_generations: list[int] = []
        self.status = "idle"
        self._generation = self._settled = 0
        self._lock = threading.Condition()
        self._timer: threading.Timer | None = None
        self._cursor: duckdb.DuckDBPyConnection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cohort-count")
        self.spinner = W.HTML()
        self.count_label = W.HTML()
        self.funnel = go.FigureWidget(
            data=[go.Funnel(y=[], x=[], text=[], textinfo="text", hoverinfo="y+text")],
            layout=go.Layout(height=260, margin=dict(l=10, r=10, t=30, b=10),
                             title="attrition (persons)"))
        self.attrition_table = W.HTML()
        self.description = W.HTML()
        self.python = W.Textarea(layout=W.Layout(width="100%", height="16em"))
        self.json_path = W.Text(placeholder="cohort.json", layout=W.Layout(width="24em"))
        self.save_button = W.Button(description="save JSON", icon="save")
        self.load_button = W.Button(description="load JSON", icon="folder-open")
        self.file_message = W.HTML()
        self.save_button.on_click(lambda _b: self._save())
        self.load_button.on_click(lambda _b: self._load())
        self.editor_box = W.VBox()
        self.add_exclusion_button = W.Button(description="add exclusion", icon="ban",
                                             layout=W.Layout(width="auto"))
        self.add_exclusion_button.on_click(lambda _b: self.add_exclusion())
        tabs = W.Tab(children=[W.VBox([self.add_exclusion_button, self.editor_box]),
                               self.description, self.python,
                               W.VBox([W.HBox([self.json_path, self.save_button,
                                               self.load_button]), self.file_message])])
        for k, title in enumerate(("definition", "in words", "copy as Python", "file")):
            tabs.set_title(k, title)
        super().__init__([W.HBox([self.count_label, self.spinner]), self.funnel,
                          self.attrition_table, tabs])
        # stable names for the browser tests (tests/browser) and for custom CSS
        self.add_class("wb-cohort-builder")
        self.count_label.add_class("wb-count")
        self.spinner.add_class("wb-count-spinner")
        self.attrition_table.add_class("wb-attrition")
        self.add_exclusion_button.add_class("wb-add-exclusion")
        self._set_editor(definition)

    # -- the definition --

    @property
    def definition(self) -> m.Cohort:
        """The definition as edited; DefinitionError says what is still missing."""
        if self.editor.value is None:
            raise DefinitionError(self.editor.error or "incomplete", path="(builder)",
                                  hint="finish the highlighted fields")
        return self.editor.value

    @definition.setter
    def definition(self, value: m.Cohort | None) -> None:
        self._set_editor(value)

    def _set_editor(self, definition: m.Cohort | None) -> None:
        if definition is not None and not isinstance(definition, m.Cohort):
            raise DefinitionError("the builder edits a cohort, not a set of cohorts",
                                  hint="build each cohort of the set on its own")
        start = definition if definition is not None else {
            "name": "new cohort", "entry": {"criteria": []}}
        if getattr(self, "editor", None) is not None:
            _close_tree(self.editor.widget)
        self.editor = ModelEditor(m.Cohort, start, self.cat)
        self.editor.on_change(self._edited)
        self.editor_box.children = [self.editor.widget]
        self._edited()

    def add_exclusion(self, name: str = "exclusion", kind: str = "condition") -> Editor:
        """A new rule: none of one criterion of ``kind`` (occurrence exactly 0)."""
        return self.find("inclusion_rules").add(None, {"name": name, "group": {
            "mode": "all", "items": [{"kind": "requirement", "criterion": {"kind": kind},
                                      "occurrence": m.Occurrence(op="exactly", count=0)}]}})

    def find(self, path: str) -> Editor:
        """The editor of a part, by its JSON path: ``"inclusion_rules[0].group.items[1]
        .criterion.value"``, ``"entry.criteria"``, ``"name"``."""
        return self.editor.find(path)

    def _edited(self) -> None:
        d = self.editor.value
        if d is not None:
            self.description.value = f"<pre>{html.escape(describe(d))}</pre>"
            self.python.value = to_python(d)
        self._schedule(d)

    def _save(self) -> None:
        try:
            path = io.save(self.definition, Path(self.json_path.value.strip()))
            self.file_message.value = f"saved {html.escape(str(path))}"
        except (DefinitionError, OSError) as e:
            self.file_message.value = f"<span style='color:#b42318'>{html.escape(str(e))}</span>"

    def _load(self) -> None:
        try:
            self.definition = io.load(self.json_path.value.strip())
            self.file_message.value = f"loaded {html.escape(self.json_path.value.strip())}"
        except DefinitionError as e:
            self.file_message.value = f"<span style='color:#b42318'>{html.escape(str(e))}</span>"

    # -- live counting --

    def _schedule(self, d: m.Cohort | None) -> None:
        with self._lock:
            self._generation += 1
            gen = self._generation
            if self._timer is not None:
                self._timer.cancel()
            if d is None:
                self._settle(gen, "incomplete")
                self.spinner.value = ""
                self.count_label.value = (f"<span style='color:#b42318'>incomplete: "
                                          f"{html.escape(self.editor.error or '')}</span>")
                return
            self.status = "waiting"
            self.spinner.value = "<i class='fa fa-spinner fa-spin'></i> counting…"
            # the count runs on other threads: they get this context (the access
            # session, see workbench.access), a copy per edit
            self._timer = threading.Timer(self.debounce, self._submit,
                                          (gen, d, contextvars.copy_context()))
            self._timer.daemon = True
            self._timer.start()

    def _submit(self, gen: int, d: m.Cohort, context: contextvars.Context) -> None:
        with self._lock:
            if gen != self._generation:
                return
            if self._cursor is not None:    # an older edit is still counting: stop it
                self._cursor.interrupt()
            self._executor.submit(context.run, self._count, gen, d)

    def _count(self, gen: int, d: m.Cohort) -> None:
        with self._lock:
            if gen != self._generation:
                return
            self.status = "running"
        wcat = None
        try:
            with self._lock:
                wcat = self.cat.cursor()
                self._cursor = wcat.connection
            result, error = self.runner(d, wcat, policy=self.policy), None
        except duckdb.InterruptException:
            result, error = None, "interrupted"
        except Exception as e:  # shown in the widget: a notebook must not lose the thread
            result, error = None, str(e)
        finally:
            with self._lock:
                self._cursor = None
            if wcat is not None:
                wcat.connection.close()
        with self._lock:
            if gen != self._generation:     # a newer edit came in: never show this one
                return
            if error is not None:
                self.count_label.value = (f"<span style='color:#b42318'>"
                                          f"{html.escape(error)}</span>")
                self._settle(gen, "error")
            else:
                self._show(result, gen)
                self._settle(gen, "done")
            self.spinner.value = ""

    def _settle(self, gen: int, status: str) -> None:
        self.status, self._settled = status, gen
        self._lock.notify_all()

    def _show(self, result: CohortResult, gen: int) -> None:
        self.result = result
        self.shown_generations.append(gen)
        att = result.attrition
        self.count_label.value = (f"<b style='font-size:1.3em'>"
                                  f"{html.escape(self.policy.format(result.count))}</b> persons")
        with self.funnel.batch_update():
            f = self.funnel.data[0]
            f.y = att["rule"].to_list()
            f.x = att["persons"].fill_null(0).to_list()    # a hidden cell draws no bar
            f.text = att["persons_shown"].to_list()
        rows = "".join(f"<tr><td>{html.escape(r)}</td><td>{html.escape(p)}</td>"
                       f"<td>{html.escape(lost)}</td></tr>"
                       for r, p, lost in att.select("rule", "persons_shown", "lost_shown")
                       .iter_rows())
        self.attrition_table.value = ("<table><tr><th>step</th><th>persons</th>"
                                      f"<th>lost</th></tr>{rows}</table>")

    @property
    def count_text(self) -> str:
        """The person count as shown (``"1,234"``, ``"< 20"``), or '' before one."""
        hit = re.search(r"<b[^>]*>(.*?)</b>", self.count_label.value)
        return html.unescape(hit.group(1)) if hit else ""

    def wait(self, timeout: float = 30.0) -> bool:
        """Block until the latest edit is counted (or found incomplete); False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._settled == self._generation, timeout)

    def close(self) -> None:
        """Stop counting and close the widgets."""
        with self._lock:
            self._generation += 1
            if self._timer is not None:
                self._timer.cancel()
            if self._cursor is not None:
                self._cursor.interrupt()
        self._executor.shutdown(wait=True)
        for child in self.children:
            _close_tree(child)
        super().close()


# --- the dataset builder ------------------------------------------------------------------

class DatasetBuilder(W.VBox):
    """Pick domains and columns for a cohort's members; ``build`` gives Polars frames
    (``.dataset``, a :class:`cohort.dataset.Dataset`) and the code that rebuilds them.

    ``cohort``: a :class:`CohortBuilder` (its definition when ``build`` is clicked), a
    definition or a result. An event domain's concept set, when it has concepts, keeps
    only their records. Counts shown (persons, rows) pass the small-cell policy.
    """

    def __init__(self, cat: Catalog, cohort: CohortBuilder | m.Cohort | m.CohortSet
                 | CohortResult, *, policy: SmallCellPolicy | None = None) -> None:
        self.cat, self.cohort = cat, cohort
        self.policy = policy or SmallCellPolicy()
        self.dataset: Dataset | None = None
        self.include: dict[str, W.Checkbox] = {}
        self.columns: dict[str, W.SelectMultiple] = {}
        self.concepts: dict[str, ConceptSetEditor] = {}
        rows = []
        for name, dom in DOMAINS.items():
            self.include[name] = W.Checkbox(value=name == "person", description=name,
                                            indent=False, layout=W.Layout(width="9em"))
            cols = list(dom.columns)
            self.columns[name] = W.SelectMultiple(options=cols, value=tuple(cols),
                                                  rows=min(len(cols), 5))
            parts = [self.include[name], self.columns[name]]
            if dom.concept_column is not None:      # records of a concept set only
                self.concepts[name] = ConceptSetEditor(MISSING, cat)
                parts.append(self.concepts[name].widget)
            rows.append(W.HBox(parts))
        self.window = WindowEditor(None)
        self.build_button = W.Button(description="build dataset", icon="table",
                                     button_style="primary")
        self.build_button.on_click(lambda _b: self.build())
        self.summary = W.HTML()
        self.code = W.Textarea(layout=W.Layout(width="100%", height="14em"))
        super().__init__([W.HTML("<b>domains and columns</b>"), *rows,
                          W.HBox([W.Label("dated records in"), self.window.widget]),
                          self.build_button, self.summary, self.code])

    def chosen(self) -> dict[str, list[str]]:
        """The ticked domains and their selected columns."""
        return {d: list(self.columns[d].value) for d, box in self.include.items() if box.value}

    def build(self) -> Dataset | None:
        """Build the frames (also on the button); errors are shown, not raised."""
        source = self.cohort
        try:
            if isinstance(source, CohortBuilder):
                source = source.definition
            if self.window.error:
                raise DefinitionError(self.window.error, path="window")
            chosen = self.chosen()
            concepts = {d: ed.value for d, ed in self.concepts.items()
                        if d in chosen and ed.value is not None}
            self.dataset = build_dataset(self.cat, source, chosen, concepts=concepts,
                                         window=self.window.value)
        except (DefinitionError, WorkbenchError) as e:
            self.summary.value = f"<span style='color:#b42318'>{html.escape(str(e))}</span>"
            return None
        fmt = self.policy.format
        rows = "".join(
            f"<tr><td>{html.escape(d)}</td><td>{fmt(self.policy.count(f.height))}</td>"
            f"<td>{fmt(self.policy.count(f['person_id'].n_unique() if f.height else 0))}"
            f"</td></tr>" for d, f in self.dataset.frames.items())
        persons = fmt(self.policy.count(self.dataset.persons))
        self.summary.value = (f"<p>{persons} persons</p><table><tr><th>domain</th>"
                              f"<th>rows</th><th>persons</th></tr>{rows}</table>")
        self.code.value = self.dataset.code
        return self.dataset
