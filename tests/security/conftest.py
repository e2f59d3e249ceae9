"""Fixtures of the security tests: a clean session environment and a private audit log
for every test, and small releases (synthetic, and the same marked as not synthetic)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from workbench.synth.build import build_release


@pytest.fixture(autouse=True)
def _clean_session(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No session from the environment; this test's own audit log."""
    for var in ("WORKBENCH_USER", "WORKBENCH_TIER", "WORKBENCH_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    log = tmp_path / "audit" / "audit.jsonl"
    monkeypatch.setenv("WORKBENCH_AUDIT", str(log))
    return log


@pytest.fixture
def audit_log(_clean_session: Path) -> Path:
    return _clean_session


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """800 persons, no genomes (seed 1): synthetic (the default session is controlled)."""
    out = tmp_path_factory.mktemp("sec") / "release"
    build_release(out, persons=800, genotyped=0, variants=0, seed=1, progress=False)
    return out


@pytest.fixture(scope="session")
def real_release(tiny_release: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same files under a manifest that does not say synthetic, as a release of real
    participants would (the default session is public)."""
    out = tmp_path_factory.mktemp("sec-real") / "release"
    shutil.copytree(tiny_release, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["kind"], manifest["release_id"] = "national", "real-" + manifest["release_id"]
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out
