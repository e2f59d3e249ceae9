"""Editors of cohort definitions, generated from the pydantic model, and the vocabulary
search; :class:`cohort.widgets.CohortBuilder` puts them together.

``editor_for(annotation, value, cat)`` picks an editor by a field's type: a ``Literal``
is a dropdown, ``bool`` a tick box, ``int`` a number box, a :class:`~cohort.model.Range`
two boxes (empty = open), a :class:`~cohort.model.Window` a tick box, two day boxes and
an anchor, a :class:`~cohort.model.ConceptSet` its items and the vocabulary search, a
tagged union of models a kind dropdown, a list of models cards with add and remove.
Every editor holds a ``value`` (parts never edited stay the very objects given, so a
definition comes back equal) and an ``error`` (why it is not valid yet, or None);
``find(path)`` walks to a part by its JSON path.

>>> from cohort import model as m
>>> ed = editor_for(m.Requirement, m.Requirement(criterion=m.AgeCriterion(
...     value=m.Range(min=18))), None)
>>> ed.find("criterion.value").max_box.value = "65"
>>> ed.value.criterion.value
Range(min=18.0, max=65.0)
>>> ed.find("window").enabled.value = True
>>> ed.find("window").start_box.value = "x"
>>> ed.error
'window: not a whole number'
"""

from __future__ import annotations

import html
import re
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

import ipywidgets as W
import polars as pl
from pydantic import BaseModel, ValidationError

from cohort import io
from cohort import model as m
from cohort.concepts import search
from cohort.errors import DefinitionError
from workbench.catalog import Catalog

__all__ = ["Editor", "ModelEditor", "UnionEditor", "ListEditor", "ConceptSetEditor",
           "ConceptSearch", "editor_for", "MISSING"]

MISSING: Any = object()
_SKIP = ("kind", "schema_version")
_CARD = W.Layout(border="1px solid #d0d7de", padding="4px", margin="2px 0")


def _error_text(e: Exception) -> str:
    if isinstance(e, ValidationError):
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"] if not _is_tag(p))
        msg = err["msg"].removeprefix("Value error, ")
        return f"{where}: {msg}" if where else msg
    return str(e)


def _is_tag(p: Any) -> bool:
    return isinstance(p, str) and p in io._TAGS


def _label(name: str) -> str:
    return name.replace("_", " ")


# --- editors: one value each, built from annotations ------------------------------------

class Editor:
    """Holds one value of a definition and the widget that edits it.

    ``value`` is what the user has set (unchanged parts stay the very objects given);
    ``error`` says why the value is not valid yet (None when it is).
    """

    widget: W.Widget
    value: Any = None
    error: str | None = None

    def __init__(self) -> None:
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, fn: Callable[[], None]) -> None:
        self._listeners.append(fn)

    def _changed(self) -> None:
        for fn in list(self._listeners):
            fn()

    def find(self, path: str) -> Editor:
        if path:
            raise KeyError(f"{type(self).__name__} has no part {path!r}")
        return self


class ChoiceEditor(Editor):
    def __init__(self, options: list[Any], value: Any) -> None:
        super().__init__()
        self.value = options[0] if value is MISSING else value
        self.widget = W.Dropdown(options=options, value=self.value,
                                 layout=W.Layout(width="max-content"))
        self.widget.observe(self._set, "value")

    def _set(self, change: dict) -> None:
        self.value = change["new"]
        self._changed()


class FlagEditor(Editor):
    def __init__(self, value: Any, description: str = "") -> None:
        super().__init__()
        self.value = False if value is MISSING else bool(value)
        self.widget = W.Checkbox(value=self.value, description=description, indent=False,
                                 layout=W.Layout(width="auto"))
        self.widget.observe(self._set, "value")

    def _set(self, change: dict) -> None:
        self.value = change["new"]
        self._changed()


class IntEditor(Editor):
    def __init__(self, value: Any, minimum: int | None) -> None:
        super().__init__()
        lo = -10**9 if minimum is None else minimum
        self.value = max(lo, 0) if value is MISSING else value
        self.widget = W.BoundedIntText(value=self.value, min=lo, max=10**9,
                                       layout=W.Layout(width="9em"))
        self.widget.observe(self._set, "value")

    def _set(self, change: dict) -> None:
        self.value = change["new"]
        self._changed()


class TextEditor(Editor):
    """Free text; with ``optional`` an empty box is None. ``parse`` turns text into the
    value (numbers; comma-separated lists) and raises ValueError for bad text."""

    def __init__(self, value: Any, *, optional: bool, parse: Callable[[str], Any] = str,
                 show: Callable[[Any], str] = str, placeholder: str = "") -> None:
        super().__init__()
        self.optional, self.parse = optional, parse
        self.value = (None if optional else parse("")) if value is MISSING else value
        self.widget = W.Text(value="" if self.value is None else show(self.value),
                             placeholder=placeholder, continuous_update=False,
                             layout=W.Layout(width="14em"))
        self.widget.observe(self._set, "value")

    def _set(self, change: dict) -> None:
        text = change["new"].strip()
        self.error = None
        try:
            self.value = None if (self.optional and not text) else self.parse(text)
        except ValueError as e:
            self.error = f"{text!r}: {e}"
        self._changed()


def _number(integer: bool) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if not text:
            raise ValueError("give a number")
        try:
            return int(text) if integer else float(text.replace(",", ""))
        except ValueError:
            raise ValueError("not a " + ("whole number" if integer else "number")) from None
    return parse


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[,\s]+", text) if w]


def _show_num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


class MultiChoiceEditor(Editor):
    def __init__(self, options: list[str], value: Any) -> None:
        super().__init__()
        self.value = [] if value is MISSING else list(value)
        self.widget = W.SelectMultiple(options=options, value=tuple(self.value),
                                       rows=min(len(options), 4))
        self.widget.observe(self._set, "value")

    def _set(self, change: dict) -> None:
        self.value = list(change["new"])
        self._changed()


class RangeEditor(Editor):
    """Two boxes, min and max; empty is open. Optional: both empty -> None."""

    def __init__(self, value: Any, *, optional: bool) -> None:
        super().__init__()
        self.optional = optional
        self.value = (None if optional else m.Range()) if value is MISSING else value
        r = self.value or m.Range()
        self.min_box = W.Text(value="" if r.min is None else _show_num(r.min),
                              placeholder="min", continuous_update=False,
                              layout=W.Layout(width="7em"))
        self.max_box = W.Text(value="" if r.max is None else _show_num(r.max),
                              placeholder="max", continuous_update=False,
                              layout=W.Layout(width="7em"))
        for box in (self.min_box, self.max_box):
            box.observe(self._set, "value")
        self.widget = W.HBox([self.min_box, W.Label("to"), self.max_box])

    def _set(self, _change: dict) -> None:
        self.error = None
        try:
            lo, hi = (None if not b.value.strip() else _number(False)(b.value.strip())
                      for b in (self.min_box, self.max_box))
            self.value = (None if self.optional and lo is None and hi is None
                          else m.Range(min=lo, max=hi))
        except (ValueError, ValidationError) as e:
            self.error = _error_text(e)
        self._changed()


class WindowEditor(Editor):
    """Days relative to the index, inclusive; unticked = no window (None)."""

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = None if value is MISSING else value
        w = self.value or m.Window()
        self.enabled = W.Checkbox(value=self.value is not None, description="window",
                                  indent=False, layout=W.Layout(width="auto"))
        self.start_box = W.Text(value="" if w.start is None else str(w.start),
                                placeholder="any time", continuous_update=False,
                                layout=W.Layout(width="7em"))
        self.end_box = W.Text(value="" if w.end is None else str(w.end),
                              placeholder="any time", continuous_update=False,
                              layout=W.Layout(width="7em"))
        self.anchor = W.Dropdown(options=["index_start", "index_end"], value=w.anchor,
                                 layout=W.Layout(width="max-content"))
        for x in (self.enabled, self.start_box, self.end_box, self.anchor):
            x.observe(self._set, "value")
        self.widget = W.HBox([self.enabled, W.Label("days"), self.start_box, W.Label("to"),
                              self.end_box, W.Label("from"), self.anchor])

    def _set(self, _change: dict) -> None:
        self.error = None
        try:
            if not self.enabled.value:
                self.value = None
            else:
                start, end = (None if not b.value.strip() else _number(True)(b.value.strip())
                              for b in (self.start_box, self.end_box))
                self.value = m.Window(start=start, end=end, anchor=self.anchor.value)
        except (ValueError, ValidationError) as e:
            self.error = _error_text(e)
        self._changed()


class JsonEditor(Editor):
    """A nested definition (another cohort) as JSON text."""

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = None if value is MISSING else value
        self.error = "paste the other cohort's JSON" if self.value is None else None
        self.widget = W.Textarea(value="" if self.value is None else io.dumps(self.value),
                                 placeholder="the other cohort's definition (JSON)",
                                 continuous_update=False, layout=W.Layout(width="40em"))
        self.widget.observe(self._set, "value")

    def _set(self, change: dict) -> None:
        self.error = None
        try:
            d = io.loads(change["new"])
            if not isinstance(d, m.Cohort):
                raise DefinitionError("a cohort, not a set of cohorts, is needed here")
            self.value = d
        except DefinitionError as e:
            self.error = str(e)
        self._changed()


class ConceptSetEditor(Editor):
    """A concept set: its name, its items (descendants / exclude / mapped ticks), and the
    vocabulary search that adds concepts to it."""

    def __init__(self, value: Any, cat: Catalog | None) -> None:
        super().__init__()
        cs = None if value is MISSING else value
        self.items: list[m.ConceptItem] = list(cs.items) if cs else []
        self.name = W.Text(value=cs.name if cs else "", placeholder="concept set name",
                           continuous_update=False, layout=W.Layout(width="20em"))
        self.name.observe(lambda _c: self._update(), "value")
        self.rows = W.VBox()
        self.cat = cat
        self._search: ConceptSearch | None = None
        self.search_button = W.Button(description="search vocabulary", icon="search",
                                      layout=W.Layout(width="auto"), disabled=cat is None)
        self.search_button.on_click(lambda _b: self.search)
        self.search_button.add_class("wb-concept-search-open")    # for tests/browser
        self.widget = W.VBox([W.HBox([W.Label("concept set"), self.name, self.search_button]),
                              self.rows])
        self._render()
        self._validate()

    @property
    def search(self) -> ConceptSearch:
        """The vocabulary search of this set (made when first opened: a definition may
        hold many concept sets, and widgets cost the browser)."""
        if self._search is None:
            if self.cat is None:
                raise DefinitionError("no catalog to search", hint="give the builder one")
            self._search = ConceptSearch(self.cat, self.add)
            self.widget.children = [*self.widget.children, self._search]
            self.search_button.disabled = True
        return self._search

    def add(self, concept: dict[str, Any]) -> None:
        """Add a concept found by the search (a row of ``cohort.concepts.search``)."""
        item = m.ConceptItem(vocabulary=concept["vocabulary_id"], code=concept["concept_code"])
        if item not in self.items:
            self.items.append(item)
        if not self.name.value.strip():
            self.name.value = concept["concept_name"]
        self._render()
        self._update()

    def remove(self, k: int) -> None:
        del self.items[k]
        self._render()
        self._update()

    def _render(self) -> None:
        rows = []
        for k, item in enumerate(self.items):
            what = (f"{item.vocabulary} {item.code}" if item.code is not None
                    else f"concept_id {item.concept_id}")
            boxes = []
            for flag in ("include_descendants", "exclude", "include_mapped"):
                box = W.Checkbox(value=getattr(item, flag), description=_label(flag),
                                 indent=False, layout=W.Layout(width="auto"))
                box.observe(lambda c, k=k, flag=flag: self._flag(k, flag, c["new"]), "value")
                boxes.append(box)
            rm = W.Button(description="", icon="trash", tooltip="remove",
                          layout=W.Layout(width="3em"))
            rm.on_click(lambda _b, k=k: self.remove(k))
            rows.append(W.HBox([W.HTML(f"<code>{html.escape(what)}</code>"), *boxes, rm]))
        self.rows.children = rows

    def _flag(self, k: int, flag: str, on: bool) -> None:
        self.items[k] = m.ConceptItem(**{**self.items[k].model_dump(), flag: on})
        self._update()

    def _validate(self) -> None:
        self.error = None
        try:
            self.value = m.ConceptSet(name=self.name.value.strip() or "concepts",
                                      items=self.items)
        except ValidationError:
            self.value, self.error = None, "pick at least one concept (search below)"

    def _update(self) -> None:
        self._validate()
        self._changed()


def _strip(ann: Any) -> Any:
    while typing.get_origin(ann) is typing.Annotated:
        ann = typing.get_args(ann)[0]
    return ann


def _union_args(ann: Any) -> list[Any] | None:
    ann = _strip(ann)
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        return [_strip(a) for a in typing.get_args(ann)]
    return None


def _kind_of(cls: type[BaseModel]) -> str:
    return typing.get_args(cls.model_fields["kind"].annotation)[0]


def _tagged(args: list[Any]) -> dict[str, type[BaseModel]] | None:
    """A discriminated union of models -> {kind: model class}; else None."""
    if all(isinstance(a, type) and issubclass(a, BaseModel) and "kind" in a.model_fields
           for a in args):
        return {_kind_of(a): a for a in args}
    return None


def editor_for(ann: Any, value: Any, cat: Catalog | None) -> Editor:
    """The editor of one field, chosen by its annotation (see the module docstring)."""
    ann = _strip(ann)
    args = _union_args(ann)
    optional = args is not None and type(None) in args
    if optional:
        rest = [a for a in args if a is not type(None)]
        inner = rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007
        if inner is m.Range:
            return RangeEditor(value, optional=True)
        if inner is m.Window:
            return WindowEditor(value)
        if inner in (int, float):
            return TextEditor(value, optional=True, parse=_number(inner is int),
                              show=_show_num, placeholder="any")
        if inner is str:
            return TextEditor(value, optional=True, placeholder="none")
        if typing.get_origin(inner) is list:
            return TextEditor(value, optional=True, parse=_words, show=", ".join,
                              placeholder="comma-separated")
        raise TypeError(f"no editor for optional {inner!r}")
    if args is not None:
        tagged = _tagged(args)
        if tagged is None:
            raise TypeError(f"no editor for union {ann!r}")
        return UnionEditor(tagged, value, cat)
    origin = typing.get_origin(ann)
    if origin is Literal:
        return ChoiceEditor(list(typing.get_args(ann)), value)
    if origin is list:
        (item,) = typing.get_args(ann)
        item = _strip(item)
        if typing.get_origin(item) is Literal:
            return MultiChoiceEditor(list(typing.get_args(item)), value)
        if item is str:
            return TextEditor(value, optional=False, parse=_words, show=", ".join,
                              placeholder="comma-separated")
        return ListEditor(item, value, cat)
    if ann is bool:
        return FlagEditor(value)
    if ann is int:
        return IntEditor(value, None)
    if ann is float:
        return TextEditor(value, optional=False, parse=_number(False), show=_show_num)
    if ann is str:
        return TextEditor(value, optional=False)
    if ann is m.Range:
        return RangeEditor(value, optional=False)
    if ann is m.ConceptSet:
        return ConceptSetEditor(value, cat)
    if ann is m.Cohort:
        return JsonEditor(value)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ModelEditor(ann, value, cat)
    raise TypeError(f"no editor for {ann!r}")


class ModelEditor(Editor):
    """One model: an editor per field (``fields``), the model validated after each edit.

    ``value`` may be an instance, a partial dict (a template) or MISSING.
    """

    def __init__(self, cls: type[BaseModel], value: Any, cat: Catalog | None) -> None:
        super().__init__()
        self.cls = cls
        if isinstance(value, BaseModel):
            data = {f: getattr(value, f) for f in cls.model_fields}
        else:
            data = {} if value is MISSING else dict(value)
        self.fields: dict[str, Editor] = {}
        rows = []
        for name, info in cls.model_fields.items():
            if name in _SKIP:
                continue
            given = data.get(name, MISSING)
            if given is MISSING and not info.is_required():
                given = info.get_default(call_default_factory=True)
            ed = editor_for(info.annotation, given, cat)
            if isinstance(info.annotation, type) and info.annotation is int:
                ge = [md.ge for md in info.metadata if hasattr(md, "ge")]
                if ge:
                    ed.widget.min = ge[0]
            ed.on_change(self._child)
            self.fields[name] = ed
            rows.append(W.HBox([W.Label(_label(name), layout=W.Layout(min_width="9em")),
                                ed.widget]) if not isinstance(ed, ListEditor | ModelEditor
                                                               | UnionEditor)
                        else W.VBox([W.HTML(f"<b>{_label(name)}</b>"), ed.widget]))
        self.message = W.HTML()
        self.widget = W.VBox([*rows, self.message])
        self._validate()

    def find(self, path: str) -> Editor:
        if not path:
            return self
        head, rest = _split(path)
        if head not in self.fields:
            raise KeyError(f"{self.cls.__name__} has no field {head!r}")
        return self.fields[head].find(rest)

    def _validate(self) -> None:
        bad = [(n, e.error) for n, e in self.fields.items() if e.error]
        if bad:
            self.value, self.error = None, f"{bad[0][0]}: {bad[0][1]}"
        else:
            try:
                self.value = self.cls(**{n: e.value for n, e in self.fields.items()})
                self.error = None
            except ValidationError as e:
                self.value, self.error = None, _error_text(e)
        own = self.error if not bad else None      # a child shows its own problem
        self.message.value = ("" if own is None else
                              f'<span style="color:#b42318">{html.escape(own)}</span>')

    def _child(self) -> None:
        self._validate()
        self._changed()


class UnionEditor(Editor):
    """A tagged union (criterion, exit, requirement or group): a kind dropdown and the
    chosen kind's model editor. Changing the kind starts that kind afresh."""

    def __init__(self, kinds: dict[str, type[BaseModel]], value: Any,
                 cat: Catalog | None) -> None:
        super().__init__()
        self.kinds, self.cat = kinds, cat
        if isinstance(value, BaseModel):
            kind = value.kind
        elif isinstance(value, dict) and "kind" in value:
            kind = value["kind"]
        else:
            kind, value = next(iter(kinds)), MISSING
        self.kind = W.Dropdown(options=list(kinds), value=kind,
                               layout=W.Layout(width="max-content"))
        self.kind.observe(self._switch, "value")
        self.box = W.VBox()
        self.widget = W.VBox([self.kind, self.box])
        self._use(ModelEditor(kinds[kind], value, cat))

    def _use(self, ed: ModelEditor) -> None:
        self.current = ed
        ed.on_change(self._child)
        self.box.children = [ed.widget]
        self.value, self.error = ed.value, ed.error

    def _switch(self, change: dict) -> None:
        self._use(ModelEditor(self.kinds[change["new"]], MISSING, self.cat))
        self._changed()

    def _child(self) -> None:
        self.value, self.error = self.current.value, self.current.error
        self._changed()

    def find(self, path: str) -> Editor:
        return self.current.find(path) if path else self


class ListEditor(Editor):
    """A list of models (or of a tagged union): cards with a remove button, and an add
    button (with a kind dropdown for a union). ``add(kind, template)`` adds one."""

    def __init__(self, item: Any, value: Any, cat: Catalog | None) -> None:
        super().__init__()
        self.item, self.cat = item, cat
        args = _union_args(item)
        self.kinds = _tagged(args) if args else None
        self.items: list[Editor] = []
        self.cards = W.VBox()
        self.kind = W.Dropdown(options=list(self.kinds or {}), layout=W.Layout(
            width="max-content", display=None if self.kinds else "none"))
        self.add_button = W.Button(description="add", icon="plus",
                                   layout=W.Layout(width="auto"))
        self.add_button.on_click(lambda _b: self.add(self.kind.value if self.kinds else None))
        self.widget = W.VBox([self.cards, W.HBox([self.kind, self.add_button])])
        for v in ([] if value is MISSING or value is None else value):
            self._append(v)
        self._render()
        self._validate()

    def _make(self, v: Any) -> Editor:
        if self.kinds:
            return UnionEditor(self.kinds, v, self.cat)
        return editor_for(self.item, v, self.cat)

    def _append(self, v: Any) -> Editor:
        ed = self._make(v)
        ed.on_change(self._child)
        self.items.append(ed)
        return ed

    def add(self, kind: str | None = None, template: Any = MISSING) -> Editor:
        """Add an item (of ``kind`` for a union), from ``template`` if given."""
        if kind is not None and template is MISSING:
            template = {"kind": kind}
        elif kind is not None and isinstance(template, dict):
            template = {"kind": kind, **template}
        ed = self._append(template)
        self._render()
        self._child()
        return ed

    def remove(self, k: int) -> None:
        del self.items[k]
        self._render()
        self._child()

    def _render(self) -> None:
        cards = []
        for k, ed in enumerate(self.items):
            rm = W.Button(description="remove", icon="trash", layout=W.Layout(width="auto"))
            rm.on_click(lambda _b, k=k: self.remove(k))
            cards.append(W.VBox([W.HBox([W.HTML(f"<b>#{k + 1}</b>"), rm]), ed.widget],
                                layout=_CARD))
        self.cards.children = cards

    def _validate(self) -> None:
        bad = [(k, e.error) for k, e in enumerate(self.items) if e.error]
        self.error = f"[{bad[0][0]}] {bad[0][1]}" if bad else None
        self.value = None if bad else [e.value for e in self.items]

    def _child(self) -> None:
        self._validate()
        self._changed()

    def find(self, path: str) -> Editor:
        if not path:
            return self
        hit = re.match(r"\[(\d+)\]\.?", path)
        if hit is None:
            raise KeyError(f"a list needs an index, not {path!r}")
        return self.items[int(hit.group(1))].find(path[hit.end():])


def _split(path: str) -> tuple[str, str]:
    hit = re.match(r"([A-Za-z_]\w*)\.?", path)
    if hit is None:
        raise KeyError(f"bad path {path!r}")
    rest = path[hit.end():]
    return hit.group(1), rest


# --- vocabulary search ------------------------------------------------------------------

class ConceptSearch(W.VBox):
    """Find concepts as you type (code prefix, English or Korean name), page through
    them, see each one's parents and number of descendants; ``add`` picks the selected
    one (``on_pick(row)``)."""

    def __init__(self, cat: Catalog, on_pick: Callable[[dict[str, Any]], None], *,
                 page_size: int = 8) -> None:
        self.cat, self.on_pick, self.page_size, self.page = cat, on_pick, page_size, 0
        vocabs = [r[0] for r in cat.sql("select distinct vocabulary_id from concept "
                                        "order by 1").fetchall()]
        self.text = W.Text(placeholder="search: code, English or 한국어 name",
                           continuous_update=True, layout=W.Layout(width="22em"))
        self.vocabulary = W.Dropdown(options=[("any vocabulary", None)]
                                     + [(v, v) for v in vocabs],
                                     layout=W.Layout(width="max-content"))
        self.results = W.Select(options=[], rows=page_size, layout=W.Layout(width="60em"))
        self.prev_button = W.Button(description="prev", icon="chevron-left",
                                    layout=W.Layout(width="auto"), disabled=True)
        self.next_button = W.Button(description="next", icon="chevron-right",
                                    layout=W.Layout(width="auto"), disabled=True)
        self.add_button = W.Button(description="add to concept set", icon="plus",
                                   layout=W.Layout(width="auto"), disabled=True)
        self.page_label = W.Label()
        self.rows: pl.DataFrame = pl.DataFrame()
        self.text.observe(lambda _c: self.go(0), "value")
        self.vocabulary.observe(lambda _c: self.go(0), "value")
        self.prev_button.on_click(lambda _b: self.go(self.page - 1))
        self.next_button.on_click(lambda _b: self.go(self.page + 1))
        self.add_button.on_click(lambda _b: self.add())
        self.results.observe(lambda c: setattr(self.add_button, "disabled", c["new"] is None),
                             "value")
        super().__init__([W.HBox([self.text, self.vocabulary]), self.results,
                          W.HBox([self.prev_button, self.page_label, self.next_button,
                                  self.add_button])])
        # stable names for the browser tests (tests/browser)
        self.add_class("wb-concept-search")
        self.text.add_class("wb-concept-search-text")
        self.results.add_class("wb-concept-search-results")
        self.add_button.add_class("wb-concept-search-add")

    def go(self, page: int) -> None:
        """Show page ``page`` (0-based) of the matches of the current text."""
        text = self.text.value.strip()
        self.page = max(page, 0)
        if not text:
            self.rows, more = pl.DataFrame(), False
        else:
            found = search(self.cat, text, vocabulary=self.vocabulary.value,
                           limit=self.page_size + 1, offset=self.page * self.page_size)
            more, found = found.height > self.page_size, found.head(self.page_size)
            self.rows = found.with_columns(parents=pl.Series(
                self.parents(found["concept_id"].to_list()), dtype=pl.String))
        self.results.options = [(self._line(r), r["concept_id"])
                                for r in self.rows.iter_rows(named=True)]
        self.results.value = None
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = not more
        self.page_label.value = (f"page {self.page + 1}" if self.rows.height
                                 else ("no match" if text else ""))

    def parents(self, ids: list[int]) -> list[str]:
        """Each concept's ancestors, outermost first, as "E10-E14 › E11" ('' if none)."""
        if not ids:
            return []
        anc = self.cat.sql(
            "select a.descendant_concept_id as id, c.concept_code as code, "
            "a.min_levels_of_separation as lvl from concept_ancestor a "
            "join concept c on c.concept_id = a.ancestor_concept_id "
            "where list_contains(?, a.descendant_concept_id) and a.ancestor_concept_id "
            "<> a.descendant_concept_id", [ids]).pl()
        paths = (anc.sort("lvl", descending=True).group_by("id", maintain_order=True)
                 .agg(pl.col("code").str.join(" › ")))
        by_id = dict(zip(paths["id"].to_list(), paths["code"].to_list(), strict=True))
        return [by_id.get(i, "") for i in ids]

    @staticmethod
    def _line(r: dict[str, Any]) -> str:
        ko = f" ({r['concept_name_ko']})" if r["concept_name_ko"] else ""
        under = f" · under {r['parents']}" if r["parents"] else ""
        n = r["descendants"]
        desc = f" · {n} descendant{'s' * (n != 1)}" if n else ""
        return f"{r['vocabulary_id']} {r['concept_code']} — {r['concept_name']}{ko}{desc}{under}"

    def add(self) -> None:
        """Add the selected concept (via ``on_pick``)."""
        if self.results.value is None:
            return
        row = self.rows.filter(pl.col("concept_id") == self.results.value).row(0, named=True)
        self.on_pick(row)
