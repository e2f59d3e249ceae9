"""Hypothesis fuzzing of the three inputs a researcher or a data manager hands in:
definitions (random JSON edits of random valid definitions), VCF text (lines deleted,
duplicated, swapped, bytes flipped, cut short, in text, gzip and bgzip) and a release's
Parquet files (bits flipped, bytes overwritten, cut short, footers zeroed).

Each case ends in an answer or in the one specific error for that input
(DefinitionError naming a JSON path that exists, GenotypeInputError naming the file,
ReleaseError naming the damaged file); any other exception fails. The number of cases
run is printed in the terminal summary (``bad input: ... fuzz cases``). Bounded to about
a minute on a loaded 2-core machine.
"""

from __future__ import annotations

import copy
import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest
from _tally import COUNTS, register
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from unit.test_cohort_hypothesis import definitions

from cohort import concepts, io
from cohort.builder import age, cohort, condition
from cohort.engine import run
from cohort.errors import DefinitionError
from genomics.vcf_check import check_vcf
from workbench import catalog
from workbench.errors import GenotypeInputError, ReleaseError, WorkbenchError
from workbench.synth.build import build_release

FUZZ = settings(deadline=None, derandomize=False, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Path:
    """600 persons, no genomes: a private copy the Parquet fuzz damages and restores."""
    register(pytestconfig)
    out = tmp_path_factory.mktemp("fuzz") / "release"
    build_release(out, persons=600, genotyped=0, variants=0, seed=5, progress=False)
    return out


# --- definitions ------------------------------------------------------------------------

ODD_VALUES = [None, 0, -1, 1.5, 10**20, -(10**20), True, "", "x", "E11'; DROP TABLE person; --",
              [], {}, [None], {"kind": "death"}, "2020-01-01", float("inf"), "\x00"]


def _nodes(data: Any, path: tuple = ()) -> list[tuple]:
    """Every (container path, key) in parsed JSON."""
    out = []
    if isinstance(data, dict):
        for k, v in data.items():
            out.append((path, k))
            out += _nodes(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out.append((path, i))
            out += _nodes(v, (*path, i))
    return out


def _at(data: Any, path: tuple) -> Any:
    for p in path:
        data = data[p]
    return data


@st.composite
def mutated(draw) -> tuple[dict, list[str]]:
    """A random valid definition's JSON with 1-3 random edits: a value of the wrong type
    or out of range, a key removed, an unknown key added, a list emptied or repeated."""
    data = json.loads(io.dumps(draw(definitions)))
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        nodes = _nodes(data)
        if not nodes:
            break
        parent_path, key = draw(st.sampled_from(nodes))
        parent = _at(data, parent_path)
        how = draw(st.sampled_from(["value", "value", "drop", "extra", "number", "list"]))
        where = ".".join(map(str, (*parent_path, key)))
        if how == "value":
            parent[key] = copy.deepcopy(draw(st.sampled_from(ODD_VALUES)))
        elif how == "drop" and isinstance(parent, dict):
            del parent[key]
        elif how == "extra" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["colour", "kind2", "Window", "__class__"]))] = 1
        elif how == "number":
            parent[key] = draw(st.sampled_from([-(10**9), -100_001, -1, 0, 100_001, 2**31,
                                                2**63, 10**40, 0.5, -0.0]))
        elif how == "list":
            value = parent[key]
            parent[key] = [] if not isinstance(value, list) or draw(st.booleans()) else \
                value * draw(st.integers(2, 3))
        edits.append(f"{how} at {where}")
    return data, edits


_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


def _path_exists(data: Any, path: str) -> bool:
    """A DefinitionError's path leads into ``data`` (its last step may be the missing
    key, or a union tag's member)."""
    if path in ("(top level)", "(file)"):
        return True
    steps = [int(i) if i else k for k, i in _TOKEN.findall(path.removesuffix("..."))]
    node = data
    for n, step in enumerate(steps):
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return n == len(steps) - 1
    return True


def test_mutated_definitions(release: Path) -> None:
    with catalog.open(release) as cat:

        @settings(FUZZ, max_examples=200)
        @given(mutated())
        def check(case: tuple[dict, list[str]]) -> None:
            data, edits = case
            note(f"edits: {edits}")
            COUNTS["fuzz cases: mutated definitions"] += 1
            try:
                d = io.from_data(data)
            except DefinitionError as e:
                assert _path_exists(data, e.path), (e.path, edits)
                COUNTS["outcome: definition rejected"] += 1
                return
            try:
                run(d, cat, cache="refresh")
                COUNTS["outcome: definition ran"] += 1
            except WorkbenchError:
                COUNTS["outcome: definition refused at run"] += 1

        check()


def test_definition_text_fuzz(tmp_path: Path, release: Path) -> None:
    """Bytes of a definition file cut, flipped or duplicated: load() gives a definition
    or a DefinitionError, never another exception."""
    text = io.dumps(cohort("t2d").entry(condition("KCD8", "E11")).require(
        "adult", age(18, None)).build()).encode()
    f = tmp_path / "d.json"

    @settings(FUZZ, max_examples=200)
    @given(st.lists(st.tuples(st.sampled_from(["cut", "flip", "dup", "insert"]),
                              st.integers(0, len(text)), st.integers(0, 255)),
                    min_size=1, max_size=4))
    def check(ops: list[tuple[str, int, int]]) -> None:
        b = bytearray(text)
        for op, at, byte in ops:
            at = min(at, len(b))
            if op == "cut":
                del b[at:]
            elif op == "flip" and at < len(b):
                b[at] ^= 1 << (byte % 8)
            elif op == "dup":
                b[at:at] = b[at:at + byte]
            else:
                b[at:at] = bytes([byte])
        f.write_bytes(bytes(b))
        COUNTS["fuzz cases: definition file bytes"] += 1
        try:
            io.load(f)
            COUNTS["outcome: definition file still loads"] += 1
        except DefinitionError:
            COUNTS["outcome: definition file rejected"] += 1

    check()


# --- VCF --------------------------------------------------------------------------------

VCF_HEADER = ["##fileformat=VCFv4.2", "##contig=<ID=chr1>", "##contig=<ID=chr2>",
              '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ts1\ts2\ts3\ts4"]
GTS = ["0/0", "0/1", "1/1", "./.", "0|1", "1|0", "0", "1"]
VCF_ROWS = [f"chr{1 + i // 12}\t{1000 + 37 * i}\trs{i}\t{'ACGT'[i % 4]}\t"
            f"{'GTAC'[i % 4]}{',T' if i % 7 == 0 else ''}\t{50 + i}\tPASS\t.\tGT\t"
            + "\t".join(GTS[(i + k) % 6] for k in range(4)) for i in range(24)]


@st.composite
def vcf_files(draw) -> tuple[str, bytes, list[str]]:
    """(compression, file bytes, edits): line edits on the text, then optionally byte
    edits on the (compressed) bytes."""
    lines = VCF_HEADER + VCF_ROWS
    edits = []
    for _ in range(draw(st.integers(0, 4))):
        k = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "field", "tab"]))
        if op == "delete":
            del lines[k]
        elif op == "duplicate":
            lines.insert(k, lines[k])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[k], lines[j] = lines[j], lines[k]
        elif op == "field":
            fields = lines[k].split("\t")
            fields[draw(st.integers(0, len(fields) - 1))] = draw(st.sampled_from(
                ["", ".", "-5", "chrZ", "0/2", "0/0/1", "x", "1e400", "\x00", "é"]))
            lines[k] = "\t".join(fields)
        else:
            lines[k] = lines[k].replace("\t", " ", 1)
        edits.append(f"{op} line {k + 1}")
        if not lines:
            break
    text = ("\n".join(lines) + "\n").encode()
    how = draw(st.sampled_from(["text", "gzip", "bgzip"]))
    if how == "gzip":
        data = bytearray(gzip.compress(text))
    elif how == "bgzip":
        data = bytearray(_bgzip(text))
    else:
        data = bytearray(text)
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["flip", "cut", "garbage"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[at:]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        edits.append(f"{op} byte {at}")
    return how, bytes(data), edits


def _bgzip(text: bytes) -> bytes:
    import tempfile

    import pysam

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.vcf.bgz"
        w = pysam.libcbgzf.BGZFile(str(path), "wb")
        w.write(text)
        w.close()
        return path.read_bytes()


def test_mutated_vcf(tmp_path: Path, pytestconfig: pytest.Config) -> None:
    register(pytestconfig)
    names = {"text": "calls.vcf", "gzip": "calls.vcf.gz", "bgzip": "calls.vcf.bgz"}

    @settings(FUZZ, max_examples=600)
    @given(vcf_files())
    def check(case: tuple[str, bytes, list[str]]) -> None:
        how, data, edits = case
        note(f"{how}: {edits}")
        path = tmp_path / names[how]
        path.write_bytes(data)
        COUNTS["fuzz cases: mutated VCF"] += 1
        try:
            summary = check_vcf(path)
        except GenotypeInputError as e:
            assert path.name in e.message and e.hint, e.message
            COUNTS["outcome: VCF rejected"] += 1
            return
        assert summary.samples
        COUNTS["outcome: VCF accepted"] += 1

    check()


# --- Parquet ----------------------------------------------------------------------------

DAMAGEABLE = ["clinical/person.parquet", "clinical/condition_occurrence.parquet",
              "clinical/observation_period.parquet", "vocabulary/concept.parquet",
              "vocabulary/concept_ancestor.parquet", "governance/consent.parquet"]
QUERY = cohort("t2d adults").entry(condition("KCD8", "E11")).require(
    "adult", age(18, None)).build()


@st.composite
def parquet_damage(draw) -> tuple[str, list[tuple[str, float, bytes]]]:
    """(file, edits): each edit an operation at a relative position with some bytes."""
    target = draw(st.sampled_from(DAMAGEABLE))
    edits = draw(st.lists(st.tuples(
        st.sampled_from(["flip", "cut", "overwrite", "zero tail", "append"]),
        st.floats(0, 1, exclude_max=True), st.binary(min_size=1, max_size=64)),
        min_size=1, max_size=3))
    return target, edits


def _damage(data: bytes, edits: list[tuple[str, float, bytes]]) -> bytes:
    b = bytearray(data)
    for op, where, blob in edits:
        at = int(where * len(b)) if b else 0
        if op == "flip" and b:
            for k, byte in enumerate(blob[:8]):
                b[(at + 97 * k) % len(b)] ^= 1 << (byte % 8)
        elif op == "cut":
            del b[at:]
        elif op == "overwrite":
            b[at:at + len(blob)] = blob
        elif op == "zero tail":
            b[-len(blob):] = b"\0" * min(len(blob), len(b))
        else:
            b += blob
    return bytes(b)


def test_damaged_parquet(release: Path) -> None:
    """Default open (checksums): always a ReleaseError naming the file. Opened without
    checksums: a ReleaseError naming the file at open or at the query, or an answer (a
    flip the format cannot see, which is why checksums are the default)."""

    @settings(FUZZ, max_examples=400)
    @given(parquet_damage())
    def check(case: tuple[str, list[tuple[str, float, bytes]]]) -> None:
        rel, edits = case
        path = release / rel
        good = path.read_bytes()
        bad = _damage(good, edits)
        if bad == good:
            return
        COUNTS["fuzz cases: damaged Parquet"] += 1
        path.write_bytes(bad)
        try:
            with pytest.raises(ReleaseError) as info:
                catalog.open(release)
            assert rel in str(info.value) or path.name in str(info.value)
            try:
                cat = catalog.open(release, verify="none")
            except ReleaseError as e:
                assert path.name in str(e)
                COUNTS["outcome: Parquet refused at open"] += 1
                return
            with cat:
                concepts._CACHE.clear()      # resolve again from the damaged vocabulary
                try:
                    run(QUERY, cat, cache="refresh")
                    COUNTS["outcome: Parquet damage not visible without checksums"] += 1
                except ReleaseError as e:
                    assert rel in str(e), str(e)
                    COUNTS["outcome: Parquet refused at the query"] += 1
        finally:
            path.write_bytes(good)

    before = {p: p.read_bytes() for p in release.rglob("*.parquet")}
    check()
    assert {p: p.read_bytes() for p in release.rglob("*.parquet")} == before
    with catalog.open(release, verify="full") as cat:
        assert cat.scalar("select count(*) from person") == 600
