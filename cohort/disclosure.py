"""Differencing guard: two nearly identical cohorts asked one after the other.

Small-cell suppression hides a count of 1..k-1, but not the difference of two shown
counts: ask for "women with diabetes" (812) and then for the same minus one rare code
(811), and the one person with that code is found. The guard remembers the person sets
behind every count it let through, per release, within the session (and, when the
session works in a project with a folder, within the project, across sessions and
processes). A new cohort whose persons differ from an earlier one's by 1..k-1 persons
(the symmetric difference) has its count and its attrition withheld: the cells print as
``suppressed`` and the result says why (:attr:`~cohort.engine.CohortResult.withheld`).
Asking the same definition again gives the same answer; a cohort that differs by 0 or by
k or more persons passes.

Only aggregate sessions are guarded (tiers public and registered): a controlled session
sees the members themselves, so hiding their count would protect nothing; what a
controlled researcher takes out of the Open Lab is checked at export.

>>> import numpy as np
>>> g = DifferencingGuard(threshold=20)
>>> g.screen("r1", "a", np.arange(1000)) is None
True
>>> g.screen("r1", "b", np.arange(1, 1000))           # one person fewer than "a"
'differs by 1..19 persons from cohort a asked earlier'
>>> g.screen("r1", "c", np.arange(30, 1000)) is None   # 30 fewer: passes
True
>>> g.screen("r2", "b", np.arange(1, 1000)) is None    # another release: its own ledger
True
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cohort.privacy import DEFAULT_THRESHOLD
from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench.catalog import Catalog


class Withheld(WorkbenchError):
    """A characterisation of a result whose counts the differencing guard withheld."""

#: Person ids kept in memory per guard before the oldest sets are dropped (int32: 4 bytes
#: each). A project guard keeps every set on disk as well, with no cap.
MEMORY_IDS = 50_000_000
FOLDER = ".workbench-disclosure"


class DifferencingGuard:
    """The person sets behind released counts, per release; see the module docstring.

    ``folder``: where a project keeps its sets (one ``<size>-<hash>.npy`` per cohort
    under ``<folder>/<release_id>/``), read by every session of the project.
    """

    def __init__(self, threshold: int = DEFAULT_THRESHOLD, folder: Path | None = None,
                 memory_ids: int = MEMORY_IDS) -> None:
        self.threshold = threshold
        self.folder = folder
        self.memory_ids = memory_ids
        self._sets: dict[str, OrderedDict[str, np.ndarray]] = {}
        self._held = 0
        self._lock = threading.Lock()

    def screen(self, release_id: str, definition_hash: str, persons: np.ndarray) -> str | None:
        """None when the count may be shown (the set is then remembered); else the reason
        it is withheld (the set is not remembered: it was not released)."""
        ids = np.unique(np.asarray(persons, dtype=np.int64))
        with self._lock:
            on_disk = self._on_disk(release_id)      # one listing of the project's sets
            known = set(self._sets.get(release_id, {})) | {h for _, h, _ in on_disk}
            if definition_hash in known:
                return None
            for other, earlier in self._candidates(release_id, ids.size, on_disk):
                if other == definition_hash:
                    continue
                d = np.setxor1d(ids, earlier, assume_unique=True).size
                if 0 < d < self.threshold:
                    return (f"differs by 1..{self.threshold - 1} persons from cohort "
                            f"{other[:12]} asked earlier")
            self._remember(release_id, definition_hash, ids)
        return None

    def _on_disk(self, release_id: str) -> list[tuple[int, str, Path]]:
        """(size, definition hash, file) of each set the project keeps for the release."""
        where = self.folder / release_id if self.folder is not None else None
        if where is None or not where.is_dir():
            return []
        return [(int(p.stem.split("-", 1)[0]), p.stem.split("-", 1)[1], p)
                for p in sorted(where.glob("*.npy"))]

    def _candidates(self, release_id: str, size: int, on_disk: list[tuple[int, str, Path]]):
        """Earlier sets whose size is within k of ``size`` (|A - B| <= |A xor B|)."""
        k = self.threshold
        seen = set()
        for h, ids in self._sets.get(release_id, {}).items():
            seen.add(h)
            if abs(ids.size - size) < k:
                yield h, ids
        for n, h, p in on_disk:
            if h not in seen and abs(n - size) < k:
                yield h, np.load(p).astype(np.int64)

    def _remember(self, release_id: str, definition_hash: str, ids: np.ndarray) -> None:
        if self.folder is not None:
            from workbench import atomic

            target = self.folder / release_id / f"{ids.size}-{definition_hash}.npy"
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic.writing(target) as tmp, open(tmp, "wb") as f:
                np.save(f, ids)
        small = ids.astype(np.int32) if ids.size == 0 or ids.max() < 2**31 else ids
        self._sets.setdefault(release_id, OrderedDict())[definition_hash] = small
        self._held += small.size
        while self._held > self.memory_ids:
            oldest = next(r for r in self._sets if self._sets[r])
            _, dropped = self._sets[oldest].popitem(last=False)
            self._held -= dropped.size


_GUARDS: dict[tuple[str, str | None], DifferencingGuard] = {}
_GUARDS_LOCK = threading.Lock()


def guard_for(cat: Catalog, threshold: int) -> DifferencingGuard | None:
    """The guard of the current session on ``cat`` (None for a controlled session): one
    per user and project in this process; a project with a folder keeps its sets there."""
    from workbench import access

    session = access.current(cat.manifest)
    project = access.project_of(session)
    tier = access.effective_tier(session, project, getattr(cat, "project", None))
    if tier == "controlled":
        return None
    key = (session.user, None if project is None else str(project.file))
    with _GUARDS_LOCK:
        guard = _GUARDS.get(key)
        if guard is None or guard.threshold != threshold:
            folder = None if project is None or project.folder is None \
                else project.folder / FOLDER
            guard = _GUARDS[key] = DifferencingGuard(threshold, folder)
    return guard


def screen(cat: Catalog, definition_hash: str, persons: np.ndarray,
           threshold: int) -> str | None:
    """Screen a result for the current session (see :class:`DifferencingGuard.screen`)."""
    guard = guard_for(cat, threshold)
    return None if guard is None else guard.screen(cat.release_id, definition_hash, persons)


def forget() -> None:
    """Drop every in-memory guard of this process (a new session; tests)."""
    with _GUARDS_LOCK:
        _GUARDS.clear()
