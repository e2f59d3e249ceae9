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

    def chain(self, persons: Sequence[int], *, unpublished: Sequence[int] = ()
              ) -> tuple[list[Cell], list[Cell | None]]:
        """An attrition chain: persons remaining after each step and persons lost at each
        (``lost[0]`` is None), suppressed so that no hidden small cell can be worked out.

        Every published pair of neighbours gives ``lost[i] = persons[i-1] - persons[i]``,
        so hiding a small loss alone hides nothing. Cells are hidden until the shown cells
        (with these equations and, with rounding, the rounding intervals) tell an attacker
        no more about any small cell than the table's shape alone: its range is the one it
        has when every cell is hidden (1..k-1, narrower only where several small cells
        interlock, as in 2 -> 1). The attacker's bounds are found by linear programming
        (:func:`scipy.optimize.linprog`). Extra cells are chosen greedily: the one that
        widens the worst bound most, losses before remaining counts; the final count only
        when nothing else will do.

        >>> p = SmallCellPolicy(threshold=20)
        >>> def shown(persons):
        ...     cells, lost = p.chain(persons)
        ...     return [str(c) for c in cells], [str(c) for c in lost[1:]]
        >>> shown([1000, 995, 700, 650])      # the entry count hides the small loss
        (['suppressed', '995', '700', '650'], ['< 20', '295', '50'])
        >>> shown([1000, 900, 895])           # a small last loss: the count stays shown
        (['1000', 'suppressed', '895'], ['suppressed', '< 20'])
        >>> shown([1000, 900, 800])           # nothing small
        (['1000', '900', '800'], ['100', '100'])

        ``unpublished``: persons cells that are never shown (a QC table gives the input,
        each step's removals and the output only); they count as hidden.
        """
        values = [int(v) for v in persons]
        n = len(values)
        # cells 0..n-1: persons; n..2n-2: lost[1..n-1]
        true = values + [values[i - 1] - values[i] for i in range(1, n)]
        primary = {i for i, v in enumerate(true) if 0 < v < self.threshold}
        hidden = primary | set(unpublished)      # persons cells never shown (QC steps)
        final = n - 1          # the cohort's count: hidden only when nothing else will do
        everything = set(range(len(true)))
        target = {c: self._width(true, everything, primary, c) for c in primary}
        if any(t < 1 - 1e-9 for t in target.values()):
            # the shape alone pins a small cell (3 -> 2 -> 1 with k = 4: "< 4" says 1..3,
            # so each loss is at least 1): hide every cell, without saying which are small
            hidden = everything
            primary = set()
        while primary and (worst := self._exposed(true, hidden, primary, target)) is not None:
            candidates = [i for i in range(len(true)) if i not in hidden and i != final]
            if not candidates:
                candidates = [i for i in range(len(true)) if i not in hidden]
            if not candidates:
                break
            def order(i: int, worst: int = worst) -> tuple:
                width = self._width(true, hidden | {i}, primary, worst)
                return (-width, i < n, i == n - 1, true[i])
            hidden.add(min(candidates, key=order))
        cells: list[Cell] = [
            (Suppressed(self.threshold) if i in primary else
             Suppressed(self.threshold, complementary=True)) if i in hidden
            else self.count(v) for i, v in enumerate(true)]
        return cells[:n], [None, *cells[n:]]

    def _bounds(self, true: list[int], hidden: set[int], primary: set[int], cell: int
                ) -> tuple[float, float]:
        """What an attacker can tell of ``cell``: its least and greatest feasible value."""
        from scipy.optimize import linprog

        n = (len(true) + 1) // 2
        rows = []
        for i in range(1, n):          # persons[i-1] - lost[i] - persons[i] = 0
            row = [0.0] * len(true)
            row[i - 1], row[n + i - 1], row[i] = 1.0, -1.0, -1.0
            rows.append(row)
        # an attacker knows counts are >= 0, and losses too when the chain never grows
        monotone = all(v >= 0 for v in true[n:])
        bounds = []
        for i, v in enumerate(true):
            if i in primary:
                bounds.append((1, self.threshold - 1))
            elif i in hidden:
                bounds.append((None, None) if i >= n and not monotone else (0, None))
            elif self.rounding > 1:
                shown = self.count(v)
                half = self.rounding / 2
                bounds.append((max(0, shown - half), shown + half))
            else:
                bounds.append((v, v))
        c = [0.0] * len(true)
        out = []
        for sign in (1.0, -1.0):
            c[cell] = sign
            r = linprog(c, A_eq=rows or None, b_eq=[0.0] * len(rows) or None,
                        bounds=bounds, method="highs")
            out.append(sign * r.fun if r.status == 0 else (1 if sign > 0 else
                                                             self.threshold - 1))
        return out[0], out[1]

    def _width(self, true: list[int], hidden: set[int], primary: set[int], cell: int) -> float:
        lo, hi = self._bounds(true, hidden, primary, cell)
        return hi - lo

    def _exposed(self, true: list[int], hidden: set[int], primary: set[int],
                 target: dict[int, float]) -> int | None:
        """The small cell the shown cells narrow most, compared with what the table's shape
        alone allows (``target``: its range with every cell hidden); None when none is."""
        short = {c: target[c] - self._width(true, hidden, primary, c) for c in sorted(primary)}
        worst = max(short, key=lambda c: short[c])
        return worst if short[worst] > 1e-9 else None

    def format(self, cell: Cell) -> str:
        """'< k', 'suppressed', or the count with thousands separators."""
        return str(cell) if isinstance(cell, Suppressed) else f"{cell:,}"

    def is_suppressed(self, cell: Cell) -> bool:
        return isinstance(cell, Suppressed)
