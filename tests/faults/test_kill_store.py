"""kill -9 while the MatrixTable cache is written (VCF -> MatrixTable, genomics.store).

Each job is a Python process with its own Hail JVM; the kill takes the whole process
group, JVM included, at a random moment after the temp MatrixTable appeared. A killed
``refresh`` keeps the previous MatrixTable byte for byte; a killed first import leaves
no MatrixTable that looks whole; the next run reads the good one, builds the missing
one, and deletes what the dead ones left. Two JVM starts (~20 s each) besides the test
session's own.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
from pathlib import Path

import pytest
from _proc import digest, kill_after, script, start

from workbench.schema import GENOTYPE_VCF

pytestmark = pytest.mark.java

JOB = """
import sys
from genomics.session import init
from genomics.store import import_vcf
init(cores=2, driver_memory="2g")
partitions, _, refresh = sys.argv[2].partition(":")
import_vcf(sys.argv[1], partitions=int(partitions), refresh=refresh == "refresh")
raise SystemExit("not killed")
"""


def finished(store: Path) -> list[Path]:
    """The MatrixTables in the store (not the hidden temp directories beside them)."""
    return sorted(p for p in store.glob("*.mt") if not p.name.startswith("."))


def _vcf_truth(vcf: Path) -> list[int]:
    """Variants, samples and non-reference calls, read from the VCF text (no Hail)."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
    from _vcf import read_gt

    ids, samples, g = read_gt(vcf)
    return [len(ids), len(samples), int((g > 0).sum())]


def _answer(mt) -> list[int]:
    import hail as hl

    rows, cols = mt.count()
    return [rows, cols, mt.aggregate_entries(hl.agg.count_where(mt.GT.is_non_ref()))]


def test_kill_during_the_matrixtable_write(small_release: Path, tmp_path: Path, hail_session,
                                           monkeypatch: pytest.MonkeyPatch,
                                           rng: random.Random, survived) -> None:
    """The good MatrixTable and the next run use this test session's JVM (shared with
    the other Java tests); each killed job starts its own."""
    import hail

    from genomics.store import import_vcf

    vcf = small_release / GENOTYPE_VCF
    truth = _vcf_truth(vcf)
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    env = {**os.environ}
    store = tmp_path / "cache" / "genomics"

    def writing(exclude: set[str] = frozenset()) -> list[Path]:
        return [p for p in store.glob(".*.mt.*writing.mt")
                if p.name.split(".mt.")[0][1:] not in exclude] if store.is_dir() else []

    # a good MatrixTable of the VCF in 2 partitions
    assert _answer(import_vcf(vcf, partitions=2)) == truth
    [good] = finished(store)
    before = digest(good)

    # 1. kill a refresh of it while the new one is written. On an idle machine the write
    # can finish inside the random delay: then the refresh has committed (the exchange is
    # one rename) and the good MatrixTable is the new, complete one. That is a correct
    # outcome, but not the one this step is for: take it as the new "before" and try
    # again with a shorter delay, until a kill lands mid-write (at most 4 tries).
    delay = rng.uniform(0.0, 1.5)
    for _ in range(4):
        proc = start(script(JOB, str(vcf), "2:refresh"), env=env)
        assert kill_after(proc, delay, ready=lambda: bool(writing())), "the refresh finished"
        if digest(good) == before:
            break
        assert finished(store) == [good] and _answer(hail.read_matrix_table(str(good))) \
            == truth, "a refresh killed after its commit left a broken MatrixTable"
        before, delay = digest(good), delay / 4
    else:
        pytest.fail("four refreshes finished before their kill; no kill landed mid-write")
    survived.append(f"MatrixTable cache: random kill {delay:.2f} s into a refresh")
    assert digest(good) == before
    assert writing(), "the killed write left no temp directory"

    # 2. kill the first import of the same VCF in 3 partitions (another cache key). As in
    # 1, the import can commit inside the random delay (CI saw it once on an idle
    # machine): the MatrixTable it committed must then be whole and right; remove it, so
    # the next try is a first import again, and retry with a shorter delay.
    delay = rng.uniform(0.0, 1.5)
    for _ in range(4):
        proc = start(script(JOB, str(vcf), "3"), env=env)
        assert kill_after(proc, delay, ready=lambda: bool(writing({good.stem}))), \
            "the import finished"
        committed = [m for m in finished(store) if m != good]
        if not committed:
            break
        [done] = committed
        assert _answer(hail.read_matrix_table(str(done))) == truth, \
            "an import killed after its commit left a broken MatrixTable"
        shutil.rmtree(done)
        delay /= 4
    else:
        pytest.fail("four first imports finished before their kill; no kill landed mid-write")
    survived.append(f"MatrixTable cache: random kill {delay:.2f} s into a first import")
    assert finished(store) == [good], "a killed import left a MatrixTable that looks whole"

    # 3. the next run: the good one is read as it was, the missing one built, litter gone
    assert _answer(import_vcf(vcf, partitions=2)) == truth
    assert digest(good) == before
    assert _answer(import_vcf(vcf, partitions=3)) == truth
    assert len(finished(store)) == 2
    assert writing() == [], "the next run left the dead writers' temp directories"
