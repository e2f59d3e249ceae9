"""Run a definition on a release: counts, attrition and members, small cells suppressed.

>>> import tempfile, pathlib
>>> from workbench import catalog
>>> from workbench.synth.build import build_release
>>> from cohort.builder import condition, cohort
>>> rel = pathlib.Path(tempfile.mkdtemp()) / "r"
>>> _ = build_release(rel, persons=2000, genotyped=0, variants=0, seed=1, progress=False)
>>> cat = catalog.open(rel)
>>> res = run(cohort("hypertension").entry(condition("KCD8", "I10")).build(), cat)
>>> res.count == res.members["subject_id"].n_unique()
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import polars as pl
import pyarrow as pa

from cohort import model as m
from cohort.compile import Compiled, compile_definition
from cohort.concepts import resolve
from cohort.privacy import Cell, SmallCellPolicy, Suppressed
from workbench.catalog import Catalog

_RESULTS: dict[tuple[str, str], tuple[pl.DataFrame, list[int], list[str]]] = {}


@dataclass
class CohortResult:
    """What running a definition gives. ``count`` and ``attrition`` pass the small-cell
    policy; ``members`` is row-level (pseudonymised person ids)."""

    definition: m.Cohort | m.CohortSet
    release_id: str
    steps: list[str]
    members: pl.DataFrame
    step_persons: list[int]
    policy: SmallCellPolicy = field(default_factory=SmallCellPolicy)

    @property
    def count(self) -> Cell:
        """Persons in the cohort (suppressed if 1..k-1)."""
        return self.policy.count(self.members["subject_id"].n_unique())

    @property
    def attrition(self) -> pl.DataFrame:
        """rule, persons remaining, persons lost; suppressed cells are null with
        ``suppressed`` true and shown as text in ``persons_shown``/``lost_shown``."""
        cells = [self.policy.count(n) for n in self.step_persons]
        lost = [None] + [a - b for a, b in zip(self.step_persons, self.step_persons[1:],
                                               strict=False)]
        lost_cells = [None if v is None else self.policy.count(v) for v in lost]
        if any(isinstance(c, Suppressed) for c in cells):
            # hiding a remaining-count must also hide the losses next to it
            lost_cells = [None if v is None else (
                Suppressed(self.policy.threshold, complementary=True)
                if isinstance(cells[k], Suppressed) or isinstance(cells[k - 1], Suppressed)
                else lc) for k, (v, lc) in enumerate(zip(lost, lost_cells, strict=True))]
        return pl.DataFrame({
            "step": list(range(len(self.steps))), "rule": self.steps,
            "persons": [None if isinstance(c, Suppressed) else c for c in cells],
            "lost": [None if c is None or isinstance(c, Suppressed) else c for c in lost_cells],
            "suppressed": [isinstance(c, Suppressed) for c in cells],
            "persons_shown": [self.policy.format(c) for c in cells],
            "lost_shown": ["" if c is None else self.policy.format(c) for c in lost_cells],
        }, schema_overrides={"persons": pl.Int64, "lost": pl.Int64})

    def to_table(self, cohort_definition_id: int = 1) -> pa.Table:
        """The members as an OMOP ``cohort`` table (Arrow)."""
        return self.members.with_columns(
            cohort_definition_id=pl.lit(cohort_definition_id, pl.Int64)).select(
            "cohort_definition_id", "subject_id", "cohort_start_date",
            "cohort_end_date").to_arrow()


def clear_cache() -> None:
    """Forget every cached result (as after a restart; for benchmarks and tests)."""
    _RESULTS.clear()


def compile_for(definition: m.Cohort | m.CohortSet, cat: Catalog,
                dialect: str = "duckdb") -> Compiled:
    """Compile against a release: its tables and its vocabulary (concepts resolved)."""
    return compile_definition(definition, set(cat.tables) | set(cat.derived),
                              lambda cs, path: resolve(cat, cs, path=path), dialect)


def run(definition: m.Cohort | m.CohortSet, cat: Catalog, *,
        policy: SmallCellPolicy | None = None,
        cache: Literal["use", "refresh"] = "use") -> CohortResult:
    """Compile and run on the release's DuckDB; one query gives rows and attrition."""
    key = (cat.release_id, definition.content_hash())
    if cache == "use" and key in _RESULTS:
        members, persons, steps = _RESULTS[key]
    else:
        compiled = compile_for(definition, cat)
        members, persons = split_result(cat.sql(compiled.sql("duckdb")).pl())
        steps = compiled.steps
        _RESULTS[key] = (members, persons, steps)
    return CohortResult(definition, cat.release_id, steps, members, persons,
                        policy or SmallCellPolicy())


def split_result(out: pl.DataFrame) -> tuple[pl.DataFrame, list[int]]:
    """The compiled query's output (any engine) -> (members, attrition persons)."""
    members = (out.filter(pl.col("part") == 0)
               .select(pl.col("subject_id").cast(pl.Int64),
                       pl.col("cohort_start_date").cast(pl.Date),
                       pl.col("cohort_end_date").cast(pl.Date))
               .sort("subject_id", "cohort_start_date"))
    att = out.filter(pl.col("part") == 1).sort("step")
    return members, [int(v) for v in att["persons"]]
