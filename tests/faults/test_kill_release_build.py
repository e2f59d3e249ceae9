"""kill -9 during `workbench release synth`: the previous release stays whole, the next run
recovers, and nothing a killed build leaves behind is ever taken for a release.

Random kills land anywhere in a build (simulation, Parquet writers, clustering, VCF,
manifest, the swap); injected kills (the build SIGKILLs itself) hit the narrow moments a
random kill rarely finds: just after the new release was exchanged in, between the two
renames of the fallback swap, and halfway through writing the manifest.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from _proc import digest, hidden, kill_after, script, self_kill_code, start

from workbench import catalog
from workbench.errors import ReleaseError
from workbench.synth.build import build_release

GOOD = {"persons": 300, "genotyped": 60, "variants": 300, "seed": 1}
# large enough that a build takes some seconds after its temp directory appears
BIG = ["--persons", "8000", "--genotyped", "100", "--variants", "400", "--seed", "2"]


def _check_release(out: Path) -> str:
    """``out`` is a whole release: every file matches its manifest; its id."""
    with catalog.open(out, verify="full") as cat:
        assert cat.scalar("select count(*) from person") == cat.manifest["tables"]["person"][
            "rows"]
        return cat.release_id


@pytest.fixture
def good(tmp_path: Path) -> tuple[Path, dict[str, str], str]:
    out = tmp_path / "out"
    m = build_release(out, progress=False, **GOOD)
    return out, digest(out), m["release_id"]


def _after_kill(out: Path, before: dict[str, str], good_id: str) -> str:
    """The state a kill may leave: the previous release byte for byte, or (killed after
    the swap) the new one, whole. Which one it is."""
    if digest(out) == before:
        assert _check_release(out) == good_id
        return "previous"
    rid = _check_release(out)
    assert rid != good_id
    return "new"


def _next_run_recovers(out: Path) -> None:
    """The next build removes every temp path of the killed one and writes a release."""
    m = build_release(out, progress=False, force=True, **{**GOOD, "seed": 3})
    assert hidden(out.parent, out.name) == []
    assert _check_release(out) == m["release_id"]


def test_random_kills_during_the_build(good, rng: random.Random, survived) -> None:
    out, before, good_id = good
    outcomes = []
    for _k in range(3):
        proc = start(["-m", "workbench.cli", "release", "synth", "--out", str(out), *BIG,
                      "--force", "--quiet"])
        delay = rng.uniform(0.0, 6.0)
        killed = kill_after(proc, delay, ready=lambda: bool(list(
            out.parent.glob(f".{out.name}.building-*"))))
        assert out.is_dir()           # exchanged in one step (Linux): never absent
        state = _after_kill(out, before, good_id)
        outcomes.append((round(delay, 2), killed, state))
        if killed:
            survived.append(f"release build: random kill {delay:.2f} s into the build")
        if state == "new":            # the build had finished: start again from a good one
            build_release(out, progress=False, force=True, **GOOD)
            before = digest(out)
    print("release build kills (delay s, killed while running, state):", outcomes)
    _next_run_recovers(out)


def test_kill_of_the_first_build_leaves_no_release(tmp_path: Path, rng: random.Random,
                                                   survived) -> None:
    """No previous release: a killed build leaves nothing at --out (not half a release),
    catalog.open says so, and the next build starts afresh."""
    out = tmp_path / "first"
    proc = start(["-m", "workbench.cli", "release", "synth", "--out", str(out), *BIG,
                  "--quiet"])
    assert kill_after(proc, rng.uniform(0.0, 2.0), ready=lambda: bool(list(
        tmp_path.glob(".first.building-*"))))
    survived.append("release build: random kill of a first build")
    assert not out.exists()
    assert hidden(tmp_path, "first"), "the killed build left no temp directory (too late?)"
    with pytest.raises(ReleaseError, match="does not exist"):
        catalog.open(out)
    _next_run_recovers(out)


INJECTED = {
    # the new release was exchanged in; the old one sits in the build's temp directory
    "after the exchange": """
from workbench import atomic
real = atomic._exchange
def exchange(a, b):
    ok = real(a, b)
    die()
atomic._exchange = exchange
""",
    # no exchange (not Linux): the old release was renamed aside, the new not yet in
    "between the fallback renames": """
from pathlib import Path
from workbench import atomic
atomic._exchange = lambda a, b: False
real = Path.rename
def rename(self, target):
    out = real(self, target)
    if ".old-" in Path(target).name:
        die()
    return out
Path.rename = rename
""",
    # half a manifest in the build directory
    "halfway through the manifest": """
import workbench.synth.build as b
def write_manifest(root, manifest):
    (root / "manifest.json").write_text('{"release_id": "synth-')
    die()
b.write_manifest = write_manifest
""",
}


@pytest.mark.parametrize("point", list(INJECTED))
def test_injected_kill(good, point: str, survived) -> None:
    out, before, good_id = good
    code = self_kill_code() + INJECTED[point] + f"""
from workbench.synth.build import build_release
build_release({str(out)!r}, persons=400, genotyped=0, variants=0, seed=9, force=True,
              progress=False)
raise SystemExit("not killed")
"""
    proc = start(script(code))
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == -9, err.decode()[-2000:]
    survived.append(f"release build: injected kill {point}")
    left = hidden(out.parent, out.name)
    assert left, "a SIGKILLed build leaves its temp paths (no cleanup code runs)"
    if point == "between the fallback renames":
        # --out is gone for the moment; the next open puts the previous release back
        assert not out.exists()
        assert _check_release(out) == good_id
    if point == "after the exchange":
        assert _after_kill(out, before, good_id) == "new"
    else:
        assert digest(out) == before
    for name in left:      # what is left beside --out is never a release of its own
        meta = out.parent / name / "manifest.json"
        if meta.is_file() and point == "halfway through the manifest":
            with pytest.raises(json.JSONDecodeError):
                json.loads(meta.read_text())
    _next_run_recovers(out)
