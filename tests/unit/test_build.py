"""The synthetic build: deterministic to the byte, one-line usage errors, atomic replacement."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

import workbench.synth.build as build_mod
from workbench import catalog
from workbench.errors import UsageError
from workbench.schema import GENOTYPE_INDEX, GENOTYPE_VCF, TABLES, table_file
from workbench.synth.build import build_release

ARGS: dict[str, Any] = {"persons": 1200, "genotyped": 150, "variants": 600, "seed": 11}
TINY: dict[str, Any] = {"persons": 300, "genotyped": 0, "variants": 0}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _digests(root: Path) -> dict[str, str]:
    """sha256 of every file under root but the manifest, by relative path."""
    return {str(p.relative_to(root)): _sha(p) for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


def _manifest(root: Path) -> dict[str, Any]:
    return json.loads((root / "manifest.json").read_text(encoding="utf-8"))


def _leftovers(parent: Path, name: str) -> list[str]:
    """Hidden build or swap directories a build may leave beside its target."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict, dict]:
    """The same arguments built twice into different directories."""
    root = tmp_path_factory.mktemp("twins")
    a, b = root / "a" / "release", root / "b" / "other-name"
    ma = build_release(a, progress=False, **ARGS)
    mb = build_release(b, progress=False, **ARGS)
    return a, b, ma, mb


@pytest.fixture(scope="module")
def other_seed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("seed12") / "release"
    build_release(out, progress=False, **{**ARGS, "seed": 12})
    return out


# --- determinism ------------------------------------------------------------------------------

def test_same_arguments_give_identical_files(twins: tuple[Path, Path, dict, dict]) -> None:
    a, b, _, _ = twins
    da, db = _digests(a), _digests(b)
    expected = {table_file(n) for n in TABLES} | {GENOTYPE_VCF, GENOTYPE_INDEX}
    assert set(da) == expected
    assert da == db


def test_same_arguments_give_equal_manifests(twins: tuple[Path, Path, dict, dict]) -> None:
    a, b, ma, mb = twins
    fa, fb = _manifest(a), _manifest(b)
    assert fa == ma and fb == mb                     # the returned manifest is the one written
    assert fa["release_id"] == fb["release_id"]
    assert {k: v for k, v in fa.items() if k != "created"} == \
           {k: v for k, v in fb.items() if k != "created"}


def test_manifest_checksums_and_rows_are_true(twins: tuple[Path, Path, dict, dict]) -> None:
    a, _, ma, _ = twins
    for name, entry in ma["tables"].items():
        assert entry["path"] == table_file(name)
        assert entry["sha256"] == _sha(a / entry["path"]), name
        assert entry["rows"] == pq.read_metadata(a / entry["path"]).num_rows, name
        assert pq.read_schema(a / entry["path"]).equals(TABLES[name]), name
    for rel, entry in ma["files"].items():
        assert entry["sha256"] == _sha(a / rel)
        assert entry["bytes"] == (a / rel).stat().st_size
    assert ma["tables"]["person"]["rows"] == ARGS["persons"]
    assert ma["generator"]["arguments"] == ARGS
    assert ma["genotypes"]["samples"] == ARGS["genotyped"]


def test_different_seed_gives_different_data(twins: tuple[Path, Path, dict, dict],
                                             other_seed: Path) -> None:
    a, _, ma, _ = twins
    person = table_file("person")
    assert _sha(a / person) != _sha(other_seed / person)
    assert _manifest(other_seed)["release_id"] != ma["release_id"]
    yob_a = np.sort(pq.read_table(a / person)["year_of_birth"].to_numpy())
    yob_b = np.sort(pq.read_table(other_seed / person)["year_of_birth"].to_numpy())
    assert len(yob_a) == len(yob_b) == ARGS["persons"]
    assert not np.array_equal(yob_a, yob_b)
    assert _sha(a / GENOTYPE_VCF) != _sha(other_seed / GENOTYPE_VCF)


def test_release_id_is_independent_of_created(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    m0 = build_release(tmp_path / "r0", progress=False, seed=5, **TINY)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    m1 = build_release(tmp_path / "r1", progress=False, seed=5, **TINY)
    assert m0["created"] != m1["created"]
    assert m0["release_id"] == m1["release_id"]


def test_source_date_epoch_sets_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    m = build_release(tmp_path / "r", progress=False, seed=1, **TINY)
    assert m["created"] == "1970-01-01T00:00:00Z"
    assert _manifest(tmp_path / "r")["created"] == "1970-01-01T00:00:00Z"


def test_created_defaults_to_now(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    m = build_release(tmp_path / "r", progress=False, seed=1, **TINY)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", m["created"])
    assert m["created"] >= "2024-"


def test_release_without_genotypes(tmp_path: Path) -> None:
    m = build_release(tmp_path / "r", progress=False, seed=1, **TINY)
    assert m["files"] == {}
    assert m["genotypes"] is None
    assert not (tmp_path / "r" / "genotypes").exists()
    assert m["tables"]["sample_link"]["rows"] == 0
    with catalog.open(tmp_path / "r") as cat:
        assert sorted(cat.tables) == sorted(TABLES)


# --- validation -------------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "needle"), [
    pytest.param({"persons": -5}, "--persons", id="negative-persons"),
    pytest.param({"persons": 0}, "--persons", id="zero-persons"),
    pytest.param({"persons": 300, "genotyped": 301}, "--genotyped (301) cannot exceed",
                 id="genotyped-above-persons"),
    pytest.param({"genotyped": -1}, "--genotyped must not be negative", id="negative-genotyped"),
    pytest.param({"genotyped": 10}, "--genotyped must be 0 or at least 50", id="genotyped-10"),
    pytest.param({"seed": -1}, "--seed", id="negative-seed"),
])
def test_bad_sizes(tmp_path: Path, kwargs: dict[str, Any], needle: str) -> None:
    args = {"persons": 500, "genotyped": 100, "variants": 300, "seed": 1, **kwargs}
    out = tmp_path / "out"
    with pytest.raises(UsageError) as info:
        build_release(out, progress=False, **args)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []              # nothing written, not even a temp dir


def test_non_empty_out_without_force(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError) as info:
        build_release(out, progress=False, seed=1, **TINY)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(out) in msg and "--force" in msg
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert _leftovers(tmp_path, "out") == []


def test_empty_out_is_fine_without_force(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    m = build_release(out, progress=False, seed=1, **TINY)
    assert _manifest(out)["release_id"] == m["release_id"]


def test_out_is_a_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("a file")
    with pytest.raises(UsageError) as info:
        build_release(out, progress=False, seed=1, force=True, **TINY)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(out) in msg and "not a directory" in msg
    assert out.read_text() == "a file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_parent(tmp_path: Path) -> None:
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        with pytest.raises(UsageError) as info:
            build_release(parent / "out", progress=False, seed=1, **TINY)
        msg = str(info.value)
        assert "\n" not in msg
        assert str(parent) in msg and "not writable" in msg
    finally:
        parent.chmod(0o700)


def test_unwritable_parent_as_any_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same check where permissions cannot be set up (root): os.access says no."""
    parent = tmp_path / "locked"
    parent.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access",
                        lambda p, mode, **kw: Path(p) != parent and real_access(p, mode, **kw))
    with pytest.raises(UsageError) as info:
        build_release(parent / "deeper" / "out", progress=False, seed=1, **TINY)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"directory {parent} is not writable" in msg
    monkeypatch.undo()
    assert list(parent.iterdir()) == []


def test_validate_accepts_good_arguments(tmp_path: Path) -> None:
    build_mod.validate_arguments(tmp_path / "new" / "deeper", 100, 50, 200, 0, False)
    assert not (tmp_path / "new").exists()           # validation writes nothing


# --- atomicity --------------------------------------------------------------------------------

@pytest.fixture
def broken_finish(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Make the last build step (after every table and the VCF are written) fail."""
    calls: list[Path] = []

    def boom(root: Path, *args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(root)
        assert (root / table_file("person")).is_file()   # the build really got this far
        raise RuntimeError("simulated crash while writing the manifest")

    monkeypatch.setattr(build_mod, "_finish_manifest", boom)
    return calls


def test_failed_build_leaves_nothing(tmp_path: Path, broken_finish: list[Path]) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_release(out, progress=False, persons=400, genotyped=100, variants=300, seed=1)
    assert len(broken_finish) == 1
    assert broken_finish[0].parent == tmp_path            # it built beside the target
    assert broken_finish[0].name.startswith(".out.building-")
    assert not out.exists()
    assert _leftovers(tmp_path, "out") == []
    assert list(tmp_path.iterdir()) == []


def test_failed_rebuild_keeps_previous_release(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    good = build_release(out, progress=False, seed=1, **TINY)
    before_manifest = (out / "manifest.json").read_bytes()
    before_files = _digests(out)

    calls: list[Path] = []

    def boom(root: Path, *args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(root)
        raise RuntimeError("simulated crash while writing the manifest")

    monkeypatch.setattr(build_mod, "_finish_manifest", boom)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_release(out, progress=False, seed=2, force=True, **TINY)
    assert len(calls) == 1
    assert (out / "manifest.json").read_bytes() == before_manifest
    assert _digests(out) == before_files
    assert _leftovers(tmp_path, "out") == []
    with catalog.open(out, verify="full") as cat:
        assert cat.release_id == good["release_id"]
        assert cat.sql("select count(*) from person").fetchall() == [(TINY["persons"],)]


def test_crash_between_swap_renames_keeps_previous_release(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the two directories cannot be exchanged in one step (not Linux), the old
    release is moved aside first; a failure before the new one is renamed in puts it back."""
    from workbench import atomic

    out = tmp_path / "out"
    good = build_release(out, progress=False, seed=1, **TINY)
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    real_rename = Path.rename

    def rename(self: Path, target: Any) -> Path:
        if Path(target) == out and self.name.startswith(".out.building-"):
            raise OSError("simulated crash between renames")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="simulated crash"):
        build_release(out, progress=False, seed=2, force=True, **TINY)
    monkeypatch.undo()
    assert (out / "manifest.json").is_file()
    assert _manifest(out)["release_id"] == good["release_id"]


def test_force_replaces_existing_release(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = build_release(out, progress=False, seed=1, **TINY)
    (out / "stale.txt").write_text("from the old release")
    second = build_release(out, progress=False, seed=2, force=True, **TINY)
    assert second["release_id"] != first["release_id"]
    assert _manifest(out) == second
    assert _manifest(out)["seed"] == 2
    assert not (out / "stale.txt").exists()              # replaced, not merged
    assert _leftovers(tmp_path, "out") == []
    with catalog.open(out) as cat:
        assert cat.release_id == second["release_id"]


def test_force_with_same_arguments_reproduces_release(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = build_release(out, progress=False, seed=3, **TINY)
    files = _digests(out)
    again = build_release(out, progress=False, seed=3, force=True, **TINY)
    assert again["release_id"] == first["release_id"]
    assert _digests(out) == files


def test_force_refuses_a_directory_that_is_not_a_release(tmp_path: Path) -> None:
    out = tmp_path / "notes"
    out.mkdir()
    (out / "thesis.txt").write_text("precious")
    with pytest.raises(UsageError, match="not a release"):
        build_release(out, progress=False, seed=1, force=True, **TINY)
    assert (out / "thesis.txt").read_text() == "precious"


def test_non_numeric_source_date_epoch_is_a_usage_error(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(UsageError, match="SOURCE_DATE_EPOCH"):
        build_release(tmp_path / "r", progress=False, seed=1, **TINY)
    assert not (tmp_path / "r").exists()


def test_a_killed_build_leaves_the_previous_release_and_is_cleaned_up(tmp_path: Path) -> None:
    """SIGKILL mid-build (no cleanup code runs): --out keeps the previous release; the
    next build removes the dead build's temp directory."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    good = build_release(out, progress=False, seed=1, **TINY)
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "release", "synth",
                             "--out", str(out), "--persons", "400000", "--genotyped", "0",
                             "--variants", "0", "--force", "--quiet"])
    deadline = time.time() + 60
    while not list(tmp_path.glob(".out.building-*")) and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(tmp_path.glob(".out.building-*")), "the build never started"
    assert _manifest(out)["release_id"] == good["release_id"]
    with catalog.open(out) as cat:
        assert cat.scalar("select count(*) from person") == TINY["persons"]
    build_release(out, progress=False, seed=2, force=True, **TINY)
    assert not list(tmp_path.glob(".out.*"))
