"""A cohort run in parts on DuckDB, reusing what an edit did not change.

A cohort's index events depend on its entry alone, and an inclusion rule's verdict on an
index event depends only on the rule and on the event's person, dates and observation
period (``person_id, start_date, end_date, op_start, op_end``: windows are relative to
the index dates, bounded by its observation period). So, per release, this module keeps

* the events of each set of entry criteria it has seen, and the index events of each
  entry (the criteria with prior/post observation and limit);
* each rule's verdicts (by the rule's content, not its name) on every index event it
  was evaluated on;

and a run evaluates only the rules, and only on the index events, not seen before (one
query for all of them), counts the attrition in Polars from the verdicts, and then runs
exit, censoring, result limit and eras on the qualified events. Changing a threshold
reruns one rule; changing the prior observation or the limit selects the index events
again from the kept entry events, and the rules run only on index events not seen.

The results equal the single query of :func:`cohort.compile.compile_definition`
(tests/unit/test_incremental.py); where they might not (a person-level table with two
rows for one key, which makes the single query count an event on several rows),
:func:`evaluate_in_parts` returns None and the caller runs that query.

>>> import tempfile, pathlib
>>> from workbench import catalog
>>> from workbench.synth.build import build_release
>>> from cohort.builder import age, cohort, condition
>>> rel = pathlib.Path(tempfile.mkdtemp()) / "r"
>>> _ = build_release(rel, persons=2000, genotyped=0, variants=0, seed=1, progress=False)
>>> cat = catalog.open(rel)
>>> htn = cohort("htn").entry(condition("KCD8", "I10"))
>>> members, persons, steps = evaluate_in_parts(htn.require("65+", age(65)).build(), cat)
>>> steps
['entry events', '65+']
>>> _, older, _ = evaluate_in_parts(htn.require("70+", age(70)).build(), cat)  # age only
>>> older[0] == persons[0] and older[1] <= persons[1]
True
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import polars as pl

from cohort import model as m
from cohort.compile import (
    INDEX_COLUMNS,
    Resolver,
    compile_entry_events,
    compile_index,
    compile_members,
    compile_rules,
)
from cohort.concepts import Resolved, resolve
from workbench.catalog import Catalog

KEY = ["person_id", "start_date", "end_date", "op_start", "op_end"]
MAX_ENTRIES = 32            # entries whose events and index events are kept (LRU)
MAX_EVENT_ROWS = 1_000_000  # entry events kept only up to this many rows
MAX_RULES = 256             # rules whose verdicts are kept
MAX_VERDICT_ROWS = 2_000_000   # verdicts kept per rule; past that, the current index's

_LOCK = threading.Lock()
_EVENTS: OrderedDict[tuple, pl.DataFrame] = OrderedDict()
_INDEX: OrderedDict[tuple, pl.DataFrame] = OrderedDict()
_VERDICTS: OrderedDict[tuple, pl.DataFrame] = OrderedDict()
_NAMES = itertools.count()


def clear_parts() -> None:
    """Forget every kept entry's events, index events and rule verdicts."""
    with _LOCK:
        for store in (_EVENTS, _INDEX, _VERDICTS):
            store.clear()


def evaluate_in_parts(cohort: m.Cohort, cat: Catalog
                      ) -> tuple[pl.DataFrame, list[int], list[str]] | None:
    """(members, persons per attrition step, step names) of ``cohort`` on ``cat``, as
    ``cohort.engine.split_result`` gives them from the single query; None where the
    parts cannot stand for that query (see the module docstring)."""
    tables = set(cat.tables) | set(cat.derived)

    def resolver(cs: m.ConceptSet, path: str) -> Resolved:
        return resolve(cat, cs, path=path)

    scope = (cat.release_id, tuple(sorted(tables)))
    index = _index_events(cohort, cat, scope, tables, resolver)
    verdicts = _verdicts(cohort, cat, scope, tables, resolver, index)
    if verdicts is None:
        return None
    flagged = index
    for k, v in enumerate(verdicts):
        flagged = flagged.join(v.rename({"ok": f"ok_{k}"}), on=KEY, how="left",
                               nulls_equal=True)
    persons = [index["person_id"].n_unique()]
    met = pl.lit(True)
    for k in range(len(verdicts)):
        met = met & pl.col(f"ok_{k}")
        persons.append(flagged.filter(met)["person_id"].n_unique())
    with _registered(cat, flagged.filter(met).select(INDEX_COLUMNS)) as qualified:
        members = cat.frame(compile_members(cohort, qualified, tables, resolver)
                            .sql("duckdb"))
    return members, persons, ["entry events"] + [r.name for r in cohort.inclusion_rules]


def _index_events(cohort: m.Cohort, cat: Catalog, scope: tuple, tables: set[str],
                  resolver: Resolver) -> pl.DataFrame:
    """The index events (``INDEX_COLUMNS``): kept, or from the kept entry events."""
    entry_key = (scope, cohort.entry.model_dump_json())
    index = _get(_INDEX, entry_key)
    if index is not None:
        return index
    events_key = (scope, cohort.entry.model_dump_json(include={"criteria"}))
    events = _get(_EVENTS, events_key)
    if events is None:
        events = cat.frame(compile_entry_events(cohort, tables, resolver).sql("duckdb"))
        if events.height <= MAX_EVENT_ROWS:
            _put(_EVENTS, events_key, events, MAX_ENTRIES)
    with _registered(cat, events) as name:
        index = cat.frame(compile_index(cohort, tables, resolver, events=name).sql("duckdb"))
    _put(_INDEX, entry_key, index, MAX_ENTRIES)
    return index


def _verdicts(cohort: m.Cohort, cat: Catalog, scope: tuple, tables: set[str],
              resolver: Resolver, index: pl.DataFrame) -> list[pl.DataFrame] | None:
    """Each rule's verdicts (``KEY`` and ``ok``) on the index events at least: kept ones,
    and one query for the rules and index events not seen. None when that query gives an
    event several rows (see the module docstring)."""
    keys = index.select(KEY).unique()
    rule_keys = [(scope, r.group.model_dump_json()) for r in cohort.inclusion_rules]
    verdicts = [_get(_VERDICTS, k) for k in rule_keys]
    todo = {k: keys if v is None else keys.join(v, on=KEY, how="anti", nulls_equal=True)
            for k, v in enumerate(verdicts)}
    todo = {k: t for k, t in todo.items() if t.height}
    if todo:
        pending = pl.concat(todo.values()).unique().with_row_index("event_id").select(
            pl.col("event_id").cast(pl.Int64), *KEY)
        with _registered(cat, pending) as name:
            found = cat.frame(compile_rules(cohort, sorted(todo), name, tables, resolver)
                              .sql("duckdb"))
        if found.height != pending.height:
            return None     # a person-level join gave an event several rows
        for k in todo:
            new = found.select(*KEY, ok=pl.col(f"rule_{k + 1}").fill_null(False))
            verdicts[k] = _add_verdicts(rule_keys[k], new, keys)
    # (a rule never evaluated here has no index events to judge)
    return [keys.with_columns(ok=pl.lit(False)) if v is None else v for v in verdicts]


@contextmanager
def _registered(cat: Catalog, frame: pl.DataFrame) -> Iterator[str]:
    """``frame`` registered on the catalog's connection, under a name of its own."""
    name = f"wb_incremental_{next(_NAMES)}"
    cat.connection.register(name, frame.to_arrow())
    try:
        yield name
    finally:
        cat.connection.unregister(name)


def _get(store: OrderedDict, key: tuple) -> pl.DataFrame | None:
    with _LOCK:
        if key in store:
            store.move_to_end(key)
            return store[key]
    return None


def _put(store: OrderedDict, key: tuple, value: pl.DataFrame, limit: int) -> None:
    with _LOCK:
        store[key] = value
        store.move_to_end(key)
        while len(store) > limit:
            store.popitem(last=False)


def _add_verdicts(key: tuple, new: pl.DataFrame, keys: pl.DataFrame) -> pl.DataFrame:
    """Keep ``new`` verdicts with the rule's earlier ones (another thread may have added
    the same events meanwhile); past MAX_VERDICT_ROWS keep those of ``keys`` only."""
    with _LOCK:
        old = _VERDICTS.get(key)
        if old is not None:
            new = pl.concat([old, new.join(old, on=KEY, how="anti", nulls_equal=True)])
        if new.height > MAX_VERDICT_ROWS:
            new = new.join(keys, on=KEY, how="semi", nulls_equal=True)
    _put(_VERDICTS, key, new, MAX_RULES)
    return new
