"""Small-cell policy: every count that leaves the workbench passes through here.

Counts from 1 to ``threshold - 1`` are replaced by :data:`SUPPRESSED`, a distinct value
(not 0, not NaN) that prints as ``"< k"``. Zero is shown: it reveals no person. When a
group of cells has exactly one suppressed cell, the smallest other non-zero cell is
suppressed too (complementary suppression), so a total cannot give it back by subtraction.

Optionally, shown counts are rounded to a base (``rounding``, e.g. 5 or 10, as some
output-checking rules ask). Suppression is decided on the true count, before rounding, so
a count of 1..k-1 is never rounded up to k and shown; rounding never gives 0 for a count
that is not 0 (it rounds up to the base instead).

>>> policy = SmallCellPolicy(threshold=20)
>>> [str(c) for c in policy.counts([0, 5, 30, 400])]
['0', '< 20', 'suppressed', '400']
>>> policy.format(policy.count(7))
'< 20'
>>> [str(c) for c in SmallCellPolicy(threshold=10, rounding=5).counts([0, 8, 12, 13, 402])]
['0', '< 10', 'suppressed', '15', '400']

The threshold and the rounding come from ``$WORKBENCH_SMALL_CELL`` and
``$WORKBENCH_ROUNDING`` when a policy is made without them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_THRESHOLD = int(os.environ.get("WORKBENCH_SMALL_CELL", "20"))
DEFAULT_ROUNDING = int(os.environ.get("WORKBENCH_ROUNDING", "1"))


@dataclass(frozen=True)
class Suppressed:
    """A count hidden by the small-cell policy.

    Primary: the true value lies in 1..k-1 (prints "< k"). Complementary: a larger cell
    hidden so that a primary one cannot be recovered by subtraction (prints "suppressed").
    """

    k: int
    complementary: bool = False

    def __str__(self) -> str:
        return "suppressed" if self.complementary else f"< {self.k}"


SUPPRESSED = Suppressed(DEFAULT_THRESHOLD)

Cell = int | Suppressed


@dataclass(frozen=True)
class SmallCellPolicy:
    """Threshold k: counts 1..k-1 are never shown (All of Us uses 20)."""

    threshold: int = DEFAULT_THRESHOLD
    rounding: int = DEFAULT_ROUNDING

    def __post_init__(self) -> None:
        if not (isinstance(self.threshold, int) and self.threshold >= 1):
            raise ValueError(f"small-cell threshold must be a whole number >= 1, got "
                             f"{self.threshold!r}")
        if not (isinstance(self.rounding, int) and self.rounding >= 1):
            raise ValueError(f"rounding base must be a whole number >= 1, got "
                             f"{self.rounding!r}")

    def count(self, n: int) -> Cell:
        """One count, suppressed if 0 < n < threshold (on the true count), else rounded to
        the nearest multiple of ``rounding`` (never to 0)."""
        n = int(n)
        if 0 < n < self.threshold:
            return Suppressed(self.threshold)
        if self.rounding == 1 or n == 0:
            return n
        return max(self.rounding, int(self.rounding * round(n / self.rounding)))

    def counts(self, values: Sequence[int]) -> list[Cell]:
        """A group of counts (e.g. one row of a table) with complementary suppression."""
        cells = [self.count(int(v)) for v in values]
        hidden = [i for i, c in enumerate(cells) if isinstance(c, Suppressed)]
        if len(hidden) == 1:
            shown = [(int(values[i]), i) for i, c in enumerate(cells)
                     if not isinstance(c, Suppressed) and c > 0]
            if shown:
                cells[min(shown)[1]] = Suppressed(self.threshold, complementary=True)
        return cells

    def format(self, cell: Cell) -> str:
        """'< k', 'suppressed', or the count with thousands separators."""
        return str(cell) if isinstance(cell, Suppressed) else f"{cell:,}"

    def is_suppressed(self, cell: Cell) -> bool:
        return isinstance(cell, Suppressed)
