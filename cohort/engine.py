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

import os
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl
import pyarrow as pa

from cohort import disclosure, governance
from cohort import model as m
from cohort.compile import Compiled, compile_definition
from cohort.concepts import resolve
from cohort.incremental import clear_parts, evaluate_in_parts
from cohort.privacy import Cell, SmallCellPolicy, Suppressed
from workbench.catalog import Catalog
from workbench.errors import UsageError

_RESULTS: dict[tuple[str, str], tuple[pl.DataFrame, list[int], list[str]]] = {}


@dataclass
class CohortResult:
    """What running a definition gives. ``count`` and ``attrition`` pass the small-cell
    policy (any tier); ``members`` is row-level (pseudonymised person ids): the controlled
    tier only (:mod:`workbench.access`), its first use recorded in the audit trail."""

    definition: m.Cohort | m.CohortSet
    release_id: str
    steps: list[str]
    members: pl.DataFrame = field(repr=False, compare=False)   # read through _read_members
    step_persons: list[int]
    policy: SmallCellPolicy = field(default_factory=SmallCellPolicy)
    release_kind: str | None = None      # the manifest's "kind" (synthetic: default tier)
    withheld: str | None = None          # why count and attrition are withheld (differencing)
    engine: str = "duckdb"               # where it ran (the same rows on every engine)
    _audited: bool = field(default=False, init=False, repr=False, compare=False)

    @property
    def count(self) -> Cell:
        """Persons in the cohort: as the attrition's last row shows it (suppressed if
        1..k-1, hidden if the attrition needs it hidden, or withheld:
        :mod:`cohort.disclosure`)."""
        n = self._members["subject_id"].n_unique()
        if self.withheld:
            return Suppressed(self.policy.threshold, complementary=True)
        if self.step_persons and self.step_persons[-1] == n:
            return self._chain()[0][-1]
        return self.policy.count(n)

    def _chain(self) -> tuple[list[Cell], list[Cell | None]]:
        """The attrition's cells through :meth:`SmallCellPolicy.chain` (memoised)."""
        key = (self.policy, tuple(self.step_persons))
        if getattr(self, "_chain_memo", (None,))[0] != key:
            self._chain_memo = (key, self.policy.chain(self.step_persons))
        return self._chain_memo[1]

    @property
    def attrition(self) -> pl.DataFrame:
        """rule, persons remaining, persons lost; suppressed cells are null with
        ``suppressed`` true and shown as text in ``persons_shown``/``lost_shown``. No
        hidden small cell can be worked out from the shown ones by subtraction
        (:meth:`SmallCellPolicy.chain`)."""
        if self.withheld:    # every step: a step count could give the difference back
            hide = Suppressed(self.policy.threshold, complementary=True)
            cells: list[Cell] = [hide for _ in self.step_persons]
            lost_cells: list[Cell | None] = [None] + [hide for _ in self.step_persons[1:]]
        else:
            cells, lost_cells = self._chain()
        return pl.DataFrame({
            "step": list(range(len(self.steps))), "rule": self.steps,
            "persons": [None if isinstance(c, Suppressed) else c for c in cells],
            "lost": [None if c is None or isinstance(c, Suppressed) else c for c in lost_cells],
            "suppressed": [isinstance(c, Suppressed) for c in cells],
            "persons_shown": [self.policy.format(c) for c in cells],
            "lost_shown": ["" if c is None else self.policy.format(c) for c in lost_cells],
        }, schema_overrides={"persons": pl.Int64, "lost": pl.Int64})

    def to_table(self, cohort_definition_id: int = 1) -> pa.Table:
        """The members as an OMOP ``cohort`` table (Arrow): controlled tier, audited."""
        governance.gate("controlled", "the cohort table (row-level)", "cohort.to_table", self)
        return self._members.with_columns(
            cohort_definition_id=pl.lit(cohort_definition_id, pl.Int64)).select(
            "cohort_definition_id", "subject_id", "cohort_start_date",
            "cohort_end_date").to_arrow()


def _read_members(self: CohortResult) -> pl.DataFrame:
    """subject_id, cohort_start_date, cohort_end_date: row-level, the controlled tier only
    (:mod:`workbench.access`); the first read of each result is audited."""
    governance.gate("controlled", "cohort members (row-level)", "cohort.members", self,
                    record=not self._audited)
    self._audited = True
    return self._members


def _set_members(self: CohortResult, rows: pl.DataFrame) -> None:
    self._members = rows


# the field stays an __init__/replace() argument; reading it goes through the access check
CohortResult.members = property(_read_members, _set_members,  # type: ignore[assignment]
                                doc=_read_members.__doc__)


def clear_cache() -> None:
    """Forget every cached result and part (as after a restart; for benchmarks and
    tests)."""
    _RESULTS.clear()
    clear_parts()


def compile_for(definition: m.Cohort | m.CohortSet, cat: Catalog,
                dialect: str = "duckdb") -> Compiled:
    """Compile against a release: its tables and its vocabulary (concepts resolved)."""
    governance.check_grants(definition, cat)
    return compile_definition(definition, set(cat.tables) | set(cat.derived),
                              lambda cs, path: resolve(cat, cs, path=path), dialect)


def run(definition: m.Cohort | m.CohortSet, cat: Catalog, *,
        policy: SmallCellPolicy | None = None,
        cache: Literal["use", "refresh"] = "use",
        engine: Literal["duckdb", "spark"] | None = None, spark: Any = None) -> CohortResult:
    """Compile and run on the release's DuckDB; one query gives rows and attrition.

    ``engine="spark"``: the same definition compiled to Spark SQL and run over the
    release's Parquet files on Spark (local, or the cluster of ``$WORKBENCH_SPARK_MASTER``),
    in the Spark session Hail uses (:func:`cohort.backends.spark_for`; ``spark``: a
    SparkSession or a :class:`~cohort.backends.SparkBackend` to use instead). The result is
    the same as DuckDB's, row for row (tests/integration, tests/cluster). The default
    engine is ``$WORKBENCH_ENGINE`` (a deployment on a cluster sets it; notebooks do not
    change), else duckdb.

    Any tier may run (counts and attrition); under a project a definition reading an
    ungranted table or column is refused first. Every run is audited."""
    engine = engine or os.environ.get("WORKBENCH_ENGINE") or "duckdb"  # type: ignore[assignment]
    if engine not in ("duckdb", "spark"):
        raise UsageError(f"unknown engine {engine!r}",
                         hint="use duckdb or spark (argument engine= or $WORKBENCH_ENGINE)")
    governance.check_grants(definition, cat)
    key = (cat.release_id, definition.content_hash())
    memo = key if engine == "duckdb" else (*key, engine)
    if cache == "use" and memo in _RESULTS:
        members, persons, steps = _RESULTS[memo]
    else:
        parts = (evaluate_in_parts(definition, cat)
                 if cache == "use" and engine == "duckdb" and isinstance(definition, m.Cohort)
                 else None)
        if parts is not None:
            rows, persons, steps = parts
            members = _members(rows)
        elif engine == "spark":
            from cohort.backends import spark_for

            compiled = compile_for(definition, cat, "spark")
            members, persons = split_result(spark_for(cat, spark=spark).query(
                compiled.sql("spark")))
            steps = compiled.steps
        else:
            compiled = compile_for(definition, cat)
            members, persons = split_result(cat.frame(compiled.sql("duckdb")))
            steps = compiled.steps
        _RESULTS[memo] = (members, persons, steps)
    policy = policy or SmallCellPolicy()
    withheld = disclosure.screen(cat, key[1], members["subject_id"].unique().to_numpy(),
                                 policy.threshold)
    result = CohortResult(definition, cat.release_id, steps, members, persons, policy,
                          cat.manifest.get("kind"), withheld, engine)
    governance.audit_run(result, cat,
                         detail=None if engine == "duckdb" else {"engine": engine})
    return result


def split_result(out: pl.DataFrame) -> tuple[pl.DataFrame, list[int]]:
    """The compiled query's output (any engine) -> (members, attrition persons)."""
    att = out.filter(pl.col("part") == 1).sort("step")
    return _members(out.filter(pl.col("part") == 0)), [int(v) for v in att["persons"]]


def _members(rows: pl.DataFrame) -> pl.DataFrame:
    return (rows.select(pl.col("subject_id").cast(pl.Int64),
                        pl.col("cohort_start_date").cast(pl.Date),
                        pl.col("cohort_end_date").cast(pl.Date))
            .sort("subject_id", "cohort_start_date"))
